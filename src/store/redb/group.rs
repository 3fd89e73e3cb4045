//! Group commit: concurrent single-operation writes share one redb write transaction and one
//! sync (one redo log frame, see `wal`; or one redb fsync for directories without a log).
//!
//! A caller queues its operation. If no leader is committing, it becomes the leader: it takes
//! every queued operation, runs them one after another in one write transaction, commits, and
//! hands each caller its own outcome. Callers arriving while the leader commits queue up and are
//! served together by the next leader, so under load one fsync serves many writes; alone, a
//! caller leads at once and pays nothing extra.
//!
//! Every grouped operation checks everything it can refuse before it changes anything, so an
//! operation that fails its checks writes nothing and the others in its group are unaffected. A
//! storage failure aborts the whole group and every caller in it gets the error. A call returns
//! only after the commit that contains it, with the directory's durability.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::{Durability, Store, Touched, Writer, guard, wal};
use crate::error::{Error, Result, StorageError};

type Job = Box<dyn FnOnce(&mut super::super::Writer<'_>) + Send>;

/// Why a group did not commit.
#[derive(Clone, Debug)]
enum GroupFailure {
    NeedsReopen,
    Storage(StorageError),
    Corrupt(String),
}

impl From<GroupFailure> for Error {
    fn from(f: GroupFailure) -> Self {
        match f {
            GroupFailure::NeedsReopen => Error::NeedsReopen,
            GroupFailure::Storage(s) => Error::Storage(s),
            GroupFailure::Corrupt(s) => Error::Corrupt(s),
        }
    }
}

impl GroupFailure {
    /// Keeps the failure's kind and cause (no second "storage failure:" prefix).
    fn from_error(e: Error) -> GroupFailure {
        match e {
            Error::NeedsReopen => GroupFailure::NeedsReopen,
            Error::Storage(s) => GroupFailure::Storage(s),
            Error::Corrupt(c) => GroupFailure::Corrupt(c),
            other => GroupFailure::Storage(StorageError::msg(other.to_string())),
        }
    }
}

#[derive(Default)]
struct State {
    queue: Vec<(u64, Job)>,
    leader: bool,
    next_ticket: u64,
    done: HashMap<u64, Result<(), GroupFailure>>,
}

/// The queue of operations waiting for a commit.
#[derive(Default)]
pub(crate) struct Group {
    state: Mutex<State>,
    wake: Condvar,
}

impl Store {
    /// Runs one operation `f` in a write transaction shared with concurrent callers (see the
    /// module docs). `f` must check before it mutates: if it returns `Err`, it must have changed
    /// nothing.
    pub(crate) fn write_grouped<T: Send + 'static>(
        &self,
        durability: Durability,
        f: impl FnOnce(&mut super::super::Writer<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        if self.is_read_only() {
            return Err(Error::ReadOnly);
        }
        let slot: Arc<Mutex<Option<Result<T>>>> = Arc::new(Mutex::new(None));
        let out = Arc::clone(&slot);
        let job: Job = Box::new(move |w| {
            let r = f(w);
            *out.lock() = Some(r);
        });
        let mut st = self.group.state.lock();
        st.next_ticket += 1;
        let ticket = st.next_ticket;
        st.queue.push((ticket, job));
        let outcome = loop {
            if let Some(o) = st.done.remove(&ticket) {
                break o;
            }
            if st.leader {
                self.group.wake.wait(&mut st);
                continue;
            }
            st.leader = true;
            let batch = std::mem::take(&mut st.queue);
            let results = MutexGuard::unlocked(&mut st, || self.commit_batch(durability, batch));
            st.done.extend(results);
            st.leader = false;
            self.group.wake.notify_all();
        };
        drop(st);
        outcome.map_err(Error::from)?;
        slot.lock()
            .take()
            .unwrap_or_else(|| Err(Error::storage_msg("a grouped write produced no result")))
    }

    fn commit_batch(
        &self,
        durability: Durability,
        batch: Vec<(u64, Job)>,
    ) -> Vec<(u64, Result<(), GroupFailure>)> {
        let tickets: Vec<u64> = batch.iter().map(|(t, _)| *t).collect();
        // Never unwinds: a panic here would leave `leader` set and every waiter asleep.
        let result = guard::catch(|| self.try_batch(durability, batch)).unwrap_or_else(|_| {
            self.failed
                .store(true, std::sync::atomic::Ordering::Release);
            Err(GroupFailure::Corrupt(guard::panic_text("a group commit")))
        });
        tickets.into_iter().map(|t| (t, result.clone())).collect()
    }

    fn try_batch(
        &self,
        durability: Durability,
        batch: Vec<(u64, Job)>,
    ) -> Result<(), GroupFailure> {
        if self.failed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(GroupFailure::NeedsReopen);
        }
        let db = self.db.read();
        let db = match db.as_ref() {
            Some(super::Db::Rw(d)) => d,
            Some(super::Db::Ro(_)) => return Err(GroupFailure::from_error(Error::ReadOnly)),
            None => return Err(GroupFailure::NeedsReopen),
        };
        let txn = db
            .begin_write()
            .map_err(|e| GroupFailure::from_error(self.fail(e)))?;
        let (broken, redo, touched) = {
            let mut w = super::super::Writer::Redb(
                Writer::new(&txn, self).map_err(GroupFailure::from_error)?,
            );
            for (_, job) in batch {
                job(&mut w);
            }
            match w.redb() {
                Some(w) => (
                    w.broken,
                    std::mem::take(&mut w.redo),
                    std::mem::take(&mut w.touched),
                ),
                None => (true, wal::Redo::default(), Touched::default()),
            }
        };
        let ended = if broken {
            let _ = txn.abort();
            Err(GroupFailure::Storage(StorageError::msg(
                "a write failed inside the transaction; nothing was committed",
            )))
        } else {
            self.commit(txn, &redo, durability)
                .map_err(GroupFailure::from_error)
        };
        // Before any caller of the group returns (see `cache`).
        self.invalidate(&touched);
        ended
    }
}
