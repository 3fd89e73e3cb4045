//! The record codec: one function pair, a leading format-version byte, then bincode 2.
//!
//! bincode stays inside this file so the format can move later: a new version byte can decode
//! old records and write new ones.

use uuid::Uuid;

use super::record::DbUserV1;
use crate::error::{Error, Result};
use crate::user::User;

/// The record format written by this version.
pub(crate) const RECORD_V1: u8 = 1;

/// Largest record accepted by the decoder (bounds allocations on damaged input).
const MAX_RECORD_BYTES: usize = 1 << 24;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_RECORD_BYTES>()
}

/// Encodes a user record (the id is the key and is not repeated).
pub(crate) fn encode(user: &User) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(160);
    out.push(RECORD_V1);
    bincode::serde::encode_into_std_write(DbUserV1::from(user), &mut out, config())
        .map_err(|e| Error::Corrupt(format!("record encoding failed: {e}")))?;
    Ok(out)
}

/// Decodes a record; any damage is an error, never a panic.
pub(crate) fn decode(id: Uuid, bytes: &[u8]) -> Result<User> {
    let (&version, body) = bytes
        .split_first()
        .ok_or_else(|| Error::Corrupt(format!("empty record for user {id}")))?;
    match version {
        RECORD_V1 => {
            let (rec, used): (DbUserV1, usize) = bincode::serde::decode_from_slice(body, config())
                .map_err(|e| Error::Corrupt(format!("record of user {id} does not decode: {e}")))?;
            if used != body.len() {
                return Err(Error::Corrupt(format!(
                    "record of user {id} has trailing bytes"
                )));
            }
            Ok(rec.into_user(id))
        }
        v => Err(Error::Corrupt(format!(
            "record of user {id} has unknown format version {v}"
        ))),
    }
}

/// Decodes arbitrary bytes as a record; for the fuzz target and its seed tests.
#[doc(hidden)]
pub fn fuzz_decode(bytes: &[u8]) -> Result<User> {
    decode(Uuid::nil(), bytes)
}
