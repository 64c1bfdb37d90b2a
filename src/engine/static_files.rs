//! The HTTP fallback: a request that is not a WebSocket upgrade gets a file from the
//! configured static directory (GET/HEAD), or 404, so one port can serve both a web
//! page and its WebSocket.

use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::protocol::handshake::render_response;
use crate::protocol::http::RequestHead;

/// Files larger than this are refused (413): the fallback reads a file whole into
/// memory, and it exists for small web pages, not downloads.
const MAX_FILE_SIZE: u64 = 64 * 1024 * 1024;
const TEXT: &str = "text/plain; charset=utf-8";

fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json; charset=utf-8",
        Some("txt") => TEXT,
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("ico") => "image/x-icon",
        Some("wasm") => "application/wasm",
        _ => "application/octet-stream",
    }
}

/// Decodes %XX escapes; None for a malformed escape or a NUL byte.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    (!out.contains(&0)).then_some(out)
}

/// Maps a request path to a relative path made of normal components only.
fn relative_path(request_path: &str) -> Option<PathBuf> {
    let decoded = String::from_utf8(percent_decode(request_path)?).ok()?;
    if decoded.contains('\\') {
        return None;
    }
    let mut rel = PathBuf::new();
    for part in Path::new(decoded.trim_start_matches('/')).components() {
        match part {
            Component::Normal(p) => rel.push(p),
            Component::CurDir => {}
            // `..` or anything absolute: traversal attempt.
            _ => return None,
        }
    }
    Some(rel)
}

fn error(status: u16, body: &str) -> Vec<u8> {
    render_response(status, &[], TEXT, format!("{body}\n").as_bytes())
}

/// The full response (head and body) to a plain HTTP request.
pub fn respond(root: Option<&Path>, head: &RequestHead) -> Vec<u8> {
    let Some(root) = root else {
        return error(404, "not found");
    };
    let is_head = head.method == "HEAD";
    if head.method != "GET" && !is_head {
        let allow = [("Allow".to_string(), "GET, HEAD".to_string())];
        return render_response(405, &allow, TEXT, b"method not allowed\n");
    }
    let Some(rel) = relative_path(head.path()) else {
        return error(400, "bad path");
    };
    let Ok(root) = root.canonicalize() else {
        return error(404, "not found");
    };
    let mut path = root.join(rel);
    if path.is_dir() {
        path.push("index.html");
    }
    // Canonicalizing resolves symlinks: a link pointing outside the root is refused.
    let Ok(real) = path.canonicalize() else {
        return error(404, "not found");
    };
    if !real.starts_with(&root) {
        return error(404, "not found");
    }
    let Ok(meta) = fs::metadata(&real) else {
        return error(404, "not found");
    };
    if !meta.is_file() {
        return error(404, "not found");
    }
    if meta.len() > MAX_FILE_SIZE {
        return error(413, "file too large for the static fallback");
    }
    let mut body = Vec::with_capacity(meta.len() as usize);
    if fs::File::open(&real)
        .and_then(|mut f| f.read_to_end(&mut body))
        .is_err()
    {
        return error(404, "not found");
    }
    let headers = [("Cache-Control".to_string(), "no-cache".to_string())];
    let ctype = content_type(&real);
    if is_head {
        // HEAD: the same head as GET (its Content-Length), no body.
        let mut full = render_response(200, &headers, ctype, &body);
        full.truncate(full.len() - body.len());
        full
    } else {
        render_response(200, &headers, ctype, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::http::{HeadLimits, RequestParser};

    struct TempDir(PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn site() -> (TempDir, PathBuf) {
        let base = std::env::temp_dir().join(format!(
            "wsq-static-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&base);
        let root = base.join("www");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("index.html"), "<h1>hi</h1>").unwrap();
        fs::write(root.join("app.js"), "let x = 1;").unwrap();
        fs::write(base.join("secret.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(base.join("secret.txt"), root.join("link.txt")).unwrap();
        (TempDir(base), root)
    }

    fn get(root: &Path, method: &str, target: &str) -> String {
        let req = format!("{method} {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        let head = RequestParser::new(HeadLimits::DEFAULT)
            .feed(req.as_bytes())
            .unwrap()
            .unwrap()
            .0;
        String::from_utf8(respond(Some(root), &head)).unwrap()
    }

    #[test]
    fn serves_index_and_files_with_content_types() {
        let (_t, root) = site();
        let r = get(&root, "GET", "/");
        assert!(r.starts_with("HTTP/1.1 200 OK"), "{r}");
        assert!(r.contains("text/html; charset=utf-8") && r.ends_with("<h1>hi</h1>"));
        let r = get(&root, "GET", "/app.js?v=2");
        assert!(r.contains("text/javascript") && r.ends_with("let x = 1;"));
    }

    #[test]
    fn head_has_the_length_but_no_body() {
        let (_t, root) = site();
        let r = get(&root, "HEAD", "/index.html");
        assert!(r.contains("Content-Length: 11\r\n") && r.ends_with("\r\n\r\n"));
    }

    #[test]
    fn traversal_and_symlink_escape_are_refused() {
        let (_t, root) = site();
        for target in [
            "/../secret.txt",
            "/sub/../../secret.txt",
            "/%2e%2e/secret.txt",
            "/..%2fsecret.txt",
            "/link.txt",
            "/a%00b",
            "/a\\..\\b",
        ] {
            let r = get(&root, "GET", target);
            assert!(
                r.starts_with("HTTP/1.1 400") || r.starts_with("HTTP/1.1 404"),
                "{target}: {r}"
            );
            assert!(
                !r.contains("secret\n") && !r.ends_with("secret"),
                "{target}"
            );
        }
    }

    #[test]
    fn missing_files_are_404_and_other_methods_405() {
        let (_t, root) = site();
        assert!(get(&root, "GET", "/nope.html").starts_with("HTTP/1.1 404"));
        let r = get(&root, "POST", "/");
        assert!(r.starts_with("HTTP/1.1 405") && r.contains("Allow: GET, HEAD"));
    }

    #[test]
    fn without_a_root_everything_is_404() {
        let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let head = RequestParser::new(HeadLimits::DEFAULT)
            .feed(req)
            .unwrap()
            .unwrap()
            .0;
        assert!(String::from_utf8(respond(None, &head))
            .unwrap()
            .starts_with("HTTP/1.1 404"));
    }
}
