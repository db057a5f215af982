//! Reusable f32 buffers for the CPU networks' activations.
//!
//! A detector pass over a 2 MP fine-pass input writes ~60 MB of activations. Fresh
//! allocations of that size come from the OS as new pages (transparent huge pages where
//! enabled), which the kernel zeroes on first touch: on the dev machine that zeroing was
//! 8-31 % of a 12 MP photo's verification (`perf record`, `clear_page_erms`). The engine
//! keeps one [`Scratch`] and hands its buffers to every pass, the way fast_image_resize's
//! `Resizer` owns its scratch buffers.

use std::sync::Mutex;

/// A bounded pool of `Vec<f32>` buffers.
#[derive(Debug)]
pub(crate) struct Scratch {
    bufs: Mutex<Vec<Vec<f32>>>,
    cap_bytes: usize,
}

/// What an engine's scratch pool keeps at most: 192 MiB, enough for the buffers of two
/// concurrent fine passes over 12 MP photos (~60 MB each) and their coarse passes.
pub(crate) const DEFAULT_SCRATCH_BYTES: usize = 192 << 20;

impl Scratch {
    /// A pool keeping at most `cap_bytes` of idle buffers (0: keeps nothing).
    pub(crate) fn new(cap_bytes: usize) -> Scratch {
        Scratch {
            bufs: Mutex::new(Vec::new()),
            cap_bytes,
        }
    }

    /// A buffer of exactly `len` values. Its contents are unspecified (a reused buffer
    /// keeps old values; only growth is zero-filled): the caller writes every element
    /// before reading it.
    pub(crate) fn take(&self, len: usize) -> Vec<f32> {
        let reused = {
            let mut bufs = self.bufs.lock().unwrap_or_else(|e| e.into_inner());
            // the smallest buffer that fits, else the largest (grown below)
            let fit = bufs
                .iter()
                .enumerate()
                .filter(|(_, b)| b.capacity() >= len)
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i);
            let pick = fit.or_else(|| {
                bufs.iter()
                    .enumerate()
                    .max_by_key(|(_, b)| b.capacity())
                    .map(|(i, _)| i)
            });
            pick.map(|i| bufs.swap_remove(i))
        };
        let mut v = reused.unwrap_or_default();
        v.truncate(len);
        v.resize(len, 0.0);
        v
    }

    /// Returns a buffer to the pool; the smallest idle buffers are dropped to stay within
    /// the cap.
    pub(crate) fn give(&self, v: Vec<f32>) {
        let bytes = |b: &Vec<f32>| b.capacity() * std::mem::size_of::<f32>();
        if bytes(&v) > self.cap_bytes || v.capacity() == 0 {
            return;
        }
        let mut bufs = self.bufs.lock().unwrap_or_else(|e| e.into_inner());
        bufs.push(v);
        let mut total: usize = bufs.iter().map(bytes).sum();
        while total > self.cap_bytes {
            let Some(i) = bufs
                .iter()
                .enumerate()
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i)
            else {
                break;
            };
            total -= bytes(&bufs.swap_remove(i));
        }
    }

    /// Bytes held by idle buffers.
    #[cfg(test)]
    pub(crate) fn idle_bytes(&self) -> usize {
        let bufs = self.bufs.lock().unwrap_or_else(|e| e.into_inner());
        bufs.iter()
            .map(|b| b.capacity() * std::mem::size_of::<f32>())
            .sum()
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new(DEFAULT_SCRATCH_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_best_fit_and_bounded() {
        let s = Scratch::new(1000 * 4);
        let a = s.take(100);
        let b = s.take(400);
        assert_eq!((a.len(), b.len()), (100, 400));
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        s.give(a);
        s.give(b);
        // 50 fits in both: the smaller one is handed out; 300 only in the larger
        let c = s.take(50);
        assert_eq!((c.len(), c.as_ptr()), (50, pa));
        let d = s.take(300);
        assert_eq!((d.len(), d.as_ptr()), (300, pb));
        s.give(c);
        s.give(d);
        assert_eq!(s.idle_bytes(), (100 + 400) * 4);
        // over the cap: the smallest idle buffers go
        s.give(Vec::with_capacity(700));
        assert!(s.idle_bytes() <= 1000 * 4);
        // larger than the cap: not kept at all
        let before = s.idle_bytes();
        s.give(vec![0.0; 2000]);
        assert_eq!(s.idle_bytes(), before);
        // growth is zero-filled
        let g = s.take(5000);
        assert_eq!(g.len(), 5000);
        assert!(g[4000..].iter().all(|&v| v == 0.0));
    }
}
