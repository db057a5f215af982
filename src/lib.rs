//! # veridoc
//!
//! A photo-verification engine: it decodes submitted photos, resizes and normalizes them
//! for a model on the CPU (rayon + `fast_image_resize`) or the GPU (wgpu compute shaders),
//! and keeps both paths in agreement as a tested guarantee.
//!
//! ## Quick start
//!
//! ```
//! use veridoc::{Engine, Frame, Input, Pipeline, Layout};
//!
//! let engine = Engine::builder().cpu_threads(2).build()?;
//! let pipeline = Pipeline::new().fit(224, 224).imagenet().layout(Layout::Nchw);
//! let inputs = vec![
//!     Input::frame("synthetic", Frame::synthetic(640, 480, 7)),
//!     Input::bytes("broken.jpg", vec![0xFF, 0xD8, 0xFF, 0x00]),
//! ];
//! let out = engine.run(&pipeline, &inputs)?;
//! assert_eq!(out.items[0].result.as_ref().unwrap().shape(), &[3, 224, 224]);
//! assert!(out.items[1].result.is_err()); // one bad photo never stops a batch
//! println!("{}", out.report);
//! # Ok::<(), veridoc::Error>(())
//! ```
//!
//! ## How an image flows
//!
//! 1. [`decode`]: the format comes from the content; limits are checked from the header
//!    before any large allocation; JPEGs are decoded at a reduced DCT scale when the pipeline
//!    downsamples by 2x or more (shrink-on-load, `Pipeline::exact` turns it off); EXIF
//!    orientation is applied; alpha is flattened.
//! 2. [`geometry`]: crop, fit/fill/stretch/shorter-side and letterbox placement, computed
//!    once per image and shared by both paths.
//! 3. [`resample`] and [`plan`]: fixed-point resize coefficients and per-channel value tables,
//!    computed on the host by the same code for both paths.
//! 4. The CPU path (`src/cpu/`) resizes with `fast_image_resize` and writes the output in one
//!    fused pass (channel order, normalize, layout, dtype).
//!
//! ## Crate layout
//!
//! `spec` (what to do) · `decode` (bytes to RGB8) · `geometry`, `resample`, `plan` (shared
//! math) · `cpu/` (execution on rayon) · `engine` (batches, reports) · `tensor` (output).

#![deny(unsafe_code)]

pub mod cache;
mod cpu;
pub mod decode;
pub mod detect;
mod engine;
mod error;
mod frame;
pub mod geometry;
// The GPU path (wgpu), or its disabled twin in a build without the `gpu` feature: the one
// place the feature is decided, so the rest of the crate reads the same in both builds.
#[cfg(feature = "gpu")]
pub mod gpu;
#[cfg(not(feature = "gpu"))]
#[path = "gpu/disabled.rs"]
pub mod gpu;
mod input;
pub mod landmarks;
pub mod memory;
pub mod model;
pub mod plan;
pub mod progress;
pub mod resample;
pub mod scheduler;
mod spec;
mod tensor;
pub mod verify;

pub use decode::{DecodeInfo, DecodeLimits, ImageFormat};
pub use engine::{
    BatchOutput, BatchPlan, BatchReport, CancelToken, DevicePolicy, Engine, EngineBuilder, Item,
    PlanRequest, StreamItem, StreamOptions, StreamSummary, DEFAULT_HOST_FRACTION, MAX_BATCH,
};
pub use error::{fmt_bytes, Error, ErrorKind, GpuError, LimitError, Resource, Result};
pub use frame::Frame;
pub use input::Input;
pub use memory::{HostBudget, MemoryLimit, Pressure, Reservation, SystemProbe};
pub use progress::{Progress, Stage};
pub use scheduler::{Decision, Device, Placement, Reason};
pub use spec::{
    Anchor, ChannelOrder, Crop, DType, DecodeOptions, Filter, Layout, Normalize, Pipeline, Resize,
    IMAGENET_MEAN, IMAGENET_STD, MAX_OUTPUT_SIDE,
};
pub use tensor::{Tensor, TensorData};

/// The engine version, part of every persistent cache key.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
