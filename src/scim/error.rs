//! SCIM error responses (RFC 7644 §3.12): an HTTP status, a `scimType` and a `detail`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::Error;

/// The `Error` message URN.
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// One SCIM error response: status, optional `scimType`, and a human-readable `detail` that
/// never carries a password, a hash or a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScimError {
    /// The HTTP status.
    pub status: StatusCode,
    /// RFC 7644 §3.12's `scimType` (`invalidFilter`, `uniqueness`, `invalidValue`, ...).
    pub scim_type: Option<&'static str>,
    /// What went wrong.
    pub detail: String,
}

impl ScimError {
    pub(crate) fn new(
        status: StatusCode,
        scim_type: Option<&'static str>,
        detail: impl Into<String>,
    ) -> Self {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
        }
    }
    pub(crate) fn bad(scim_type: &'static str, detail: impl Into<String>) -> Self {
        ScimError::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }
    pub(crate) fn not_found(detail: impl Into<String>) -> Self {
        ScimError::new(StatusCode::NOT_FOUND, None, detail)
    }
    pub(crate) fn internal(detail: impl Into<String>) -> Self {
        ScimError::new(StatusCode::INTERNAL_SERVER_ERROR, None, detail)
    }
}

/// The SCIM status and `scimType` of a library error: the one place the endpoint decides
/// how an [`Error`] is answered. (The same rules as the library's own HTTP mapping on the
/// `surface` branch, `Error::http_status`/`Error::scim_type`, which this converges on.)
fn classify(e: &Error) -> (StatusCode, Option<&'static str>) {
    match e {
        Error::InvalidField { .. }
        | Error::MissingLoginId
        | Error::PasswordMismatch
        | Error::PasswordPolicy(_)
        | Error::InvalidHash(_) => (StatusCode::BAD_REQUEST, Some("invalidValue")),
        Error::InvalidCursor(_) => (StatusCode::BAD_REQUEST, Some("invalidCursor")),
        Error::InvalidJson(_) => (StatusCode::BAD_REQUEST, Some("invalidSyntax")),
        Error::DuplicateId(_)
        | Error::DuplicateUsername { .. }
        | Error::DuplicateEmail { .. }
        | Error::DuplicateExternalId { .. }
        | Error::LoginIdConflict { .. }
        | Error::LookalikeUsername { .. } => (StatusCode::CONFLICT, Some("uniqueness")),
        Error::NotFound(_) => (StatusCode::NOT_FOUND, None),
        Error::VersionConflict { .. } => (StatusCode::PRECONDITION_FAILED, None),
        Error::InvalidFilter { .. } => (StatusCode::BAD_REQUEST, Some("invalidFilter")),
        // The PatchOp body itself (`""`) or one of its operations (`Operations[i]`) is
        // malformed: the request does not follow the message schema.
        // RFC 7644 §3.5.2.2: a remove without a path is `noTarget`.
        Error::InvalidPatch { reason, .. } if reason.contains("remove needs a path") => {
            (StatusCode::BAD_REQUEST, Some("noTarget"))
        }
        Error::InvalidPatch { path, .. } if path.is_empty() || path.starts_with("Operations[") => {
            (StatusCode::BAD_REQUEST, Some("invalidSyntax"))
        }
        Error::InvalidPatch { reason, .. } => {
            let kind = if reason.contains("noTarget") {
                "noTarget"
            } else if reason.contains("read-only") || reason.contains("cannot be") {
                "mutability"
            } else if reason.contains("unknown") || reason.contains("path") {
                "invalidPath"
            } else {
                "invalidValue"
            };
            (StatusCode::BAD_REQUEST, Some(kind))
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, None),
    }
}

impl From<Error> for ScimError {
    fn from(e: Error) -> Self {
        let (status, scim_type) = classify(&e);
        ScimError::new(status, scim_type, e.to_string())
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let (Some(t), Some(o)) = (self.scim_type, body.as_object_mut()) {
            o.insert("scimType".into(), t.into());
        }
        let mut resp = (self.status, body.to_string()).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(super::SCIM_JSON),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"userdir\""),
            );
        }
        resp
    }
}
