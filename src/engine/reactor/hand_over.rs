//! Handler mode (`Config::event_handler`, see `engine/handler.rs`): the events a
//! reactor produced are handed to the application's function on the reactor's thread
//! instead of published to the event queue.

use super::Reactor;
use crate::engine::event::EventKind;
use crate::engine::event_queue::Entry;
use crate::engine::handler;

impl Reactor {
    /// Hands the events collected so far to the handler, corked: the replies it sends
    /// are written once per connection when it is done. Called where the reactor holds
    /// no connection lock (the handler may call anything). Barriers are released only
    /// after that write, so a close frame they held back follows the replies.
    pub(super) fn hand_over(&mut self) {
        if self.entries.is_empty() {
            return; // the common case after a read that the direct lane took whole
        }
        let Some(handler) = self.engine.config.event_handler.clone() else {
            return;
        };
        let mut barriers = std::mem::take(&mut self.handed_barriers);
        // Releasing a barrier may produce events (a close, a drain): they are handed
        // over in the next round, not left for a turn that may be a second away.
        while !self.entries.is_empty() {
            let mut entries = std::mem::take(&mut self.entries);
            // Usually one connection's events (a hand-over follows each read): its
            // replies then go to it without the registry or the thread's state.
            let answering = entries.iter().find_map(|e| match e {
                Entry::Event(event) => self.conns.get(&event.conn.0).map(|l| &*l.shared),
                Entry::Barrier { .. } => None,
            });
            let spares = &mut self.spares;
            handler::hand_over(
                &self.engine,
                self.index,
                answering,
                true,
                &mut None,
                |replies| {
                    for entry in entries.drain(..) {
                        match entry {
                            Entry::Event(event) => {
                                handler::call(&handler, &event, replies);
                                if let EventKind::Message { data, .. } = event.kind {
                                    spares.give_back(data);
                                }
                            }
                            Entry::Barrier { conn, .. } => barriers.push(conn.0),
                        }
                    }
                },
            );
            for id in barriers.drain(..) {
                self.release_barrier(id);
            }
            if self.entries.is_empty() {
                self.entries = entries; // keeps its allocation
            }
        }
        self.handed_barriers = barriers;
    }
}
