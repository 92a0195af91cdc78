//! A slot that one thread at a time may use, taken with one atomic swap.
//!
//! Each virtqueue of a vhost-user port lives in one of these: the PMD thread that serves the
//! queue takes it once per burst, and the control thread takes it (rarely) to start, stop or
//! re-map the queue. When the PMD finds the control thread holding it, it skips the queue for
//! this burst rather than wait, so the datapath never blocks on the control plane. A guest RX
//! queue shared by several PMDs (a guest with fewer queue pairs than the switch has PMDs) is the
//! one case where a PMD waits for another, for the length of one burst, as OVS does with its
//! per-txq locks.

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};

/// A value used by one thread at a time.
pub(crate) struct SpinCell<T> {
    busy: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is reached only through a `Guard`, and at most one guard exists at a time
// (`busy` is swapped from false to true with acquire ordering to make one, and set back with
// release ordering when it drops), so sharing the cell between threads gives each thread
// exclusive access in turn, like a mutex; `T: Send` is needed since the value moves between
// threads' use.
unsafe impl<T: Send> Sync for SpinCell<T> {}

impl<T> SpinCell<T> {
    /// A free cell holding `value`.
    pub(crate) const fn new(value: T) -> SpinCell<T> {
        SpinCell {
            busy: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// The value, unless another thread holds it now.
    #[inline]
    pub(crate) fn try_take(&self) -> Option<Guard<'_, T>> {
        if self.busy.swap(true, Ordering::Acquire) {
            None
        } else {
            Some(Guard { cell: self })
        }
    }

    /// The value, waiting while another thread holds it.
    #[inline]
    pub(crate) fn take(&self) -> Guard<'_, T> {
        loop {
            if let Some(g) = self.try_take() {
                return g;
            }
            while self.busy.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        }
    }
}

/// Exclusive use of a [`SpinCell`]'s value until dropped.
pub(crate) struct Guard<'a, T> {
    cell: &'a SpinCell<T>,
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard is the only one of its cell (see `SpinCell`'s `Sync`).
        unsafe { &*self.cell.value.get() }
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard is the only one of its cell (see `SpinCell`'s `Sync`).
        unsafe { &mut *self.cell.value.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.cell.busy.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn one_holder_at_a_time() {
        let c = SpinCell::new(5);
        let g = c.try_take().unwrap();
        assert!(c.try_take().is_none());
        drop(g);
        *c.take() += 1;
        assert_eq!(*c.try_take().unwrap(), 6);
    }

    #[test]
    fn threads_never_lose_an_update() {
        let c = Arc::new(SpinCell::new(0u64));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let c = Arc::clone(&c);
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        *c.take() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*c.take(), 40_000);
    }
}
