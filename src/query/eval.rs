//! Evaluation of a [`Filter`] on one [`User`], with the SCIM case rules.
//!
//! Evaluation reads a user through [`Fields`], implemented by [`User`] and by a record read in
//! place ([`RecordView`]): a search scan evaluates on views and decodes only the page's users.

use std::cmp::Ordering;

use uuid::Uuid;

use super::parse::{Attr, CompareOp, Filter, Multi, Sub, Value};
use crate::identity::caseless_key;
use crate::store::record::{Need, RecordView, ValueRef, field};
use crate::user::{AttrValue, User};

/// A literal with its derived forms computed once.
#[derive(Debug)]
pub(crate) struct Lit {
    v: Value,
    /// Caseless key of a string literal.
    key: Option<String>,
    /// A string literal read as an RFC 3339 date-time, in ms.
    ms: Option<i64>,
    /// A string literal read as a UUID.
    uuid: Option<Uuid>,
}

/// A filter compiled for repeated evaluation.
#[derive(Debug)]
pub(crate) enum Pred {
    Cmp(Attr, CompareOp, Lit),
    Present(Attr),
    And(Box<Pred>, Box<Pred>),
    Or(Box<Pred>, Box<Pred>),
    Not(Box<Pred>),
    ValuePath(Multi, Box<Pred>),
}

impl Pred {
    pub(crate) fn compile(f: &Filter) -> Pred {
        match f {
            Filter::Compare { attr, op, value } => {
                let (key, ms, uuid) = match value {
                    Value::String(s) => (
                        Some(caseless_key(s)),
                        parse_instant(s),
                        Uuid::parse_str(s).ok(),
                    ),
                    _ => (None, None, None),
                };
                Pred::Cmp(
                    attr.clone(),
                    *op,
                    Lit {
                        v: value.clone(),
                        key,
                        ms,
                        uuid,
                    },
                )
            }
            Filter::Present(a) => Pred::Present(a.clone()),
            Filter::And(a, b) => Pred::And(Box::new(Pred::compile(a)), Box::new(Pred::compile(b))),
            Filter::Or(a, b) => Pred::Or(Box::new(Pred::compile(a)), Box::new(Pred::compile(b))),
            Filter::Not(a) => Pred::Not(Box::new(Pred::compile(a))),
            Filter::ValuePath { attr, filter } => {
                Pred::ValuePath(*attr, Box::new(Pred::compile(filter)))
            }
        }
    }

    /// Whether `u` matches.
    pub(crate) fn matches<U: Fields + ?Sized>(&self, u: &U) -> bool {
        self.eval(u, None)
    }

    /// Whether an element of a multi-valued attribute matches (for PATCH value paths).
    pub(crate) fn matches_element<U: Fields + ?Sized>(&self, u: &U, e: &Elem<'_>) -> bool {
        self.eval(u, Some(e))
    }

    /// The fields of a record evaluation reads.
    pub(crate) fn need(&self) -> Need {
        match self {
            Pred::And(a, b) | Pred::Or(a, b) => a.need().union(b.need()),
            Pred::Not(a) => a.need(),
            Pred::Present(attr) | Pred::Cmp(attr, _, _) => attr_need(attr),
            Pred::ValuePath(m, inner) => inner.need().with(multi_field(*m)),
        }
    }

    fn eval<U: Fields + ?Sized>(&self, u: &U, e: Option<&Elem<'_>>) -> bool {
        match self {
            Pred::And(a, b) => a.eval(u, e) && b.eval(u, e),
            Pred::Or(a, b) => a.eval(u, e) || b.eval(u, e),
            Pred::Not(a) => !a.eval(u, e),
            Pred::Present(attr) => values(u, attr, e, &mut |v| v.present()),
            Pred::ValuePath(m, inner) => elements(u, *m, &mut |el| inner.eval(u, Some(&el))),
            Pred::Cmp(attr, op, lit) => match (op, &lit.v) {
                (CompareOp::Eq, Value::Null) => !values(u, attr, e, &mut |v| v.present()),
                (CompareOp::Ne, Value::Null) => values(u, attr, e, &mut |v| v.present()),
                (CompareOp::Ne, _) => !values(u, attr, e, &mut |v| compare(&v, CompareOp::Eq, lit)),
                _ => values(u, attr, e, &mut |v| compare(&v, *op, lit)),
            },
        }
    }
}

/// The record field a multi-valued attribute reads.
fn multi_field(m: Multi) -> usize {
    match m {
        Multi::Emails => field::EMAIL,
        Multi::PhoneNumbers => field::MOBILE_PHONE,
        Multi::Roles => field::ROLES,
    }
}

/// The record fields `attr` reads (none for the id, which is the record's key, and for an
/// element's sub-attribute, read from the element).
fn attr_need(attr: &Attr) -> Need {
    let none = Need::default();
    let i = match attr {
        Attr::Id | Attr::Element(_) => return none,
        Attr::UserName => field::USERNAME,
        Attr::ExternalId => field::EXTERNAL_ID,
        Attr::Active => field::ACTIVE,
        Attr::Verified => field::VERIFIED,
        Attr::GivenName => field::FIRST_NAME,
        Attr::MiddleName => field::MIDDLE_NAME,
        Attr::FamilyName => field::LAST_NAME,
        Attr::Formatted => field::FULL_NAME,
        Attr::NickName => field::NICK_NAME,
        Attr::BirthDate => field::BIRTH_DATE,
        Attr::ImageUrl => field::IMAGE_URL,
        Attr::Timezone => field::TIMEZONE,
        Attr::PreferredLanguage => field::PREFERRED_LANGUAGES,
        Attr::Emails(_) => field::EMAIL,
        Attr::PhoneNumbers(_) => field::MOBILE_PHONE,
        Attr::Roles(_) => field::ROLES,
        Attr::Created => field::INSERT_INSTANT,
        Attr::LastModified => field::LAST_UPDATE_INSTANT,
        Attr::Version => field::VERSION,
        Attr::LastLogin => field::LAST_LOGIN_INSTANT,
        Attr::Expiry => field::EXPIRY,
        Attr::Data(_) => field::DATA,
    };
    none.with(i)
}

/// What filter evaluation and sort keys read of a user: a decoded [`User`], or a record read
/// in place ([`RecordView`]), of which only the fields its [`Need`] named may be read.
pub(crate) trait Fields {
    fn id(&self) -> Uuid;
    fn username(&self) -> Option<&str>;
    fn email(&self) -> Option<&str>;
    fn external_id(&self) -> Option<&str>;
    fn active(&self) -> bool;
    fn verified(&self) -> bool;
    fn first_name(&self) -> Option<&str>;
    fn middle_name(&self) -> Option<&str>;
    fn last_name(&self) -> Option<&str>;
    fn full_name(&self) -> Option<&str>;
    fn nick_name(&self) -> Option<&str>;
    fn birth_date(&self) -> Option<&str>;
    fn mobile_phone(&self) -> Option<&str>;
    fn image_url(&self) -> Option<&str>;
    fn timezone(&self) -> Option<&str>;
    /// Whether `f` is true for one of the preferred languages.
    fn any_language<'s>(&'s self, f: &mut dyn FnMut(&'s str) -> bool) -> bool;
    /// Whether `f` is true for one of the roles (in role order).
    fn any_role<'s>(&'s self, f: &mut dyn FnMut(&'s str) -> bool) -> bool;
    /// The custom attribute at the top-level key `k`.
    fn data(&self, k: &str) -> Option<DataRef<'_>>;
    fn expiry(&self) -> Option<i64>;
    fn insert_instant(&self) -> i64;
    fn last_update_instant(&self) -> i64;
    fn last_login_instant(&self) -> Option<i64>;
    fn version(&self) -> u64;
}

/// A custom attribute value of a [`User`] or of a [`RecordView`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum DataRef<'a> {
    Owned(&'a AttrValue),
    Borrowed(&'a ValueRef<'a>),
}

impl<'a> DataRef<'a> {
    /// The member `k` of an object.
    fn get(self, k: &str) -> Option<DataRef<'a>> {
        match self {
            DataRef::Owned(AttrValue::Object(m)) => m.get(k).map(DataRef::Owned),
            DataRef::Borrowed(ValueRef::Object(m)) => m.get(k).map(DataRef::Borrowed),
            _ => None,
        }
    }
}

macro_rules! text_fields {
    ($($name:ident),*) => {
        $(fn $name(&self) -> Option<&str> {
            self.$name.as_deref()
        })*
    };
}

impl Fields for User {
    text_fields!(
        username,
        email,
        external_id,
        first_name,
        middle_name,
        last_name,
        full_name,
        nick_name,
        birth_date,
        mobile_phone,
        image_url,
        timezone
    );
    fn id(&self) -> Uuid {
        self.id
    }
    fn active(&self) -> bool {
        self.active
    }
    fn verified(&self) -> bool {
        self.verified
    }
    fn any_language<'s>(&'s self, f: &mut dyn FnMut(&'s str) -> bool) -> bool {
        self.preferred_languages.iter().any(|l| f(l))
    }
    fn any_role<'s>(&'s self, f: &mut dyn FnMut(&'s str) -> bool) -> bool {
        self.roles.iter().any(|r| f(r))
    }
    fn data(&self, k: &str) -> Option<DataRef<'_>> {
        self.data.get(k).map(DataRef::Owned)
    }
    fn expiry(&self) -> Option<i64> {
        self.expiry
    }
    fn insert_instant(&self) -> i64 {
        self.insert_instant
    }
    fn last_update_instant(&self) -> i64 {
        self.last_update_instant
    }
    fn last_login_instant(&self) -> Option<i64> {
        self.last_login_instant
    }
    fn version(&self) -> u64 {
        self.version
    }
}

macro_rules! view_text_fields {
    ($($name:ident),*) => {
        $(fn $name(&self) -> Option<&str> {
            self.$name
        })*
    };
}

impl Fields for RecordView<'_> {
    view_text_fields!(
        username,
        email,
        external_id,
        first_name,
        middle_name,
        last_name,
        full_name,
        nick_name,
        birth_date,
        mobile_phone,
        image_url,
        timezone
    );
    fn id(&self) -> Uuid {
        self.id
    }
    fn active(&self) -> bool {
        self.active
    }
    fn verified(&self) -> bool {
        self.verified
    }
    fn any_language<'s>(&'s self, f: &mut dyn FnMut(&'s str) -> bool) -> bool {
        self.preferred_languages.as_slice().iter().any(|l| f(l))
    }
    fn any_role<'s>(&'s self, f: &mut dyn FnMut(&'s str) -> bool) -> bool {
        self.roles.as_slice().iter().any(|r| f(r))
    }
    fn data(&self, k: &str) -> Option<DataRef<'_>> {
        self.data.get(k).map(DataRef::Borrowed)
    }
    fn expiry(&self) -> Option<i64> {
        self.expiry
    }
    fn insert_instant(&self) -> i64 {
        self.insert_instant
    }
    fn last_update_instant(&self) -> i64 {
        self.last_update_instant
    }
    fn last_login_instant(&self) -> Option<i64> {
        self.last_login_instant
    }
    fn version(&self) -> u64 {
        self.version
    }
}

impl Filter {
    /// Whether `user` matches this filter (the same evaluation [`Directory::search`]
    /// applies).
    ///
    /// [`Directory::search`]: crate::Directory::search
    ///
    /// # Examples
    /// ```
    /// # use userdir::{Argon2Params, Directory, NewUser, query::Filter};
    /// # let dir = Directory::builder().hasher(Argon2Params::insecure_fast()).in_memory()?;
    /// let ann = dir.create(NewUser::with_username("Ann").last_name("Smithson"))?;
    /// let f: Filter = r#"userName eq "ANN" and name.familyName co "son""#.parse()?;
    /// assert!(f.matches(&ann));
    /// # Ok::<(), userdir::Error>(())
    /// ```
    #[must_use]
    pub fn matches(&self, user: &User) -> bool {
        Pred::compile(self).matches(user)
    }
}

/// One element of a multi-valued attribute.
#[derive(Debug)]
pub(crate) struct Elem<'a> {
    pub(crate) value: Option<&'a str>,
    pub(crate) kind: Option<&'static str>,
    pub(crate) primary: Option<bool>,
    pub(crate) caseless: bool,
}

/// Calls `f` on each element of `m`; true as soon as one call is.
pub(crate) fn elements<'a, U: Fields + ?Sized>(
    u: &'a U,
    m: Multi,
    f: &mut dyn FnMut(Elem<'a>) -> bool,
) -> bool {
    match m {
        Multi::Emails => u.email().is_some_and(|x| {
            f(Elem {
                value: Some(x),
                kind: Some("work"),
                primary: Some(true),
                caseless: true,
            })
        }),
        Multi::PhoneNumbers => u.mobile_phone().is_some_and(|x| {
            f(Elem {
                value: Some(x),
                kind: Some("mobile"),
                primary: Some(true),
                caseless: false,
            })
        }),
        Multi::Roles => u.any_role(&mut |r| {
            f(Elem {
                value: Some(r),
                kind: None,
                primary: None,
                caseless: false,
            })
        }),
    }
}

#[derive(Debug)]
enum V<'a> {
    Str(&'a str, bool),
    Bool(bool),
    Int(i64),
    Float(f64),
    Time(i64),
    Id(Uuid),
    /// An object or nested list: present, never equal to a literal.
    Opaque,
}

impl V<'_> {
    fn present(&self) -> bool {
        !matches!(self, V::Str("", _))
    }
}

fn sub_value<'a>(e: &Elem<'a>, s: Sub) -> Option<V<'a>> {
    match s {
        Sub::Value | Sub::Display => e.value.map(|x| V::Str(x, e.caseless)),
        Sub::Type => e.kind.map(|x| V::Str(x, false)),
        Sub::Primary => e.primary.map(V::Bool),
    }
}

fn data_value<'a>(v: DataRef<'a>, f: &mut dyn FnMut(V<'a>) -> bool, nested: bool) -> bool {
    match v {
        DataRef::Owned(v) => match v {
            AttrValue::Null => false,
            AttrValue::Bool(b) => f(V::Bool(*b)),
            AttrValue::Int(i) => f(V::Int(*i)),
            AttrValue::Float(x) => f(V::Float(*x)),
            AttrValue::String(s) => f(V::Str(s, false)),
            AttrValue::Array(xs) if !nested => {
                xs.iter().any(|x| data_value(DataRef::Owned(x), f, true))
            }
            AttrValue::Array(_) | AttrValue::Object(_) => f(V::Opaque),
        },
        DataRef::Borrowed(v) => match v {
            ValueRef::Null => false,
            ValueRef::Bool(b) => f(V::Bool(*b)),
            ValueRef::Int(i) => f(V::Int(*i)),
            ValueRef::Float(x) => f(V::Float(*x)),
            ValueRef::Str(s) => f(V::Str(s, false)),
            ValueRef::Array(xs) if !nested => {
                xs.iter().any(|x| data_value(DataRef::Borrowed(x), f, true))
            }
            ValueRef::Array(_) | ValueRef::Object(_) => f(V::Opaque),
        },
    }
}

/// Calls `f` on each value of `attr` for `u` (or the element `e`); true as soon as one is.
fn values<'a, U: Fields + ?Sized>(
    u: &'a U,
    attr: &Attr,
    e: Option<&Elem<'a>>,
    f: &mut dyn FnMut(V<'a>) -> bool,
) -> bool {
    let s = |o: Option<&'a str>| o.map(|x| V::Str(x, false));
    let one = match attr {
        Attr::Id => Some(V::Id(u.id())),
        Attr::UserName => u.username().map(|x| V::Str(x, true)),
        Attr::ExternalId => s(u.external_id()),
        Attr::Active => Some(V::Bool(u.active())),
        Attr::Verified => Some(V::Bool(u.verified())),
        Attr::GivenName => s(u.first_name()),
        Attr::MiddleName => s(u.middle_name()),
        Attr::FamilyName => s(u.last_name()),
        Attr::Formatted => s(u.full_name()),
        Attr::NickName => s(u.nick_name()),
        Attr::BirthDate => s(u.birth_date()),
        Attr::ImageUrl => s(u.image_url()),
        Attr::Timezone => s(u.timezone()),
        Attr::Created => Some(V::Time(u.insert_instant())),
        Attr::LastModified => Some(V::Time(u.last_update_instant())),
        Attr::LastLogin => u.last_login_instant().map(V::Time),
        Attr::Expiry => u.expiry().map(V::Time),
        Attr::Version => Some(V::Int(i64::try_from(u.version()).unwrap_or(i64::MAX))),
        Attr::PreferredLanguage => {
            return u.any_language(&mut |l| f(V::Str(l, false)));
        }
        Attr::Emails(sub) => {
            return elements(u, Multi::Emails, &mut |el| {
                sub_value(&el, *sub).is_some_and(&mut *f)
            });
        }
        Attr::PhoneNumbers(sub) => {
            return elements(u, Multi::PhoneNumbers, &mut |el| {
                sub_value(&el, *sub).is_some_and(&mut *f)
            });
        }
        Attr::Roles(sub) => {
            return match sub {
                Sub::Value | Sub::Display => u.any_role(&mut |r| f(V::Str(r, false))),
                Sub::Type | Sub::Primary => false,
            };
        }
        Attr::Element(sub) => e.and_then(|el| sub_value(el, *sub)),
        Attr::Data(keys) => {
            let mut cur = None;
            for (i, k) in keys.iter().enumerate() {
                cur = if i == 0 {
                    u.data(k)
                } else {
                    cur.and_then(|c: DataRef<'a>| c.get(k))
                };
            }
            return cur.is_some_and(|v| data_value(v, f, false));
        }
    };
    one.is_some_and(f)
}

fn num_cmp(a: f64, b: f64) -> Option<Ordering> {
    a.partial_cmp(&b)
}

#[allow(clippy::cast_precision_loss)]
fn ord_num(x: &V<'_>, lit: &Value) -> Option<Ordering> {
    let a = match x {
        V::Int(i) | V::Time(i) => *i,
        V::Float(xf) => {
            return match lit {
                Value::Int(l) => num_cmp(*xf, *l as f64),
                Value::Float(l) => num_cmp(*xf, *l),
                _ => None,
            };
        }
        _ => return None,
    };
    match lit {
        Value::Int(l) => Some(a.cmp(l)),
        Value::Float(l) => num_cmp(a as f64, *l),
        _ => None,
    }
}

fn apply(op: CompareOp, o: Ordering) -> bool {
    match op {
        CompareOp::Eq => o == Ordering::Equal,
        CompareOp::Ne => o != Ordering::Equal,
        CompareOp::Gt => o == Ordering::Greater,
        CompareOp::Ge => o != Ordering::Less,
        CompareOp::Lt => o == Ordering::Less,
        CompareOp::Le => o != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

fn str_op(op: CompareOp, a: &str, b: &str) -> bool {
    match op {
        CompareOp::Co => a.contains(b),
        CompareOp::Sw => a.starts_with(b),
        CompareOp::Ew => a.ends_with(b),
        _ => apply(op, a.cmp(b)),
    }
}

fn compare(x: &V<'_>, op: CompareOp, lit: &Lit) -> bool {
    match (x, &lit.v) {
        (V::Str(s, caseless), Value::String(l)) => {
            if *caseless {
                with_caseless(s, |k| str_op(op, k, lit.key.as_deref().unwrap_or("")))
            } else {
                str_op(op, s, l)
            }
        }
        (V::Bool(b), Value::Bool(l)) => op == CompareOp::Eq && b == l,
        (V::Id(id), Value::String(l)) => match op {
            CompareOp::Eq => lit.uuid == Some(*id),
            _ => str_op(op, &id.hyphenated().to_string(), l),
        },
        (V::Time(t), Value::String(_)) => lit.ms.is_some_and(|ms| apply(op, t.cmp(&ms))),
        (V::Int(_) | V::Time(_) | V::Float(_), Value::Int(_) | Value::Float(_)) => {
            ord_num(x, &lit.v).is_some_and(|o| apply(op, o))
        }
        _ => false,
    }
}

/// Calls `f` with [`caseless_key`]`(s)`, computed without allocating for ASCII text up to
/// 128 bytes (nearly every username and email): for ASCII, the key is the lowercase text.
pub(crate) fn with_caseless<R>(s: &str, f: impl FnOnce(&str) -> R) -> R {
    let mut buf = [0u8; 128];
    if s.is_ascii()
        && let Some(b) = buf.get_mut(..s.len())
    {
        b.copy_from_slice(s.as_bytes());
        b.make_ascii_lowercase();
        if let Ok(k) = std::str::from_utf8(b) {
            return f(k);
        }
    }
    f(&caseless_key(s))
}

/// Reads an RFC 3339 date-time (`2024-05-01T12:00:00Z`, `2024-05-01T12:00:00.250+02:00`) or a
/// plain date (`2024-05-01`, midnight UTC) as ms since the epoch (with the `jiff` crate:
/// impossible dates are refused).
pub(crate) fn parse_instant(s: &str) -> Option<i64> {
    if s.len() == 10 {
        crate::clock::parse_date_ms(s)
    } else {
        crate::clock::parse_rfc3339_ms(s)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_instant;

    #[test]
    fn instants() {
        assert_eq!(parse_instant("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_instant("1970-01-02"), Some(86_400_000));
        assert_eq!(
            parse_instant("2000-03-01T00:00:00.5Z"),
            Some(951_868_800_500)
        );
        assert_eq!(parse_instant("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_instant("1970-01-01T00:00:00"), None);
        assert_eq!(parse_instant("yesterday"), None);
        assert_eq!(parse_instant("2023-02-29"), None);
        assert_eq!(parse_instant("2023-02-31T00:00:00Z"), None);
    }
}
