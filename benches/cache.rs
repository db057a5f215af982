#![allow(missing_docs, reason = "criterion macros generate undocumented items")]
//! The caches' performance targets (caches issue):
//! - a warm result-cache hit for a W1 image (12 MP JPEG -> 640x640 f32) vs computing it;
//! - a model reload from the disk tier vs the first load from the TF.js files;
//! - a GPU-resident model hit (needs an adapter; skipped loudly without one).
//!
//! `cargo bench --bench cache`. Uses `target/w1/w1_000.jpg` when present
//! (`scripts/gen_w1.py`), else a generated 4032x3024 JPEG; the face model from `fixtures/`.

use std::path::PathBuf;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use veridoc::cache::{CacheConfig, ModelCache, ModelCacheConfig};
use veridoc::model::ModelSource;
use veridoc::{DevicePolicy, Engine, Frame, Input, Layout, Pipeline};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn w1_bytes() -> Vec<u8> {
    if let Ok(b) = std::fs::read(root().join("target/w1/w1_000.jpg")) {
        return b;
    }
    Frame::synthetic(4032, 3024, 7)
        .encode_jpeg(90)
        .expect("encode")
}

fn manifest() -> Option<PathBuf> {
    let m = root().join("fixtures/models/tiny_face_detector_model-weights_manifest.json");
    m.is_file().then_some(m)
}

fn result_cache(c: &mut Criterion) {
    let bytes = w1_bytes();
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("w1_000.jpg");
    std::fs::write(&path, &bytes).expect("write");
    // a file input: a hit costs a stat (the (path, size, mtime) fast path) and a lookup
    let input = Input::path(&path);
    // in-memory bytes: a hit hashes the 3-4 MB of JPEG first (blake3)
    let in_memory = Input::bytes("w1_000.jpg", bytes);
    let p = Pipeline::new()
        .fit(640, 640)
        .imagenet()
        .layout(Layout::Nchw);
    let plain = Engine::builder()
        .device_policy(DevicePolicy::Cpu)
        .build()
        .expect("engine");
    let cached = Engine::builder()
        .device_policy(DevicePolicy::Cpu)
        .result_cache(CacheConfig::memory(256 << 20).disk(dir.path().join("r")))
        .build()
        .expect("engine");
    // a disk-only hit: no memory tier, every get reads and verifies the disk entry
    let disk_only = Engine::builder()
        .device_policy(DevicePolicy::Cpu)
        .result_cache(CacheConfig::memory(0).disk(dir.path().join("r")))
        .build()
        .expect("engine");
    cached.run_one(&p, &input).expect("warm");
    cached.run_one(&p, &in_memory).expect("warm");
    let mut g = c.benchmark_group("result_cache/w1_640_f32");
    g.sample_size(10);
    g.bench_function("compute", |b| {
        b.iter(|| plain.run_one(&p, &input).expect("ok"))
    });
    g.bench_function("hit_memory_file", |b| {
        b.iter(|| cached.run_one(&p, &input).expect("ok"))
    });
    g.bench_function("hit_memory_bytes", |b| {
        b.iter(|| cached.run_one(&p, &in_memory).expect("ok"))
    });
    g.bench_function("hit_disk", |b| {
        b.iter(|| disk_only.run_one(&p, &input).expect("ok"))
    });
    g.finish();
}

fn model_cache(c: &mut Criterion) {
    let Some(manifest) = manifest() else {
        eprintln!("model_cache: SKIPPED, no face model (run scripts/fetch-assets.sh)");
        return;
    };
    let name = "tiny_face_detector";
    let src = ModelSource::TfjsFiles { manifest };
    let mut g = c.benchmark_group("model_cache/tiny_face_detector");
    g.sample_size(20);
    g.bench_function("first_load_from_files", |b| {
        b.iter(|| {
            let m = ModelCache::new(ModelCacheConfig::default()).expect("cache");
            m.register(name, src.clone());
            m.get(name).expect("load")
        })
    });
    let dir = tempfile::tempdir().expect("tmp");
    let m = ModelCache::new(ModelCacheConfig::default().spill_dir(dir.path())).expect("cache");
    m.register(name, src.clone());
    m.get(name).expect("load");
    m.evict_host(name); // writes the fast binary form to the disk tier
                        // in-process reload of an evicted model: the untimed setup drops the host copy (the entry
                        // on disk is current, so it is not rewritten); the timed part maps the entry (verified
                        // when written or last read) and views its tensors in place
    g.bench_function("reload_from_disk_tier", |b| {
        b.iter_batched(
            || m.evict_host(name),
            |()| m.get(name).expect("reload"),
            criterion::BatchSize::PerIteration,
        )
    });
    // after a restart: a new cache over the same directory verifies the entry's checksum
    // (blake3 over the whole payload) the first time it maps it
    g.bench_function("reload_from_disk_tier_after_restart", |b| {
        b.iter_batched(
            || {
                let fresh = ModelCache::new(ModelCacheConfig::default().spill_dir(dir.path()))
                    .expect("cache");
                fresh.register(name, src.clone());
                fresh
            },
            |fresh| fresh.get(name).expect("reload"),
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();
    let stats = m.stats();
    eprintln!(
        "model_cache: disk hits {} loads {}, host loads {}",
        stats.disk.hits, stats.disk.loads, stats.host.loads
    );
}

fn gpu_model(c: &mut Criterion) {
    let Some(manifest) = manifest() else {
        eprintln!("gpu_model: SKIPPED, no face model");
        return;
    };
    let engine = match Engine::builder().device_policy(DevicePolicy::Gpu).build() {
        Ok(e) if e.gpu_info().is_some() => e,
        _ => {
            eprintln!("gpu_model: SKIPPED, no gpu adapter");
            return;
        }
    };
    engine.register_face_model(manifest);
    let first: Arc<_> = match engine.gpu_face_model() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("gpu_model: SKIPPED, upload failed: {e}");
            return;
        }
    };
    drop(first);
    let mut g = c.benchmark_group("model_cache/gpu_resident");
    g.bench_function("hit", |b| b.iter(|| engine.gpu_face_model().expect("hit")));
    g.finish();
}

criterion_group!(benches, result_cache, model_cache, gpu_model);
criterion_main!(benches);
