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
mod info;
mod landmarks;
pub mod params;
#[cfg(test)]
mod test_support;

use crate::error::{GpuError, Result};
use crate::frame::Frame;
use crate::plan::{ImagePlan, ValueLut};
use crate::spec::Pipeline;
use crate::tensor::Tensor;

pub use detect::{GpuDetector, DETECT_PARAMS_SIZE};
pub use device::adapters;
pub use info::{GpuInfo, GpuMemoryUsage, GpuSelection, GpuTimings};
pub use landmarks::{GpuFaceNet, NET_ENTRY_POINTS, NET_PARAMS_SIZE};

/// The WGSL sources, compiled into the crate.
pub const RESIZE_WGSL: &str = include_str!("../../shaders/resize.wgsl");
/// See [`RESIZE_WGSL`].
pub const CONVERT_WGSL: &str = include_str!("../../shaders/convert.wgsl");
/// See [`RESIZE_WGSL`].
pub const DETECT_WGSL: &str = include_str!("../../shaders/detect.wgsl");
/// See [`RESIZE_WGSL`].
pub const LANDMARKS_WGSL: &str = include_str!("../../shaders/landmarks.wgsl");

/// A device with compiled pipelines and a budgeted pool.
#[derive(Debug)]
pub(crate) struct GpuBackend {
    dev: device::GpuDevice,
    pool: alloc::BufferPool,
    /// One slot per row of [`SHADERS`]: preprocessing's are compiled when the backend
    /// opens, the networks' on first use (most engines never detect).
    kernels: [std::sync::OnceLock<KernelSet>; SHADERS.len()],
}

/// A shader module the GPU path compiles: its source, its bindings (binding `i` has type
/// `bindings[i]`) and the entry points it builds pipelines for.
#[derive(Debug)]
pub(crate) struct ShaderSpec {
    label: &'static str,
    src: &'static str,
    bindings: &'static [wgpu::BufferBindingType],
    entries: &'static [&'static str],
}

/// Indexes of [`SHADERS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shader {
    /// `resize.wgsl`'s `vertical`.
    Resize = 0,
    /// `convert.wgsl`'s `main`.
    Convert = 1,
    /// The detector's kernels (`detect.wgsl`).
    Detect = 2,
    /// The face-crop networks' kernels (`landmarks.wgsl`).
    Landmarks = 3,
}

/// Every pipeline the GPU path builds, from one table (each built by [`KernelSet::build`]).
const SHADERS: [ShaderSpec; 4] = [
    ShaderSpec {
        label: "veridoc:resize.wgsl",
        src: RESIZE_WGSL,
        bindings: &[UNIFORM, READ, WRITE, READ],
        entries: &["vertical"],
    },
    ShaderSpec {
        label: "veridoc:convert.wgsl",
        src: CONVERT_WGSL,
        bindings: &[UNIFORM, READ, WRITE, READ, READ],
        entries: &["main"],
    },
    ShaderSpec {
        label: "veridoc:detect.wgsl",
        src: DETECT_WGSL,
        bindings: &[UNIFORM, READ, WRITE, READ, READ],
        entries: &detect::DETECT_ENTRY_POINTS,
    },
    ShaderSpec {
        label: "veridoc:landmarks.wgsl",
        src: LANDMARKS_WGSL,
        bindings: &[UNIFORM, READ, WRITE, READ, READ, WRITE],
        entries: &NET_ENTRY_POINTS,
    },
];

/// A shader module's compute pipelines, all sharing one bind group layout: the one way
/// pipelines are built (module -> layout -> pipeline layout -> pipelines, inside a
/// validation scope that turns a compile error into [`GpuError::ShaderCompile`]).
#[derive(Debug)]
pub(crate) struct KernelSet {
    pub(crate) layout: wgpu::BindGroupLayout,
    /// In the order of the entry points asked for.
    pub(crate) pipelines: Vec<wgpu::ComputePipeline>,
}

impl KernelSet {
    /// Compiles `src` and builds one pipeline per entry point over a layout of `bindings`
    /// (binding `i` of type `bindings[i]`, compute stage).
    pub(crate) fn build(
        d: &wgpu::Device,
        label: &str,
        src: &str,
        bindings: &[wgpu::BufferBindingType],
        entries: &[&str],
    ) -> Result<KernelSet> {
        let scope = d.push_error_scope(wgpu::ErrorFilter::Validation);
        let layout_entries: Vec<wgpu::BindGroupLayoutEntry> = bindings
            .iter()
            .enumerate()
            .map(|(i, ty)| layout_entry(i as u32, *ty))
            .collect();
        let layout = d.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(label),
            entries: &layout_entries,
        });
        let module = d.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(label),
            source: wgpu::ShaderSource::Wgsl(src.into()),
        });
        let pl = d.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(label),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipelines = entries
            .iter()
            .map(|entry| {
                d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout: Some(&pl),
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache: None,
                })
            })
            .collect();
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuError::ShaderCompile(format!("{label}: {e}")).into());
        }
        Ok(KernelSet { layout, pipelines })
    }
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

/// A network's filters and biases packed into one storage buffer: each tensor starts on a
/// vec4 boundary (the shaders read them as `array<vec4<f32>>` too), its word offset is
/// returned by [`WeightPack::put`].
#[derive(Debug, Default)]
pub(crate) struct WeightPack {
    words: Vec<f32>,
}

impl WeightPack {
    pub(crate) fn put(&mut self, v: &[f32]) -> Result<u32> {
        self.words.resize(self.words.len().next_multiple_of(4), 0.0);
        let off = u32::try_from(self.words.len())
            .map_err(|_| crate::Error::invalid("network weights over 2^32 values"))?;
        self.words.extend_from_slice(v);
        Ok(off)
    }

    /// Uploads the pack as `label`; returns the buffer and its bytes.
    pub(crate) fn upload(mut self, gpu: &GpuBackend, label: &str) -> Result<(wgpu::Buffer, u64)> {
        self.words
            .resize(self.words.len().next_multiple_of(4).max(4), 0.0);
        let bytes = self.words.len() as u64 * 4;
        if bytes > gpu.dev.info.max_storage_binding {
            return Err(GpuError::OverLimit(format!(
                "{label} needs a {} binding",
                crate::error::fmt_bytes(bytes)
            ))
            .into());
        }
        let dev = &gpu.dev.device;
        let scopes = Scopes::push(dev);
        let buffer = dev.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        gpu.dev
            .queue
            .write_buffer(&buffer, 0, bytemuck::cast_slice(&self.words));
        scopes.pop()?;
        Ok((buffer, bytes))
    }
}

/// The two error scopes a submission runs under (pushed in this order: out-of-memory,
/// then validation).
pub(crate) struct Scopes {
    pub(crate) oom: wgpu::ErrorScopeGuard,
    pub(crate) val: wgpu::ErrorScopeGuard,
}

impl Scopes {
    pub(crate) fn push(d: &wgpu::Device) -> Scopes {
        Scopes {
            oom: d.push_error_scope(wgpu::ErrorFilter::OutOfMemory),
            val: d.push_error_scope(wgpu::ErrorFilter::Validation),
        }
    }

    /// Pops both (validation first), turning a caught error into a typed one.
    pub(crate) fn pop(self) -> Result<()> {
        if let Some(e) = pollster::block_on(self.val.pop()) {
            return Err(GpuError::Validation(e.to_string()).into());
        }
        if let Some(e) = pollster::block_on(self.oom.pop()) {
            return Err(GpuError::OutOfMemory(e.to_string()).into());
        }
        Ok(())
    }
}

impl GpuBackend {
    /// Submits `enc` (which ends by copying `bytes` of results into the mappable `down`),
    /// checks `scopes`, waits for the GPU, and reads `n` records of `per` f32 each (in the
    /// order map, poll, view, drop the view, unmap). `what` names the results in errors.
    pub(crate) fn submit_and_read(
        &self,
        enc: wgpu::CommandEncoder,
        scopes: Scopes,
        down: &wgpu::Buffer,
        bytes: u64,
        (n, per): (usize, usize),
        what: &str,
    ) -> Result<Vec<Vec<f32>>> {
        let index = self.dev.queue.submit([enc.finish()]);
        scopes.pop()?;
        let (tx, rx) = std::sync::mpsc::channel();
        down.slice(..bytes)
            .map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(r);
            });
        self.dev
            .device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: None,
            })
            .map_err(|e| GpuError::DeviceLost(e.to_string()))?;
        self.dev.check_lost()?;
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(GpuError::BufferMap(format!("{what}: {e}")).into()),
            Err(_) => return Err(GpuError::BufferMap("map callback dropped".into()).into()),
        }
        let out = {
            let view = down
                .slice(..bytes)
                .get_mapped_range()
                .map_err(|e| GpuError::BufferMap(e.to_string()))?;
            view.chunks_exact((per * 4).max(4))
                .take(n)
                .map(|rec| {
                    rec.chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect()
                })
                .collect::<Vec<Vec<f32>>>()
        };
        down.unmap();
        Ok(out)
    }

    /// Opens the selected adapter and builds the pipelines; `Ok(None)` when there is none and
    /// the selection allows it.
    pub(crate) fn new(sel: &GpuSelection, budget: Option<u64>) -> Result<Option<GpuBackend>> {
        let Some(dev) = device::open(sel)? else {
            return Ok(None);
        };
        let limit = budget.unwrap_or_else(|| alloc::default_budget(&dev.info));
        let backend = GpuBackend {
            dev,
            pool: alloc::BufferPool::new(limit),
            kernels: Default::default(),
        };
        backend.kernels(Shader::Resize)?;
        backend.kernels(Shader::Convert)?;
        Ok(Some(backend))
    }

    /// The pipelines of one [`SHADERS`] row, compiled on first use.
    pub(crate) fn kernels(&self, shader: Shader) -> Result<&KernelSet> {
        let slot = &self.kernels[shader as usize];
        if let Some(k) = slot.get() {
            return Ok(k);
        }
        let spec = &SHADERS[shader as usize];
        let k = KernelSet::build(
            &self.dev.device,
            spec.label,
            spec.src,
            spec.bindings,
            spec.entries,
        )?;
        // A racing thread may have set it first; both are equivalent.
        let _ = slot.set(k);
        slot.get().ok_or_else(|| {
            GpuError::ShaderCompile(format!("{}: kernels missing", spec.label)).into()
        })
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
