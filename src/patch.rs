//! SCIM-style PATCH (RFC 7644 §3.5.2): `add`, `replace` and `remove` operations on attribute
//! paths, applied together in one transaction.
//!
//! See [`PatchOp`] for the paths and values.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::directory::{Directory, Tx, normalize_profile};
use crate::error::{Error, Result};
use crate::query::{Elem, Multi, Pred, parse_element_filter, resolve_attr};
use crate::user::{AttrValue, Profile, User};

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

/// One SCIM PatchOp operation.
///
/// Paths use the attribute names of the [search mapping](crate::query) (case-insensitive;
/// `name:familyName` is accepted for `name.familyName`):
///
/// | path | value | effect |
/// |---|---|---|
/// | `userName`, `externalId`, `nickName`, `displayName` / `name.formatted`, `name.givenName`, `name.middleName`, `name.familyName`, `timezone`, `birthDate`, `imageUrl` | string (`null` clears) | sets the field; `remove` clears it |
/// | `name` | object of `givenName`, `middleName`, `familyName`, `formatted` | sets the sub-attributes given; `remove` clears all four |
/// | `emails.value`, `email`, `emails[type eq "work"].value`, `emails[primary eq true]` | string (or `{"value": ...}`) | sets the email; the model's one email is the `work`, primary one, so a filter that this element does not match is an error |
/// | `emails` | string, `{"value"}` or an array of those (the primary, else `work`, else first element wins) | sets the email |
/// | `phoneNumbers`, `phoneNumbers.value`, `phoneNumbers[type eq "mobile"].value` | as `emails` | sets `mobile_phone` |
/// | `active`, `verified`, `passwordChangeRequired` | boolean | sets the flag (`active` cannot be removed) |
/// | `expiry` | integer ms (`null` clears) | sets the expiry |
/// | `roles`, `role`, `roles.value` | string, `{"value"}` or an array of those | `add` adds, `replace` sets, `remove` clears (or removes the given values) |
/// | `roles[value eq "admin"]` | — / as `roles` | `remove` removes the matching roles; `replace` swaps them for the value |
/// | `preferredLanguage` | string or array of strings | sets `preferred_languages` |
/// | `data` | object | `add`/`replace` set the given keys (other keys stay, as for any SCIM complex attribute); `remove` clears `data` |
/// | `data.<key>[.<key>...]` | any value | sets the nested value, creating objects on the way; `remove` deletes it |
/// | no path | object of path → value | each entry applied as its own operation |
///
/// `id`, `meta.*` and `password` are read-only. Changing the email clears `verified` unless the
/// same patch sets it. After all operations the profile is validated exactly like an update
/// (identity rules, lengths), and the store enforces uniqueness; any failure changes nothing.
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

enum Target {
    UserName,
    Email,
    Emails,
    Mobile,
    Phones,
    ExternalId,
    Active,
    Verified,
    PasswordChangeRequired,
    Expiry,
    Name,
    GivenName,
    MiddleName,
    FamilyName,
    Formatted,
    NickName,
    BirthDate,
    ImageUrl,
    Timezone,
    PreferredLanguage,
    Roles,
    RolesWhere(Pred),
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

const CORE_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:user:";

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

fn element_matches(u: &User, m: Multi, pred: &Pred) -> bool {
    let (value, kind, caseless) = match m {
        Multi::Emails => (u.email.as_deref(), Some("work"), true),
        Multi::PhoneNumbers => (u.mobile_phone.as_deref(), Some("mobile"), false),
        Multi::Roles => return false,
    };
    pred.matches_element(
        u,
        &Elem {
            value,
            kind,
            primary: Some(true),
            caseless,
        },
    )
}

fn resolve(cx: &Ctx<'_>, u: &User, raw: &str) -> Result<Target> {
    let mut s = raw.trim();
    if s.len() >= CORE_URN.len()
        && s.get(..CORE_URN.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(CORE_URN))
    {
        s = s.get(CORE_URN.len()..).unwrap_or("");
    }
    if let Some((head, filter, after)) = split_filter(s) {
        let multi = match head.to_ascii_lowercase().as_str() {
            "emails" => Multi::Emails,
            "phonenumbers" => Multi::PhoneNumbers,
            "roles" => Multi::Roles,
            _ => {
                return Err(cx.err("a value filter applies to emails, phoneNumbers or roles only"));
            }
        };
        let f = parse_element_filter(filter, multi).map_err(|e| cx.err(e.to_string()))?;
        let pred = Pred::compile(&f);
        let sub = after.to_ascii_lowercase();
        if !matches!(sub.as_str(), "" | ".value" | ".display") {
            return Err(cx.err(format!("sub-attribute {after:?} cannot be changed")));
        }
        return match multi {
            Multi::Roles => Ok(Target::RolesWhere(pred)),
            Multi::Emails | Multi::PhoneNumbers => {
                if element_matches(u, multi, &pred) {
                    Ok(if multi == Multi::Emails {
                        Target::Email
                    } else {
                        Target::Mobile
                    })
                } else {
                    Err(cx.err("no value matches the filter (noTarget)"))
                }
            }
        };
    }
    // `name:familyName` (seen in the wild) means `name.familyName`.
    let s = s.replace(':', ".");
    let lower = s.to_ascii_lowercase();
    if lower == "data" {
        return Ok(Target::Data(Vec::new()));
    }
    if lower.starts_with("data.") {
        if let Some(crate::query::Attr::Data(keys)) = resolve_attr(&s) {
            return Ok(Target::Data(keys));
        }
        return Err(cx.err("a data path needs non-empty keys"));
    }
    Ok(match lower.as_str() {
        "username" => Target::UserName,
        "emails" => Target::Emails,
        "emails.value" | "email" => Target::Email,
        "phonenumbers" => Target::Phones,
        "phonenumbers.value" | "mobilephone" => Target::Mobile,
        "externalid" => Target::ExternalId,
        "active" => Target::Active,
        "verified" => Target::Verified,
        "passwordchangerequired" => Target::PasswordChangeRequired,
        "expiry" => Target::Expiry,
        "name" => Target::Name,
        "name.givenname" => Target::GivenName,
        "name.middlename" => Target::MiddleName,
        "name.familyname" => Target::FamilyName,
        "name.formatted" | "displayname" => Target::Formatted,
        "nickname" => Target::NickName,
        "birthdate" => Target::BirthDate,
        "imageurl" | "photos" | "photos.value" => Target::ImageUrl,
        "timezone" => Target::Timezone,
        "preferredlanguage" => Target::PreferredLanguage,
        "roles" | "role" | "roles.value" => Target::Roles,
        "id" | "password" | "schemas" => return Err(cx.err("is read-only")),
        m if m == "meta" || m.starts_with("meta.") => return Err(cx.err("is read-only")),
        _ => return Err(cx.err("unknown attribute")),
    })
}

fn text(cx: &Ctx<'_>, v: &AttrValue) -> Result<Option<String>> {
    match v {
        AttrValue::String(s) => Ok(Some(s.clone())),
        AttrValue::Null => Ok(None),
        AttrValue::Object(m) => match m.iter().find(|(k, _)| k.eq_ignore_ascii_case("value")) {
            Some((_, v)) => text(cx, v),
            None => Err(cx.err("expects a string or an object with a \"value\"")),
        },
        _ => Err(cx.err("expects a string")),
    }
}

fn boolean(cx: &Ctx<'_>, v: &AttrValue) -> Result<bool> {
    match v {
        AttrValue::Bool(b) => Ok(*b),
        _ => Err(cx.err("expects a boolean")),
    }
}

/// A multi-valued value reduced to the model's one value: the primary element, else the
/// `work`/`mobile` one, else the first.
fn pick_one(cx: &Ctx<'_>, v: &AttrValue, kind: &str) -> Result<Option<String>> {
    let AttrValue::Array(xs) = v else {
        return text(cx, v);
    };
    let field = |x: &AttrValue, name: &str| match x {
        AttrValue::Object(m) => m
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone()),
        _ => None,
    };
    let chosen = xs
        .iter()
        .find(|x| field(x, "primary") == Some(AttrValue::Bool(true)))
        .or_else(|| {
            xs.iter()
                .find(|x| field(x, "type") == Some(AttrValue::String(kind.to_owned())))
        })
        .or_else(|| xs.first());
    match chosen {
        Some(x) => text(cx, x),
        None => Ok(None),
    }
}

fn role_values(cx: &Ctx<'_>, v: &AttrValue) -> Result<Vec<String>> {
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

/// Applies one operation to `u` in memory.
fn apply(u: &mut User, op: &PatchOp, email_verified_set: &mut bool) -> Result<()> {
    let Some(path) = op.path.as_deref() else {
        let cx = Ctx { path: "" };
        if op.op == PatchKind::Remove {
            return Err(cx.err("remove needs a path"));
        }
        let Some(AttrValue::Object(m)) = &op.value else {
            return Err(cx.err("an operation without a path needs an object value"));
        };
        for (k, v) in m {
            apply(
                u,
                &PatchOp {
                    op: op.op,
                    path: Some(k.clone()),
                    value: Some(v.clone()),
                },
                email_verified_set,
            )?;
        }
        return Ok(());
    };
    let cx = Ctx { path };
    let target = resolve(&cx, u, path)?;
    let value = match (op.op, &op.value) {
        (PatchKind::Remove, v) => v.clone(),
        (_, Some(v)) => Some(v.clone()),
        (_, None) => return Err(cx.err("add and replace need a value")),
    };
    let remove = op.op == PatchKind::Remove;
    // The new content of a single-valued text field.
    let new_text = |v: &Option<AttrValue>| -> Result<Option<String>> {
        match (remove, v) {
            (true, _) | (false, None) => Ok(None),
            (false, Some(v)) => text(&cx, v),
        }
    };
    match target {
        Target::UserName => u.username = new_text(&value)?,
        Target::Email => u.email = new_text(&value)?,
        Target::Emails => {
            u.email = match (remove, &value) {
                (false, Some(v)) => pick_one(&cx, v, "work")?,
                _ => None,
            }
        }
        Target::Mobile => u.mobile_phone = new_text(&value)?,
        Target::Phones => {
            u.mobile_phone = match (remove, &value) {
                (false, Some(v)) => pick_one(&cx, v, "mobile")?,
                _ => None,
            }
        }
        Target::ExternalId => u.external_id = new_text(&value)?,
        Target::GivenName => u.first_name = new_text(&value)?,
        Target::MiddleName => u.middle_name = new_text(&value)?,
        Target::FamilyName => u.last_name = new_text(&value)?,
        Target::Formatted => u.full_name = new_text(&value)?,
        Target::NickName => u.nick_name = new_text(&value)?,
        Target::BirthDate => u.birth_date = new_text(&value)?,
        Target::ImageUrl => u.image_url = new_text(&value)?,
        Target::Timezone => u.timezone = new_text(&value)?,
        Target::Active => match (remove, &value) {
            (false, Some(v)) => u.active = boolean(&cx, v)?,
            _ => return Err(cx.err("active cannot be removed")),
        },
        Target::Verified => {
            u.verified = match (remove, &value) {
                (false, Some(v)) => boolean(&cx, v)?,
                _ => false,
            };
            *email_verified_set = true;
        }
        Target::PasswordChangeRequired => {
            u.password_change_required = match (remove, &value) {
                (false, Some(v)) => boolean(&cx, v)?,
                _ => false,
            }
        }
        Target::Expiry => {
            u.expiry = match (remove, &value) {
                (false, Some(AttrValue::Int(i))) => Some(*i),
                (false, Some(AttrValue::Null) | None) | (true, _) => None,
                _ => return Err(cx.err("expects an integer instant (ms)")),
            }
        }
        Target::Name => {
            if remove {
                u.first_name = None;
                u.middle_name = None;
                u.last_name = None;
                u.full_name = None;
            } else {
                let Some(AttrValue::Object(m)) = &value else {
                    return Err(cx.err("expects an object of name sub-attributes"));
                };
                for (k, v) in m {
                    let field = match k.to_ascii_lowercase().as_str() {
                        "givenname" => &mut u.first_name,
                        "middlename" => &mut u.middle_name,
                        "familyname" => &mut u.last_name,
                        "formatted" => &mut u.full_name,
                        _ => return Err(cx.err(format!("unknown name sub-attribute {k:?}"))),
                    };
                    *field = text(&cx, v)?;
                }
            }
        }
        Target::PreferredLanguage => {
            u.preferred_languages = match (remove, &value) {
                (false, Some(v)) => role_values(&cx, v)?,
                _ => Vec::new(),
            }
        }
        Target::Roles => match (op.op, &value) {
            (PatchKind::Add, Some(v)) => u.roles.extend(role_values(&cx, v)?),
            (PatchKind::Replace, Some(v)) => u.roles = role_values(&cx, v)?.into_iter().collect(),
            (PatchKind::Remove, Some(v)) => {
                for r in role_values(&cx, v)? {
                    u.roles.remove(&r);
                }
            }
            _ => u.roles.clear(),
        },
        Target::RolesWhere(pred) => {
            let matching: Vec<String> = u
                .roles
                .iter()
                .filter(|r| {
                    pred.matches_element(
                        u,
                        &Elem {
                            value: Some(r),
                            kind: None,
                            primary: None,
                            caseless: false,
                        },
                    )
                })
                .cloned()
                .collect();
            if op.op != PatchKind::Add {
                if matching.is_empty() {
                    return Err(cx.err("no role matches the filter (noTarget)"));
                }
                for r in &matching {
                    u.roles.remove(r);
                }
            }
            if !remove && let Some(v) = &value {
                u.roles.extend(role_values(&cx, v)?);
            }
        }
        Target::Data(keys) if keys.is_empty() => match (remove, value) {
            (true, _) => u.data.clear(),
            (false, Some(AttrValue::Object(m))) => u.data.extend(m),
            _ => return Err(cx.err("data expects an object")),
        },
        Target::Data(keys) => {
            set_data(&cx, &mut u.data, &keys, if remove { None } else { value })?;
        }
    }
    Ok(())
}

fn set_profile(u: &mut User, p: Profile) {
    u.username = p.username;
    u.email = p.email;
    u.external_id = p.external_id;
    u.verified = p.verified;
    u.first_name = p.first_name;
    u.middle_name = p.middle_name;
    u.last_name = p.last_name;
    u.full_name = p.full_name;
    u.nick_name = p.nick_name;
    u.birth_date = p.birth_date;
    u.mobile_phone = p.mobile_phone;
    u.image_url = p.image_url;
    u.timezone = p.timezone;
    u.preferred_languages = p.preferred_languages;
    u.roles = p.roles;
    u.data = p.data;
    u.password_change_required = p.password_change_required;
    u.expiry = p.expiry;
}

/// The user after `ops`, validated like an update (without writing it).
fn patched(old: &User, ops: &[PatchOp]) -> Result<User> {
    let mut new = old.clone();
    let mut verified_set = false;
    for op in ops {
        apply(&mut new, op, &mut verified_set)?;
    }
    let p = normalize_profile(Profile::of(&new))?;
    set_profile(&mut new, p);
    if new.email != old.email && !verified_set {
        new.verified = false;
    }
    Ok(new)
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
