//! The GPU path: wgpu compute shaders for the whole preprocessing pipeline and the face
//! detector. This folder is the only place in the crate that touches wgpu.
//!
//! - `device.rs`: adapter selection ([`GpuSelection`]) and [`GpuInfo`];
//! - `alloc.rs`: the budgeted buffer pool (GPU memory by accounting);
//! - `params.rs`: uniform structs, twins of the WGSL structs;
//! - `exec.rs`: chunked, pipelined batch execution;
//! - `detect.rs`: TinyFaceDetector's forward pass (`shaders/detect.wgsl`), batched, weights
//!   resident ([`GpuDetector`]), activations from the budgeted pool.
//!
//! The shaders (`shaders/resize.wgsl`, `shaders/convert.wgsl`) implement the same arithmetic
//! as the CPU path, with coefficients and value tables computed on the host by the code the
//! CPU path uses (`crate::resample`, `crate::plan`), which is why the outputs agree.

mod alloc;
mod detect;
mod device;
mod exec;
pub mod params;

use crate::error::{GpuError, Result};
use crate::frame::Frame;
use crate::plan::{ImagePlan, ValueLut};
use crate::spec::Pipeline;
use crate::tensor::Tensor;

pub use alloc::GpuMemoryUsage;
pub use detect::{GpuDetector, DETECT_PARAMS_SIZE};
pub use device::{GpuInfo, GpuSelection};
pub use exec::GpuTimings;

/// The WGSL sources, compiled into the crate.
pub const RESIZE_WGSL: &str = include_str!("../../shaders/resize.wgsl");
/// See [`RESIZE_WGSL`].
pub const CONVERT_WGSL: &str = include_str!("../../shaders/convert.wgsl");
/// See [`RESIZE_WGSL`].
pub const DETECT_WGSL: &str = include_str!("../../shaders/detect.wgsl");

/// A device with compiled pipelines and a budgeted pool.
#[derive(Debug)]
pub(crate) struct GpuBackend {
    dev: device::GpuDevice,
    pool: alloc::BufferPool,
    resize_layout: wgpu::BindGroupLayout,
    convert_layout: wgpu::BindGroupLayout,
    resize_pipeline: wgpu::ComputePipeline,
    convert_pipeline: wgpu::ComputePipeline,
    /// The detector's kernels, compiled on first use (most engines never detect).
    detect_kernels: std::sync::OnceLock<detect::DetectKernels>,
}

/// A bind-group entry for `size` bytes of `buffer` at `offset` (at least 4: WGSL bindings
/// may not be empty).
fn bind_entry(
    binding: u32,
    buffer: &wgpu::Buffer,
    offset: u64,
    size: u64,
) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer,
            offset,
            size: wgpu::BufferSize::new(size.max(4)),
        }),
    }
}

fn layout_entry(binding: u32, ty: wgpu::BufferBindingType) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

const UNIFORM: wgpu::BufferBindingType = wgpu::BufferBindingType::Uniform;
const READ: wgpu::BufferBindingType = wgpu::BufferBindingType::Storage { read_only: true };
const WRITE: wgpu::BufferBindingType = wgpu::BufferBindingType::Storage { read_only: false };

impl GpuBackend {
    /// Opens the selected adapter and builds the pipelines; `Ok(None)` when there is none and
    /// the selection allows it.
    pub(crate) fn new(sel: &GpuSelection, budget: Option<u64>) -> Result<Option<GpuBackend>> {
        let Some(dev) = device::open(sel)? else {
            return Ok(None);
        };
        let limit = budget.unwrap_or_else(|| alloc::default_budget(&dev.info));
        let d = &dev.device;
        let scope = d.push_error_scope(wgpu::ErrorFilter::Validation);
        let resize_layout = d.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("veridoc:resize"),
            entries: &[
                layout_entry(0, UNIFORM),
                layout_entry(1, READ),
                layout_entry(2, WRITE),
                layout_entry(3, READ),
            ],
        });
        let convert_layout = d.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("veridoc:convert"),
            entries: &[
                layout_entry(0, UNIFORM),
                layout_entry(1, READ),
                layout_entry(2, WRITE),
                layout_entry(3, READ),
                layout_entry(4, READ),
            ],
        });
        let pipeline = |name: &str, src: &str, layout: &wgpu::BindGroupLayout, entry: &str| {
            let module = d.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(src.into()),
            });
            let pl = d.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(name),
                bind_group_layouts: &[Some(layout)],
                immediate_size: 0,
            });
            d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: Some(&pl),
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let resize_pipeline = pipeline(
            "veridoc:resize.wgsl",
            RESIZE_WGSL,
            &resize_layout,
            "vertical",
        );
        let convert_pipeline = pipeline(
            "veridoc:convert.wgsl",
            CONVERT_WGSL,
            &convert_layout,
            "main",
        );
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuError::ShaderCompile(e.to_string()).into());
        }
        Ok(Some(GpuBackend {
            dev,
            pool: alloc::BufferPool::new(limit),
            resize_layout,
            convert_layout,
            resize_pipeline,
            convert_pipeline,
            detect_kernels: std::sync::OnceLock::new(),
        }))
    }

    pub(crate) fn info(&self) -> &GpuInfo {
        &self.dev.info
    }

    pub(crate) fn memory(&self) -> GpuMemoryUsage {
        self.pool.usage()
    }

    /// Releases pooled buffers; returns the bytes freed.
    pub(crate) fn trim(&self) -> u64 {
        self.pool.trim()
    }

    /// Runs `jobs` (index, frame, plan) on the GPU.
    pub(crate) fn run(
        &self,
        jobs: &[(usize, &Frame, &ImagePlan)],
        p: &Pipeline,
        lut: &ValueLut,
    ) -> Result<(Vec<(usize, Tensor)>, GpuTimings)> {
        self.run_jobs(jobs, p, lut)
    }
}
