//! The on-disk user record, separate from the public [`User`] so each can evolve.
//!
//! Record format version 1. The codec prefixes the bincode encoding with this version byte.

use std::collections::{BTreeMap, BTreeSet};

use std::cell::Cell;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::user::{AttrValue, MAX_DATA_DEPTH, StoredHash, User};

#[derive(Serialize, Deserialize)]
pub(crate) struct DbUserV1 {
    pub username: Option<String>,
    pub email: Option<String>,
    pub external_id: Option<String>,
    pub active: bool,
    pub verified: bool,
    pub first_name: Option<String>,
    pub middle_name: Option<String>,
    pub last_name: Option<String>,
    pub full_name: Option<String>,
    pub nick_name: Option<String>,
    pub birth_date: Option<String>,
    pub mobile_phone: Option<String>,
    pub image_url: Option<String>,
    pub timezone: Option<String>,
    pub preferred_languages: Vec<String>,
    pub roles: BTreeSet<String>,
    pub data: BTreeMap<String, DbValue>,
    pub password: Option<String>,
    pub password_change_required: bool,
    pub expiry: Option<i64>,
    pub insert_instant: i64,
    pub last_update_instant: i64,
    pub last_login_instant: Option<i64>,
    pub password_last_update_instant: Option<i64>,
    pub version: u64,
}

/// The on-disk form of [`AttrValue`]. Its `Deserialize` is written by hand (below) to bound
/// the nesting depth.
#[derive(Serialize)]
pub(crate) enum DbValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Array(Vec<DbValue>),
    Object(BTreeMap<String, DbValue>),
}

/// The derived decoder of [`DbValue`] (same variants, same order, so the same encoding); its
/// children decode through [`DbValue`]'s depth-bounded `Deserialize`.
#[derive(Deserialize)]
#[serde(rename = "DbValue")]
enum DbValueRepr {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Array(Vec<DbValue>),
    Object(BTreeMap<String, DbValue>),
}

thread_local! {
    /// How deep the `DbValue` being decoded on this thread is nested.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// One level of `DbValue` nesting; leaving it (also on error) restores the depth.
struct Level;

impl Level {
    fn enter() -> Option<Level> {
        DEPTH.with(|d| {
            let n = d.get();
            (n < MAX_DATA_DEPTH).then(|| {
                d.set(n + 1);
                Level
            })
        })
    }
}

impl Drop for Level {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

impl<'de> Deserialize<'de> for DbValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Decoding is recursive: a damaged or crafted record nested millions deep would
        // overflow the stack (an abort, not an error) without this bound.
        let _level = Level::enter().ok_or_else(|| {
            D::Error::custom(format!(
                "custom data nested deeper than {MAX_DATA_DEPTH} levels"
            ))
        })?;
        Ok(match DbValueRepr::deserialize(d)? {
            DbValueRepr::Null => DbValue::Null,
            DbValueRepr::Bool(b) => DbValue::Bool(b),
            DbValueRepr::Int(i) => DbValue::Int(i),
            DbValueRepr::Float(f) => DbValue::Float(f),
            DbValueRepr::String(s) => DbValue::String(s),
            DbValueRepr::Array(a) => DbValue::Array(a),
            DbValueRepr::Object(o) => DbValue::Object(o),
        })
    }
}

impl From<&AttrValue> for DbValue {
    fn from(v: &AttrValue) -> Self {
        match v {
            AttrValue::Null => DbValue::Null,
            AttrValue::Bool(b) => DbValue::Bool(*b),
            AttrValue::Int(i) => DbValue::Int(*i),
            AttrValue::Float(f) => DbValue::Float(*f),
            AttrValue::String(s) => DbValue::String(s.clone()),
            AttrValue::Array(a) => DbValue::Array(a.iter().map(Into::into).collect()),
            AttrValue::Object(o) => {
                DbValue::Object(o.iter().map(|(k, v)| (k.clone(), v.into())).collect())
            }
        }
    }
}

impl From<DbValue> for AttrValue {
    fn from(v: DbValue) -> Self {
        match v {
            DbValue::Null => AttrValue::Null,
            DbValue::Bool(b) => AttrValue::Bool(b),
            DbValue::Int(i) => AttrValue::Int(i),
            DbValue::Float(f) => AttrValue::Float(f),
            DbValue::String(s) => AttrValue::String(s),
            DbValue::Array(a) => AttrValue::Array(a.into_iter().map(Into::into).collect()),
            DbValue::Object(o) => {
                AttrValue::Object(o.into_iter().map(|(k, v)| (k, v.into())).collect())
            }
        }
    }
}

impl From<&User> for DbUserV1 {
    fn from(u: &User) -> Self {
        DbUserV1 {
            username: u.username.clone(),
            email: u.email.clone(),
            external_id: u.external_id.clone(),
            active: u.active,
            verified: u.verified,
            first_name: u.first_name.clone(),
            middle_name: u.middle_name.clone(),
            last_name: u.last_name.clone(),
            full_name: u.full_name.clone(),
            nick_name: u.nick_name.clone(),
            birth_date: u.birth_date.clone(),
            mobile_phone: u.mobile_phone.clone(),
            image_url: u.image_url.clone(),
            timezone: u.timezone.clone(),
            preferred_languages: u.preferred_languages.clone(),
            roles: u.roles.clone(),
            data: u.data.iter().map(|(k, v)| (k.clone(), v.into())).collect(),
            password: u.password.as_ref().map(|p| p.expose().to_owned()),
            password_change_required: u.password_change_required,
            expiry: u.expiry,
            insert_instant: u.insert_instant,
            last_update_instant: u.last_update_instant,
            last_login_instant: u.last_login_instant,
            password_last_update_instant: u.password_last_update_instant,
            version: u.version,
        }
    }
}

impl DbUserV1 {
    pub(crate) fn into_user(self, id: Uuid) -> User {
        User {
            id,
            username: self.username,
            email: self.email,
            external_id: self.external_id,
            active: self.active,
            verified: self.verified,
            first_name: self.first_name,
            middle_name: self.middle_name,
            last_name: self.last_name,
            full_name: self.full_name,
            nick_name: self.nick_name,
            birth_date: self.birth_date,
            mobile_phone: self.mobile_phone,
            image_url: self.image_url,
            timezone: self.timezone,
            preferred_languages: self.preferred_languages,
            roles: self.roles,
            data: self.data.into_iter().map(|(k, v)| (k, v.into())).collect(),
            password: self.password.map(StoredHash::from_encoded),
            password_change_required: self.password_change_required,
            expiry: self.expiry,
            insert_instant: self.insert_instant,
            last_update_instant: self.last_update_instant,
            last_login_instant: self.last_login_instant,
            password_last_update_instant: self.password_last_update_instant,
            version: self.version,
        }
    }
}
