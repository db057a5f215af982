//! CPU/GPU parity: for every op and the common combinations, the GPU path's output agrees
//! with the CPU path's within the documented tolerance:
//!
//! - u8 outputs: +-1 level (in practice the fixed-point filters are bit-exact, asserted as 0);
//! - f32/f16 outputs: max abs <= 0.5/255 in [0,1] units before normalization.
//!
//! Runs on any adapter (Mesa lavapipe in CI); without one each test prints
//! `SKIPPED (no adapter)`, and fails when `VERIDOC_REQUIRE_GPU=1`.
#![cfg(feature = "gpu")]

mod common;

use common::{cpu_engine, gpu_or_skip, random_frame};
use veridoc::{
    Anchor, ChannelOrder, DType, Engine, Filter, Frame, Input, Layout, Pipeline, Resize, Tensor,
};

/// Sizes known to break float coordinate mapping: odd, prime, 1xN, Nx1, burn's list.
/// (source size, destination size)
type Case = ((u32, u32), (u32, u32));

const SIZES: &[Case] = &[
    ((97, 61), (31, 17)),
    ((31, 17), (97, 61)),
    ((1, 37), (3, 9)),
    ((37, 1), (9, 3)),
    ((227, 214), (224, 220)),
    ((255, 235), (214, 227)),
    ((13, 7), (41, 29)),
    ((640, 480), (64, 48)),
    ((101, 103), (101, 103)),
];

#[derive(Debug)]
#[must_use]
struct Diff {
    max: f64,
    mean: f64,
    worst: usize,
}

fn diff(a: &Tensor, b: &Tensor) -> Diff {
    assert_eq!(a.shape(), b.shape(), "shapes differ");
    assert_eq!(a.dtype(), b.dtype(), "dtypes differ");
    let n = a.len();
    let (mut max, mut sum, mut worst) = (0f64, 0f64, 0);
    for i in 0..n {
        let d = (a.data().get_f32(i).unwrap() as f64 - b.data().get_f32(i).unwrap() as f64).abs();
        if d > max {
            max = d;
            worst = i;
        }
        sum += d;
    }
    Diff {
        max,
        mean: sum / n.max(1) as f64,
        worst,
    }
}

fn run(e: &Engine, p: &Pipeline, frames: &[Frame]) -> Vec<Tensor> {
    let inputs: Vec<Input> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| Input::frame(format!("f{i}"), f.clone()))
        .collect();
    let out = e.run(p, &inputs).expect("valid pipeline");
    out.items
        .into_iter()
        .map(|i| i.result.unwrap_or_else(|e| panic!("item failed: {e}")))
        .collect()
}

/// Largest allowed difference for `p`'s output, in output units.
fn tolerance(p: &Pipeline) -> f64 {
    match p.dtype {
        DType::U8 => 1.0,
        _ => {
            let in01 = 0.5 / 255.0;
            match p.normalize {
                // (x - m) / s: a difference d in [0,1] units is d / s in output units
                Some(n) => in01 / n.std.iter().copied().fold(f32::INFINITY, f32::min) as f64,
                None if p.scale => in01,
                None => 0.5,
            }
        }
    }
}

fn check(gpu: &Engine, cpu: &Engine, p: &Pipeline, frames: &[Frame], what: &str) -> f64 {
    let g = run(gpu, p, frames);
    let c = run(cpu, p, frames);
    let tol = tolerance(p);
    let mut worst: f64 = 0.0;
    for (i, (a, b)) in g.iter().zip(&c).enumerate() {
        let d = diff(a, b);
        assert!(
            d.max <= tol,
            "{what} image {i} {:?}: max {} (mean {}) at element {} exceeds {tol}",
            a.shape(),
            d.max,
            d.mean,
            d.worst
        );
        if p.dtype == DType::U8
            && veridoc::resample::Arithmetic::for_filter(p.filter)
                == veridoc::resample::Arithmetic::Fixed8
        {
            assert_eq!(d.max, 0.0, "{what}: fixed-point paths are bit-exact");
        }
        worst = worst.max(d.max);
    }
    worst
}

#[test]
fn resize_every_filter_and_size() {
    let Some(gpu) = gpu_or_skip("resize_every_filter_and_size") else {
        return;
    };
    let cpu = cpu_engine();
    for &((sw, sh), (dw, dh)) in SIZES {
        let frames = [random_frame(sw, sh, sw * 7 + sh)];
        for f in Filter::ALL {
            let p = Pipeline::new().stretch(dw, dh).filter(f);
            let w = check(
                &gpu,
                &cpu,
                &p,
                &frames,
                &format!("{sw}x{sh}->{dw}x{dh} {f:?}"),
            );
            println!("{sw}x{sh}->{dw}x{dh} {}: max diff {w} levels", f.name());
        }
    }
}

#[test]
fn modes_crop_and_letterbox() {
    let Some(gpu) = gpu_or_skip("modes_crop_and_letterbox") else {
        return;
    };
    let cpu = cpu_engine();
    let frames = [
        random_frame(211, 97, 1),
        random_frame(64, 160, 2),
        random_frame(1, 50, 3),
    ];
    let modes = [
        Resize::Fit {
            width: 64,
            height: 64,
            anchor: Anchor::Center,
            pad: [114, 114, 114],
        },
        Resize::Fit {
            width: 96,
            height: 40,
            anchor: Anchor::TopLeft,
            pad: [0, 10, 250],
        },
        Resize::Fill {
            width: 48,
            height: 48,
        },
        Resize::Stretch {
            width: 33,
            height: 70,
        },
        Resize::ShorterSide {
            size: 29,
            max_size: Some(60),
        },
    ];
    for m in modes {
        for f in [Filter::Bilinear, Filter::Lanczos3, Filter::Nearest] {
            let p = Pipeline::new()
                .resize(m)
                .filter(f)
                .scaled()
                .layout(Layout::Nchw);
            check(&gpu, &cpu, &p, &frames, &format!("{m:?} {f:?}"));
            let u = Pipeline::new().resize(m).filter(f);
            check(&gpu, &cpu, &u, &frames, &format!("{m:?} {f:?} u8"));
        }
    }
    // crop (region of interest) before the resize, including fractional boxes from fill
    let p = Pipeline::new()
        .crop(10, 5, 150, 80)
        .fill(40, 30)
        .filter(Filter::Bicubic)
        .scaled();
    check(&gpu, &cpu, &p, &frames[..1], "crop + fill bicubic");
    let p = Pipeline::new().crop(3, 3, 50, 20);
    check(&gpu, &cpu, &p, &frames[..1], "crop only");
}

#[test]
fn dtypes_layouts_and_channels() {
    let Some(gpu) = gpu_or_skip("dtypes_layouts_and_channels") else {
        return;
    };
    let cpu = cpu_engine();
    let frames = [random_frame(120, 90, 9), random_frame(57, 33, 10)];
    for filter in [Filter::Bilinear, Filter::Lanczos3] {
        for dtype in [DType::U8, DType::F16, DType::F32] {
            for layout in [Layout::Nchw, Layout::Nhwc] {
                for ch in [ChannelOrder::Rgb, ChannelOrder::Bgr, ChannelOrder::Gray] {
                    let base = Pipeline::new()
                        .fit(41, 37)
                        .filter(filter)
                        .channels(ch)
                        .layout(layout);
                    let variants = match dtype {
                        DType::U8 => vec![base],
                        d => vec![
                            base.clone().imagenet().dtype(d),
                            base.clone().scaled().dtype(d),
                            base.clone().dtype(d),
                        ],
                    };
                    for p in variants {
                        check(
                            &gpu,
                            &cpu,
                            &p,
                            &frames,
                            &format!("{filter:?} {dtype:?} {layout:?} {ch:?}"),
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn many_images_across_chunks() {
    let Some(gpu) = gpu_or_skip("many_images_across_chunks") else {
        return;
    };
    let cpu = cpu_engine();
    // 12 images of mixed sizes, one large enough (2.3 MB) to matter for chunking
    let frames: Vec<Frame> = (0..12)
        .map(|i| {
            if i == 5 {
                random_frame(1008, 756, i)
            } else {
                random_frame(40 + i * 13, 30 + i * 7, i)
            }
        })
        .collect();
    let p = Pipeline::new().fit(64, 64).imagenet().layout(Layout::Nchw);
    check(&gpu, &cpu, &p, &frames, "mixed batch");
    let mem = gpu.gpu_memory().expect("gpu in use");
    assert!(mem.used <= mem.limit && mem.peak <= mem.limit, "{mem:?}");
    assert!(mem.peak > 0, "buffers went through the accounted pool");
}

#[test]
fn over_budget_is_a_typed_error_and_auto_falls_back() {
    if gpu_or_skip("over_budget_is_a_typed_error_and_auto_falls_back").is_none() {
        return;
    }
    let frames = [random_frame(3000, 2000, 1), random_frame(30, 20, 2)];
    let inputs: Vec<Input> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| Input::frame(format!("f{i}"), f.clone()))
        .collect();
    let p = Pipeline::new().fit(32, 32).scaled();
    // policy gpu: the big image (18 MB) cannot fit a 16 MiB budget -> typed limit error
    let strict = Engine::builder()
        .device_policy(veridoc::DevicePolicy::Gpu)
        .gpu_memory_limit(16 << 20)
        .build()
        .expect("gpu engine");
    let out = strict.run(&p, &inputs).unwrap();
    let err = out.items[0].result.as_ref().unwrap_err();
    assert!(
        matches!(err.kind(), veridoc::ErrorKind::Limit(_)),
        "expected a limit error, got {err:?}"
    );
    assert!(
        out.items[1].result.is_ok(),
        "the small image still ran on the gpu"
    );
    // policy auto, the batch placed on the gpu: the big image falls back to the cpu
    let auto = Engine::builder()
        .gpu_memory_limit(16 << 20)
        .no_persist()
        .build()
        .expect("engine");
    let many: Vec<Input> = (0..4).flat_map(|_| inputs.clone()).collect();
    let out = auto.run_on(&p, &many, veridoc::Placement::Gpu).unwrap();
    assert_eq!(out.report.device, veridoc::Placement::Gpu, "{}", out.report);
    assert_eq!(out.report.failed, 0, "{}", out.report);
    assert_eq!(out.report.cpu_fallback, 4, "{}", out.report);
    let cpu = cpu_engine().run(&p, &many).unwrap();
    for (a, b) in out.items.iter().zip(&cpu.items) {
        let d = diff(a.result.as_ref().unwrap(), b.result.as_ref().unwrap());
        assert!(d.max <= 0.5 / 255.0, "{d:?}");
    }
}

#[test]
fn npy_files_match_between_paths() {
    let Some(gpu) = gpu_or_skip("npy_files_match_between_paths") else {
        return;
    };
    let cpu = cpu_engine();
    let p = Pipeline::new().fit(64, 64).imagenet().layout(Layout::Nchw);
    let f = [random_frame(300, 200, 4)];
    let (g, c) = (run(&gpu, &p, &f), run(&cpu, &p, &f));
    let (mut a, mut b) = (Vec::new(), Vec::new());
    g[0].write_npy(&mut a).unwrap();
    c[0].write_npy(&mut b).unwrap();
    assert_eq!(a.len(), b.len());
    assert_eq!(a[..128], b[..128], "same header");
    // Fixed-point bilinear + table lookup: the files are byte-identical.
    assert_eq!(a, b, "bilinear f32 output is bit-identical across paths");
}

#[test]
fn adapters_are_selected_by_index_pci_bus_or_name_and_a_missing_one_is_named() {
    let Some(e) = common::gpu_or_skip("adapters_are_selected_by_index_pci_bus_or_name") else {
        return;
    };
    use veridoc::gpu::{adapters, GpuSelection};
    let list = adapters();
    assert!(
        !list.is_empty(),
        "an engine has a gpu, so an adapter is listed"
    );
    let build = |sel: GpuSelection| {
        Engine::builder()
            .cpu_threads(1)
            .calibrate(false)
            .device_policy(veridoc::DevicePolicy::Gpu)
            .gpu(sel)
            .build()
    };
    // index 0 of the listed order, by its name, and by its bus when the driver gives one
    let first = build(GpuSelection::Index(0)).expect("index 0");
    assert_eq!(first.gpu_info().unwrap().name, list[0].name);
    let named = build(GpuSelection::parse(&format!("name:{}", list[0].name)).unwrap()).unwrap();
    assert_eq!(named.gpu_info().unwrap().name, list[0].name);
    if !list[0].pci_bus_id.is_empty() {
        let spec = format!("pci:{}", list[0].pci_bus_id);
        let on_bus = build(GpuSelection::parse(&spec).unwrap()).unwrap();
        assert_eq!(on_bus.gpu_info().unwrap().pci_bus_id, list[0].pci_bus_id);
    }
    // absent: an error that names what was asked and lists what exists
    let err = build(GpuSelection::Index(list.len()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("gpu index {} requested", list.len())) && err.contains(&list[0].name),
        "{err}"
    );
    let err = build(GpuSelection::parse("pci:ff:1f.7").unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no adapter on pci bus ff:1f.7") && err.contains("adapters: 0:"),
        "{err}"
    );
    drop(e);
}
