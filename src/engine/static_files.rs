//! HTTP fallback for non-upgrade requests (being written).
use crate::protocol::http::RequestHead;
use std::path::Path;

pub fn respond(root: Option<&Path>, head: &RequestHead) -> Vec<u8> {
    let _ = (root, head);
    crate::protocol::handshake::render_response(
        404,
        &[],
        "text/plain; charset=utf-8",
        b"not found\n",
    )
}
