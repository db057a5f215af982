//! TinyFaceDetector on the GPU: WGSL kernels in `shaders/detect.wgsl`, twin of
//! `src/cpu/detect.rs`.
//!
//! ```text
//! upload_detector: every filter and bias in one storage buffer (word offsets per layer)
//! detect: inputs -> chunks of N images (binding limit, 64 MiB activations, the budget)
//!   per chunk, one submission, one compute pass, one dispatch per layer for all N images:
//!   input -conv0+leaky+pool-> A -dw-> B -pw+leaky+pool-> A ... (block 5: pw -> A,
//!   maxpool/1 -> B) -head-> out -> readback
//! ```
//! Activations ping-pong between two pooled buffers (`alloc.rs`), so they count against the
//! GPU budget; the weights are charged to the model cache's GPU tier instead. The summation
//! order follows the CPU's (bias first, taps in filter order), so heads agree to float
//! rounding (fused multiply-adds on the GPU): the unit tests below compare raw heads on
//! random weights, `tests/verify.rs` and `tests/gpu_detect.rs` the faces of the asset photos.

use bytemuck::{Pod, Zeroable};

use super::alloc::{size_class, PooledBuffer};
use super::{bind_entry, GpuBackend, KernelSet, Scopes, Shader, WeightPack};
use crate::detect::{TinyFaceWeights, BLOCK_POOL_STRIDE};
use crate::error::{Error, GpuError, LimitError, Result};

/// Invocations per workgroup (`@workgroup_size(64)` in the shader): two NVIDIA warps or one
/// AMD wavefront, and a multiple of lavapipe's 8- and 16-lane SIMD width.
const WG: u32 = 64;

/// Upper bound for one activation buffer of a chunk: the chunk size `exec.rs` uses
/// (`CHUNK_BYTES`, docs/gpu-notes.md: 64 MiB buffers were the best measured on the H200); at
/// 416x416 (2.8 MB per image for the largest activation) it allows 24 images per chunk
/// (a verify chunk of 32 photos runs as two submissions).
const CHUNK_ACT_BYTES: u64 = 64 << 20;

/// `DetectParams` in `shaders/detect.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
struct DetectParams {
    side: u32,
    out_side: u32,
    cin: u32,
    cout: u32,
    pool: u32,
    act: u32,
    w_off: u32,
    b_off: u32,
    total: u32,
    row_words: u32,
    width: u32,
    out_width: u32,
}

/// Size the WGSL `DetectParams` must have (checked by `tests/shaders.rs`).
pub const DETECT_PARAMS_SIZE: u32 = 48;
const _: () = assert!(std::mem::size_of::<DetectParams>() == DETECT_PARAMS_SIZE as usize);

/// The detector's entry points, in the order [`Kernel`] indexes them.
pub(crate) const DETECT_ENTRY_POINTS: [&str; 5] = [
    "conv0_4",
    "depthwise4",
    "pointwise",
    "pointwise4",
    "maxpool",
];

/// Word offsets of one layer's filter and bias in the weight buffer.
#[derive(Debug, Clone, Copy)]
struct Layer {
    w_off: u32,
    b_off: u32,
}

/// One separable block as uploaded.
#[derive(Debug, Clone, Copy)]
struct Block {
    channels: usize,
    stride: usize,
    depthwise: Layer,
    pointwise: Layer,
}

/// The detector's weights resident on the GPU (held by the model cache's GPU tier).
#[derive(Debug)]
pub struct GpuDetector {
    weights: wgpu::Buffer,
    conv0: Layer,
    conv0_out: usize,
    blocks: Vec<Block>,
    head: Layer,
    head_out: usize,
    bytes: u64,
}

/// Which buffer a layer reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Buf {
    Input,
    Act(usize),
    Head,
}

#[derive(Debug, Clone, Copy)]
enum Kernel {
    Conv0,
    Depthwise,
    Pointwise,
    Maxpool,
}

/// One dispatch: kernel, buffers, and its parameters for one image (`total`: output
/// elements per image).
#[derive(Debug, Clone, Copy)]
struct Stage {
    kernel: Kernel,
    src: Buf,
    dst: Buf,
    p: DetectParams,
    /// Input floats per image.
    src_len: u64,
}

impl GpuDetector {
    /// The layers for an input of `width x height` (multiples of 32), per image.
    fn stages(&self, (width, height): (usize, usize)) -> Vec<Stage> {
        let mut v = Vec::with_capacity(3 + 3 * self.blocks.len());
        let u = |x: usize| x as u32;
        // (w, h): input size; (ow, oh): output size
        let mk = |(w, h): (usize, usize),
                  (ow, oh): (usize, usize),
                  cin: usize,
                  cout: usize,
                  pool,
                  act,
                  l: Layer| {
            DetectParams {
                side: u(h),
                out_side: u(oh),
                cin: u(cin),
                cout: u(cout),
                pool,
                act,
                w_off: l.w_off,
                b_off: l.b_off,
                total: u(ow * oh * cout),
                width: u(w),
                out_width: u(ow),
                ..Default::default()
            }
        };
        let mut s = (width / 2, height / 2);
        let half = |(w, h): (usize, usize)| (w / 2, h / 2);
        let area = |(w, h): (usize, usize)| w * h;
        v.push(Stage {
            kernel: Kernel::Conv0,
            src: Buf::Input,
            dst: Buf::Act(0),
            p: mk((width, height), s, 3, self.conv0_out, 2, 1, self.conv0),
            src_len: (width * height * 3) as u64,
        });
        let mut cur = 0;
        for b in &self.blocks {
            let (c, co) = (b.channels, 2 * b.channels);
            v.push(Stage {
                kernel: Kernel::Depthwise,
                src: Buf::Act(cur),
                dst: Buf::Act(1 - cur),
                p: mk(s, s, c, c, 0, 0, b.depthwise),
                src_len: (area(s) * c) as u64,
            });
            cur = 1 - cur;
            if b.stride == 2 {
                v.push(Stage {
                    kernel: Kernel::Pointwise,
                    src: Buf::Act(cur),
                    dst: Buf::Act(1 - cur),
                    p: mk(s, half(s), c, co, 2, 1, b.pointwise),
                    src_len: (area(s) * c) as u64,
                });
                cur = 1 - cur;
                s = half(s);
            } else {
                v.push(Stage {
                    kernel: Kernel::Pointwise,
                    src: Buf::Act(cur),
                    dst: Buf::Act(1 - cur),
                    p: mk(s, s, c, co, 0, 1, b.pointwise),
                    src_len: (area(s) * c) as u64,
                });
                cur = 1 - cur;
                let none = Layer { w_off: 0, b_off: 0 };
                v.push(Stage {
                    kernel: Kernel::Maxpool,
                    src: Buf::Act(cur),
                    dst: Buf::Act(1 - cur),
                    p: mk(s, s, co, co, 1, 0, none),
                    src_len: (area(s) * co) as u64,
                });
                cur = 1 - cur;
            }
        }
        let ci = self
            .blocks
            .last()
            .map_or(self.conv0_out, |b| 2 * b.channels);
        v.push(Stage {
            kernel: Kernel::Pointwise,
            src: Buf::Act(cur),
            dst: Buf::Head,
            p: mk(s, s, ci, self.head_out, 0, 0, self.head),
            src_len: (area(s) * ci) as u64,
        });
        v
    }
}

impl Stage {
    /// Output elements per invocation: the `4` kernels of the shader compute four channels.
    fn lanes(&self) -> u32 {
        match self.kernel {
            Kernel::Conv0 | Kernel::Depthwise => 4,
            Kernel::Pointwise if self.p.cout % 4 == 0 => 4,
            Kernel::Pointwise | Kernel::Maxpool => 1,
        }
    }
}

/// Bytes of `n` images of `floats` f32 each (at least 4: bindings cannot be empty).
fn bytes_of(n: usize, floats: u64) -> u64 {
    (n as u64 * floats * 4).max(4)
}

/// Per-image floats of each buffer: (input, largest activation, head).
fn buffer_floats(stages: &[Stage]) -> (u64, u64, u64) {
    let mut act = 0;
    let mut head = 0;
    let input = stages.first().map_or(0, |s| s.src_len);
    for s in stages {
        match s.dst {
            Buf::Act(_) => act = act.max(s.p.total as u64),
            Buf::Head => head = s.p.total as u64,
            Buf::Input => {}
        }
    }
    (input, act, head)
}

fn check_weights(w: &TinyFaceWeights) -> Result<()> {
    let bad = |what: String| Err(Error::invalid(format!("detector weights: {what}")));
    let co0 = w.conv0_bias.len();
    // The vec4 kernels need every channel count but the head's to be a multiple of 4.
    if co0 == 0 || co0 % 4 != 0 || w.conv0.len() != 27 * co0 {
        return bad(format!(
            "conv0 has {} values for {co0} outputs",
            w.conv0.len()
        ));
    }
    if w.blocks.len() > BLOCK_POOL_STRIDE.len() {
        return bad(format!("{} blocks", w.blocks.len()));
    }
    let mut c = co0;
    for (k, b) in w.blocks.iter().enumerate() {
        if b.channels != c
            || c % 4 != 0
            || b.depthwise.len() != 9 * c
            || b.pointwise.len() != 2 * c * c
            || b.bias.len() != 2 * c
        {
            return bad(format!("block {} does not match {c} input channels", k + 1));
        }
        c *= 2;
    }
    let ho = w.head_bias.len();
    if ho == 0 || w.head.len() != c * ho {
        return bad(format!("head has {} values for {c} x {ho}", w.head.len()));
    }
    Ok(())
}

impl GpuBackend {
    /// Uploads the detector's weights; returns the resident form and its bytes.
    pub(crate) fn upload_detector(&self, w: &TinyFaceWeights) -> Result<(GpuDetector, u64)> {
        self.dev.check_lost()?;
        check_weights(w)?;
        self.kernels(Shader::Detect)?;
        let mut pack = WeightPack::default();
        let mut put = |v: &[f32]| pack.put(v);
        let conv0 = Layer {
            w_off: put(&w.conv0)?,
            b_off: put(&w.conv0_bias)?,
        };
        let mut blocks = Vec::with_capacity(w.blocks.len());
        for (k, b) in w.blocks.iter().enumerate() {
            let dw = put(&b.depthwise)?;
            blocks.push(Block {
                channels: b.channels,
                stride: BLOCK_POOL_STRIDE[k],
                depthwise: Layer {
                    w_off: dw,
                    b_off: dw,
                },
                pointwise: Layer {
                    w_off: put(&b.pointwise)?,
                    b_off: put(&b.bias)?,
                },
            });
        }
        let head = Layer {
            w_off: put(&w.head)?,
            b_off: put(&w.head_bias)?,
        };
        let (weights, bytes) = pack.upload(self, "veridoc:detector-weights")?;
        Ok((
            GpuDetector {
                weights,
                conv0,
                conv0_out: w.conv0_bias.len(),
                blocks,
                head,
                head_out: w.head_bias.len(),
                bytes,
            },
            bytes,
        ))
    }

    /// Runs the detector on `inputs` (each `width x height x 3` HWC f32, the same size);
    /// returns each raw head.
    pub(crate) fn detect(
        &self,
        det: &GpuDetector,
        inputs: &[&[f32]],
        (width, height): (usize, usize),
    ) -> Result<Vec<Vec<f32>>> {
        if width == 0 || height == 0 || width % 32 != 0 || height % 32 != 0 {
            return Err(Error::invalid(format!(
                "detector input {width}x{height}: sides must be multiples of 32"
            )));
        }
        for x in inputs {
            if x.len() != width * height * 3 {
                return Err(Error::invalid(format!(
                    "detector input: {} values for {width}x{height} (need w*h*3)",
                    x.len()
                )));
            }
        }
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        self.dev.check_lost()?;
        let kernels = self.kernels(Shader::Detect)?;
        let stages = det.stages((width, height));
        let n = self.detect_chunk(&stages, inputs.len())?;
        let mut heads = Vec::with_capacity(inputs.len());
        for chunk in inputs.chunks(n) {
            heads.extend(self.detect_chunk_run(det, kernels, &stages, chunk)?);
        }
        Ok(heads)
    }

    /// Images per chunk: every binding under the adapter's limit, each activation buffer
    /// under [`CHUNK_ACT_BYTES`], and all the chunk's buffers (as rounded by the pool) within
    /// the budget.
    fn detect_chunk(&self, stages: &[Stage], count: usize) -> Result<usize> {
        let (input, act, head) = buffer_floats(stages);
        let widest = input.max(act).max(head);
        let max = self.dev.info.max_storage_binding;
        if bytes_of(1, widest) > max {
            return Err(GpuError::OverLimit(format!(
                "detector activations need a {} binding, adapter allows {}",
                crate::error::fmt_bytes(bytes_of(1, widest)),
                crate::error::fmt_bytes(max)
            ))
            .into());
        }
        let by_binding = (max / bytes_of(1, widest)) as usize;
        let by_chunk = (CHUNK_ACT_BYTES / bytes_of(1, act)).max(1) as usize;
        let mut n = count.min(by_binding).min(by_chunk).max(1);
        let total = |n: usize| {
            size_class(bytes_of(n, input))
                + 2 * size_class(bytes_of(n, act))
                + 2 * size_class(bytes_of(n, head))
                + size_class(self.params_stride() * stages.len() as u64)
        };
        let limit = self.pool.usage().limit;
        while n > 1 && total(n) > limit {
            n -= 1;
        }
        if total(n) > limit {
            return Err(LimitError::ExceedsBudget {
                what: crate::error::Resource::GpuMemory,
                requested: total(n),
                limit,
            }
            .into());
        }
        Ok(n)
    }

    fn params_stride(&self) -> u64 {
        let a = self.dev.device.limits().min_uniform_buffer_offset_alignment as u64;
        (DETECT_PARAMS_SIZE as u64).div_ceil(a.max(1)) * a.max(1)
    }

    /// Runs one chunk of images in one submission; returns their heads.
    fn detect_chunk_run(
        &self,
        det: &GpuDetector,
        k: &KernelSet,
        stages: &[Stage],
        inputs: &[&[f32]],
    ) -> Result<Vec<Vec<f32>>> {
        use wgpu::BufferUsages as U;
        let dev = &self.dev.device;
        let n = inputs.len();
        let (input_f, act_f, head_f) = buffer_floats(stages);
        let scopes = Scopes::push(dev);
        let get = |label: &str, bytes: u64, usage: U| -> Result<PooledBuffer> {
            self.pool.get(dev, label, bytes, usage, false)
        };
        let input = get(
            "veridoc:detect-input",
            bytes_of(n, input_f),
            U::STORAGE | U::COPY_DST,
        )?;
        let act = [
            get("veridoc:detect-act", bytes_of(n, act_f), U::STORAGE)?,
            get("veridoc:detect-act", bytes_of(n, act_f), U::STORAGE)?,
        ];
        let head = get(
            "veridoc:detect-head",
            bytes_of(n, head_f),
            U::STORAGE | U::COPY_SRC,
        )?;
        let down = get(
            "veridoc:detect-readback",
            bytes_of(n, head_f),
            U::MAP_READ | U::COPY_DST,
        )?;
        let stride = self.params_stride();
        let params = get(
            "veridoc:detect-params",
            stride * stages.len() as u64,
            U::UNIFORM | U::COPY_DST,
        )?;

        let q = &self.dev.queue;
        let in_bytes = input_f * 4;
        for (i, x) in inputs.iter().enumerate() {
            q.write_buffer(&input.buffer, i as u64 * in_bytes, bytemuck::cast_slice(x));
        }
        let mut grids = Vec::with_capacity(stages.len());
        let mut pbytes = vec![0u8; (stride * stages.len() as u64) as usize];
        for (i, s) in stages.iter().enumerate() {
            let mut p = s.p;
            let total = p.total as u64 * n as u64 / s.lanes() as u64;
            p.total = u32::try_from(total)
                .map_err(|_| GpuError::OverLimit(format!("{total} detector outputs")))?;
            let groups = p.total.div_ceil(WG).max(1);
            let gx = groups.min(self.dev.info.max_workgroups_per_dimension.max(1));
            p.row_words = gx * WG;
            grids.push((gx, groups.div_ceil(gx)));
            let o = i * stride as usize;
            pbytes[o..o + DETECT_PARAMS_SIZE as usize].copy_from_slice(bytemuck::bytes_of(&p));
        }
        q.write_buffer(&params.buffer, 0, &pbytes);

        let buffer = |b: Buf| match b {
            Buf::Input => &input.buffer,
            Buf::Act(i) => &act[i & 1].buffer,
            Buf::Head => &head.buffer,
        };
        let groups: Vec<wgpu::BindGroup> = stages
            .iter()
            .enumerate()
            .map(|(i, s)| {
                dev.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("veridoc:detect"),
                    layout: &k.layout,
                    entries: &[
                        bind_entry(
                            0,
                            &params.buffer,
                            i as u64 * stride,
                            DETECT_PARAMS_SIZE as u64,
                        ),
                        bind_entry(1, buffer(s.src), 0, bytes_of(n, s.src_len)),
                        bind_entry(2, buffer(s.dst), 0, bytes_of(n, s.p.total as u64)),
                        bind_entry(3, &det.weights, 0, det.bytes),
                        bind_entry(4, &det.weights, 0, det.bytes),
                    ],
                })
            })
            .collect();
        let mut enc = dev.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("veridoc:detect"),
        });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("veridoc:detect"),
                timestamp_writes: None,
            });
            for ((s, g), &(gx, gy)) in stages.iter().zip(&groups).zip(&grids) {
                pass.set_pipeline(
                    &k.pipelines[match s.kernel {
                        Kernel::Conv0 => 0,
                        Kernel::Depthwise => 1,
                        Kernel::Pointwise if s.lanes() == 4 => 3,
                        Kernel::Pointwise => 2,
                        Kernel::Maxpool => 4,
                    }],
                );
                pass.set_bind_group(0, g, &[]);
                pass.dispatch_workgroups(gx, gy, 1);
            }
        }
        let head_bytes = bytes_of(n, head_f);
        enc.copy_buffer_to_buffer(&head.buffer, 0, &down.buffer, 0, head_bytes);
        let heads = self.submit_and_read(
            enc,
            scopes,
            &down.buffer,
            head_bytes,
            (n, head_f as usize),
            "detector head",
        )?;
        for b in [input, head, down, params] {
            self.pool.recycle(b);
        }
        for b in act {
            self.pool.recycle(b);
        }
        Ok(heads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{SeparableWeights, BLOCK_CHANNELS};
    use crate::gpu::test_support::{backend, Rng};

    fn random_weights(seed: u64) -> TinyFaceWeights {
        let mut r = Rng(seed);
        let blocks = BLOCK_CHANNELS
            .iter()
            .map(|&c| SeparableWeights {
                channels: c,
                depthwise: r.vec(9 * c, 9),
                pointwise: r.vec(2 * c * c, c),
                bias: r.vec(2 * c, 4),
            })
            .collect();
        TinyFaceWeights {
            conv0: r.vec(27 * 16, 27),
            conv0_bias: r.vec(16, 4),
            blocks,
            head: r.vec(512 * 25, 512),
            head_bias: r.vec(25, 4),
        }
    }

    /// Largest |gpu - cpu| / (1 + |cpu|) over the heads of `n` random inputs of `size`.
    fn worst_error(gpu: &GpuBackend, w: &TinyFaceWeights, size: (usize, usize), n: usize) -> f32 {
        let mut r = Rng(0x5eed + (size.0 * 7 + size.1) as u64);
        let inputs: Vec<Vec<f32>> = (0..n).map(|_| r.vec(size.0 * size.1 * 3, 3)).collect();
        let refs: Vec<&[f32]> = inputs.iter().map(|v| &v[..]).collect();
        let (det, bytes) = gpu.upload_detector(w).expect("upload");
        // each layer padded to a vec4: at most 3 words of padding per tensor
        assert!(bytes >= w.bytes() && bytes < w.bytes() + 4 * 4 * 20);
        let t0 = std::time::Instant::now();
        let heads = gpu.detect(&det, &refs, size).expect("gpu detect");
        eprintln!(
            "gpu detect: {n} x {size:?} in {:.1?} ({:.1?} per image) on {}",
            t0.elapsed(),
            t0.elapsed() / n as u32,
            gpu.info().name
        );
        assert_eq!(heads.len(), n);
        let mut worst = 0f32;
        for (x, g) in inputs.iter().zip(&heads) {
            let c = crate::cpu::detect::forward(w, x, size).expect("cpu forward");
            assert_eq!(c.len(), g.len());
            for (a, b) in c.iter().zip(g) {
                let e = (a - b).abs() / (1.0 + a.abs());
                assert!(e.is_finite(), "cpu {a} gpu {b}");
                worst = worst.max(e);
            }
        }
        worst
    }

    /// Float rounding through seven layers (sums of up to 512 products, fused multiply-adds
    /// on the GPU) measured at ~1e-6 relative; 1e-4 leaves two orders of margin while any
    /// indexing or ordering bug gives errors of O(1).
    const TOLERANCE: f32 = 1e-4;

    #[test]
    fn heads_match_the_cpu_in_one_chunk() {
        let Some(gpu) = backend("heads_match_the_cpu_in_one_chunk", None) else {
            return;
        };
        let w = random_weights(7);
        for (size, n) in [
            ((64, 64), 5),
            ((416, 416), 9),
            ((96, 160), 3),
            ((224, 64), 2),
        ] {
            let e = worst_error(&gpu, &w, size, n);
            eprintln!("{size:?}: worst relative error {e:e}");
            assert!(e < TOLERANCE, "{size:?}: {e}");
        }
    }

    #[test]
    fn heads_match_the_cpu_across_chunks_under_a_small_budget() {
        // 20 MiB fits one 416x416 image's buffers (by size class: input 2, activations
        // 2 x 4, head and readback 2 x 1, params 1 = 13 MiB) but not two (4 + 2 x 8 + 2 + 1
        // = 23 MiB), so three images run as three chunks.
        let budget = 20 << 20;
        let Some(gpu) = backend("heads_match_the_cpu_across_chunks", Some(budget)) else {
            return;
        };
        let w = random_weights(11);
        let stages = {
            let (det, _) = gpu.upload_detector(&w).expect("upload");
            det.stages((416, 416))
        };
        assert_eq!(gpu.detect_chunk(&stages, 3).expect("chunk"), 1);
        let e = worst_error(&gpu, &w, (416, 416), 3);
        assert!(e < TOLERANCE, "{e}");
        assert!(gpu.memory().peak <= budget);
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        let Some(gpu) = backend("bad_inputs_are_errors_not_panics", None) else {
            return;
        };
        let w = random_weights(3);
        let (det, _) = gpu.upload_detector(&w).expect("upload");
        assert!(gpu.detect(&det, &[&[0.0; 10]], (416, 416)).is_err());
        assert!(gpu.detect(&det, &[&[0.0; 48]], (4, 4)).is_err());
        assert!(gpu.detect(&det, &[&[0.0; 96 * 64 * 3]], (64, 64)).is_err());
        assert!(gpu.detect(&det, &[], (416, 416)).expect("empty").is_empty());
        let mut broken = w.clone();
        broken.head.pop();
        assert!(gpu.upload_detector(&broken).is_err());
    }
}
