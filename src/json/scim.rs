//! SCIM 2.0 `User` resources and `ListResponse` (RFC 7643, RFC 7644; Firstup's seed 004).
//!
//! The mapping follows the [attribute table](crate::model): every attribute of the SCIM core
//! `User` schema, of the enterprise extension ([`ENTERPRISE_SCHEMA`]) and of userdir's own
//! extension ([`USERDIR_SCHEMA`]) is read and written under its SCIM name.
//!
//! # Reading
//! A document is a `ListResponse` (`Resources`), a bare array of resources, or one resource.
//!
//! | SCIM | userdir |
//! |---|---|
//! | `id` | `id` when it is a UUID; another system's non-UUID id is not kept (carry it in `externalId`) |
//! | `userName`, `externalId`, `name.*`, `displayName`, `nickName`, `profileUrl`, `title`, `userType`, `locale`, `timezone` | the [`Profile`] field of that name |
//! | `active` | `active` (a resource without `active` is active) |
//! | `emails`, `phoneNumbers`, `ims`, `photos`, `addresses`, `x509Certificates`, `entitlements` | the lists, every element with its sub-attributes; the primary email (else the first) is the login email |
//! | `preferredLanguage` | `preferred_languages` (an Accept-Language list, `;q=` weights dropped) |
//! | `roles` | `roles`: an array of `{"value": …}` (RFC 7643), an array of strings, or one string (Firstup) |
//! | `password` | a plaintext password, hashed with argon2id |
//! | `meta.created` | `insert_instant` (`lastModified`, `version` and `location` are the server's own) |
//! | [`ENTERPRISE_SCHEMA`] | `employee_number`, `cost_center`, `organization`, `division`, `department`, `manager` (`manager.value`) |
//! | [`USERDIR_SCHEMA`] | `birthDate`, `verified`, `passwordChangeRequired`, `expiry`, `lastLoginInstant`, `passwordLastUpdateInstant`, `data` |
//! | any other attribute or schema URN (`groups`, a vendor's extension, …) | `data`, under the attribute name or URN, as given |
//!
//! `schemas` is not checked. A malformed `meta.created` is a problem of the row.
//!
//! # Writing
//! A `User` resource with the mappings above reversed: `schemas` lists the core schema and each
//! extension written; custom data is written under [`USERDIR_SCHEMA`] as `data`, the JSON text
//! of an object (SCIM has no type for arbitrary keys; a reader accepts the object itself too),
//! never as top-level attributes; `meta` has `resourceType`, `created`, `lastModified` and `version`
//! (`W/"<version>"`). No password, ever.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{Fields, attr_from_json, attr_to_json, format_rfc3339, parse_rfc3339};
use crate::model::{self, ATTRS, Get, Schema, Slot};
use crate::user::{Address, MultiValue, NewUser, Password, PasswordInput, Profile, User};

/// The SCIM core `User` schema URN.
pub const USER_SCHEMA: &str = model::CORE_URN;
/// The SCIM enterprise `User` extension URN.
pub const ENTERPRISE_SCHEMA: &str = model::ENTERPRISE_URN;
/// The `ListResponse` message URN.
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// userdir's own extension, for the fields SCIM's schemas have no place for (and custom data,
/// as its `data` attribute).
pub const USERDIR_SCHEMA: &str = model::USERDIR_URN;

/// Top-level attributes read outside the table.
const SPECIAL: [&str; 6] = ["schemas", "id", "active", "password", "meta", "name"];

/// A boolean: JSON `true`/`false` or `"True"`/`"False"` in any case.
fn boolean(f: &mut Fields<'_>, o: &Map<String, Value>, key: &str, path: &str) -> Option<bool> {
    match o.get(key) {
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Some(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => f.boolean(o, key, path),
    }
}

/// The elements of a multi-valued attribute.
fn multi(f: &mut Fields<'_>, o: &Map<String, Value>, key: &str, path: &str) -> Vec<MultiValue> {
    let mut out = Vec::new();
    for (i, e) in f.array(o, key, path).iter().enumerate() {
        let at = format!("{path}[{i}]");
        match e {
            Value::String(s) => out.push(MultiValue::new(s.clone())),
            Value::Object(eo) => {
                let Some(value) = f.string(eo, "value", &format!("{at}.value")) else {
                    f.problem(&format!("{at}.value"), "expected a string");
                    continue;
                };
                out.push(MultiValue {
                    value,
                    kind: f.string(eo, "type", &format!("{at}.type")),
                    primary: boolean(f, eo, "primary", &format!("{at}.primary")).unwrap_or(false),
                    display: f.string(eo, "display", &format!("{at}.display")),
                });
            }
            _ => f.problem(&at, "expected an object"),
        }
    }
    out
}

fn addresses(f: &mut Fields<'_>, o: &Map<String, Value>, path: &str) -> Vec<Address> {
    let mut out = Vec::new();
    for (i, e) in f.array(o, "addresses", path).iter().enumerate() {
        let at = format!("{path}[{i}]");
        let Some(eo) = e.as_object() else {
            f.problem(&at, "expected an object");
            continue;
        };
        let mut s = |k: &str| f.string(eo, k, &format!("{at}.{k}"));
        let a = Address {
            formatted: s("formatted"),
            street_address: s("streetAddress"),
            locality: s("locality"),
            region: s("region"),
            postal_code: s("postalCode"),
            country: s("country"),
            kind: s("type"),
            primary: false,
        };
        out.push(Address {
            primary: boolean(f, eo, "primary", &format!("{at}.primary")).unwrap_or(false),
            ..a
        });
    }
    out
}

pub(crate) fn read_row(v: &Value, f: &mut Fields<'_>) -> Option<NewUser> {
    let Some(o) = v.as_object() else {
        f.problem("", "expected a User resource object");
        return None;
    };
    let mut nu = NewUser::default();
    if let Some(Value::String(id)) = o.get("id") {
        nu.id = uuid::Uuid::parse_str(id.trim()).ok();
    }
    nu.active = boolean(f, o, "active", "active").unwrap_or(true);
    let mut u = User::new(uuid::Uuid::nil(), Profile::default());
    let name = f.object(o, "name", "name");
    let enterprise = f.object(o, ENTERPRISE_SCHEMA, ENTERPRISE_SCHEMA);
    let ext = f.object(o, USERDIR_SCHEMA, USERDIR_SCHEMA);
    for a in ATTRS {
        let (src, key, path) = match a.schema {
            Schema::Core => match a.name.strip_prefix("name.") {
                Some(sub) => (name, sub, a.name.to_owned()),
                None => (Some(o), a.name, a.name.to_owned()),
            },
            Schema::Enterprise => (
                enterprise,
                a.name,
                format!("{ENTERPRISE_SCHEMA}:{}", a.name),
            ),
            Schema::Userdir => (ext, a.name, format!("{USERDIR_SCHEMA}:{}", a.name)),
            _ => continue,
        };
        let Some(src) = src else {
            continue;
        };
        if a.name == "active" {
            continue;
        }
        match (a.slot)(&mut u) {
            Slot::Text(t) => {
                *t = match src.get(key) {
                    // `manager` is `{"value": id, ...}`; a plain id is accepted.
                    Some(Value::Object(m)) if a.name == "manager" => {
                        f.string(m, "value", &format!("{path}.value"))
                    }
                    _ => f.string(src, key, &path),
                };
            }
            Slot::Flag(b) => *b = boolean(f, src, key, &path).unwrap_or(false),
            Slot::OptInstant(x) => *x = f.int(src, key, &path),
            Slot::Langs(l) => {
                if let Some(langs) = f.string(src, key, &path) {
                    *l = langs
                        .split(',')
                        .map(|l| l.split(';').next().unwrap_or("").trim().to_owned())
                        .filter(|l| !l.is_empty())
                        .collect();
                }
            }
            Slot::Set(roles) => match src.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) => {
                    roles.insert(s.clone());
                }
                Some(Value::Array(arr)) => {
                    for (i, r) in arr.iter().enumerate() {
                        match r {
                            Value::String(s) => {
                                roles.insert(s.clone());
                            }
                            Value::Object(ro) => match ro.get("value") {
                                Some(Value::String(s)) => {
                                    roles.insert(s.clone());
                                }
                                _ => f.problem(&format!("roles[{i}].value"), "expected a string"),
                            },
                            _ => {
                                f.problem(&format!("roles[{i}]"), "expected an object or a string");
                            }
                        }
                    }
                }
                Some(_) => f.problem("roles", "expected an array"),
            },
            Slot::Multi(l) => *l = multi(f, src, key, &path),
            Slot::Addresses(l) => *l = addresses(f, src, &path),
            // Written as the JSON text of an object (SCIM has no type for arbitrary keys);
            // an object is accepted too.
            Slot::Data(d) => match src.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::Object(m)) => {
                    d.extend(m.iter().map(|(k, v)| (k.clone(), attr_from_json(v))));
                }
                Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
                    Ok(Value::Object(m)) => {
                        d.extend(m.iter().map(|(k, v)| (k.clone(), attr_from_json(v))));
                    }
                    _ => f.problem(&path, "expected the JSON text of an object"),
                },
                Some(_) => f.problem(&path, "expected the JSON text of an object"),
            },
            _ => {}
        }
    }
    nu.last_login_instant = u.last_login_instant.take();
    nu.password_last_update_instant = u.password_last_update_instant.take();
    if let Some(meta) = f.object(o, "meta", "meta")
        && let Some(created) = f.string(meta, "created", "meta.created")
    {
        match parse_rfc3339(&created) {
            Some(ms) => nu.insert_instant = Some(ms),
            None => f.problem("meta.created", "expected an RFC 3339 date-time"),
        }
    }
    if let Some(pw) = f.string(o, "password", "password") {
        nu.password = Some(PasswordInput::Plain(Password::new(pw)));
    }
    // Attributes of no known schema are kept as custom data, under their name or URN.
    let known = |k: &str| {
        SPECIAL.contains(&k)
            || k == ENTERPRISE_SCHEMA
            || k == USERDIR_SCHEMA
            || ATTRS
                .iter()
                .any(|a| a.schema == Schema::Core && a.name == k)
    };
    if let Some(name) = name {
        let rest: BTreeMap<_, _> = name
            .iter()
            .filter(|(k, _)| {
                !ATTRS
                    .iter()
                    .any(|a| a.name.strip_prefix("name.") == Some(k.as_str()))
            })
            .map(|(k, v)| (k.clone(), attr_from_json(v)))
            .collect();
        if !rest.is_empty() {
            u.data
                .entry("name".to_owned())
                .or_insert(crate::AttrValue::Object(rest));
        }
    }
    for (k, v) in o {
        if !known(k) {
            u.data.entry(k.clone()).or_insert_with(|| attr_from_json(v));
        }
    }
    nu.profile = u.profile;
    (!f.failed()).then_some(nu)
}

fn multi_json(l: &[MultiValue]) -> Value {
    Value::Array(
        l.iter()
            .map(|e| {
                let mut m = Map::new();
                m.insert("value".into(), e.value.clone().into());
                if let Some(t) = &e.kind {
                    m.insert("type".into(), t.clone().into());
                }
                if e.primary {
                    m.insert("primary".into(), true.into());
                }
                if let Some(d) = &e.display {
                    m.insert("display".into(), d.clone().into());
                }
                Value::Object(m)
            })
            .collect(),
    )
}

fn addresses_json(l: &[Address]) -> Value {
    Value::Array(
        l.iter()
            .map(|a| {
                let mut m = Map::new();
                let mut put = |k: &str, v: &Option<String>| {
                    if let Some(v) = v {
                        m.insert(k.into(), v.clone().into());
                    }
                };
                put("formatted", &a.formatted);
                put("streetAddress", &a.street_address);
                put("locality", &a.locality);
                put("region", &a.region);
                put("postalCode", &a.postal_code);
                put("country", &a.country);
                put("type", &a.kind);
                if a.primary {
                    m.insert("primary".into(), true.into());
                }
                Value::Object(m)
            })
            .collect(),
    )
}

/// Writes one user as a SCIM `User` resource, without any password (see the module docs).
#[must_use]
pub fn write_user(u: &User) -> Value {
    let mut m = Map::new();
    let mut name = Map::new();
    let mut enterprise = Map::new();
    let mut ext = Map::new();
    m.insert("id".into(), u.id.to_string().into());
    for a in ATTRS {
        let out = match a.schema {
            Schema::Core if a.name.starts_with("name.") => &mut name,
            Schema::Core => &mut m,
            Schema::Enterprise => &mut enterprise,
            Schema::Userdir => &mut ext,
            _ => continue,
        };
        let key = a.name.strip_prefix("name.").unwrap_or(a.name);
        let v = match (a.get)(u) {
            Get::Text(Some(t)) if a.name == "manager" => {
                let mut mm = Map::new();
                mm.insert("value".into(), t.into());
                Value::Object(mm)
            }
            Get::Text(Some(t)) => t.into(),
            Get::Flag(b) => b.into(),
            Get::Int(Some(x)) => x.into(),
            Get::Langs(l) if !l.is_empty() => l.join(", ").into(),
            Get::Set(l) if !l.is_empty() => Value::Array(
                l.iter()
                    .map(|r| {
                        let mut e = Map::new();
                        e.insert("value".into(), r.clone().into());
                        Value::Object(e)
                    })
                    .collect(),
            ),
            Get::Multi(l) if !l.is_empty() => multi_json(l),
            Get::Addresses(l) if !l.is_empty() => addresses_json(l),
            Get::Data(d) if !d.is_empty() => Value::String(
                Value::Object(
                    d.iter()
                        .map(|(k, v)| (k.clone(), attr_to_json(v)))
                        .collect(),
                )
                .to_string(),
            ),
            _ => continue,
        };
        out.insert(key.into(), v);
    }
    let mut schemas = vec![Value::from(USER_SCHEMA)];
    if !name.is_empty() {
        m.insert("name".into(), Value::Object(name));
    }
    if !enterprise.is_empty() {
        m.insert(ENTERPRISE_SCHEMA.into(), Value::Object(enterprise));
        schemas.push(ENTERPRISE_SCHEMA.into());
    }
    if !ext.is_empty() {
        m.insert(USERDIR_SCHEMA.into(), Value::Object(ext));
        schemas.push(USERDIR_SCHEMA.into());
    }
    let mut meta = Map::new();
    meta.insert("resourceType".into(), "User".into());
    meta.insert("created".into(), format_rfc3339(u.insert_instant).into());
    meta.insert(
        "lastModified".into(),
        format_rfc3339(u.last_update_instant).into(),
    );
    meta.insert("version".into(), format!("W/\"{}\"", u.version).into());
    m.insert("meta".into(), Value::Object(meta));
    m.insert("schemas".into(), Value::Array(schemas));
    Value::Object(m)
}
