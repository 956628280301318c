//! Locks that survive a panic. A std lock is poisoned when a thread panics while holding
//! it, and every later `lock().expect(..)` panics too: one bug in one partition or group
//! would then take down every request and background task that touches the same lock.
//! These accessors take the guard anyway and say so once in the log; the state under the
//! lock is what the panicking code left, which for the broker's locks (role and
//! replication state, a coordinator shard, a log whose file writes are whole batches
//! checked again on recovery) is a state the next operation can continue from.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

fn recovered<G>(poisoned: PoisonError<G>) -> G {
    tracing::error!("a task panicked while holding a lock; continuing with the state it left");
    poisoned.into_inner()
}

pub trait MutexExt<T> {
    /// The guard, whether or not an earlier holder panicked.
    fn locked(&self) -> MutexGuard<'_, T>;
}

impl<T> MutexExt<T> for Mutex<T> {
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(recovered)
    }
}

pub trait RwLockExt<T> {
    fn read_locked(&self) -> RwLockReadGuard<'_, T>;
    fn write_locked(&self) -> RwLockWriteGuard<'_, T>;
}

impl<T> RwLockExt<T> for RwLock<T> {
    fn read_locked(&self) -> RwLockReadGuard<'_, T> {
        self.read().unwrap_or_else(recovered)
    }

    fn write_locked(&self) -> RwLockWriteGuard<'_, T> {
        self.write().unwrap_or_else(recovered)
    }
}

/// Runs one round of a background job; a panic is logged and the job runs again next
/// round instead of ending the task that runs every job.
pub fn run_guarded(job: &str, f: impl FnOnce()) {
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(job, panic = %what, "background job panicked; it runs again at its next tick");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_under_a_lock_does_not_stop_the_next_holder() {
        let lock = std::sync::Arc::new(Mutex::new(1));
        let held = lock.clone();
        let _ = std::thread::spawn(move || {
            let _guard = held.lock().unwrap();
            panic!("bug while holding the lock");
        })
        .join();
        assert!(lock.is_poisoned());
        *lock.locked() += 1;
        assert_eq!(*lock.locked(), 2);
        let mut ran = 0;
        run_guarded("test", || panic!("boom"));
        run_guarded("test", || ran += 1);
        assert_eq!(ran, 1);
    }
}
