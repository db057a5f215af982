//! face-api's face-crop networks (68 landmarks, expression) on the GPU: WGSL kernels in
//! `shaders/landmarks.wgsl`, twin of `src/cpu/landmarks.rs`.
//!
//! ```text
//! upload_face_net: every filter and bias in one storage buffer (vec4-aligned offsets)
//! face_net: crops -> chunks of N (binding limit, 64 MiB activations, the budget)
//!   per chunk, one submission, one compute pass, one dispatch per layer for all N crops:
//!   input -conv_full-> X,S | X -dw-> T -pw-> X,S ... -avgpool-> T -fc-> out -> readback
//! ```
//! Three activation buffers (X: a block's input and the ReLU of its running sum, T: the
//! depthwise output, S: the running sum) come from the budgeted pool; the weights are
//! charged to the model cache's GPU tier.

use bytemuck::{Pod, Zeroable};

use super::alloc::{size_class, PooledBuffer};
use super::{bind_entry, GpuBackend, KernelSet, Scopes, Shader, WeightPack};
use crate::error::{Error, GpuError, LimitError, Result};
use crate::landmarks::{FaceNetWeights, FirstConv, SeparableConv, CROP_SIDE};

/// Invocations per workgroup (`@workgroup_size(64)` in the shader).
const WG: u32 = 64;

/// Upper bound for one activation buffer of a chunk (as the detector's: 64 MiB; a crop's
/// largest activation is 56 x 56 x 32 floats, 0.4 MB, so about 160 crops per chunk).
const CHUNK_ACT_BYTES: u64 = 64 << 20;

/// `NetParams` in `shaders/landmarks.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
struct NetParams {
    side: u32,
    out_side: u32,
    cin: u32,
    cout: u32,
    stride: u32,
    pad: u32,
    mode: u32,
    w_off: u32,
    b_off: u32,
    total: u32,
    row_words: u32,
    pad0: u32,
}

/// Size the WGSL `NetParams` must have (checked by `tests/shaders.rs`).
pub const NET_PARAMS_SIZE: u32 = 48;
const _: () = assert!(std::mem::size_of::<NetParams>() == NET_PARAMS_SIZE as usize);

/// The entry points, in the order the host indexes them (`Kernel`).
pub const NET_ENTRY_POINTS: [&str; 5] = [
    "conv_full",
    "depthwise4",
    "pointwise4",
    "pointwise",
    "avgpool",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    ConvFull,
    Depthwise,
    Pointwise4,
    Pointwise,
    AvgPool,
}

/// Which buffer a layer reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Buf {
    Input,
    X,
    T,
    Out,
}

/// One dispatch: kernel, buffers and parameters for one crop (`total`: output elements
/// per crop).
#[derive(Debug, Clone, Copy)]
struct Stage {
    kernel: Kernel,
    src: Buf,
    dst: Buf,
    p: NetParams,
    src_len: u64,
}

/// A face-crop network's weights resident on the GPU, and its layers.
#[derive(Debug)]
pub struct GpuFaceNet {
    weights: wgpu::Buffer,
    stages: Vec<Stage>,
    bytes: u64,
    outputs: usize,
}

/// TF `SAME` padding before the data for a 3x3 window (the CPU twin's rule).
fn pad_before(side: usize, stride: usize) -> u32 {
    let out = side.div_ceil(stride);
    (((out - 1) * stride + 3).saturating_sub(side) / 2) as u32
}

fn params(side: usize, out_side: usize, cin: usize, cout: usize, stride: usize) -> NetParams {
    NetParams {
        side: side as u32,
        out_side: out_side as u32,
        cin: cin as u32,
        cout: cout as u32,
        stride: stride as u32,
        pad: pad_before(side, stride),
        total: (out_side * out_side * cout) as u32,
        ..Default::default()
    }
}

fn check_weights(w: &FaceNetWeights) -> Result<()> {
    let bad = |what: String| Err(Error::invalid(format!("{}: {what}", w.name)));
    for (k, b) in w.blocks.iter().enumerate() {
        let c = b.first.cout();
        if c % 4 != 0 || b.first.cin() % 4 != 0 && k > 0 {
            return bad(format!(
                "block {k} has {c} channels (the GPU kernels need multiples of 4)"
            ));
        }
    }
    if w.outputs() == 0 || w.fc.len() != w.features() * w.outputs() {
        return bad("fully connected layer does not match".into());
    }
    Ok(())
}

impl GpuBackend {
    /// Uploads a face-crop network's weights; returns the resident form and its bytes.
    pub(crate) fn upload_face_net(&self, w: &FaceNetWeights) -> Result<(GpuFaceNet, u64)> {
        self.dev.check_lost()?;
        check_weights(w)?;
        self.kernels(Shader::Landmarks)?;
        let mut pack = WeightPack::default();
        let mut put = |v: &[f32]| pack.put(v);
        let mut stages = Vec::new();
        let mut s = CROP_SIDE as usize;
        let sep = |stages: &mut Vec<Stage>,
                   put: &mut dyn FnMut(&[f32]) -> Result<u32>,
                   c: &SeparableConv,
                   s: usize,
                   mode: u32|
         -> Result<usize> {
            let os = s.div_ceil(c.stride);
            let mut dw = params(s, os, c.cin, c.cin, c.stride);
            dw.w_off = put(&c.depthwise)?;
            stages.push(Stage {
                kernel: Kernel::Depthwise,
                src: Buf::X,
                dst: Buf::T,
                p: dw,
                src_len: (s * s * c.cin) as u64,
            });
            let mut pw = params(os, os, c.cin, c.cout, 1);
            pw.pad = 0;
            pw.w_off = put(&c.pointwise)?;
            pw.b_off = put(&c.bias)?;
            pw.mode = mode;
            stages.push(Stage {
                kernel: Kernel::Pointwise4,
                src: Buf::T,
                dst: Buf::X,
                p: pw,
                src_len: (os * os * c.cin) as u64,
            });
            Ok(os)
        };
        for b in &w.blocks {
            match &b.first {
                FirstConv::Full {
                    cin,
                    cout,
                    filters,
                    bias,
                } => {
                    let os = s.div_ceil(2);
                    let mut p = params(s, os, *cin, *cout, 2);
                    p.w_off = put(filters)?;
                    p.b_off = put(bias)?;
                    stages.push(Stage {
                        kernel: Kernel::ConvFull,
                        src: Buf::Input,
                        dst: Buf::X,
                        p,
                        src_len: (s * s * cin) as u64,
                    });
                    s = os;
                }
                FirstConv::Separable(c) => s = sep(&mut stages, &mut put, c, s, 0)?,
            }
            for c in &b.rest {
                s = sep(&mut stages, &mut put, c, s, 1)?;
            }
        }
        let c = w.features();
        let mut pool = params(s, 1, c, c, 1);
        pool.pad = 0;
        stages.push(Stage {
            kernel: Kernel::AvgPool,
            src: Buf::X,
            dst: Buf::T,
            p: pool,
            src_len: (s * s * c) as u64,
        });
        let mut fc = params(1, 1, c, w.outputs(), 1);
        fc.pad = 0;
        fc.w_off = put(&w.fc)?;
        fc.b_off = put(&w.fc_bias)?;
        fc.mode = 2;
        stages.push(Stage {
            kernel: if w.outputs() % 4 == 0 {
                Kernel::Pointwise4
            } else {
                Kernel::Pointwise
            },
            src: Buf::T,
            dst: Buf::Out,
            p: fc,
            src_len: c as u64,
        });
        let (weights, bytes) = pack.upload(self, "veridoc:face-net-weights")?;
        Ok((
            GpuFaceNet {
                weights,
                stages,
                bytes,
                outputs: w.outputs(),
            },
            bytes,
        ))
    }

    /// Runs a resident face-crop network on `crops` (each 112 x 112 x 3 HWC f32,
    /// normalized); returns each crop's raw outputs.
    pub(crate) fn face_net(&self, net: &GpuFaceNet, crops: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        let side = CROP_SIDE as usize;
        for x in crops {
            if x.len() != side * side * 3 {
                return Err(Error::invalid(format!(
                    "face crop: {} values (need 112 * 112 * 3)",
                    x.len()
                )));
            }
        }
        if crops.is_empty() {
            return Ok(Vec::new());
        }
        self.dev.check_lost()?;
        let kernels = self.kernels(Shader::Landmarks)?;
        let n = self.net_chunk(net, crops.len())?;
        let mut out = Vec::with_capacity(crops.len());
        for chunk in crops.chunks(n) {
            out.extend(self.net_chunk_run(net, kernels, chunk)?);
        }
        Ok(out)
    }

    /// Floats per crop of the largest activation (X, T and S are all this size).
    fn net_act_floats(net: &GpuFaceNet) -> u64 {
        net.stages
            .iter()
            .map(|s| s.p.total as u64)
            .chain(net.stages.iter().map(|s| s.src_len))
            .max()
            .unwrap_or(4)
    }

    fn net_params_stride(&self) -> u64 {
        let a = self.dev.device.limits().min_uniform_buffer_offset_alignment as u64;
        (NET_PARAMS_SIZE as u64).div_ceil(a.max(1)) * a.max(1)
    }

    /// Crops per chunk: every binding under the adapter's limit, each activation buffer
    /// under [`CHUNK_ACT_BYTES`], all the chunk's buffers within the budget.
    fn net_chunk(&self, net: &GpuFaceNet, count: usize) -> Result<usize> {
        let act = Self::net_act_floats(net) * 4;
        let input = (CROP_SIDE as u64).pow(2) * 3 * 4;
        let out = net.outputs as u64 * 4;
        let max = self.dev.info.max_storage_binding;
        if act > max {
            return Err(GpuError::OverLimit(format!(
                "face-net activations need a {} binding, adapter allows {}",
                crate::error::fmt_bytes(act),
                crate::error::fmt_bytes(max)
            ))
            .into());
        }
        let by_binding = (max / act.max(input)) as usize;
        let by_chunk = (CHUNK_ACT_BYTES / act).max(1) as usize;
        let mut n = count.min(by_binding).min(by_chunk).max(1);
        let total = |n: usize| {
            let n = n as u64;
            size_class(n * input)
                + 3 * size_class(n * act)
                + 2 * size_class((n * out).max(4))
                + size_class(self.net_params_stride() * net.stages.len() as u64)
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

    fn net_chunk_run(
        &self,
        net: &GpuFaceNet,
        k: &KernelSet,
        crops: &[&[f32]],
    ) -> Result<Vec<Vec<f32>>> {
        use wgpu::BufferUsages as U;
        let dev = &self.dev.device;
        let n = crops.len();
        let act = Self::net_act_floats(net) * 4 * n as u64;
        let in_bytes = (CROP_SIDE as u64).pow(2) * 3 * 4;
        let out_bytes = (net.outputs as u64 * 4 * n as u64).max(4);
        let scopes = Scopes::push(dev);
        let get = |label: &str, bytes: u64, usage: U| -> Result<PooledBuffer> {
            self.pool.get(dev, label, bytes, usage, false)
        };
        let input = get(
            "veridoc:net-input",
            in_bytes * n as u64,
            U::STORAGE | U::COPY_DST,
        )?;
        let x = get("veridoc:net-x", act, U::STORAGE)?;
        let t = get("veridoc:net-t", act, U::STORAGE)?;
        let s = get("veridoc:net-sum", act, U::STORAGE)?;
        let out = get("veridoc:net-out", out_bytes, U::STORAGE | U::COPY_SRC)?;
        let down = get("veridoc:net-readback", out_bytes, U::MAP_READ | U::COPY_DST)?;
        let stride = self.net_params_stride();
        let pbuf = get(
            "veridoc:net-params",
            stride * net.stages.len() as u64,
            U::UNIFORM | U::COPY_DST,
        )?;
        let q = &self.dev.queue;
        for (i, c) in crops.iter().enumerate() {
            q.write_buffer(&input.buffer, i as u64 * in_bytes, bytemuck::cast_slice(c));
        }
        let lanes = |st: &Stage| match st.kernel {
            Kernel::ConvFull | Kernel::Depthwise | Kernel::Pointwise4 => 4,
            Kernel::Pointwise | Kernel::AvgPool => 1,
        };
        let mut grids = Vec::with_capacity(net.stages.len());
        let mut pbytes = vec![0u8; (stride * net.stages.len() as u64) as usize];
        for (i, st) in net.stages.iter().enumerate() {
            let mut p = st.p;
            let total = p.total as u64 * n as u64 / lanes(st);
            p.total = u32::try_from(total)
                .map_err(|_| GpuError::OverLimit(format!("{total} face-net outputs")))?;
            let groups = p.total.div_ceil(WG).max(1);
            let gx = groups.min(self.dev.info.max_workgroups_per_dimension.max(1));
            p.row_words = gx * WG;
            grids.push((gx, groups.div_ceil(gx)));
            let o = i * stride as usize;
            pbytes[o..o + NET_PARAMS_SIZE as usize].copy_from_slice(bytemuck::bytes_of(&p));
        }
        q.write_buffer(&pbuf.buffer, 0, &pbytes);
        let buffer = |b: Buf| match b {
            Buf::Input => &input.buffer,
            Buf::X => &x.buffer,
            Buf::T => &t.buffer,
            Buf::Out => &out.buffer,
        };
        let len = |b: Buf| match b {
            Buf::Input => in_bytes * n as u64,
            Buf::X | Buf::T => act,
            Buf::Out => out_bytes,
        };
        let groups: Vec<wgpu::BindGroup> = net
            .stages
            .iter()
            .enumerate()
            .map(|(i, st)| {
                dev.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("veridoc:face-net"),
                    layout: &k.layout,
                    entries: &[
                        bind_entry(0, &pbuf.buffer, i as u64 * stride, NET_PARAMS_SIZE as u64),
                        bind_entry(1, buffer(st.src), 0, len(st.src)),
                        bind_entry(2, buffer(st.dst), 0, len(st.dst)),
                        bind_entry(3, &net.weights, 0, net.bytes),
                        bind_entry(4, &net.weights, 0, net.bytes),
                        bind_entry(5, &s.buffer, 0, act),
                    ],
                })
            })
            .collect();
        let mut enc = dev.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("veridoc:face-net"),
        });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("veridoc:face-net"),
                timestamp_writes: None,
            });
            for ((st, g), &(gx, gy)) in net.stages.iter().zip(&groups).zip(&grids) {
                let kernel = match st.kernel {
                    Kernel::ConvFull => 0,
                    Kernel::Depthwise => 1,
                    Kernel::Pointwise4 => 2,
                    Kernel::Pointwise => 3,
                    Kernel::AvgPool => 4,
                };
                pass.set_pipeline(&k.pipelines[kernel]);
                pass.set_bind_group(0, g, &[]);
                pass.dispatch_workgroups(gx, gy, 1);
            }
        }
        enc.copy_buffer_to_buffer(&out.buffer, 0, &down.buffer, 0, out_bytes);
        let res = self.submit_and_read(
            enc,
            scopes,
            &down.buffer,
            out_bytes,
            (n, net.outputs),
            "face-net output",
        )?;
        for b in [input, x, t, s, out, down, pbuf] {
            self.pool.recycle(b);
        }
        Ok(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::test_support::{backend, Rng};
    use crate::landmarks::DenseBlock;

    /// face-api's architecture (four dense blocks of four convs, 32..256 channels) with
    /// random weights, and `outputs` values out.
    fn random_net(seed: u64, outputs: usize, blocks: usize, convs: usize) -> FaceNetWeights {
        let mut r = Rng(seed);
        let mut c = 3;
        let mut bl = Vec::new();
        for k in 0..blocks {
            let co = 32 << k;
            let first = if k == 0 {
                FirstConv::Full {
                    cin: 3,
                    cout: co,
                    filters: r.vec(27 * co, 27),
                    bias: r.vec(co, 4),
                }
            } else {
                FirstConv::Separable(SeparableConv {
                    cin: c,
                    cout: co,
                    stride: 2,
                    depthwise: r.vec(9 * c, 9),
                    pointwise: r.vec(c * co, c),
                    bias: r.vec(co, 4),
                })
            };
            let rest = (1..convs)
                .map(|_| SeparableConv {
                    cin: co,
                    cout: co,
                    stride: 1,
                    depthwise: r.vec(9 * co, 9),
                    pointwise: r.vec(co * co, co),
                    bias: r.vec(co, 4),
                })
                .collect();
            bl.push(DenseBlock { first, rest });
            c = co;
        }
        FaceNetWeights {
            name: "random".into(),
            blocks: bl,
            fc: r.vec(c * outputs, c),
            fc_bias: r.vec(outputs, 4),
        }
    }

    /// Float rounding through 18 layers (sums of up to 256 products; fused multiply-adds
    /// on the GPU), as the detector's parity tolerance.
    const TOLERANCE: f32 = 1e-4;

    fn worst(gpu: &GpuBackend, w: &FaceNetWeights, n: usize) -> f32 {
        let mut r = Rng(0xface);
        let crops: Vec<Vec<f32>> = (0..n).map(|_| r.vec(112 * 112 * 3, 3)).collect();
        let refs: Vec<&[f32]> = crops.iter().map(|v| &v[..]).collect();
        let (net, bytes) = gpu.upload_face_net(w).expect("upload");
        assert!(bytes >= w.bytes());
        let t0 = std::time::Instant::now();
        let outs = gpu.face_net(&net, &refs).expect("gpu face net");
        eprintln!(
            "gpu face net: {n} crops in {:.1?} on {}",
            t0.elapsed(),
            gpu.info().name
        );
        assert_eq!(outs.len(), n);
        let mut e = 0f32;
        for (x, g) in crops.iter().zip(&outs) {
            let c = crate::cpu::landmarks::forward(w, x).expect("cpu");
            assert_eq!(c.len(), g.len());
            for (a, b) in c.iter().zip(g) {
                let d = (a - b).abs() / (1.0 + a.abs());
                assert!(d.is_finite(), "cpu {a} gpu {b}");
                e = e.max(d);
            }
        }
        e
    }

    #[test]
    fn outputs_match_the_cpu() {
        let Some(gpu) = backend("face_net_outputs_match_the_cpu", None) else {
            return;
        };
        // the landmark net's shape, the expression net's (7 outputs: the scalar fc kernel)
        // and the tiny landmark net's (three blocks of three convs)
        for (w, n) in [
            (random_net(5, 136, 4, 4), 3),
            (random_net(6, 7, 4, 4), 2),
            (random_net(7, 136, 3, 3), 2),
        ] {
            let e = worst(&gpu, &w, n);
            eprintln!("{} outputs: worst relative error {e:e}", w.outputs());
            assert!(e < TOLERANCE, "{e}");
        }
    }

    #[test]
    fn chunks_under_a_small_budget_and_bad_inputs_are_errors() {
        // by size class (1 MiB minimum): one or two crops need input 1 + activations 3 x 1
        // + output and readback 2 x 1 + params 1 = 7 MiB; three need 1 + 3 x 2 + 2 + 1 =
        // 10 MiB; so 8 MiB runs three crops as two chunks
        let budget = 8 << 20;
        let Some(gpu) = backend("face_net_chunks_under_a_small_budget", Some(budget)) else {
            return;
        };
        let w = random_net(8, 136, 4, 4);
        let (net, _) = gpu.upload_face_net(&w).expect("upload");
        assert_eq!(gpu.net_chunk(&net, 3).expect("chunk"), 2);
        let e = worst(&gpu, &w, 3);
        assert!(e < TOLERANCE, "{e}");
        assert!(gpu.memory().peak <= budget);
        assert!(gpu.face_net(&net, &[&[0.0; 10]]).is_err());
        assert!(gpu.face_net(&net, &[]).expect("empty").is_empty());
    }
}
