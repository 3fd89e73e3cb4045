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

/// The SCIM status and `scimType` of a library error: the library's own mapping
/// ([`Error::http_status`], [`Error::scim_type`]), so the endpoint and an application answering
/// with `http_status` agree.
fn classify(e: &Error) -> (StatusCode, Option<&'static str>) {
    (
        StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        e.scim_type(),
    )
}

impl From<Error> for ScimError {
    fn from(e: Error) -> Self {
        let (status, scim_type) = classify(&e);
        ScimError::new(status, scim_type, e.to_string())
    }
}

/// The full text of the error behind a 5xx answer, attached to the response as an extension
/// for the server's own log. A client sees only a generic `detail` for a 5xx: the library's
/// message may name files and paths, which are the operator's business, not the client's.
///
/// An application that mounts [`router`](super::router) reads it in a middleware
/// (`response.extensions().get::<ServerErrorDetail>()`); `userdir serve` prints it on stderr.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerErrorDetail(pub String);

/// What a client is told of a server-side failure.
fn public_detail(status: StatusCode) -> &'static str {
    if status == StatusCode::SERVICE_UNAVAILABLE {
        "the service is temporarily unavailable; retry the request"
    } else {
        "internal server error; the server's log has the details"
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let server_side = self.status.is_server_error();
        let detail = if server_side {
            public_detail(self.status)
        } else {
            self.detail.as_str()
        };
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.as_u16().to_string(),
            "detail": detail,
        });
        if let (Some(t), Some(o)) = (self.scim_type, body.as_object_mut()) {
            o.insert("scimType".into(), t.into());
        }
        let mut resp = (self.status, body.to_string()).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(super::SCIM_JSON),
        );
        if server_side {
            resp.extensions_mut().insert(ServerErrorDetail(self.detail));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"userdir\""),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(resp: Response) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime");
        let bytes = rt
            .block_on(axum::body::to_bytes(resp.into_body(), 1 << 16))
            .expect("the body");
        String::from_utf8(bytes.to_vec()).expect("UTF-8")
    }

    #[test]
    fn a_server_error_tells_the_client_nothing_of_paths_and_the_log_everything() {
        let secret = "cannot write /srv/private/users.redb: No space left on device";
        let resp = ScimError::internal(secret).into_response();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            resp.extensions().get::<ServerErrorDetail>(),
            Some(&ServerErrorDetail(secret.to_owned()))
        );
        let body = body_of(resp);
        assert!(!body.contains("/srv/private"), "{body}");
        assert!(body.contains("internal server error"), "{body}");

        let resp = ScimError::new(StatusCode::SERVICE_UNAVAILABLE, None, secret).into_response();
        let body = body_of(resp);
        assert!(!body.contains("/srv/private"), "{body}");
        assert!(body.contains("retry"), "{body}");
    }

    #[test]
    fn a_client_error_keeps_its_detail_and_no_log_extension() {
        let resp = ScimError::bad("invalidFilter", "unknown attribute \"nope\"").into_response();
        assert!(resp.extensions().get::<ServerErrorDetail>().is_none());
        let body = body_of(resp);
        assert!(body.contains("unknown attribute"), "{body}");
        assert!(body.contains("invalidFilter"), "{body}");
    }
}
