//! After writes (drain, resumed reading, half-close, aborts), teardown with its close
//! report, and the graceful stop.

use std::time::Instant;

use super::Reactor;
use crate::engine::event::{CloseInfo, ConnId, Event, EventKind};
use crate::engine::event_queue::Entry;
use crate::engine::stats::Counters;
use crate::protocol::close::CloseCode;
use crate::protocol::server_connection::{Outcome, ServerConnection};

impl Reactor {
    /// Acts on the write side's state: tears down broken or aborted connections,
    /// reports `Drain`, resumes reading, half-closes finished connections, and re-arms
    /// the connection's timer for whatever it now waits on.
    pub(super) fn after_write(&mut self, id: u64) {
        let engine = self.engine.clone();
        let Some(local) = self.conns.get_mut(&id) else {
            return;
        };
        let low_water = engine.config.send_queue_low_water;
        let mut st = local.shared.state.lock();
        if st.abort_requested {
            drop(st);
            Counters::add(&engine.stats.slow_consumer_closes, 1);
            self.teardown_with(id, |_| Outcome {
                code: CloseCode::POLICY_VIOLATION.0,
                reason: "slow consumer: send queue over its hard limit".to_string(),
                clean: false,
            });
            return;
        }
        if st.broken {
            drop(st);
            self.teardown_with(id, |ws| ws.receive_eof("write failed"));
            return;
        }
        let buffered = st.queue.bytes();
        if st.drain_wanted && buffered <= low_water && st.ws.can_send() {
            st.drain_wanted = false;
            self.entries.push(Entry::Event(Event {
                conn: ConnId(id),
                tag: local.shared.tag(),
                kind: EventKind::Drain,
            }));
        }
        if local.paused_for_output && buffered <= low_water {
            local.paused_for_output = false;
            self.ready.push(id);
        }
        st.half_close_if_done();
        drop(st);
        self.arm(id);
    }

    /// Closes the socket, forgets the connection and reports its `Close` event, with
    /// the outcome `outcome` computes from the protocol state.
    pub(super) fn teardown_with(
        &mut self,
        id: u64,
        outcome: impl FnOnce(&mut ServerConnection) -> Outcome,
    ) {
        let Some(local) = self.conns.remove(&id) else {
            return;
        };
        let stats = &self.engine.stats;
        let _ = self.epoll.delete(local.fd);
        let (outcome, unsent) = {
            let mut st = local.shared.state.lock();
            let outcome = outcome(&mut st.ws);
            // Nothing is sent after this: the state machine refuses further sends.
            let _ = st.ws.receive_eof("");
            let unsent = st.discard_queue(stats);
            st.close_socket();
            (outcome, unsent)
        };
        self.engine.registry.remove(ConnId(id));
        if local.counted {
            Counters::sub(&stats.connections, 1);
        }
        Counters::add(&stats.unsent_messages, unsent as u64);
        if local.announced {
            self.entries.push(Entry::Event(Event {
                conn: ConnId(id),
                tag: local.shared.tag(),
                kind: EventKind::Close(CloseInfo {
                    code: outcome.code,
                    reason: outcome.reason,
                    clean: outcome.clean,
                    unsent_messages: unsent as u64,
                }),
            }));
        }
    }

    /// Stop accepting (the listeners close once every reactor has let go of them), and
    /// start closing every connection: close 1001 after its queued messages (§7.1.2);
    /// an upgrade awaiting the app's answer gets 503; a handshake in progress is dropped.
    pub(super) fn begin_shutdown(&mut self, deadline: Instant) {
        self.shutdown_deadline = Some(deadline);
        self.watch_listeners(false);
        self.listeners = None;
        self.listeners_paused_until = None;
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for id in ids {
            let Some(local) = self.conns.get_mut(&id) else {
                continue;
            };
            let announced = local.announced;
            let in_handshake = {
                let mut st = local.shared.state.lock();
                if st.ws.is_open_or_later() {
                    let _ = st.ws.close(CloseCode::GOING_AWAY, "server shutting down");
                } else if announced {
                    let _ = st.ws.reject(503, b"server is shutting down\n");
                    // Answered: the peer's EOF may be read again.
                    local.info = None;
                }
                st.pump(&self.engine.stats);
                !st.ws.is_open_or_later() && !announced
            };
            if in_handshake {
                self.teardown_with(id, |_| Outcome::lost("server stopped"));
            } else {
                self.after_write(id);
            }
        }
    }

    /// The stop's deadline passed: drop what is left. A closing handshake that
    /// completed keeps its clean report.
    pub(super) fn drop_all_at_deadline(&mut self) {
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for id in ids {
            self.teardown_with(id, |ws| {
                ws.outcome_if_dropped(CloseCode::GOING_AWAY, "server stopped")
            });
        }
    }
}
