//! The client side of the wire: the upgrade request and its answer, masked frames out,
//! unmasked frames in, and the payloads whose every byte the echo must reproduce.

use base64::Engine as _;
use sha1::{Digest, Sha1};

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// A small, fast PRNG (xorshift64*): masking keys and payload bytes need to vary, not
/// to be secret.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // Zero is xorshift's fixed point; splitmix the seed so nearby seeds diverge.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Appends one final, masked client frame (RFC 6455 §5.2, §5.3).
pub fn push_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], key: [u8; 4]) {
    out.push(0x80 | opcode);
    let n = payload.len();
    if n < 126 {
        out.push(0x80 | n as u8);
    } else if n <= u16::MAX as usize {
        out.push(0x80 | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(&key);
    let start = out.len();
    out.extend_from_slice(payload);
    for (i, b) in out[start..].iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

pub struct FrameHead {
    pub fin: bool,
    pub opcode: u8,
    pub header_len: usize,
    pub payload_len: usize,
}

/// Decodes the header of a server frame at the start of `buf`. `Ok(None)`: more bytes
/// needed. Checks what a client must check (§5.1, §5.2, §5.5): no mask, no RSV bits
/// without an extension, known opcodes, short unfragmented control frames.
pub fn decode_head(buf: &[u8]) -> Result<Option<FrameHead>, String> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    if b0 & 0x70 != 0 {
        return Err(format!(
            "server frame with RSV bits set (first byte {b0:#04x})"
        ));
    }
    if b1 & 0x80 != 0 {
        return Err("server frame is masked (RFC 6455 §5.1 forbids it)".into());
    }
    if !matches!(
        opcode,
        OP_CONT | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
    ) {
        return Err(format!("server frame with reserved opcode {opcode:#x}"));
    }
    let (header_len, payload_len) = match b1 & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (4, u16::from_be_bytes([buf[2], buf[3]]) as usize)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let n = u64::from_be_bytes(buf[2..10].try_into().unwrap());
            (
                10,
                usize::try_from(n).map_err(|_| "frame length overflows usize".to_string())?,
            )
        }
        n => (2, n as usize),
    };
    if opcode >= OP_CLOSE && (!fin || payload_len > 125) {
        return Err(format!(
            "invalid control frame (opcode {opcode:#x}, fin {fin}, {payload_len} bytes)"
        ));
    }
    Ok(Some(FrameHead {
        fin,
        opcode,
        header_len,
        payload_len,
    }))
}

/// A fresh Sec-WebSocket-Key and the Sec-WebSocket-Accept the server must answer with.
pub fn handshake_key(rng: &mut Rng) -> (String, String) {
    let mut nonce = [0u8; 16];
    nonce[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
    nonce[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
    let key = base64::engine::general_purpose::STANDARD.encode(nonce);
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let accept = base64::engine::general_purpose::STANDARD.encode(sha.finalize());
    (key, accept)
}

pub fn upgrade_request(host: &str, key: &str) -> Vec<u8> {
    format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// Checks a complete response head (up to and including the blank line) against
/// RFC 6455 §4.1: status 101, `Upgrade: websocket`, `Connection: Upgrade` and the
/// expected accept value.
pub fn check_upgrade_response(head: &[u8], accept: &str) -> Result<(), String> {
    let text =
        std::str::from_utf8(head).map_err(|_| "handshake answer is not UTF-8".to_string())?;
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or("");
    if !status.starts_with("HTTP/1.1 101") {
        return Err(format!("handshake refused: {status:?}"));
    }
    let (mut upgrade, mut connection, mut accepted) = (false, false, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "upgrade" => upgrade = value.eq_ignore_ascii_case("websocket"),
            "connection" => {
                connection = value
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            }
            "sec-websocket-accept" => accepted = value == accept,
            _ => {}
        }
    }
    match (upgrade, connection, accepted) {
        (true, true, true) => Ok(()),
        _ => Err(format!(
            "bad 101 answer (upgrade {upgrade}, connection {connection}, accept {accepted})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_value_matches_rfc_example() {
        // RFC 6455 §1.3's worked example.
        let mut sha = Sha1::new();
        sha.update(b"dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
        let got = base64::engine::general_purpose::STANDARD.encode(sha.finalize());
        assert_eq!(got, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn masked_frame_decodes_back_to_payload() {
        for n in [0usize, 5, 125, 126, 65_535, 65_536] {
            let payload: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let mut f = Vec::new();
            push_frame(&mut f, OP_BINARY, &payload, [9, 8, 7, 6]);
            // Strip the mask bit and unmask, as a server would, then decode as a client.
            f[1] &= 0x7F;
            let h = decode_head(&f).unwrap().unwrap();
            let key: [u8; 4] = f[h.header_len..h.header_len + 4].try_into().unwrap();
            let body: Vec<u8> = f[h.header_len + 4..]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[i & 3])
                .collect();
            assert_eq!((h.fin, h.opcode, h.payload_len), (true, OP_BINARY, n));
            assert_eq!(body, payload);
        }
    }

    #[test]
    fn masked_server_frame_is_rejected() {
        assert!(decode_head(&[0x82, 0x81, 0, 0, 0, 0, 0]).is_err());
    }
}
