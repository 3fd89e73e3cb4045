//! A SCIM 2.0 endpoint (RFC 7643, RFC 7644) over a [`Directory`] (feature `scim`): an axum
//! [`Router`] an application mounts under any prefix, and that `userdir serve` runs.
//!
//! ```no_run
//! # async fn serve() -> std::io::Result<()> {
//! use userdir::scim::{self, ScimConfig};
//! let dir = userdir::Directory::open("users.redb").expect("open");
//! let app = axum::Router::new()
//!     .nest("/scim/v2", scim::router(dir, ScimConfig::with_bearer_token("s3cret-token")));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! # Endpoints
//! | method and path | what |
//! |---|---|
//! | `GET /ServiceProviderConfig`, `/ResourceTypes[/User]`, `/Schemas[/{urn}]` | discovery |
//! | `POST /Users` | create (201, `Location`, `ETag`); `userName` is required; `password` is hashed off the async runtime, through the password policy |
//! | `GET /Users` | list: `filter` (the [query](crate::query) planner), `sortBy`/`sortOrder`, `startIndex` (1-based), `count` (default 100, at most [`ScimConfig::max_results`], `0` for the total only) |
//! | `POST /Users/.search`, `POST /.search` | the same, from a `SearchRequest` body |
//! | `GET /Users/{id}` | one user (`If-None-Match` → 304) |
//! | `PUT /Users/{id}` | full replacement (the password is kept unless given); `active` deactivates or reactivates |
//! | `PATCH /Users/{id}` | PatchOp → 200 with the resource; `active` false deactivates (soft delete) |
//! | `DELETE /Users/{id}` | hard delete (204): frees the userName and email |
//!
//! Every read takes `attributes` / `excludedAttributes`. `meta` carries `location` and
//! `version`; responses carry `ETag: W/"<version>"`, and `If-Match` on PUT, PATCH and DELETE
//! answers 412 when the user changed. Unknown query parameters (`?aadOptscim062020`) are
//! ignored. Errors are SCIM error bodies with a `scimType` (409 `uniqueness`, 400
//! `invalidFilter`/`invalidPath`/`invalidValue`/`invalidSyntax`/`mutability`/`noTarget`, 404,
//! 412, 413 for a body over [`ScimConfig::max_body_bytes`], 401 with `WWW-Authenticate`).
//!
//! Every call into the [`Directory`] runs in `tokio::task::spawn_blocking`: storage and
//! argon2 never block the async runtime. Groups are not served (`/ResourceTypes` lists
//! `User` only). The SCIM attributes and how they map onto [`User`] are those
//! of [`json::scim`](crate::json::scim); `/Schemas` publishes the ones stored without loss.

mod error;
mod mapping;
mod schema;

use std::fmt;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, OriginalUri, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

pub use error::{ERROR_SCHEMA, ScimError, ServerErrorDetail};

use crate::directory::{Directory, PreparedUpdate};
use crate::error::{Error, Result};
use crate::query::Search;
use crate::user::{Password, Profile, User, UserUpdate};

/// The media type of every response body.
pub const SCIM_JSON: &str = "application/scim+json";
/// The default request body limit (1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
/// The default page size of a list without `count`.
pub const DEFAULT_COUNT: usize = 100;
/// The default largest page (`count` above it is lowered to it).
pub const DEFAULT_MAX_RESULTS: usize = 1000;

/// How the endpoint authenticates and pages.
///
/// The bearer token is kept only as its SHA-256 digest and compared in constant time; it
/// never appears in `Debug` output, a response or a log.
///
/// # Examples
/// ```
/// use userdir::scim::ScimConfig;
/// let config = ScimConfig::with_bearer_token("s3cret-token")
///     .base_url("https://example.com/scim/v2")
///     .max_results(500);
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
#[non_exhaustive]
#[must_use]
pub struct ScimConfig {
    token: Option<[u8; 32]>,
    base_url: Option<String>,
    max_results: usize,
    default_count: usize,
    max_body_bytes: usize,
}

impl ScimConfig {
    fn new(token: Option<[u8; 32]>) -> Self {
        ScimConfig {
            token,
            base_url: None,
            max_results: DEFAULT_MAX_RESULTS,
            default_count: DEFAULT_COUNT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// Requests must carry `Authorization: Bearer <token>`; others get 401. An empty token
    /// matches nothing (every request is refused).
    pub fn with_bearer_token(token: impl AsRef<str>) -> Self {
        let token = token.as_ref().trim();
        ScimConfig::new(Some(if token.is_empty() {
            // No request can present a token whose digest is all zeros.
            [0; 32]
        } else {
            Sha256::digest(token.as_bytes()).into()
        }))
    }

    /// No authentication at all: for an application that authenticates requests in a layer
    /// of its own in front of the router.
    pub fn without_auth() -> Self {
        ScimConfig::new(None)
    }

    /// The public URL of the endpoint (e.g. `https://example.com/scim/v2`), used for
    /// `meta.location` and `Location`. Without it, the URL is `http://` + the request's
    /// `Host` + the prefix the router is mounted under.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into().trim_end_matches('/').to_owned());
        self
    }

    /// The largest page a list returns (default [`DEFAULT_MAX_RESULTS`]).
    pub fn max_results(mut self, n: usize) -> Self {
        self.max_results = n.max(1);
        self.default_count = self.default_count.min(self.max_results);
        self
    }

    /// The page size of a list without `count` (default [`DEFAULT_COUNT`], at most
    /// [`ScimConfig::max_results`]).
    pub fn default_count(mut self, n: usize) -> Self {
        self.default_count = n.min(self.max_results);
        self
    }

    /// The largest request body accepted (default [`DEFAULT_MAX_BODY_BYTES`]); larger ones
    /// get 413.
    pub fn max_body_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = n;
        self
    }
}

impl fmt::Debug for ScimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScimConfig")
            .field("bearer_token", &self.token.map(|_| "<redacted>"))
            .field("base_url", &self.base_url)
            .field("max_results", &self.max_results)
            .field("default_count", &self.default_count)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

struct Shared {
    dir: Directory,
    cfg: ScimConfig,
}

type St = Arc<Shared>;

impl Shared {
    /// Runs a directory call on tokio's blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Directory) -> Result<T> + Send + 'static,
    ) -> Result<T, ScimError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || f(&dir))
            .await
            .map_err(|_| ScimError::internal("the operation failed unexpectedly"))?
            .map_err(ScimError::from)
    }
}

/// The SCIM endpoint as a router to mount under any prefix (`Router::nest`) or serve as is.
///
/// # Examples
/// ```
/// # let dir = userdir::Directory::in_memory()?;
/// use userdir::scim::{self, ScimConfig};
/// let app: axum::Router = axum::Router::new()
///     .nest("/scim/v2", scim::router(dir, ScimConfig::with_bearer_token("s3cret-token")));
/// # Ok::<(), userdir::Error>(())
/// ```
pub fn router(dir: Directory, config: ScimConfig) -> Router {
    let s: St = Arc::new(Shared { dir, cfg: config });
    Router::new()
        .route("/ServiceProviderConfig", get(service_provider_config))
        .route("/ResourceTypes", get(resource_types))
        .route("/ResourceTypes/{id}", get(resource_type))
        .route("/Schemas", get(schemas))
        .route("/Schemas/{id}", get(schema_by_id))
        .route("/Users", get(list).post(create))
        .route("/Users/.search", post(search))
        .route("/.search", post(search))
        .route(
            "/Users/{id}",
            get(get_user).put(replace).patch(patch).delete(delete),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(s.clone(), authenticate))
        .with_state(s)
}

async fn authenticate(State(s): State<St>, req: Request, next: Next) -> Response {
    if let Some(want) = &s.cfg.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty());
        let ok = given.is_some_and(|t| {
            let digest: [u8; 32] = Sha256::digest(t.as_bytes()).into();
            bool::from(digest.ct_eq(want))
        });
        if !ok {
            return ScimError::new(
                StatusCode::UNAUTHORIZED,
                None,
                "a valid bearer token is required",
            )
            .into_response();
        }
    }
    next.run(req).await
}

async fn not_found() -> ScimError {
    ScimError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ScimError {
    ScimError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        "method not allowed on this endpoint",
    )
}

/// What every handler needs from the request head: the endpoint's base URL, the query
/// parameters (names compared case-insensitively; unknown ones ignored) and the headers.
struct Ctx {
    base: String,
    query: Vec<(String, String)>,
    headers: HeaderMap,
}

impl FromRequestParts<St> for Ctx {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, s: &St) -> Result<Self, ScimError> {
        let base = match &s.cfg.base_url {
            Some(b) => b.clone(),
            None => {
                let full = parts
                    .extensions
                    .get::<OriginalUri>()
                    .map_or_else(|| parts.uri.path().to_owned(), |o| o.path().to_owned());
                let inner = parts.uri.path();
                let prefix = full.strip_suffix(inner).unwrap_or("").trim_end_matches('/');
                let host = parts
                    .headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("localhost");
                format!("http://{host}{prefix}")
            }
        };
        let query = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map_err(|_| ScimError::bad("invalidSyntax", "malformed query string"))?
            .0;
        Ok(Ctx {
            base,
            query,
            headers: parts.headers.clone(),
        })
    }
}

impl Ctx {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn projection(&self) -> (Option<String>, Option<String>) {
        (
            self.param("attributes").map(str::to_owned),
            self.param("excludedAttributes").map(str::to_owned),
        )
    }

    /// `If-Match`: `None` without the header; `Some(versions)` otherwise (`*` is
    /// `Some(None)`: any version).
    fn if_match(&self) -> Option<Option<Vec<u64>>> {
        let raw = self
            .headers
            .get_all(header::IF_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",");
        if raw.trim().is_empty() {
            return None;
        }
        if raw.split(',').any(|t| t.trim() == "*") {
            return Some(None);
        }
        Some(Some(raw.split(',').filter_map(parse_etag).collect()))
    }
}

/// `W/"7"` or `"7"` → 7.
fn parse_etag(t: &str) -> Option<u64> {
    let t = t.trim();
    let t = t.strip_prefix("W/").unwrap_or(t);
    t.strip_prefix('"')?.strip_suffix('"')?.parse().ok()
}

/// The version an operation must find, checked inside the write transaction (`If-Match`).
fn expected_version(
    tx: &crate::directory::Tx<'_, '_>,
    id: Uuid,
    want: Option<&Option<Vec<u64>>>,
) -> Result<Option<u64>> {
    let Some(want) = want else { return Ok(None) };
    let current = tx.get(id)?.ok_or(Error::NotFound(id))?.version;
    match want {
        None => Ok(Some(current)),
        Some(vs) if vs.contains(&current) => Ok(Some(current)),
        Some(vs) => Err(Error::VersionConflict {
            expected: vs.first().copied().unwrap_or(0),
            actual: current,
        }),
    }
}

async fn read_json(ctx: &Ctx, body: Body, limit: usize) -> Result<Value, ScimError> {
    let too_large = || {
        ScimError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            format!("the request body is larger than {limit} bytes"),
        )
    };
    let declared = ctx
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if e.to_string().contains("length limit") {
            too_large()
        } else {
            ScimError::bad("invalidSyntax", "the request body could not be read")
        }
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ScimError::bad("invalidSyntax", format!("malformed JSON: {e}")))
}

fn scim_json(status: StatusCode, v: &Value) -> Response {
    let mut resp = (status, v.to_string()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    resp
}

/// A user's resource response, with `ETag` and `Location`.
fn user_response(status: StatusCode, u: &User, ctx: &Ctx) -> Response {
    let (attrs, excluded) = ctx.projection();
    let body = mapping::project(
        mapping::resource(u, &ctx.base),
        attrs.as_deref(),
        excluded.as_deref(),
    );
    let mut resp = scim_json(status, &body);
    if let Ok(v) = HeaderValue::from_str(&mapping::etag(u)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&mapping::location(&ctx.base, u)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn user_id(raw: &str) -> Result<Uuid, ScimError> {
    Uuid::parse_str(raw.trim())
        .map_err(|_| ScimError::not_found(format!("no user with id {raw:?}")))
}

async fn service_provider_config(State(s): State<St>, ctx: Ctx) -> Response {
    scim_json(
        StatusCode::OK,
        &schema::service_provider_config(&ctx.base, s.cfg.max_results, s.cfg.max_body_bytes),
    )
}

async fn resource_types(ctx: Ctx) -> Response {
    scim_json(
        StatusCode::OK,
        &schema::list(&schema::resource_types(&ctx.base)),
    )
}

async fn resource_type(ctx: Ctx, Path(id): Path<String>) -> Response {
    match schema::resource_types(&ctx.base).into_iter().find(|r| {
        r["id"]
            .as_str()
            .is_some_and(|x| x.eq_ignore_ascii_case(&id))
    }) {
        Some(r) => scim_json(StatusCode::OK, &r),
        None => ScimError::not_found(format!("no resource type {id:?}")).into_response(),
    }
}

async fn schemas(ctx: Ctx) -> Response {
    scim_json(StatusCode::OK, &schema::list(&schema::schemas(&ctx.base)))
}

async fn schema_by_id(ctx: Ctx, Path(id): Path<String>) -> Response {
    match schema::schemas(&ctx.base).into_iter().find(|r| {
        r["id"]
            .as_str()
            .is_some_and(|x| x.eq_ignore_ascii_case(&id))
    }) {
        Some(r) => scim_json(StatusCode::OK, &r),
        None => ScimError::not_found(format!("no schema {id:?}")).into_response(),
    }
}

async fn create(State(s): State<St>, ctx: Ctx, body: Body) -> Result<Response, ScimError> {
    let v = read_json(&ctx, body, s.cfg.max_body_bytes).await?;
    let new = mapping::new_user(&v)?;
    let user = s.run(move |d| d.create(new)).await?;
    Ok(user_response(StatusCode::CREATED, &user, &ctx))
}

async fn get_user(
    State(s): State<St>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    let id = user_id(&id)?;
    let user = s
        .run(move |d| d.get(id))
        .await?
        .ok_or_else(|| ScimError::from(Error::NotFound(id)))?;
    let none_match = ctx
        .headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == "*" || parse_etag(t) == Some(user.version))
        });
    if none_match {
        let mut resp = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(v) = HeaderValue::from_str(&mapping::etag(&user)) {
            resp.headers_mut().insert(header::ETAG, v);
        }
        return Ok(resp);
    }
    Ok(user_response(StatusCode::OK, &user, &ctx))
}

async fn replace(
    State(s): State<St>,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ScimError> {
    let id = user_id(&id)?;
    let v = read_json(&ctx, body, s.cfg.max_body_bytes).await?;
    let (update, active) = mapping::replacement(&v)?;
    let want = ctx.if_match();
    let user = s
        .run(move |d| {
            let prepared = d.prepare_update(update)?;
            d.write(|tx| {
                let expected = expected_version(tx, id, want.as_ref())?;
                let u = tx.update(id, prepared, expected)?;
                match (u.active, active) {
                    (true, false) => tx.deactivate(id),
                    (false, true) => tx.reactivate(id),
                    _ => Ok(u),
                }
            })
        })
        .await?;
    Ok(user_response(StatusCode::OK, &user, &ctx))
}

async fn patch(
    State(s): State<St>,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ScimError> {
    let id = user_id(&id)?;
    let v = read_json(&ctx, body, s.cfg.max_body_bytes).await?;
    let req = mapping::patch_request(&v)?;
    let want = ctx.if_match();
    let user = s
        .run(move |d| {
            // A new password goes through the policy (against the current login ids) and
            // is hashed here, outside the write transaction.
            let hash = match req.password {
                None => None,
                Some(pw) => {
                    let current = d.get(id)?.ok_or(Error::NotFound(id))?;
                    d.prepare_update(UserUpdate {
                        profile: Profile::of(&current),
                        password: Some(Password::new(pw)),
                    })?
                    .password
                }
            };
            d.write(|tx| {
                let expected = expected_version(tx, id, want.as_ref())?;
                let was_active = tx.get(id)?.ok_or(Error::NotFound(id))?.active;
                let mut u = tx.patch(id, &req.ops, expected)?;
                if was_active && !u.active {
                    // Deactivation also revokes the user's outstanding tokens.
                    u = tx.deactivate(id)?;
                }
                if let Some(h) = hash {
                    u = tx.update(
                        id,
                        PreparedUpdate {
                            profile: Profile::of(&u),
                            password: Some(h),
                        },
                        None,
                    )?;
                }
                Ok(u)
            })
        })
        .await?;
    Ok(user_response(StatusCode::OK, &user, &ctx))
}

async fn delete(
    State(s): State<St>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    let id = user_id(&id)?;
    let want = ctx.if_match();
    s.run(move |d| {
        d.write(|tx| {
            expected_version(tx, id, want.as_ref())?;
            tx.delete(id)
        })
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The parameters of a list or search.
#[derive(Default)]
struct ListParams {
    filter: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
    attributes: Option<String>,
    excluded: Option<String>,
}

fn int_param(name: &str, v: &str) -> Result<i64, ScimError> {
    v.trim()
        .parse()
        .map_err(|_| ScimError::bad("invalidValue", format!("{name} must be an integer")))
}

async fn list(State(s): State<St>, ctx: Ctx) -> Result<Response, ScimError> {
    let p = ListParams {
        filter: ctx.param("filter").map(str::to_owned),
        sort_by: ctx.param("sortBy").map(str::to_owned),
        sort_order: ctx.param("sortOrder").map(str::to_owned),
        start_index: ctx
            .param("startIndex")
            .map(|v| int_param("startIndex", v))
            .transpose()?,
        count: ctx
            .param("count")
            .map(|v| int_param("count", v))
            .transpose()?,
        attributes: ctx.param("attributes").map(str::to_owned),
        excluded: ctx.param("excludedAttributes").map(str::to_owned),
    };
    run_search(&s, &ctx, p).await
}

async fn search(State(s): State<St>, ctx: Ctx, body: Body) -> Result<Response, ScimError> {
    let v = read_json(&ctx, body, s.cfg.max_body_bytes).await?;
    let Some(o) = v.as_object() else {
        return Err(ScimError::bad(
            "invalidSyntax",
            "the body must be a SearchRequest object",
        ));
    };
    let field = |name: &str| {
        o.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
    };
    let text = |name: &str| -> Result<Option<String>, ScimError> {
        match field(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            // `attributes` is an array of strings in a SearchRequest.
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| x.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .map(|v| Some(v.join(",")))
                .ok_or_else(|| ScimError::bad("invalidValue", format!("{name} must hold strings"))),
            Some(_) => Err(ScimError::bad(
                "invalidValue",
                format!("{name} must be a string"),
            )),
        }
    };
    let int = |name: &str| -> Result<Option<i64>, ScimError> {
        match field(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| {
                ScimError::bad("invalidValue", format!("{name} must be an integer"))
            }),
            Some(Value::String(s)) => int_param(name, s).map(Some),
            Some(_) => Err(ScimError::bad(
                "invalidValue",
                format!("{name} must be an integer"),
            )),
        }
    };
    let p = ListParams {
        filter: text("filter")?,
        sort_by: text("sortBy")?,
        sort_order: text("sortOrder")?,
        start_index: int("startIndex")?,
        count: int("count")?,
        attributes: text("attributes")?,
        excluded: text("excludedAttributes")?,
    };
    let mut resp = run_search(&s, &ctx, p).await?;
    // A search answers 200 (RFC 7644 §3.4.3), like a list.
    *resp.status_mut() = StatusCode::OK;
    Ok(resp)
}

async fn run_search(s: &St, ctx: &Ctx, p: ListParams) -> Result<Response, ScimError> {
    let mut search = match p.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        Some(f) => Search::filter(f)?,
        None => Search::all(),
    };
    if let Some(by) = p.sort_by.as_deref().filter(|b| !b.trim().is_empty()) {
        search = search.sort(mapping::sort_field(by, p.sort_order.as_deref())?);
    }
    // RFC 7644 §3.4.2.4: a startIndex below 1 is 1, a negative count is 0.
    let start = usize::try_from(p.start_index.unwrap_or(1).max(1)).unwrap_or(usize::MAX);
    let count = match p.count {
        None => s.cfg.default_count,
        Some(c) => usize::try_from(c.max(0))
            .unwrap_or(usize::MAX)
            .min(s.cfg.max_results),
    };
    let search = search.offset(start - 1).limit(count);
    let page = s.run(move |d| d.search(&search)).await?;
    let resources: Vec<Value> = page
        .users
        .iter()
        .map(|u| {
            mapping::project(
                mapping::resource(u, &ctx.base),
                p.attributes.as_deref(),
                p.excluded.as_deref(),
            )
        })
        .collect();
    let body = json!({
        "schemas": [schema::LIST_RESPONSE],
        "totalResults": page.total,
        "startIndex": start,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    });
    Ok(scim_json(StatusCode::OK, &body))
}
