//! The server's opening handshake (§4.2): validation, negotiation and response bytes.

use super::extensions::ExtensionOffer;
use super::http::RequestHead;

/// §1.3: the GUID appended to the client's key before hashing.
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a client key (§4.2.2 step 5.4).
pub fn accept_key(client_key: &str) -> String {
    let _ = client_key;
    todo!()
}

/// What the server allows, from its configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HandshakePolicy {
    /// Allowed `Origin` values (exact, case-insensitive match). Empty: any origin, or none.
    pub allowed_origins: Vec<String>,
    /// Supported subprotocols in the server's order of preference.
    pub subprotocols: Vec<String>,
}

/// A valid upgrade request, with what was negotiated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// The client's `Sec-WebSocket-Key`, as sent.
    pub key: String,
    /// The value of `Sec-WebSocket-Accept` to send.
    pub accept: String,
    pub origin: Option<String>,
    /// Subprotocols the client offered, in its order.
    pub offered_subprotocols: Vec<String>,
    /// The server's choice: the first of its own list that the client offered (§4.2.2).
    pub subprotocol: Option<String>,
    pub extensions: Vec<ExtensionOffer>,
}

/// A refused request: the status, extra headers and a short body to send back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// True when the request asks for a WebSocket upgrade at all (`Upgrade: websocket`);
/// a request that does not is plain HTTP, for the server's HTTP fallback.
pub fn is_upgrade_request(head: &RequestHead) -> bool {
    let _ = head;
    todo!()
}

/// Validates an upgrade request (§4.2.1) against `policy` and negotiates (§4.2.2).
/// A wrong `Sec-WebSocket-Version` gets 426 with `Sec-WebSocket-Version: 13` (§4.4);
/// a refused origin 403; anything else malformed 400.
pub fn validate(head: &RequestHead, policy: &HandshakePolicy) -> Result<UpgradeRequest, Rejection> {
    let _ = (head, policy);
    todo!()
}

/// The `101 Switching Protocols` response (§4.2.2 step 5).
pub fn render_accept(
    accept: &str,
    subprotocol: Option<&str>,
    extra_headers: &[(String, String)],
) -> Vec<u8> {
    let _ = (accept, subprotocol, extra_headers);
    todo!()
}

/// A complete HTTP/1.1 response with `Content-Length` and `Connection: close`.
pub fn render_response(
    status: u16,
    headers: &[(String, String)],
    content_type: &str,
    body: &[u8],
) -> Vec<u8> {
    let _ = (status, headers, content_type, body);
    todo!()
}

/// The response for a rejection (text/plain body).
pub fn render_rejection(rejection: &Rejection) -> Vec<u8> {
    render_response(
        rejection.status,
        &rejection.headers,
        "text/plain; charset=utf-8",
        rejection.body.as_bytes(),
    )
}

/// The standard reason phrase for the statuses this server sends.
pub fn reason_phrase(status: u16) -> &'static str {
    let _ = status;
    todo!()
}
