//! The GPU path's plain types, without wgpu: the selection, the adapter's description, the
//! pool's memory accounting and a batch's timings. Both the wgpu backend and its disabled
//! twin (built without the `gpu` feature) export them, so the engine reads the same in both
//! builds.

use std::time::Duration;

use serde::Serialize;

/// Which GPU the engine uses.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum GpuSelection {
    /// The best adapter found (discrete > integrated > software); none is fine (CPU only).
    #[default]
    Auto,
    /// Like `Auto`, but building the engine fails when no adapter exists.
    Required,
    /// Never use a GPU.
    Disabled,
    /// Only a software adapter (lavapipe/llvmpipe): for tests on machines without a GPU.
    Software,
    /// The first adapter whose name contains this string (case-insensitive).
    Named(String),
    /// A device and queue the embedding application already has.
    #[cfg(feature = "gpu")]
    Existing(wgpu::Device, wgpu::Queue),
}

impl std::fmt::Debug for GpuSelection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GpuSelection::Auto => write!(f, "Auto"),
            GpuSelection::Required => write!(f, "Required"),
            GpuSelection::Disabled => write!(f, "Disabled"),
            GpuSelection::Software => write!(f, "Software"),
            GpuSelection::Named(n) => write!(f, "Named({n:?})"),
            #[cfg(feature = "gpu")]
            GpuSelection::Existing(..) => write!(f, "Existing(..)"),
        }
    }
}

/// What the engine knows about its GPU.
#[derive(Debug, Clone, Serialize)]
pub struct GpuInfo {
    /// Adapter name (`NVIDIA H200`, `llvmpipe (LLVM 15.0.6, 256 bits)`).
    pub name: String,
    /// Graphics backend (`Vulkan`, `Metal`, ...).
    pub backend: String,
    /// `DiscreteGpu`, `IntegratedGpu`, `VirtualGpu`, `Cpu` or `Other`.
    pub device_type: String,
    /// Driver name.
    pub driver: String,
    /// Driver version details.
    pub driver_info: String,
    /// True for software adapters (their "GPU" shares the CPU cores).
    pub is_software: bool,
    /// Largest buffer.
    pub max_buffer_size: u64,
    /// Largest storage binding (images and chunks are split to fit).
    pub max_storage_binding: u64,
    /// Largest workgroup count per dimension.
    pub max_workgroups_per_dimension: u32,
    /// Whether GPU timestamps are available (kernel times in reports).
    pub timestamps: bool,
    /// Whether the adapter has `SHADER_F16` (not needed: f16 output is computed exactly).
    pub shader_f16: bool,
}

impl std::fmt::Display for GpuInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}, {}, driver {} {}), max storage binding {}, timestamps {}",
            self.name,
            self.backend,
            self.device_type,
            self.driver,
            self.driver_info,
            crate::error::fmt_bytes(self.max_storage_binding),
            if self.timestamps { "yes" } else { "no" }
        )
    }
}

/// Memory statistics of the GPU pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct GpuMemoryUsage {
    /// The budget in bytes.
    pub limit: u64,
    /// Bytes of live buffers (in use or pooled).
    pub used: u64,
    /// Of which pooled (free for reuse).
    pub pooled: u64,
    /// Peak of `used`.
    pub peak: u64,
}

/// Per-stage timings of a GPU batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct GpuTimings {
    /// Host time filling upload buffers (parallel memcpy of pixels and coefficients).
    pub upload: Duration,
    /// GPU execution of the compute passes, from timestamps (zero when unsupported).
    pub kernel: Duration,
    /// Host time waiting for results (submission to mapped readback).
    pub wait: Duration,
    /// Host time copying results out of mapped readback buffers.
    pub readback: Duration,
    /// Chunks submitted.
    pub chunks: usize,
    /// Bytes uploaded.
    pub bytes_up: u64,
    /// Bytes read back.
    pub bytes_down: u64,
}
