//! Time, injected: the directory reads the clock only through [`Clock`], so tests control it.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::user::UnixMillis;

/// A source of the current time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + Debug {
    /// The current instant.
    fn now(&self) -> UnixMillis;
}

/// The system's wall clock. The default.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place the wall clock is read
    fn now(&self) -> UnixMillis {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
    }
}

/// A clock that moves only when told to: for tests.
///
/// # Examples
/// ```
/// use userdir::{Clock, ManualClock};
/// let clock = ManualClock::new(1_000);
/// clock.advance(500);
/// assert_eq!(clock.now(), 1_500);
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock showing `start`.
    #[must_use]
    pub fn new(start: UnixMillis) -> Self {
        ManualClock(Arc::new(AtomicI64::new(start)))
    }
    /// Moves the clock forward by `ms` milliseconds.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
    /// Sets the clock.
    pub fn set(&self, at: UnixMillis) {
        self.0.store(at, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixMillis {
        self.0.load(Ordering::SeqCst)
    }
}

/// Parses an RFC 3339 date-time (`2010-01-23T04:56:22Z`, optional fraction, a `Z` or `±hh:mm`
/// offset, which is honoured) to ms since the Unix epoch, with the `jiff` crate. `None` for
/// anything else: an impossible date, a missing offset, another ISO 8601 shape, or an instant
/// outside the years -9999 to 9999. A leap second (`23:59:60`) reads as `23:59:59`.
pub(crate) fn parse_rfc3339_ms(s: &str) -> Option<UnixMillis> {
    let s = s.trim();
    // jiff also reads other ISO 8601 / RFC 9557 shapes: only RFC 3339's is taken here.
    let b = s.as_bytes();
    let shaped = b.len() >= 20
        && b.get(4) == Some(&b'-')
        && b.get(7) == Some(&b'-')
        && matches!(b.get(10), Some(b'T' | b't' | b' '))
        && b.get(13) == Some(&b':')
        && b.get(16) == Some(&b':')
        && !s.contains('[')
        && rfc3339_offset(b);
    if !shaped {
        return None;
    }
    let ts: jiff::Timestamp = s.parse().ok()?;
    Some(ts.as_millisecond())
}

/// Whether the text ends with an RFC 3339 offset: `Z` or `±hh:mm`.
fn rfc3339_offset(b: &[u8]) -> bool {
    match b {
        [.., b'Z' | b'z'] => true,
        [.., b'+' | b'-', h1, h2, b':', m1, m2] => {
            [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit())
        }
        _ => false,
    }
}

/// Parses a `YYYY-MM-DD` date that exists (no February 30th) to the ms since the Unix epoch
/// of its midnight UTC, with the `jiff` crate.
pub(crate) fn parse_date_ms(s: &str) -> Option<UnixMillis> {
    let b = s.as_bytes();
    let shaped = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    if !shaped {
        return None;
    }
    let date: jiff::civil::Date = s.parse().ok()?;
    let ts = jiff::tz::Offset::UTC
        .to_timestamp(date.to_datetime(jiff::civil::Time::midnight()))
        .ok()?;
    Some(ts.as_millisecond())
}
