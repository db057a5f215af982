// resize.wgsl: the vertical pass of the separable resize.
// CPU twin: src/cpu/resize.rs (fast_image_resize for `Fixed8`, `resize_float` for `Float32`).
//
// One invocation computes one pixel of the intermediate image: output row `y` of the resize,
// source column `col_offset + x`, for all three channels. The intermediate keeps only the
// columns the horizontal pass (convert.wgsl) reads, so it is out_rows x col_count pixels.
//
// Arithmetic (see src/resample.rs):
//   FIXED8 (0):  acc = sum_i k_i * x_i in i32, then clamp((acc + 2^(p-1)) >> p, p = frac_bits, 0, 255);
//                stored packed as r | g << 8 | b << 16 in one u32 per pixel.
//   FLOAT32 (1): acc = sum_i w_i * x_i in f32, in tap order from 0, clamped to [0, 255];
//                stored as three f32 (bit-cast to u32) per pixel.
//
// Bindings (group 0): params, source bytes, intermediate, coefficients.
// The source is packed RGB8 (3 bytes per pixel, rows without padding) read as u32 words.
// The coefficient array holds, as u32 words: starts[out_rows], sizes[out_rows], then
// weights[out_rows * window] (i32 fixed point for FIXED8, f32 bits for FLOAT32).

struct ResizeParams {
    src_width: u32,
    src_height: u32,
    col_offset: u32,
    col_count: u32,
    out_rows: u32,
    window: u32,
    frac_bits: u32,
    arithmetic: u32,
}

const FIXED8: u32 = 0u;

@group(0) @binding(0) var<uniform> params: ResizeParams;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> tmp: array<u32>;
@group(0) @binding(3) var<storage, read> coeffs: array<u32>;

fn load_byte(i: u32) -> u32 {
    return (src[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu;
}

fn load_rgb(i: u32) -> vec3<u32> {
    return vec3<u32>(load_byte(i), load_byte(i + 1u), load_byte(i + 2u));
}

@compute @workgroup_size(16, 16)
fn vertical(@builtin(global_invocation_id) gid: vec3<u32>) {
    let x = gid.x;
    let y = gid.y;
    if (x >= params.col_count || y >= params.out_rows) {
        return;
    }
    let start = coeffs[y];
    let size = coeffs[params.out_rows + y];
    let wbase = 2u * params.out_rows + y * params.window;
    let row_bytes = params.src_width * 3u;
    let col_byte = (params.col_offset + x) * 3u;
    if (params.arithmetic == FIXED8) {
        var acc = vec3<i32>(0);
        for (var i = 0u; i < size; i = i + 1u) {
            let k = bitcast<i32>(coeffs[wbase + i]);
            acc = acc + k * vec3<i32>(load_rgb((start + i) * row_bytes + col_byte));
        }
        let round_add = 1 << (params.frac_bits - 1u);
        let v = vec3<u32>(clamp((acc + vec3<i32>(round_add)) >> vec3<u32>(params.frac_bits), vec3<i32>(0), vec3<i32>(255)));
        tmp[y * params.col_count + x] = v.x | (v.y << 8u) | (v.z << 16u);
    } else {
        var acc = vec3<f32>(0.0);
        for (var i = 0u; i < size; i = i + 1u) {
            let w = bitcast<f32>(coeffs[wbase + i]);
            acc = acc + w * vec3<f32>(load_rgb((start + i) * row_bytes + col_byte));
        }
        let v = clamp(acc, vec3<f32>(0.0), vec3<f32>(255.0));
        let o = (y * params.col_count + x) * 3u;
        tmp[o] = bitcast<u32>(v.x);
        tmp[o + 1u] = bitcast<u32>(v.y);
        tmp[o + 2u] = bitcast<u32>(v.z);
    }
}
