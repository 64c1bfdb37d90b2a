//! Handler mode's direct lane: the whole small messages at the start of a read go from
//! the bytes just read to the handler. The general way (`input.rs`, then
//! `hand_over.rs`) takes a message buffer per message, moves each message through two
//! vectors of events and gives the buffer back after the handler; here each message is
//! unmasked into a buffer the reactor keeps for the next read, under one lock of the
//! connection per batch, and handed over at once.
//!
//! The protocol decides what the lane may take (`ServerConnection::small_messages`:
//! an open plain connection between messages, a whole unfragmented data frame of at
//! most 125 bytes within the limits, valid text). Anything else (a partial frame, a
//! control frame, a fragment, a larger or compressed message, text that is not UTF-8,
//! TLS) goes the general way, from the first byte the lane did not take, so the order
//! of a connection's events holds.

use std::sync::Arc;

use crate::engine::conn::ConnShared;
use crate::engine::event::{ConnId, Event, EventKind};
use crate::engine::handler::{self, EventHandler};
use crate::engine::shared::EngineShared;
use crate::protocol::MessageKind;

/// Messages taken under one lock of the connection before they are handed over.
const BATCH: usize = 32;

/// Hands the whole small messages at the start of `data` (bytes just read from
/// connection `conn`) to `handler`, in one hand-over, with `events` as the pool of
/// message events and `gather` lent to the replies for their gathered chunk. Returns
/// the bytes they took (0 when the lane does not apply). The replies to `conn` are
/// left corked: the caller writes them under the lock it takes next anyway
/// (`ConnState::write_corked`), which saves a lock of the connection per read. The
/// caller calls this only while no events of the turn wait for their own hand-over
/// (they go first).
pub(super) fn hand_over(
    engine: &Arc<EngineShared>,
    reactor: usize,
    handler: &EventHandler,
    events: &mut Vec<Event>,
    gather: &mut Option<Vec<u8>>,
    conn: &ConnShared,
    data: &[u8],
) -> usize {
    let (mut count, mut taken) = take_batch(events, conn, data, 0);
    if count == 0 {
        return 0;
    }
    let (id, tag) = (conn.id, conn.tag());
    let handed = handler::hand_over(engine, reactor, Some(conn), false, gather, |replies| {
        let mut handed = 0;
        loop {
            for event in &mut events[..count] {
                event.conn = id;
                event.tag = tag;
            }
            handler::call_run(handler, &events[..count], replies);
            handed += count as u64;
            if count < BATCH {
                return handed;
            }
            (count, taken) = take_batch(events, conn, data, taken);
            if count == 0 {
                return handed;
            }
        }
    });
    engine.reactors[reactor].tally.add_messages_in(handed);
    taken
}

/// Takes up to [`BATCH`] whole small messages from `data[taken..]` into `events` (the
/// pool, grown as needed) under one lock of `conn`: how many, and where `data` is
/// taken up to now.
fn take_batch(
    events: &mut Vec<Event>,
    conn: &ConnShared,
    data: &[u8],
    mut taken: usize,
) -> (usize, usize) {
    let mut st = conn.state.lock();
    let Some(lane) = st.small_messages() else {
        return (0, taken);
    };
    let mut count = 0;
    while count < BATCH && taken < data.len() {
        if count == events.len() {
            events.push(message_event());
        }
        let EventKind::Message { kind, data: into } = &mut events[count].kind else {
            unreachable!("the lane's events are messages");
        };
        let Some((message_kind, len)) = lane.next(&data[taken..], into) else {
            break;
        };
        *kind = message_kind;
        taken += len;
        count += 1;
    }
    (count, taken)
}

/// An event of the lane's pool: its buffer is kept from read to read.
fn message_event() -> Event {
    Event {
        conn: ConnId(0),
        tag: 0,
        kind: EventKind::Message {
            kind: MessageKind::Binary,
            data: Vec::new(),
        },
    }
}
