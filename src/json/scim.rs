//! SCIM 2.0 `User` resources and `ListResponse` (RFC 7643, RFC 7644; Firstup's seed 004).
//!
//! # Reading
//! A document is a `ListResponse` (`Resources`), a bare array of resources, or one resource.
//!
//! | SCIM | userdir |
//! |---|---|
//! | `id` | `id` when it is a UUID; another system's non-UUID id is not kept (carry it in `externalId`) |
//! | `externalId`, `userName`, `nickName`, `timezone`, `active` | `external_id`, `username`, `nick_name`, `timezone`, `active` (a resource without `active` is active) |
//! | `name.givenName`, `name.middleName`, `name.familyName`, `name.formatted` | `first_name`, `middle_name`, `last_name`, `full_name`; the other `name` parts (`honorificPrefix`, …) go to `data["name"]` |
//! | `displayName` | `full_name` when `name.formatted` is absent, else kept in `data["displayName"]` when it differs |
//! | `emails` | `email`: the `primary` one, else the first; the others stay in `data["emails"]` |
//! | `phoneNumbers` | `mobile_phone`: the one of type `mobile`; the others stay in `data["phoneNumbers"]` |
//! | `photos` | `image_url`: the one of type `photo`, else the first; the others stay in `data["photos"]` |
//! | `preferredLanguage` | `preferred_languages` (an Accept-Language list, `;q=` weights dropped) |
//! | `roles` | `roles`: an array of `{"value": …}` (RFC 7643), an array of strings, or one string (Firstup) |
//! | `password` | a plaintext password, hashed with argon2id |
//! | `meta.created` | `insert_instant` (`lastModified`, `version` and `location` are the server's own) |
//! | [`USERDIR_SCHEMA`] extension | `birthDate`, `verified`, `passwordChangeRequired`, `expiry`, `lastLoginInstant` |
//! | the enterprise extension, any other schema URN, and every other attribute (`addresses`, `title`, `locale`, `groups`, …) | `data`, under the URN or attribute name, as given |
//!
//! `schemas` is not checked. A malformed `meta.created` is a problem of the row.
//!
//! # Writing
//! A `User` resource with the mappings above reversed: `schemas` lists the core schema, every
//! URN among the custom data and [`USERDIR_SCHEMA`] when that extension is written;
//! `meta` has `resourceType`, `created`, `lastModified` and `version` (`W/"<version>"`). Custom
//! data is written as top-level attributes. No password, ever.

use serde_json::{Map, Value};

use super::{Fields, attr_from_json, attr_to_json, format_rfc3339, parse_rfc3339, put};
use crate::user::{AttrValue, NewUser, Password, PasswordInput, User};

/// The SCIM core `User` schema URN.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The SCIM enterprise `User` extension URN (kept as custom data under this key).
pub const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The `ListResponse` message URN.
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// userdir's own extension, for the fields SCIM's core schema has no place for.
pub const USERDIR_SCHEMA: &str = "urn:userdir:params:scim:schemas:extension:userdir:2.0:User";

/// Attributes read into core fields (everything else goes to `data`).
const MAPPED: [&str; 17] = [
    "schemas",
    "id",
    "externalId",
    "userName",
    "name",
    "displayName",
    "nickName",
    "emails",
    "phoneNumbers",
    "photos",
    "preferredLanguage",
    "timezone",
    "active",
    "roles",
    "password",
    "meta",
    USERDIR_SCHEMA,
];

/// Splits a multi-valued attribute into the `value` of the entry `pick` chooses (or of the
/// first entry when `first` is set) and the other entries.
fn pick(
    f: &mut Fields<'_>,
    o: &Map<String, Value>,
    key: &str,
    first: bool,
    choose: impl Fn(&Map<String, Value>) -> bool,
) -> (Option<String>, Vec<Value>) {
    let entries = f.array(o, key, key);
    let chosen = entries
        .iter()
        .position(|e| e.as_object().is_some_and(&choose))
        .or_else(|| (first && !entries.is_empty()).then_some(0));
    let mut value = None;
    let mut rest = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if Some(i) == chosen {
            match e.get("value") {
                Some(Value::String(s)) => value = Some(s.clone()),
                _ => f.problem(&format!("{key}[{i}].value"), "expected a string"),
            }
        } else {
            rest.push(e.clone());
        }
    }
    (value, rest)
}

pub(crate) fn read_row(v: &Value, f: &mut Fields<'_>) -> Option<NewUser> {
    let Some(o) = v.as_object() else {
        f.problem("", "expected a User resource object");
        return None;
    };
    let mut u = NewUser::default();
    if let Some(Value::String(id)) = o.get("id") {
        u.id = uuid::Uuid::parse_str(id.trim()).ok();
    }
    u.active = f.boolean(o, "active", "active").unwrap_or(true);
    let mut data = std::collections::BTreeMap::new();
    let p = &mut u.profile;
    p.external_id = f.string(o, "externalId", "externalId");
    p.username = f.string(o, "userName", "userName");
    p.nick_name = f.string(o, "nickName", "nickName");
    p.timezone = f.string(o, "timezone", "timezone");
    if let Some(name) = f.object(o, "name", "name") {
        p.first_name = f.string(name, "givenName", "name.givenName");
        p.middle_name = f.string(name, "middleName", "name.middleName");
        p.last_name = f.string(name, "familyName", "name.familyName");
        p.full_name = f.string(name, "formatted", "name.formatted");
        let rest: std::collections::BTreeMap<_, _> = name
            .iter()
            .filter(|(k, _)| {
                !["givenName", "middleName", "familyName", "formatted"].contains(&k.as_str())
            })
            .map(|(k, v)| (k.clone(), attr_from_json(v)))
            .collect();
        if !rest.is_empty() {
            data.insert("name".to_owned(), AttrValue::Object(rest));
        }
    }
    if let Some(display) = f.string(o, "displayName", "displayName") {
        if p.full_name.is_none() {
            p.full_name = Some(display);
        } else if p.full_name.as_ref() != Some(&display) {
            data.insert("displayName".to_owned(), AttrValue::String(display));
        }
    }
    let multi = [
        ("emails", true, "primary"),
        ("phoneNumbers", false, "mobile"),
        ("photos", true, "photo"),
    ];
    for (key, first, want) in multi {
        let (value, rest) = pick(f, o, key, first, |e| match want {
            "primary" => e.get("primary") == Some(&Value::Bool(true)),
            t => e.get("type").and_then(Value::as_str) == Some(t),
        });
        match key {
            "emails" => p.email = value,
            "phoneNumbers" => p.mobile_phone = value,
            _ => p.image_url = value,
        }
        if !rest.is_empty() {
            data.insert(key.to_owned(), attr_from_json(&Value::Array(rest)));
        }
    }
    if let Some(langs) = f.string(o, "preferredLanguage", "preferredLanguage") {
        p.preferred_languages = langs
            .split(',')
            .map(|l| l.split(';').next().unwrap_or("").trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect();
    }
    match o.get("roles") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            p.roles.insert(s.clone());
        }
        Some(Value::Array(a)) => {
            for (i, r) in a.iter().enumerate() {
                match r {
                    Value::String(s) => {
                        p.roles.insert(s.clone());
                    }
                    Value::Object(ro) => match ro.get("value") {
                        Some(Value::String(s)) => {
                            p.roles.insert(s.clone());
                        }
                        _ => f.problem(&format!("roles[{i}].value"), "expected a string"),
                    },
                    _ => f.problem(&format!("roles[{i}]"), "expected an object or a string"),
                }
            }
        }
        Some(_) => f.problem("roles", "expected an array"),
    }
    if let Some(ext) = f.object(o, USERDIR_SCHEMA, USERDIR_SCHEMA) {
        let path = |k: &str| format!("{USERDIR_SCHEMA}.{k}");
        p.birth_date = f.string(ext, "birthDate", &path("birthDate"));
        p.verified = f
            .boolean(ext, "verified", &path("verified"))
            .unwrap_or(false);
        p.password_change_required = f
            .boolean(
                ext,
                "passwordChangeRequired",
                &path("passwordChangeRequired"),
            )
            .unwrap_or(false);
        p.expiry = f.int(ext, "expiry", &path("expiry"));
        u.last_login_instant = f.int(ext, "lastLoginInstant", &path("lastLoginInstant"));
    }
    if let Some(meta) = f.object(o, "meta", "meta")
        && let Some(created) = f.string(meta, "created", "meta.created")
    {
        match parse_rfc3339(&created) {
            Some(ms) => u.insert_instant = Some(ms),
            None => f.problem("meta.created", "expected an RFC 3339 date-time"),
        }
    }
    if let Some(pw) = f.string(o, "password", "password") {
        u.password = Some(PasswordInput::Plain(Password::new(pw)));
    }
    for (k, v) in o {
        if !MAPPED.contains(&k.as_str()) {
            data.insert(k.clone(), attr_from_json(v));
        }
    }
    u.profile.data = data;
    (!f.failed()).then_some(u)
}

fn multi(value: Option<&String>, kind: (&str, Value), rest: Option<&AttrValue>) -> Option<Value> {
    let mut out = Vec::new();
    if let Some(v) = value {
        let mut e = Map::new();
        e.insert("value".into(), v.clone().into());
        e.insert(kind.0.into(), kind.1);
        out.push(Value::Object(e));
    }
    if let Some(AttrValue::Array(a)) = rest {
        out.extend(a.iter().map(attr_to_json));
    }
    (!out.is_empty()).then_some(Value::Array(out))
}

/// Writes one user as a SCIM `User` resource, without any password (see the module docs).
#[must_use]
pub fn write_user(u: &User) -> Value {
    let mut m = Map::new();
    let special = ["name", "emails", "phoneNumbers", "photos"];
    let mut schemas = vec![Value::from(USER_SCHEMA)];
    for (k, v) in &u.data {
        if !special.contains(&k.as_str()) {
            m.insert(k.clone(), attr_to_json(v));
            if k.starts_with("urn:") && k != USERDIR_SCHEMA {
                schemas.push(k.clone().into());
            }
        }
    }
    m.insert("id".into(), u.id.to_string().into());
    put(&mut m, "externalId", u.external_id.clone());
    put(&mut m, "userName", u.username.clone());
    let mut name = match u.data.get("name") {
        Some(AttrValue::Object(o)) => o
            .iter()
            .map(|(k, v)| (k.clone(), attr_to_json(v)))
            .collect(),
        _ => Map::new(),
    };
    put(&mut name, "givenName", u.first_name.clone());
    put(&mut name, "middleName", u.middle_name.clone());
    put(&mut name, "familyName", u.last_name.clone());
    put(&mut name, "formatted", u.full_name.clone());
    if !name.is_empty() {
        m.insert("name".into(), Value::Object(name));
    }
    if !m.contains_key("displayName") {
        put(&mut m, "displayName", u.full_name.clone());
    }
    put(&mut m, "nickName", u.nick_name.clone());
    put(
        &mut m,
        "emails",
        multi(
            u.email.as_ref(),
            ("primary", Value::Bool(true)),
            u.data.get("emails"),
        ),
    );
    put(
        &mut m,
        "phoneNumbers",
        multi(
            u.mobile_phone.as_ref(),
            ("type", "mobile".into()),
            u.data.get("phoneNumbers"),
        ),
    );
    put(
        &mut m,
        "photos",
        multi(
            u.image_url.as_ref(),
            ("type", "photo".into()),
            u.data.get("photos"),
        ),
    );
    if !u.preferred_languages.is_empty() {
        m.insert(
            "preferredLanguage".into(),
            u.preferred_languages.join(", ").into(),
        );
    }
    put(&mut m, "timezone", u.timezone.clone());
    m.insert("active".into(), u.active.into());
    if !u.roles.is_empty() {
        let roles = u
            .roles
            .iter()
            .map(|r| {
                let mut e = Map::new();
                e.insert("value".into(), r.clone().into());
                Value::Object(e)
            })
            .collect();
        m.insert("roles".into(), Value::Array(roles));
    }
    let mut ext = Map::new();
    put(&mut ext, "birthDate", u.birth_date.clone());
    if u.verified {
        ext.insert("verified".into(), true.into());
    }
    if u.password_change_required {
        ext.insert("passwordChangeRequired".into(), true.into());
    }
    put(&mut ext, "expiry", u.expiry);
    put(&mut ext, "lastLoginInstant", u.last_login_instant);
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
