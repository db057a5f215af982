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
use std::time::{Duration, Instant};

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader};
use serde::{Deserialize, Serialize};

use crate::error::{Error, LimitError, Result};
use crate::frame::Frame;
use crate::spec::DecodeOptions;

/// Limits checked from the header before any large allocation (decompression-bomb guard),
/// and bounds on the work one input may cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
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
    /// Most scans a progressive JPEG may have. Default: 500 (libjpeg-turbo offers the same
    /// guard as `djpeg -maxscans` and `TJPARAM_SCANLIMIT`; encoders write 10 scans for
    /// libjpeg's default progression and a few dozen for mozjpeg's optimised ones). Each
    /// scan passes over the whole image: 20,000 tiny scans took 30 s for a 345 KB file.
    pub max_jpeg_scans: u32,
    /// Largest total of metadata in one input: JPEG APPn and COM segments, PNG ancillary
    /// chunks (iCCP, tEXt, zTXt, iTXt, eXIf, private chunks), and what an iCCP profile may
    /// inflate to. Default: 16 MiB (the largest ICC profiles, with big LUTs, are a few MB;
    /// a 2 MB PNG's iCCP chunk inflated to 2 GB before this limit).
    pub max_metadata_bytes: u64,
    /// Longest one decode may run, checked between JPEG scans and every 64 rows, and after
    /// other formats' decoders return (their cost is linear in pixels, bounded by
    /// `max_pixels`). Default: 10 s (a 12 MP JPEG decodes in ~50 ms on one core here: 200x
    /// headroom for a loaded machine, while a hostile file cannot hold a worker for minutes).
    pub max_decode_time: Duration,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_width: 32768,
            max_height: 32768,
            max_pixels: 178_956_970,
            max_alloc: 1 << 30,
            max_input_bytes: 512 << 20,
            max_jpeg_scans: 500,
            max_metadata_bytes: 16 << 20,
            max_decode_time: Duration::from_secs(10),
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
            max_jpeg_scans: u32::MAX,
            max_metadata_bytes: u64::MAX,
            max_decode_time: Duration::MAX,
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

    fn check_metadata(&self, bytes: &[u8], format: ImageFormat) -> Result<()> {
        let found = metadata_bytes(bytes, format);
        if found > self.max_metadata_bytes {
            return Err(LimitError::ExceedsBudget {
                what: crate::error::Resource::Metadata,
                requested: found,
                limit: self.max_metadata_bytes,
            }
            .into());
        }
        Ok(())
    }

    /// The instant a decode started now must end by (`None`: no deadline).
    fn deadline(&self) -> Option<Instant> {
        Instant::now().checked_add(self.max_decode_time)
    }
}

/// Checks a deadline from [`DecodeLimits::deadline`].
fn check_deadline(deadline: Option<Instant>, limit: Duration, stage: &'static str) -> Result<()> {
    match deadline {
        Some(d) if Instant::now() > d => Err(LimitError::Deadline { stage, limit }.into()),
        _ => Ok(()),
    }
}

/// Bytes of metadata an input declares, by walking its container (JPEG markers up to the
/// first scan, PNG chunks) without decoding anything. Malformed structure stops the walk:
/// the decoder reports it.
fn metadata_bytes(bytes: &[u8], format: ImageFormat) -> u64 {
    let be16 = |i: usize| {
        bytes
            .get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let be32 = |i: usize| {
        bytes
            .get(i..i + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let mut total = 0u64;
    match format {
        ImageFormat::Jpeg => {
            let mut i = 2;
            while i + 1 < bytes.len() {
                if bytes[i] != 0xFF {
                    break;
                }
                let m = bytes[i + 1];
                if m == 0xFF {
                    i += 1; // fill byte
                    continue;
                }
                // SOS starts entropy data; EOI ends the image.
                if m == 0xDA || m == 0xD9 {
                    break;
                }
                // Standalone markers: TEM, RSTn.
                if m == 0x01 || (0xD0..=0xD7).contains(&m) {
                    i += 2;
                    continue;
                }
                let Some(len) = be16(i + 2) else { break };
                if (0xE0..=0xEF).contains(&m) || m == 0xFE {
                    total += len as u64;
                }
                i += 2 + len as usize;
            }
        }
        ImageFormat::Png => {
            let mut i = 8;
            while let (Some(len), Some(kind)) = (be32(i), bytes.get(i + 4..i + 8)) {
                // Ancillary chunks have the lowercase bit set in their first letter.
                if kind[0] & 0x20 != 0 {
                    total += len as u64;
                }
                if kind == b"IEND" {
                    break;
                }
                i = i.saturating_add(12).saturating_add(len as usize);
            }
        }
        _ => {}
    }
    total
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
    /// Bytes per pixel of what the decoder produces before conversion to RGB8 (3 for
    /// JPEG; 8 for 16-bit RGBA PNG).
    pub bytes_per_pixel: u8,
}

impl Header {
    /// An upper bound of the memory a decode at shrink `factor` holds at its peak (the
    /// decoder's own buffer, the RGBA8/RGB8 conversions, the orientation copy): what a
    /// caller reserves against its host budget before decoding.
    pub fn decode_peak(&self, factor: u32) -> u64 {
        let k = factor.max(1);
        let px = self.width.div_ceil(k) as u64 * self.height.div_ceil(k) as u64;
        let native = self.bytes_per_pixel as u64;
        let rotated = if self.orientation >= 2 { native } else { 0 };
        if self.format == ImageFormat::Jpeg && native == 3 {
            px * (3 + rotated)
        } else {
            // native buffer, RGBA8 (flatten) or RGB8 conversion, RGB8 result
            px * (native + rotated + 4 + 3)
        }
    }

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

/// Decodes `bytes` for a preview or a drawing: a JPEG at the smallest DCT scale (1/2, 1/4,
/// 1/8) whose longer side still covers `side` pixels, other formats at full size; EXIF
/// orientation applied; default options and limits.
///
/// # Errors
/// As [`load`].
pub fn load_covering(bytes: &[u8], side: u32) -> Result<Frame> {
    load(
        bytes,
        &DecodeOptions::default(),
        &DecodeLimits::default(),
        |h| {
            let (w, hh) = h.oriented_size();
            let long = w.max(hh);
            Ok([8u32, 4, 2]
                .into_iter()
                .find(|k| long / k >= side)
                .unwrap_or(1))
        },
    )
    .map(|d| d.frame)
}

/// Decodes `bytes`, letting `plan` choose the shrink factor from the header.
///
/// `plan` receives the header and returns the shrink-on-load factor it accepts (1, 2, 4 or
/// 8; only JPEGs honour it, and only when `opts.shrink` is not [`Shrink::Exact`](crate::Shrink::Exact)).
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
    limits.check_metadata(bytes, format)?;
    if format == ImageFormat::Jpeg {
        match jpeg::header(bytes, limits)? {
            jpeg::Probe::Ycc(header) => {
                limits.check(header.width, header.height)?;
                // The plan always runs: callers reserve memory in it before the decode.
                let planned = plan(&header)?;
                let factor = if opts.effective_gap().is_none() {
                    1
                } else {
                    planned
                };
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
    let deadline = limits.deadline();
    // Header first, without the image crate's dimension limits, so an oversized image is
    // reported as our `DimensionTooLarge` before any decoder state is built. PNG decoders
    // inflate iCCP profiles while reading the header: their allowance is the metadata limit.
    let mut probe = ImageReader::with_format(Cursor::new(bytes), format.to_image());
    if format == ImageFormat::Png {
        let mut pl = image::Limits::default();
        pl.max_alloc = Some(limits.max_metadata_bytes.min(limits.max_alloc));
        probe.limits(pl);
    }
    let (hw, hh) = probe.into_dimensions().map_err(derr)?;
    limits.check(hw, hh)?;
    let mut il = image::Limits::default();
    il.max_image_width = Some(limits.max_width);
    il.max_image_height = Some(limits.max_height);
    il.max_alloc = Some(match format {
        // The image's own buffers plus the metadata allowance, nothing more.
        ImageFormat::Png => (hw as u64 * hh as u64 * 8)
            .saturating_add(limits.max_metadata_bytes)
            .min(limits.max_alloc),
        _ => limits.max_alloc,
    });
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
        bytes_per_pixel: decoder.color_type().bytes_per_pixel(),
    };
    // The plan validates the geometry (crop inside the image) even though only JPEGs shrink.
    plan(&header)?;
    // RGBA8 is the largest intermediate the conversion below makes.
    limits.check_alloc(w as u64 * h as u64 * 8)?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(derr)?;
    check_deadline(deadline, limits.max_decode_time, "decode")?;
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

    /// What libjpeg's message hook watches during one decode on this thread. The hook has
    /// no user pointer the mozjpeg wrapper lets us set, so the watch lives in a thread-local
    /// slot installed by [`Watch::install`] for exactly one decode (the decode never leaves
    /// its thread) and removed by the guard.
    struct Watch {
        scans: u32,
        max_scans: u32,
        deadline: Option<Instant>,
        limit: Duration,
    }

    thread_local! {
        static WATCH: std::cell::RefCell<Option<Watch>> = const { std::cell::RefCell::new(None) };
    }

    struct WatchGuard;

    impl Drop for WatchGuard {
        fn drop(&mut self) {
            WATCH.with(|w| w.borrow_mut().take());
        }
    }

    impl Watch {
        fn install(limits: &DecodeLimits, deadline: Option<Instant>) -> WatchGuard {
            let watch = Watch {
                scans: 0,
                max_scans: limits.max_jpeg_scans,
                deadline,
                limit: limits.max_decode_time,
            };
            WATCH.with(|w| *w.borrow_mut() = Some(watch));
            WatchGuard
        }
    }

    /// A typed unwind payload: the error a hook decided on (told apart from libjpeg's own
    /// fatal errors, which unwind with their message).
    struct Abort(Error);

    /// Warnings that mean pixel data is missing or wrong (libjpeg substitutes gray or
    /// repeats data and goes on); the rest (extraneous bytes between markers, odd
    /// JFIF/Adobe versions, a bad ICC chunk) do not affect the pixels.
    fn is_data_loss(code: i32) -> bool {
        use mozjpeg_sys as f;
        [
            f::JWRN_HIT_MARKER,
            f::JWRN_JPEG_EOF,
            f::JWRN_HUFF_BAD_CODE,
            f::JWRN_MUST_RESYNC,
            f::JWRN_BOGUS_PROGRESSION,
        ]
        .contains(&code)
    }

    /// libjpeg calls this for every warning (level -1) and trace message (level >= 0), the
    /// latter whether or not tracing is on: each Start Of Scan is a level-1 trace.
    extern "C-unwind" fn on_message(cinfo: &mut mozjpeg_sys::jpeg_common_struct, level: i32) {
        #[allow(
            unsafe_code,
            reason = "libjpeg always sets err before calling its hooks"
        )]
        let code = unsafe { cinfo.err.as_ref() }.map_or(-1, |e| e.msg_code);
        let verdict = if level < 0 && is_data_loss(code) {
            Some(Error::decode(
                "jpeg",
                "corrupt: entropy data is missing or damaged",
            ))
        } else if level == 1 && code == mozjpeg_sys::JTRC_SOS {
            WATCH.with(|w| {
                let mut w = w.borrow_mut();
                let w = w.as_mut()?;
                w.scans += 1;
                if w.scans > w.max_scans {
                    return Some(LimitError::TooManyScans { limit: w.max_scans }.into());
                }
                check_deadline(w.deadline, w.limit, "jpeg decode").err()
            })
        } else {
            None
        };
        if let Some(e) = verdict {
            std::panic::resume_unwind(Box::new(Abort(e)));
        }
    }

    /// libjpeg's fatal-error hook: unwinds with the formatted message.
    extern "C-unwind" fn on_fatal(cinfo: &mut mozjpeg_sys::jpeg_common_struct) {
        let mut buf = [0u8; 80];
        #[allow(
            unsafe_code,
            reason = "libjpeg's own formatter, called as libjpeg documents"
        )]
        let msg = unsafe {
            match cinfo.err.as_ref().and_then(|e| e.format_message) {
                Some(fmt) => {
                    // mozjpeg-sys declares the buffer `&[u8; 80]` but libjpeg writes into
                    // it: call it as what it is (the mozjpeg crate does the same).
                    type Fmt = unsafe extern "C-unwind" fn(
                        &mut mozjpeg_sys::jpeg_common_struct,
                        &mut [u8; 80],
                    );
                    let fmt = std::mem::transmute::<
                        unsafe extern "C-unwind" fn(
                            &mut mozjpeg_sys::jpeg_common_struct,
                            &[u8; 80],
                        ),
                        Fmt,
                    >(fmt);
                    fmt(cinfo, &mut buf);
                    let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
                    String::from_utf8_lossy(&buf[..end]).into_owned()
                }
                None => "libjpeg error".to_string(),
            }
        };
        std::panic::resume_unwind(Box::new(msg));
    }

    fn error_mgr() -> mozjpeg_sys::jpeg_error_mgr {
        #[allow(
            unsafe_code,
            reason = "jpeg_std_error fills a zeroed C struct of plain fields"
        )]
        let mut e: mozjpeg_sys::jpeg_error_mgr = unsafe {
            let mut e = std::mem::zeroed();
            mozjpeg_sys::jpeg_std_error(&mut e);
            e
        };
        e.error_exit = Some(on_fatal);
        e.emit_message = Some(on_message);
        e
    }

    /// Runs `f` with libjpeg's unwinding errors caught and the watch installed with
    /// `deadline` (the same instant the caller checks between rows).
    fn caught<T>(
        limits: &DecodeLimits,
        deadline: Option<Instant>,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let _watch = Watch::install(limits, deadline);
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(r) => r,
            Err(payload) => {
                let payload = match payload.downcast::<Abort>() {
                    Ok(abort) => return Err(abort.0),
                    Err(p) => p,
                };
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
            .with_err(error_mgr())
            .from_reader(spy)
            .map_err(io_err)?;
        Ok((d, hit_eof))
    }

    pub(super) fn header(bytes: &[u8], limits: &DecodeLimits) -> Result<Probe> {
        caught(limits, limits.deadline(), || {
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
                bytes_per_pixel: 3,
            }))
        })
    }

    /// Rows decoded between two deadline checks.
    const ROWS_PER_CHECK: usize = 64;

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
        let deadline = limits.deadline();
        let (pixels, w, h) = caught(limits, deadline, || {
            let (mut d, hit_eof) = open(bytes)?;
            d.scale((8 / factor) as u8);
            // A progressive file's scans are all read here (the scan limit applies).
            let mut started = d.rgb().map_err(io_err)?;
            let (w, h) = (started.width(), started.height());
            let len = w as u64 * h as u64 * 3;
            limits.check_alloc(len)?;
            let mut pixels = vec![0u8; len as usize];
            for rows in pixels.chunks_mut((w * 3).max(1) * ROWS_PER_CHECK) {
                started.read_scanlines_into::<u8>(rows).map_err(io_err)?;
                check_deadline(deadline, limits.max_decode_time, "jpeg decode")?;
            }
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
    use image::ImageEncoder;

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
        let fast = DecodeOptions {
            shrink: crate::Shrink::Fast,
            ..DecodeOptions::default()
        };
        let d = load(&b, &fast, &DecodeLimits::default(), |h| {
            assert_eq!((h.width, h.height), (64, 48));
            Ok(4)
        })
        .unwrap();
        assert_eq!(d.info.shrink, 4);
        assert_eq!(d.info.decoded, (16, 12));
        assert_eq!((d.frame.width(), d.frame.height()), (16, 12));
        let d = load(
            &b,
            &DecodeOptions::default(),
            &DecodeLimits::default(),
            |_| Ok(4),
        )
        .unwrap();
        assert_eq!(d.info.shrink, 1, "exact (the default) never shrinks");
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

    fn progressive_jpeg(w: u32, h: u32) -> Vec<u8> {
        let f = Frame::synthetic(w, h, 3);
        let mut c = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
        c.set_size(w as usize, h as usize);
        c.set_progressive_mode();
        c.set_quality(90.0);
        let mut c = c.start_compress(Vec::new()).expect("start");
        c.write_scanlines(f.as_bytes()).expect("rows");
        c.finish().expect("finish")
    }

    fn count_scans(b: &[u8]) -> usize {
        b.windows(2).filter(|w| w == &[0xFF, 0xDA]).count()
    }

    fn limit_kind(e: &Error) -> Option<&LimitError> {
        match e.kind() {
            crate::ErrorKind::Limit(l) => Some(l),
            _ => None,
        }
    }

    #[test]
    fn progressive_scans_are_limited() {
        let b = progressive_jpeg(64, 48);
        let scans = count_scans(&b);
        assert!(
            scans > 3,
            "a progressive file has several scans, found {scans}"
        );
        let opts = DecodeOptions::default();
        load(&b, &opts, &DecodeLimits::default(), |_| Ok(1)).expect("within the default");
        let tight = DecodeLimits {
            max_jpeg_scans: scans as u32 - 1,
            ..DecodeLimits::default()
        };
        let e = load(&b, &opts, &tight, |_| Ok(1)).unwrap_err();
        assert!(
            matches!(limit_kind(&e), Some(LimitError::TooManyScans { .. })),
            "{e:?}"
        );
        let exact = DecodeLimits {
            max_jpeg_scans: scans as u32,
            ..DecodeLimits::default()
        };
        load(&b, &opts, &exact, |_| Ok(2)).expect("exactly at the limit");
    }

    #[test]
    fn a_file_of_twenty_thousand_scans_is_refused_early() {
        // The reliability issue's attack: a small progressive JPEG whose last scan is
        // repeated 20,000 times (a 345 KB file of this shape took 30 s and was accepted).
        let b = progressive_jpeg(64, 48);
        let last_sos = b.windows(2).rposition(|w| w == [0xFF, 0xDA]).expect("sos");
        let eoi = b.len() - 2;
        assert_eq!(&b[eoi..], &[0xFF, 0xD9]);
        let scan = &b[last_sos..eoi];
        let mut attack = b[..eoi].to_vec();
        for _ in 0..20_000 {
            attack.extend_from_slice(scan);
        }
        attack.extend_from_slice(&[0xFF, 0xD9]);
        assert!(count_scans(&attack) > 20_000);
        let t = std::time::Instant::now();
        let e = load(
            &attack,
            &DecodeOptions::default(),
            &DecodeLimits::default(),
            |_| Ok(1),
        )
        .unwrap_err();
        eprintln!(
            "{} KB, {} scans: refused in {:?}: {e}",
            attack.len() / 1000,
            count_scans(&attack),
            t.elapsed()
        );
        // stopped at the 501st scan (measured here: ~1 ms for this 1 MB file)
        assert!(
            matches!(
                limit_kind(&e),
                Some(LimitError::TooManyScans { limit: 500 })
            ),
            "{e:?}"
        );
        let lax = DecodeLimits {
            max_jpeg_scans: 600,
            ..DecodeLimits::default()
        };
        let e = load(&attack, &DecodeOptions::default(), &lax, |_| Ok(1)).unwrap_err();
        assert!(
            matches!(
                limit_kind(&e),
                Some(LimitError::TooManyScans { limit: 600 })
            ),
            "{e:?}"
        );
    }

    #[test]
    fn entropy_data_cut_short_before_an_end_marker_is_an_error() {
        // A truncated file with its end-of-image marker re-appended: libjpeg fills the rest
        // with gray and only warns; it is a decode error here.
        for b in [jpeg_bytes(64, 48), progressive_jpeg(64, 48)] {
            let sos = b.windows(2).position(|w| w == [0xFF, 0xDA]).expect("sos");
            let cut = sos + (b.len() - sos) / 5;
            let mut t = b[..cut].to_vec();
            t.extend_from_slice(&[0xFF, 0xD9]);
            let e = load(
                &t,
                &DecodeOptions::default(),
                &DecodeLimits::default(),
                |_| Ok(1),
            )
            .unwrap_err();
            assert!(
                matches!(e.kind(), crate::ErrorKind::Decode { .. })
                    && e.to_string().contains("corrupt"),
                "{e:?}"
            );
        }
    }

    #[test]
    fn the_deadline_stops_decodes() {
        let none = DecodeLimits {
            max_decode_time: Duration::ZERO,
            ..DecodeLimits::default()
        };
        let png = {
            let mut out = Vec::new();
            image::codecs::png::PngEncoder::new(&mut out)
                .write_image(
                    Frame::synthetic(32, 32, 1).as_bytes(),
                    32,
                    32,
                    image::ExtendedColorType::Rgb8,
                )
                .expect("png");
            out
        };
        for b in [jpeg_bytes(64, 48), progressive_jpeg(64, 48), png] {
            std::thread::sleep(Duration::from_millis(1));
            let e = load(&b, &DecodeOptions::default(), &none, |_| Ok(1)).unwrap_err();
            assert!(
                matches!(limit_kind(&e), Some(LimitError::Deadline { .. })),
                "{e:?}"
            );
        }
    }

    #[test]
    fn metadata_is_counted_before_decoding() {
        let b = jpeg_bytes(32, 32);
        // An APP15 segment of 3,000 bytes after SOI.
        let mut j = b[..2].to_vec();
        j.extend_from_slice(&[0xFF, 0xEF]);
        j.extend_from_slice(&3000u16.to_be_bytes());
        j.extend(std::iter::repeat_n(0x41u8, 2998));
        j.extend_from_slice(&b[2..]);
        assert!(metadata_bytes(&j, ImageFormat::Jpeg) >= 3000);
        let tight = DecodeLimits {
            max_metadata_bytes: 2000,
            ..DecodeLimits::default()
        };
        let opts = DecodeOptions::default();
        load(&j, &opts, &DecodeLimits::default(), |_| Ok(1)).expect("under the default");
        let e = load(&j, &opts, &tight, |_| Ok(1)).unwrap_err();
        assert!(
            matches!(
                limit_kind(&e),
                Some(LimitError::ExceedsBudget {
                    what: crate::error::Resource::Metadata,
                    ..
                })
            ),
            "{e:?}"
        );
        // A PNG tEXt chunk of 3,000 bytes (CRC is not checked by the walk).
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(
                Frame::synthetic(8, 8, 1).as_bytes(),
                8,
                8,
                image::ExtendedColorType::Rgb8,
            )
            .expect("png");
        let ihdr_end = 8 + 12 + 13;
        let mut p = png[..ihdr_end].to_vec();
        let mut chunk = b"tEXt".to_vec();
        chunk.extend_from_slice(b"Comment\0");
        chunk.extend(std::iter::repeat_n(b'x', 2992));
        p.extend_from_slice(&3000u32.to_be_bytes());
        p.extend_from_slice(&chunk);
        p.extend_from_slice(&crate::testing::png_crc32(&chunk).to_be_bytes());
        p.extend_from_slice(&png[ihdr_end..]);
        assert_eq!(metadata_bytes(&p, ImageFormat::Png), 3000);
        load(&p, &opts, &DecodeLimits::default(), |_| Ok(1)).expect("under the default");
        assert!(load(&p, &opts, &tight, |_| Ok(1)).is_err());
    }

    #[test]
    fn decode_peak_bounds_what_a_decode_holds() {
        let b = jpeg_bytes(64, 48);
        let mut peak = 0;
        let fast = DecodeOptions {
            shrink: crate::Shrink::Fast,
            ..DecodeOptions::default()
        };
        let d = load(&b, &fast, &DecodeLimits::default(), |h| {
            peak = h.decode_peak(2);
            Ok(2)
        })
        .unwrap();
        assert_eq!(d.info.shrink, 2);
        assert!(peak >= d.frame.as_bytes().len() as u64);
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
