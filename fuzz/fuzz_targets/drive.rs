//! Drives the engine's `ServerConnection` the way the reactor does, for the fuzz
//! targets and the corpus test (`tests/fuzz_corpus.rs` includes this file): one chunk
//! in, its events out as `Incoming`s (a clean close as `Incoming::Close`), barriers
//! passed at once (an application that handles every event immediately), and every
//! byte the connection wants written appended to `out`.

use wsqueue::protocol::{CloseCode, ConnEvent, Incoming, ServerConnection};

pub fn drive(
    conn: &mut ServerConnection,
    chunk: &[u8],
    events: &mut Vec<Incoming>,
    out: &mut Vec<u8>,
) {
    let mut conn_events = Vec::new();
    conn.receive(chunk, &mut conn_events);
    for event in conn_events {
        match event {
            ConnEvent::Message { kind, payload } => {
                events.push(Incoming::Message { kind, payload })
            }
            ConnEvent::Ping(p) => events.push(Incoming::Ping(p)),
            ConnEvent::Pong(p) => events.push(Incoming::Pong(p)),
            ConnEvent::ProtocolError(e) => events.push(Incoming::Error(e)),
            ConnEvent::Barrier => {
                conn.release_barrier();
                let o = conn.outcome_if_dropped(CloseCode::ABNORMAL, "");
                if o.clean {
                    let code = (o.code != CloseCode::NO_STATUS.0).then_some(CloseCode(o.code));
                    events.push(Incoming::Close {
                        code,
                        reason: o.reason,
                    });
                }
            }
            other => panic!("handshake event on an open connection: {other:?}"),
        }
    }
    out.extend(conn.take_output().unwrap_or_default());
    out.extend(conn.take_pong().unwrap_or_default());
    out.extend(conn.take_close_frame().unwrap_or_default());
}
