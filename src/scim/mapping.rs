//! The one place where SCIM request and response bodies meet the model: resources to and
//! from [`User`]s (through [`crate::json::scim`]), PatchOp bodies to [`PatchOp`]s, `sortBy`
//! to [`SortField`], and the `attributes` / `excludedAttributes` projection.

use serde_json::{Map, Value};

use super::error::ScimError;
use crate::json::scim::{USER_SCHEMA, USERDIR_SCHEMA, write_user};
use crate::json::{Format, attr_from_json};
use crate::patch::{PatchKind, PatchOp};
use crate::query::SortField;
use crate::user::{NewUser, PasswordInput, User, UserUpdate};

/// The `PatchOp` message URN.
pub(crate) const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// The core schema URN as an attribute prefix (`urn:…:User:userName`).
const CORE_PREFIX: &str = "urn:ietf:params:scim:schemas:core:2.0:User:";

/// Attributes whose value is a boolean: Entra sends them as `"True"` / `"False"` strings.
const BOOLEANS: [&str; 3] = ["active", "verified", "passwordchangerequired"];

/// `s` without a case-insensitive `prefix`.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

/// A user as a SCIM `User` resource, with `meta.location`, and userdir's extension flags
/// (which the directory always holds, see `/Schemas`) written whether true or false.
pub(crate) fn resource(u: &User, base: &str) -> Value {
    let mut v = write_user(u);
    if let Some(o) = v.as_object_mut() {
        if let Some(meta) = o.get_mut("meta").and_then(Value::as_object_mut) {
            meta.insert("location".into(), location(base, u).into());
        }
        if let Some(ext) = o
            .entry(USERDIR_SCHEMA)
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
        {
            ext.insert("verified".into(), u.verified.into());
            ext.insert(
                "passwordChangeRequired".into(),
                u.password_change_required.into(),
            );
        }
        if let Some(schemas) = o.get_mut("schemas").and_then(Value::as_array_mut)
            && !schemas.iter().any(|s| s == USERDIR_SCHEMA)
        {
            schemas.push(USERDIR_SCHEMA.into());
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

/// `"True"`/`"false"` strings to booleans (Entra without `aadOptscim062020`).
fn string_bool(v: &Value) -> Option<bool> {
    match v.as_str()?.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
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
    if let Some(b) = o.get("active").and_then(string_bool) {
        o.insert("active".into(), b.into());
    }
    match o.get("userName") {
        Some(Value::String(s)) if !s.trim().is_empty() => {}
        Some(Value::String(_)) | None | Some(Value::Null) => {
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
pub(crate) struct PatchRequest {
    pub(crate) ops: Vec<PatchOp>,
    pub(crate) password: Option<String>,
}

fn kind_of(op: &Value) -> Result<PatchKind, ScimError> {
    match op.as_str().map(str::to_ascii_lowercase).as_deref() {
        Some("add") => Ok(PatchKind::Add),
        Some("replace") => Ok(PatchKind::Replace),
        Some("remove") => Ok(PatchKind::Remove),
        _ => Err(ScimError::bad(
            "invalidSyntax",
            "op must be add, replace or remove",
        )),
    }
}

/// The model path of a SCIM path: the core URN prefix and userdir's extension URN removed.
fn model_path(path: &str) -> String {
    let p = path.trim();
    if let Some(rest) = strip_prefix_ci(p, CORE_PREFIX) {
        return rest.to_owned();
    }
    if let Some(rest) = strip_prefix_ci(p, USERDIR_SCHEMA).and_then(|r| r.strip_prefix(':')) {
        return rest.to_owned();
    }
    p.to_owned()
}

fn push_op(
    out: &mut PatchRequest,
    kind: PatchKind,
    path: &str,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let path = model_path(path);
    let lower = path.to_ascii_lowercase();
    if lower == "password" {
        return match (kind, value) {
            (PatchKind::Remove, _) => Err(ScimError::bad(
                "mutability",
                "the password cannot be removed",
            )),
            (_, Some(Value::String(s))) => {
                out.password = Some(s.clone());
                Ok(())
            }
            _ => Err(ScimError::bad("invalidValue", "password expects a string")),
        };
    }
    // userdir's extension as a whole: each of its attributes is an operation.
    if lower == USERDIR_SCHEMA.to_ascii_lowercase() {
        return match (kind, value) {
            (PatchKind::Remove, _) => {
                for a in ["birthDate", "verified", "passwordChangeRequired", "expiry"] {
                    out.ops.push(PatchOp::remove(a));
                }
                Ok(())
            }
            (_, Some(Value::Object(m))) => {
                for (k, v) in m.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("schemas")) {
                    push_op(out, kind, k, Some(v))?;
                }
                Ok(())
            }
            _ => Err(ScimError::bad(
                "invalidValue",
                "the extension expects an object of its attributes",
            )),
        };
    }
    let value = value.map(
        |v| match (BOOLEANS.contains(&lower.as_str()), string_bool(v)) {
            (true, Some(b)) => attr_from_json(&Value::Bool(b)),
            _ => attr_from_json(v),
        },
    );
    out.ops.push(PatchOp {
        op: kind,
        path: Some(path),
        value,
    });
    Ok(())
}

/// A PatchOp body (RFC 7644 §3.5.2) as model operations. Accepts what identity providers
/// send beyond the RFC: `op` in any case, `"True"`/`"False"` for booleans, path-less
/// operations whose value's keys are paths, and an empty `Operations` list (a no-op).
pub(crate) fn patch_request(body: &Value) -> Result<PatchRequest, ScimError> {
    let Some(o) = body.as_object() else {
        return Err(ScimError::bad(
            "invalidSyntax",
            "the body must be a PatchOp object",
        ));
    };
    let schemas_ok = o.get("schemas").and_then(Value::as_array).is_some_and(|a| {
        a.iter()
            .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(PATCH_OP)))
    });
    if !schemas_ok {
        return Err(ScimError::bad(
            "invalidSyntax",
            format!("schemas must list {PATCH_OP}"),
        ));
    }
    let ops = o
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Operations"))
        .map(|(_, v)| v);
    let Some(Value::Array(ops)) = ops else {
        return Err(ScimError::bad(
            "invalidSyntax",
            "Operations must be an array",
        ));
    };
    let mut out = PatchRequest {
        ops: Vec::with_capacity(ops.len()),
        password: None,
    };
    for op in ops {
        let Some(op) = op.as_object() else {
            return Err(ScimError::bad(
                "invalidSyntax",
                "an operation must be an object",
            ));
        };
        let field = |name: &str| {
            op.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        };
        let kind = kind_of(field("op").unwrap_or(&Value::Null))?;
        let value = field("value").filter(|v| !v.is_null() || kind != PatchKind::Remove);
        match field("path") {
            Some(Value::String(p)) if !p.trim().is_empty() => push_op(&mut out, kind, p, value)?,
            None | Some(Value::Null | Value::String(_)) => match (kind, value) {
                (PatchKind::Remove, _) => {
                    return Err(ScimError::bad("noTarget", "remove needs a path"));
                }
                (_, Some(Value::Object(m))) => {
                    for (k, v) in m {
                        push_op(&mut out, kind, k, Some(v))?;
                    }
                }
                _ => {
                    return Err(ScimError::bad(
                        "invalidValue",
                        "an operation without a path needs an object value",
                    ));
                }
            },
            Some(_) => return Err(ScimError::bad("invalidPath", "path must be a string")),
        }
    }
    Ok(out)
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

/// Applies `attributes` (only these, plus `id` and `schemas`) or `excludedAttributes` (all
/// but these) to a resource (RFC 7644 §3.4.2.5). `attributes` wins when both are given.
pub(crate) fn project(v: Value, attributes: Option<&str>, excluded: Option<&str>) -> Value {
    let Value::Object(mut m) = v else {
        return v;
    };
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
    fn patch_bodies_accept_entra_shapes() {
        let body = json!({"schemas": [PATCH_OP], "Operations": [
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Add", "value": {"name.givenName": "Ann", "password": "secret-pw-1"}},
            {"op": "add", "path": format!("{USERDIR_SCHEMA}:birthDate"), "value": "2000-01-02"},
        ]});
        let r = patch_request(&body).unwrap();
        assert_eq!(r.password.as_deref(), Some("secret-pw-1"));
        assert_eq!(
            r.ops,
            vec![
                PatchOp::replace("active", false),
                PatchOp::add("name.givenName", "Ann"),
                PatchOp::add("birthDate", "2000-01-02"),
            ]
        );
        let empty = json!({"schemas": [PATCH_OP], "Operations": []});
        assert!(patch_request(&empty).unwrap().ops.is_empty());
        assert!(patch_request(&json!({"Operations": []})).is_err());
        let bad = json!({"schemas": [PATCH_OP], "Operations": [{"op": "move", "path": "a"}]});
        assert_eq!(
            patch_request(&bad).err().unwrap().scim_type,
            Some("invalidSyntax")
        );
    }
}
