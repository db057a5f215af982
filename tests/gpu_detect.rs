//! The GPU detector on the real asset photos: the same faces as the CPU through the whole
//! verification pipeline, and its per-photo detector time (printed; run with
//! `--nocapture`). Raw-head parity on random weights is unit-tested in `src/gpu/detect.rs`.

mod common;

use veridoc::verify::{PhotoReport, VerifyOptions, VerifyOutput};
use veridoc::{Engine, Input, Placement};

const PHOTOS: [&str; 9] = [
    "astronaut.png",
    "sample1.jpg",
    "sample2.jpg",
    "sample3.jpg",
    "sample4.jpg",
    "sample5.jpg",
    "sample6.jpg",
    "coffee.png",
    "chelsea.png",
];

fn run(e: &Engine, inputs: &[Input], p: Placement) -> VerifyOutput {
    let opts = VerifyOptions {
        placement: Some(p),
        use_cache: false,
        ..Default::default()
    };
    e.verify(&opts, inputs).expect("verify")
}

fn faces(r: &PhotoReport) -> usize {
    assert!(r.error.is_none(), "{}: {:?}", r.name, r.error);
    r.faces.len()
}

#[test]
fn gpu_verification_finds_the_cpu_faces_and_reports_its_time() {
    let test = "gpu_verification_finds_the_cpu_faces_and_reports_its_time";
    let Some(assets) = common::assets_or_skip(test) else {
        return;
    };
    let Some(gpu) = common::gpu_or_skip(test) else {
        return;
    };
    let cpu = common::cpu_engine();
    assert_eq!(gpu.register_face_models(assets.join("models")).len(), 3);
    assert_eq!(cpu.register_face_models(assets.join("models")).len(), 3);
    let inputs: Vec<Input> = PHOTOS
        .iter()
        .map(|n| Input::path(assets.join("photos").join(n)))
        .collect();
    // The first GPU batch uploads the weights and compiles the kernels: time the second.
    run(&gpu, &inputs, Placement::Gpu);
    let g = run(&gpu, &inputs, Placement::Gpu);
    let c = run(&cpu, &inputs, Placement::Cpu);
    for (a, b) in c.reports.iter().zip(&g.reports) {
        assert_eq!(b.device, "gpu", "{}", b.name);
        assert_eq!(faces(a), faces(b), "{}: cpu vs gpu faces", a.name);
        // the same verdict for the same reasons, the subject measured alike
        assert_eq!(a.verdict, b.verdict, "{}", a.name);
        assert_eq!(a.failed, b.failed, "{}", a.name);
        match (&a.subject, &b.subject) {
            (Some(x), Some(y)) => {
                for (p, q) in x.landmarks.points.iter().zip(&y.landmarks.points) {
                    let d = ((p.x - q.x).powi(2) + (p.y - q.y).powi(2)).sqrt();
                    assert!(d < 0.5, "{}: landmark {p:?} vs {q:?}", a.name);
                }
            }
            (None, None) => {}
            _ => panic!("{}: subject on one path only", a.name),
        }
    }
    assert!(g
        .summary
        .decisions
        .iter()
        .all(|d| d.decision.placement == Placement::Gpu));
    eprintln!(
        "{test}: per photo (median of {}): detector gpu {:.1} ms, cpu {:.1} ms; landmarks + expression gpu {:.1} ms, cpu {:.1} ms",
        PHOTOS.len(),
        g.summary.median.detect_ms,
        c.summary.median.detect_ms,
        g.summary.median.landmarks_ms,
        c.summary.median.landmarks_ms
    );
}
