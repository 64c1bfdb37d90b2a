//! Reading sockets, and delivering what the protocol makes of the bytes: events to
//! the application, answers to the socket, HTTP requests to the static-file fallback.

use super::{direct, Reactor, READS_PER_TURN, SCRATCH_SIZE};
use crate::engine::conn::ConnState;
use crate::engine::event::{ConnId, Event, EventKind, RequestInfo};
use crate::engine::event_queue::Entry;
use crate::engine::recycle;
use crate::engine::static_files;
use crate::engine::stats::Counters;
use crate::engine::sys;
use crate::engine::tls::{Received, TlsFailure};
use crate::protocol::close::CloseCode;
use crate::protocol::reader::MessageBuffers;
use crate::protocol::server_connection::{ConnEvent, Outcome};
use crate::protocol::MessageKind;

/// The smallest client frame: two header bytes and the mask key (§5.2).
const MIN_FRAME: usize = 6;

impl Reactor {
    pub(super) fn on_io(&mut self, id: u64, flags: u32) {
        let writable = flags & sys::EV_OUT != 0;
        if flags & (sys::EV_IN | sys::EV_RDHUP | sys::EV_HUP | sys::EV_ERR) != 0 {
            let hangup = flags & (sys::EV_RDHUP | sys::EV_HUP | sys::EV_ERR) != 0;
            self.read_turn(id, !hangup, writable);
        } else if writable {
            self.on_writable(id);
        }
    }

    /// The socket reported writability. Edge triggering reports it with every new edge
    /// (input too). Only a socket that blocked needs the reactor to write: frames
    /// queued on a writable socket belong to a corking thread, which writes them
    /// itself when it uncorks.
    fn on_writable(&mut self, id: u64) {
        let now = self.now_ms;
        let Some(local) = self.conns.get_mut(&id) else {
            return;
        };
        let mut st = local.shared.state.lock();
        let wrote = write_if_blocked(&mut st, &mut local.last_write_ms, now, &self.engine.stats);
        drop(st);
        if wrote {
            self.after_write(id);
        }
    }

    /// How many bytes connection `id` may be read now (0: not at all; records why).
    /// Every event takes at least one frame of [`MIN_FRAME`] bytes, so reading no more
    /// than `room * MIN_FRAME` bytes cannot produce more events than there is room for.
    /// `writable`: the socket reported writability with its input (as it does whenever
    /// it can take bytes): a queue that blocked is written first, under the same lock
    /// of the connection instead of one of its own.
    fn may_read(&mut self, id: u64, writable: bool) -> usize {
        let now = self.now_ms;
        let engine = &self.engine;
        let Some(local) = self.conns.get_mut(&id) else {
            return 0;
        };
        if local.info.is_some() {
            // The app has accepted on its own thread, but this reactor has not yet
            // published the Open event: a frame read now would overtake it.
            // `on_accepted` reads the connection after the Open event.
            if writable {
                self.on_writable(id);
            }
            return 0;
        }
        let (wrote, refused) = {
            let mut st = local.shared.state.lock();
            let wrote =
                writable && write_if_blocked(&mut st, &mut local.last_write_ms, now, &engine.stats);
            // A peer that does not read its replies is not read either, so it cannot
            // make us buffer more than the soft limit on its behalf.
            let refused = if !st.ws.wants_input() {
                true
            } else if st.queue.bytes() > engine.config.send_queue_soft_limit {
                local.paused_for_output = true;
                true
            } else {
                false
            };
            (wrote, refused)
        };
        if wrote {
            self.after_write(id);
            if !self.conns.contains_key(&id) {
                return 0; // the write found the connection broken
            }
        }
        if refused {
            return 0;
        }
        let engine = &self.engine;
        let mut room = engine.events.room(self.entries.len());
        if room == 0 {
            // Announce the pause before looking again, so a poller that drains the
            // queue in between sees it and wakes us: no lost wake-up.
            engine.events.note_readers_paused();
            room = engine.events.room(self.entries.len());
            if room == 0 {
                Counters::add(&engine.stats.read_pauses, 1);
                self.paused.push(id);
                return 0;
            }
        }
        room.saturating_mul(MIN_FRAME).min(SCRATCH_SIZE)
    }

    /// Reads a connection for one turn (`writable`: see `may_read`, which takes it for
    /// the first read). `trust_short_read`: a read shorter than the buffer means the
    /// socket is drained and the next arrival re-arms the edge. That holds for data,
    /// but not when the peer's FIN came with this edge (no new edge will announce it),
    /// so the caller passes false when the event carried a hang-up.
    pub(super) fn read_turn(&mut self, id: u64, trust_short_read: bool, writable: bool) {
        for read in 0..READS_PER_TURN {
            let allowed = self.may_read(id, writable && read == 0);
            if allowed == 0 {
                self.drop_if_flooding_after_finish(id);
                return;
            }
            let Some(local) = self.conns.get(&id) else {
                return;
            };
            match sys::read(local.fd, &mut self.scratch[..allowed]) {
                Ok(0) => {
                    self.on_eof(id);
                    return;
                }
                Ok(n) => {
                    self.tally().add_bytes_in(n as u64);
                    let scratch = std::mem::take(&mut self.scratch);
                    self.process(id, &scratch[..n]);
                    self.scratch = scratch;
                    if n < allowed && trust_short_read {
                        return;
                    }
                }
                Err(e) if sys::would_block(&e) => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.teardown_with(id, |ws| ws.receive_eof("connection reset"));
                    return;
                }
            }
        }
        self.ready.push(id);
    }

    /// A finished connection whose peer keeps sending is not waited for any longer.
    fn drop_if_flooding_after_finish(&mut self, id: u64) {
        let flooding = self.conns.get(&id).is_some_and(|l| {
            let st = l.shared.state.lock();
            !st.ws.wants_input() && st.ws.is_open_or_later()
        });
        if flooding {
            self.teardown_with(id, |ws| {
                ws.outcome_if_dropped(CloseCode::ABNORMAL, "peer kept sending after the close")
            });
        }
    }

    fn on_eof(&mut self, id: u64) {
        self.teardown_with(id, |ws| {
            ws.receive_eof("connection closed without a close frame")
        });
    }

    /// Runs received bytes through the connection's state machine and acts on what it
    /// says. Empty `data` processes input the connection held back.
    pub(super) fn process(&mut self, id: u64, data: &[u8]) {
        let now = self.now_ms;
        let Some(local) = self.conns.get_mut(&id) else {
            return;
        };
        if !data.is_empty() {
            local.last_input_ms = now;
        }
        // Handler mode: the whole small messages the read starts with go to the
        // handler at once (`direct.rs`), unless events of this turn wait for their own
        // hand-over; the general way below takes the rest. Their replies are written
        // under the lock below. When they were all of it, nothing is held back (the
        // lane takes nothing while something is) and there is nothing left to
        // receive: the general way then only settles the connection's output and timer.
        let lane_taken = match &self.engine.config.event_handler {
            Some(handler) if !data.is_empty() && self.entries.is_empty() => direct::hand_over(
                &self.engine,
                self.index,
                handler,
                &mut self.direct,
                &mut self.gather,
                &local.shared,
                data,
            ),
            _ => 0,
        };
        let (data, all_taken) = (
            &data[lane_taken..],
            lane_taken > 0 && lane_taken == data.len(),
        );
        let tag = local.shared.tag();
        let mut events = std::mem::take(&mut self.conn_events);
        let paused_for_output = local.paused_for_output;
        let (received, settled, timer) = {
            let stats = &self.engine.stats;
            let mut st = local.shared.state.lock();
            if lane_taken > 0 {
                // The written replies' buffer comes back for the next read's.
                st.write_corked(stats, Some(&mut self.gather));
            }
            // Handler mode: a message's buffer comes back to this reactor as soon as the
            // handler is done with it; otherwise it leaves with the event.
            let buffers: &mut dyn MessageBuffers = if self.engine.config.event_handler.is_some() {
                &mut self.spares
            } else {
                &mut recycle::Spares
            };
            let received = if all_taken {
                Ok(Received::More)
            } else {
                st.receive(data, &mut events, buffers)
            };
            st.pump(stats);
            (received, st.is_settled(), st.ws.timer())
        };
        // Messages, the common event, take the short way: no lookup of the connection
        // per message, and one count per read.
        let mut others = false;
        if !events.is_empty() {
            let mut messages = 0;
            for event in events.drain(..) {
                match event {
                    ConnEvent::Message { kind, payload } => {
                        messages += 1;
                        self.deliver_message(ConnId(id), tag, kind, payload);
                    }
                    other => {
                        others = true;
                        self.on_conn_event(id, other);
                    }
                }
            }
            if messages > 0 {
                self.tally().add_messages_in(messages);
            }
        }
        self.conn_events = events;
        match received {
            // Only messages, and nothing `after_write` acts on (seen under the lock
            // above; a message changes nothing there, and the lane's replies written
            // there leave it settled or not): just the timer, without locking the
            // connection again.
            Ok(Received::More) if settled && !others && !paused_for_output => {
                self.arm_with(id, timer)
            }
            Ok(Received::More) => self.after_write(id),
            Ok(Received::PeerClosed) => self.on_eof(id),
            Err(failure) => self.on_tls_failure(id, failure),
        }
    }

    /// TLS failed (its alert is written if the socket took it): counted, and the
    /// connection dropped (an opened one reports 1006 with the reason).
    #[cold]
    fn on_tls_failure(&mut self, id: u64, TlsFailure(why): TlsFailure) {
        Counters::add(&self.engine.stats.tls_errors, 1);
        self.teardown_with(id, |_| Outcome::lost(&format!("TLS: {why}")));
    }

    fn on_conn_event(&mut self, id: u64, event: ConnEvent) {
        let engine = self.engine.clone();
        let stats = &engine.stats;
        let Some(local) = self.conns.get_mut(&id) else {
            return;
        };
        let conn = ConnId(id);
        let tag = local.shared.tag();
        match event {
            ConnEvent::Message { kind, payload } => {
                engine.reactors[self.index].tally.add_messages_in(1);
                self.deliver_message(conn, tag, kind, payload);
            }
            ConnEvent::Ping(payload) if engine.config.deliver_ping_pong => {
                self.entries.push(Entry::Event(Event {
                    conn,
                    tag,
                    kind: EventKind::Ping(payload),
                }))
            }
            ConnEvent::Pong(payload) if engine.config.deliver_ping_pong => {
                self.entries.push(Entry::Event(Event {
                    conn,
                    tag,
                    kind: EventKind::Pong(payload),
                }))
            }
            ConnEvent::Ping(_) | ConnEvent::Pong(_) => {}
            ConnEvent::ProtocolError(e) => {
                if e.close_code() == CloseCode::MESSAGE_TOO_BIG.0 {
                    Counters::add(&stats.too_big, 1);
                } else {
                    Counters::add(&stats.protocol_errors, 1);
                }
            }
            ConnEvent::Barrier => {
                if engine.config.failure_grace.is_zero() {
                    local.shared.state.lock().ws.release_barrier();
                } else {
                    self.entries.push(Entry::Barrier {
                        conn,
                        reactor: self.index,
                    });
                }
                let mut st = local.shared.state.lock();
                st.pump(stats);
            }
            ConnEvent::BadRequest { .. } => {
                Counters::add(&stats.rejected_bad_handshake, 1);
            }
            ConnEvent::HttpRequest(head) => {
                Counters::add(&stats.http_requests, 1);
                let response = static_files::respond(engine.config.static_dir.as_deref(), &head);
                let mut st = local.shared.state.lock();
                st.ws.respond(&response);
                st.pump(stats);
            }
            ConnEvent::UpgradeRequest(request) => {
                let (head, upgrade) = *request;
                let at_capacity = stats.connections.load(std::sync::atomic::Ordering::Relaxed)
                    as usize
                    >= engine.config.max_connections;
                if at_capacity {
                    Counters::add(&stats.rejected_over_capacity, 1);
                    let mut st = local.shared.state.lock();
                    let _ = st.ws.reject(503, b"server is at its connection limit\n");
                    st.pump(stats);
                    return;
                }
                Counters::add(&stats.connections, 1);
                local.counted = true;
                local.announced = true;
                let info = Box::new(RequestInfo {
                    target: head.target,
                    // Asked of the socket now rather than kept from the accept: every
                    // idle connection is 32 bytes smaller.
                    remote: sys::peer_addr(local.fd),
                    subprotocol: upgrade.subprotocol.clone(),
                    offered_subprotocols: upgrade.offered_subprotocols.clone(),
                    headers: head.headers,
                });
                if engine.config.manual_accept {
                    local.info = Some(info.clone());
                    self.entries.push(Entry::Event(Event {
                        conn,
                        tag,
                        kind: EventKind::UpgradeRequest(info),
                    }));
                    return;
                }
                let chosen = {
                    let mut st = local.shared.state.lock();
                    let chosen = st.ws.accept(None, &[]).ok().flatten();
                    st.pump(stats);
                    chosen
                };
                self.open(id, info, chosen);
            }
        }
    }

    fn deliver_message(&mut self, conn: ConnId, tag: u64, kind: MessageKind, payload: Vec<u8>) {
        // The payload was read into a recycled buffer (`recycle::Spares`), which comes
        // back when the application releases the event.
        self.entries.push(Entry::Event(Event {
            conn,
            tag,
            kind: EventKind::Message {
                kind,
                data: payload,
            },
        }));
    }

    /// The 101 is out: tell the app, then process what the client sent after its head.
    fn open(&mut self, id: u64, mut info: Box<RequestInfo>, subprotocol: Option<String>) {
        let Some(local) = self.conns.get_mut(&id) else {
            return;
        };
        Counters::add(&self.engine.stats.handshakes, 1);
        // The Open event reports what the 101 said, which may be the app's choice.
        info.subprotocol = subprotocol;
        self.entries.push(Entry::Event(Event {
            conn: ConnId(id),
            tag: local.shared.tag(),
            kind: EventKind::Open(info),
        }));
        self.process(id, &[]);
    }

    pub(super) fn on_accepted(&mut self, id: u64, subprotocol: Option<String>) {
        let Some(local) = self.conns.get_mut(&id) else {
            return;
        };
        let info = local.info.take().unwrap_or_default();
        self.open(id, info, subprotocol);
        // Input that arrived while we were not reading is still in the kernel.
        self.ready.push(id);
    }

    pub(super) fn release_barrier(&mut self, id: u64) {
        let Some(local) = self.conns.get(&id) else {
            return;
        };
        {
            let mut st = local.shared.state.lock();
            st.ws.release_barrier();
            st.pump(&self.engine.stats);
        }
        self.after_write(id);
    }

    /// An application call (close, reject, a refused send under the close policy)
    /// changed the connection: act on its new state.
    pub(super) fn after_app_call(&mut self, id: u64) {
        if let Some(local) = self.conns.get(&id) {
            local.shared.state.lock().pump(&self.engine.stats);
        }
        self.after_write(id);
    }
}

/// Writes the queue of a connection whose socket blocked and now reported writability
/// (`st` is its state, locked); returns whether it did, so that the caller acts on the
/// write (`after_write`).
fn write_if_blocked(
    st: &mut ConnState,
    last_write_ms: &mut u64,
    now: u64,
    stats: &Counters,
) -> bool {
    if !st.blocked {
        return false;
    }
    st.blocked = false;
    if st.flush(stats) > 0 {
        *last_write_ms = now;
    }
    true
}
