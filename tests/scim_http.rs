//! The SCIM endpoint in-process (`tower::ServiceExt::oneshot`): status codes, SCIM error
//! bodies, paging, ETag/If-Match, authentication, Entra's request shapes.
#![cfg(feature = "scim")]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use userdir::scim::{self, ScimConfig};
use userdir::{Argon2Params, Directory};

const TOKEN: &str = "test-token-0123456789";
const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn directory() -> Directory {
    Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .in_memory()
        .unwrap()
}

fn app(dir: &Directory) -> Router {
    Router::new().nest(
        "/scim/v2",
        scim::router(dir.clone(), ScimConfig::with_bearer_token(TOKEN)),
    )
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

async fn call(app: &Router, method: &str, uri: &str, body: Option<Value>) -> Resp {
    call_with(app, method, uri, body, &[]).await
}

async fn call_with(
    app: &Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Resp {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("/scim/v2{uri}"))
        .header(header::HOST, "idp.example")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/scim+json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    send(app, req).await
}

async fn send(app: &Router, req: Request<Body>) -> Resp {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    Resp {
        status,
        headers,
        body,
    }
}

fn user(name: &str) -> Value {
    json!({"schemas": [USER], "userName": name, "active": true,
           "emails": [{"value": format!("{name}@example.com"), "type": "work", "primary": true}],
           "name": {"givenName": "Ann", "familyName": "Lee"}})
}

async fn create(app: &Router, name: &str) -> Value {
    let r = call(app, "POST", "/Users", Some(user(name))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

fn assert_error(r: &Resp, status: StatusCode, scim_type: Option<&str>) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(
        r.headers[header::CONTENT_TYPE],
        "application/scim+json",
        "{}",
        r.body
    );
    assert_eq!(
        r.body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
    );
    assert_eq!(r.body["status"], json!(status.as_u16().to_string()));
    assert_eq!(r.body["scimType"].as_str(), scim_type, "{}", r.body);
    assert!(r.body["detail"].is_string());
}

#[tokio::test]
async fn bearer_token_is_required_everywhere() {
    let dir = directory();
    let app = app(&dir);
    for (auth, uri) in [
        (None, "/Users"),
        (Some("Bearer wrong"), "/Users"),
        (Some(&*format!("Basic {TOKEN}")), "/Users"),
        (Some("Bearer "), "/ServiceProviderConfig"),
        (None, "/no/such/endpoint"),
    ] {
        let mut req = Request::builder().uri(format!("/scim/v2{uri}"));
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        let r = send(&app, req.body(Body::empty()).unwrap()).await;
        assert_error(&r, StatusCode::UNAUTHORIZED, None);
        assert_eq!(
            r.headers[header::WWW_AUTHENTICATE],
            "Bearer realm=\"userdir\""
        );
        assert!(!r.body.to_string().contains(TOKEN));
    }
    // The scheme is case-insensitive.
    let req = Request::builder()
        .uri("/scim/v2/Users")
        .header(header::AUTHORIZATION, format!("bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, req).await.status, StatusCode::OK);
    // An empty configured token refuses everything.
    let closed = scim::router(dir.clone(), ScimConfig::with_bearer_token(""));
    let req = Request::builder()
        .uri("/Users")
        .header(header::AUTHORIZATION, "Bearer ")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&closed, req).await.status, StatusCode::UNAUTHORIZED);
    assert!(!format!("{:?}", ScimConfig::with_bearer_token(TOKEN)).contains(TOKEN));
}

#[tokio::test]
async fn discovery_advertises_users_only() {
    let dir = directory();
    let app = app(&dir);
    let spc = call(&app, "GET", "/ServiceProviderConfig", None).await;
    assert_eq!(spc.status, StatusCode::OK);
    assert_eq!(spc.body["patch"]["supported"], true);
    assert_eq!(spc.body["filter"]["maxResults"], 1000);
    assert_eq!(spc.body["etag"]["supported"], true);
    assert_eq!(spc.body["bulk"]["supported"], false);
    let rt = call(&app, "GET", "/ResourceTypes", None).await;
    assert_eq!(rt.body["totalResults"], 1);
    assert_eq!(rt.body["Resources"][0]["endpoint"], "/Users");
    let one = call(&app, "GET", "/ResourceTypes/User", None).await;
    assert_eq!(one.body["schema"], USER);
    assert_eq!(
        call(&app, "GET", "/ResourceTypes/Group", None).await.status,
        StatusCode::NOT_FOUND
    );
    let schemas = call(&app, "GET", "/Schemas", None).await;
    assert_eq!(schemas.body["totalResults"], 3);
    let core = call(&app, "GET", &format!("/Schemas/{USER}"), None).await;
    let names: Vec<&str> = core.body["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"userName") && names.contains(&"emails"));
    let pw = core.body["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "password")
        .unwrap();
    assert_eq!(pw["returned"], "never");
    assert_eq!(pw["mutability"], "writeOnly");
    let r = call(&app, "POST", "/ServiceProviderConfig", Some(json!({}))).await;
    assert_error(&r, StatusCode::METHOD_NOT_ALLOWED, None);
    let r = call(&app, "GET", "/Groups", None).await;
    assert_error(&r, StatusCode::NOT_FOUND, None);
}

#[tokio::test]
async fn create_get_and_errors() {
    let dir = directory();
    let app = app(&dir);
    let mut body = user("ann");
    body["password"] = json!("correct horse battery");
    body["id"] = json!("not-the-server's");
    let r = call(&app, "POST", "/Users", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let location = format!("http://idp.example/scim/v2/Users/{id}");
    assert_eq!(r.headers[header::LOCATION], location.as_str());
    assert_eq!(r.body["meta"]["location"], location.as_str());
    assert_eq!(r.headers[header::ETAG], "W/\"1\"");
    assert_eq!(r.body["meta"]["version"], "W/\"1\"");
    assert_eq!(r.body["meta"]["resourceType"], "User");
    assert!(r.body["meta"]["created"].is_string() && r.body["meta"]["lastModified"].is_string());
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/scim+json");
    // Write-only: the password is stored (and hashed), never returned.
    assert!(r.body.get("password").is_none());
    assert!(!r.body.to_string().contains("correct horse"));
    assert!(dir.authenticate("ann", "correct horse battery").is_ok());

    let got = call(&app, "GET", &format!("/Users/{id}"), None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body["userName"], "ann");
    assert_eq!(got.body["emails"][0]["value"], "ann@example.com");
    // (The login above recorded itself: the version moved on.)
    let etag = got.headers[header::ETAG].to_str().unwrap().to_owned();
    assert_eq!(got.body["meta"]["version"], etag.as_str());
    let cached = call_with(
        &app,
        "GET",
        &format!("/Users/{id}"),
        None,
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);

    // Uniqueness, caseless.
    let r = call(&app, "POST", "/Users", Some(user("ANN"))).await;
    assert_error(&r, StatusCode::CONFLICT, Some("uniqueness"));
    // Required userName, schemas, JSON syntax, the password policy.
    let r = call(
        &app,
        "POST",
        "/Users",
        Some(json!({"schemas": [USER], "displayName": "x"})),
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, Some("invalidValue"));
    let r = call(&app, "POST", "/Users", Some(json!({"userName": "bob"}))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, Some("invalidSyntax"));
    let req = Request::builder()
        .method("POST")
        .uri("/scim/v2/Users")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::from("{\"schemas\": [\"x\""))
        .unwrap();
    assert_error(
        &send(&app, req).await,
        StatusCode::BAD_REQUEST,
        Some("invalidSyntax"),
    );
    let mut weak = user("bob");
    weak["password"] = json!("short");
    let r = call(&app, "POST", "/Users", Some(weak)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, Some("invalidValue"));
    assert!(!r.body.to_string().contains("short\""));
    let mut bad_type = user("bob");
    bad_type["userName"] = json!(7);
    let r = call(&app, "POST", "/Users", Some(bad_type)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, Some("invalidValue"));
    // Over 1 MiB: 413, whether the body is read to its end or a Content-Length declares it.
    let mut big = user("big");
    big["nickName"] = json!("x".repeat(1 << 20));
    let r = call(&app, "POST", "/Users", Some(big)).await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, None);
    let declared = (2 << 20).to_string();
    let r = call_with(
        &app,
        "POST",
        "/Users",
        Some(user("big")),
        &[("content-length", &declared)],
    )
    .await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, None);
    // Unknown and malformed ids.
    let r = call(
        &app,
        "GET",
        &format!("/Users/{}", uuid::Uuid::new_v4()),
        None,
    )
    .await;
    assert_error(&r, StatusCode::NOT_FOUND, None);
    let r = call(&app, "GET", "/Users/not-a-uuid", None).await;
    assert_error(&r, StatusCode::NOT_FOUND, None);
    assert_eq!(dir.count().unwrap(), 1);
}

#[tokio::test]
async fn list_filter_sort_page_and_project() {
    let dir = directory();
    let app = app(&dir);
    for i in 0..25 {
        create(&app, &format!("user{i:02}")).await;
    }
    // Entra's query before create, with its tenant flag as an unknown parameter.
    let r = call(
        &app,
        "GET",
        "/Users?aadOptscim062020&filter=userName%20eq%20%22USER07%22",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"])
    );
    assert_eq!(r.body["totalResults"], 1);
    assert_eq!(r.body["Resources"][0]["userName"], "user07");
    let r = call(
        &app,
        "GET",
        "/Users?filter=externalId%20eq%20%22nobody%22",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["totalResults"], 0);
    assert_eq!(r.body["Resources"], json!([]));
    // Paging: startIndex is 1-based; count defaults to 100, is capped at 1000, may be 0.
    let r = call(
        &app,
        "GET",
        "/Users?sortBy=userName&sortOrder=descending&startIndex=3&count=5",
        None,
    )
    .await;
    assert_eq!(r.body["totalResults"], 25);
    assert_eq!(r.body["startIndex"], 3);
    assert_eq!(r.body["itemsPerPage"], 5);
    let names: Vec<&str> = r.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["user22", "user21", "user20", "user19", "user18"]);
    let r = call(&app, "GET", "/Users?count=0", None).await;
    assert_eq!(r.body["totalResults"], 25);
    assert_eq!(r.body["itemsPerPage"], 0);
    let r = call(&app, "GET", "/Users?count=5000&startIndex=-4", None).await;
    assert_eq!(r.body["itemsPerPage"], 25);
    assert_eq!(r.body["startIndex"], 1);
    let r = call(&app, "GET", "/Users?startIndex=24", None).await;
    assert_eq!(r.body["itemsPerPage"], 2);
    // attributes / excludedAttributes on lists and single reads.
    let r = call(
        &app,
        "GET",
        "/Users?count=1&attributes=userName,name.familyName",
        None,
    )
    .await;
    let u = &r.body["Resources"][0];
    let mut keys: Vec<&str> = u.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["id", "name", "schemas", "userName"]);
    assert_eq!(u["name"], json!({"familyName": "Lee"}));
    let id = u["id"].as_str().unwrap();
    let r = call(
        &app,
        "GET",
        &format!("/Users/{id}?excludedAttributes=emails,meta"),
        None,
    )
    .await;
    assert!(r.body.get("emails").is_none() && r.body.get("meta").is_none());
    assert!(r.body.get("userName").is_some());
    // Bad parameters.
    let r = call(&app, "GET", "/Users?filter=userName%20eq", None).await;
    assert_error(&r, StatusCode::BAD_REQUEST, Some("invalidFilter"));
    let r = call(&app, "GET", "/Users?filter=shoeSize%20eq%201", None).await;
    assert_error(&r, StatusCode::BAD_REQUEST, Some("invalidFilter"));
    let r = call(&app, "GET", "/Users?count=many", None).await;
    assert_error(&r, StatusCode::BAD_REQUEST, Some("invalidValue"));
    let r = call(&app, "GET", "/Users?sortBy=shoeSize", None).await;
    assert_error(&r, StatusCode::BAD_REQUEST, Some("invalidValue"));
    // POST /Users/.search and POST /.search take the same as a SearchRequest body.
    let search = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": "userName sw \"user1\"", "sortBy": "userName", "startIndex": 2, "count": 3,
        "attributes": ["userName"]
    });
    for path in ["/Users/.search", "/.search"] {
        let r = call(&app, "POST", path, Some(search.clone())).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["totalResults"], 10);
        assert_eq!(r.body["Resources"][0]["userName"], "user11");
        assert!(r.body["Resources"][0].get("emails").is_none());
    }
    let r = call(
        &app,
        "POST",
        "/.search",
        Some(json!({"filter": "userName eq"})),
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, Some("invalidFilter"));
}

#[tokio::test]
async fn put_patch_delete_with_etags() {
    let dir = directory();
    let app = app(&dir);
    let u = create(&app, "kim").await;
    let id = u["id"].as_str().unwrap();
    let uri = format!("/Users/{id}");

    // PUT replaces everything; a stale If-Match is 412 and changes nothing.
    let mut put = user("kim");
    put["name"] = json!({"givenName": "Kim", "familyName": "Park"});
    put["active"] = json!(false);
    let r = call_with(
        &app,
        "PUT",
        &uri,
        Some(put.clone()),
        &[("if-match", "W/\"7\"")],
    )
    .await;
    assert_error(&r, StatusCode::PRECONDITION_FAILED, None);
    assert!(dir.get(id.parse().unwrap()).unwrap().unwrap().active);
    let r = call_with(&app, "PUT", &uri, Some(put), &[("if-match", "W/\"1\"")]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["name"]["familyName"], "Park");
    assert_eq!(r.body["active"], false);
    let version = r.body["meta"]["version"].as_str().unwrap().to_owned();
    assert_eq!(r.headers[header::ETAG], version.as_str());

    // PATCH with Entra's shapes: capitalised ops, string booleans, path-less values, URNs.
    let patch = json!({"schemas": [PATCH], "Operations": [
        {"op": "Replace", "path": "active", "value": "True"},
        {"op": "Add", "value": {"name.givenName": "Kimberly", "nickName": "Kimmy"}},
        {"op": "replace", "path": "urn:ietf:params:scim:schemas:core:2.0:User:displayName",
         "value": "Kim Park"},
        {"op": "add", "path": "urn:userdir:params:scim:schemas:extension:userdir:2.0:User:birthDate",
         "value": "1990-05-17"},
    ]});
    let r = call_with(&app, "PATCH", &uri, Some(patch), &[("if-match", &version)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["active"], true);
    assert_eq!(r.body["name"]["givenName"], "Kimberly");
    assert_eq!(r.body["nickName"], "Kimmy");
    assert_eq!(
        r.body["urn:userdir:params:scim:schemas:extension:userdir:2.0:User"]["birthDate"],
        "1990-05-17"
    );
    // Deactivation is PATCH active false (soft delete: the userName stays taken).
    let off = json!({"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "active", "value": "False"}]});
    let r = call(&app, "PATCH", &uri, Some(off)).await;
    assert_eq!(r.body["active"], false);
    assert!(!dir.get(id.parse().unwrap()).unwrap().unwrap().active);
    let r = call(&app, "POST", "/Users", Some(user("kim"))).await;
    assert_error(&r, StatusCode::CONFLICT, Some("uniqueness"));
    // Entra's validator sends an empty Operations list once: a no-op, 200.
    let before = dir.get(id.parse().unwrap()).unwrap().unwrap().version;
    let r = call(
        &app,
        "PATCH",
        &uri,
        Some(json!({"schemas": [PATCH], "Operations": []})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        dir.get(id.parse().unwrap()).unwrap().unwrap().version,
        before
    );
    // A new password through PATCH: hashed, usable, never echoed.
    let pw = json!({"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "password", "value": "a brand new secret"},
        {"op": "replace", "path": "active", "value": true}]});
    let r = call(&app, "PATCH", &uri, Some(pw)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(!r.body.to_string().contains("brand new"));
    assert!(dir.authenticate("kim", "a brand new secret").is_ok());
    let weak = json!({"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "password", "value": "short"}]});
    let r = call(&app, "PATCH", &uri, Some(weak)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, Some("invalidValue"));
    // PATCH errors change nothing.
    let before = dir.get(id.parse().unwrap()).unwrap().unwrap();
    for (ops, scim_type) in [
        (
            json!([{"op": "replace", "path": "shoeSize", "value": 1}]),
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "path": "id", "value": "x"}]),
            "mutability",
        ),
        (
            json!([{"op": "replace", "path": "nickName", "value": "ok"},
                   {"op": "remove", "path": "roles[value eq \"nope\"]"}]),
            "noTarget",
        ),
        (
            json!([{"op": "replace", "path": "active", "value": 3}]),
            "invalidValue",
        ),
        (json!([{"op": "jump", "path": "active"}]), "invalidSyntax"),
        (json!([{"op": "remove"}]), "noTarget"),
        // Told apart by the error's kind, not its text.
        (
            json!([{"op": "replace", "path": "nickName[value eq \"x\"]", "value": "y"}]),
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "path": "emails[type eq]", "value": "y"}]),
            "invalidFilter",
        ),
        (
            json!([{"op": "remove", "path": "emails[type eq \"nope\"]"}]),
            "noTarget",
        ),
        (
            json!([{"op": "add", "path": "data.a", "value": "s"},
                   {"op": "add", "path": "data.a.b", "value": 1}]),
            "invalidPath",
        ),
        (
            json!([{"op": "add", "path": "roles", "value": {"display": "x"}}]),
            "invalidValue",
        ),
        (
            json!([{"op": "remove", "path": "meta.created"}]),
            "mutability",
        ),
    ] {
        let body = json!({"schemas": [PATCH], "Operations": ops});
        let r = call(&app, "PATCH", &uri, Some(body)).await;
        assert_error(&r, StatusCode::BAD_REQUEST, Some(scim_type));
    }
    let r = call(
        &app,
        "PATCH",
        &uri,
        Some(json!({"schemas": ["urn:x"], "Operations": [{"op": "add", "path": "nickName", "value": "x"}]})),
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, Some("invalidSyntax"));
    let r = call(&app, "PATCH", &uri, Some(json!({"schemas": [PATCH]}))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, Some("invalidSyntax"));
    let other = create(&app, "lee").await;
    let taken = json!({"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "userName", "value": "LEE"}]});
    let r = call(&app, "PATCH", &uri, Some(taken)).await;
    assert_error(&r, StatusCode::CONFLICT, Some("uniqueness"));
    assert_eq!(dir.get(id.parse().unwrap()).unwrap().unwrap(), before);
    let r = call_with(
        &app,
        "PATCH",
        &uri,
        Some(json!({"schemas": [PATCH], "Operations": []})),
        &[("if-match", "W/\"1\"")],
    )
    .await;
    assert_error(&r, StatusCode::PRECONDITION_FAILED, None);
    let r = call(
        &app,
        "PATCH",
        &format!("/Users/{}", uuid::Uuid::new_v4()),
        Some(json!({"schemas": [PATCH], "Operations": []})),
    )
    .await;
    assert_error(&r, StatusCode::NOT_FOUND, None);

    // DELETE is a hard delete: 204, then 404, and the userName is free again.
    let r = call_with(&app, "DELETE", &uri, None, &[("if-match", "W/\"1\"")]).await;
    assert_error(&r, StatusCode::PRECONDITION_FAILED, None);
    let r = call_with(&app, "DELETE", &uri, None, &[("if-match", "*")]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_error(
        &call(&app, "GET", &uri, None).await,
        StatusCode::NOT_FOUND,
        None,
    );
    assert_error(
        &call(&app, "DELETE", &uri, None).await,
        StatusCode::NOT_FOUND,
        None,
    );
    create(&app, "kim").await;
    assert_eq!(dir.count().unwrap(), 2);
    assert!(other["id"].is_string());
    dir.check_integrity().unwrap();
}

#[tokio::test]
async fn base_url_and_unauthenticated_mounting() {
    let dir = directory();
    let app = Router::new().nest(
        "/api/scim",
        scim::router(
            dir.clone(),
            ScimConfig::without_auth()
                .base_url("https://example.com/scim/v2/")
                .max_results(10)
                .default_count(3),
        ),
    );
    for i in 0..12 {
        dir.create(userdir::NewUser::with_username(format!("u{i}")))
            .unwrap();
    }
    let get = |uri: &str| {
        Request::builder()
            .uri(format!("/api/scim{uri}"))
            .body(Body::empty())
            .unwrap()
    };
    let r = send(&app, get("/Users")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["itemsPerPage"], 3);
    let loc = r.body["Resources"][0]["meta"]["location"].as_str().unwrap();
    assert!(
        loc.starts_with("https://example.com/scim/v2/Users/"),
        "{loc}"
    );
    let r = send(&app, get("/Users?count=100")).await;
    assert_eq!(r.body["itemsPerPage"], 10);
}

/// `../shared/scim-entra.md`: what Entra ID and Okta send beyond RFC 7644, through HTTP, with
/// the stored result checked on the directory.
#[tokio::test]
async fn identity_provider_request_shapes() {
    let dir = directory();
    let app = app(&dir);
    // 6, 7: query before create (with the tenant flag), 200 with totalResults 0.
    let q = "/Users?aadOptscim062020&filter=userName+eq+%22ann%40contoso.com%22";
    let r = call(&app, "GET", q, None).await;
    assert_eq!(
        (r.status, r.body["totalResults"].clone()),
        (StatusCode::OK, json!(0))
    );
    // 10: userName is the UPN, with a work email, often equal. `application/json` too.
    let body = json!({"schemas": [USER], "externalId": "0a1b", "userName": "ann@contoso.com",
        "active": true, "displayName": "Ann Lee",
        "emails": [{"primary": true, "type": "work", "value": "ann@contoso.com"}],
        "name": {"formatted": "Ann Lee", "familyName": "Lee", "givenName": "Ann"},
        "phoneNumbers": [{"type": "mobile", "value": "+1 555 0100"}]});
    let r = call_with(
        &app,
        "POST",
        "/Users",
        Some(body.clone()),
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id: uuid::Uuid = r.body["id"].as_str().unwrap().parse().unwrap();
    let stored = dir.get(id).unwrap().unwrap();
    assert_eq!(stored.username.as_deref(), Some("ann@contoso.com"));
    assert_eq!(stored.email.as_deref(), Some("ann@contoso.com"));
    assert_eq!(stored.external_id.as_deref(), Some("0a1b"));
    assert_eq!(stored.mobile_phone(), Some("+1 555 0100"));
    // 6: the query now finds it, by userName and by externalId; a duplicate POST is 409.
    let r = call(&app, "GET", "/Users?filter=externalId+eq+%220a1b%22", None).await;
    assert_eq!(r.body["totalResults"], 1);
    let r = call(&app, "POST", "/Users", Some(body)).await;
    assert_error(&r, StatusCode::CONFLICT, Some("uniqueness"));
    // 1, 2, 3, 4: capitalised ops, string booleans, path-less values keyed by paths, filtered
    // paths on multi-valued attributes.
    let patch = json!({"schemas": [PATCH], "Operations": [
        {"op": "Replace", "path": "active", "value": "False"},
        {"op": "Add", "value": {"name.givenName": "Annie",
                                "emails[type eq \"work\"].value": "annie@contoso.com"}},
        {"op": "Replace", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0199"},
    ]});
    let uri = format!("/Users/{id}");
    let r = call(&app, "PATCH", &uri, Some(patch)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let stored = dir.get(id).unwrap().unwrap();
    assert!(!stored.active);
    assert_eq!(stored.first_name.as_deref(), Some("Annie"));
    assert_eq!(stored.email.as_deref(), Some("annie@contoso.com"));
    assert_eq!(stored.mobile_phone(), Some("+1 555 0199"));
    // 2: "True" in any case.
    let on = json!({"schemas": [PATCH], "Operations": [
        {"op": "replace", "value": {"active": "TRUE"}}]});
    assert_eq!(
        call(&app, "PATCH", &uri, Some(on)).await.status,
        StatusCode::OK
    );
    assert!(dir.get(id).unwrap().unwrap().active);
    // 9: the validator's empty Operations: 200, nothing changes.
    let before = dir.get(id).unwrap().unwrap();
    let r = call(
        &app,
        "PATCH",
        &uri,
        Some(json!({"schemas": [PATCH], "Operations": []})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(dir.get(id).unwrap().unwrap(), before);
    // Okta: profile changes by PUT of the whole user, with a write-only password.
    let put = json!({"schemas": [USER], "userName": "ann@contoso.com", "active": true,
        "name": {"givenName": "Ann", "familyName": "Lee-Park"},
        "emails": [{"primary": true, "type": "work", "value": "ann@contoso.com"}],
        "password": "okta sends this once"});
    let r = call(&app, "PUT", &uri, Some(put)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(!r.body.to_string().contains("okta sends"));
    let stored = dir.get(id).unwrap().unwrap();
    assert_eq!(stored.last_name.as_deref(), Some("Lee-Park"));
    assert_eq!(stored.mobile_phone(), None, "PUT replaces everything");
    assert!(
        dir.authenticate("ann@contoso.com", "okta sends this once")
            .is_ok()
    );
    // Okta's paging before create.
    let r = call(
        &app,
        "GET",
        "/Users?filter=userName+eq+%22bob%40contoso.com%22&startIndex=1&count=100",
        None,
    )
    .await;
    assert_eq!(
        (r.body["totalResults"].clone(), r.body["startIndex"].clone()),
        (json!(0), json!(1))
    );
    // 8: DELETE comes only for a hard delete: the userName is free afterwards.
    assert_eq!(
        call(&app, "DELETE", &uri, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert!(dir.find_by_username("ann@contoso.com").unwrap().is_none());
    dir.check_integrity().unwrap();
}

/// RFC 7643 §2.4: `primary` comes back as sent (an only email need not be primary, and is the
/// login email either way); a PUT of the resource as read keeps the login email.
#[tokio::test]
async fn emails_keep_their_primary_flag_and_a_put_of_the_same_resource_keeps_them() {
    let d = directory();
    let app = app(&d);
    let mut body = user("ann");
    body["emails"] = json!([{"value": "ann@example.com", "type": "home", "primary": false}]);
    let r = call(&app, "POST", "/Users", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        r.body["emails"],
        json!([{"value": "ann@example.com", "type": "home", "primary": false}])
    );
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert!(d.find_by_email("ann@example.com").unwrap().is_some());
    // PUT back what GET returned: nothing changes, the login email stays.
    let got = call(&app, "GET", &format!("/Users/{id}"), None).await.body;
    let r = call(&app, "PUT", &format!("/Users/{id}"), Some(got.clone())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["emails"], got["emails"]);
    assert!(d.find_by_email("ann@example.com").unwrap().is_some());
    let mut body = user("bob");
    body["emails"] = json!([{"value": "bob@example.com", "primary": true},
                            {"value": "bob@home.example", "type": "home"}]);
    let bob = call(&app, "POST", "/Users", Some(body)).await.body;
    let bob_id = bob["id"].as_str().unwrap();
    let r = call(&app, "PUT", &format!("/Users/{bob_id}"), Some(bob.clone())).await;
    assert_eq!(r.body["emails"], bob["emails"]);
    assert!(d.find_by_email("bob@example.com").unwrap().is_some());
    d.check_integrity().unwrap();
}
