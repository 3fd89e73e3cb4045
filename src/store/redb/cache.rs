//! The user cache: decoded users of recent lookups, served without a read transaction, a
//! table open, B-tree descents or a decode.
//!
//! # Never stale
//!
//! The cache holds users by id; a second map from caseless login key to id serves login
//! lookups. Both are kept consistent with the committed state by two rules:
//!
//! * **Writes invalidate.** Every write transaction notes the ids whose record it puts or
//!   deletes (`Writer::dir_put`/`dir_del`, the only ways the record tree changes; an import
//!   batch empties the cache). After its commit, and before the write returns to its caller,
//!   the store calls [`UserCache::invalidate`]: under the cache's lock it bumps the generation
//!   and removes those users. A read that starts after the write returned can therefore not
//!   find an old entry. A write that fails or panics invalidates too (and a store that failed
//!   bypasses the cache until it is reopened).
//! * **Fills carry the generation they read under.** A lookup that misses reads the
//!   generation *before* it begins its read transaction and offers the user it read with that
//!   generation ([`UserCache::fill`]); under the lock the cache takes it only when no
//!   invalidation happened since. A write that committed before the read began bumped the
//!   generation before that read too, so the read saw it; one that commits after it bumps the
//!   generation and the fill is refused, or the fill came first and the write's invalidation
//!   removes it. Either way no entry outlives a committed change of its user.
//!
//! # Snapshots
//!
//! A read transaction may also take users from the cache (a page of search results, lookups
//! inside [`Directory::read`](crate::Directory::read)), but only users exactly as its snapshot
//! holds them. The generation is even while no write is publishing: just before a write
//! commits to redb it turns odd ([`UserCache::begin_publish`]), and its invalidation turns it
//! even again. A read that finds the same even generation before and after it begins its
//! transaction therefore reads the state of that generation, no more, no less. An entry
//! remembers the generation it was filled under (its users' state then, unchanged since:
//! a later change would have removed it), and such a read takes it only when that generation
//! is not newer than its own ([`UserCache::get_at`]). Fills come only from such reads.
//!
//! Login keys are not invalidated on their own: a cached key names an id, and the answer is
//! the *cached user* of that id only when that user's own record carries the key (its keys are
//! computed when it is filled, by the store's [`IndexRules`](crate::store::IndexRules)). Login
//! keys are unique across users, so a current record that carries the key is the key's owner;
//! anything else is a miss that reads the store.
//!
//! The cache holds at most `capacity` users (the login map at most two keys each); the victim
//! of a full cache is chosen by the CLOCK rule (a user looked up since the hand last passed
//! gets a second chance). No negative answers are cached (a create needs no invalidation).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use uuid::Uuid;

use crate::store::{LoginOwner, UserKeys};
use crate::user::User;

/// Users the cache holds by default.
pub(crate) const DEFAULT_CAPACITY: usize = 16_384;

/// One cached user and the login keys its record carries.
struct Entry {
    user: Arc<User>,
    /// The caseless key of its username and of its email (see `identity`).
    username_key: Option<Box<str>>,
    email_key: Option<Box<str>>,
    /// Looked up since the CLOCK hand last passed.
    referenced: bool,
    /// Which ring slot is this entry's (an id re-filled after an invalidation has a new one).
    stamp: u64,
    /// The generation it was filled under: the user is as every snapshot of that generation
    /// or a later one holds it.
    born: u64,
}

#[derive(Default)]
struct Inner {
    users: HashMap<Uuid, Entry>,
    logins: HashMap<Box<str>, Uuid>,
    /// The CLOCK ring: (id, stamp), oldest first; slots whose stamp no longer matches the
    /// entry's are dead and dropped when the hand reaches them.
    ring: VecDeque<(Uuid, u64)>,
    next_stamp: u64,
    /// Bumped by every invalidation (to an even number) and before every commit (to an odd
    /// one; see the module docs).
    generation: u64,
}

/// A bounded, transactionally consistent cache of decoded users (see the module docs).
pub(crate) struct UserCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for UserCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the users: they hold password hashes.
        f.debug_struct("UserCache")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl UserCache {
    /// A cache of at most `capacity` users; 0 turns it off.
    pub(crate) fn new(capacity: usize) -> UserCache {
        UserCache {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Whether the cache is on.
    pub(crate) fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// The generation to give [`UserCache::fill`]; read it before the read transaction begins.
    pub(crate) fn generation(&self) -> u64 {
        self.inner.lock().generation
    }

    /// The cached user with this id.
    pub(crate) fn get(&self, id: Uuid) -> Option<Arc<User>> {
        self.get_at(id, u64::MAX)
    }

    /// The cached user with this id as a snapshot of `generation` (even, unchanged while its
    /// transaction began) holds it: entries filled under a later generation are not taken.
    pub(crate) fn get_at(&self, id: Uuid, generation: u64) -> Option<Arc<User>> {
        if !self.enabled() {
            return None;
        }
        let mut inner = self.inner.lock();
        let e = inner.users.get_mut(&id)?;
        if e.born > generation {
            return None;
        }
        e.referenced = true;
        Some(Arc::clone(&e.user))
    }

    /// A write is about to commit: snapshots that begin from now until its invalidation may
    /// or may not see it, so they neither fill nor read the cache by generation.
    pub(crate) fn begin_publish(&self) {
        if !self.enabled() {
            return;
        }
        let mut inner = self.inner.lock();
        inner.generation |= 1;
    }

    /// The cached owner of a caseless login key, with its user: only when the cached user's
    /// record carries the key (see the module docs).
    pub(crate) fn login(&self, key: &str) -> Option<(LoginOwner, Arc<User>)> {
        self.login_at(key, u64::MAX)
    }

    /// [`UserCache::login`] as a snapshot of `generation` holds it (see
    /// [`UserCache::get_at`]): keys are unique in every state, so a user that carried the key
    /// then was its owner then.
    pub(crate) fn login_at(&self, key: &str, generation: u64) -> Option<(LoginOwner, Arc<User>)> {
        if !self.enabled() {
            return None;
        }
        let mut inner = self.inner.lock();
        let id = *inner.logins.get(key)?;
        let e = inner.users.get_mut(&id)?;
        if e.born > generation {
            return None;
        }
        let owner = LoginOwner {
            id,
            username: e.username_key.as_deref() == Some(key),
            email: e.email_key.as_deref() == Some(key),
        };
        if !(owner.username || owner.email) {
            return None;
        }
        e.referenced = true;
        Some((owner, Arc::clone(&e.user)))
    }

    /// Offers `user`, read by a transaction that began after [`UserCache::generation`]
    /// returned `generation`, with its keys. Refused when a write invalidated anything since,
    /// or was publishing then (an odd generation).
    pub(crate) fn fill(&self, generation: u64, user: &User, keys: &UserKeys) {
        if !self.enabled() {
            return;
        }
        let username_key: Option<Box<str>> = keys.username.as_deref().map(Box::from);
        let email_key: Option<Box<str>> = keys.email.as_deref().map(Box::from);
        let mut inner = self.inner.lock();
        if inner.generation != generation || generation % 2 == 1 {
            return;
        }
        let id = user.id;
        if let Some(e) = inner.users.get_mut(&id) {
            // Another lookup filled it under the same generation: the same record.
            e.referenced = true;
        } else {
            while inner.users.len() >= self.capacity {
                inner.evict_one();
            }
            inner.next_stamp += 1;
            let stamp = inner.next_stamp;
            for k in [&username_key, &email_key].into_iter().flatten() {
                inner.logins.insert(k.clone(), id);
            }
            inner.users.insert(
                id,
                Entry {
                    user: Arc::new(user.clone()),
                    username_key,
                    email_key,
                    referenced: false,
                    stamp,
                    born: generation,
                },
            );
            inner.ring.push_back((id, stamp));
            inner.compact();
        }
    }

    /// Forgets the users with these ids (all of them with `all`) and refuses fills of reads
    /// that began before: called after every write transaction, before it returns.
    pub(crate) fn invalidate(&self, ids: &[Uuid], all: bool) {
        if !self.enabled() {
            return;
        }
        let mut inner = self.inner.lock();
        inner.generation = (inner.generation | 1) + 1;
        if all {
            let generation = inner.generation;
            let next_stamp = inner.next_stamp;
            *inner = Inner {
                next_stamp,
                generation,
                ..Inner::default()
            };
            return;
        }
        for id in ids {
            inner.remove(*id);
        }
    }

    /// How many users it holds (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().users.len()
    }
}

impl Inner {
    fn remove(&mut self, id: Uuid) {
        if let Some(e) = self.users.remove(&id) {
            for k in [e.username_key, e.email_key].into_iter().flatten() {
                if self.logins.get(&k) == Some(&id) {
                    self.logins.remove(&k);
                }
            }
        }
    }

    /// Removes one user by the CLOCK rule.
    fn evict_one(&mut self) {
        while let Some((id, stamp)) = self.ring.pop_front() {
            match self.users.get_mut(&id) {
                Some(e) if e.stamp == stamp => {
                    if e.referenced {
                        e.referenced = false;
                        self.ring.push_back((id, stamp));
                    } else {
                        self.remove(id);
                        return;
                    }
                }
                // A dead slot (the user was invalidated, or re-filled under a new stamp).
                _ => {}
            }
        }
        // Unreachable while every entry has a live slot; never loop forever regardless.
        self.users.clear();
        self.logins.clear();
    }

    /// Drops dead ring slots once they outnumber the live ones (invalidations leave them).
    fn compact(&mut self) {
        if self.ring.len() > 2 * self.users.len() + 64 {
            let users = &self.users;
            self.ring
                .retain(|(id, stamp)| users.get(id).is_some_and(|e| e.stamp == *stamp));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::Profile;

    fn user(n: u128, name: &str) -> (User, UserKeys) {
        let p = Profile {
            username: Some(name.into()),
            ..Profile::default()
        };
        let u = User::new(Uuid::from_u128(n), p);
        let keys = UserKeys {
            username: Some(name.to_lowercase()),
            ..UserKeys::default()
        };
        (u, keys)
    }

    #[test]
    fn holds_at_most_its_capacity_and_keeps_referenced_users() {
        let c = UserCache::new(4);
        for n in 0..4 {
            let (u, k) = user(n, &format!("u{n}"));
            c.fill(c.generation(), &u, &k);
        }
        assert_eq!(c.len(), 4);
        // Looked up: a second chance.
        assert!(c.get(Uuid::from_u128(0)).is_some());
        let (u, k) = user(9, "u9");
        c.fill(c.generation(), &u, &k);
        assert_eq!(c.len(), 4);
        assert!(c.get(Uuid::from_u128(0)).is_some());
        assert!(c.get(Uuid::from_u128(1)).is_none());
        assert!(c.login("u1").is_none());
        assert_eq!(c.login("u9").map(|(o, _)| o.id), Some(Uuid::from_u128(9)));
        // Many invalidations and refills keep the ring bounded.
        for round in 0..1000 {
            c.invalidate(&[Uuid::from_u128(9)], false);
            let (u, k) = user(9, "u9");
            c.fill(c.generation(), &u, &k);
            assert!(c.inner.lock().ring.len() <= 2 * 4 + 65, "round {round}");
        }
    }

    #[test]
    fn a_fill_from_before_an_invalidation_is_refused() {
        let c = UserCache::new(8);
        let (u, k) = user(1, "ann");
        let g = c.generation();
        c.invalidate(&[Uuid::from_u128(2)], false);
        c.fill(g, &u, &k);
        assert!(c.get(u.id).is_none());
        c.fill(c.generation(), &u, &k);
        assert!(c.get(u.id).is_some());
        c.invalidate(&[u.id], false);
        assert!(c.get(u.id).is_none());
        assert!(c.login("ann").is_none());
    }

    #[test]
    fn snapshots_take_only_entries_not_newer_than_theirs() {
        let c = UserCache::new(8);
        let (u, k) = user(1, "ann");
        let old = c.generation();
        c.invalidate(&[Uuid::from_u128(2)], false);
        let g = c.generation();
        assert_eq!(g % 2, 0);
        c.fill(g, &u, &k);
        assert!(c.get_at(u.id, g).is_some());
        assert!(c.get_at(u.id, g + 2).is_some());
        // A snapshot older than the fill may predate the user's last change.
        assert!(c.get_at(u.id, old).is_none());
        // While a write publishes, fills are refused; its invalidation makes it even again.
        c.begin_publish();
        let publishing = c.generation();
        assert_eq!(publishing % 2, 1);
        let (v, kv) = user(3, "bob");
        c.fill(publishing, &v, &kv);
        assert!(c.get(v.id).is_none());
        c.invalidate(&[], false);
        assert_eq!(c.generation() % 2, 0);
        assert!(c.generation() > publishing);
        // A write that aborts invalidates without publishing: still even.
        c.invalidate(&[], false);
        assert_eq!(c.generation() % 2, 0);
    }

    #[test]
    fn a_login_key_counts_only_while_the_cached_record_carries_it() {
        let c = UserCache::new(8);
        let (u, k) = user(1, "ann");
        c.fill(c.generation(), &u, &k);
        // The user renamed: invalidated and refilled under the new name.
        c.invalidate(&[u.id], false);
        let (u2, k2) = user(1, "bob");
        c.fill(c.generation(), &u2, &k2);
        assert!(c.login("ann").is_none());
        assert!(c.login("bob").is_some());
        let off = UserCache::new(0);
        off.fill(off.generation(), &u, &k);
        assert!(off.get(u.id).is_none());
    }
}
