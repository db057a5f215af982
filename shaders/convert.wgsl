// convert.wgsl: the horizontal resize pass fused with the output pass.
// CPU twin: src/cpu/convert.rs (and the horizontal half of src/cpu/resize.rs).
//
// One invocation writes one 32-bit word of the output tensor: 4 elements for u8, 2 for f16,
// 1 for f32. For each element it finds (channel, y, x) from the layout; outside the resized
// image it uses the pad colour; inside it runs the horizontal taps over the intermediate row
// written by resize.wgsl, then maps the value exactly as the CPU does:
//   FIXED8:  the 8-bit result indexes the host-computed value table (f32 bits at [c*256+v],
//            f16 bits at [768 + c*256+v]) so float outputs are bit-identical to the CPU's;
//   FLOAT32: the float result goes through the same formula as ValueLut::map; f16 bits come
//            from f16_bits (round to nearest even, as the CPU's `half::f16::from_f32`;
//            written out because pack2x16float needs a capability some adapters lack).
// Gray output is ITU-R 601 luma: (19595 R + 38470 G + 7471 B + 32768) >> 16 on 8-bit
// values, (19595 R + 38470 G + 7471 B) / 65536 on float values.
//
// Bindings (group 0): params, intermediate, output words, horizontal coefficients (starts,
// sizes, weights as in resize.wgsl), value table.

struct ConvertParams {
    out_width: u32,
    out_height: u32,
    resized_width: u32,
    resized_height: u32,
    offset_x: u32,
    offset_y: u32,
    col_count: u32,
    window: u32,
    frac_bits: u32,
    arithmetic: u32,
    channels: u32,
    out_layout: u32,
    dtype: u32,
    value_mode: u32,
    total_words: u32,
    words_per_row: u32,
    src_channel: vec4<u32>,
    pad: vec4<u32>,
    mean: vec4<f32>,
    stdev: vec4<f32>,
}

const FIXED8: u32 = 0u;
const NCHW: u32 = 0u;
const DTYPE_U8: u32 = 0u;
const DTYPE_F16: u32 = 1u;
// value_mode: 0 raw values, 1 scaled to [0,1], 2 scaled and normalized
const VALUE_SCALED: u32 = 1u;
const VALUE_NORMALIZED: u32 = 2u;
const WORKGROUP: u32 = 256u;

@group(0) @binding(0) var<uniform> params: ConvertParams;
@group(0) @binding(1) var<storage, read> tmp: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@group(0) @binding(3) var<storage, read> coeffs: array<u32>;
@group(0) @binding(4) var<storage, read> lut: array<u32>;

// Horizontal taps at intermediate row `y`, output column `x`: 8-bit RGB.
fn taps_fixed(y: u32, x: u32) -> vec3<u32> {
    let n = params.resized_width;
    let start = coeffs[x];
    let size = coeffs[n + x];
    let wbase = 2u * n + x * params.window;
    let row = y * params.col_count;
    var acc = vec3<i32>(0);
    for (var i = 0u; i < size; i = i + 1u) {
        let k = bitcast<i32>(coeffs[wbase + i]);
        let p = tmp[row + start + i];
        acc = acc + k * vec3<i32>(vec3<u32>(p & 0xffu, (p >> 8u) & 0xffu, (p >> 16u) & 0xffu));
    }
    let round_add = 1 << (params.frac_bits - 1u);
    return vec3<u32>(clamp((acc + vec3<i32>(round_add)) >> vec3<u32>(params.frac_bits), vec3<i32>(0), vec3<i32>(255)));
}

// Horizontal taps, float arithmetic: RGB on the 0..255 scale.
fn taps_float(y: u32, x: u32) -> vec3<f32> {
    let n = params.resized_width;
    let start = coeffs[x];
    let size = coeffs[n + x];
    let wbase = 2u * n + x * params.window;
    let row = y * params.col_count;
    var acc = vec3<f32>(0.0);
    for (var i = 0u; i < size; i = i + 1u) {
        let w = bitcast<f32>(coeffs[wbase + i]);
        let o = (row + start + i) * 3u;
        acc = acc + w * vec3<f32>(bitcast<f32>(tmp[o]), bitcast<f32>(tmp[o + 1u]), bitcast<f32>(tmp[o + 2u]));
    }
    return clamp(acc, vec3<f32>(0.0), vec3<f32>(255.0));
}

fn luma_u8(c: vec3<u32>) -> u32 {
    return (19595u * c.x + 38470u * c.y + 7471u * c.z + 0x8000u) >> 16u;
}

fn luma_f32(c: vec3<f32>) -> f32 {
    return (19595.0 * c.x + 38470.0 * c.y + 7471.0 * c.z) / 65536.0;
}

// f32 -> IEEE binary16 bits, round to nearest even (inf/NaN kept, overflow to inf).
fn f16_bits(v: f32) -> u32 {
    let x = bitcast<u32>(v);
    let sign = (x >> 16u) & 0x8000u;
    let exp = i32((x >> 23u) & 0xffu);
    let mant = x & 0x7fffffu;
    if (exp == 255) {
        if (mant != 0u) {
            return sign | 0x7e00u;
        }
        return sign | 0x7c00u;
    }
    let e = exp - 112;
    if (e >= 31) {
        return sign | 0x7c00u;
    }
    if (e <= 0) {
        if (e < -10) {
            return sign;
        }
        let m = mant | 0x800000u;
        let shift = u32(14 - e);
        var h = m >> shift;
        let rem = m & ((1u << shift) - 1u);
        let halfway = 1u << (shift - 1u);
        if (rem > halfway || (rem == halfway && (h & 1u) == 1u)) {
            h = h + 1u;
        }
        return sign | h;
    }
    var h = (u32(e) << 10u) | (mant >> 13u);
    let rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u) == 1u)) {
        h = h + 1u;
    }
    return sign | h;
}

fn map_value(c: u32, v: f32) -> f32 {
    if (params.value_mode == VALUE_NORMALIZED) {
        return (v / 255.0 - params.mean[c]) / params.stdev[c];
    }
    if (params.value_mode == VALUE_SCALED) {
        return v / 255.0;
    }
    return v;
}

// The output bits (low 8, 16 or 32 bits used) of element (c, y, x).
fn element(c: u32, y: u32, x: u32) -> u32 {
    let inside = x >= params.offset_x && x < params.offset_x + params.resized_width
        && y >= params.offset_y && y < params.offset_y + params.resized_height;
    let gray = params.channels == 1u;
    if (params.arithmetic == FIXED8) {
        var rgb = params.pad.xyz;
        if (inside) {
            rgb = taps_fixed(y - params.offset_y, x - params.offset_x);
        }
        var v = rgb[params.src_channel[c]];
        if (gray) {
            v = luma_u8(rgb);
        }
        if (params.dtype == DTYPE_U8) {
            return v;
        }
        if (params.dtype == DTYPE_F16) {
            return lut[768u + c * 256u + v];
        }
        return lut[c * 256u + v];
    }
    var rgbf = vec3<f32>(params.pad.xyz);
    if (inside) {
        rgbf = taps_float(y - params.offset_y, x - params.offset_x);
    }
    var vf = rgbf[params.src_channel[c]];
    if (gray) {
        vf = luma_f32(rgbf);
    }
    if (params.dtype == DTYPE_U8) {
        return u32(clamp(floor(vf + 0.5), 0.0, 255.0));
    }
    let m = map_value(c, vf);
    if (params.dtype == DTYPE_F16) {
        return f16_bits(m);
    }
    return bitcast<u32>(m);
}

fn element_at(e: u32) -> u32 {
    let w = params.out_width;
    let plane = w * params.out_height;
    if (params.out_layout == NCHW) {
        let c = e / plane;
        let r = e - c * plane;
        return element(c, r / w, r % w);
    }
    let pix = e / params.channels;
    let c = e - pix * params.channels;
    return element(c, pix / w, pix % w);
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let word = gid.y * params.words_per_row + gid.x;
    if (gid.x >= params.words_per_row || word >= params.total_words) {
        return;
    }
    let elements = params.out_width * params.out_height * params.channels;
    if (params.dtype == DTYPE_U8) {
        var bits = 0u;
        for (var j = 0u; j < 4u; j = j + 1u) {
            let e = word * 4u + j;
            if (e < elements) {
                bits = bits | (element_at(e) << (8u * j));
            }
        }
        out[word] = bits;
    } else if (params.dtype == DTYPE_F16) {
        var bits = element_at(word * 2u);
        if (word * 2u + 1u < elements) {
            bits = bits | (element_at(word * 2u + 1u) << 16u);
        }
        out[word] = bits;
    } else {
        out[word] = element_at(word);
    }
}
