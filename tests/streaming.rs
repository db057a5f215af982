//! Streaming under budgets: bounded memory, accounting that never exceeds the budget,
//! order, cancellation, progress, pressure handling, and the plan API.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use veridoc::testing::FakeProbe;
use veridoc::{
    CancelToken, DevicePolicy, Engine, Frame, Input, Layout, MemoryLimit, Pipeline, PlanRequest,
    Shrink, StreamOptions,
};

fn jpeg(w: u32, h: u32, seed: u32) -> Vec<u8> {
    Frame::synthetic(w, h, seed).encode_jpeg(85).expect("jpeg")
}

fn engine(budget: u64) -> Engine {
    Engine::builder()
        .cpu_threads(2)
        .device_policy(DevicePolicy::Cpu)
        .host_memory_limit(MemoryLimit::Bytes(budget))
        .no_persist()
        .build()
        .unwrap()
}

/// Thousands of small generated images through a tight budget: every result arrives, in
/// order, and the engine's reservations never exceed the budget.
#[test]
fn thousands_of_images_under_a_tight_budget() {
    let budget = 4 << 20; // 4 MiB for 3000 images of 96x72 -> 64x64 f32
    let e = engine(budget);
    let encoded: Vec<Arc<[u8]>> = (0..16).map(|s| jpeg(96, 72, s).into()).collect();
    let n = 3000;
    let inputs = (0..n).map(|i| Input::bytes(format!("img{i}.jpg"), encoded[i % 16].clone()));
    let p = Pipeline::new().fit(64, 64).imagenet().layout(Layout::Nchw);
    let mut next = 0usize;
    let mut max_used = 0u64;
    let host = e.host_budget().clone();
    let summary = e
        .stream(&p, inputs, StreamOptions::new(), |it| {
            assert_eq!(it.index, next, "results arrive in input order");
            next += 1;
            assert!(it.item.result.is_ok(), "{:?}", it.item.result);
            max_used = max_used.max(host.used());
        })
        .unwrap();
    assert_eq!(summary.done, n);
    assert_eq!(summary.failed, 0);
    assert!(summary.peak_reserved <= budget, "{summary:?}");
    assert!(max_used <= budget);
    assert!(summary.peak_reserved > 0, "work was accounted");
    assert!(summary.batches > 1, "a tight budget means several batches");
    assert_eq!(host.used(), 0, "everything released at the end");
}

/// The peak does not grow with the number of inputs.
#[test]
fn memory_does_not_grow_with_input_count() {
    let encoded: Arc<[u8]> = jpeg(200, 150, 1).into();
    let p = Pipeline::new().fit(128, 128).imagenet();
    let peak = |n: usize| {
        let e = engine(32 << 20);
        let inputs = (0..n).map(|i| Input::bytes(format!("{i}.jpg"), encoded.clone()));
        let s = e
            .stream(&p, inputs, StreamOptions::new().batch_size(8), |_| {})
            .unwrap();
        assert_eq!(s.done, n);
        s.peak_reserved
    };
    let (small, large) = (peak(40), peak(400));
    assert_eq!(
        small, large,
        "peak reservation independent of the input count"
    );
}

#[test]
fn cancellation_stops_promptly_and_returns_what_finished() {
    let e = engine(64 << 20);
    let encoded: Arc<[u8]> = jpeg(320, 240, 2).into();
    let token = CancelToken::new();
    let t2 = token.clone();
    let inputs = (0..100_000).map(move |i| Input::bytes(format!("{i}.jpg"), encoded.clone()));
    let mut got = 0usize;
    let p = Pipeline::new().fit(64, 64);
    let summary = e
        .stream(
            &p,
            inputs,
            StreamOptions::new().batch_size(4).cancel(token),
            |it| {
                assert!(it.item.result.is_ok());
                got += 1;
                if got == 10 {
                    t2.cancel();
                }
            },
        )
        .unwrap();
    assert!(summary.cancelled);
    assert_eq!(summary.done, got);
    assert!(
        got < 20,
        "stopped within a batch or two of the request: {got}"
    );
}

#[test]
fn progress_events_are_throttled_and_final() {
    let e = engine(64 << 20);
    let encoded: Arc<[u8]> = jpeg(64, 48, 3).into();
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let n = 200;
    let inputs: Vec<Input> = (0..n)
        .map(|i| Input::bytes(format!("{i}.jpg"), encoded.clone()))
        .collect();
    let p = Pipeline::new().fit(32, 32);
    e.stream(
        &p,
        inputs,
        StreamOptions::new()
            .batch_size(16)
            .progress_interval(Duration::from_millis(5))
            .on_progress(move |p| ev.lock().unwrap().push(p.clone())),
        |_| {},
    )
    .unwrap();
    let events = events.lock().unwrap();
    let last = events.last().expect("a final event");
    assert_eq!(last.done, n);
    assert_eq!(last.total, Some(n), "total from the exact size hint");
    assert_eq!(last.stage, veridoc::Stage::Done);
    assert!(
        events.windows(2).all(|w| w[0].done <= w[1].done),
        "monotonic"
    );
    assert!(events.len() < n, "throttled: {} events", events.len());
}

#[test]
fn unordered_stream_delivers_every_item_and_failures_early() {
    let e = engine(64 << 20);
    let good: Arc<[u8]> = jpeg(64, 48, 4).into();
    let inputs: Vec<Input> = (0..20)
        .map(|i| {
            if i % 5 == 4 {
                Input::bytes(format!("{i}.jpg"), b"not an image".to_vec())
            } else {
                Input::bytes(format!("{i}.jpg"), good.clone())
            }
        })
        .collect();
    let mut seen = vec![];
    let s = e
        .stream(
            &Pipeline::new().fit(16, 16),
            inputs,
            StreamOptions::new().batch_size(10).ordered(false),
            |it| seen.push((it.index, it.item.result.is_ok())),
        )
        .unwrap();
    assert_eq!(s.failed, 4);
    let mut idx: Vec<usize> = seen.iter().map(|x| x.0).collect();
    idx.sort();
    assert_eq!(idx, (0..20).collect::<Vec<_>>(), "every item once");
    assert!(!seen[0].1, "within a batch, failures come first");
}

#[test]
fn critical_pressure_shrinks_batches_and_pauses_intake() {
    // A fake system with 2% available: critical pressure from the first batch.
    let probe = Arc::new(FakeProbe::new(1000 << 20, 20 << 20));
    let e = Engine::builder()
        .cpu_threads(2)
        .device_policy(DevicePolicy::Cpu)
        .host_memory_limit(MemoryLimit::Bytes(64 << 20))
        .system_probe(probe.clone())
        .no_persist()
        .build()
        .unwrap();
    assert_eq!(e.pressure(), veridoc::Pressure::Critical);
    let encoded: Arc<[u8]> = jpeg(64, 48, 5).into();
    let inputs: Vec<Input> = (0..6)
        .map(|i| Input::bytes(format!("{i}.jpg"), encoded.clone()))
        .collect();
    let released = Arc::new(AtomicUsize::new(0));
    let r = released.clone();
    let p2 = probe.clone();
    // memory "comes back" after the first pause
    let s = e
        .stream(
            &Pipeline::new().fit(16, 16),
            inputs,
            StreamOptions::new().batch_size(4).on_progress(move |ev| {
                if ev.stage == veridoc::Stage::Paused && r.fetch_add(1, Ordering::SeqCst) == 0 {
                    p2.available.store(900 << 20, Ordering::SeqCst);
                }
            }),
            |_| {},
        )
        .unwrap();
    assert_eq!(s.done, 6);
    assert!(s.pauses >= 1, "{s:?}");
}

#[test]
fn plan_sizes_batches_from_the_budget() {
    // shrink-on-load (1/4 for the assumed 12 MP): a full-resolution decode alone needs more
    // than the 64 MiB budget (`exact_decodes_need_a_bigger_budget` below)
    let p = Pipeline::new()
        .fit(640, 640)
        .imagenet()
        .layout(Layout::Nchw)
        .shrink(Shrink::Fast);
    let req = PlanRequest {
        items: 1000,
        avg_encoded_bytes: 3_000_000,
        avg_pixels: None,
    };
    let small = engine(64 << 20).plan(&p, &req).unwrap();
    let big = engine(2 << 30).plan(&p, &req).unwrap();
    assert!(small.batch_size < big.batch_size, "{small:?} vs {big:?}");
    assert!(small.predicted_peak_bytes <= 64 << 20, "{small:?}");
    assert!(big.batch_size <= veridoc::MAX_BATCH);
    assert!(
        small.reasons.len() >= 3 && small.predicted_seconds > 0.0,
        "{small:?}"
    );
    assert_eq!(small.placement, veridoc::Placement::Cpu);
    // one item alone over the budget is refused with the right kind
    let err = engine(1 << 20).plan(&p, &req).unwrap_err();
    assert!(matches!(
        err.kind(),
        veridoc::ErrorKind::Limit(veridoc::LimitError::ExceedsBudget { .. })
    ));
}

#[test]
fn exact_decodes_need_a_bigger_budget() {
    // the default (exact) plans a full-resolution decode: more memory per item than fast
    let p = Pipeline::new().fit(640, 640).imagenet();
    let req = PlanRequest {
        items: 100,
        avg_encoded_bytes: 3_000_000,
        avg_pixels: None,
    };
    let e = engine(2 << 30);
    let exact = e.plan(&p, &req).unwrap();
    let fast = e.plan(&p.clone().shrink(Shrink::Fast), &req).unwrap();
    assert!(
        exact.batch_size < fast.batch_size
            || exact.predicted_peak_bytes > fast.predicted_peak_bytes,
        "{exact:?} vs {fast:?}"
    );
    let shrinks = |r: &[String]| r.iter().any(|x| x.contains("shrink-on-load"));
    assert!(shrinks(&fast.reasons), "{fast:?}");
    assert!(!shrinks(&exact.reasons), "{exact:?}");
}
