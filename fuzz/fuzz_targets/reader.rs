//! Client frame streams from untrusted bytes, in arbitrary pieces, through the server's
//! sans-I/O connection (RFC 6455 §5, §7, §8.1).
//!
//! Bit 3 of the first input byte picks tiny limits (125-byte frames, 256-byte messages)
//! so that small inputs reach the 1009 paths; otherwise the limits are 64 KiB.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsqueue::protocol::frame::{FrameHeader, OpCode};
use wsqueue::protocol::{Connection, Incoming, Limits, MessageKind, Reader};

#[path = "chunking.rs"]
mod chunking;

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

    // Delivered in pieces, keeping back what the connection did not consume.
    let mut conn = Connection::new(limits);
    let mut events = Vec::new();
    let mut out = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    for chunk in chunking::chunks(&sizes, stream) {
        pending.extend_from_slice(chunk);
        let finished_before = finished(&events);
        let events_before = events.len();
        let consumed = conn.receive(&pending, &mut events, &mut out);
        assert!(
            consumed <= pending.len(),
            "consumed {consumed} of {}",
            pending.len()
        );
        if finished_before {
            assert_eq!(consumed, 0, "consumed bytes after Close/Error");
            assert_eq!(events.len(), events_before, "events after Close/Error");
        }
        pending.drain(..consumed);
        if !finished(&events) {
            assert!(
                pending.len() < MAX_HEADER_LEN,
                "kept back {} bytes, more than an incomplete header",
                pending.len()
            );
        }
    }
    check_events(&events, limits);
    check_output(&events, &out);
    if finished(&events) {
        assert!(
            conn.should_close_tcp(),
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
    assert_eq!(pings, pongs, "pongs do not answer the pings");
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
