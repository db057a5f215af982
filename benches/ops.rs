#![allow(missing_docs, reason = "criterion macros generate undocumented items")]
//! Per-op benches of the CPU path (GPU groups join when the gpu path exists).
//! `VERIDOC_BENCH_QUICK=1` shrinks sizes and sample counts for smoke runs.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fast_image_resize as fir;
use veridoc::{DType, Engine, Filter, Frame, Input, Layout, Pipeline};

fn quick() -> bool {
    std::env::var("VERIDOC_BENCH_QUICK").as_deref() == Ok("1")
}

fn ops(c: &mut Criterion) {
    let engine = Engine::builder().cpu_threads(1).build().expect("engine");
    let (big, mid) = if quick() {
        ((1008, 756), (504, 378))
    } else {
        ((4032, 3024), (1008, 756))
    };
    // resize: fixed-point and float arithmetic, large downscale and moderate downscale
    let mut g = c.benchmark_group("cpu/resize");
    g.sample_size(if quick() { 10 } else { 20 });
    for &(src, dst) in &[(big, (224u32, 224u32)), (mid, (640, 480))] {
        let frame = Input::frame("f", Frame::synthetic(src.0, src.1, 1));
        g.throughput(Throughput::Elements(1));
        for filter in [Filter::Bilinear, Filter::Lanczos3] {
            let p = Pipeline::new().stretch(dst.0, dst.1).filter(filter);
            let id = format!("{}x{}->{}x{}/{}", src.0, src.1, dst.0, dst.1, filter.name());
            g.bench_with_input(BenchmarkId::from_parameter(id), &frame, |b, f| {
                b.iter(|| engine.run_one(&p, f).expect("ok"))
            });
        }
        // the reference point: fast_image_resize alone (built-in bilinear, u8 output)
        let f = Frame::synthetic(src.0, src.1, 1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("pool");
        let id = format!(
            "{}x{}->{}x{}/fir-alone-bilinear",
            src.0, src.1, dst.0, dst.1
        );
        g.bench_function(BenchmarkId::from_parameter(id), |b| {
            b.iter(|| {
                pool.install(|| {
                    let s = fir::images::ImageRef::new(
                        f.width(),
                        f.height(),
                        f.as_bytes(),
                        fir::PixelType::U8x3,
                    )
                    .expect("buffer");
                    let mut d = fir::images::Image::new(dst.0, dst.1, fir::PixelType::U8x3);
                    let alg = fir::ResizeAlg::Convolution(fir::FilterType::Bilinear);
                    fir::Resizer::new()
                        .resize(&s, &mut d, &fir::ResizeOptions::new().resize_alg(alg))
                        .expect("resize");
                    d
                })
            })
        });
    }
    g.finish();
    // convert: the fused output pass on an already-sized frame (no resize)
    let mut g = c.benchmark_group("cpu/convert");
    for &side in &[224u32, 640] {
        let frame = Input::frame("f", Frame::synthetic(side, side, 2));
        g.throughput(Throughput::Elements(side as u64 * side as u64));
        for (name, p) in [
            ("u8_nhwc", Pipeline::new()),
            (
                "f32_nchw_imagenet",
                Pipeline::new().imagenet().layout(Layout::Nchw),
            ),
            (
                "f16_nchw_imagenet",
                Pipeline::new()
                    .imagenet()
                    .layout(Layout::Nchw)
                    .dtype(DType::F16),
            ),
        ] {
            g.bench_with_input(BenchmarkId::new(name, side), &frame, |b, f| {
                b.iter(|| engine.run_one(&p, f).expect("ok"))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, ops);
criterion_main!(benches);
