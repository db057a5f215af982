//! Image loading: format from content, limits from the header, shrink-on-load, EXIF
//! orientation, and conversion of every pixel format to packed RGB8.
//!
//! Call order (what [`load`] does for each input):
//!
//! ```text
//! sniff format (magic bytes) -> read header (size, EXIF orientation) -> check DecodeLimits
//! -> caller plans the geometry and picks a shrink factor -> decode (JPEG: DCT-scaled by
//! 1/2, 1/4 or 1/8 when the factor allows) -> apply orientation -> flatten alpha -> Frame
//! ```
//!
//! JPEGs decode through libjpeg-turbo's code (the `mozjpeg` crate; SIMD with the `jpeg-simd`
//! feature), which can decode at a reduced DCT scale: the single biggest saving on CPU, as
//! libvips' shrink-on-load and Pillow's `draft` mode show. CMYK/YCCK JPEGs and every other
//! format (PNG, WebP, BMP, TIFF, GIF first frame) go through the `image` crate. Nothing here
//! panics on bad input: libjpeg's fatal errors unwind into a caught [`crate::ErrorKind::Decode`].

use std::io::{BufRead, Cursor, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader};
use serde::{Deserialize, Serialize};

use crate::error::{Error, LimitError, Result};
use crate::frame::Frame;
use crate::spec::DecodeOptions;

/// Limits checked from the header before any large allocation (decompression-bomb guard).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecodeLimits {
    /// Largest accepted width. Default: 32768.
    pub max_width: u32,
    /// Largest accepted height. Default: 32768.
    pub max_height: u32,
    /// Largest accepted pixel count of the stored image. Default: 178,956,970 (Pillow's
    /// decompression-bomb error threshold, twice its `MAX_IMAGE_PIXELS`).
    pub max_pixels: u64,
    /// Largest single allocation the decoder may make, in bytes. Default: 1 GiB.
    pub max_alloc: u64,
    /// Largest input file or buffer, in bytes, checked before it is read. Default: 512 MiB
    /// (an uncompressed 24-bit image at `max_pixels` is 537 MB; no compressed photo comes
    /// near it, and a larger input is refused instead of read into memory).
    pub max_input_bytes: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_width: 32768,
            max_height: 32768,
            max_pixels: 178_956_970,
            max_alloc: 1 << 30,
            max_input_bytes: 512 << 20,
        }
    }
}

impl DecodeLimits {
    /// No limits (trusted inputs only).
    pub fn none() -> Self {
        DecodeLimits {
            max_width: u32::MAX,
            max_height: u32::MAX,
            max_pixels: u64::MAX,
            max_alloc: u64::MAX,
            max_input_bytes: u64::MAX,
        }
    }

    fn check(&self, width: u32, height: u32) -> Result<()> {
        let too_large = |limit: String| {
            Err(LimitError::DimensionTooLarge {
                width: width as u64,
                height: height as u64,
                limit,
            }
            .into())
        };
        if width > self.max_width {
            return too_large(format!("max width {}", self.max_width));
        }
        if height > self.max_height {
            return too_large(format!("max height {}", self.max_height));
        }
        if width as u64 * height as u64 > self.max_pixels {
            return too_large(format!("max pixels {}", self.max_pixels));
        }
        Ok(())
    }

    fn check_alloc(&self, bytes: u64) -> Result<()> {
        if bytes > self.max_alloc {
            return Err(LimitError::ExceedsBudget {
                what: crate::error::Resource::DecodeAllocation,
                requested: bytes,
                limit: self.max_alloc,
            }
            .into());
        }
        Ok(())
    }
}

/// An image format recognized from content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ImageFormat {
    /// JPEG (baseline, progressive, gray, YCbCr, CMYK, YCCK).
    Jpeg,
    /// PNG (any bit depth, palette, alpha).
    Png,
    /// WebP (lossy and lossless).
    WebP,
    /// BMP.
    Bmp,
    /// TIFF.
    Tiff,
    /// GIF (first frame).
    Gif,
}

impl ImageFormat {
    /// Short lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "jpeg",
            ImageFormat::Png => "png",
            ImageFormat::WebP => "webp",
            ImageFormat::Bmp => "bmp",
            ImageFormat::Tiff => "tiff",
            ImageFormat::Gif => "gif",
        }
    }

    fn to_image(self) -> image::ImageFormat {
        match self {
            ImageFormat::Jpeg => image::ImageFormat::Jpeg,
            ImageFormat::Png => image::ImageFormat::Png,
            ImageFormat::WebP => image::ImageFormat::WebP,
            ImageFormat::Bmp => image::ImageFormat::Bmp,
            ImageFormat::Tiff => image::ImageFormat::Tiff,
            ImageFormat::Gif => image::ImageFormat::Gif,
        }
    }
}

/// Recognizes the format from the first bytes (never from a file extension).
pub fn sniff(bytes: &[u8]) -> Option<ImageFormat> {
    let starts = |m: &[u8]| bytes.starts_with(m);
    if starts(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageFormat::Jpeg)
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        Some(ImageFormat::Png)
    } else if bytes.len() >= 12 && starts(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Some(ImageFormat::WebP)
    } else if starts(b"BM") {
        Some(ImageFormat::Bmp)
    } else if starts(b"II*\0") || starts(b"MM\0*") {
        Some(ImageFormat::Tiff)
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        Some(ImageFormat::Gif)
    } else {
        None
    }
}

/// What the header says, before decoding pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Detected format.
    pub format: ImageFormat,
    /// Stored width (before orientation).
    pub width: u32,
    /// Stored height (before orientation).
    pub height: u32,
    /// EXIF orientation tag, 1 (none) to 8.
    pub orientation: u8,
}

impl Header {
    /// Size after applying the EXIF orientation (what the user sees).
    pub fn oriented_size(&self) -> (u32, u32) {
        if self.orientation >= 5 {
            (self.height, self.width)
        } else {
            (self.width, self.height)
        }
    }
}

/// How an input was decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecodeInfo {
    /// Detected format.
    pub format: ImageFormat,
    /// Full-resolution size after orientation.
    pub original: (u32, u32),
    /// Size actually decoded (after orientation): smaller when shrink-on-load was used.
    pub decoded: (u32, u32),
    /// Shrink-on-load factor used: 1 (full decode), 2, 4 or 8.
    pub shrink: u32,
    /// EXIF orientation tag found (1 = none); it has been applied.
    pub orientation: u8,
}

/// A decoded input: the RGB8 frame and how it was obtained.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The pixels, oriented, alpha flattened.
    pub frame: Frame,
    /// Decode details (for reports).
    pub info: DecodeInfo,
}

/// Decodes `bytes`, letting `plan` choose the shrink factor from the header.
///
/// `plan` receives the header and returns the shrink-on-load factor it accepts (1, 2, 4 or
/// 8; only JPEGs honour it, and only when `opts.exact` is false).
///
/// # Errors
/// `InvalidInput` for empty input, `Unsupported` for unknown formats, `Limit` when the
/// header is over `limits`, `Decode` for corrupt or truncated data, and whatever `plan`
/// returns.
pub fn load(
    bytes: &[u8],
    opts: &DecodeOptions,
    limits: &DecodeLimits,
    plan: impl FnOnce(&Header) -> Result<u32>,
) -> Result<Decoded> {
    if bytes.is_empty() {
        return Err(Error::invalid("empty input (0 bytes)"));
    }
    let format = sniff(bytes).ok_or_else(|| {
        Error::unsupported(format!(
            "unrecognized image format (first bytes {:02x?})",
            &bytes[..bytes.len().min(8)]
        ))
    })?;
    if format == ImageFormat::Jpeg {
        match jpeg::header(bytes)? {
            jpeg::Probe::Ycc(header) => {
                limits.check(header.width, header.height)?;
                let factor = if opts.exact { 1 } else { plan(&header)? };
                return jpeg::decode(bytes, header, factor, limits);
            }
            // CMYK/YCCK: libjpeg cannot convert to RGB; the image crate can.
            jpeg::Probe::Cmyk => {}
        }
    }
    decode_generic(bytes, format, opts, limits, plan)
}

fn decode_generic(
    bytes: &[u8],
    format: ImageFormat,
    opts: &DecodeOptions,
    limits: &DecodeLimits,
    plan: impl FnOnce(&Header) -> Result<u32>,
) -> Result<Decoded> {
    let name = format.name();
    let derr = |e: image::ImageError| match e {
        image::ImageError::Limits(l) => Error::decode(name, format!("over decode limits: {l}")),
        image::ImageError::Unsupported(u) => Error::unsupported(format!("{name}: {u}")),
        e => Error::decode(name, e.to_string()),
    };
    // Header first, without limits of the image crate's own, so an oversized image is
    // reported as our `DimensionTooLarge` before any decoder state is built.
    let (hw, hh) = ImageReader::with_format(Cursor::new(bytes), format.to_image())
        .into_dimensions()
        .map_err(derr)?;
    limits.check(hw, hh)?;
    let mut il = image::Limits::default();
    il.max_image_width = Some(limits.max_width);
    il.max_image_height = Some(limits.max_height);
    il.max_alloc = Some(limits.max_alloc);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.to_image());
    reader.limits(il);
    let mut decoder = reader.into_decoder().map_err(derr)?;
    let (w, h) = decoder.dimensions();
    limits.check(w, h)?;
    let orientation = decoder
        .orientation()
        .map(|o| o.to_exif())
        .unwrap_or(1)
        .clamp(1, 8);
    let header = Header {
        format,
        width: w,
        height: h,
        orientation,
    };
    // The plan validates the geometry (crop inside the image) even though only JPEGs shrink.
    plan(&header)?;
    // RGBA8 is the largest intermediate the conversion below makes.
    limits.check_alloc(w as u64 * h as u64 * 8)?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(derr)?;
    if let Some(o) = Orientation::from_exif(orientation) {
        img.apply_orientation(o);
    }
    let (ow, oh) = (img.width(), img.height());
    let rgb = if img.color().has_alpha() {
        flatten_alpha(img.to_rgba8().into_raw(), opts.background)
    } else {
        match img {
            DynamicImage::ImageRgb8(b) => b.into_raw(),
            other => other.to_rgb8().into_raw(),
        }
    };
    let frame = Frame::new(ow, oh, rgb)?;
    Ok(Decoded {
        frame,
        info: DecodeInfo {
            format,
            original: (ow, oh),
            decoded: (ow, oh),
            shrink: 1,
            orientation,
        },
    })
}

/// Composites RGBA8 over an opaque background: `(c*a + bg*(255-a) + 127) / 255`.
fn flatten_alpha(rgba: Vec<u8>, bg: [u8; 3]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rgba.len() / 4 * 3);
    for px in rgba.chunks_exact(4) {
        let a = px[3] as u32;
        for c in 0..3 {
            out.push(((px[c] as u32 * a + bg[c] as u32 * (255 - a) + 127) / 255) as u8);
        }
    }
    out
}

/// Applies an EXIF orientation to packed RGB8 pixels.
fn orient(w: u32, h: u32, data: Vec<u8>, orientation: u8) -> Result<(u32, u32, Vec<u8>)> {
    let Some(o) = Orientation::from_exif(orientation).filter(|o| *o != Orientation::NoTransforms)
    else {
        return Ok((w, h, data));
    };
    let buf = image::RgbImage::from_raw(w, h, data)
        .ok_or_else(|| Error::invalid("decoded buffer does not match its size"))?;
    let mut img = DynamicImage::ImageRgb8(buf);
    img.apply_orientation(o);
    let (w, h) = (img.width(), img.height());
    Ok((w, h, img.into_rgb8().into_raw()))
}

mod jpeg {
    //! JPEG through libjpeg-turbo's code (mozjpeg crate) with DCT-domain scaling.

    use super::*;

    pub(super) enum Probe {
        Ycc(Header),
        Cmyk,
    }

    /// A `BufRead` over a byte slice that remembers whether the decoder asked for bytes past
    /// the end: libjpeg pads a truncated stream with a fake EOI and only warns, so this is how
    /// a truncated file is told from a complete one.
    struct EofSpy<'a> {
        data: &'a [u8],
        pos: usize,
        hit_eof: std::rc::Rc<std::cell::Cell<bool>>,
    }

    impl Read for EofSpy<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = {
                let avail = self.fill_buf()?;
                let n = avail.len().min(buf.len());
                buf[..n].copy_from_slice(&avail[..n]);
                n
            };
            self.consume(n);
            Ok(n)
        }
    }

    impl BufRead for EofSpy<'_> {
        fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
            let rest = &self.data[self.pos.min(self.data.len())..];
            if rest.is_empty() {
                self.hit_eof.set(true);
            }
            Ok(rest)
        }
        fn consume(&mut self, amt: usize) {
            self.pos = (self.pos + amt).min(self.data.len());
        }
    }

    fn caught<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(r) => r,
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "libjpeg error".into());
                Err(Error::decode(
                    "jpeg",
                    msg.trim_start_matches("libjpeg fatal error: "),
                ))
            }
        }
    }

    fn io_err(e: std::io::Error) -> Error {
        Error::decode("jpeg", e.to_string())
    }

    fn exif_orientation(d: &mozjpeg::Decompress<impl BufRead>) -> u8 {
        d.markers()
            .filter(|m| m.marker == mozjpeg::Marker::APP(1))
            .find_map(|m| {
                m.data
                    .strip_prefix(b"Exif\0\0")
                    .and_then(Orientation::from_exif_chunk)
            })
            .map(|o| o.to_exif())
            .unwrap_or(1)
    }

    fn open(
        bytes: &[u8],
    ) -> Result<(
        mozjpeg::Decompress<EofSpy<'_>>,
        std::rc::Rc<std::cell::Cell<bool>>,
    )> {
        let hit_eof = std::rc::Rc::new(std::cell::Cell::new(false));
        let spy = EofSpy {
            data: bytes,
            pos: 0,
            hit_eof: hit_eof.clone(),
        };
        let d = mozjpeg::Decompress::with_markers(&[mozjpeg::Marker::APP(1)])
            .from_reader(spy)
            .map_err(io_err)?;
        Ok((d, hit_eof))
    }

    pub(super) fn header(bytes: &[u8]) -> Result<Probe> {
        caught(|| {
            let (d, _) = open(bytes)?;
            use mozjpeg::ColorSpace as C;
            if matches!(d.color_space(), C::JCS_CMYK | C::JCS_YCCK) {
                return Ok(Probe::Cmyk);
            }
            let (w, h) = d.size();
            Ok(Probe::Ycc(Header {
                format: ImageFormat::Jpeg,
                width: u32::try_from(w).map_err(|_| Error::decode("jpeg", "width overflows"))?,
                height: u32::try_from(h).map_err(|_| Error::decode("jpeg", "height overflows"))?,
                orientation: exif_orientation(&d),
            }))
        })
    }

    pub(super) fn decode(
        bytes: &[u8],
        header: Header,
        factor: u32,
        limits: &DecodeLimits,
    ) -> Result<Decoded> {
        let factor = match factor {
            8 => 8,
            4 => 4,
            2 => 2,
            _ => 1,
        };
        let (pixels, w, h) = caught(|| {
            let (mut d, hit_eof) = open(bytes)?;
            d.scale((8 / factor) as u8);
            let mut started = d.rgb().map_err(io_err)?;
            let (w, h) = (started.width(), started.height());
            let len = w as u64 * h as u64 * 3;
            limits.check_alloc(len)?;
            let mut pixels = vec![0u8; len as usize];
            started
                .read_scanlines_into::<u8>(&mut pixels)
                .map_err(io_err)?;
            started.finish().map_err(io_err)?;
            if hit_eof.get() {
                return Err(Error::decode(
                    "jpeg",
                    "truncated: data ends before the end-of-image marker",
                ));
            }
            Ok((pixels, w as u32, h as u32))
        })?;
        let (w, h, pixels) = orient(w, h, pixels, header.orientation)?;
        let frame = Frame::new(w, h, pixels)?;
        Ok(Decoded {
            frame,
            info: DecodeInfo {
                format: ImageFormat::Jpeg,
                original: header.oriented_size(),
                decoded: (w, h),
                shrink: factor,
                orientation: header.orientation,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg_bytes(w: u32, h: u32) -> Vec<u8> {
        Frame::synthetic(w, h, 1).encode_jpeg(90).expect("jpeg")
    }

    #[test]
    fn sniffs_by_content() {
        assert_eq!(sniff(&jpeg_bytes(8, 8)), Some(ImageFormat::Jpeg));
        assert_eq!(sniff(b"GIF89a...."), Some(ImageFormat::Gif));
        assert_eq!(sniff(b"hello"), None);
    }

    #[test]
    fn jpeg_shrink_on_load() {
        let b = jpeg_bytes(64, 48);
        let d = load(
            &b,
            &DecodeOptions::default(),
            &DecodeLimits::default(),
            |h| {
                assert_eq!((h.width, h.height), (64, 48));
                Ok(4)
            },
        )
        .unwrap();
        assert_eq!(d.info.shrink, 4);
        assert_eq!(d.info.decoded, (16, 12));
        assert_eq!((d.frame.width(), d.frame.height()), (16, 12));
        let exact = DecodeOptions {
            exact: true,
            ..DecodeOptions::default()
        };
        let d = load(&b, &exact, &DecodeLimits::default(), |_| Ok(4)).unwrap();
        assert_eq!(d.info.shrink, 1, "exact never shrinks");
    }

    #[test]
    fn truncated_and_corrupt_jpegs_are_errors() {
        let b = jpeg_bytes(64, 48);
        for cut in [b.len() / 2, b.len() - 2, 3, 100] {
            let e = load(
                &b[..cut],
                &DecodeOptions::default(),
                &DecodeLimits::default(),
                |_| Ok(1),
            )
            .unwrap_err();
            assert!(
                matches!(e.kind(), crate::ErrorKind::Decode { .. }),
                "cut at {cut}: {e:?}"
            );
        }
        let mut garbage = b.clone();
        for v in garbage.iter_mut().skip(2).take(200) {
            *v = 0x5a;
        }
        assert!(load(
            &garbage,
            &DecodeOptions::default(),
            &DecodeLimits::default(),
            |_| Ok(1)
        )
        .is_err());
    }

    #[test]
    fn limits_refuse_from_header() {
        let b = jpeg_bytes(64, 48);
        let limits = DecodeLimits {
            max_pixels: 1000,
            ..DecodeLimits::default()
        };
        let e = load(&b, &DecodeOptions::default(), &limits, |_| Ok(1)).unwrap_err();
        assert!(
            matches!(
                e.kind(),
                crate::ErrorKind::Limit(LimitError::DimensionTooLarge { .. })
            ),
            "{e:?}"
        );
    }

    #[test]
    fn alpha_flattens_onto_background() {
        assert_eq!(flatten_alpha(vec![255, 0, 0, 0], [1, 2, 3]), vec![1, 2, 3]);
        assert_eq!(
            flatten_alpha(vec![255, 0, 0, 255], [1, 2, 3]),
            vec![255, 0, 0]
        );
        assert_eq!(
            flatten_alpha(vec![200, 100, 0, 128], [0, 0, 0]),
            vec![100, 50, 0]
        );
    }
}
