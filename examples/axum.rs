//! A web application on userdir with axum: sign-up, login and a user page.
//!
//! ```text
//! cargo run --example axum            # serves http://127.0.0.1:3000, users in ./axum-users.redb
//! curl -si localhost:3000/signup -H 'content-type: application/json' \
//!      -d '{"username":"ann","email":"ann@example.com","password":"correct horse battery"}'
//! curl -si localhost:3000/login -H 'content-type: application/json' \
//!      -d '{"login_id":"ann@example.com","password":"correct horse battery"}'
//! curl -si localhost:3000/users/ann
//! ```
//!
//! Every `Directory` call blocks: argon2 hashing takes tens of milliseconds on purpose, and a
//! durable commit waits for the disk. So each call runs in `tokio::task::spawn_blocking`, never
//! on the async worker threads. `Directory` is cheap to clone (clones share the open file), so
//! each handler moves a clone into its blocking task.
//!
//! Errors become responses through `Error::http_status()`: 409 for a taken username, 400 for a
//! weak password, 401 for a wrong one, 404 for an unknown user. Server-side failures (5xx) are
//! logged and answered without details. Users serialize with serde: the password hash is never
//! part of the JSON.
//!
//! `tests/axum_example.rs` drives this router in-process, so CI runs it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use userdir::{Directory, NewUser, User};

/// The sign-up form.
#[derive(Deserialize)]
pub struct SignUp {
    username: String,
    email: Option<String>,
    password: String,
}

/// The login form.
#[derive(Deserialize)]
pub struct LogIn {
    login_id: String,
    password: String,
}

/// A userdir error as an HTTP response, or a blocking task that did not finish.
pub enum ApiError {
    /// The directory refused or failed.
    Directory(userdir::Error),
    /// The blocking task panicked or was cancelled.
    Internal,
}

impl From<userdir::Error> for ApiError {
    fn from(e: userdir::Error) -> Self {
        ApiError::Directory(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::Directory(e) => {
                let status = StatusCode::from_u16(e.http_status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                if status.is_server_error() {
                    // Details (file names, I/O errors) stay in the server's log.
                    eprintln!("userdir: {e}");
                    (status, "internal error".to_owned())
                } else {
                    (status, e.to_string())
                }
            }
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error".to_owned(),
            ),
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

/// Runs a blocking directory call on tokio's blocking thread pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> userdir::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::Directory),
        // The task panicked or was cancelled: answer 500, keep serving.
        Err(e) => {
            eprintln!("userdir: blocking task failed: {e}");
            Err(ApiError::Internal)
        }
    }
}

async fn sign_up(
    State(dir): State<Directory>,
    Json(form): Json<SignUp>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let mut new = NewUser::with_username(form.username).password(form.password);
    if let Some(email) = form.email {
        new = new.email(email);
    }
    // Hashing happens here, on a blocking thread, outside the write transaction.
    let user = blocking(move || dir.create(new)).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

async fn log_in(
    State(dir): State<Directory>,
    Json(form): Json<LogIn>,
) -> Result<Json<User>, ApiError> {
    let login = blocking(move || dir.authenticate(&form.login_id, &form.password)).await?;
    // A real application would start a session here (a signed cookie, a token).
    Ok(Json(login.user))
}

async fn user_page(
    State(dir): State<Directory>,
    Path(login): Path<String>,
) -> Result<Json<User>, ApiError> {
    let found = blocking(move || dir.resolve(&login)).await?;
    match found {
        Some(user) => Ok(Json(user)),
        None => Err(ApiError::Directory(userdir::Error::NotFound(
            uuid::Uuid::nil(),
        ))),
    }
}

/// The application: `POST /signup`, `POST /login`, `GET /users/{id or login}`.
pub fn app(dir: Directory) -> Router {
    Router::new()
        .route("/signup", post(sign_up))
        .route("/login", post(log_in))
        .route("/users/{login}", get(user_page))
        .with_state(dir)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::var("USERDIR_DB").unwrap_or_else(|_| "axum-users.redb".into());
    // Opening checks and may replay the redo log: blocking too.
    let dir = tokio::task::spawn_blocking(move || Directory::open(path)).await??;
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("listening on http://{addr}");
    axum::serve(listener, app(dir)).await?;
    Ok(())
}
