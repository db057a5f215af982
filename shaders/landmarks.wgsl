// landmarks.wgsl: face-api's face-crop networks (68 landmarks, expression), one layer per
// dispatch, a batch of 112x112 crops per dispatch.
// CPU twin: src/cpu/landmarks.rs (same layers, same summation order).
//
// Activations are HWC f32, crops back to back: element (n, y, x, c) of a `side x side x ch`
// stage is at ((n * side + y) * side + x) * ch + c. The host dispatches ceil(total / 64)
// workgroups on a 2D grid (`row_words` invocations per grid row).
//
// A dense block keeps the running sum of its outputs in `sum`; each convolution after the
// first reads the ReLU of that sum, which the previous pointwise kernel wrote to `outp`.
// Buffers of a block: X (block input / relu(sum)), T (depthwise output), S (sum):
//   first conv, full (the network's first layer):  input -conv_full-> X, S
//   first conv, separable:                         X -depthwise-> T -pointwise4 (mode 0)-> X, S
//   every later conv:                              X -depthwise-> T -pointwise4 (mode 1)-> X, S
//   after the last block:                          X -avgpool-> T -pointwise(4) (mode 2)-> out
//
// Entry points (one bind group layout):
//   conv_full:  3x3 conv cin -> cout (4 channels per invocation), stride `stride`, `pad`
//               padding before (TF SAME: 0 at stride 2 over an even side), + bias, ReLU;
//               writes X and S.
//   depthwise4: 3x3 depthwise, stride `stride`, `pad` before, no bias.
//   pointwise4: 1x1 conv cin -> cout (4 channels per invocation) + bias, then by `mode`:
//               0: v = relu(acc), X = v, S = v; 1: S += acc, X = relu(S); 2: out = acc.
//   pointwise:  the same for one channel per invocation (mode 2 only: the 7 expression
//               logits).
//   avgpool:    mean over the `side x side` window of each channel.
//
// Summation order matches the CPU: accumulators start at the bias (0 for depthwise) and
// add taps in [ky][kx][ci] order, skipping taps outside the image, or inputs in ci order;
// block outputs are added to S in order. The GPU may fuse multiply-adds, so results agree
// to float rounding.

struct NetParams {
    // input side of this layer
    side: u32,
    // output side
    out_side: u32,
    cin: u32,
    cout: u32,
    // convolution stride (1 or 2) and padding before the data
    stride: u32,
    pad: u32,
    // pointwise mode (see above)
    mode: u32,
    // word offsets of this layer's filter and bias in `wts` (multiples of 4)
    w_off: u32,
    b_off: u32,
    // outputs of the whole batch (groups of 4 channels for the `4` kernels)
    total: u32,
    // invocations per row of the dispatch grid
    row_words: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> params: NetParams;
@group(0) @binding(1) var<storage, read> inp: array<f32>;
@group(0) @binding(2) var<storage, read_write> outp: array<f32>;
@group(0) @binding(3) var<storage, read> wts: array<f32>;
@group(0) @binding(4) var<storage, read> wts4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> sum: array<f32>;

fn load4(i: u32) -> vec4<f32> {
    return vec4<f32>(inp[i], inp[i + 1u], inp[i + 2u], inp[i + 3u]);
}

fn store4(i: u32, v: vec4<f32>) {
    outp[i] = v.x;
    outp[i + 1u] = v.y;
    outp[i + 2u] = v.z;
    outp[i + 3u] = v.w;
}

fn sum4(i: u32) -> vec4<f32> {
    return vec4<f32>(sum[i], sum[i + 1u], sum[i + 2u], sum[i + 3u]);
}

fn store_sum4(i: u32, v: vec4<f32>) {
    sum[i] = v.x;
    sum[i + 1u] = v.y;
    sum[i + 2u] = v.z;
    sum[i + 3u] = v.w;
}

fn relu4(v: vec4<f32>) -> vec4<f32> {
    return max(v, vec4<f32>(0.0));
}

// (n, y, x, c / 4) of output group `idx` of an `out_side x out_side x cout` stage.
fn coords4(idx: u32) -> vec4<u32> {
    let cq = params.cout / 4u;
    let c = idx % cq;
    let px = idx / cq;
    let x = px % params.out_side;
    let t = px / params.out_side;
    return vec4<u32>(t / params.out_side, t % params.out_side, x, c);
}

@compute @workgroup_size(64)
fn conv_full(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.y * params.row_words + gid.x;
    if (idx >= params.total) {
        return;
    }
    let p = coords4(idx);
    let s = i32(params.side);
    let cq = params.cout / 4u;
    let ci = params.cin;
    var acc = wts4[params.b_off / 4u + p.w];
    for (var ky = 0; ky < 3; ky = ky + 1) {
        let yy = i32(p.y * params.stride) + ky - i32(params.pad);
        for (var kx = 0; kx < 3; kx = kx + 1) {
            let xx = i32(p.z * params.stride) + kx - i32(params.pad);
            let tap = u32(ky * 3 + kx) * ci;
            // taps outside the image add zeros (the CPU's im2col adds the same zeros)
            if (yy < 0 || yy >= s || xx < 0 || xx >= s) {
                continue;
            }
            let src = ((p.x * params.side + u32(yy)) * params.side + u32(xx)) * ci;
            for (var c = 0u; c < ci; c = c + 1u) {
                acc = acc + inp[src + c] * wts4[params.w_off / 4u + (tap + c) * cq + p.w];
            }
        }
    }
    let v = relu4(acc);
    store4(idx * 4u, v);
    store_sum4(idx * 4u, v);
}

@compute @workgroup_size(64)
fn depthwise4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.y * params.row_words + gid.x;
    if (idx >= params.total) {
        return;
    }
    let p = coords4(idx);
    let s = i32(params.side);
    let ch = params.cin;
    let cq = ch / 4u;
    var acc = vec4<f32>(0.0);
    for (var ky = 0; ky < 3; ky = ky + 1) {
        let yy = i32(p.y * params.stride) + ky - i32(params.pad);
        if (yy < 0 || yy >= s) {
            continue;
        }
        for (var kx = 0; kx < 3; kx = kx + 1) {
            let xx = i32(p.z * params.stride) + kx - i32(params.pad);
            if (xx < 0 || xx >= s) {
                continue;
            }
            let src = ((p.x * params.side + u32(yy)) * params.side + u32(xx)) * ch + 4u * p.w;
            acc = acc + load4(src) * wts4[params.w_off / 4u + u32(ky * 3 + kx) * cq + p.w];
        }
    }
    store4(idx * 4u, acc);
}

@compute @workgroup_size(64)
fn pointwise4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.y * params.row_words + gid.x;
    if (idx >= params.total) {
        return;
    }
    let p = coords4(idx);
    let ci = params.cin;
    let cq = params.cout / 4u;
    let s = params.side;
    let b = ((p.x * s + p.y) * s + p.z) * ci;
    var acc = wts4[params.b_off / 4u + p.w];
    let wb = params.w_off / 4u + p.w;
    for (var i = 0u; i < ci; i = i + 1u) {
        acc = acc + inp[b + i] * wts4[wb + i * cq];
    }
    let o = idx * 4u;
    if (params.mode == 0u) {
        let v = relu4(acc);
        store4(o, v);
        store_sum4(o, v);
    } else if (params.mode == 1u) {
        let t = sum4(o) + acc;
        store_sum4(o, t);
        store4(o, relu4(t));
    } else {
        store4(o, acc);
    }
}

@compute @workgroup_size(64)
fn pointwise(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.y * params.row_words + gid.x;
    if (idx >= params.total) {
        return;
    }
    let co = params.cout;
    let c = idx % co;
    let px = idx / co;
    let ci = params.cin;
    let b = px * ci;
    var acc = wts[params.b_off + c];
    for (var i = 0u; i < ci; i = i + 1u) {
        acc = acc + inp[b + i] * wts[params.w_off + i * co + c];
    }
    outp[idx] = acc;
}

@compute @workgroup_size(64)
fn avgpool(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.y * params.row_words + gid.x;
    if (idx >= params.total) {
        return;
    }
    let ch = params.cin;
    let c = idx % ch;
    let n = idx / ch;
    let area = params.side * params.side;
    var acc = 0.0;
    for (var i = 0u; i < area; i = i + 1u) {
        acc = acc + inp[(n * area + i) * ch + c];
    }
    outp[idx] = acc / f32(area);
}
