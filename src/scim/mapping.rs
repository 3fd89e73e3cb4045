//! The one place where SCIM request and response bodies meet the model: resources to and
//! from [`User`]s (through [`crate::json::scim`]), PatchOp bodies to [`PatchOp`]s, `sortBy`
//! to [`SortField`], and the `attributes` / `excludedAttributes` projection.

use serde_json::{Map, Value};

use super::error::ScimError;
use crate::json::scim::{ENTERPRISE_SCHEMA, USER_SCHEMA, USERDIR_SCHEMA, write_user};
use crate::json::{Format, attr_from_json};
use crate::model::{self, Kind, Schema};
use crate::patch::{PatchKind, PatchOp, PatchRequest};
use crate::query::SortField;
use crate::user::{AttrValue, NewUser, PasswordInput, User, UserUpdate};

/// The core schema URN as an attribute prefix (`urn:…:User:userName`).
const CORE_PREFIX: &str = "urn:ietf:params:scim:schemas:core:2.0:User:";

/// `s` without a case-insensitive `prefix`.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

/// A user as a SCIM `User` resource ([`write_user`]) with `meta.location`, and `primary`
/// written on every element of a multi-valued attribute (`false` too: the model holds a
/// boolean, so a client that sent `primary: false` reads back what it sent).
pub(crate) fn resource(u: &User, base: &str) -> Value {
    let mut v = write_user(u);
    if let Some(o) = v.as_object_mut() {
        if let Some(meta) = o.get_mut("meta").and_then(Value::as_object_mut) {
            meta.insert("location".into(), location(base, u).into());
        }
        for (key, list) in o.iter_mut() {
            if key == "roles" {
                continue;
            }
            if let Value::Array(items) = list {
                for item in items.iter_mut().filter_map(Value::as_object_mut) {
                    item.entry("primary").or_insert(Value::Bool(false));
                }
            }
        }
    }
    v
}

/// The URL of a user resource.
pub(crate) fn location(base: &str, u: &User) -> String {
    format!("{base}/Users/{}", u.id)
}

/// The weak ETag of a user (`W/"<version>"`).
pub(crate) fn etag(u: &User) -> String {
    format!("W/\"{}\"", u.version)
}

/// A resource body as a new user: the body must be a `User` resource object; `id` and `meta`
/// are the server's and are ignored; `userName` is required.
pub(crate) fn new_user(body: &Value) -> Result<NewUser, ScimError> {
    let Some(o) = body.as_object() else {
        return Err(ScimError::bad(
            "invalidSyntax",
            "the body must be a User resource object",
        ));
    };
    let schemas_ok = o.get("schemas").and_then(Value::as_array).is_some_and(|a| {
        a.iter().any(|s| {
            s.as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case(USER_SCHEMA))
        })
    });
    if !schemas_ok {
        return Err(ScimError::bad(
            "invalidSyntax",
            format!("schemas must list {USER_SCHEMA}"),
        ));
    }
    let mut o = o.clone();
    for server_owned in ["id", "meta", "Resources", "resources"] {
        o.remove(server_owned);
    }
    match o.get("userName") {
        Some(Value::String(s)) if !s.trim().is_empty() => {}
        Some(Value::String(_) | Value::Null) | None => {
            return Err(ScimError::bad("invalidValue", "userName is required"));
        }
        Some(_) => return Err(ScimError::bad("invalidValue", "userName must be a string")),
    }
    let text = Value::Object(o).to_string();
    let mut rows = crate::json::read(Format::Scim, &text)?;
    match rows.pop() {
        Some(u) if rows.is_empty() => Ok(u),
        _ => Err(ScimError::bad(
            "invalidSyntax",
            "the body must be one User resource",
        )),
    }
}

/// A PUT body as a full replacement: the profile and optional new password, and `active`.
pub(crate) fn replacement(body: &Value) -> Result<(UserUpdate, bool), ScimError> {
    let u = new_user(body)?;
    let password = match u.password {
        Some(PasswordInput::Plain(p)) => Some(p),
        Some(PasswordInput::Hashed(_)) => {
            return Err(ScimError::bad("invalidValue", "password must be plaintext"));
        }
        None => None,
    };
    Ok((
        UserUpdate {
            profile: u.profile,
            password,
        },
        u.active,
    ))
}

/// A parsed PatchOp request: the operations on the model, and a new password if an
/// operation sets one (the password is hashed outside the write transaction).
pub(crate) struct PatchBody {
    pub(crate) ops: Vec<PatchOp>,
    pub(crate) password: Option<String>,
}

/// Whether a PATCH path names the password (`password`, or with the core URN).
fn is_password(path: &str) -> bool {
    let p = path.trim();
    strip_prefix_ci(p, CORE_PREFIX)
        .unwrap_or(p)
        .eq_ignore_ascii_case("password")
}

/// The extension URN `path` names as a whole, if any.
fn extension_urn(path: &str) -> Option<&'static str> {
    let p = path.trim();
    [ENTERPRISE_SCHEMA, USERDIR_SCHEMA]
        .into_iter()
        .find(|urn| p.eq_ignore_ascii_case(urn))
}

/// Whether a PATCH path names userdir's `data` attribute (custom data as one JSON text).
fn is_data(path: &str) -> bool {
    let p = path.trim();
    strip_prefix_ci(p, USERDIR_SCHEMA)
        .and_then(|r| r.strip_prefix(':'))
        .unwrap_or(p)
        .eq_ignore_ascii_case("data")
}

/// Adds one operation to `out`, normalized for the PATCH engine:
/// - the password is taken out (write-only: it goes through the policy and the hasher);
/// - an extension as a whole (`urn:…:enterprise:2.0:User`, userdir's) becomes one operation
///   per attribute (its `schemas` member, which clients copy from the resource, dropped); its
///   removal removes each of its writable attributes;
/// - `data` given as JSON text (its SCIM form) is parsed, and `add`/`replace` of it replaces
///   the whole custom data, as for any single-valued string;
/// - a path-less operation becomes one operation per key of its value.
fn push_op(
    out: &mut PatchBody,
    kind: PatchKind,
    path: Option<&str>,
    value: Option<AttrValue>,
) -> Result<(), ScimError> {
    let Some(path) = path else {
        return match (kind, value) {
            (PatchKind::Remove, _) => Err(ScimError::bad("noTarget", "remove needs a path")),
            (_, Some(AttrValue::Object(m))) => {
                for (k, v) in m {
                    push_op(out, kind, Some(&k), Some(v))?;
                }
                Ok(())
            }
            _ => Err(ScimError::bad(
                "invalidValue",
                "an operation without a path needs an object value",
            )),
        };
    };
    if is_password(path) {
        if kind == PatchKind::Remove {
            return Err(ScimError::bad(
                "mutability",
                "the password cannot be removed",
            ));
        }
        let Some(AttrValue::String(s)) = value else {
            return Err(ScimError::bad("invalidValue", "password expects a string"));
        };
        out.password = Some(s);
        return Ok(());
    }
    if let Some(urn) = extension_urn(path) {
        return match (kind, value) {
            (PatchKind::Remove, _) => {
                let schema = if urn == ENTERPRISE_SCHEMA {
                    Schema::Enterprise
                } else {
                    Schema::Userdir
                };
                for a in model::attributes().filter(|a| a.schema == schema) {
                    if !matches!(a.kind, Kind::Instant | Kind::Version | Kind::Hash)
                        && !matches!(a.name, "lastLoginInstant" | "passwordLastUpdateInstant")
                    {
                        out.ops.push(PatchOp::remove(format!("{urn}:{}", a.name)));
                    }
                }
                Ok(())
            }
            (_, Some(AttrValue::Object(m))) => {
                for (k, v) in m {
                    if !k.eq_ignore_ascii_case("schemas") {
                        push_op(out, kind, Some(&format!("{urn}:{k}")), Some(v))?;
                    }
                }
                Ok(())
            }
            _ => Err(ScimError::bad(
                "invalidValue",
                "an extension expects an object of its attributes",
            )),
        };
    }
    if is_data(path) {
        return match (kind, value) {
            (PatchKind::Remove, _) => {
                out.ops.push(PatchOp::remove("data"));
                Ok(())
            }
            (_, Some(AttrValue::String(text))) => {
                let parsed: Value = serde_json::from_str(&text).map_err(|_| {
                    ScimError::bad("invalidValue", "data expects the JSON text of an object")
                })?;
                let Value::Object(_) = parsed else {
                    return Err(ScimError::bad(
                        "invalidValue",
                        "data expects the JSON text of an object",
                    ));
                };
                out.ops.push(PatchOp::remove("data"));
                out.ops.push(PatchOp::add("data", attr_from_json(&parsed)));
                Ok(())
            }
            (_, value) => {
                out.ops.push(PatchOp {
                    op: kind,
                    path: Some("data".to_owned()),
                    value,
                });
                Ok(())
            }
        };
    }
    out.ops.push(PatchOp {
        op: kind,
        path: Some(path.to_owned()),
        value,
    });
    Ok(())
}

/// A PatchOp body (RFC 7644 §3.5.2, and the shapes identity providers send: see
/// [`PatchRequest`]) as model operations (see `push_op`), with a new password apart.
pub(crate) fn patch_request(body: &Value) -> Result<PatchBody, ScimError> {
    let req = PatchRequest::from_value(body)?;
    let mut out = PatchBody {
        ops: Vec::with_capacity(req.operations.len()),
        password: None,
    };
    for op in req.operations {
        push_op(&mut out, op.op, op.path.as_deref(), op.value)?;
    }
    Ok(out)
}

/// An attribute name without the core URN or userdir's extension URN before it.
fn model_path(path: &str) -> &str {
    let p = path.trim();
    if let Some(rest) = strip_prefix_ci(p, CORE_PREFIX) {
        return rest;
    }
    strip_prefix_ci(p, USERDIR_SCHEMA)
        .and_then(|r| r.strip_prefix(':'))
        .unwrap_or(p)
}

/// `sortBy` and `sortOrder` as a sort key.
pub(crate) fn sort_field(by: &str, order: Option<&str>) -> Result<SortField, ScimError> {
    let field = match model_path(by).to_ascii_lowercase().as_str() {
        "username" => SortField::username(),
        "emails" | "emails.value" => SortField::email(),
        "name.formatted" | "displayname" => SortField::full_name(),
        "birthdate" => SortField::birth_date(),
        "meta.created" => SortField::insert_instant(),
        "lastlogininstant" => SortField::last_login(),
        _ => {
            return Err(ScimError::bad(
                "invalidValue",
                format!(
                    "cannot sort by {by:?} (userName, emails.value, name.formatted, \
                     displayName, birthDate, meta.created, lastLoginInstant)"
                ),
            ));
        }
    };
    match order.map(|o| o.trim().to_ascii_lowercase()).as_deref() {
        None | Some("" | "ascending") => Ok(field),
        Some("descending") => Ok(field.desc()),
        Some(_) => Err(ScimError::bad(
            "invalidValue",
            "sortOrder must be ascending or descending",
        )),
    }
}

/// One requested attribute path: the resource's top-level key and an optional sub-path.
struct Wanted {
    top: String,
    sub: Option<String>,
}

fn parse_wanted(list: &str, resource: &Map<String, Value>) -> Vec<Wanted> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|raw| {
            let p = strip_prefix_ci(raw, CORE_PREFIX).unwrap_or(raw);
            // An extension URN, alone or followed by `:attribute`.
            if let Some(urn) = resource.keys().find(|k| {
                k.starts_with("urn:")
                    && strip_prefix_ci(p, k).is_some_and(|r| r.is_empty() || r.starts_with(':'))
            }) {
                let rest = strip_prefix_ci(p, urn).unwrap_or("");
                let sub = rest.strip_prefix(':').map(str::to_owned);
                return Wanted {
                    top: urn.clone(),
                    sub,
                };
            }
            match p.split_once('.') {
                Some((top, sub)) => Wanted {
                    top: top.to_owned(),
                    sub: Some(sub.to_owned()),
                },
                None => Wanted {
                    top: p.to_owned(),
                    sub: None,
                },
            }
        })
        .collect()
}

fn key_ci<'m>(m: &'m Map<String, Value>, name: &str) -> Option<&'m String> {
    m.keys().find(|k| k.eq_ignore_ascii_case(name))
}

/// Keeps (`keep`) or drops (`!keep`) the sub-attribute `sub` of `v` (an object, or each
/// object of an array).
fn project_sub(v: &mut Value, sub: &str, keep: bool) {
    let one = |o: &mut Map<String, Value>| {
        let found = key_ci(o, sub).cloned();
        if keep {
            o.retain(|k, _| Some(k) == found.as_ref());
        } else if let Some(k) = found {
            o.remove(&k);
        }
    };
    match v {
        Value::Object(o) => one(o),
        Value::Array(a) => a.iter_mut().filter_map(Value::as_object_mut).for_each(one),
        _ => {}
    }
}

/// userdir's extension attributes published with `returned: request`: in a response only
/// when `attributes` names them.
pub(crate) const ON_REQUEST: [&str; 2] = ["lastLoginInstant", "passwordLastUpdateInstant"];

/// Applies `attributes` (only these, plus `id` and `schemas`) or `excludedAttributes` (all
/// but these) to a resource (RFC 7644 §3.4.2.5). `attributes` wins when both are given.
/// Attributes returned on request ([`ON_REQUEST`]) are dropped unless `attributes` names them.
pub(crate) fn project(v: Value, attributes: Option<&str>, excluded: Option<&str>) -> Value {
    let Value::Object(mut m) = v else {
        return v;
    };
    if let Some(ext) = m.get_mut(USERDIR_SCHEMA).and_then(Value::as_object_mut) {
        let asked = |name: &str| {
            attributes.is_some_and(|list| {
                list.split(',').any(|a| {
                    let a = a.trim();
                    let a = strip_prefix_ci(a, USERDIR_SCHEMA)
                        .and_then(|r| r.strip_prefix(':'))
                        .unwrap_or(a);
                    a.eq_ignore_ascii_case(name)
                })
            })
        };
        for name in ON_REQUEST {
            if !asked(name) {
                ext.remove(name);
            }
        }
    }
    const ALWAYS: [&str; 2] = ["id", "schemas"];
    if let Some(list) = attributes.filter(|s| !s.trim().is_empty()) {
        let wanted = parse_wanted(list, &m);
        let mut out = Map::new();
        for k in ALWAYS {
            if let Some(v) = m.remove(k) {
                out.insert(k.to_owned(), v);
            }
        }
        for w in &wanted {
            let Some(key) = key_ci(&m, &w.top).cloned() else {
                continue;
            };
            let Some(mut value) = m.get(&key).cloned() else {
                continue;
            };
            match &w.sub {
                None => {
                    out.insert(key, value);
                }
                Some(sub) => {
                    project_sub(&mut value, sub, true);
                    // Several sub-attributes of one attribute: merge them.
                    match (out.get_mut(&key), value) {
                        (Some(Value::Object(have)), Value::Object(new)) => have.extend(new),
                        (Some(Value::Array(have)), Value::Array(new)) => {
                            for (h, n) in have.iter_mut().zip(new) {
                                if let (Value::Object(h), Value::Object(n)) = (h, n) {
                                    h.extend(n);
                                }
                            }
                        }
                        (_, value) => {
                            out.insert(key, value);
                        }
                    }
                }
            }
        }
        return Value::Object(out);
    }
    if let Some(list) = excluded.filter(|s| !s.trim().is_empty()) {
        for w in parse_wanted(list, &m) {
            let Some(key) = key_ci(&m, &w.top).cloned() else {
                continue;
            };
            if ALWAYS.contains(&key.as_str()) {
                continue;
            }
            match &w.sub {
                None => {
                    m.remove(&key);
                }
                Some(sub) => {
                    if let Some(v) = m.get_mut(&key) {
                        project_sub(v, sub, false);
                    }
                }
            }
        }
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn projection_keeps_id_schemas_and_the_requested_parts() {
        let r = json!({"id": "1", "schemas": ["s"], "userName": "ann",
            "name": {"givenName": "Ann", "familyName": "Lee"},
            "emails": [{"value": "a@x.com", "primary": true}],
            USERDIR_SCHEMA: {"birthDate": "2000-01-01", "verified": true},
            "meta": {"version": "W/\"1\""}});
        let p = project(
            r.clone(),
            Some(&format!(
                "USERNAME,name.givenName,emails.value,{USERDIR_SCHEMA}:birthDate"
            )),
            None,
        );
        assert_eq!(
            p,
            json!({"id": "1", "schemas": ["s"], "userName": "ann", "name": {"givenName": "Ann"},
                   "emails": [{"value": "a@x.com"}], USERDIR_SCHEMA: {"birthDate": "2000-01-01"}})
        );
        let p = project(r, None, Some("name.familyName,emails,id,meta"));
        assert_eq!(
            p,
            json!({"id": "1", "schemas": ["s"], "userName": "ann", "name": {"givenName": "Ann"},
                   USERDIR_SCHEMA: {"birthDate": "2000-01-01", "verified": true}})
        );
    }

    #[test]
    fn patch_bodies_take_the_password_out() {
        let op = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
        let body = json!({"schemas": [op], "Operations": [
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Add", "value": {"name.givenName": "Ann", "password": "secret-pw-1"}},
            {"op": "replace", "path": format!("{USER_SCHEMA}:password"), "value": "secret-pw-2"},
        ]});
        let r = patch_request(&body).unwrap();
        assert_eq!(r.password.as_deref(), Some("secret-pw-2"));
        assert_eq!(
            r.ops,
            [
                PatchOp::replace("active", "False"),
                PatchOp::add("name.givenName", "Ann")
            ]
        );
        let ext = json!({"schemas": [op], "Operations": [
            {"op": "replace", "path": USERDIR_SCHEMA,
             "value": {"schemas": [USERDIR_SCHEMA], "data": "{\"a\":1}", "verified": true}},
            {"op": "remove", "path": ENTERPRISE_SCHEMA},
        ]});
        let r = patch_request(&ext).unwrap();
        assert_eq!(r.ops[0], PatchOp::remove("data"));
        assert_eq!(r.ops[1].path.as_deref(), Some("data"));
        assert_eq!(
            r.ops[2],
            PatchOp::replace(format!("{USERDIR_SCHEMA}:verified"), true)
        );
        assert!(r.ops[3..].iter().all(|o| {
            o.op == PatchKind::Remove
                && o.path
                    .as_deref()
                    .is_some_and(|p| p.starts_with(ENTERPRISE_SCHEMA))
        }));
        assert_eq!(r.ops.len(), 3 + 6);
        let empty = json!({"schemas": [op], "Operations": []});
        assert!(patch_request(&empty).unwrap().ops.is_empty());
        let remove = json!({"schemas": [op], "Operations": [{"op": "remove", "path": "password"}]});
        assert_eq!(
            patch_request(&remove).err().unwrap().scim_type,
            Some("mutability")
        );
    }
}
