//! Adapter selection and device creation.
//!
//! Preference for [`GpuSelection::Auto`]: discrete, then integrated, then virtual, then
//! software (Mesa lavapipe, llvmpipe, WARP). The chosen adapter's name, backend, driver and
//! the limits that matter are reported in [`GpuInfo`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::info::{GpuInfo, GpuSelection};
use crate::error::{GpuError, Result};

/// A device with its queue, info and loss flag.
#[derive(Debug)]
pub(crate) struct GpuDevice {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) info: GpuInfo,
    pub(crate) lost: Arc<AtomicBool>,
    pub(crate) lost_reason: Arc<Mutex<String>>,
}

impl GpuDevice {
    /// The device-lost error, if the device was lost.
    pub(crate) fn check_lost(&self) -> Result<()> {
        if self.lost.load(Ordering::Acquire) {
            let why = self
                .lost_reason
                .lock()
                .map(|s| s.clone())
                .unwrap_or_else(|_| "unknown".into());
            return Err(GpuError::DeviceLost(why).into());
        }
        Ok(())
    }
}

fn rank(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn info_of(info: &wgpu::AdapterInfo, limits: &wgpu::Limits, features: wgpu::Features) -> GpuInfo {
    GpuInfo {
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: info.driver.clone(),
        driver_info: info.driver_info.clone(),
        pci_bus_id: info.device_pci_bus_id.clone(),
        is_software: info.device_type == wgpu::DeviceType::Cpu,
        max_buffer_size: limits.max_buffer_size,
        max_storage_binding: limits.max_storage_buffer_binding_size,
        max_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
        timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
        shader_f16: features.contains(wgpu::Features::SHADER_F16),
    }
}

fn wrap(device: wgpu::Device, queue: wgpu::Queue, info: GpuInfo) -> GpuDevice {
    let lost = Arc::new(AtomicBool::new(false));
    let lost_reason = Arc::new(Mutex::new(String::new()));
    {
        let lost = lost.clone();
        let lost_reason = lost_reason.clone();
        device.set_device_lost_callback(move |reason, msg| {
            if let Ok(mut r) = lost_reason.lock() {
                *r = format!("{reason:?}: {msg}");
            }
            lost.store(true, Ordering::Release);
        });
    }
    GpuDevice {
        device,
        queue,
        info,
        lost,
        lost_reason,
    }
}

/// Opens the selected adapter. `Ok(None)` when the selection allows running without one.
fn bus_or_none(i: &wgpu::AdapterInfo) -> &str {
    if i.device_pci_bus_id.is_empty() {
        "-"
    } else {
        &i.device_pci_bus_id
    }
}

/// Every adapter that runs compute shaders, one per device (Vulkan preferred when a device
/// has several backends), in the order [`GpuSelection::Index`] counts: hardware adapters
/// by PCI bus id, then the others by name.
fn compute_adapters() -> Vec<wgpu::Adapter> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    if desc.backends.is_empty() {
        desc.backends = wgpu::Backends::PRIMARY;
    }
    let instance = wgpu::Instance::new(desc);
    let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    adapters.retain(|a| {
        a.get_downlevel_capabilities()
            .flags
            .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
    });
    adapters.sort_by_key(|a| {
        let i = a.get_info();
        (
            i.device_pci_bus_id.is_empty(),
            i.device_pci_bus_id.to_ascii_lowercase(),
            i.name.clone(),
            (i.backend != wgpu::Backend::Vulkan) as u32,
        )
    });
    // one entry per device: the first (Vulkan) backend of each
    adapters.dedup_by(|b, a| {
        let (ia, ib) = (a.get_info(), b.get_info());
        ia.name == ib.name && ia.device_pci_bus_id == ib.device_pci_bus_id && ia.device == ib.device
    });
    adapters
}

/// The adapters this machine offers for compute, in [`GpuSelection::Index`] order.
pub fn adapters() -> Vec<GpuInfo> {
    compute_adapters()
        .iter()
        .map(|a| info_of(&a.get_info(), &a.limits(), a.features()))
        .collect()
}

pub(crate) fn open(sel: &GpuSelection) -> Result<Option<GpuDevice>> {
    let required = |msg: String| -> Result<Option<GpuDevice>> {
        match sel {
            GpuSelection::Auto => Ok(None),
            _ => Err(GpuError::NoAdapter(msg).into()),
        }
    };
    let name_filter = match sel {
        GpuSelection::Disabled => return Ok(None),
        GpuSelection::Existing(device, queue) => {
            let info = info_of(&device.adapter_info(), &device.limits(), device.features());
            return Ok(Some(wrap(device.clone(), queue.clone(), info)));
        }
        GpuSelection::Named(n) => Some(n.to_lowercase()),
        _ => None,
    };
    let mut adapters = compute_adapters();
    let listed = || {
        let names: Vec<String> = adapters
            .iter()
            .enumerate()
            .map(|(k, a)| {
                let i = a.get_info();
                format!("{k}: {} [{:?}, pci {}]", i.name, i.backend, bus_or_none(&i))
            })
            .collect();
        if names.is_empty() {
            "no adapter with compute shaders (is a Vulkan driver installed?)".to_string()
        } else {
            format!("adapters: {}", names.join("; "))
        }
    };
    let chosen = match sel {
        GpuSelection::Index(k) => {
            if *k >= adapters.len() {
                return Err(
                    GpuError::NoAdapter(format!("gpu index {k} requested; {}", listed())).into(),
                );
            }
            Some(adapters.swap_remove(*k))
        }
        GpuSelection::PciBus(bus) => {
            let at = adapters
                .iter()
                .position(|a| super::info::same_pci_bus(bus, &a.get_info().device_pci_bus_id));
            match at {
                Some(k) => Some(adapters.swap_remove(k)),
                None => {
                    return Err(GpuError::NoAdapter(format!(
                        "no adapter on pci bus {bus}; {}",
                        listed()
                    ))
                    .into())
                }
            }
        }
        _ => {
            let msg = listed();
            adapters.retain(|a| {
                let i = a.get_info();
                let kind_ok = match sel {
                    GpuSelection::Software => i.device_type == wgpu::DeviceType::Cpu,
                    _ => true,
                };
                let name_ok = name_filter
                    .as_ref()
                    .is_none_or(|n| i.name.to_lowercase().contains(n));
                kind_ok && name_ok
            });
            // Vulkan first among equals: it is the backend measured and tested.
            adapters.sort_by_key(|a| {
                let i = a.get_info();
                (
                    rank(i.device_type),
                    (i.backend != wgpu::Backend::Vulkan) as u32,
                )
            });
            let first = adapters.into_iter().next();
            if first.is_none() {
                return required(format!("no adapter matched {sel:?}; {msg}"));
            }
            first
        }
    };
    let Some(adapter) = chosen else {
        return required(format!("no adapter matched {sel:?}"));
    };
    let features =
        adapter.features() & (wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SHADER_F16);
    let limits = adapter.limits();
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("veridoc"),
        required_features: features,
        required_limits: limits.clone(),
        experimental_features: wgpu::ExperimentalFeatures::default(),
        memory_hints: wgpu::MemoryHints::Performance,
        trace: wgpu::Trace::Off,
    }))
    .map_err(|e| GpuError::RequestDevice(e.to_string()))?;
    let info = info_of(&adapter.get_info(), &limits, features);
    Ok(Some(wrap(device, queue, info)))
}
