//! SCIM-style PATCH (RFC 7644 §3.5.2): `add`, `replace` and `remove` operations on attribute
//! paths, applied together in one transaction.
//!
//! See [`PatchOp`] for the paths and values.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::directory::{Directory, Tx, normalize_profile, sync_emails, sync_from_list};
use crate::error::{Error, Result};
use crate::identity::caseless_key;
use crate::model::{self, Get, Schema, Slot};
use crate::query::{Attr, CompareOp, Elem, Filter, Multi, Pred, Sub, Value as QValue};
use crate::query::{parse_element_filter, resolve_attr};
use crate::store::Snapshot;
use crate::user::{Address, AttrValue, MultiValue, User};

/// The kind of a [`PatchOp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    /// `add`.
    Add,
    /// `replace`.
    Replace,
    /// `remove`.
    Remove,
}

/// One SCIM PatchOp operation (RFC 7644 §3.5.2).
///
/// Paths name the attributes of the [search mapping](crate::query) (case-insensitive, with or
/// without their schema URN; `name:familyName` is accepted for `name.familyName`):
///
/// | path | value | effect |
/// |---|---|---|
/// | a single-valued string attribute (`userName`, `displayName`, `title`, `name.givenName`, `urn:…:enterprise:2.0:User:department`, `birthDate`, …) | string (`null` clears) | sets it; `remove` clears it |
/// | `manager` (enterprise) | an id string or `{"value": id}` | sets the manager |
/// | `active`, `verified`, `passwordChangeRequired` | boolean, or `"True"`/`"False"` in any case | sets the flag (`active` cannot be removed) |
/// | `expiry` | integer ms or an RFC 3339 date-time (`null` clears) | sets the expiry |
/// | `preferredLanguage` | string (an Accept-Language list) or array of strings | sets the languages |
/// | `name` | object of sub-attributes | sets those given, keeps the others; `remove` clears all |
/// | `emails`, `phoneNumbers`, `ims`, `photos`, `addresses`, `x509Certificates`, `entitlements`, `roles` | an element (`{"value", "type", "primary", "display"}` or a string; addresses by their sub-attributes) or an array of them | `add` adds them (an element with the same value is replaced), `replace` replaces the list, `remove` removes all (or, with a value, those elements) |
/// | `emails[type eq "work"]` (any filter on the elements) | an element | `add`/`replace` set the given sub-attributes of the matching elements; none matches: the element is created with the filter's `eq` values (`type` `work`); `remove` removes them (none matches: noTarget) |
/// | `emails[type eq "work"].value`, `addresses[type eq "work"].locality`, … | string (`primary`: boolean) | sets that sub-attribute of the matching elements, creating one as above; `remove` clears it (removing `value` removes the element) |
/// | `emails.value`, `phoneNumbers.type`, … (no filter) | as above | the primary element, else the first (created when the list is empty) |
/// | `urn:…:enterprise:2.0:User` (the whole extension) | object of its attributes | each applied as its own operation |
/// | `data` | object | sets the given keys (other keys stay); `remove` clears `data` |
/// | `data.<key>[.<key>...]` | any value | sets the nested value, creating objects on the way; `remove` deletes it |
/// | no path | object of path → value (paths, attribute names or extension URNs) | each entry applied as its own operation |
///
/// `id`, `meta.*`, `lastLoginInstant`, `passwordLastUpdateInstant` and `password` are
/// read-only. The primary email is the login email: an operation on `emails` that leaves
/// another element primary (or removes the primary one, leaving the first) changes the login
/// email, which clears `verified` unless the same patch sets it. After all operations the
/// profile is validated exactly like an update (identity rules, lengths, email syntax of every
/// email), and the store enforces uniqueness; any failure changes nothing.
///
/// # Examples
/// ```
/// # use userdir::{Argon2Params, Directory, NewUser, PatchOp};
/// # let dir = Directory::builder().hasher(Argon2Params::insecure_fast()).in_memory()?;
/// let u = dir.create(NewUser::with_username("kenny").email("k@example.com").role("staff"))?;
/// let u = dir.patch(u.id, &[
///     PatchOp::replace("name.familyName", "McGregor"),
///     PatchOp::replace(r#"emails[type eq "work"].value"#, "Kenny@Example.com"),
///     PatchOp::add("roles", "publisher"),
///     PatchOp::remove(r#"roles[value eq "staff"]"#),
/// ], Some(u.version))?;
/// assert_eq!(u.last_name.as_deref(), Some("McGregor"));
/// assert_eq!(u.email.as_deref(), Some("kenny@example.com"));
/// assert_eq!(u.roles.iter().collect::<Vec<_>>(), ["publisher"]);
/// # Ok::<(), userdir::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct PatchOp {
    /// `add`, `replace` or `remove`.
    pub op: PatchKind,
    /// The attribute path; `None` for a path-less `add`/`replace` with an object value.
    pub path: Option<String>,
    /// The value (`None` for `remove`).
    pub value: Option<AttrValue>,
}

fn path_of(p: impl Into<String>) -> Option<String> {
    let p = p.into();
    if p.trim().is_empty() { None } else { Some(p) }
}

impl PatchOp {
    /// `add` at `path` (an empty path: a path-less add of an object).
    pub fn add(path: impl Into<String>, value: impl Into<AttrValue>) -> Self {
        PatchOp {
            op: PatchKind::Add,
            path: path_of(path),
            value: Some(value.into()),
        }
    }
    /// `replace` at `path` (an empty path: a path-less replace of an object).
    pub fn replace(path: impl Into<String>, value: impl Into<AttrValue>) -> Self {
        PatchOp {
            op: PatchKind::Replace,
            path: path_of(path),
            value: Some(value.into()),
        }
    }
    /// `remove` at `path`.
    pub fn remove(path: impl Into<String>) -> Self {
        PatchOp {
            op: PatchKind::Remove,
            path: path_of(path),
            value: None,
        }
    }
}

/// What a path names.
enum Target {
    /// A single-valued attribute (a position in the attribute table).
    Field(usize),
    /// `name`: the complex attribute of the `name.*` fields.
    Name,
    /// A whole schema extension (`urn:…:enterprise:2.0:User`): an object of its attributes.
    Extension(Schema),
    /// A multi-valued attribute, the elements a filter selects (all without one), and
    /// optionally one sub-attribute of them.
    Multi {
        m: Multi,
        filter: Option<Filter>,
        sub: Option<Sub>,
    },
    /// Custom data at these keys (all of it when empty).
    Data(Vec<String>),
}

struct Ctx<'a> {
    path: &'a str,
}

impl Ctx<'_> {
    fn err(&self, reason: impl Into<String>) -> Error {
        Error::InvalidPatch {
            path: self.path.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Splits `head[filter]after`, respecting quoted strings in the filter.
fn split_filter(s: &str) -> Option<(&str, &str, &str)> {
    let open = s.find('[')?;
    let mut in_str = false;
    let mut esc = false;
    for (i, c) in s.char_indices().skip_while(|(i, _)| *i <= open) {
        match c {
            _ if esc => esc = false,
            '\\' if in_str => esc = true,
            '"' => in_str = !in_str,
            ']' if !in_str => {
                return Some((s.get(..open)?, s.get(open + 1..i)?, s.get(i + 1..)?));
            }
            _ => {}
        }
    }
    None
}

/// The attribute a path names.
fn resolve(cx: &Ctx<'_>, raw: &str) -> Result<Target> {
    let s = raw.trim();
    let core_stripped = model::strip_urn(s, model::CORE_URN).unwrap_or(s);
    if let Some((head, filter, after)) = split_filter(core_stripped) {
        let m = Multi::named(head.trim())
            .ok_or_else(|| cx.err("a value filter applies to a multi-valued attribute"))?;
        let f = parse_element_filter(filter, m).map_err(|e| cx.err(e.to_string()))?;
        let sub = match after {
            "" => None,
            a => Some(
                a.strip_prefix('.')
                    .and_then(|x| Sub::from_name(&x.to_ascii_lowercase()))
                    .filter(|x| m.has_sub(*x))
                    .ok_or_else(|| cx.err(format!("unknown sub-attribute {a:?}")))?,
            ),
        };
        return Ok(Target::Multi {
            m,
            filter: Some(f),
            sub,
        });
    }
    // `name:familyName` (seen in the wild) means `name.familyName`.
    let lower = if core_stripped.starts_with("urn:") {
        core_stripped.to_ascii_lowercase()
    } else {
        core_stripped.replace(':', ".").to_ascii_lowercase()
    };
    for schema in [Schema::Core, Schema::Enterprise, Schema::Userdir] {
        if schema.urn().is_some_and(|u| u.eq_ignore_ascii_case(&lower)) {
            return Ok(Target::Extension(schema));
        }
    }
    match lower.as_str() {
        "id" | "password" | "schemas" | "meta" => return Err(cx.err("is read-only")),
        "name" => return Ok(Target::Name),
        "data" => return Ok(Target::Data(Vec::new())),
        "imageurl" => {
            return Ok(Target::Multi {
                m: Multi::PHOTOS,
                filter: parse_element_filter("type eq \"photo\"", Multi::PHOTOS).ok(),
                sub: Some(Sub::Value),
            });
        }
        "mobilephone" => {
            return Ok(Target::Multi {
                m: Multi::PHONE_NUMBERS,
                filter: parse_element_filter("type eq \"mobile\"", Multi::PHONE_NUMBERS).ok(),
                sub: Some(Sub::Value),
            });
        }
        _ => {}
    }
    match resolve_attr(core_stripped.trim()).or_else(|| resolve_attr(&lower)) {
        Some(Attr::Data(keys)) => Ok(Target::Data(keys)),
        Some(Attr::Field(f)) => {
            let a = model::attr(f.index()).ok_or_else(|| cx.err("unknown attribute"))?;
            if a.schema == Schema::Meta
                || matches!(
                    a.field,
                    "last_login_instant" | "password_last_update_instant"
                )
            {
                return Err(cx.err("is read-only"));
            }
            Ok(Target::Field(f.index()))
        }
        Some(Attr::Multi(m, sub)) => {
            // `emails` alone is the whole attribute; `emails.value` a sub-attribute.
            let whole = Multi::named(&lower).is_some();
            Ok(Target::Multi {
                m,
                filter: None,
                sub: (!whole).then_some(sub),
            })
        }
        Some(Attr::Id) => Err(cx.err("is read-only")),
        _ if lower.starts_with("meta.") => Err(cx.err("is read-only")),
        _ => Err(cx.err("unknown attribute")),
    }
}

/// A string value: a JSON string, `null` (none), or an object with a `value`.
fn text(cx: &Ctx<'_>, v: &AttrValue) -> Result<Option<String>> {
    match v {
        AttrValue::String(s) => Ok(Some(s.clone())),
        AttrValue::Null => Ok(None),
        AttrValue::Object(m) => match get_ci(m, "value") {
            Some(v) => text(cx, v),
            None => Err(cx.err("expects a string or an object with a \"value\"")),
        },
        _ => Err(cx.err("expects a string")),
    }
}

/// A boolean: JSON `true`/`false`, or the strings `"True"`/`"False"` in any case (Entra ID).
fn boolean(cx: &Ctx<'_>, v: &AttrValue) -> Result<bool> {
    match v {
        AttrValue::Bool(b) => Ok(*b),
        AttrValue::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(true),
        AttrValue::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(cx.err("expects a boolean")),
    }
}

/// An instant: integer ms since the epoch, or an RFC 3339 date-time.
fn instant(cx: &Ctx<'_>, v: &AttrValue) -> Result<Option<i64>> {
    match v {
        AttrValue::Int(i) => Ok(Some(*i)),
        AttrValue::Null => Ok(None),
        AttrValue::String(s) => crate::query::parse_instant(s)
            .map(Some)
            .ok_or_else(|| cx.err("expects an integer instant (ms) or an RFC 3339 date-time")),
        _ => Err(cx.err("expects an integer instant (ms) or an RFC 3339 date-time")),
    }
}

fn get_ci<'a>(m: &'a BTreeMap<String, AttrValue>, key: &str) -> Option<&'a AttrValue> {
    m.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// A list of strings (`roles`, `preferredLanguage`): a string, `{"value"}`, or an array of
/// those. `preferredLanguage` splits an Accept-Language list.
fn strings(cx: &Ctx<'_>, v: &AttrValue) -> Result<Vec<String>> {
    match v {
        AttrValue::Array(xs) => {
            let mut out = Vec::new();
            for x in xs {
                out.extend(text(cx, x)?);
            }
            Ok(out)
        }
        other => Ok(text(cx, other)?.into_iter().collect()),
    }
}

/// One element of a multi-valued attribute from a value: a string (its `value`) or an object
/// of sub-attributes (`$ref` is ignored).
fn element(cx: &Ctx<'_>, v: &AttrValue, addresses: bool) -> Result<El> {
    let mut e = El::default();
    match v {
        AttrValue::String(s) if !addresses => {
            e.set(cx, Sub::Value, &AttrValue::String(s.clone()))?;
        }
        AttrValue::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    continue;
                }
                let sub = Sub::from_name(&k.to_ascii_lowercase())
                    .filter(|s| {
                        if addresses {
                            !matches!(s, Sub::Value | Sub::Display)
                        } else {
                            matches!(s, Sub::Value | Sub::Type | Sub::Primary | Sub::Display)
                        }
                    })
                    .ok_or_else(|| cx.err(format!("unknown sub-attribute {k:?}")))?;
                e.set(cx, sub, x)?;
            }
        }
        _ => return Err(cx.err("expects an object of sub-attributes")),
    }
    Ok(e)
}

/// An element of any multi-valued attribute, as PATCH edits it.
#[derive(Clone, Debug, Default, PartialEq)]
struct El {
    value: Option<String>,
    kind: Option<String>,
    primary: bool,
    display: Option<String>,
    formatted: Option<String>,
    street_address: Option<String>,
    locality: Option<String>,
    region: Option<String>,
    postal_code: Option<String>,
    country: Option<String>,
}

impl El {
    fn text_mut(&mut self, s: Sub) -> Option<&mut Option<String>> {
        Some(match s {
            Sub::Value => &mut self.value,
            Sub::Type => &mut self.kind,
            Sub::Display => &mut self.display,
            Sub::Formatted => &mut self.formatted,
            Sub::StreetAddress => &mut self.street_address,
            Sub::Locality => &mut self.locality,
            Sub::Region => &mut self.region,
            Sub::PostalCode => &mut self.postal_code,
            Sub::Country => &mut self.country,
            Sub::Primary => return None,
        })
    }

    fn set(&mut self, cx: &Ctx<'_>, s: Sub, v: &AttrValue) -> Result<()> {
        match self.text_mut(s) {
            Some(t) => *t = text(cx, v)?,
            None => self.primary = boolean(cx, v)?,
        }
        Ok(())
    }

    fn clear(&mut self, s: Sub) {
        match self.text_mut(s) {
            Some(t) => *t = None,
            None => self.primary = false,
        }
    }

    /// Sub-attributes given in `o` (those not at their default) replace those of `self`.
    fn merge(&mut self, o: &El) {
        let d = El::default();
        macro_rules! take {
            ($($f:ident),*) => {$(
                if o.$f != d.$f {
                    self.$f = o.$f.clone();
                }
            )*};
        }
        take!(
            value,
            kind,
            display,
            formatted,
            street_address,
            locality,
            region,
            postal_code,
            country
        );
        if o.primary {
            self.primary = true;
        }
    }

    fn elem(&self, caseless: bool) -> Elem<'_> {
        Elem {
            value: self.value.as_deref(),
            kind: self.kind.as_deref(),
            primary: Some(self.primary),
            display: self.display.as_deref(),
            formatted: self.formatted.as_deref(),
            street_address: self.street_address.as_deref(),
            locality: self.locality.as_deref(),
            region: self.region.as_deref(),
            postal_code: self.postal_code.as_deref(),
            country: self.country.as_deref(),
            caseless,
        }
    }

    /// Whether the element holds nothing (a removed `value` removes the element).
    fn is_empty(&self, addresses: bool) -> bool {
        if addresses {
            self.formatted.is_none()
                && self.street_address.is_none()
                && self.locality.is_none()
                && self.region.is_none()
                && self.postal_code.is_none()
                && self.country.is_none()
        } else {
            self.value.as_deref().is_none_or(|v| v.trim().is_empty())
        }
    }
}

/// The elements of list attribute `m` of `u`, as PATCH edits them.
fn read_list(u: &User, m: Multi) -> Vec<El> {
    let Some(a) = model::attr(m.index()) else {
        return Vec::new();
    };
    match (a.get)(u) {
        Get::Multi(l) => l
            .iter()
            .map(|x| El {
                value: Some(x.value.clone()),
                kind: x.kind.clone(),
                primary: x.primary,
                display: x.display.clone(),
                ..El::default()
            })
            .collect(),
        Get::Addresses(l) => l
            .iter()
            .map(|x| El {
                kind: x.kind.clone(),
                primary: x.primary,
                formatted: x.formatted.clone(),
                street_address: x.street_address.clone(),
                locality: x.locality.clone(),
                region: x.region.clone(),
                postal_code: x.postal_code.clone(),
                country: x.country.clone(),
                ..El::default()
            })
            .collect(),
        Get::Set(l) => l
            .iter()
            .map(|x| El {
                value: Some(x.clone()),
                display: Some(x.clone()),
                ..El::default()
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Writes the elements of list attribute `m` back into `u`.
fn write_list(u: &mut User, m: Multi, list: Vec<El>) {
    let Some(a) = model::attr(m.index()) else {
        return;
    };
    let addresses = m.is_addresses();
    let list = list.into_iter().filter(|e| !e.is_empty(addresses));
    match (a.slot)(u) {
        Slot::Multi(l) => {
            *l = list
                .map(|e| MultiValue {
                    value: e.value.unwrap_or_default(),
                    kind: e.kind,
                    primary: e.primary,
                    display: e.display,
                })
                .collect();
        }
        Slot::Addresses(l) => {
            *l = list
                .map(|e| Address {
                    formatted: e.formatted,
                    street_address: e.street_address,
                    locality: e.locality,
                    region: e.region,
                    postal_code: e.postal_code,
                    country: e.country,
                    kind: e.kind,
                    primary: e.primary,
                })
                .collect();
        }
        Slot::Set(l) => *l = list.filter_map(|e| e.value).collect(),
        _ => {}
    }
}

/// The sub-attribute values a filter fixes with `eq` (through `and`): the element a
/// filtered `add`/`replace` creates when nothing matches carries them.
fn implied(f: &Filter, e: &mut El) {
    match f {
        Filter::And(a, b) => {
            implied(a, e);
            implied(b, e);
        }
        Filter::Compare {
            attr: Attr::Element(sub),
            op: CompareOp::Eq,
            value,
        } => {
            let v = match value {
                QValue::String(s) => AttrValue::String(s.clone()),
                QValue::Bool(b) => AttrValue::Bool(*b),
                _ => return,
            };
            let _ = e.set(&Ctx { path: "" }, *sub, &v);
        }
        _ => {}
    }
}

/// Whether two elements are the same value (for `add` of an element already present).
fn same_value(a: &El, b: &El, caseless: bool, addresses: bool) -> bool {
    if addresses {
        return a == b;
    }
    match (&a.value, &b.value) {
        (Some(x), Some(y)) if caseless => caseless_key(x) == caseless_key(y),
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// Keeps `primary` on element `i` only, when it has it (RFC 7643 §2.4).
fn primary_wins(list: &mut [El], i: usize) {
    if list.get(i).is_some_and(|e| e.primary) {
        for (j, e) in list.iter_mut().enumerate() {
            e.primary = j == i;
        }
    }
}

/// Applies one operation on a multi-valued attribute.
fn apply_multi(
    cx: &Ctx<'_>,
    u: &mut User,
    kind: PatchKind,
    (m, filter, sub): (Multi, Option<&Filter>, Option<Sub>),
    value: Option<&AttrValue>,
) -> Result<()> {
    let addresses = m.is_addresses();
    let caseless = model::attr(m.index()).is_some_and(|a| !a.case_exact);
    let mut list = read_list(u, m);
    let values = |v: &AttrValue| -> Result<Vec<El>> {
        match v {
            AttrValue::Array(xs) => xs.iter().map(|x| element(cx, x, addresses)).collect(),
            AttrValue::Null => Ok(Vec::new()),
            other => Ok(vec![element(cx, other, addresses)?]),
        }
    };
    let matching: Vec<usize> = match filter {
        None => (0..list.len()).collect(),
        Some(f) => {
            let pred = Pred::compile(f);
            list.iter()
                .enumerate()
                .filter(|(_, e)| pred.matches_element(&*u, &e.elem(caseless)))
                .map(|(i, _)| i)
                .collect()
        }
    };
    match (kind, filter, sub) {
        // The whole attribute.
        (PatchKind::Remove, None, None) => match value {
            None => list.clear(),
            Some(v) => {
                let gone = values(v)?;
                list.retain(|e| !gone.iter().any(|g| same_value(e, g, caseless, addresses)));
            }
        },
        (PatchKind::Replace, None, None) => {
            list = values(value.ok_or_else(|| cx.err("replace needs a value"))?)?;
            if let Some(i) = list.iter().position(|e| e.primary) {
                primary_wins(&mut list, i);
            }
        }
        (PatchKind::Add, None, None) => {
            for e in values(value.ok_or_else(|| cx.err("add needs a value"))?)? {
                let i = match list
                    .iter()
                    .position(|x| same_value(x, &e, caseless, addresses))
                {
                    Some(i) => {
                        if let Some(x) = list.get_mut(i) {
                            *x = e;
                        }
                        i
                    }
                    None => {
                        list.push(e);
                        list.len() - 1
                    }
                };
                primary_wins(&mut list, i);
            }
        }
        // Selected elements.
        (PatchKind::Remove, Some(_), None) => {
            if matching.is_empty() {
                return Err(cx.err("no value matches the filter (noTarget)"));
            }
            let mut i = 0;
            list.retain(|_| {
                i += 1;
                !matching.contains(&(i - 1))
            });
        }
        (PatchKind::Remove, _, Some(s)) => {
            if filter.is_some() && matching.is_empty() {
                return Err(cx.err("no value matches the filter (noTarget)"));
            }
            for &i in &matching {
                if let Some(e) = list.get_mut(i) {
                    e.clear(s);
                }
            }
        }
        (PatchKind::Add | PatchKind::Replace, Some(f), None) => {
            let v = value.ok_or_else(|| cx.err("add and replace need a value"))?;
            let given = match v {
                AttrValue::Array(xs) if xs.len() == 1 => {
                    xs.first().cloned().unwrap_or(AttrValue::Null)
                }
                other => other.clone(),
            };
            let new = element(cx, &given, addresses)?;
            if matching.is_empty() {
                let mut e = El::default();
                implied(f, &mut e);
                e.merge(&new);
                list.push(e);
                let last = list.len() - 1;
                primary_wins(&mut list, last);
            } else {
                for &i in &matching {
                    if let Some(e) = list.get_mut(i) {
                        e.merge(&new);
                    }
                    primary_wins(&mut list, i);
                }
            }
        }
        (PatchKind::Add | PatchKind::Replace, _, Some(s)) => {
            let v = value.ok_or_else(|| cx.err("add and replace need a value"))?;
            let targets: Vec<usize> = match filter {
                Some(_) => matching,
                // No filter: the primary element, else the first.
                None => list
                    .iter()
                    .position(|e| e.primary)
                    .or_else(|| (!list.is_empty()).then_some(0))
                    .into_iter()
                    .collect(),
            };
            if targets.is_empty() {
                let mut e = El::default();
                if let Some(f) = filter {
                    implied(f, &mut e);
                }
                e.set(cx, s, v)?;
                list.push(e);
                let last = list.len() - 1;
                primary_wins(&mut list, last);
            } else {
                for i in targets {
                    if let Some(e) = list.get_mut(i) {
                        e.set(cx, s, v)?;
                    }
                    primary_wins(&mut list, i);
                }
            }
        }
    }
    if m.index() == model::at::ROLES && list.iter().any(|e| e.value.is_none()) {
        return Err(cx.err("a role needs a value"));
    }
    write_list(u, m, list);
    Ok(())
}

fn set_data(
    cx: &Ctx<'_>,
    map: &mut BTreeMap<String, AttrValue>,
    keys: &[String],
    v: Option<AttrValue>,
) -> Result<()> {
    let Some((first, rest)) = keys.split_first() else {
        return Ok(());
    };
    if rest.is_empty() {
        match v {
            Some(v) => {
                map.insert(first.clone(), v);
            }
            None => {
                map.remove(first);
            }
        }
        return Ok(());
    }
    if v.is_none() && !map.contains_key(first) {
        return Ok(());
    }
    let entry = map
        .entry(first.clone())
        .or_insert_with(|| AttrValue::Object(BTreeMap::new()));
    match entry {
        AttrValue::Object(m) => set_data(cx, m, rest, v),
        _ if v.is_none() => Ok(()),
        _ => Err(cx.err(format!("data key {first:?} is not an object"))),
    }
}

/// Applies an operation on a single-valued attribute.
fn apply_field(cx: &Ctx<'_>, u: &mut User, i: usize, value: Option<&AttrValue>) -> Result<()> {
    let a = model::attr(i).ok_or_else(|| cx.err("unknown attribute"))?;
    match ((a.slot)(u), value) {
        (Slot::Text(t), None) => *t = None,
        (Slot::Text(t), Some(v)) => *t = text(cx, v)?,
        (Slot::Flag(_), None) if i == model::at::ACTIVE => {
            return Err(cx.err("active cannot be removed"));
        }
        (Slot::Flag(b), None) => *b = false,
        (Slot::Flag(b), Some(v)) => *b = boolean(cx, v)?,
        (Slot::OptInstant(x), None) => *x = None,
        (Slot::OptInstant(x), Some(v)) => *x = instant(cx, v)?,
        (Slot::Langs(l), None) => l.clear(),
        (Slot::Langs(l), Some(v)) => {
            *l = strings(cx, v)?
                .iter()
                .flat_map(|s| s.split(','))
                .map(|x| x.split(';').next().unwrap_or("").trim().to_owned())
                .filter(|x| !x.is_empty())
                .collect();
        }
        _ => return Err(cx.err("is read-only")),
    }
    Ok(())
}

/// Applies one operation to `u` in memory.
fn apply(u: &mut User, op: &PatchOp) -> Result<()> {
    let remove = op.op == PatchKind::Remove;
    let Some(path) = op.path.as_deref() else {
        let cx = Ctx { path: "" };
        if remove {
            return Err(cx.err("remove needs a path"));
        }
        let Some(AttrValue::Object(m)) = &op.value else {
            return Err(cx.err("an operation without a path needs an object value"));
        };
        for (k, v) in m {
            if k.eq_ignore_ascii_case("schemas") {
                continue;
            }
            apply(
                u,
                &PatchOp {
                    op: op.op,
                    path: Some(k.clone()),
                    value: Some(v.clone()),
                },
            )?;
        }
        return Ok(());
    };
    let cx = Ctx { path };
    let target = resolve(&cx, path)?;
    let value = match (remove, &op.value) {
        (true, v) => v.as_ref(),
        (false, Some(v)) => Some(v),
        (false, None) => return Err(cx.err("add and replace need a value")),
    };
    match target {
        Target::Field(i) => apply_field(&cx, u, i, if remove { None } else { value }),
        Target::Name => {
            let names = model::ATTRS
                .iter()
                .enumerate()
                .filter(|(_, a)| a.name.starts_with("name."));
            if remove {
                for (i, _) in names {
                    apply_field(&cx, u, i, None)?;
                }
                return Ok(());
            }
            let Some(AttrValue::Object(m)) = value else {
                return Err(cx.err("expects an object of name sub-attributes"));
            };
            // RFC 7644 §3.5.2.3: sub-attributes not given are left unchanged.
            let names: Vec<(usize, &str)> = names.map(|(i, a)| (i, a.name)).collect();
            for (k, v) in m {
                let i = names
                    .iter()
                    .find(|(_, n)| n.get(5..).is_some_and(|n| n.eq_ignore_ascii_case(k)))
                    .map(|(i, _)| *i)
                    .ok_or_else(|| cx.err(format!("unknown name sub-attribute {k:?}")))?;
                apply_field(&cx, u, i, Some(v))?;
            }
            Ok(())
        }
        Target::Extension(schema) => {
            let Some(AttrValue::Object(m)) = value else {
                return Err(cx.err("expects an object of the extension's attributes"));
            };
            let urn = schema.urn().unwrap_or("");
            for (k, v) in m {
                apply(
                    u,
                    &PatchOp {
                        op: op.op,
                        path: Some(format!("{urn}:{k}")),
                        value: Some(v.clone()),
                    },
                )?;
            }
            Ok(())
        }
        Target::Multi { m, filter, sub } => {
            apply_multi(&cx, u, op.op, (m, filter.as_ref(), sub), value)
        }
        Target::Data(keys) if keys.is_empty() => match (remove, value) {
            (true, _) => {
                u.data.clear();
                Ok(())
            }
            (false, Some(AttrValue::Object(m))) => {
                // Keys not given stay, as for any complex attribute (RFC 7644 §3.5.2.3).
                u.data.extend(m.clone());
                Ok(())
            }
            _ => Err(cx.err("data expects an object")),
        },
        Target::Data(keys) => set_data(
            &cx,
            &mut u.data,
            &keys,
            if remove { None } else { value.cloned() },
        ),
    }
}

/// The user after `ops`, validated like an update (without writing it).
fn patched(old: &User, ops: &[PatchOp]) -> Result<User> {
    let mut new = old.clone();
    for op in ops {
        let (email, emails) = (new.email.clone(), new.emails.clone());
        apply(&mut new, op)?;
        // Keep the login email and the list in step after each operation, the one it
        // changed deciding.
        if new.emails != emails {
            // The primary (else first) element is the login email.
            sync_from_list(&mut new.profile);
        } else if new.email != email {
            let before = crate::user::Profile {
                email,
                emails,
                ..crate::user::Profile::default()
            };
            // A user left without login id is refused below, after all operations.
            let _ = sync_emails(&mut new.profile, Some(&before));
        }
    }
    let verified_set = new.verified != old.verified;
    let mut p = normalize_profile(std::mem::take(&mut new.profile))?;
    sync_emails(&mut p, Some(&old.profile))?;
    new.profile = p;
    if new.email != old.email && !verified_set {
        new.verified = false;
    }
    Ok(new)
}

/// A SCIM `PatchOp` request: its operations, applied in order and all together.
///
/// Read from JSON with [`PatchRequest::from_json`] (feature `json`), which accepts RFC 7644
/// §3.5.2 and the shapes identity providers send: `op` in any case (`"Replace"`), booleans as
/// strings (`"False"`), path-less operations whose value keys are paths or extension URNs,
/// and an empty `Operations` list (a no-op).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PatchRequest {
    /// The operations.
    pub operations: Vec<PatchOp>,
}

/// The `PatchOp` message URN.
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

#[cfg(feature = "json")]
impl PatchRequest {
    /// Parses a `PatchOp` request body.
    ///
    /// # Errors
    /// [`Error::InvalidPatch`] (path `""` for the body, `Operations[i]` for an operation) when
    /// the body is not JSON, `schemas` is given without the `PatchOp` URN, `Operations` is
    /// missing or not an array, an operation is not an object, its `op` is not add, replace
    /// or remove (any case), its `path` is not a string, or an add/replace has no `value`.
    ///
    /// # Examples
    /// ```
    /// use userdir::{PatchKind, PatchRequest};
    /// let r = PatchRequest::from_json(r#"{
    ///   "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    ///   "Operations": [{"op": "Replace", "path": "active", "value": "False"}]
    /// }"#)?;
    /// assert_eq!(r.operations[0].op, PatchKind::Replace);
    /// # Ok::<(), userdir::Error>(())
    /// ```
    pub fn from_json(body: &str) -> Result<PatchRequest> {
        let v: serde_json::Value = serde_json::from_str(body).map_err(|e| Error::InvalidPatch {
            path: String::new(),
            reason: format!("the body is not JSON: {e}"),
        })?;
        PatchRequest::from_value(&v)
    }

    /// Reads a `PatchOp` request from parsed JSON (see [`PatchRequest::from_json`]).
    ///
    /// # Errors
    /// As [`PatchRequest::from_json`].
    pub fn from_value(v: &serde_json::Value) -> Result<PatchRequest> {
        use serde_json::Value;
        let body_err = |reason: &str| Error::InvalidPatch {
            path: String::new(),
            reason: reason.to_owned(),
        };
        let o = v
            .as_object()
            .ok_or_else(|| body_err("the body is not a JSON object"))?;
        let key = |o: &'_ serde_json::Map<String, Value>, k: &str| {
            o.iter()
                .find(|(x, _)| x.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        if let Some(schemas) = key(o, "schemas") {
            let ok = schemas.as_array().is_some_and(|a| {
                a.iter().any(|s| {
                    s.as_str()
                        .is_some_and(|s| s.eq_ignore_ascii_case(PATCH_OP_SCHEMA))
                })
            });
            if !ok {
                return Err(body_err("schemas does not list the PatchOp message URN"));
            }
        }
        let ops = match key(o, "Operations") {
            Some(Value::Array(a)) => a,
            Some(_) => return Err(body_err("Operations is not an array")),
            None => return Err(body_err("Operations is missing")),
        };
        let mut operations = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let err = |reason: &str| Error::InvalidPatch {
                path: format!("Operations[{i}]"),
                reason: reason.to_owned(),
            };
            let op = op.as_object().ok_or_else(|| err("is not an object"))?;
            let kind = match key(op, "op").as_ref().and_then(Value::as_str) {
                Some(s) if s.eq_ignore_ascii_case("add") => PatchKind::Add,
                Some(s) if s.eq_ignore_ascii_case("replace") => PatchKind::Replace,
                Some(s) if s.eq_ignore_ascii_case("remove") => PatchKind::Remove,
                _ => return Err(err("op is not add, replace or remove")),
            };
            let path = match key(op, "path") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => path_of(s),
                Some(_) => return Err(err("path is not a string")),
            };
            let value = key(op, "value").map(|v| crate::json::attr_from_json(&v));
            if kind != PatchKind::Remove && value.is_none() {
                return Err(err("add and replace need a value"));
            }
            operations.push(PatchOp {
                op: kind,
                path,
                value,
            });
        }
        Ok(PatchRequest { operations })
    }
}

impl Tx<'_, '_> {
    /// Applies PATCH operations to one user (see [`Directory::patch`]).
    ///
    /// # Errors
    /// As [`Directory::patch`].
    pub fn patch(
        &mut self,
        id: Uuid,
        ops: &[PatchOp],
        expected_version: Option<u64>,
    ) -> Result<User> {
        let old = self.w.get(id)?.ok_or(Error::NotFound(id))?;
        if let Some(expected) = expected_version
            && expected != old.version
        {
            return Err(Error::VersionConflict {
                expected,
                actual: old.version,
            });
        }
        let mut new = patched(&old, ops)?;
        if new == old {
            return Ok(old);
        }
        new.version = old.version + 1;
        new.last_update_instant = self.dir.now();
        self.replace(&old, &new)?;
        Ok(new)
    }
}

impl Directory {
    /// Applies SCIM PATCH operations to one user, all in one transaction: either every
    /// operation applies or nothing changes. See [`PatchOp`] for the
    /// paths. With `expected_version`, fails with [`Error::VersionConflict`] if the user
    /// changed since.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::VersionConflict`], [`Error::InvalidPatch`] for an unknown
    /// or read-only path or a value of the wrong shape, the validation errors of
    /// [`Directory::update`] ([`Error::InvalidField`], [`Error::MissingLoginId`]) and its
    /// uniqueness errors ([`Error::DuplicateUsername`], [`Error::DuplicateEmail`],
    /// [`Error::DuplicateExternalId`], [`Error::LoginIdConflict`]).
    ///
    /// # Examples
    /// ```
    /// # use userdir::{Argon2Params, Directory, NewUser, PatchOp, AttrValue};
    /// # let dir = Directory::builder().hasher(Argon2Params::insecure_fast()).in_memory()?;
    /// let u = dir.create(NewUser::with_username("kenny"))?;
    /// let u = dir.patch(u.id, &[PatchOp::replace("nickName", "Kenneth"),
    ///                           PatchOp::add("data.laptop.model", "X1")], None)?;
    /// assert_eq!(u.nick_name.as_deref(), Some("Kenneth"));
    /// assert!(dir.patch(u.id, &[PatchOp::replace("meta.version", 7i64)], None).is_err());
    /// # Ok::<(), userdir::Error>(())
    /// ```
    pub fn patch(&self, id: Uuid, ops: &[PatchOp], expected_version: Option<u64>) -> Result<User> {
        self.write(|tx| tx.patch(id, ops, expected_version))
    }
}
