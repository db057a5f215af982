//! The GPU path's plain types, without wgpu: the selection, the adapter's description, the
//! pool's memory accounting and a batch's timings. Both the wgpu backend and its disabled
//! twin (built without the `gpu` feature) export them, so the engine reads the same in both
//! builds.

use std::time::Duration;

use serde::Serialize;

/// Which GPU the engine uses.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum GpuSelection {
    /// The best adapter found (discrete > integrated > software); none is fine (CPU only).
    #[default]
    Auto,
    /// Like `Auto`, but building the engine fails when no adapter exists.
    Required,
    /// Never use a GPU.
    Disabled,
    /// Only a software adapter (lavapipe/llvmpipe): for tests on machines without a GPU.
    Software,
    /// The first adapter whose name contains this string (case-insensitive).
    Named(String),
    /// The adapter at this position (0-based) in [`adapter order`](GpuSelection::parse):
    /// hardware adapters by PCI bus id (the order of `nvidia-smi` and of CUDA with
    /// `CUDA_DEVICE_ORDER=PCI_BUS_ID`), then the others by name.
    Index(usize),
    /// The adapter on this PCI bus (`0000:3b:00.0`, or without the domain: `3b:00.0`),
    /// as `nvidia-smi --query-gpu=pci.bus_id` prints it (case-insensitive).
    PciBus(String),
    /// A device and queue the embedding application already has.
    #[cfg(feature = "gpu")]
    Existing(wgpu::Device, wgpu::Queue),
}

impl std::fmt::Debug for GpuSelection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GpuSelection::Auto => write!(f, "Auto"),
            GpuSelection::Required => write!(f, "Required"),
            GpuSelection::Disabled => write!(f, "Disabled"),
            GpuSelection::Software => write!(f, "Software"),
            GpuSelection::Named(n) => write!(f, "Named({n:?})"),
            GpuSelection::Index(i) => write!(f, "Index({i})"),
            GpuSelection::PciBus(b) => write!(f, "PciBus({b:?})"),
            #[cfg(feature = "gpu")]
            GpuSelection::Existing(..) => write!(f, "Existing(..)"),
        }
    }
}

impl GpuSelection {
    /// A selection from a command line or the `VERIDOC_GPU` variable:
    ///
    /// | spec | selection |
    /// |---|---|
    /// | `auto` | [`GpuSelection::Auto`] |
    /// | `required` | [`GpuSelection::Required`] |
    /// | `none`, `off` | [`GpuSelection::Disabled`] |
    /// | `software` | [`GpuSelection::Software`] |
    /// | `2` | [`GpuSelection::Index`] |
    /// | `pci:0000:3b:00.0` | [`GpuSelection::PciBus`] |
    /// | `cuda` | the first id of `CUDA_VISIBLE_DEVICES` (what Ray and Slurm set for a GPU task) as an index; Vulkan ignores that variable, so every worker would otherwise open the first GPU |
    /// | `name:H200`, or any other text | [`GpuSelection::Named`] |
    ///
    /// # Errors
    /// `InvalidSpec` (field `gpu`) for an empty spec, or `cuda` when `CUDA_VISIBLE_DEVICES`
    /// is unset, empty or holds GPU UUIDs (select by `pci:` instead).
    pub fn parse(spec: &str) -> crate::Result<GpuSelection> {
        let s = spec.trim();
        let bad = |why: String| crate::Error::spec("gpu", why);
        Ok(match s.to_ascii_lowercase().as_str() {
            "" => return Err(bad("empty gpu selection".into())),
            "auto" => GpuSelection::Auto,
            "required" => GpuSelection::Required,
            "none" | "off" | "disabled" => GpuSelection::Disabled,
            "software" => GpuSelection::Software,
            "cuda" => {
                let v = std::env::var("CUDA_VISIBLE_DEVICES").unwrap_or_default();
                let first = v.split(',').next().unwrap_or("").trim().to_string();
                match first.parse::<usize>() {
                    Ok(i) => GpuSelection::Index(i),
                    Err(_) if first.is_empty() => {
                        return Err(bad(
                            "`cuda`: CUDA_VISIBLE_DEVICES is unset or empty (no GPU assigned)"
                                .into(),
                        ))
                    }
                    Err(_) => {
                        return Err(bad(format!(
                            "`cuda`: CUDA_VISIBLE_DEVICES={v:?} is not an index \
                             (UUIDs cannot be matched to Vulkan adapters: use pci:<bus id>)"
                        )))
                    }
                }
            }
            l if l.starts_with("pci:") => GpuSelection::PciBus(s[4..].trim().to_string()),
            l if l.starts_with("name:") => GpuSelection::Named(s[5..].trim().to_string()),
            l if l.bytes().all(|b| b.is_ascii_digit()) => {
                GpuSelection::Index(l.parse().map_err(|e| bad(format!("{s:?}: {e}")))?)
            }
            _ => GpuSelection::Named(s.to_string()),
        })
    }
}

/// True when `bus` (as the user wrote it) names the adapter on `adapter_bus` (as the
/// driver reports it): case-insensitive, the PCI domain optional.
#[cfg_attr(
    not(feature = "gpu"),
    allow(dead_code, reason = "only the wgpu backend selects")
)]
pub(crate) fn same_pci_bus(bus: &str, adapter_bus: &str) -> bool {
    let norm = |b: &str| {
        let b = b.trim().to_ascii_lowercase();
        // 0000:3b:00.0 -> 3b:00.0 (domain 0 is implied); keep other domains
        match b.strip_prefix("0000:") {
            Some(rest) => rest.to_string(),
            None => b,
        }
    };
    let (a, b) = (norm(bus), norm(adapter_bus));
    !a.is_empty()
        && (a == b || b.strip_suffix(".0") == Some(&a) || a.strip_suffix(".0") == Some(&b))
}

/// What the engine knows about its GPU.
#[derive(Debug, Clone, Serialize)]
pub struct GpuInfo {
    /// Adapter name (`NVIDIA H200`, `llvmpipe (LLVM 15.0.6, 256 bits)`).
    pub name: String,
    /// Graphics backend (`Vulkan`, `Metal`, ...).
    pub backend: String,
    /// `DiscreteGpu`, `IntegratedGpu`, `VirtualGpu`, `Cpu` or `Other`.
    pub device_type: String,
    /// Driver name.
    pub driver: String,
    /// Driver version details.
    pub driver_info: String,
    /// PCI bus id (`0000:3b:00.0`; empty when the driver does not say).
    pub pci_bus_id: String,
    /// True for software adapters (their "GPU" shares the CPU cores).
    pub is_software: bool,
    /// Largest buffer.
    pub max_buffer_size: u64,
    /// Largest storage binding (images and chunks are split to fit).
    pub max_storage_binding: u64,
    /// Largest workgroup count per dimension.
    pub max_workgroups_per_dimension: u32,
    /// Whether GPU timestamps are available (kernel times in reports).
    pub timestamps: bool,
    /// Whether the adapter has `SHADER_F16` (not needed: f16 output is computed exactly).
    pub shader_f16: bool,
}

impl std::fmt::Display for GpuInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}, {}, driver {} {}), max storage binding {}, timestamps {}",
            self.name,
            self.backend,
            self.device_type,
            self.driver,
            self.driver_info,
            crate::error::fmt_bytes(self.max_storage_binding),
            if self.timestamps { "yes" } else { "no" }
        )
    }
}

/// Memory statistics of the GPU pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct GpuMemoryUsage {
    /// The budget in bytes.
    pub limit: u64,
    /// Bytes of live buffers (in use or pooled).
    pub used: u64,
    /// Of which pooled (free for reuse).
    pub pooled: u64,
    /// Peak of `used`.
    pub peak: u64,
}

/// Per-stage timings of a GPU batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct GpuTimings {
    /// Host time filling upload buffers (parallel memcpy of pixels and coefficients).
    pub upload: Duration,
    /// GPU execution of the compute passes, from timestamps (zero when unsupported).
    pub kernel: Duration,
    /// Host time waiting for results (submission to mapped readback).
    pub wait: Duration,
    /// Host time copying results out of mapped readback buffers.
    pub readback: Duration,
    /// Chunks submitted.
    pub chunks: usize,
    /// Bytes uploaded.
    pub bytes_up: u64,
    /// Bytes read back.
    pub bytes_down: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections_parse_from_specs() {
        let p = |s: &str| format!("{:?}", GpuSelection::parse(s).unwrap());
        assert_eq!(p("auto"), "Auto");
        assert_eq!(p(" Software "), "Software");
        assert_eq!(p("off"), "Disabled");
        assert_eq!(p("2"), "Index(2)");
        assert_eq!(p("pci:0000:3B:00.0"), "PciBus(\"0000:3B:00.0\")");
        assert_eq!(p("name:H200"), "Named(\"H200\")");
        assert_eq!(p("llvmpipe"), "Named(\"llvmpipe\")");
        assert!(GpuSelection::parse("").is_err());
        assert!(same_pci_bus("3b:00.0", "0000:3b:00.0"));
        assert!(same_pci_bus("0000:3B:00.0", "0000:3b:00.0"));
        assert!(same_pci_bus("3b:00", "0000:3b:00.0"));
        assert!(!same_pci_bus("3b:00.0", "0000:3c:00.0"));
        assert!(!same_pci_bus("", ""));
    }
}
