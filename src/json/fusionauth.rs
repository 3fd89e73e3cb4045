//! FusionAuth's User API shapes (seed 002).
//!
//! # Reading
//! A document is an import request `{"users":[…]}`, a create request or response
//! `{"user":{…}}`, a bare array of users or a bare user. Fields:
//!
//! | FusionAuth | userdir |
//! |---|---|
//! | `id` | `id` (kept) |
//! | `username`, `email`, `firstName`, `middleName`, `lastName`, `fullName`, `birthDate`, `mobilePhone`, `imageUrl`, `timezone` | the same fields in snake_case |
//! | `preferredLanguages` | `preferred_languages` |
//! | `data` | `data` (any JSON object) |
//! | `active` | `active`; **an import row without `active` is inactive**, as FusionAuth documents (`users[x].active … defaults to false`); a single `{"user":…}` without it is active, as a FusionAuth create |
//! | `verified`, `passwordChangeRequired`, `expiry` | the same fields |
//! | `insertInstant`, `lastLoginInstant` | kept |
//! | `passwordLastUpdateInstant` | kept for a pre-hashed password; ignored (set to now) for a plaintext one, as FusionAuth does |
//! | `registrations[x].roles` | `roles`: the union of the roles of every registration (userdir has one application; the registrations' other fields — application id, per-application data, username, tokens — are not kept) |
//! | `password` without `encryptionScheme` | a plaintext password, hashed with argon2id |
//! | `password` + `encryptionScheme` `salted-pbkdf2-hmac-sha256` + `salt` + `factor` | FusionAuth's default scheme, kept and verified at login, then rehashed to argon2id (a missing `factor` is FusionAuth's default, 24000) |
//! | `password` + `encryptionScheme` `bcrypt` + `salt` + `factor` | FusionAuth's bcrypt import shape (`factor` is the cost, `salt` the 22-character salt, `password` the 31-character hash) |
//! | `password` + `encryptionScheme` [`USERDIR_PHC`] | a hash exactly as userdir stores it (what `with_hashes` writes) |
//! | `externalId`, `nickName`, `roles` | userdir extensions (not FusionAuth fields), written back by the writer |
//! | `honorificPrefix`, `honorificSuffix`, `displayName`, `profileUrl`, `title`, `userType`, `locale`, `employeeNumber`, `costCenter`, `organization`, `division`, `department`, `manager` (the manager's id) | userdir extensions for the SCIM attributes of those names (`name.*`, the enterprise extension flat) |
//! | `emails`, `phoneNumbers`, `ims`, `photos`, `x509Certificates`, `entitlements`, `addresses` | userdir extensions: the SCIM lists, in SCIM's shape (`{"value", "type", "primary", "display"}`); `phoneNumbers` and `photos`, when given, replace `mobilePhone` and `imageUrl` |
//!
//! Other encryption schemes (`salted-sha256`, `salted-md5`, …) are refused with a problem on the
//! row's `encryptionScheme`. The request-level `encryptionScheme` and `factor` (how FusionAuth
//! hashes plaintext passwords) are ignored: userdir hashes plaintext with argon2id. Other fields
//! (`tenantId`, `twoFactor*`, `usernameStatus`, `cleanSpeakId`, …) are ignored.
//!
//! # Writing
//! A user object with the fields above; `roles` go to one registration of the application
//! [`USERDIR_APPLICATION_ID`] (and, for a lossless re-import, to the `roles` extension). A list
//! is written when it holds more than the FusionAuth field it backs (`email`, `mobilePhone`,
//! `imageUrl`), so a user read back is the user written: every stored attribute round-trips.
//! `lastUpdateInstant` is written too. No password or hash, except with `with_hashes`: then
//! `encryptionScheme` is [`USERDIR_PHC`] and `password` the stored hash.

use serde_json::{Map, Value};

use super::scim::{addresses, addresses_json, multi, multi_json};
use super::{Fields, attr_from_json, data_to_json, put};
use crate::user::{MultiValue, NewUser, PasswordInput, Profile, StoredHash, User};

/// A profile's optional string field.
type TextField = fn(&mut Profile) -> &mut Option<String>;
/// A profile's multi-valued field.
type ListField = fn(&mut Profile) -> &mut Vec<MultiValue>;

/// The userdir extensions of the FusionAuth shape for SCIM attributes FusionAuth has no field
/// for: single-valued strings, under their SCIM names (`name.honorificPrefix` as
/// `honorificPrefix`, the enterprise extension's attributes flat, `manager` as the manager's
/// id).
const SCIM_TEXT: [(&str, TextField); 13] = [
    ("honorificPrefix", |p| &mut p.honorific_prefix),
    ("honorificSuffix", |p| &mut p.honorific_suffix),
    ("displayName", |p| &mut p.display_name),
    ("profileUrl", |p| &mut p.profile_url),
    ("title", |p| &mut p.title),
    ("userType", |p| &mut p.user_type),
    ("locale", |p| &mut p.locale),
    ("employeeNumber", |p| &mut p.employee_number),
    ("costCenter", |p| &mut p.cost_center),
    ("organization", |p| &mut p.organization),
    ("division", |p| &mut p.division),
    ("department", |p| &mut p.department),
    ("manager", |p| &mut p.manager),
];

/// The multi-valued SCIM attributes, written as SCIM writes them.
const SCIM_LISTS: [(&str, ListField); 6] = [
    ("emails", |p| &mut p.emails),
    ("phoneNumbers", |p| &mut p.phone_numbers),
    ("ims", |p| &mut p.ims),
    ("photos", |p| &mut p.photos),
    ("x509Certificates", |p| &mut p.x509_certificates),
    ("entitlements", |p| &mut p.entitlements),
];

/// Reads the SCIM-only attributes (see [`SCIM_TEXT`], [`SCIM_LISTS`], `addresses`).
fn read_scim_only(o: &Map<String, Value>, p: &mut Profile, f: &mut Fields<'_>) {
    for (key, field) in SCIM_TEXT {
        *field(p) = f.string(o, key, key);
    }
    for (key, field) in SCIM_LISTS {
        *field(p) = multi(f, o, key, key);
    }
    p.addresses = addresses(f, o, "addresses");
}

/// Writes the SCIM-only attributes; a list only when it holds more than the FusionAuth field
/// it backs says (`email`: the login email as the one `work` primary element; `mobilePhone`,
/// `imageUrl`: one element of type `mobile`, `photo`).
fn write_scim_only(u: &User, m: &mut Map<String, Value>) {
    let mut p = u.profile.clone();
    for (key, field) in SCIM_TEXT {
        put(m, key, field(&mut p).take());
    }
    let implied = |value: Option<&str>, kind: &str, primary: bool| -> Vec<MultiValue> {
        value
            .map(|v| MultiValue::new(v).kind(kind).primary(primary))
            .into_iter()
            .collect()
    };
    for (key, field) in SCIM_LISTS {
        let list = field(&mut p);
        let plain = match key {
            "emails" => implied(u.email.as_deref(), "work", true),
            "phoneNumbers" => implied(u.mobile_phone(), "mobile", false),
            "photos" => implied(u.image_url(), "photo", false),
            _ => Vec::new(),
        };
        if *list != plain {
            m.insert(key.into(), multi_json(list));
        }
    }
    if !u.addresses.is_empty() {
        m.insert("addresses".into(), addresses_json(&u.addresses));
    }
}

/// The `encryptionScheme` of a hash written by `with_hashes`: the `password` field holds the
/// hash exactly as userdir stores it (a PHC or modular-crypt string).
pub const USERDIR_PHC: &str = "userdir-phc";

/// The application id under which the writer lists a user's roles in `registrations`.
pub const USERDIR_APPLICATION_ID: &str = "00000000-0000-0000-0000-000000000000";

/// FusionAuth's default factor for `salted-pbkdf2-hmac-sha256`.
pub const DEFAULT_PBKDF2_FACTOR: u32 = 24_000;

/// Reads one FusionAuth user object; `None` (with problems recorded) when it is unusable.
pub(crate) fn read_row(v: &Value, default_active: bool, f: &mut Fields<'_>) -> Option<NewUser> {
    let Some(o) = v.as_object() else {
        f.problem("", "expected a user object");
        return None;
    };
    let mut u = NewUser {
        id: f.uuid(o, "id", "id"),
        ..NewUser::default()
    };
    let p = &mut u.profile;
    p.username = f.string(o, "username", "username");
    p.email = f.string(o, "email", "email");
    p.external_id = f.string(o, "externalId", "externalId");
    p.first_name = f.string(o, "firstName", "firstName");
    p.middle_name = f.string(o, "middleName", "middleName");
    p.last_name = f.string(o, "lastName", "lastName");
    p.full_name = f.string(o, "fullName", "fullName");
    p.nick_name = f.string(o, "nickName", "nickName");
    p.birth_date = f.string(o, "birthDate", "birthDate");
    let mobile = f.string(o, "mobilePhone", "mobilePhone");
    let image = f.string(o, "imageUrl", "imageUrl");
    read_scim_only(o, p, f);
    // `phoneNumbers` and `photos`, when given, hold the mobile phone and the picture already.
    if !o.contains_key("phoneNumbers") && mobile.is_some() {
        p.set_mobile_phone(mobile);
    }
    if !o.contains_key("photos") && image.is_some() {
        p.set_image_url(image);
    }
    p.timezone = f.string(o, "timezone", "timezone");
    p.preferred_languages = f.strings(o, "preferredLanguages", "preferredLanguages");
    if let Some(d) = f.object(o, "data", "data") {
        p.data = d
            .iter()
            .map(|(k, v)| (k.clone(), attr_from_json(v)))
            .collect();
    }
    p.verified = f.boolean(o, "verified", "verified").unwrap_or(false);
    p.password_change_required = f
        .boolean(o, "passwordChangeRequired", "passwordChangeRequired")
        .unwrap_or(false);
    p.expiry = f.int(o, "expiry", "expiry");
    p.roles.extend(f.strings(o, "roles", "roles"));
    for (i, r) in f
        .array(o, "registrations", "registrations")
        .iter()
        .enumerate()
    {
        let path = format!("registrations[{i}]");
        match r.as_object() {
            Some(r) => p
                .roles
                .extend(f.strings(r, "roles", &format!("{path}.roles"))),
            None => f.problem(&path, "expected an object"),
        }
    }
    u.active = f.boolean(o, "active", "active").unwrap_or(default_active);
    u.insert_instant = f.int(o, "insertInstant", "insertInstant");
    u.last_login_instant = f.int(o, "lastLoginInstant", "lastLoginInstant");
    let password_instant = f.int(o, "passwordLastUpdateInstant", "passwordLastUpdateInstant");
    let password = f.string(o, "password", "password");
    let scheme = f.string(o, "encryptionScheme", "encryptionScheme");
    match (scheme, password) {
        (None, None) => {}
        (None, Some(p)) => u.password = Some(PasswordInput::Plain(p.into())),
        (Some(_), None) => f.problem("password", "required when encryptionScheme is given"),
        (Some(scheme), Some(p)) => {
            if let Some(h) = hashed(&scheme, &p, o, f) {
                u.password = Some(PasswordInput::Hashed(h));
                u.password_last_update_instant = password_instant;
            }
        }
    }
    (!f.failed()).then_some(u)
}

fn hashed(
    scheme: &str,
    password: &str,
    o: &Map<String, Value>,
    f: &mut Fields<'_>,
) -> Option<StoredHash> {
    match scheme {
        USERDIR_PHC => Some(StoredHash::from_encoded(password)),
        "salted-pbkdf2-hmac-sha256" => {
            let salt = f.string(o, "salt", "salt");
            let factor = factor(o, f)?.unwrap_or(DEFAULT_PBKDF2_FACTOR);
            let Some(salt) = salt else {
                f.problem("salt", "required when encryptionScheme is given");
                return None;
            };
            match StoredHash::fusionauth_pbkdf2(&salt, factor, password) {
                Ok(h) => Some(h),
                Err(e) => {
                    f.problem("password", e.to_string());
                    None
                }
            }
        }
        "bcrypt" => {
            let salt = f.string(o, "salt", "salt");
            let cost = factor(o, f)?;
            let (Some(salt), Some(cost)) = (salt, cost) else {
                f.problem("salt", "bcrypt needs salt and factor");
                return None;
            };
            Some(StoredHash::from_encoded(format!(
                "$2a${cost:02}${salt}{password}"
            )))
        }
        other => {
            f.problem(
                "encryptionScheme",
                format!(
                    "unsupported scheme {other:?} (supported: salted-pbkdf2-hmac-sha256, bcrypt, {USERDIR_PHC}; or a plaintext password without encryptionScheme)"
                ),
            );
            None
        }
    }
}

/// The `factor`, which FusionAuth documents as a string or an integer. `None` outer: bad value.
fn factor(o: &Map<String, Value>, f: &mut Fields<'_>) -> Option<Option<u32>> {
    match f.int(o, "factor", "factor") {
        None => Some(None),
        Some(n) => match u32::try_from(n) {
            Ok(n) if n > 0 => Some(Some(n)),
            _ => {
                f.problem("factor", "expected a positive integer");
                None
            }
        },
    }
}

/// Writes one user as a FusionAuth user object (see the module docs).
#[must_use]
pub fn write_user(u: &User, with_hashes: bool) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), u.id.to_string().into());
    m.insert("active".into(), u.active.into());
    put(&mut m, "username", u.username.clone());
    put(&mut m, "email", u.email.clone());
    put(&mut m, "externalId", u.external_id.clone());
    m.insert("verified".into(), u.verified.into());
    put(&mut m, "firstName", u.first_name.clone());
    put(&mut m, "middleName", u.middle_name.clone());
    put(&mut m, "lastName", u.last_name.clone());
    put(&mut m, "fullName", u.full_name.clone());
    put(&mut m, "nickName", u.nick_name.clone());
    put(&mut m, "birthDate", u.birth_date.clone());
    put(&mut m, "mobilePhone", u.mobile_phone().map(str::to_owned));
    put(&mut m, "imageUrl", u.image_url().map(str::to_owned));
    put(&mut m, "timezone", u.timezone.clone());
    if !u.preferred_languages.is_empty() {
        m.insert(
            "preferredLanguages".into(),
            u.preferred_languages.clone().into(),
        );
    }
    write_scim_only(u, &mut m);
    if !u.data.is_empty() {
        m.insert("data".into(), Value::Object(data_to_json(&u.data)));
    }
    if !u.roles.is_empty() {
        let roles: Vec<Value> = u.roles.iter().map(|r| Value::from(r.as_str())).collect();
        let mut reg = Map::new();
        reg.insert("applicationId".into(), USERDIR_APPLICATION_ID.into());
        reg.insert("roles".into(), Value::Array(roles.clone()));
        m.insert(
            "registrations".into(),
            Value::Array(vec![Value::Object(reg)]),
        );
        m.insert("roles".into(), Value::Array(roles));
    }
    m.insert(
        "passwordChangeRequired".into(),
        u.password_change_required.into(),
    );
    put(&mut m, "expiry", u.expiry);
    m.insert("insertInstant".into(), u.insert_instant.into());
    m.insert("lastUpdateInstant".into(), u.last_update_instant.into());
    put(&mut m, "lastLoginInstant", u.last_login_instant);
    put(
        &mut m,
        "passwordLastUpdateInstant",
        u.password_last_update_instant,
    );
    if with_hashes && let Some(h) = &u.password {
        m.insert("encryptionScheme".into(), USERDIR_PHC.into());
        m.insert("password".into(), h.expose().into());
    }
    Value::Object(m)
}
