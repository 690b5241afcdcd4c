//! The admin console at `/admin`: static files embedded in the binary (see `build.rs` and
//! ADR 0013). `/admin/assets/…` are the files; every other `/admin…` path is the page itself,
//! which routes on the client.
//!
//! Files are revalidated on every load (`Cache-Control: no-cache` with an `ETag`, answered
//! with 304 when unchanged), so a new binary's console is picked up at once. The page carries
//! its own Content-Security-Policy, stricter than the default of HTML answers: only this
//! origin's scripts, styles and connections, no inline code of any kind.

use std::borrow::Cow;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use kit::ApiError;

/// One embedded file.
pub struct Asset {
    /// Its path under `console/` (`index.html`, `assets/js/app.js`).
    pub path: &'static str,
    pub content_type: &'static str,
    pub etag: &'static str,
    pub body: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));

/// Where the console lives.
pub const PREFIX: &str = "/admin";

/// The console page's Content-Security-Policy.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; \
frame-ancestors 'none'";

/// The embedded file at `path` (under `console/`).
pub fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// Where the files come from: the binary, or a directory (development: edit, reload).
#[derive(Clone, Debug, Default)]
pub struct Files {
    dir: Option<std::path::PathBuf>,
}

impl Files {
    /// The files built into the binary.
    pub fn embedded() -> Files {
        Files { dir: None }
    }

    /// The files of `dir` (e.g. `services/gateway/console`), read at every request.
    pub fn from_dir(dir: std::path::PathBuf) -> Files {
        Files { dir: Some(dir) }
    }

    fn get(&self, path: &str) -> Option<File> {
        let Some(dir) = &self.dir else {
            return asset(path).map(|a| File {
                content_type: a.content_type,
                etag: a.etag.into(),
                body: Cow::Borrowed(a.body),
            });
        };
        if path.split('/').any(|seg| seg.is_empty() || seg.starts_with('.')) {
            return None;
        }
        let body = std::fs::read(dir.join(path)).ok()?;
        let content_type = asset(path).map(|a| a.content_type).or_else(|| {
            Some(match path.rsplit_once('.')?.1 {
                "html" => "text/html; charset=utf-8",
                "js" => "text/javascript; charset=utf-8",
                "css" => "text/css; charset=utf-8",
                "svg" => "image/svg+xml",
                _ => return None,
            })
        })?;
        let hash = body
            .iter()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3));
        Some(File { content_type, etag: format!("\"{hash:016x}\"").into(), body: Cow::Owned(body) })
    }
}

/// A file about to be served: embedded (borrowed) or read from the development directory.
struct File {
    content_type: &'static str,
    etag: Cow<'static, str>,
    body: Cow<'static, [u8]>,
}

fn serve(file: File, req: &Request) -> Response {
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == file.etag));
    let etag = HeaderValue::from_str(&file.etag).expect("an ETag is a quoted hex string");
    let mut res = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, file.content_type)], file.body).into_response()
    };
    let h = res.headers_mut();
    h.insert(header::ETAG, etag);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if file.content_type.starts_with("text/html") {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    }
    res
}

async fn page(State(files): State<Files>, req: Request) -> Response {
    match files.get("index.html") {
        Some(a) => serve(a, &req),
        None => ApiError::not_found("the console is not built into this binary").into_response(),
    }
}

async fn file(State(files): State<Files>, req: Request) -> Response {
    let path = req.uri().path().trim_start_matches(PREFIX).trim_start_matches('/');
    match files.get(path).filter(|_| path.starts_with("assets/")) {
        Some(a) => serve(a, &req),
        None => ApiError::not_found(format!("no console file {path}")).into_response(),
    }
}

/// `/admin`, `/admin/` and everything under it.
pub fn routes(files: Files) -> Router {
    Router::new()
        .route(PREFIX, get(page))
        .route("/admin/", get(page))
        .route("/admin/assets/{*path}", get(file))
        .route("/admin/{*rest}", get(page))
        .with_state(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_scripts_are_embedded() {
        let index = asset("index.html").expect("index.html");
        let html = std::str::from_utf8(index.body).unwrap();
        assert!(html.contains("/admin/assets/"), "the page loads its files from /admin/assets/");
        assert!(!html.contains("<script>") && !html.contains("style="), "no inline code (CSP)");
        for a in ASSETS {
            assert!(a.path == "index.html" || a.path.starts_with("assets/"), "{}", a.path);
            assert!(a.etag.starts_with('"') && a.etag.ends_with('"'));
        }
    }

    #[test]
    fn a_development_directory_is_read_at_every_request() {
        let dir = std::env::temp_dir().join(format!("shop-console-dir-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(dir.join("assets")).unwrap();
        std::fs::write(dir.join("assets/app.css"), "a{}").unwrap();
        let files = Files::from_dir(dir.clone());
        let first = files.get("assets/app.css").unwrap();
        assert_eq!((first.content_type, &*first.body), ("text/css; charset=utf-8", &b"a{}"[..]));
        std::fs::write(dir.join("assets/app.css"), "b{}").unwrap();
        let second = files.get("assets/app.css").unwrap();
        assert_eq!(&*second.body, b"b{}");
        assert_ne!(first.etag, second.etag, "a changed file has a new ETag");
        assert!(files.get("assets/../../etc/passwd").is_none() && files.get("assets/.hidden").is_none());
        assert!(files.get("assets/missing.js").is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
