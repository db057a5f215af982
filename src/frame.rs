//! [`Frame`]: a decoded image in host memory, packed RGB8.
//!
//! Every input becomes a `Frame` before preprocessing; both paths read this layout (the GPU
//! path uploads it as-is, 3 bytes per pixel). Callers that decode themselves can hand the
//! engine frames directly ([`crate::Input::Frame`]).

use std::sync::Arc;

use crate::error::{Error, Result};

/// A packed RGB8 image (`width * height * 3` bytes, rows without padding). Cloning is cheap
/// (the pixels are shared).
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    width: u32,
    height: u32,
    data: Arc<[u8]>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Frame({}x{} rgb8)", self.width, self.height)
    }
}

impl Frame {
    /// Wraps packed RGB8 pixels.
    ///
    /// # Errors
    /// `InvalidInput` when a side is zero or `data.len() != width * height * 3`.
    pub fn new(width: u32, height: u32, data: impl Into<Arc<[u8]>>) -> Result<Frame> {
        let data = data.into();
        let want = (width as u64)
            .checked_mul(height as u64)
            .and_then(|p| p.checked_mul(3));
        if width == 0 || height == 0 {
            return Err(Error::invalid(format!("frame is empty ({width}x{height})")));
        }
        if want != Some(data.len() as u64) {
            return Err(Error::invalid(format!(
                "frame {width}x{height} rgb8 needs {} bytes, got {}",
                width as u64 * height as u64 * 3,
                data.len()
            )));
        }
        Ok(Frame {
            width,
            height,
            data,
        })
    }

    /// A frame whose pixel `(x, y)` is `f(x, y)`.
    ///
    /// # Panics
    /// When a side is zero.
    pub fn from_fn(width: u32, height: u32, mut f: impl FnMut(u32, u32) -> [u8; 3]) -> Frame {
        assert!(width > 0 && height > 0, "frame sides must be non-zero");
        let mut data = Vec::with_capacity(width as usize * height as usize * 3);
        for y in 0..height {
            for x in 0..width {
                data.extend_from_slice(&f(x, y));
            }
        }
        Frame {
            width,
            height,
            data: data.into(),
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The packed RGB8 bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// Pixel at `(x, y)`, or `None` outside the frame.
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        Some([self.data[i], self.data[i + 1], self.data[i + 2]])
    }

    /// Bytes of pixel data.
    pub fn byte_len(&self) -> usize {
        self.data.len()
    }

    /// Deterministic synthetic test content: smooth gradients plus seeded noise, the same on
    /// every platform (a 32-bit xorshift). Used by benches, examples and tests.
    pub fn synthetic(width: u32, height: u32, seed: u32) -> Frame {
        let mut s = seed.wrapping_mul(2654435761).max(1);
        Frame::from_fn(width.max(1), height.max(1), |x, y| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let n = (s & 31) as i32 - 16;
            let gx = (x as u64 * 255 / width.max(1) as u64) as i32;
            let gy = (y as u64 * 255 / height.max(1) as u64) as i32;
            let c = |v: i32| v.clamp(0, 255) as u8;
            [c(gx + n), c(gy + n), c((gx + gy) / 2 - n)]
        })
    }

    /// The frame encoded as a baseline JPEG at `quality` (1-100, clamped), with `image`'s
    /// encoder: test inputs, benchmark inputs and annotated photos are made with it.
    ///
    /// # Errors
    /// `InvalidInput` when the encoder refuses the frame (a side over 65,535 pixels).
    pub fn encode_jpeg(&self, quality: u8) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100))
            .encode(
                self.as_bytes(),
                self.width(),
                self.height(),
                image::ExtendedColorType::Rgb8,
            )
            .map_err(|e| Error::invalid(format!("jpeg encoding: {e}")))?;
        Ok(out)
    }
}
