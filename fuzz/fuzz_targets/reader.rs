//! Client frame streams from untrusted bytes, in arbitrary pieces, through the server's
//! sans-I/O connection (RFC 6455 §5, §7, §8.1).
//!
//! Bit 3 of the first input byte picks tiny limits (125-byte frames, 256-byte messages)
//! so that small inputs reach the 1009 paths; otherwise the limits are 64 KiB.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsqueue::protocol::frame::{FrameHeader, OpCode};
use wsqueue::protocol::server_connection::Settings;
use wsqueue::protocol::{Incoming, Limits, MessageKind, Reader, ServerConnection};

#[path = "chunking.rs"]
mod chunking;
#[path = "drive.rs"]
mod drive;

const MAX_HEADER_LEN: usize = wsqueue::protocol::frame::MAX_HEADER_LEN;

fn limits(first: u8) -> Limits {
    if first & 8 != 0 {
        Limits {
            max_frame_size: 125,
            max_message_size: 256,
        }
    } else {
        Limits {
            max_frame_size: 64 * 1024,
            max_message_size: 64 * 1024,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(&first) = data.first() else { return };
    let limits = limits(first);
    let (sizes, stream) = chunking::split(data);

    // Delivered in pieces to the connection the engine runs.
    let mut conn = ServerConnection::new_open(Settings {
        limits,
        ..Settings::default()
    });
    let mut events = Vec::new();
    let mut out = Vec::new();
    for chunk in chunking::chunks(&sizes, stream) {
        let finished_before = finished(&events);
        let events_before = events.len();
        drive::drive(&mut conn, chunk, &mut events, &mut out);
        if finished_before {
            assert_eq!(events.len(), events_before, "events after Close/Error");
        }
        if !finished(&events) {
            assert!(
                conn.buffered_input() < MAX_HEADER_LEN,
                "kept back {} bytes, more than an incomplete header",
                conn.buffered_input()
            );
        }
    }
    check_events(&events, limits);
    check_output(&events, &out);
    if finished(&events) {
        assert!(
            conn.wants_half_close(),
            "Close/Error seen but TCP stays open"
        );
    }

    // The same stream in one piece gives the same events: chunking must not matter.
    let mut whole_events = Vec::new();
    let consumed = Reader::new(limits).feed(stream, &mut whole_events);
    assert!(consumed <= stream.len());
    assert_eq!(
        events, whole_events,
        "events depend on how the stream was cut"
    );
});

fn finished(events: &[Incoming]) -> bool {
    matches!(
        events.last(),
        Some(Incoming::Close { .. } | Incoming::Error(_))
    )
}

fn check_events(events: &[Incoming], limits: Limits) {
    for (i, event) in events.iter().enumerate() {
        let last = i + 1 == events.len();
        match event {
            Incoming::Message { kind, payload } => {
                assert!(payload.len() as u64 <= limits.max_message_size);
                if *kind == MessageKind::Text {
                    assert!(
                        std::str::from_utf8(payload).is_ok(),
                        "text message not UTF-8"
                    );
                }
            }
            Incoming::Ping(p) | Incoming::Pong(p) => assert!(p.len() <= 125),
            Incoming::Close { code, reason } => {
                assert!(last, "event after Close");
                if let Some(code) = code {
                    assert!(code.is_valid_on_wire(), "close code {code:?} accepted");
                } else {
                    assert!(reason.is_empty());
                }
                assert!(reason.len() <= 123);
            }
            Incoming::Error(e) => {
                assert!(last, "event after Error");
                assert!(
                    [1002, 1007, 1009].contains(&e.close_code()),
                    "{e:?} maps to {}",
                    e.close_code()
                );
            }
        }
    }
}

/// What the connection wrote: unmasked, RSV-free server frames (§5.1), a pong per ping
/// with its payload (§5.5.2), and a close last when the connection finished (§5.5.1, §7.1.7).
fn check_output(events: &[Incoming], out: &[u8]) {
    let mut frames = Vec::new();
    let mut pos = 0;
    while pos < out.len() {
        let (h, len) = FrameHeader::decode(&out[pos..])
            .expect("server wrote an invalid frame header")
            .expect("server wrote a truncated frame header");
        assert!(h.mask.is_none(), "server frame is masked");
        assert_eq!(h.rsv, 0);
        let start = pos + len;
        let end = start + h.payload_len as usize;
        assert!(end <= out.len(), "server frame payload truncated");
        frames.push((h.opcode, &out[start..end]));
        pos = end;
    }
    let pings: Vec<&[u8]> = events
        .iter()
        .filter_map(|e| match e {
            Incoming::Ping(p) => Some(p.as_slice()),
            _ => None,
        })
        .collect();
    let pongs: Vec<&[u8]> = frames
        .iter()
        .filter(|(op, _)| *op == OpCode::Pong)
        .map(|(_, p)| *p)
        .collect();
    // §5.5.3: pongs answer pings in order, at most one each (a ping that arrives before
    // the previous pong was written replaces it), and the last ping is answered.
    let mut rest = pings.iter();
    for pong in &pongs {
        assert!(rest.any(|p| p == pong), "a pong answers no later ping");
    }
    assert_eq!(pongs.last(), pings.last(), "the last ping is not answered");
    let closes: Vec<&[u8]> = frames
        .iter()
        .filter(|(op, _)| *op == OpCode::Close)
        .map(|(_, p)| *p)
        .collect();
    match events.last() {
        Some(Incoming::Error(e)) => {
            assert_eq!(closes.len(), 1, "failing the connection sends one close");
            let code = closes[0].get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]));
            assert_eq!(code, Some(e.close_code()), "close code for {e:?}");
        }
        Some(Incoming::Close { code, .. }) => {
            assert_eq!(closes.len(), 1, "a received close is answered once");
            let echoed = closes[0].get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]));
            assert_eq!(
                echoed,
                code.map(|c| c.0),
                "close reply does not echo the code"
            );
        }
        _ => assert!(closes.is_empty(), "close sent without Close/Error"),
    }
}
