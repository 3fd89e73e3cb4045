//! Runs examples/axum.rs in-process: sign-up, login and the user page, with the statuses that
//! `Error::http_status` gives, and no password hash in any response.

#[path = "../examples/axum.rs"]
#[allow(dead_code)]
mod example;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use userdir::{Argon2Params, Directory};

async fn call(app: &axum::Router, method: &str, uri: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    let body = match body {
        Some(v) => {
            req = req.header("content-type", "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let resp = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(!text.contains("argon2"), "a hash in a response: {text}");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_log_in_and_see_the_user_page() {
    let dir = Directory::builder()
        .hasher(Argon2Params::insecure_fast())
        .in_memory()
        .unwrap();
    let app = example::app(dir);
    let ann =
        json!({"username": "Ann", "email": "Ann@Example.com", "password": "correct horse battery"});

    let (status, user) = call(&app, "POST", "/signup", Some(ann.clone())).await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(user["email"], "ann@example.com");
    let (status, err) = call(&app, "POST", "/signup", Some(ann)).await;
    assert_eq!(status, StatusCode::CONFLICT.as_u16(), "{err}");
    let weak = json!({"username": "bob", "password": "short"});
    assert_eq!(call(&app, "POST", "/signup", Some(weak)).await.0, 400);

    let login = json!({"login_id": "ANN@example.com", "password": "correct horse battery"});
    let (status, me) = call(&app, "POST", "/login", Some(login)).await;
    assert_eq!(status, 200, "{me}");
    assert!(me["last_login_instant"].is_i64(), "{me}");
    let wrong = json!({"login_id": "ann", "password": "not it at all"});
    assert_eq!(call(&app, "POST", "/login", Some(wrong)).await.0, 401);

    let (status, page) = call(&app, "GET", "/users/ann", None).await;
    assert_eq!(status, 200);
    assert_eq!(page["username"], "Ann");
    assert_eq!(page["id"], me["id"]);
    assert_eq!(call(&app, "GET", "/users/nobody", None).await.0, 404);
}
