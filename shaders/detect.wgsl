// detect.wgsl: TinyFaceDetector's forward pass, one layer per dispatch, a batch of images
// per dispatch.
// CPU twin: src/cpu/detect.rs (same layers, same fusion points, same summation order).
//
// Activations are HWC f32, images back to back: element (n, y, x, c) of a stage of `side`
// rows of `width` pixels of `ch` channels is at ((n * side + y) * width + x) * ch + c.
// One invocation computes one output element; the host dispatches ceil(total / 64)
// workgroups on a 2D grid (`row_words` invocations per grid row, so large batches stay
// under the per-dimension limit).
//
// Entry points (all share one bind group layout). The `4` kernels compute four consecutive
// output channels per invocation (channel counts are multiples of 4; weights are read as
// vec4 through `wts4`, which aliases `wts`), so each input value loaded serves four
// products, and each fused-pool invocation keeps its 2x2 window's four pixels in registers:
//   conv0_4:     3x3 conv 3 -> 16, SAME, + bias, leaky(0.1), fused 2x2/2 max-pool.
//   depthwise4:  3x3 depthwise, SAME, no bias.
//   pointwise4:  1x1 conv cin -> cout + bias, optional leaky(0.1) (`act`), optional fused
//                2x2/2 max-pool (`pool` = 2; 0 = none).
//   pointwise:   the same, one channel per invocation, unpooled: the head (conv8, 25
//                outputs, act 0).
//   maxpool:     2x2 max-pool with stride `pool` (1 or 2), TF 'same' (the window is cut at
//                the right/bottom edge, which is what padding with -inf gives).
//
// Summation order matches the CPU: the accumulator starts at the bias (0 for depthwise) and
// adds taps in [ky][kx][ci] order (conv0, depthwise, skipping taps outside the image) or
// ci order (pointwise). The GPU may fuse multiply-adds, so results agree to float rounding.
//
// Bindings (group 0): params, input activations, output activations, weights (all the
// network's filters and biases in one array; `w_off` and `b_off` locate this layer's, in
// words, multiples of 4), and the same weights as vec4.

struct DetectParams {
    // input height (rows) of this layer
    side: u32,
    // output height (side / pool for pooled layers, side otherwise)
    out_side: u32,
    // input and output channels
    cin: u32,
    cout: u32,
    // pool stride: 0 none, 1 or 2
    pool: u32,
    // 1: leaky ReLU after the bias
    act: u32,
    // word offsets of the filter and the bias in `wts`
    w_off: u32,
    b_off: u32,
    // output elements of the whole batch
    total: u32,
    // invocations per row of the dispatch grid
    row_words: u32,
    // input width (columns) of this layer
    width: u32,
    // output width
    out_width: u32,
}

const LEAKY: f32 = 0.1;

@group(0) @binding(0) var<uniform> params: DetectParams;
@group(0) @binding(1) var<storage, read> inp: array<f32>;
@group(0) @binding(2) var<storage, read_write> outp: array<f32>;
@group(0) @binding(3) var<storage, read> wts: array<f32>;
@group(0) @binding(4) var<storage, read> wts4: array<vec4<f32>>;

fn leaky(v: f32) -> f32 {
    if (v > 0.0) {
        return v;
    }
    return v * LEAKY;
}

fn leaky4(v: vec4<f32>) -> vec4<f32> {
    return select(v * LEAKY, v, v > vec4<f32>(0.0));
}

fn act4(v: vec4<f32>) -> vec4<f32> {
    if (params.act != 0u) {
        return leaky4(v);
    }
    return v;
}

fn load4(i: u32) -> vec4<f32> {
    return vec4<f32>(inp[i], inp[i + 1u], inp[i + 2u], inp[i + 3u]);
}

fn store4(i: u32, v: vec4<f32>) {
    outp[i] = v.x;
    outp[i + 1u] = v.y;
    outp[i + 2u] = v.z;
    outp[i + 3u] = v.w;
}

// (n, y, x, c / 4) of output group `idx` (four channels) of an `out_width x out_side x cout`
// stage.
fn coords4(idx: u32) -> vec4<u32> {
    let cq = params.cout / 4u;
    let c = idx % cq;
    let px = idx / cq;
    let x = px % params.out_width;
    let t = px / params.out_width;
    return vec4<u32>(t / params.out_side, t % params.out_side, x, c);
}

// (n, y, x, c) of output element `idx` in an `out_width x out_side x cout` stage.
fn coords(idx: u32) -> vec4<u32> {
    let c = idx % params.cout;
    let px = idx / params.cout;
    let x = px % params.out_width;
    let t = px / params.out_width;
    return vec4<u32>(t / params.out_side, t % params.out_side, x, c);
}

@compute @workgroup_size(64)
fn conv0_4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.y * params.row_words + gid.x;
    if (idx >= params.total) {
        return;
    }
    let p = coords4(idx);
    let s = i32(params.side);
    let sw = i32(params.width);
    let cq = params.cout / 4u;
    let base = p.x * params.side * params.width;
    // the 4 x 4 x 3 input window of the 2x2 pooled conv outputs, zero outside the image
    // (the CPU's im2col adds the same zeros)
    var win: array<f32, 48>;
    for (var py = 0; py < 4; py = py + 1) {
        let yy = 2 * i32(p.y) + py - 1;
        for (var px = 0; px < 4; px = px + 1) {
            let xx = 2 * i32(p.z) + px - 1;
            let o = (py * 4 + px) * 3;
            if (yy < 0 || yy >= s || xx < 0 || xx >= sw) {
                win[o] = 0.0;
                win[o + 1] = 0.0;
                win[o + 2] = 0.0;
            } else {
                let src = (base + u32(yy) * params.width + u32(xx)) * 3u;
                win[o] = inp[src];
                win[o + 1] = inp[src + 1u];
                win[o + 2] = inp[src + 2u];
            }
        }
    }
    // the four conv outputs of the pool window share each weight load; each accumulates
    // bias + taps in [ky][kx][ci] order like the CPU
    let bias = wts4[params.b_off / 4u + p.w];
    let wb = params.w_off / 4u + p.w;
    var a00 = bias;
    var a01 = bias;
    var a10 = bias;
    var a11 = bias;
    for (var ky = 0; ky < 3; ky = ky + 1) {
        for (var kx = 0; kx < 3; kx = kx + 1) {
            let tap = u32(ky * 3 + kx) * 3u;
            for (var ci = 0; ci < 3; ci = ci + 1) {
                let w = wts4[wb + (tap + u32(ci)) * cq];
                // window index of output (0, 0); +3 is one pixel right, +12 one row down
                let o = (ky * 4 + kx) * 3 + ci;
                a00 = a00 + win[o] * w;
                a01 = a01 + win[o + 3] * w;
                a10 = a10 + win[o + 12] * w;
                a11 = a11 + win[o + 15] * w;
            }
        }
    }
    let m = max(max(leaky4(a00), leaky4(a01)), max(leaky4(a10), leaky4(a11)));
    store4(idx * 4u, m);
}

@compute @workgroup_size(64)
fn depthwise4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.y * params.row_words + gid.x;
    if (idx >= params.total) {
        return;
    }
    let p = coords4(idx);
    let s = i32(params.side);
    let sw = i32(params.width);
    let ch = params.cin;
    let cq = ch / 4u;
    var acc = vec4<f32>(0.0);
    for (var ky = 0; ky < 3; ky = ky + 1) {
        let yy = i32(p.y) + ky - 1;
        if (yy < 0 || yy >= s) {
            continue;
        }
        for (var kx = 0; kx < 3; kx = kx + 1) {
            let xx = i32(p.z) + kx - 1;
            if (xx < 0 || xx >= sw) {
                continue;
            }
            let src = ((p.x * params.side + u32(yy)) * params.width + u32(xx)) * ch + 4u * p.w;
            acc = acc + load4(src) * wts4[params.w_off / 4u + u32(ky * 3 + kx) * cq + p.w];
        }
    }
    store4(idx * 4u, acc);
}

fn pointwise_at(n: u32, y: u32, x: u32, c: u32) -> f32 {
    let ci = params.cin;
    let co = params.cout;
    let base = ((n * params.side + y) * params.width + x) * ci;
    var acc = wts[params.b_off + c];
    for (var i = 0u; i < ci; i = i + 1u) {
        acc = acc + inp[base + i] * wts[params.w_off + i * co + c];
    }
    if (params.act != 0u) {
        return leaky(acc);
    }
    return acc;
}

@compute @workgroup_size(64)
fn pointwise(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.y * params.row_words + gid.x;
    if (idx >= params.total) {
        return;
    }
    let p = coords(idx);
    outp[idx] = pointwise_at(p.x, p.y, p.z, p.w);
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
    let sw = params.width;
    let bias = wts4[params.b_off / 4u + p.w];
    let wb = params.w_off / 4u + p.w;
    if (params.pool == 0u) {
        let b = ((p.x * s + p.y) * sw + p.z) * ci;
        var acc = bias;
        for (var i = 0u; i < ci; i = i + 1u) {
            acc = acc + inp[b + i] * wts4[wb + i * cq];
        }
        store4(idx * 4u, act4(acc));
        return;
    }
    // fused 2x2/2 pool: the input side is even, so the whole window is inside
    let b00 = ((p.x * s + 2u * p.y) * sw + 2u * p.z) * ci;
    let b01 = b00 + ci;
    let b10 = b00 + sw * ci;
    let b11 = b10 + ci;
    var a00 = bias;
    var a01 = bias;
    var a10 = bias;
    var a11 = bias;
    for (var i = 0u; i < ci; i = i + 1u) {
        let w = wts4[wb + i * cq];
        a00 = a00 + inp[b00 + i] * w;
        a01 = a01 + inp[b01 + i] * w;
        a10 = a10 + inp[b10 + i] * w;
        a11 = a11 + inp[b11 + i] * w;
    }
    let m = max(max(act4(a00), act4(a01)), max(act4(a10), act4(a11)));
    store4(idx * 4u, m);
}

@compute @workgroup_size(64)
fn maxpool(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.y * params.row_words + gid.x;
    if (idx >= params.total) {
        return;
    }
    let p = coords(idx);
    let s = params.side;
    let sw = params.width;
    let ch = params.cout;
    let y0 = p.y * params.pool;
    let x0 = p.z * params.pool;
    let row0 = (p.x * s + y0) * sw;
    var m = inp[(row0 + x0) * ch + p.w];
    if (x0 + 1u < sw) {
        m = max(m, inp[(row0 + x0 + 1u) * ch + p.w]);
    }
    if (y0 + 1u < s) {
        let row1 = row0 + sw;
        m = max(m, inp[(row1 + x0) * ch + p.w]);
        if (x0 + 1u < sw) {
            m = max(m, inp[(row1 + x0 + 1u) * ch + p.w]);
        }
    }
    outp[idx] = m;
}
