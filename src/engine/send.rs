//! One message sent to one connection: admitted, encoded and written or corked. What
//! `Engine::send` does, and what a handler's [`Replies`](super::handler::Replies)
//! does without going through the server first.

use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::MutexGuard;

use super::conn::{ConnShared, ConnState};
use super::cork;
use super::error::Error;
use super::event::ConnId;
use super::shared::{Command, EngineShared, Refusal};
use super::stats::Counters;
use super::SendStatus;
use crate::protocol::MessageKind;

/// Sends one message to `id` (see `Engine::send`).
pub(crate) fn send(
    engine: &Arc<EngineShared>,
    id: ConnId,
    kind: MessageKind,
    payload: &[u8],
) -> Result<SendStatus, Error> {
    if engine.stopping.load(Ordering::Acquire) {
        return Err(Error::Stopped);
    }
    let corking = cork::is_corked(engine);
    let conn = engine.registry.get(id).ok_or(Error::NotFound)?;
    let (status, newly_corked) = send_to(engine, &conn, kind, payload, corking, false, &mut None)?;
    if newly_corked {
        cork::remember(engine, conn);
    }
    Counters::add(&engine.stats.messages_out, 1);
    Ok(status)
}

/// A handler's reply to the connection whose events it handles, through the
/// hand-over's [`Replies`](super::handler::Replies): corked
/// (the hand-over writes that connection when it ends, uncorked or not) and counted
/// in `answered`, which the hand-over adds to `messages_out` once. `gather`: the
/// hand-over's spare buffer for a new gathered chunk, if it has one.
pub(crate) fn send_answering(
    engine: &EngineShared,
    conn: &ConnShared,
    answered: &Cell<u64>,
    gather: &Cell<Option<Vec<u8>>>,
    kind: MessageKind,
    payload: &[u8],
) -> Result<SendStatus, Error> {
    if engine.stopping.load(Ordering::Acquire) {
        return Err(Error::Stopped);
    }
    let mut spare = gather.take();
    let sent = send_to(engine, conn, kind, payload, true, true, &mut spare);
    gather.set(spare);
    let (status, _) = sent?;
    answered.set(answered.get() + 1);
    Ok(status)
}

/// Admits, encodes and writes (or corks) one message to `conn`. `answering`: it is a
/// handler's reply to the connection it answers (see `ConnState::send_message`);
/// `spare`: a buffer for a new gathered chunk, if the caller has one.
/// Returns the status to report and whether this send corked the connection (the
/// caller remembers it for the uncork). Inlined: a handler's reply (`send_answering`)
/// gets its own copy, with the branches for its constant flags folded away.
#[inline(always)]
fn send_to(
    engine: &EngineShared,
    conn: &ConnShared,
    kind: MessageKind,
    payload: &[u8],
    corking: bool,
    answering: bool,
    spare: &mut Option<Vec<u8>>,
) -> Result<(SendStatus, bool), Error> {
    let mut st = conn.state.lock();
    if !st.ws.is_open_or_later() {
        return Err(Error::InvalidState("the connection is not open yet"));
    }
    // The common small reply, with the same admission, without the general encoding.
    if let Some(header) = st.ws.small_plain_header(kind, payload.len()) {
        admit_or_refuse(engine, conn, &mut st, header.len() + payload.len())?;
        let newly_corked =
            st.send_message(&header, payload, corking, answering, spare, &engine.stats)?;
        return Ok((engine.status_after_send(&mut st), newly_corked));
    }
    // Admitted at its uncompressed size: a compressor with context takeover must not
    // see a message that is then refused.
    let wire_len = st
        .ws
        .message_wire_len(payload.len())
        .map_err(|_| Error::Closed)?;
    admit_or_refuse(engine, conn, &mut st, wire_len)?;
    let frame = st
        .ws
        .encode_message(kind, payload)
        .map_err(|_| Error::Closed)?;
    let (head, body) = frame.parts(payload);
    let newly_corked = st.send_message(head, body, corking, answering, spare, &engine.stats)?;
    Ok((engine.status_after_send(&mut st), newly_corked))
}

/// Admits a message of `wire_len` bytes to `conn` (whose state `st` is), or refuses
/// it; a refusal that condemns the connection tells its reactor.
#[inline(always)]
fn admit_or_refuse(
    engine: &EngineShared,
    conn: &ConnShared,
    st: &mut MutexGuard<'_, ConnState>,
    wire_len: usize,
) -> Result<(), Error> {
    if let Err(refusal) = engine.admit(st, wire_len) {
        if refusal == Refusal::Condemned {
            MutexGuard::unlocked(st, || engine.command(conn.reactor, Command::Kick(conn.id)));
        }
        return Err(refusal.error());
    }
    Ok(())
}
