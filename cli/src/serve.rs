//! `userdir serve`: the SCIM 2.0 endpoint (`userdir::scim::router`) over HTTP.

use std::net::SocketAddr;
use std::path::Path;

use userdir::Directory;
use userdir::scim::{self, ScimConfig};

use crate::{CliResult, Fail};

/// Reads the bearer token: the file's content, trimmed; an empty file is refused.
fn read_token(path: &Path) -> CliResult<String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Fail::new(
            2,
            format!("cannot read the token file {}: {e}", path.display()),
        )
    })?;
    let token = text.trim().to_owned();
    if token.is_empty() {
        return Err(Fail::new(
            2,
            format!("the token file {} is empty", path.display()),
        ));
    }
    Ok(token)
}

/// Serves `dir` on `listen` until SIGINT or SIGTERM, then closes the directory.
pub(crate) fn serve(
    dir: Directory,
    listen: &str,
    token_file: &Path,
    base_url: Option<&str>,
    json: bool,
) -> CliResult {
    let token = read_token(token_file)?;
    let addr: SocketAddr = listen
        .parse()
        .map_err(|_| Fail::new(2, format!("--listen {listen:?} is not an address:port")))?;
    let mut config = ScimConfig::with_bearer_token(&token);
    drop(token);
    if let Some(b) = base_url {
        config = config.base_url(b);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Fail::new(3, format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Fail::new(2, format!("cannot listen on {addr}: {e}")))?;
        let local = listener
            .local_addr()
            .map_err(|e| Fail::new(3, format!("cannot read the bound address: {e}")))?;
        // The bound address (useful with port 0); never the token.
        if json {
            println!(
                "{}",
                serde_json::json!({ "serving": format!("http://{local}") })
            );
        } else {
            println!("userdir: serving SCIM 2.0 on http://{local}");
        }
        // A 5xx answer tells the client little; the whole error goes to the operator's stderr.
        let app = scim::router(dir, config).layer(axum::middleware::map_response(
            |resp: axum::response::Response| async move {
                if let Some(scim::ServerErrorDetail(detail)) = resp.extensions().get() {
                    eprintln!("userdir serve: {} {detail}", resp.status().as_u16());
                }
                resp
            },
        ));
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown())
            .await
            .map_err(|e| Fail::new(3, format!("server failed: {e}")))
    })
}

async fn shutdown() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = interrupt.await;
            return;
        };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
