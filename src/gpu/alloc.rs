//! GPU memory by accounting: every buffer the engine creates goes through [`BufferPool`],
//! which charges its bytes to a budget and recycles buffers by size class.
//!
//! wgpu cannot report free VRAM (gfx-rs/wgpu#2447), so the budget is our own number: by
//! default derived from the adapter ([`default_budget`]), configurable with
//! `EngineBuilder::gpu_memory_limit`. A request that can never fit is
//! `LimitError::ExceedsBudget`; one that does not fit now, with pooled buffers already
//! trimmed, is `LimitError::InsufficientNow`. Neither ever reaches the driver.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::info::GpuMemoryUsage;
use crate::error::{LimitError, Result};

/// Smallest size class: small buffers are rounded up to this (1 MiB).
const MIN_CLASS: u64 = 1 << 20;

/// The default budget: half the largest buffer times four, capped at 4 GiB; 512 MiB for
/// software adapters (their memory is the host's). The engine keeps a ring of three chunks of
/// at most 64 MiB in flight, so ~1 GiB covers every batch shape; the cap leaves room for
/// models and other users of the device.
pub(crate) fn default_budget(info: &super::GpuInfo) -> u64 {
    if info.is_software {
        512 << 20
    } else {
        (info.max_buffer_size.saturating_mul(2)).clamp(1 << 30, 4 << 30)
    }
}

/// Rounds a request up to its size class: powers of two from 1 MiB, so a recycled buffer
/// fits any later request of the same class.
pub(crate) fn size_class(bytes: u64) -> u64 {
    bytes.max(MIN_CLASS).next_power_of_two()
}

#[derive(Debug, Default)]
struct State {
    /// Bytes of every live buffer (in use or pooled).
    used: u64,
    /// Peak of `used`.
    peak: u64,
    /// Recycled buffers by (usage bits, size class).
    free: HashMap<(u32, u64), Vec<wgpu::Buffer>>,
    /// Bytes held by `free`.
    pooled: u64,
}

/// A budgeted, size-class pool of buffers.
#[derive(Debug)]
pub(crate) struct BufferPool {
    limit: u64,
    state: Arc<Mutex<State>>,
}

/// A buffer checked out of the pool; give it back with [`BufferPool::recycle`]. Dropping it
/// instead (an error path) releases the memory and its accounting.
#[derive(Debug)]
pub(crate) struct PooledBuffer {
    pub(crate) buffer: wgpu::Buffer,
    class: u64,
    usage: wgpu::BufferUsages,
    state: Arc<Mutex<State>>,
    returned: bool,
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if !self.returned {
            self.buffer.destroy();
            let mut s = lock(&self.state);
            s.used -= self.class;
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // A poisoned lock only means another thread panicked mid-update of plain counters.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl BufferPool {
    pub(crate) fn new(limit: u64) -> BufferPool {
        BufferPool {
            limit,
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn wrap(&self, buffer: wgpu::Buffer, class: u64, usage: wgpu::BufferUsages) -> PooledBuffer {
        PooledBuffer {
            buffer,
            class,
            usage,
            state: self.state.clone(),
            returned: false,
        }
    }

    pub(crate) fn usage(&self) -> GpuMemoryUsage {
        let s = self.lock();
        GpuMemoryUsage {
            limit: self.limit,
            used: s.used,
            pooled: s.pooled,
            peak: s.peak,
        }
    }

    /// Checks that `bytes` (rounded to its class) could ever be allocated.
    pub(crate) fn check_fits(&self, bytes: u64) -> Result<()> {
        let class = size_class(bytes);
        if class > self.limit {
            return Err(LimitError::ExceedsBudget {
                what: crate::error::Resource::GpuMemory,
                requested: class,
                limit: self.limit,
            }
            .into());
        }
        Ok(())
    }

    /// A buffer of at least `bytes` with `usage`: recycled when one is pooled, otherwise
    /// created (after trimming pooled buffers if the budget needs it). Pooled
    /// `MAP_WRITE` buffers are always mapped (the engine re-maps them before recycling), so
    /// `mapped_at_creation` requests can reuse them.
    pub(crate) fn get(
        &self,
        device: &wgpu::Device,
        label: &str,
        bytes: u64,
        usage: wgpu::BufferUsages,
        mapped_at_creation: bool,
    ) -> Result<PooledBuffer> {
        let class = size_class(bytes);
        self.check_fits(bytes)?;
        let mut s = self.lock();
        let reusable = !mapped_at_creation || usage.contains(wgpu::BufferUsages::MAP_WRITE);
        if reusable {
            if let Some(buffer) = s.free.get_mut(&(usage.bits(), class)).and_then(|v| v.pop()) {
                s.pooled -= class;
                drop(s);
                return Ok(self.wrap(buffer, class, usage));
            }
        }
        if s.used + class > self.limit {
            // Trim pooled buffers (largest classes first) until the request fits.
            let mut keys: Vec<(u32, u64)> = s.free.keys().copied().collect();
            keys.sort_by_key(|k| std::cmp::Reverse(k.1));
            for k in keys {
                while s.used + class > self.limit {
                    let Some(b) = s.free.get_mut(&k).and_then(|v| v.pop()) else {
                        break;
                    };
                    b.destroy();
                    s.used -= k.1;
                    s.pooled -= k.1;
                }
            }
        }
        if s.used + class > self.limit {
            return Err(LimitError::InsufficientNow {
                what: crate::error::Resource::GpuMemory,
                requested: class,
                available: self.limit.saturating_sub(s.used),
            }
            .into());
        }
        s.used += class;
        s.peak = s.peak.max(s.used);
        drop(s);
        let buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: class,
            usage,
            mapped_at_creation,
        });
        Ok(self.wrap(buffer, class, usage))
    }

    /// Returns a buffer to the pool for reuse.
    pub(crate) fn recycle(&self, mut b: PooledBuffer) {
        b.returned = true;
        let mut s = self.lock();
        s.pooled += b.class;
        s.free
            .entry((b.usage.bits(), b.class))
            .or_default()
            .push(b.buffer.clone());
    }

    /// Destroys every pooled buffer; returns the bytes released.
    pub(crate) fn trim(&self) -> u64 {
        let mut s = self.lock();
        let mut freed = 0;
        for (_, v) in s.free.drain() {
            for b in v {
                b.destroy();
            }
        }
        std::mem::swap(&mut freed, &mut s.pooled);
        s.used -= freed;
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_are_powers_of_two_from_one_mib() {
        assert_eq!(size_class(1), 1 << 20);
        assert_eq!(size_class((1 << 20) + 1), 2 << 20);
        assert_eq!(size_class(37 << 20), 64 << 20);
    }

    #[test]
    fn budget_refuses_what_can_never_fit() {
        let p = BufferPool::new(8 << 20);
        let e = p.check_fits(9 << 20).unwrap_err();
        assert!(e.to_string().contains("gpu memory"), "{e}");
        assert!(p.check_fits(8 << 20).is_ok());
    }
}
