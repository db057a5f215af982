//! Uniform parameter structs, byte-for-byte twins of the WGSL structs in `shaders/`.
//! The compile-time asserts pin each layout; `tests/shaders.rs` checks the WGSL side.

use bytemuck::{Pod, Zeroable};

/// `ResizeParams` in `shaders/resize.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct ResizeParams {
    pub(crate) src_width: u32,
    pub(crate) src_height: u32,
    pub(crate) col_offset: u32,
    pub(crate) col_count: u32,
    pub(crate) out_rows: u32,
    pub(crate) window: u32,
    pub(crate) frac_bits: u32,
    pub(crate) arithmetic: u32,
}

/// `ConvertParams` in `shaders/convert.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct ConvertParams {
    pub(crate) out_width: u32,
    pub(crate) out_height: u32,
    pub(crate) resized_width: u32,
    pub(crate) resized_height: u32,
    pub(crate) offset_x: u32,
    pub(crate) offset_y: u32,
    pub(crate) col_count: u32,
    pub(crate) window: u32,
    pub(crate) frac_bits: u32,
    pub(crate) arithmetic: u32,
    pub(crate) channels: u32,
    pub(crate) out_layout: u32,
    pub(crate) dtype: u32,
    pub(crate) value_mode: u32,
    pub(crate) total_words: u32,
    pub(crate) words_per_row: u32,
    pub(crate) src_channel: [u32; 4],
    pub(crate) pad: [u32; 4],
    pub(crate) mean: [f32; 4],
    pub(crate) stdev: [f32; 4],
}

const _: () = assert!(std::mem::size_of::<ResizeParams>() == 32);
const _: () = assert!(std::mem::size_of::<ConvertParams>() == 128);
// vec4 members start at 16-byte offsets in WGSL's uniform layout
const _: () = assert!(std::mem::offset_of!(ConvertParams, src_channel) == 64);
const _: () = assert!(std::mem::offset_of!(ConvertParams, stdev) == 112);

/// Sizes the WGSL side must report (checked by the naga test).
pub const RESIZE_PARAMS_SIZE: u32 = 32;
/// See [`RESIZE_PARAMS_SIZE`].
pub const CONVERT_PARAMS_SIZE: u32 = 128;
