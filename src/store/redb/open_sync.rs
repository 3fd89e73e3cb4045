//! Opening an existing file without waiting for a sync: [`LazyOpenSync`].
//!
//! A writable redb open marks the file "in use" before anything else: it rewrites the header
//! with its recovery flag set and syncs it (`begin_writable`), so that a crash while the file is
//! open makes the next open repair the allocator state. That sync is most of what opening a
//! clean file costs (a device flush: 0.2 to several ms on the CI VM, against ~150 µs for the
//! rest of the open and the first lookup).
//!
//! What the sync protects is an *order*: the flag must be on disk before any other byte of the
//! file changes (the pages that the allocator state saved at the last close says are free may be
//! reused by the first commits, and only the flag tells the next open not to trust that state).
//! [`LazyOpenSync`] keeps that order and drops only the wait: the *first* `sync_data` after the
//! open (redb's own, for the flag, or for a repair's commit, which precedes it) is recorded
//! instead of run, and it runs before the next `write`, `set_len` or `sync_data` reaches the
//! file, and at `close`. So no write ever reaches the file before the flag is durable, exactly
//! as without it; a process that only reads between open and close saves a sync.
//!
//! A crash in between (nothing written since the open) leaves the header either as the last
//! close wrote it (clean, and nothing else changed: the file is as that close left it) or with
//! the flag (the next open repairs, as after any crash). Every later `sync_data` runs at once:
//! a durable commit is durable when redb says so, and userdir's redo log has its own file and
//! syncs.

use std::ops::Bound;
use std::sync::atomic::{AtomicU8, Ordering};

use redb::{BackendError, StorageBackend};

/// What redb's backends return for I/O (with `std`).
type BackendIoError = std::io::Error;

/// No sync seen yet.
const FRESH: u8 = 0;
/// The first sync was deferred: it runs before anything else reaches the file.
const PENDING: u8 = 1;
/// Every sync runs at once.
const DONE: u8 = 2;

/// A backend whose first `sync_data` waits until the next change of the file (see the module
/// docs).
#[derive(Debug)]
pub(crate) struct LazyOpenSync<B> {
    inner: B,
    state: AtomicU8,
}

impl<B: StorageBackend> LazyOpenSync<B> {
    pub(crate) fn new(inner: B) -> Self {
        LazyOpenSync {
            inner,
            state: AtomicU8::new(FRESH),
        }
    }

    /// Runs the deferred sync, if any, before the file changes. A failed sync stays pending
    /// (and the change is refused with its error).
    fn settle(&self) -> Result<(), BackendIoError> {
        if self.state.load(Ordering::Acquire) == PENDING {
            self.inner.sync_data()?;
            self.state.store(DONE, Ordering::Release);
        }
        Ok(())
    }
}

impl<B: StorageBackend> StorageBackend for LazyOpenSync<B> {
    fn len(&self) -> Result<u64, BackendIoError> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), BackendIoError> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), BackendIoError> {
        self.settle()?;
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> Result<(), BackendIoError> {
        // redb calls into its backend from one thread at a time for writes (its header lock and
        // the single writer); the compare-exchange keeps the first sync the only one deferred.
        if self
            .state
            .compare_exchange(FRESH, PENDING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return Ok(());
        }
        self.settle()?;
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), BackendIoError> {
        self.settle()?;
        self.inner.write(offset, data)
    }

    fn close(&self) -> Result<(), BackendIoError> {
        let settled = self.settle();
        let closed = self.inner.close();
        settled.and(closed)
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A backend in memory that logs what reaches it.
    #[derive(Debug, Default)]
    struct Log {
        data: Mutex<Vec<u8>>,
        ops: Arc<Mutex<Vec<&'static str>>>,
    }

    impl StorageBackend for Log {
        fn len(&self) -> Result<u64, BackendIoError> {
            Ok(self.data.lock().unwrap().len() as u64)
        }
        fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), BackendIoError> {
            let d = self.data.lock().unwrap();
            let o = usize::try_from(offset).unwrap();
            out.copy_from_slice(&d[o..o + out.len()]);
            Ok(())
        }
        fn set_len(&self, len: u64) -> Result<(), BackendIoError> {
            self.ops.lock().unwrap().push("set_len");
            self.data
                .lock()
                .unwrap()
                .resize(usize::try_from(len).unwrap(), 0);
            Ok(())
        }
        fn sync_data(&self) -> Result<(), BackendIoError> {
            self.ops.lock().unwrap().push("sync");
            Ok(())
        }
        fn write(&self, offset: u64, data: &[u8]) -> Result<(), BackendIoError> {
            self.ops.lock().unwrap().push("write");
            let mut d = self.data.lock().unwrap();
            let o = usize::try_from(offset).unwrap();
            d[o..o + data.len()].copy_from_slice(data);
            Ok(())
        }
    }

    #[test]
    fn the_first_sync_runs_before_the_next_change_and_later_ones_at_once() {
        let log = Log::default();
        let ops = Arc::clone(&log.ops);
        let b = LazyOpenSync::new(log);
        b.set_len(8).unwrap();
        b.write(0, b"flag").unwrap();
        b.sync_data().unwrap();
        let mut out = [0u8; 4];
        b.read(0, &mut out).unwrap();
        assert_eq!(&out, b"flag");
        assert_eq!(*ops.lock().unwrap(), ["set_len", "write"]);
        b.write(4, b"page").unwrap();
        assert_eq!(*ops.lock().unwrap(), ["set_len", "write", "sync", "write"]);
        b.sync_data().unwrap();
        assert_eq!(
            *ops.lock().unwrap(),
            ["set_len", "write", "sync", "write", "sync"]
        );
    }

    #[test]
    fn a_deferred_sync_runs_at_close_and_before_a_second_sync() {
        let log = Log::default();
        let ops = Arc::clone(&log.ops);
        let b = LazyOpenSync::new(log);
        b.sync_data().unwrap();
        b.close().unwrap();
        assert_eq!(*ops.lock().unwrap(), ["sync"]);
        let log = Log::default();
        let ops = Arc::clone(&log.ops);
        let b = LazyOpenSync::new(log);
        b.sync_data().unwrap();
        b.sync_data().unwrap();
        assert_eq!(*ops.lock().unwrap(), ["sync", "sync"]);
    }
}
