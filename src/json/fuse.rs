//! Fuse Universal's manage-users bulk create shape (seed 001).
//!
//! # Reading
//! A document is `{"users":[…]}` (the bulk create request), a bare array, `{"user":{…}}` or a
//! bare user. Fields:
//!
//! | Fuse | userdir |
//! |---|---|
//! | `username`, `email` | the same |
//! | `password`, `password_confirmation` | a plaintext password and its confirmation (they must match; hashed with argon2id) |
//! | `role` | `roles` (a string, or an array of strings) |
//! | `profile.FirstName`, `profile.LastName` | `first_name`, `last_name` |
//! | the other `profile` fields (customer-specific) | `data["profile"]` |
//! | `settings` | `data["settings"]` |
//! | every other top-level field (`plain_text_emails`, `hidden_from_leaderboard`, `accessibility_theme`, …) | `data[field]` |
//! | `id` (a UUID), `active` | the same; a row without `active` is active, as a Fuse create |
//!
//! # Writing
//! The same shape without any password: `id`, `username`, `email`, `active`, `role` (a string
//! for one role, an array for several), `profile` (`FirstName`, `LastName` and `data["profile"]`),
//! and the other custom data as top-level fields (`settings` among them). Fields Fuse has no
//! place for (birth date, phone, instants, …) are not written: use FusionAuth or SCIM for a
//! complete export.

use serde_json::{Map, Value};

use super::{Fields, attr_from_json, attr_to_json};
use crate::user::{AttrValue, NewUser, Password, PasswordInput, User};

const CORE: [&str; 8] = [
    "id",
    "username",
    "email",
    "password",
    "password_confirmation",
    "role",
    "active",
    "profile",
];

pub(crate) fn read_row(v: &Value, f: &mut Fields<'_>) -> Option<NewUser> {
    let Some(o) = v.as_object() else {
        f.problem("", "expected a user object");
        return None;
    };
    let mut u = NewUser {
        id: f.uuid(o, "id", "id"),
        active: f.boolean(o, "active", "active").unwrap_or(true),
        ..NewUser::default()
    };
    let p = &mut u.profile;
    p.username = f.string(o, "username", "username");
    p.email = f.string(o, "email", "email");
    p.roles.extend(f.strings(o, "role", "role"));
    if let Some(prof) = f.object(o, "profile", "profile") {
        p.first_name = f.string(prof, "FirstName", "profile.FirstName");
        p.last_name = f.string(prof, "LastName", "profile.LastName");
        let rest: std::collections::BTreeMap<String, AttrValue> = prof
            .iter()
            .filter(|(k, _)| *k != "FirstName" && *k != "LastName")
            .map(|(k, v)| (k.clone(), attr_from_json(v)))
            .collect();
        if !rest.is_empty() {
            p.data.insert("profile".into(), AttrValue::Object(rest));
        }
    }
    for (k, v) in o {
        if !CORE.contains(&k.as_str()) {
            p.data.insert(k.clone(), attr_from_json(v));
        }
    }
    if let Some(pw) = f.string(o, "password", "password") {
        u.password = Some(PasswordInput::Plain(Password::new(pw)));
    }
    u.confirm = f
        .string(o, "password_confirmation", "password_confirmation")
        .map(Password::new);
    (!f.failed()).then_some(u)
}

/// Writes one user as a Fuse bulk-create row, without any password (see the module docs).
#[must_use]
pub fn write_user(u: &User) -> Value {
    let mut m = Map::new();
    for (k, v) in &u.data {
        if k != "profile" {
            m.insert(k.clone(), attr_to_json(v));
        }
    }
    m.insert("id".into(), u.id.to_string().into());
    if let Some(s) = &u.username {
        m.insert("username".into(), s.clone().into());
    }
    if let Some(s) = &u.email {
        m.insert("email".into(), s.clone().into());
    }
    m.insert("active".into(), u.active.into());
    match u.roles.len() {
        0 => {}
        1 => {
            if let Some(r) = u.roles.first() {
                m.insert("role".into(), r.clone().into());
            }
        }
        _ => {
            m.insert(
                "role".into(),
                u.roles.iter().cloned().collect::<Vec<_>>().into(),
            );
        }
    }
    let mut profile = match u.data.get("profile") {
        Some(AttrValue::Object(o)) => o
            .iter()
            .map(|(k, v)| (k.clone(), attr_to_json(v)))
            .collect(),
        _ => Map::new(),
    };
    if let Some(s) = &u.first_name {
        profile.insert("FirstName".into(), s.clone().into());
    }
    if let Some(s) = &u.last_name {
        profile.insert("LastName".into(), s.clone().into());
    }
    if !profile.is_empty() {
        m.insert("profile".into(), Value::Object(profile));
    }
    Value::Object(m)
}
