//! The GPU detector on the real asset photos: the same faces as the CPU through the whole
//! verification pipeline, and its per-photo detector time (printed; run with
//! `--nocapture`). Raw-head parity on random weights is unit-tested in `src/gpu/detect.rs`.

mod common;
mod schema;

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
    let out = e.verify(&opts, inputs).expect("verify");
    schema::assert_schema(&out);
    out
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
        assert_eq!(b.device, veridoc::Device::Gpu, "{}", b.name);
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

/// Passport photos of the conformance corpus through every pass of the search on the GPU
/// (the fine pass's rectangular inputs batched per size): the same faces, verdicts and
/// failed checks as the CPU. Two photos: lavapipe runs a 416x416 pass in ~0.5 s.
#[test]
fn gpu_passport_verification_matches_the_cpu_with_every_pass() {
    let test = "gpu_passport_verification_matches_the_cpu_with_every_pass";
    let Some(assets) = common::assets_or_skip(test) else {
        return;
    };
    let corpus = assets.join("corpus");
    if !corpus.join("labels.json").exists() {
        assert!(
            std::env::var("VERIDOC_REQUIRE_ASSETS").as_deref() != Ok("1"),
            "{test}: corpus missing and VERIDOC_REQUIRE_ASSETS=1"
        );
        eprintln!("SKIPPED {test}: corpus missing (run scripts/make-corpus.sh)");
        return;
    }
    let Some(gpu) = common::gpu_or_skip(test) else {
        return;
    };
    let cpu = common::cpu_engine();
    gpu.register_face_models(assets.join("models"));
    cpu.register_face_models(assets.join("models"));
    let inputs: Vec<Input> = [
        "bob_testimage_compliant_01.jpg",
        "bob_testimage_second_face_02.jpg",
    ]
    .iter()
    .map(|n| Input::path(corpus.join(n)))
    .collect();
    let opts = |p| {
        VerifyOptions::default()
            .placement(p)
            .use_cache(false)
            .complete_search(true)
    };
    let g = gpu.verify(&opts(Placement::Gpu), &inputs).expect("gpu");
    let c = cpu.verify(&opts(Placement::Cpu), &inputs).expect("cpu");
    schema::assert_schema(&g);
    schema::assert_schema(&c);
    for (a, b) in c.reports.iter().zip(&g.reports) {
        eprintln!(
            "{}: cpu {:?} {:?}, gpu {:?} {:?}",
            a.name, a.verdict, a.failed, b.verdict, b.failed
        );
        assert_eq!(b.device, veridoc::Device::Gpu);
        assert_eq!(faces(a), faces(b), "{}", a.name);
        assert!(a.faces_complete && b.faces_complete);
        for (x, y) in a.faces.iter().zip(&b.faces) {
            assert!(x.iou(y) >= 0.95, "{}: {x:?} {y:?}", a.name);
        }
        assert_eq!(a.verdict, b.verdict, "{}", a.name);
        assert_eq!(a.failed, b.failed, "{}", a.name);
    }
    // the compliant photo passes, the one with a 60 px second face fails for it
    assert_eq!(
        c.reports[0].verdict,
        veridoc::verify::Verdict::Accepted,
        "{:?}",
        c.reports[0].failed
    );
    assert_eq!(c.reports[1].failed, vec!["faces".to_string()]);
}
