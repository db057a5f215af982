//! The engine thread: builds the engine and the verifiers, warms them up, then gathers
//! queued requests into micro-batches and answers each through its oneshot.
//!
//! A batch starts with the first waiting request and takes more for up to the window, as
//! long as other requests are in flight (a lone request never waits for company) and the
//! batch is under its maximum. Requests whose deadline passed, or whose client left, are
//! dropped before they start. Verify requests are run with one `Verifier::verify` per
//! profile in the batch, so the scheduler sees the whole batch; preprocess requests run one
//! by one.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use super::{Config, Shared};
use crate::verify::{PhotoReport, Verifier, VerifyOptions};
use crate::{Engine, Frame, Input, Pipeline};

/// What a request asks the engine for.
#[derive(Debug)]
pub(crate) enum Work {
    /// Verify against the profile at this index of the server's profiles.
    Verify(usize),
    /// Run this pipeline and return the tensor as `.npy` bytes.
    Preprocess(Box<Pipeline>),
}

/// The engine's answer.
#[derive(Debug)]
pub(crate) enum Answer {
    /// The report (verdict `error` when the photo could not be processed).
    Report(Box<PhotoReport>),
    /// The `.npy` bytes, or why there are none.
    Npy(crate::Result<Vec<u8>>),
}

/// One queued request.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) work: Work,
    pub(crate) input: Input,
    /// When the request arrived (its deadline counts from there).
    pub(crate) arrived: Instant,
    /// When it was queued.
    pub(crate) queued: Instant,
    pub(crate) deadline: Instant,
    pub(crate) reply: oneshot::Sender<Answer>,
}

/// Side of the synthetic warm-up photo: a typical passport-photo size (the ICAO 9303
/// photo at 600 dpi is 35x45 mm ~ 827x1063 px; 800 keeps it a multiple of 8 for JPEG).
const WARM_UP_SIDE: u32 = 800;

/// Builds the engine and one verifier per profile, warms up, then serves `jobs` until
/// every sender is gone. `started` gets `Err` when the engine cannot be built.
pub(crate) fn run(
    cfg: &Config,
    shared: &Arc<Shared>,
    jobs: &Receiver<Job>,
    started: oneshot::Sender<Result<(), String>>,
) {
    let engine = match build_engine(cfg) {
        Ok(e) => e,
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    let mut verifiers: Vec<Verifier<'_>> = Vec::with_capacity(cfg.profiles.len());
    for p in &cfg.profiles {
        let mut opts = VerifyOptions::new(p.clone()).use_cache(cfg.use_cache);
        opts.placement = cfg.placement;
        match engine.verifier(opts) {
            Ok(v) => verifiers.push(v),
            Err(e) => {
                let _ = started.send(Err(format!("profile {}: {e}", p.name)));
                return;
            }
        }
    }
    // A synthetic photo through every verifier: models on the device, pools and shaders
    // built, before /readyz says yes (its one report in the result cache is a few KiB).
    if let Ok(jpeg) = Frame::synthetic(WARM_UP_SIDE, WARM_UP_SIDE, 1).encode_jpeg(90) {
        for v in &verifiers {
            let _ = v.verify(&[Input::bytes("warm-up.jpg", jpeg.clone())]);
        }
    }
    shared.ready.store(true, Ordering::Release);
    let _ = started.send(Ok(()));
    tracing::info!(profiles = verifiers.len(), "engine ready");

    while let Some(batch) = gather(cfg, shared, jobs) {
        shared.metrics.batch(batch.len());
        serve_batch(&engine, &verifiers, shared, batch);
    }
    tracing::info!("engine thread done");
}

fn build_engine(cfg: &Config) -> Result<Engine, String> {
    let engine = cfg.engine.clone().build().map_err(|e| e.to_string())?;
    for w in engine.warnings() {
        tracing::warn!("{}", crate::verify::printable(&w));
    }
    if let Some(gpu) = engine.gpu_info() {
        tracing::info!(%gpu, "gpu adapter");
    }
    if engine.register_face_models(&cfg.models).is_empty() {
        return Err(format!("no face models in {}", cfg.models.display()));
    }
    Ok(engine)
}

/// The next micro-batch, or `None` when the queue is closed and empty.
fn gather(cfg: &Config, shared: &Shared, jobs: &Receiver<Job>) -> Option<Vec<Job>> {
    let first = jobs.recv().ok()?;
    let mut batch = vec![first];
    let until = Instant::now() + cfg.batch_window;
    while batch.len() < cfg.max_batch {
        // requests already waiting join at once
        if let Ok(j) = jobs.try_recv() {
            batch.push(j);
            continue;
        }
        // wait for company only while others are on their way (bodies being read)
        let others = shared.in_flight.load(Ordering::Acquire) > batch.len();
        let left = until.saturating_duration_since(Instant::now());
        if !others || left.is_zero() {
            break;
        }
        match jobs.recv_timeout(left) {
            Ok(j) => batch.push(j),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
        }
    }
    shared.queue_depth.fetch_sub(batch.len(), Ordering::AcqRel);
    Some(batch)
}

fn serve_batch(engine: &Engine, verifiers: &[Verifier<'_>], shared: &Shared, batch: Vec<Job>) {
    let now = Instant::now();
    let mut by_profile: Vec<Vec<Job>> = (0..verifiers.len()).map(|_| Vec::new()).collect();
    for job in batch {
        shared
            .metrics
            .queued(now.saturating_duration_since(job.queued));
        if job.reply.is_closed() || now >= job.deadline {
            // the handler answered 504 (or its client left): the work is dropped
            shared.metrics.expired();
            continue;
        }
        match job.work {
            Work::Verify(k) if k < verifiers.len() => by_profile[k].push(job),
            Work::Verify(_) => {} // not queued by the handlers: they check the index
            Work::Preprocess(ref p) => {
                let npy = engine
                    .run(p, std::slice::from_ref(&job.input))
                    .and_then(|out| {
                        let t = out
                            .items
                            .into_iter()
                            .next()
                            .ok_or_else(|| crate::Error::invalid("no output"))?
                            .result?;
                        let mut buf = Vec::with_capacity(t.as_bytes().len() + 128);
                        t.write_npy(&mut buf)?;
                        Ok(buf)
                    });
                let _ = job.reply.send(Answer::Npy(npy));
            }
        }
    }
    for (v, jobs) in verifiers.iter().zip(by_profile) {
        if jobs.is_empty() {
            continue;
        }
        let inputs: Vec<Input> = jobs.iter().map(|j| j.input.clone()).collect();
        let out = v.verify(&inputs);
        for (job, report) in jobs.into_iter().zip(out.reports) {
            shared.metrics.report(&report);
            tracing::debug!(
                waited_ms = now.saturating_duration_since(job.arrived).as_secs_f64() * 1e3,
                "verified"
            );
            let _ = job.reply.send(Answer::Report(Box::new(report)));
        }
    }
}
