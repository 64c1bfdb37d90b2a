//! Connection timers: the protocol names the deadline it waits on; this file turns it
//! into a time from the configuration, keeps one heap entry per connection that has
//! one, and fires it.

use std::time::Duration;

use super::{Local, Reactor};
use crate::engine::config::Config;
use crate::engine::stats::Counters;
use crate::engine::timers::TimerHeap;
use crate::protocol::server_connection::{Keepalive, Timer, TimerAction};

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// When `local`'s timer is due, and (for keepalive) which one comes first.
fn deadline(config: &Config, local: &Local) -> Option<(u64, Keepalive)> {
    let timer = local.timer?;
    let since = local.timer_since;
    let after = |d: Duration| Some((since + ms(d), Keepalive::Ping));
    match timer {
        Timer::Handshake => config.handshake_timeout.and_then(after),
        Timer::PongDue => after(config.pong_timeout),
        Timer::FailureGrace => after(config.failure_grace),
        // Our last bytes wait behind queued data: a live reader, however slow, keeps
        // it moving; one that stops for `close_timeout` is given up on.
        Timer::CloseFlush => Some((
            since.max(local.last_write_ms) + ms(config.close_timeout),
            Keepalive::Ping,
        )),
        Timer::CloseAck | Timer::PeerEof => after(config.close_timeout),
        Timer::Keepalive => {
            let ping = config
                .ping_interval
                .map(|d| (local.last_input_ms + ms(d), Keepalive::Ping));
            let idle = config
                .idle_timeout
                .map(|d| (local.last_input_ms + ms(d), Keepalive::Idle));
            match (ping, idle) {
                (Some(p), Some(i)) => Some(if i.0 <= p.0 { i } else { p }),
                (p, i) => p.or(i),
            }
        }
    }
}

impl Reactor {
    /// Notes the timer the protocol now waits on (restarting its clock if it changed)
    /// and makes sure the heap will look at this connection by its deadline.
    pub(super) fn arm(&mut self, id: u64) {
        let Some(local) = self.conns.get(&id) else {
            return;
        };
        let current = local.shared.state.lock().ws.timer();
        self.arm_with(id, current);
    }

    /// [`arm`](Self::arm) with the timer the protocol waits on already read.
    pub(super) fn arm_with(&mut self, id: u64, current: Option<Timer>) {
        let now = self.now_ms;
        let Some(local) = self.conns.get_mut(&id) else {
            return;
        };
        match (local.timer, current) {
            // The same timer: its deadline has only moved later since it was armed (it
            // runs from the timer's start, the last input or the last write), so the
            // entry in the heap is early enough, and re-arms when it fires. Every read
            // comes here: this skips working the deadline out again.
            (Some(was), Some(kind)) if was == kind && local.armed.is_set() => return,
            (Some(was), Some(kind)) if was == kind => {}
            (_, Some(kind)) => {
                local.timer = Some(kind);
                local.timer_since = now;
            }
            (_, None) => local.timer = None,
        }
        if let Some((at, _)) = deadline(&self.engine.config, local) {
            self.timers.arm(&mut local.armed, id, at);
        }
    }

    pub(super) fn fire_due_timers(&mut self) {
        let now = self.now_ms;
        while let Some(entry) = self.timers.pop_due(now) {
            self.due.push(entry);
        }
        let due = std::mem::take(&mut self.due);
        for &(at, id) in &due {
            let Some(local) = self.conns.get_mut(&id) else {
                continue; // the connection is gone: a stale entry
            };
            if TimerHeap::claim(&mut local.armed, at) {
                self.check_timer(id, now);
            }
        }
        self.due = due;
        self.due.clear();
    }

    fn check_timer(&mut self, id: u64, now: u64) {
        let engine = self.engine.clone();
        let Some(local) = self.conns.get_mut(&id) else {
            return;
        };
        let Some((at, keepalive)) = deadline(&engine.config, local) else {
            return;
        };
        if at > now {
            // Input moved the keepalive deadline since this entry was made.
            self.timers.arm(&mut local.armed, id, at);
            return;
        }
        let Some(timer) = local.timer else {
            return;
        };
        let action = {
            let mut st = local.shared.state.lock();
            let action = st.ws.on_timer(timer, keepalive);
            st.pump(&engine.stats);
            action
        };
        let stats = &engine.stats;
        match timer {
            Timer::Handshake => Counters::add(&stats.handshake_timeouts, 1),
            Timer::PongDue => Counters::add(&stats.ping_timeouts, 1),
            Timer::Keepalive if keepalive == Keepalive::Idle => {
                Counters::add(&stats.idle_timeouts, 1)
            }
            _ => {}
        }
        match action {
            TimerAction::Continue => self.after_write(id),
            TimerAction::Drop(outcome) => self.teardown_with(id, |_| outcome),
        }
    }
}
