//! The engine: one task per outbox that schedules the sends (the rate, each chat's interval,
//! pauses and the daily cap), runs them, and settles each message.

use super::lookup::look_up;
use super::message::fnv;
use super::pacing::DAY;
use super::receipt::{bump, Answer, Counters};
use super::retry::{decide, Attempt, Facts, Verdict};
use super::{Action, Command, OutboxError, Outcome, Outgoing, Pacing};
use crate::{Quote, RestClient, RestError, SendText};
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::Value;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

pub(super) struct Job {
    pub(super) message: Outgoing,
    /// Arrival order, over all chats.
    pub(super) seq: u64,
    pub(super) sends: u32,
    pub(super) failures: u32,
    /// The failure that left it in doubt: it is looked up before it may be sent again.
    pub(super) doubt: Option<RestError>,
    /// The last failure that proved nothing was sent.
    pub(super) last: Option<RestError>,
    /// Who waits for it (more than one when the same id was posted again).
    pub(super) answers: Vec<Answer>,
    /// An attempt of it is under way.
    pub(super) in_flight: bool,
    /// The server refused its quote: it goes without.
    pub(super) unquoted: bool,
    /// When it was posted, for the send latency.
    pub(super) posted: Instant,
    /// When it was first sent (the clock of the server's timestamps): where a lookup by its
    /// text starts, on a server that takes no id of the sender's.
    pub(super) first_sent: Option<std::time::SystemTime>,
    pub(super) _permit: OwnedSemaphorePermit,
}

impl Job {
    /// What a job that ends without an outcome (stopped) tells its callers.
    pub(super) fn stopped(&self) -> OutboxError {
        if self.doubt.is_some() {
            OutboxError::StoppedInDoubt
        } else {
            OutboxError::Stopped
        }
    }
}

impl Drop for Job {
    /// A job dropped unanswered (its engine died mid-send): its callers hear so, and whether
    /// it may have been sent.
    fn drop(&mut self) {
        if self.answers.is_empty() {
            return;
        }
        let error = if self.doubt.is_some() || self.in_flight {
            OutboxError::StoppedInDoubt
        } else {
            OutboxError::Stopped
        };
        for answer in self.answers.drain(..) {
            let _ = answer.send(Err(error.clone()));
        }
    }
}

#[derive(Default)]
pub(super) struct Chat {
    pub(super) queue: VecDeque<Job>,
    /// An attempt of its head is in flight.
    pub(super) busy: bool,
    /// In `ready`.
    pub(super) listed: bool,
    /// No attempt before this.
    pub(super) next_at: Option<Instant>,
}

pub(super) struct Done {
    pub(super) chat: Arc<str>,
    pub(super) attempt: Attempt,
}

pub(super) struct Engine {
    pub(super) rest: RestClient,
    /// Who is who: each chat is queued and paced by its identity.
    pub(super) identities: Arc<eventsock_core::Identities>,
    pub(super) pacing: Arc<Pacing>,
    pub(super) counters: Arc<Counters>,
    pub(super) room: Arc<Semaphore>,
    pub(super) chats: HashMap<Arc<str>, Chat>,
    /// Idle chats with messages: (earliest attempt, their head's seq, chat).
    pub(super) ready: BinaryHeap<Reverse<(Instant, u64, Arc<str>)>>,
    /// The token bucket's theoretical arrival time.
    pub(super) tat: Instant,
    pub(super) paused_until: Option<Instant>,
    /// Send times in the last 24 hours, with a daily cap.
    pub(super) day: VecDeque<Instant>,
    /// The daily cap was met (said once).
    pub(super) capped: bool,
    /// A quote was refused and its message sent unquoted (said once).
    pub(super) said_unquoted: bool,
    /// Whether the server keeps the messages it sends (learnt from its answers).
    pub(super) saves: Option<bool>,
    pub(super) running: FuturesUnordered<Pin<Box<dyn Future<Output = Done>>>>,
    pub(super) flushes: Vec<oneshot::Sender<()>>,
    /// Stopped: nothing more is started.
    pub(super) stopping: bool,
    /// The chat of every queued message, by id.
    pub(super) ids: HashMap<String, Arc<str>>,
    /// The ids of the last [`RECENT`] messages sent (`true`) or left in doubt, with a
    /// fingerprint of what they said.
    pub(super) recent: eventsock_core::Recent<(u64, bool)>,
    /// Posts so far, to prune idle chats now and then.
    pub(super) posts: u64,
}

/// How many sent ids an outbox remembers, to never send the same id twice.
pub(super) const RECENT: usize = 10_000;

/// A fingerprint of what a message says (chat, text, quote), to tell another message that
/// reuses an id.
pub(super) fn fingerprint_of(message: &Outgoing) -> u64 {
    let mut seed = String::with_capacity(message.to.len() + message.text.len() + 2);
    let quote = match &message.quote {
        Some(Quote::Row(row)) => row.to_string(),
        Some(Quote::Message(quoted)) => quoted.key_id.clone(),
        None => String::new(),
    };
    for part in [&message.to, &message.text, &quote] {
        seed.push_str(part);
        seed.push('\u{0}');
    }
    fnv(&seed, 0, eventsock_core::FNV_BASIS)
}

/// `at + by`, or as late as can be.
pub(super) fn later(at: Instant, by: Duration) -> Instant {
    at.checked_add(by)
        .unwrap_or_else(|| at + Duration::from_secs(100 * 365 * 24 * 3600))
}

impl Engine {
    pub(super) async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Command>) {
        let mut open = true;
        let mut seq = 0u64;
        loop {
            self.start_due();
            if self.idle() {
                for flush in self.flushes.drain(..) {
                    let _ = flush.send(());
                }
                if !open {
                    break;
                }
            }
            let wake = self.next_wake();
            tokio::select! {
                command = inbox.recv(), if open => match command {
                    None => open = false,
                    Some(Command::Post(mut job)) => {
                        seq += 1;
                        job.seq = seq;
                        self.post(*job);
                    }
                    Some(Command::Flush(tx)) => self.flushes.push(tx),
                    Some(Command::Stop(tx)) => {
                        open = false;
                        self.stopping = true;
                        self.room.close();
                        inbox.close();
                        // Posts already on their way are dropped with the rest.
                        while let Ok(command) = inbox.try_recv() {
                            match command {
                                Command::Post(job) => self.refuse(*job),
                                Command::Flush(tx) => self.flushes.push(tx),
                                Command::Stop(again) => { let _ = again.send(0); }
                            }
                        }
                        let dropped = self.drop_queued();
                        let _ = tx.send(dropped);
                    }
                },
                Some(done) = self.running.next(), if !self.running.is_empty() => self.finish(done),
                () = sleep_until(wake), if wake.is_some() => {}
            }
        }
        self.room.close();
    }

    pub(super) fn idle(&self) -> bool {
        self.running.is_empty() && self.chats.values().all(|c| c.queue.is_empty())
    }

    pub(super) fn post(&mut self, mut job: Job) {
        // The same id again (a redelivery): one send answers both; the same id on another
        // message is refused.
        if let Some(queued) = self
            .ids
            .get(&job.message.id)
            .and_then(|chat| self.chats.get_mut(chat))
            .and_then(|chat| {
                chat.queue
                    .iter_mut()
                    .find(|q| q.message.id == job.message.id)
            })
        {
            // The same message, whoever it was found to be for meanwhile.
            let without_person = |m: &Outgoing| Outgoing {
                person: None,
                ..m.clone()
            };
            if without_person(&queued.message) == without_person(&job.message) {
                queued.answers.append(&mut job.answers);
            } else {
                for answer in job.answers.drain(..) {
                    let _ = answer.send(Err(OutboxError::IdTaken(job.message.id.clone())));
                }
            }
            return;
        }
        // Settled already (and remembered): a sent one is not sent again, one left in doubt is
        // looked up first, and the id on another message is refused.
        if let Some(&(fingerprint, sent)) = self.recent.get(&job.message.id) {
            let outcome = if fingerprint != fingerprint_of(&job.message) {
                Some(Err(OutboxError::IdTaken(job.message.id.clone())))
            } else if sent {
                Some(Ok(Outcome::Found {
                    id: job.message.id.clone(),
                    attempts: 0,
                }))
            } else {
                job.doubt.get_or_insert(RestError::Unavailable(
                    "an earlier attempt with this id was left in doubt".into(),
                ));
                None
            };
            if let Some(outcome) = outcome {
                // Settled before: no receipt of it is followed now.
                self.counters.deliveries.forget(&job.message.id);
                for answer in job.answers.drain(..) {
                    let _ = answer.send(outcome.clone());
                }
                return;
            }
        }
        self.prune_idle();
        bump(&self.counters.queued);
        // One queue per person, whichever of their ids the message is addressed to; but while
        // the person's chat is still busy or pacing under another of their ids (used before
        // the pair was learnt), it stays there, so that their messages keep order and pace.
        let to = job.message.to.as_str();
        let identity = match &job.message.person {
            Some(person) => person.clone(),
            None => self.identities.identity(to).into_owned(),
        };
        let lid = self.identities.lid_of(&identity);
        let now = Instant::now();
        let busy = |c: &Chat| !c.queue.is_empty() || c.busy || c.next_at.is_some_and(|at| at > now);
        let chat: Arc<str> = [Some(to), lid.as_deref()]
            .into_iter()
            .flatten()
            .find(|k| *k != identity && self.chats.get(*k).is_some_and(busy))
            .unwrap_or(&identity)
            .into();
        self.ids.insert(job.message.id.clone(), chat.clone());
        let entry = self.chats.entry(chat.clone()).or_default();
        entry.queue.push_back(job);
        self.list(&chat);
    }

    /// Puts `chat` in `ready` if it is idle and has a message.
    pub(super) fn list(&mut self, chat: &Arc<str>) {
        let Some(entry) = self.chats.get_mut(chat) else {
            return;
        };
        if entry.busy || entry.listed {
            return;
        }
        let Some(head) = entry.queue.front() else {
            // Idle: kept while its interval runs, so a message queued meanwhile still waits.
            if entry.next_at.is_none_or(|at| at <= Instant::now()) {
                self.chats.remove(chat);
            }
            return;
        };
        let at = entry.next_at.unwrap_or_else(Instant::now);
        entry.listed = true;
        self.ready.push(Reverse((at, head.seq, chat.clone())));
    }

    /// When a send may start, as far as the rate, a pause and the daily cap go.
    pub(super) fn gate(&self) -> Instant {
        let burst = self
            .pacing
            .interval()
            .saturating_mul(self.pacing.burst.saturating_sub(1));
        let mut open = self.tat.checked_sub(burst).unwrap_or(self.tat);
        if let Some(p) = self.paused_until {
            open = open.max(p);
        }
        if let Some(cap) = self.pacing.daily_cap {
            if self.day.len() >= cap as usize {
                if let Some(oldest) = self.day.front() {
                    open = open.max(later(*oldest, DAY));
                }
            }
        }
        open
    }

    pub(super) fn next_wake(&self) -> Option<Instant> {
        let Reverse((at, _, chat)) = self.ready.peek()?;
        let lookup = self
            .chats
            .get(chat)
            .and_then(|c| c.queue.front())
            .is_some_and(|j| j.doubt.is_some());
        Some(if lookup { *at } else { (*at).max(self.gate()) })
    }

    /// Starts every attempt that is due.
    pub(super) fn start_due(&mut self) {
        while !self.stopping {
            let now = Instant::now();
            let Some(Reverse((at, _, chat))) = self.ready.peek() else {
                return;
            };
            if *at > now {
                return;
            }
            let chat = chat.clone();
            let lookup = self
                .chats
                .get(&chat)
                .and_then(|c| c.queue.front())
                .is_some_and(|j| j.doubt.is_some());
            if !lookup {
                while self.day.front().is_some_and(|t| later(*t, DAY) <= now) {
                    self.day.pop_front();
                }
                let gate = self.gate();
                if gate > now {
                    self.say_capped(now);
                    return;
                }
            }
            self.ready.pop();
            let Some(entry) = self.chats.get_mut(&chat) else {
                continue;
            };
            entry.listed = false;
            let Some(job) = entry.queue.front_mut() else {
                self.chats.remove(&chat);
                continue;
            };
            entry.busy = true;
            job.in_flight = true;
            let rest = self.rest.clone();
            let id = job.message.id.clone();
            if lookup {
                bump(&self.counters.retried);
                let known = self.saves;
                let (message, since) = (job.message.clone(), job.first_sent);
                self.running.push(Box::pin(async move {
                    let attempt = Attempt::Lookup(look_up(&rest, &message, since, known).await);
                    Done { chat, attempt }
                }));
                continue;
            }
            if job.message.action.is_paced() {
                // Take a token: the next send may start one (jittered) interval later.
                self.tat = later(
                    self.tat.max(now),
                    self.pacing.jittered(self.pacing.interval()),
                );
                if self.pacing.daily_cap.is_some() {
                    self.day.push_back(now);
                }
            }
            job.sends += 1;
            job.first_sent
                .get_or_insert_with(eventsock_core::clock::now);
            if job.sends > 1 {
                bump(&self.counters.retried);
            }
            // Its time to delivery counts from the first send: receipts can come before the
            // server's answer.
            self.counters.deliveries.sent(&job.message.id);
            let call: Pin<Box<dyn Future<Output = Result<Value, RestError>>>> = match job
                .message
                .action
                .clone()
            {
                Action::Text => {
                    let send = SendText {
                        number: job.message.to.clone(),
                        text: job.message.text.clone(),
                        quote: job.message.quote.clone().filter(|_| !job.unquoted),
                        delay: self.pacing.typing.map(|t| {
                            u64::try_from(t.for_text(&job.message.text).as_millis()).unwrap_or(0)
                        }),
                        external_attributes: None,
                        message_id: Some(id),
                    };
                    Box::pin(async move { rest.send(send).await })
                }
                Action::Reaction { key } => {
                    let emoji = job.message.text.clone();
                    Box::pin(async move { rest.send_reaction(&key, &emoji).await })
                }
                Action::Read { key } => Box::pin(async move { rest.mark_as_read(&[key]).await }),
            };
            self.running.push(Box::pin(async move {
                let attempt = Attempt::Send(call.await);
                Done { chat, attempt }
            }));
        }
    }

    pub(super) fn say_capped(&mut self, now: Instant) {
        let Some(cap) = self.pacing.daily_cap else {
            return;
        };
        if self.day.len() < cap as usize {
            self.capped = false;
            return;
        }
        if !self.capped {
            self.capped = true;
            let resumes = self
                .day
                .front()
                .map_or(DAY, |t| later(*t, DAY).saturating_duration_since(now));
            tracing::warn!(
                instance = %eventsock_core::human::escaped(self.rest.instance()),
                "daily cap of {cap} messages reached: the rest stay queued, and sending resumes in {}",
                eventsock_core::human::duration(resumes)
            );
        }
    }

    pub(super) fn finish(&mut self, done: Done) {
        let now = Instant::now();
        let Some(entry) = self.chats.get_mut(&done.chat) else {
            return;
        };
        entry.busy = false;
        let Some(job) = entry.queue.front_mut() else {
            return;
        };
        job.in_flight = false;
        if let Attempt::Lookup(Err(e)) = &done.attempt {
            tracing::debug!(id = %job.message.id, error = %e, "looking a message up failed");
        }
        let facts = Facts {
            id: job.message.id.clone(),
            sends: job.sends,
            failures: job.failures,
            text: job.message.action.is_text(),
            quoted: job.message.quote.is_some() && !job.unquoted,
            doubt: job.doubt.take(),
            last: job.last.take(),
            stopping: self.stopping,
        };
        let pacing = &self.pacing;
        let (verdict, learnt) = decide(done.attempt, facts, pacing, self.rest.request_timeout());
        if let Some(saves) = learnt.saves {
            self.saves = Some(saves);
        }
        if learnt.found {
            bump(&self.counters.found);
        }
        if let Some(pause) = learnt.pause {
            let until = later(now, pause);
            if self.paused_until.is_none_or(|p| p < until) {
                tracing::warn!(
                    instance = %eventsock_core::human::escaped(self.rest.instance()),
                    "the server asked to slow down (429): pausing every send for {}",
                    eventsock_core::human::duration(pause)
                );
                self.paused_until = Some(until);
            }
        }
        match verdict {
            Verdict::Settled(outcome) => {
                let job = entry.queue.pop_front().expect("the head was just read");
                entry.next_at = Some(if job.message.action.is_paced() {
                    later(now, pacing.jittered(pacing.per_chat))
                } else {
                    now
                });
                self.settle(job, outcome);
            }
            Verdict::Again { after, facts } => {
                job.failures = facts.failures;
                job.doubt = facts.doubt;
                job.last = facts.last;
                job.unquoted |= learnt.unquoted;
                if learnt.doubted {
                    bump(&self.counters.doubts);
                    if let Some(e) = &job.doubt {
                        tracing::info!(
                            chat = %eventsock_core::human::escaped(&job.message.to),
                            id = %job.message.id,
                            error = %e,
                            "a send may or may not have arrived: looking it up in {}",
                            eventsock_core::human::duration(after)
                        );
                    }
                }
                if learnt.unquoted {
                    let e = job.last.as_ref();
                    let error = e.map(ToString::to_string).unwrap_or_default();
                    if std::mem::replace(&mut self.said_unquoted, true) {
                        tracing::debug!(id = %job.message.id, %error, "quote refused: sending unquoted");
                    } else {
                        tracing::warn!(
                            instance = %eventsock_core::human::escaped(self.rest.instance()),
                            %error,
                            "the server cannot resolve a quote: the message is sent without it, as are later ones it refuses (said once)"
                        );
                    }
                }
                entry.next_at = Some(later(now, after));
            }
        }
        self.list(&done.chat);
    }

    pub(super) fn settle(&mut self, mut job: Job, outcome: Result<Outcome, OutboxError>) {
        self.counters.queued.fetch_sub(1, Ordering::Relaxed);
        self.ids.remove(&job.message.id);
        match &outcome {
            Ok(_) => {
                bump(&self.counters.sent);
                self.counters.send_latency.observe(job.posted.elapsed());
                self.counters.deliveries.sent(&job.message.id);
                self.remember(&job.message, true);
            }
            Err(e) => {
                bump(&self.counters.failed);
                self.counters.deliveries.forget(&job.message.id);
                if matches!(e, OutboxError::InDoubt { .. }) {
                    bump(&self.counters.in_doubt);
                    self.remember(&job.message, false);
                }
                tracing::warn!(
                    chat = %eventsock_core::human::escaped(&job.message.to),
                    id = %job.message.id,
                    error = %e,
                    "a message was not sent"
                );
            }
        }
        for answer in job.answers.drain(..) {
            let _ = answer.send(outcome.clone());
        }
    }

    /// Remembers a settled message's id (`sent`, or left in doubt), so that the same id posted
    /// again is not sent again without a lookup.
    pub(super) fn remember(&mut self, message: &Outgoing, sent: bool) {
        self.recent
            .insert(message.id.clone(), (fingerprint_of(message), sent));
    }

    /// Forgets idle chats whose interval has run out (every 1,024 posts).
    pub(super) fn prune_idle(&mut self) {
        self.posts = self.posts.wrapping_add(1);
        if !self.posts.is_multiple_of(1024) {
            return;
        }
        let now = Instant::now();
        self.chats
            .retain(|_, c| !c.queue.is_empty() || c.busy || c.next_at.is_some_and(|at| at > now));
    }

    /// Fails every queued message that is not in flight; returns how many.
    pub(super) fn drop_queued(&mut self) -> usize {
        let mut dropped = Vec::new();
        for entry in self.chats.values_mut() {
            // Oldest first, so that their callers (and a sender's naks) keep the chat's order;
            // a head in flight stays to finish.
            let keep = usize::from(entry.busy);
            dropped.extend(entry.queue.drain(keep..));
        }
        self.ready.clear();
        for entry in self.chats.values_mut() {
            entry.listed = false;
        }
        let n = dropped.len();
        for job in dropped {
            self.settle_quietly(job);
        }
        n
    }

    /// Fails a queued message at a stop.
    pub(super) fn settle_quietly(&mut self, mut job: Job) {
        self.counters.queued.fetch_sub(1, Ordering::Relaxed);
        self.ids.remove(&job.message.id);
        bump(&self.counters.failed);
        let error = job.stopped();
        for answer in job.answers.drain(..) {
            let _ = answer.send(Err(error.clone()));
        }
    }

    /// Answers a post that arrived as the outbox stopped: never queued, not sent.
    pub(super) fn refuse(&mut self, mut job: Job) {
        for answer in job.answers.drain(..) {
            let _ = answer.send(Err(OutboxError::Stopped));
        }
    }
}

pub(super) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
