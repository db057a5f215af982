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
//!    before any large allocation; JPEGs are decoded at full resolution by default, or at a reduced
//!    DCT scale when the pipeline downsamples by 2x or more and asks for it ([`Shrink`]:
//!    `balanced` or `fast` shrink-on-load); EXIF
//!    orientation is applied; alpha is flattened.
//! 2. [`geometry`]: crop, fit/fill/stretch/shorter-side and letterbox placement, computed
//!    once per image and shared by both paths.
//! 3. [`resample`] and the value tables: fixed-point resize coefficients and per-channel
//!    lookup tables, computed on the host by the same code for both paths.
//! 4. [`scheduler`]: each batch gets a [`Decision`] — a [`Placement`] (cpu, gpu or a split)
//!    and the [`Reason`] for it — from a calibrated linear cost model per path, refined from
//!    every measured batch.
//! 5. The CPU path (`src/cpu/`) resizes with `fast_image_resize` and writes the output in one
//!    fused pass (channel order, normalize, layout, dtype); the GPU path ([`gpu`], WGSL
//!    compute shaders in `shaders/`, each with a CPU twin of the same name) does the same
//!    within a tested tolerance (bit-exact for the fixed-point filters).
//! 6. [`Engine::run`] returns a [`BatchOutput`] with one result per input (a bad photo never
//!    stops a batch) and a [`BatchReport`]; [`Engine::stream`] runs any number of inputs
//!    under a [`HostBudget`] with backpressure, progress and cancellation.
//! 7. [`cache`]: results (memory + disk, TTL, keys from content, pipeline, [`VERSION`] and
//!    [`BUILD_ID`]) and models (GPU-resident, host, disk tier read and verified into an
//!    anonymous map). An unusable cache directory turns that disk tier off with a warning
//!    ([`Engine::warnings`]); it never fails a run.
//!
//! ## Verification
//!
//! [`verify::Verifier`] runs photos through the engine: a face search with the
//! TinyFaceDetector ([`detect`]) at several scales, face-api's 68-landmark and expression
//! networks ([`landmarks`]), then the ICAO 9303 / ISO/IEC 19794-5 checks of a
//! [`verify::Profile`], each with its clause, range and unit, into a per-photo
//! [`verify::PhotoReport`]. Weights come from [`model`] files (TF.js or the fast `VDM2`
//! form) through the model cache. docs/verification.md has the measured error rates.
//!
//! ## Crate layout
//!
//! `spec` (what to do: [`Pipeline`]) · [`decode`] (bytes to RGB8) · [`geometry`],
//! [`resample`] (shared math) · `cpu/` (execution on rayon) · [`gpu`] (the only module that
//! touches wgpu; a disabled twin in a build without the `gpu` feature) · [`scheduler`] ·
//! `engine` ([`Engine`], batches, streaming, reports) · [`cache`] · [`model`], [`detect`],
//! [`landmarks`], [`verify`] · [`clock`], [`testing`] (injectable time and test doubles) ·
//! one [`Error`] with an [`ErrorKind`] a caller can act on. The benchmark suite and the
//! monitor are the `veridoc-bench` crate (`bench/`).

#![deny(unsafe_code)]

pub mod cache;
pub mod clock;
mod cpu;
pub mod decode;
pub mod detect;
mod engine;
mod error;
mod frame;
pub mod geometry;
// The GPU path (wgpu), or its disabled twin in a build without the `gpu` feature: the one
// place the feature is decided, so the rest of the crate reads the same in both builds.
#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "gpu")]
pub mod gpu;
#[cfg(not(feature = "gpu"))]
#[path = "gpu/disabled.rs"]
pub mod gpu;
mod input;
pub mod landmarks;
mod memory;
pub mod model;
mod plan;
mod progress;
pub mod resample;
pub mod scheduler;
#[cfg(feature = "serve")]
pub mod service;
mod spec;
mod tensor;
pub mod testing;
pub mod verify;

pub use decode::{DecodeInfo, DecodeLimits, ImageFormat};
pub use engine::{
    BatchOutput, BatchPlan, BatchReport, CancelToken, DevicePolicy, Engine, EngineBuilder, Item,
    PlanRequest, StreamItem, StreamOptions, StreamSummary, DEFAULT_HOST_FRACTION, MAX_BATCH,
};
pub use error::{fmt_bytes, Error, ErrorKind, GpuError, LimitError, Resource, Result};
pub use frame::Frame;
pub use input::{Collected, Input};
pub use memory::{HostBudget, MemoryLimit, Pressure, Reservation, SysinfoProbe, SystemProbe};
pub use progress::{Progress, Stage};
pub use scheduler::{Decision, Device, Placement, Reason};
pub use spec::{
    Anchor, ChannelOrder, Crop, DType, DecodeOptions, Filter, Layout, Normalize, Pipeline, Resize,
    Shrink, IMAGENET_MEAN, IMAGENET_STD, MAX_OUTPUT_SIDE,
};
pub use tensor::{Tensor, TensorData};

/// The README's code samples, compiled by `cargo test --doc` (never part of the API).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The engine version, part of every persistent cache key.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The build fingerprint: 32 hex digits hashed by `build.rs` from the crate's sources
/// (`src/**`, `shaders/**`, `Cargo.toml`, `Cargo.lock`). Part of every result and report
/// cache key (and of the model cache's disk key), so an engine rebuilt from changed sources,
/// with the same [`VERSION`], never serves results its predecessor cached.
pub const BUILD_ID: &str = env!("VERIDOC_BUILD_ID");
