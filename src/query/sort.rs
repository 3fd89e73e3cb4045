//! Sort orders and the opaque page [`Cursor`].

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use super::eval::{Fields, with_caseless};
use crate::error::{Error, Result};
use crate::identity::caseless_key;
use crate::model::{Kind, at};
use crate::store::record::Need;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum SortBy {
    Username,
    Email,
    FullName,
    BirthDate,
    InsertInstant,
    LastLogin,
    /// Any other attribute of the table (its position): a multi-valued one by its primary
    /// (else first) element.
    Attr(u8),
}

/// Cursor codes of [`SortBy::Attr`]: this plus the position.
const ATTR_CODE: u8 = 64;

impl SortBy {
    fn code(self) -> u8 {
        match self {
            SortBy::Username => 1,
            SortBy::Email => 2,
            SortBy::FullName => 3,
            SortBy::BirthDate => 4,
            SortBy::InsertInstant => 5,
            SortBy::LastLogin => 6,
            SortBy::Attr(i) => ATTR_CODE.saturating_add(i),
        }
    }

    fn from_u8(b: u8) -> Option<SortBy> {
        Some(match b {
            1 => SortBy::Username,
            2 => SortBy::Email,
            3 => SortBy::FullName,
            4 => SortBy::BirthDate,
            5 => SortBy::InsertInstant,
            6 => SortBy::LastLogin,
            b if b >= ATTR_CODE && usize::from(b - ATTR_CODE) < crate::model::N_ATTRS => {
                SortBy::Attr(b - ATTR_CODE)
            }
            _ => return None,
        })
    }
}

/// The sort key of attribute `i` of `u`.
fn attr_key<U: Fields + ?Sized>(u: &U, i: usize) -> Key {
    let Some(a) = crate::model::attr(i) else {
        return Key::Missing;
    };
    let text = |x: &str, caseless: bool| {
        Key::Str(if caseless {
            caseless_key(x)
        } else {
            x.to_owned()
        })
    };
    match a.kind {
        Kind::Text => u.text(i).map_or(Key::Missing, |x| text(x, !a.case_exact)),
        Kind::Flag => Key::Int(i64::from(u.flag(i))),
        Kind::Instant | Kind::OptInstant | Kind::Version => u.int(i).map_or(Key::Missing, Key::Int),
        Kind::Strings | Kind::Multi | Kind::Addresses => {
            let mut first = None;
            let mut primary = None;
            u.any_elem(i, &mut |e| {
                let v = e.value.or(e.formatted);
                if first.is_none() {
                    first = v;
                }
                if e.primary == Some(true) {
                    primary = v;
                    return true;
                }
                false
            });
            primary
                .or(first)
                .map_or(Key::Missing, |x| text(x, !a.case_exact))
        }
        Kind::Data | Kind::Hash => Key::Missing,
    }
}

/// One sort key of a [`Search`](crate::query::Search): a field, a direction and where users
/// without a value go.
///
/// Usernames and full names sort by their caseless key (so `bob` and `Bob` are neighbours),
/// emails by their caseless key (the login index's order; for ASCII addresses, the stored
/// lowercase form), birth dates as `YYYY-MM-DD` text, instants
/// numerically. Ties are broken by id, so the order is total. `desc` reverses the whole order,
/// including the id tie-break (with several fields, the id follows the last field's
/// direction); users without a value come last unless [`SortField::missing_first`] is set,
/// whatever the direction (FusionAuth's `missing: _last` default).
///
/// # Examples
/// ```
/// use userdir::query::SortField;
/// let newest_first = SortField::insert_instant().desc();
/// let by_login = SortField::last_login().missing_first();
/// # let _ = (newest_first, by_login);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[must_use]
pub struct SortField {
    pub(crate) by: SortBy,
    pub(crate) desc: bool,
    pub(crate) missing_first: bool,
}

impl SortField {
    fn new(by: SortBy) -> Self {
        SortField {
            by,
            desc: false,
            missing_first: false,
        }
    }
    /// By username (caseless).
    pub fn username() -> Self {
        SortField::new(SortBy::Username)
    }
    /// By email.
    pub fn email() -> Self {
        SortField::new(SortBy::Email)
    }
    /// By full name (caseless).
    pub fn full_name() -> Self {
        SortField::new(SortBy::FullName)
    }
    /// By birth date.
    pub fn birth_date() -> Self {
        SortField::new(SortBy::BirthDate)
    }
    /// By creation instant (served by the insert-instant index).
    pub fn insert_instant() -> Self {
        SortField::new(SortBy::InsertInstant)
    }
    /// By last login instant.
    pub fn last_login() -> Self {
        SortField::new(SortBy::LastLogin)
    }
    /// By any attribute a filter can name (SCIM `sortBy`), or `None` for an unknown one (or
    /// custom data): strings by their caseless key unless the attribute is case-exact,
    /// instants numerically, booleans false first, a multi-valued attribute by its primary
    /// (else first) element's value (RFC 7644 §3.4.2.3).
    ///
    /// # Examples
    /// ```
    /// use userdir::query::SortField;
    /// assert_eq!(SortField::attribute("USERNAME"), Some(SortField::username()));
    /// assert!(SortField::attribute("emails").is_some());
    /// assert!(SortField::attribute("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department").is_some());
    /// assert!(SortField::attribute("nosuch").is_none());
    /// ```
    #[must_use]
    pub fn attribute(path: &str) -> Option<Self> {
        use crate::model::at;
        use crate::query::Attr;
        let i = match Attr::parse(path)? {
            Attr::Field(f) => f.index(),
            Attr::Multi(m, _) => m.index(),
            _ => return None,
        };
        Some(SortField::new(match i {
            at::USERNAME => SortBy::Username,
            at::EMAIL => SortBy::Email,
            at::FULL_NAME => SortBy::FullName,
            at::BIRTH_DATE => SortBy::BirthDate,
            at::CREATED => SortBy::InsertInstant,
            at::LAST_LOGIN => SortBy::LastLogin,
            i => SortBy::Attr(u8::try_from(i).ok()?),
        }))
    }
    /// Descending.
    pub fn desc(mut self) -> Self {
        self.desc = true;
        self
    }
    /// Ascending (the default).
    pub fn asc(mut self) -> Self {
        self.desc = false;
        self
    }
    /// Users without a value come first.
    pub fn missing_first(mut self) -> Self {
        self.missing_first = true;
        self
    }
    /// Users without a value come last (the default).
    pub fn missing_last(mut self) -> Self {
        self.missing_first = false;
        self
    }

    pub(crate) fn key<U: Fields + ?Sized>(self, u: &U) -> Key {
        let s = |o: Option<&str>| o.map_or(Key::Missing, |x| Key::Str(x.to_owned()));
        match self.by {
            SortBy::Username => u
                .username()
                .map_or(Key::Missing, |x| Key::Str(caseless_key(x))),
            SortBy::Email => u
                .email()
                .map_or(Key::Missing, |x| Key::Str(caseless_key(x))),
            SortBy::FullName => u
                .full_name()
                .map_or(Key::Missing, |x| Key::Str(caseless_key(x))),
            SortBy::BirthDate => s(u.birth_date()),
            SortBy::InsertInstant => Key::Int(u.insert_instant()),
            SortBy::LastLogin => u.last_login_instant().map_or(Key::Missing, Key::Int),
            SortBy::Attr(i) => attr_key(u, usize::from(i)),
        }
    }

    /// As [`SortField::key`], into `out`, reusing its string buffer.
    pub(crate) fn key_into<U: Fields + ?Sized>(self, u: &U, out: &mut Key) {
        let text = |x: Option<&str>, caseless: bool, out: &mut Key| {
            let Some(x) = x else {
                *out = Key::Missing;
                return;
            };
            let mut buf = match std::mem::replace(out, Key::Missing) {
                Key::Str(b) => b,
                _ => String::new(),
            };
            buf.clear();
            if caseless {
                with_caseless(x, |k| buf.push_str(k));
            } else {
                buf.push_str(x);
            }
            *out = Key::Str(buf);
        };
        match self.by {
            SortBy::Username => text(u.username(), true, out),
            SortBy::Email => text(u.email(), true, out),
            SortBy::FullName => text(u.full_name(), true, out),
            SortBy::BirthDate => text(u.birth_date(), false, out),
            SortBy::InsertInstant => *out = Key::Int(u.insert_instant()),
            SortBy::LastLogin => *out = u.last_login_instant().map_or(Key::Missing, Key::Int),
            SortBy::Attr(i) => *out = attr_key(u, usize::from(i)),
        }
    }

    /// The record field this key reads.
    pub(crate) fn need(self) -> Need {
        Need::default().with(match self.by {
            SortBy::Username => at::USERNAME,
            SortBy::Email => at::EMAIL,
            SortBy::FullName => at::FULL_NAME,
            SortBy::BirthDate => at::BIRTH_DATE,
            SortBy::InsertInstant => at::CREATED,
            SortBy::LastLogin => at::LAST_LOGIN,
            SortBy::Attr(i) => usize::from(i),
        })
    }
}

/// A sort key value of one user.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Key {
    Missing,
    Str(String),
    Int(i64),
}

/// The total order of rows `(keys, id)` under `fields`.
pub(crate) fn cmp_rows(fields: &[SortField], a: (&[Key], Uuid), b: (&[Key], Uuid)) -> Ordering {
    for (i, f) in fields.iter().enumerate() {
        let (ka, kb) = (a.0.get(i), b.0.get(i));
        let o = match (ka, kb) {
            (Some(Key::Missing), Some(Key::Missing)) | (None, None) => continue,
            (Some(Key::Missing) | None, _) => {
                return if f.missing_first {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
            }
            (_, Some(Key::Missing) | None) => {
                return if f.missing_first {
                    Ordering::Greater
                } else {
                    Ordering::Less
                };
            }
            (Some(x), Some(y)) => x.cmp(y),
        };
        let o = if f.desc { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    let o = a.1.cmp(&b.1);
    if fields.last().is_some_and(|f| f.desc) {
        o.reverse()
    } else {
        o
    }
}

/// Where the next page starts: the sort keys and id of the last row returned, and the sort
/// order they belong to. Opaque; print it with `to_string()` and read it back with `parse()`.
///
/// A page that starts after a cursor returns the rows strictly after that position, so users
/// present throughout a paging session are returned exactly once however many users are
/// inserted or removed between pages (as long as their own sort keys do not change).
///
/// # Examples
/// ```
/// # use userdir::{Argon2Params, Directory, NewUser, query::{Cursor, Search}};
/// # let dir = Directory::builder().hasher(Argon2Params::insecure_fast()).in_memory()?;
/// # for n in ["a", "b", "c"] { dir.create(NewUser::with_username(n))?; }
/// let page = dir.search(&Search::all().limit(2))?;
/// let text = page.next.as_ref().unwrap().to_string();
/// let cursor: Cursor = text.parse()?;
/// let rest = dir.search(&Search::all().limit(2).after(cursor))?;
/// assert_eq!(rest.users.len(), 1);
/// # Ok::<(), userdir::Error>(())
/// ```
///
/// It serializes as that string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub(crate) sort: Vec<SortField>,
    pub(crate) keys: Vec<Key>,
    pub(crate) id: Uuid,
}

const CURSOR_V1: u8 = 1;

impl serde::Serialize for Cursor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Cursor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut b = vec![CURSOR_V1, u8::try_from(self.sort.len()).unwrap_or(u8::MAX)];
        for s in &self.sort {
            b.push(s.by.code());
            b.push(u8::from(s.desc) | (u8::from(s.missing_first) << 1));
        }
        for k in &self.keys {
            match k {
                Key::Missing => b.push(0),
                Key::Str(s) => {
                    b.push(1);
                    b.extend_from_slice(&u32::try_from(s.len()).unwrap_or(0).to_be_bytes());
                    b.extend_from_slice(s.as_bytes());
                }
                Key::Int(i) => {
                    b.push(2);
                    b.extend_from_slice(&i.to_be_bytes());
                }
            }
        }
        b.extend_from_slice(self.id.as_bytes());
        f.write_str(&URL_SAFE_NO_PAD.encode(b))
    }
}

fn bad() -> Error {
    Error::InvalidCursor("not a cursor of this library".into())
}

struct Rd<'a>(&'a [u8]);
impl Rd<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.0.len() < n {
            return Err(bad());
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn byte(&mut self) -> Result<u8> {
        self.take(1)?.first().copied().ok_or_else(bad)
    }
}

impl FromStr for Cursor {
    type Err = Error;
    fn from_str(s: &str) -> Result<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(s.trim()).map_err(|_| bad())?;
        let mut r = Rd(&bytes);
        if r.byte()? != CURSOR_V1 {
            return Err(bad());
        }
        let n = r.byte()?;
        let mut sort = Vec::new();
        for _ in 0..n {
            let by = SortBy::from_u8(r.byte()?).ok_or_else(bad)?;
            let flags = r.byte()?;
            if flags > 3 {
                return Err(bad());
            }
            sort.push(SortField {
                by,
                desc: flags & 1 != 0,
                missing_first: flags & 2 != 0,
            });
        }
        let mut keys = Vec::new();
        for _ in 0..n {
            keys.push(match r.byte()? {
                0 => Key::Missing,
                1 => {
                    let len = u32::from_be_bytes(r.take(4)?.try_into().map_err(|_| bad())?);
                    let s = r.take(usize::try_from(len).map_err(|_| bad())?)?;
                    Key::Str(String::from_utf8(s.to_vec()).map_err(|_| bad())?)
                }
                2 => Key::Int(i64::from_be_bytes(
                    r.take(8)?.try_into().map_err(|_| bad())?,
                )),
                _ => return Err(bad()),
            });
        }
        let id = Uuid::from_slice(r.take(16)?).map_err(|_| bad())?;
        if !r.0.is_empty() {
            return Err(bad());
        }
        Ok(Cursor { sort, keys, id })
    }
}
