//! Who owns a subscription's stream: the lease this process holds on it (on the host, or kept
//! elsewhere and told through [`StandDown`] and [`TakeBack`]), standing down when another
//! process asks for it and taking it back when it is free, and the watch that notices another
//! client holding it (see [`Backfill::watch`](crate::Backfill::watch)).

use super::Supervisor;
use crate::backfill::{self, Watched};
use crate::connection::CloseConnection;
use crate::lease::{Lease, LeaseError};
use crate::lifecycle::LifecycleKind;
use crate::status::{Counters, SubscriptionState};
use actix::prelude::*;
use eventsock_core::{Channel, EventKind};
use std::time::{Duration, Instant, SystemTime};

/// A subscription's lease on its stream.
#[derive(Debug)]
pub(super) enum Ownership {
    /// No leases are kept.
    Free,
    /// Held: this process has the stream.
    Held(Lease),
    /// Held by another process, to be taken from it (`--take`).
    Taking,
    /// Asked for, waiting for the holder to let go.
    Waiting,
    /// Another process took it at this time: waiting for it to let go.
    StoodDown(SystemTime),
    /// Stood down at this time when told ([`StandDown`]): waiting to be told to take it back.
    Outside(SystemTime),
}

/// How long a process that takes a stream waits for its holder to let go.
const TAKE_WITHIN: Duration = Duration::from_secs(10);
/// How often a process that stood down looks whether the stream is free again.
const TAKE_BACK_EVERY: Duration = Duration::from_millis(500);
/// How often held streams are checked for another process that asks for them.
pub(super) const YIELD_EVERY: Duration = Duration::from_millis(250);

impl Supervisor {
    /// Whether subscription `i` may connect now, as far as its lease goes; when it may not,
    /// what gets the lease is under way (a take, or a look later).
    pub(super) fn owned(&mut self, i: usize, ctx: &mut Context<Self>) -> bool {
        let Some(leases) = self.leases.clone() else {
            return true;
        };
        let s = &mut self.subs[i];
        let (endpoint, instance, event) = (
            s.source.endpoint().to_string(),
            s.source.instance().to_owned(),
            s.event.to_string(),
        );
        match s.owner {
            Ownership::Free | Ownership::Held(_) => true,
            Ownership::Waiting | Ownership::Outside(_) => false,
            Ownership::Taking => {
                s.owner = Ownership::Waiting;
                s.state = SubscriptionState::Connecting;
                tracing::info!(%instance, %event, "taking the stream from the eventsock process that holds it");
                let take =
                    async move { leases.take(&endpoint, &instance, &event, TAKE_WITHIN).await };
                ctx.spawn(
                    take.into_actor(self)
                        .map(move |taken, act, ctx| match taken {
                            Ok(lease) => {
                                act.subs[i].owner = Ownership::Held(lease);
                                act.connect(i, ctx);
                            }
                            Err(e) => act.give_up(i, e.to_string(), ctx),
                        }),
                );
                false
            }
            Ownership::StoodDown(_) => {
                // The one that asked goes first; then whoever finds the stream free.
                if leases.asked(&endpoint, &instance, &event).is_none() {
                    match leases.acquire(&endpoint, &instance, &event) {
                        Ok(lease) => {
                            tracing::info!(%instance, %event, "the stream is free again: taking it back");
                            s.owner = Ownership::Held(lease);
                            return true;
                        }
                        Err(LeaseError::Held { .. }) => {}
                        Err(e) => {
                            self.give_up(i, e.to_string(), ctx);
                            return false;
                        }
                    }
                }
                self.connect_later(i, TAKE_BACK_EVERY, false, ctx);
                false
            }
        }
    }

    /// Stands down from every held stream another eventsock process asks for: says so, lets go
    /// of the lease and the socket, and waits for the stream to be free again.
    pub(super) fn yield_taken(&mut self, ctx: &mut Context<Self>) {
        for i in 0..self.subs.len() {
            let s = &mut self.subs[i];
            let Ownership::Held(lease) = &s.owner else {
                continue;
            };
            let Some(by) = lease.asked() else {
                continue;
            };
            let now = SystemTime::now();
            self.stand_down(i, Ownership::StoodDown(now), by.to_string(), ctx);
        }
    }

    /// Another process holds the stream of `i` now (`by`, in words): says so, lets go of the
    /// lease and the socket, and waits as `owner` says, without reconnecting.
    fn stand_down(&mut self, i: usize, owner: Ownership, by: String, ctx: &mut Context<Self>) {
        let s = &mut self.subs[i];
        s.owner = owner;
        s.state = SubscriptionState::StoodDown;
        let kind = LifecycleKind::TakenOver { by };
        tracing::warn!(instance = %s.source.instance(), event = %s.event, "{kind}");
        self.tell(i, kind);
        let s = &mut self.subs[i];
        match &s.conn {
            // Its end (ConnDown) waits for the stream instead of reconnecting.
            Some(conn) => conn.do_send(CloseConnection),
            None => {
                // Not connected (waiting to reconnect): wait for the stream instead.
                if let Some(retry) = s.retry.take() {
                    ctx.cancel_future(retry.handle);
                }
                s.last_heard.get_or_insert(SystemTime::now());
                self.connect(i, ctx);
            }
        }
    }
}

/// The longest wait before taking back a stream that another client keeps taking.
const LONGEST_RETAKE: Duration = Duration::from_secs(600);

impl Supervisor {
    /// Watches every held legacy `messages.upsert` stream once (see [`Backfill::watch`]): one
    /// `findMessages` request each, in tasks of their own, never in the way of live delivery.
    pub(super) fn watch(&mut self, ctx: &mut Context<Self>) {
        let Some(recovery) = self.recovery.clone() else {
            return;
        };
        for sub in 0..self.subs.len() {
            let s = &mut self.subs[sub];
            if s.watching
                || s.state != SubscriptionState::Connected
                || s.channel != Channel::Legacy
                || s.event.kind() != Some(EventKind::MessagesUpsert)
            {
                continue;
            }
            let (Some(up_since), Some(rest)) = (s.up_since, self.rest.get(s.source.instance()))
            else {
                continue;
            };
            s.watching = true;
            let grace = recovery.settings.watch_grace;
            let checked = SystemTime::now().checked_sub(grace).unwrap_or(up_since);
            let (rest, recovery, generation) = (rest.clone(), recovery.clone(), s.generation);
            let instance = s.source.instance().to_owned();
            let task = async move { backfill::watch(&recovery, &rest, &instance, up_since).await };
            ctx.spawn(task.into_actor(self).map(move |found, act, _| {
                let s = &mut act.subs[sub];
                s.watching = false;
                let current = s.generation == generation && s.state == SubscriptionState::Connected;
                match found {
                    Ok(Watched::Lost { missing, since }) if current => {
                        act.displaced(sub, missing, since);
                    }
                    Ok(Watched::Held) if current => s.verified = Some(checked.max(up_since)),
                    Ok(_) => {}
                    Err(e) => {
                        let instance = s.source.instance();
                        tracing::debug!(%instance, "watching the stream: {e}");
                    }
                }
            }));
        }
    }

    /// Another client has the stream of `sub`: says so, and closes the silent connection to
    /// take the stream back, at once the first time and at growing intervals while another
    /// client keeps taking it, recovering from `since` (seconds) on.
    fn displaced(&mut self, sub: usize, missing: u64, since: i64) {
        let now = Instant::now();
        let s = &mut self.subs[sub];
        let (count, last) = &mut s.displacements;
        if last.is_some_and(|t| now.saturating_duration_since(t) > Duration::from_secs(3600)) {
            *count = 0;
        }
        *count += 1;
        *last = Some(now);
        let retake_in = match *count {
            1 => Duration::ZERO,
            n => eventsock_core::Backoff::exponential(Duration::from_secs(30), LONGEST_RETAKE)
                .jitter(0.0)
                .delay(n - 1),
        };
        Counters::bump(&s.counters.displacements);
        let since = std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(since).unwrap_or(0));
        // What was missed may start before the oldest missing message the watch saw (it reads
        // the newest only): recovery starts where the last watch found the stream held.
        let gap_from = s.verified.or(s.up_since).map_or(since, |v| v.min(since));
        s.displaced = Some((gap_from, retake_in));
        s.state = SubscriptionState::Displaced;
        let kind = LifecycleKind::Displaced {
            missing,
            since,
            retake_in,
        };
        tracing::warn!(instance = %s.source.instance(), event = %s.event, "{kind}");
        if let Some(conn) = &s.conn {
            conn.do_send(CloseConnection);
        }
        self.tell(sub, kind);
    }

    /// The connection of `sub` has ended because the stream was let go of (displaced, or
    /// stood down): says so, in `state`, and connects again after `after`; the gap from `since`
    /// is recovered once it is up.
    pub(super) fn let_go(
        &mut self,
        sub: usize,
        (since, state, reason): (SystemTime, SubscriptionState, &str),
        after: Duration,
        ctx: &mut Context<Self>,
    ) {
        let s = &mut self.subs[sub];
        s.last_heard = Some(since);
        s.state = state;
        s.last_error = Some(reason.to_owned());
        let reason = reason.to_owned();
        self.tell(sub, LifecycleKind::Disconnected { code: None, reason });
        self.connect_later(sub, after, false, ctx);
    }
}

/// Another process holds the streams now (a lease kept elsewhere, such as
/// `eventsock_nats::KvLease`): every subscription stands down, its socket closed, and does not
/// reconnect until [`TakeBack`].
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct StandDown {
    /// Who holds the streams, in words.
    pub by: String,
}

impl Handler<StandDown> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: StandDown, ctx: &mut Context<Self>) {
        let now = SystemTime::now();
        for i in 0..self.subs.len() {
            let s = &self.subs[i];
            if matches!(s.owner, Ownership::Outside(_)) || s.state == SubscriptionState::Failed {
                continue;
            }
            self.stand_down(i, Ownership::Outside(now), msg.by.clone(), ctx);
        }
    }
}

/// The streams are this process's again: the subscriptions stood down by [`StandDown`]
/// connect, and the messages sent meanwhile are recovered (with [`Backfill`](crate::Backfill)).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct TakeBack;

impl Handler<TakeBack> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: TakeBack, ctx: &mut Context<Self>) {
        for i in 0..self.subs.len() {
            let Ownership::Outside(since) = self.subs[i].owner else {
                continue;
            };
            // With leases on this host too, the host's lease is taken again first.
            self.subs[i].owner = match self.leases {
                Some(_) => Ownership::StoodDown(since),
                None => Ownership::Free,
            };
            tracing::info!(instance = %self.subs[i].source.instance(), event = %self.subs[i].event, "the stream is this process's again: taking it back");
            self.connect(i, ctx);
        }
    }
}
