//! The HTTP fallback: a request that is not a WebSocket upgrade gets a file from the
//! configured static directory (GET/HEAD), or 404, so one port can serve both a web
//! page and its WebSocket.

use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use crate::protocol::handshake::{render_head, render_response};
use crate::protocol::http::RequestHead;

/// Files larger than this are refused: the fallback reads a file whole into memory on a
/// reactor thread, and it exists for small web pages, not downloads. The answer is 500,
/// not 413: 413 says the *request* content is too large (RFC 9110 §15.5.14), which
/// would blame the client for a limit of the server's own.
const MAX_FILE_SIZE: u64 = 64 * 1024 * 1024;
use crate::protocol::handshake::TEXT_PLAIN as TEXT;

fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        // RFC 9239 §6: text/javascript is the one registered type for scripts.
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

/// Decodes %XX escapes (RFC 3986 §2.1); None for a malformed escape or a NUL byte,
/// which no file name can hold and which C-string APIs would truncate at.
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

/// Maps a request path to a relative path made of normal components only. Decoding
/// comes first so that `%2e%2e` and `%2f` are judged as the file system will see them.
fn relative_path(request_path: &str) -> Option<PathBuf> {
    let decoded = String::from_utf8(percent_decode(request_path)?).ok()?;
    // A backslash is a separator on Windows and in some proxies' eyes: never a name.
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

/// A file found under the root, opened, with what its response needs.
struct Found {
    file: fs::File,
    len: u64,
    content_type: &'static str,
}

/// A refusal: status and a one-line body.
type Refusal = (u16, &'static str);

const NOT_FOUND: Refusal = (404, "not found");

/// Resolves `request_path` to a regular file inside `root` and opens it.
fn find(root: &Path, request_path: &str) -> Result<Found, Refusal> {
    let rel = relative_path(request_path).ok_or((400, "bad path"))?;
    let root = root.canonicalize().map_err(|_| NOT_FOUND)?;
    let mut path = root.join(rel);
    if path.is_dir() {
        path.push("index.html");
    }
    // Canonicalizing resolves symlinks: a link pointing outside the root is refused,
    // one pointing elsewhere inside it is followed.
    let real = path.canonicalize().map_err(|_| NOT_FOUND)?;
    if !real.starts_with(&root) {
        return Err(NOT_FOUND);
    }
    // stat before open: opening a FIFO or a device can block or have side effects.
    if !fs::metadata(&real).map_err(|_| NOT_FOUND)?.is_file() {
        return Err(NOT_FOUND);
    }
    // The checks above and the open are not atomic. O_NOFOLLOW refuses a last component
    // swapped for a symlink meanwhile, O_NONBLOCK keeps a swapped-in FIFO from blocking
    // the reactor, and the fstat below judges the file actually opened.
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&real)
        .map_err(|_| NOT_FOUND)?;
    let meta = file.metadata().map_err(|_| NOT_FOUND)?;
    if !meta.is_file() {
        return Err(NOT_FOUND);
    }
    if meta.len() > MAX_FILE_SIZE {
        return Err((500, "file too large for the static fallback"));
    }
    Ok(Found {
        file,
        len: meta.len(),
        content_type: content_type(&real),
    })
}

/// The full response (head and body) to a plain HTTP request: GET and HEAD of files
/// under `root`; everything is 404 without a root. A response to HEAD, error or not,
/// has the head GET would get and no body (RFC 9110 §9.3.2).
pub fn respond(root: Option<&Path>, head: &RequestHead) -> Vec<u8> {
    let is_head = head.method == "HEAD";
    let mut headers = Vec::new();
    let found = match root {
        None => Err(NOT_FOUND),
        Some(_) if head.method != "GET" && !is_head => {
            // RFC 9110 §15.5.6: a 405 MUST list the methods the resource supports.
            headers.push(("Allow".to_string(), "GET, HEAD".to_string()));
            Err((405, "method not allowed"))
        }
        Some(root) => find(root, head.path()),
    };
    let (status, content_type, body) = match found {
        Ok(found) => {
            // Revalidate on each use: the files are an application's live web page.
            headers.push(("Cache-Control".to_string(), "no-cache".to_string()));
            if is_head {
                return render_head(200, &headers, found.content_type, found.len);
            }
            let mut body = Vec::with_capacity(found.len as usize);
            // take: a file growing after the fstat must not grow past the size cap.
            match found.file.take(found.len).read_to_end(&mut body) {
                Ok(_) => (200, found.content_type, body),
                Err(_) => (500, TEXT, b"cannot read the file\n".to_vec()),
            }
        }
        Err((status, message)) => (status, TEXT, format!("{message}\n").into_bytes()),
    };
    if is_head {
        render_head(status, &headers, content_type, body.len() as u64)
    } else {
        render_response(status, &headers, content_type, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::http::{HeadLimits, RequestParser};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A directory tree under the system temp dir, removed on drop.
    struct Site {
        base: PathBuf,
        root: PathBuf,
    }
    impl Drop for Site {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.base);
        }
    }

    /// base/secret.txt (outside the root) and base/www/ (the root) with an index, a
    /// script, a subdirectory with its own index, an empty directory, a symlink out of
    /// the root and one inside it.
    fn site() -> Site {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let base = std::env::temp_dir().join(format!(
            "wsq-static-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&base);
        let root = base.join("www");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::create_dir_all(root.join("empty")).unwrap();
        fs::write(root.join("index.html"), "<h1>hi</h1>").unwrap();
        fs::write(root.join("sub/index.html"), "<h2>sub</h2>").unwrap();
        fs::write(root.join("app.js"), "let x = 1;").unwrap();
        fs::write(base.join("secret.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(base.join("secret.txt"), root.join("link.txt")).unwrap();
        std::os::unix::fs::symlink(root.join("app.js"), root.join("alias.js")).unwrap();
        Site { base, root }
    }

    fn request(method: &str, target: &str) -> RequestHead {
        let req = format!("{method} {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        RequestParser::new(HeadLimits::DEFAULT)
            .feed(req.as_bytes())
            .unwrap()
            .unwrap()
            .0
    }

    fn get(root: &Path, method: &str, target: &str) -> String {
        String::from_utf8(respond(Some(root), &request(method, target))).unwrap()
    }

    fn status(response: &str) -> u16 {
        response[9..12].parse().unwrap()
    }

    #[test]
    fn serves_index_and_files_with_content_types() {
        // RFC 9110 §8.3: Content-Type tells the browser how to treat the bytes.
        let site = site();
        let r = get(&site.root, "GET", "/");
        assert!(r.starts_with("HTTP/1.1 200 OK"), "{r}");
        assert!(r.contains("Content-Type: text/html; charset=utf-8\r\n"));
        assert!(r.contains("Cache-Control: no-cache\r\n"));
        assert!(r.ends_with("\r\n\r\n<h1>hi</h1>"));
        let r = get(&site.root, "GET", "/app.js?v=2");
        assert!(r.contains("Content-Type: text/javascript; charset=utf-8\r\n"));
        assert!(r.ends_with("let x = 1;"));
    }

    #[test]
    fn directories_map_to_their_index_html() {
        let site = site();
        for target in ["/sub", "/sub/", "/sub/./", "//sub"] {
            assert!(
                get(&site.root, "GET", target).ends_with("<h2>sub</h2>"),
                "{target}"
            );
        }
        assert_eq!(status(&get(&site.root, "GET", "/empty/")), 404);
    }

    #[test]
    fn content_types_follow_the_extension() {
        for (name, expected) in [
            ("a.HTM", "text/html; charset=utf-8"),
            ("a.mjs", "text/javascript; charset=utf-8"),
            ("a.css", "text/css; charset=utf-8"),
            ("a.json", "application/json; charset=utf-8"),
            ("a.js.map", "application/json; charset=utf-8"),
            ("a.txt", "text/plain; charset=utf-8"),
            ("a.svg", "image/svg+xml"),
            ("a.png", "image/png"),
            ("a.jpg", "image/jpeg"),
            ("a.jpeg", "image/jpeg"),
            ("a.gif", "image/gif"),
            ("a.ico", "image/x-icon"),
            ("a.wasm", "application/wasm"),
            ("a.bin", "application/octet-stream"),
            ("Makefile", "application/octet-stream"),
        ] {
            assert_eq!(content_type(Path::new(name)), expected, "{name}");
        }
    }

    #[test]
    fn head_has_the_length_but_no_body() {
        // RFC 9110 §9.3.2: the same header fields as GET, no content, errors included.
        let site = site();
        let get_r = get(&site.root, "GET", "/index.html");
        let head_r = get(&site.root, "HEAD", "/index.html");
        assert!(head_r.contains("Content-Length: 11\r\n"));
        assert_eq!(head_r, get_r.strip_suffix("<h1>hi</h1>").unwrap());
        let missing = get(&site.root, "HEAD", "/nope");
        assert_eq!(status(&missing), 404);
        assert!(missing.ends_with("\r\n\r\n"), "{missing}");
        let no_root = String::from_utf8(respond(None, &request("HEAD", "/"))).unwrap();
        assert!(no_root.starts_with("HTTP/1.1 404") && no_root.ends_with("\r\n\r\n"));
    }

    #[test]
    fn dot_dot_traversal_raw_or_percent_encoded_is_refused_with_400() {
        // RFC 3986 §5.2.4 dot-segments must not climb out of the root; decoding first
        // (RFC 3986 §2.1) catches `%2e%2e` and `%2f` too.
        let site = site();
        for target in [
            "/../secret.txt",
            "/sub/../../secret.txt",
            "/%2e%2e/secret.txt",
            "/%2E%2E/secret.txt",
            "/..%2fsecret.txt",
            "/sub%2f..%2f..%2fsecret.txt",
            "/a%00b",
            "/a\\..\\b",
            "/%5c..%5csecret.txt",
            "/%zz",
            "/%ff",
        ] {
            let r = get(&site.root, "GET", target);
            assert_eq!(status(&r), 400, "{target}: {r}");
        }
    }

    #[test]
    fn symlink_out_of_the_root_is_refused_with_404() {
        // Canonical paths: a link is judged by where it points, not by its name.
        let site = site();
        let r = get(&site.root, "GET", "/link.txt");
        assert_eq!(status(&r), 404, "{r}");
        assert!(!r.contains("secret"));
        assert!(get(&site.root, "GET", "/alias.js").ends_with("let x = 1;"));
    }

    #[test]
    fn non_regular_files_are_404_without_blocking() {
        // Opening a FIFO for reading blocks until a writer comes: never on a reactor.
        let site = site();
        let fifo = site.root.join("pipe.txt");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert_eq!(status(&get(&site.root, "GET", "/pipe.txt")), 404);
    }

    #[test]
    fn files_over_the_size_cap_are_refused_with_500() {
        // A server-side limit, so a 5xx, not 413 (RFC 9110 §15.5.14 is about requests).
        let site = site();
        let big = fs::File::create(site.root.join("big.bin")).unwrap();
        big.set_len(MAX_FILE_SIZE + 1).unwrap(); // sparse: no disk space used
        assert_eq!(status(&get(&site.root, "GET", "/big.bin")), 500);
        assert_eq!(status(&get(&site.root, "HEAD", "/big.bin")), 500);
    }

    #[test]
    fn missing_files_are_404_and_other_methods_405_with_allow() {
        // RFC 9110 §15.5.6: a 405 lists the allowed methods.
        let site = site();
        assert_eq!(status(&get(&site.root, "GET", "/nope.html")), 404);
        for method in ["POST", "PUT", "DELETE", "OPTIONS", "get"] {
            let r = get(&site.root, method, "/");
            assert_eq!(status(&r), 405, "{method}");
            assert!(r.contains("\r\nAllow: GET, HEAD\r\n"));
        }
    }

    #[test]
    fn without_a_root_everything_is_404() {
        for method in ["GET", "POST"] {
            let r = String::from_utf8(respond(None, &request(method, "/"))).unwrap();
            assert_eq!(status(&r), 404, "{method}");
        }
    }
}
