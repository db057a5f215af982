//! Running a batch on the GPU: layout, upload, dispatch, readback, pipelined by chunk.
//!
//! ```text
//! jobs -> chunks (each fits the chunk size, the binding limits and the budget)
//! per chunk, alternating between two slots so the CPU fills chunk k+1 while the GPU runs
//! chunk k and the CPU copies chunk k-1 out:
//!   fill the mapped upload buffer in parallel (params, coefficients, packed RGB pixels)
//!   -> copy to the device buffer -> resize.wgsl (vertical) + convert.wgsl (horizontal +
//!   output) per image, inside one timed compute pass -> copy to the readback buffer
//!   -> map both (readback for reading, upload for the next fill) -> copy out in parallel
//! ```
//! Every buffer comes from the budgeted pool (`alloc.rs`); validation and out-of-memory
//! errors are caught with error scopes and become typed errors.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::alloc::PooledBuffer;
use super::info::GpuTimings;
use super::params::{ConvertParams, ResizeParams};
use super::{bind_entry, GpuBackend, KernelSet, Scopes, Shader};
use crate::error::{Error, GpuError, Result};
use crate::frame::Frame;
use crate::plan::{source_channels, ImagePlan, ValueLut};
use crate::resample::{Arithmetic, AxisWeights};
use crate::spec::{ChannelOrder, DType, Layout, Pipeline};
use crate::tensor::{Tensor, TensorData};

/// Target bytes of one chunk's device buffer. docs/gpu-notes.md (H200): a ring of 64 MiB staging
/// buffers reached 31 GB/s upload, the best measured without mappable primary buffers.
const CHUNK_BYTES: u64 = 64 << 20;
/// Output words per convert workgroup (`@workgroup_size(256)`).
const CONVERT_WG: u32 = 256;
/// Tile of the resize kernel (`@workgroup_size(16, 16)`).
const RESIZE_WG: u32 = 16;
/// Words of the value table: f32 bits for 3 x 256 values, then f16 bits for 3 x 256.
const LUT_WORDS: u64 = 1536;

struct Placed<'a> {
    job: usize,
    frame: &'a Frame,
    plan: &'a ImagePlan,
    /// Offsets inside the chunk's data buffer.
    rp: u64,
    cp: u64,
    vc: u64,
    vc_len: u64,
    hc: u64,
    hc_len: u64,
    img: u64,
    img_len: u64,
    /// Offset and length inside the intermediate buffer.
    tmp: u64,
    tmp_len: u64,
    /// Offset and length (bytes, 4-aligned) inside the output buffer.
    out: u64,
    out_len: u64,
    /// Exact output bytes of the tensor.
    out_bytes: u64,
    words: u32,
}

struct Chunk<'a> {
    items: Vec<Placed<'a>>,
    data_len: u64,
    tmp_len: u64,
    out_len: u64,
}

fn align(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

fn coeff_words(w: &AxisWeights, arith: Arithmetic) -> Vec<u32> {
    let n = w.len();
    let mut v = Vec::with_capacity(2 * n + n * w.window);
    v.extend_from_slice(&w.starts);
    v.extend_from_slice(&w.sizes);
    match arith {
        Arithmetic::Fixed8 => v.extend(w.fixed.iter().map(|&k| k as i32 as u32)),
        Arithmetic::Float32 => v.extend(w.float.iter().map(|f| f.to_bits())),
    }
    v
}

/// The value table as uploaded: f32 bits then f16 bits, 3 x 256 each (gray uses row 0).
fn lut_words(lut: &ValueLut) -> Vec<u32> {
    let mut v = vec![0u32; LUT_WORDS as usize];
    for (c, row) in lut.f32.iter().enumerate() {
        for (i, x) in row.iter().enumerate() {
            v[c * 256 + i] = x.to_bits();
        }
    }
    for (c, row) in lut.f16.iter().enumerate() {
        for (i, x) in row.iter().enumerate() {
            v[768 + c * 256 + i] = x.to_bits() as u32;
        }
    }
    v
}

fn tmp_bytes(plan: &ImagePlan) -> u64 {
    let px = plan.coeffs.column_count as u64 * plan.coeffs.vertical.len() as u64;
    match plan.coeffs.arithmetic {
        Arithmetic::Fixed8 => px * 4,
        Arithmetic::Float32 => px * 12,
    }
}

impl GpuBackend {
    fn alignment(&self) -> u64 {
        let l = self.dev.device.limits();
        (l.min_storage_buffer_offset_alignment as u64)
            .max(l.min_uniform_buffer_offset_alignment as u64)
            .max(wgpu::MAP_ALIGNMENT)
            .max(4)
    }

    /// Checks one image against the binding limits and the budget.
    pub(crate) fn check_item(&self, frame: &Frame, plan: &ImagePlan) -> Result<()> {
        let max = self.dev.info.max_storage_binding;
        let img = frame.byte_len() as u64;
        let tmp = tmp_bytes(plan);
        let out = plan.out_bytes() as u64;
        let need = img.max(tmp).max(out);
        if need > max {
            return Err(GpuError::OverLimit(format!(
                "image needs a {} binding, adapter allows {}",
                crate::error::fmt_bytes(need),
                crate::error::fmt_bytes(max)
            ))
            .into());
        }
        // data (upload + device) + tmp + out (device + readback), one slot
        self.pool.check_fits(2 * img + tmp + 2 * out)
    }

    fn plan_chunks<'a>(&self, jobs: &[(usize, &'a Frame, &'a ImagePlan)]) -> Vec<Chunk<'a>> {
        let a = self.alignment();
        let cap = CHUNK_BYTES.min(self.dev.info.max_buffer_size);
        let mut chunks = Vec::new();
        let new_chunk = || Chunk {
            items: Vec::new(),
            data_len: align(LUT_WORDS * 4, a),
            tmp_len: 0,
            out_len: 0,
        };
        let mut cur = new_chunk();
        for &(job, frame, plan) in jobs {
            let vc_len = coeff_len(&plan.coeffs.vertical);
            let hc_len = coeff_len(&plan.coeffs.horizontal);
            let img_len = align(frame.byte_len() as u64, 4);
            let region = align(32, a)
                + align(128, a)
                + align(vc_len, a)
                + align(hc_len, a)
                + align(img_len, a);
            let tmp_len = tmp_bytes(plan).max(4);
            let out_bytes = plan.out_bytes() as u64;
            let out_len = align(out_bytes, 4).max(4);
            let grow = |c: &Chunk<'_>| {
                c.data_len + region > cap
                    || c.tmp_len + align(tmp_len, a) > cap
                    || c.out_len + align(out_len, a) > cap
            };
            if !cur.items.is_empty() && grow(&cur) {
                chunks.push(std::mem::replace(&mut cur, new_chunk()));
            }
            let base = cur.data_len;
            let rp = base;
            let cp = rp + align(32, a);
            let vc = cp + align(128, a);
            let hc = vc + align(vc_len, a);
            let img = hc + align(hc_len, a);
            cur.data_len = img + align(img_len, a);
            let tmp = cur.tmp_len;
            cur.tmp_len += align(tmp_len, a);
            let out = cur.out_len;
            cur.out_len += align(out_len, a);
            cur.items.push(Placed {
                job,
                frame,
                plan,
                rp,
                cp,
                vc,
                vc_len,
                hc,
                hc_len,
                img,
                img_len,
                tmp,
                tmp_len,
                out,
                out_len,
                out_bytes,
                words: (out_len / 4) as u32,
            });
        }
        if !cur.items.is_empty() {
            chunks.push(cur);
        }
        chunks
    }

    /// Runs the jobs `(index, frame, plan)`; returns `(index, tensor)` pairs and timings.
    /// A failure here concerns the whole batch (device lost, out of memory, validation).
    pub(crate) fn run_jobs(
        &self,
        jobs: &[(usize, &Frame, &ImagePlan)],
        p: &Pipeline,
        lut: &ValueLut,
    ) -> Result<(Vec<(usize, Tensor)>, GpuTimings)> {
        self.dev.check_lost()?;
        let mut timings = GpuTimings::default();
        let chunks = self.plan_chunks(jobs);
        let lut = lut_words(lut);
        let mut results = Vec::with_capacity(jobs.len());
        // Two chunks in flight: the GPU runs one while the CPU fills or drains the other.
        let mut queue: std::collections::VecDeque<InFlight<'_>> = Default::default();
        let mut spare: Vec<PooledBuffer> = Vec::new();
        for chunk in chunks {
            if queue.len() >= 2 {
                if let Some(f) = queue.pop_front() {
                    spare.extend(self.finish(f, p, &mut results, &mut timings)?);
                }
            }
            let bufs = std::mem::take(&mut spare);
            queue.push_back(self.submit(chunk, bufs, &lut, p, &mut timings)?);
        }
        while let Some(f) = queue.pop_front() {
            spare.extend(self.finish(f, p, &mut results, &mut timings)?);
        }
        for b in spare {
            self.pool.recycle(b);
        }
        Ok((results, timings))
    }

    fn buffer(
        &self,
        spare: &mut Vec<PooledBuffer>,
        label: &str,
        size: u64,
        usage: wgpu::BufferUsages,
        mapped: bool,
    ) -> Result<PooledBuffer> {
        if let Some(i) = spare
            .iter()
            .position(|b| b.buffer.usage() == usage && b.buffer.size() >= size)
        {
            return Ok(spare.swap_remove(i));
        }
        self.pool.get(&self.dev.device, label, size, usage, mapped)
    }

    fn submit<'a>(
        &self,
        chunk: Chunk<'a>,
        mut spare: Vec<PooledBuffer>,
        lut: &[u32],
        p: &Pipeline,
        timings: &mut GpuTimings,
    ) -> Result<InFlight<'a>> {
        use wgpu::BufferUsages as U;
        let dev = &self.dev.device;
        let t0 = Instant::now();
        let scopes = Scopes::push(dev);
        // The upload buffer stays mapped between uses (re-mapped after each submission).
        let up = match spare.iter().position(|b| {
            b.buffer.usage() == (U::MAP_WRITE | U::COPY_SRC) && b.buffer.size() >= chunk.data_len
        }) {
            Some(i) => spare.swap_remove(i),
            None => self.pool.get(
                dev,
                "veridoc:upload",
                chunk.data_len,
                U::MAP_WRITE | U::COPY_SRC,
                true,
            )?,
        };
        let data = self.buffer(
            &mut spare,
            "veridoc:data",
            chunk.data_len,
            U::STORAGE | U::UNIFORM | U::COPY_DST,
            false,
        )?;
        let tmp = self.buffer(
            &mut spare,
            "veridoc:intermediate",
            chunk.tmp_len.max(4),
            U::STORAGE,
            false,
        )?;
        let out = self.buffer(
            &mut spare,
            "veridoc:output",
            chunk.out_len.max(4),
            U::STORAGE | U::COPY_SRC,
            false,
        )?;
        let ts_bytes = if self.dev.info.timestamps { 256 } else { 0 };
        let down = self.buffer(
            &mut spare,
            "veridoc:readback",
            chunk.out_len.max(4) + ts_bytes,
            U::MAP_READ | U::COPY_DST,
            false,
        )?;
        // Anything left in spare is too small for this chunk: give it back.
        for b in spare {
            self.pool.recycle(b);
        }
        self.fill(&up.buffer, &chunk, lut, p)?;
        up.buffer.unmap();
        timings.upload += t0.elapsed();
        timings.bytes_up += chunk.data_len;

        let mut enc = dev.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("veridoc:chunk"),
        });
        enc.copy_buffer_to_buffer(&up.buffer, 0, &data.buffer, 0, chunk.data_len);
        let resize = self.kernels(Shader::Resize)?;
        let convert = self.kernels(Shader::Convert)?;
        let rgroups: Vec<wgpu::BindGroup> = chunk
            .items
            .iter()
            .map(|it| self.resize_group(resize, it, &data.buffer, &tmp.buffer))
            .collect();
        let cgroups: Vec<wgpu::BindGroup> = chunk
            .items
            .iter()
            .map(|it| self.convert_group(convert, it, &data.buffer, &tmp.buffer, &out.buffer))
            .collect();
        let queries = self.dev.info.timestamps.then(|| {
            dev.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("veridoc:timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            })
        });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("veridoc:preprocess"),
                timestamp_writes: queries.as_ref().map(|q| wgpu::ComputePassTimestampWrites {
                    query_set: q,
                    beginning_of_pass_write_index: Some(0),
                    end_of_pass_write_index: Some(1),
                }),
            });
            for (it, (rg, cg)) in chunk.items.iter().zip(rgroups.iter().zip(&cgroups)) {
                let c = &it.plan.coeffs;
                pass.set_pipeline(&resize.pipelines[0]);
                pass.set_bind_group(0, rg, &[]);
                pass.dispatch_workgroups(
                    c.column_count.div_ceil(RESIZE_WG).max(1),
                    (c.vertical.len() as u32).div_ceil(RESIZE_WG).max(1),
                    1,
                );
                let (gx, gy) = self.convert_grid(it.words);
                pass.set_pipeline(&convert.pipelines[0]);
                pass.set_bind_group(0, cg, &[]);
                pass.dispatch_workgroups(gx, gy, 1);
            }
        }
        enc.copy_buffer_to_buffer(&out.buffer, 0, &down.buffer, 0, chunk.out_len.max(4));
        let resolve = match &queries {
            Some(q) => {
                let r = self.buffer(
                    &mut Vec::new(),
                    "veridoc:timestamps",
                    256,
                    U::QUERY_RESOLVE | U::COPY_SRC,
                    false,
                )?;
                enc.resolve_query_set(q, 0..2, &r.buffer, 0);
                enc.copy_buffer_to_buffer(&r.buffer, 0, &down.buffer, chunk.out_len.max(4), 16);
                Some(r)
            }
            None => None,
        };
        let index = self.dev.queue.submit([enc.finish()]);
        scopes.pop()?;
        let (tx, rx) = mpsc::channel();
        let tx2 = tx.clone();
        down.buffer
            .slice(..)
            .map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(("readback", r));
            });
        up.buffer
            .slice(..)
            .map_async(wgpu::MapMode::Write, move |r| {
                let _ = tx2.send(("upload", r));
            });
        timings.chunks += 1;
        Ok(InFlight {
            chunk,
            index,
            maps: rx,
            buffers: vec![up, data, tmp, out, down],
            resolve,
            submitted: Instant::now(),
        })
    }

    /// Waits for a chunk, copies its outputs into tensors, returns its buffers for reuse.
    fn finish(
        &self,
        f: InFlight<'_>,
        p: &Pipeline,
        results: &mut Vec<(usize, Tensor)>,
        timings: &mut GpuTimings,
    ) -> Result<Vec<PooledBuffer>> {
        let dev = &self.dev.device;
        dev.poll(wgpu::PollType::Wait {
            submission_index: Some(f.index.clone()),
            timeout: None,
        })
        .map_err(|e| GpuError::DeviceLost(e.to_string()))?;
        self.dev.check_lost()?;
        for _ in 0..2 {
            match f.maps.recv() {
                Ok((_, Ok(()))) => {}
                Ok((what, Err(e))) => {
                    return Err(GpuError::BufferMap(format!("{what}: {e}")).into())
                }
                Err(_) => return Err(GpuError::BufferMap("map callback dropped".into()).into()),
            }
        }
        timings.wait += f.submitted.elapsed();
        let t = Instant::now();
        let down = &f.buffers[4].buffer;
        {
            let view = down
                .slice(..)
                .get_mapped_range()
                .map_err(|e| GpuError::BufferMap(e.to_string()))?;
            let bytes: &[u8] = &view;
            let tensors: Vec<Result<(usize, Tensor)>> = f
                .chunk
                .items
                .par_iter()
                .map(|it| {
                    let src = &bytes[it.out as usize..(it.out + it.out_bytes) as usize];
                    let mut data = TensorData::zeros(p.dtype, it.plan.out_len());
                    data.as_bytes_mut().copy_from_slice(src);
                    let (w, h) = (
                        it.plan.geometry.out.0 as usize,
                        it.plan.geometry.out.1 as usize,
                    );
                    let c = it.plan.channels;
                    let shape = match p.layout {
                        Layout::Nchw => vec![c, h, w],
                        Layout::Nhwc => vec![h, w, c],
                    };
                    Ok((it.job, Tensor::new(shape, p.layout, data)?))
                })
                .collect();
            for t in tensors {
                results.push(t?);
            }
            timings.bytes_down += f.chunk.out_len;
            if self.dev.info.timestamps {
                let o = f.chunk.out_len.max(4) as usize;
                let ts: [u64; 2] = [
                    u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap_or([0; 8])),
                    u64::from_le_bytes(bytes[o + 8..o + 16].try_into().unwrap_or([0; 8])),
                ];
                let ns = ts[1].saturating_sub(ts[0]) as f64
                    * self.dev.queue.get_timestamp_period() as f64;
                timings.kernel += Duration::from_nanos(ns as u64);
            }
        }
        down.unmap();
        timings.readback += t.elapsed();
        if let Some(r) = f.resolve {
            self.pool.recycle(r);
        }
        Ok(f.buffers)
    }

    fn convert_grid(&self, words: u32) -> (u32, u32) {
        let groups = words.div_ceil(CONVERT_WG).max(1);
        let gx = groups.min(self.dev.info.max_workgroups_per_dimension.max(1));
        (gx, groups.div_ceil(gx))
    }

    /// Writes params, coefficients, value table and pixels into the mapped upload buffer,
    /// image regions in parallel.
    fn fill(&self, up: &wgpu::Buffer, chunk: &Chunk<'_>, lut: &[u32], p: &Pipeline) -> Result<()> {
        let mut view = up
            .slice(..chunk.data_len)
            .get_mapped_range_mut()
            .map_err(|e| GpuError::BufferMap(e.to_string()))?;
        let mut rest = view.slice(..);
        let mut regions = Vec::with_capacity(chunk.items.len());
        let first = chunk.items.first().map_or(chunk.data_len, |i| i.rp);
        let (mut head, tail) = rest.split_at(first as usize);
        head.slice(..lut.len() * 4)
            .copy_from_slice(bytemuck::cast_slice(lut));
        rest = tail;
        let mut pos = first;
        for (i, it) in chunk.items.iter().enumerate() {
            let end = chunk.items.get(i + 1).map_or(chunk.data_len, |n| n.rp);
            let (r, t) = rest.split_at((end - pos) as usize);
            regions.push((SendWrite(r), it));
            rest = t;
            pos = end;
        }
        let words = |pl: &Placed<'_>| self.convert_grid(pl.words).0 * CONVERT_WG;
        regions.into_par_iter().for_each(|(SendWrite(mut r), it)| {
            let base = it.rp;
            let plan = it.plan;
            let c = &plan.coeffs;
            let arith = match c.arithmetic {
                Arithmetic::Fixed8 => 0,
                Arithmetic::Float32 => 1,
            };
            let rp = ResizeParams {
                src_width: it.frame.width(),
                src_height: it.frame.height(),
                col_offset: c.column_offset,
                col_count: c.column_count,
                out_rows: c.vertical.len() as u32,
                window: c.vertical.window as u32,
                frac_bits: c.vertical.precision,
                arithmetic: arith,
            };
            let g = &plan.geometry;
            let src_c = source_channels(p.channels);
            let (mean, std, mode) = match p.normalize {
                Some(n) => (n.mean, n.std, 2),
                None if p.scale => ([0.0; 3], [1.0; 3], 1),
                None => ([0.0; 3], [1.0; 3], 0),
            };
            let cp = ConvertParams {
                out_width: g.out.0,
                out_height: g.out.1,
                resized_width: g.resized.0,
                resized_height: g.resized.1,
                offset_x: g.offset.0,
                offset_y: g.offset.1,
                col_count: c.column_count,
                window: c.horizontal.window as u32,
                frac_bits: c.horizontal.precision,
                arithmetic: arith,
                channels: plan.channels as u32,
                out_layout: match p.layout {
                    Layout::Nchw => 0,
                    Layout::Nhwc => 1,
                },
                dtype: match p.dtype {
                    DType::U8 => 0,
                    DType::F16 => 1,
                    DType::F32 => 2,
                },
                value_mode: mode,
                total_words: it.words,
                words_per_row: words(it),
                src_channel: [src_c[0] as u32, src_c[1] as u32, src_c[2] as u32, 0],
                pad: [g.pad[0] as u32, g.pad[1] as u32, g.pad[2] as u32, 0],
                mean: [mean[0], mean[1], mean[2], 0.0],
                stdev: [std[0], std[1], std[2], 1.0],
            };
            debug_assert!(p.channels != ChannelOrder::Gray || plan.channels == 1);
            let at = |o: u64| (o - base) as usize;
            r.slice(at(it.rp)..at(it.rp) + 32)
                .copy_from_slice(bytemuck::bytes_of(&rp));
            r.slice(at(it.cp)..at(it.cp) + 128)
                .copy_from_slice(bytemuck::bytes_of(&cp));
            let vc = coeff_words(&c.vertical, c.arithmetic);
            r.slice(at(it.vc)..at(it.vc) + vc.len() * 4)
                .copy_from_slice(bytemuck::cast_slice(&vc));
            let hc = coeff_words(&c.horizontal, c.arithmetic);
            r.slice(at(it.hc)..at(it.hc) + hc.len() * 4)
                .copy_from_slice(bytemuck::cast_slice(&hc));
            let px = it.frame.as_bytes();
            r.slice(at(it.img)..at(it.img) + px.len())
                .copy_from_slice(px);
        });
        Ok(())
    }

    fn resize_group(
        &self,
        k: &KernelSet,
        it: &Placed<'_>,
        data: &wgpu::Buffer,
        tmp: &wgpu::Buffer,
    ) -> wgpu::BindGroup {
        self.dev
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("veridoc:resize"),
                layout: &k.layout,
                entries: &[
                    bind_entry(0, data, it.rp, 32),
                    bind_entry(1, data, it.img, it.img_len),
                    bind_entry(2, tmp, it.tmp, align(it.tmp_len, 4)),
                    bind_entry(3, data, it.vc, it.vc_len),
                ],
            })
    }

    fn convert_group(
        &self,
        k: &KernelSet,
        it: &Placed<'_>,
        data: &wgpu::Buffer,
        tmp: &wgpu::Buffer,
        out: &wgpu::Buffer,
    ) -> wgpu::BindGroup {
        self.dev
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("veridoc:convert"),
                layout: &k.layout,
                entries: &[
                    bind_entry(0, data, it.cp, 128),
                    bind_entry(1, tmp, it.tmp, align(it.tmp_len, 4)),
                    bind_entry(2, out, it.out, it.out_len),
                    bind_entry(3, data, it.hc, it.hc_len),
                    bind_entry(4, data, 0, LUT_WORDS * 4),
                ],
            })
    }
}

/// A disjoint region of the mapped upload buffer, moved to a worker thread for filling.
struct SendWrite<'a>(wgpu::WriteOnly<'a, [u8]>);

// SAFETY: a `WriteOnly<[u8]>` is an exclusive, write-only view of bytes, semantically a
// `&mut [u8]`, which is `Send`. wgpu implements `Send` for `WriteOnly<T>` only for sized `T`
// (the impl's implicit `T: Sized` bound), not for slices. Each region comes from `split_at`
// on one mapped view, so no two threads ever hold overlapping regions.
#[allow(
    unsafe_code,
    reason = "see the SAFETY comment: a missing upstream Send impl"
)]
unsafe impl Send for SendWrite<'_> {}

fn coeff_len(w: &AxisWeights) -> u64 {
    ((2 * w.len() + w.len() * w.window) as u64 * 4).max(4)
}

/// A submitted chunk.
struct InFlight<'a> {
    chunk: Chunk<'a>,
    index: wgpu::SubmissionIndex,
    maps: mpsc::Receiver<(
        &'static str,
        std::result::Result<(), wgpu::BufferAsyncError>,
    )>,
    /// upload, data, tmp, out, readback
    buffers: Vec<PooledBuffer>,
    resolve: Option<PooledBuffer>,
    submitted: Instant,
}

impl From<wgpu::BufferAsyncError> for Error {
    fn from(e: wgpu::BufferAsyncError) -> Error {
        GpuError::BufferMap(e.to_string()).into()
    }
}
