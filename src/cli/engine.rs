//! The engine's flags, shared by `verify`, `preprocess` and `serve` (flattened into each
//! command's arguments): where the work runs, which GPU, threads, memory budgets and the
//! result cache. One struct, so the three commands take the same flags with the same
//! defaults and build their engines the same way.

use std::path::PathBuf;
use std::time::Duration;

use super::io::parse_size;
use super::{DeviceArg, Fatal};
use crate::cache::CacheConfig;
use crate::{Engine, EngineBuilder, MemoryLimit};

/// Default time to live of the result cache's disk entries: 24 h, [`CacheConfig`]'s own
/// default (identity photos should not linger).
const DEFAULT_CACHE_TTL_S: u64 = 24 * 3600;

#[derive(clap::Args, Debug, Clone)]
pub(super) struct EngineArgs {
    /// Where the networks and their preprocessing run (auto: the scheduler decides per
    /// batch from its calibrated cost model).
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub(super) device: DeviceArg,
    /// Which GPU: auto, software, an index (`veridoc::gpu::adapters` order: by PCI bus),
    /// pci:BUS, name:TEXT, or cuda (the first id of CUDA_VISIBLE_DEVICES, as Ray and Slurm
    /// assign GPUs; Vulkan itself ignores that variable).
    #[arg(long, env = "VERIDOC_GPU", value_name = "SPEC", default_value = "auto")]
    gpu: String,
    /// CPU worker threads. Default: all cores.
    #[arg(long)]
    threads: Option<usize>,
    /// Host memory budget, with its unit (512MiB, 2GiB). Default: half the available memory.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    host_budget: Option<u64>,
    /// GPU memory budget, with its unit (1GiB). Default: derived from the adapter.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    gpu_budget: Option<u64>,
    /// Persistent result cache directory: repeats (a second run, a restarted server) are
    /// answered from it. Default: none (nothing is written to disk).
    #[arg(long, value_name = "DIR")]
    pub(super) cache_dir: Option<PathBuf>,
    /// Memory tier of the result cache.
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = parse_size)]
    cache_memory: u64,
    /// Disk tier of the result cache (with --cache-dir; least recently used entries go).
    #[arg(long, value_name = "SIZE", default_value = "2GiB", value_parser = parse_size)]
    cache_disk: u64,
    /// Time to live of the result cache's disk entries, in seconds.
    #[arg(long, default_value_t = DEFAULT_CACHE_TTL_S, value_name = "S")]
    cache_ttl_s: u64,
    /// Disable the result cache (every item runs the engine).
    #[arg(long)]
    pub(super) no_cache: bool,
}

/// When the result cache has a memory tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MemoryTier {
    /// Only with `--cache-dir` (a batch run: nothing kept unless asked for).
    WithDir,
    /// Always (unless `--no-cache`): a server answers repeats of the same bytes from it.
    Always,
}

impl EngineArgs {
    /// Where every batch runs (`None`: the scheduler decides).
    pub(super) fn placement(&self) -> Option<crate::Placement> {
        self.device.policy().1
    }

    /// The engine these flags describe (not built yet).
    pub(super) fn builder(&self, tier: MemoryTier) -> Result<EngineBuilder, Fatal> {
        let (policy, _) = self.device.policy();
        let mut b = Engine::builder()
            .device_policy(policy)
            .gpu(crate::gpu::GpuSelection::parse(&self.gpu)?);
        if let Some(t) = self.threads {
            b = b.cpu_threads(t);
        }
        if let Some(l) = self.host_budget {
            b = b.host_memory_limit(MemoryLimit::Bytes(l));
        }
        if let Some(l) = self.gpu_budget {
            b = b.gpu_memory_limit(l);
        }
        if self.no_cache {
            return Ok(b);
        }
        let results = CacheConfig::memory(self.cache_memory)
            .ttl(Duration::from_secs(self.cache_ttl_s))
            .disk_bytes(self.cache_disk);
        match &self.cache_dir {
            Some(dir) => {
                b = b
                    .cache_dir(dir)
                    .result_cache(results.disk(dir.join("results")));
            }
            None if tier == MemoryTier::Always => b = b.result_cache(results),
            None => {}
        }
        Ok(b)
    }

    /// The engine, built, with its warnings (an unusable cache directory) on stderr.
    pub(super) fn build(&self, tier: MemoryTier) -> Result<Engine, Fatal> {
        let engine = self.builder(tier)?.build()?;
        for w in engine.warnings() {
            eprintln!("warning: {}", crate::verify::printable(&w));
        }
        Ok(engine)
    }
}
