//! The retry decision: what one attempt's answer means for its message (settled, or tried
//! again after a while, sent again or looked up) and what it tells about the server. A pure
//! function of the answer, what the outbox knows of the message, and its pacing: the engine
//! applies the verdict.

use super::lookup::Looked;
use super::{OutboxError, Outcome, Pacing};
use crate::{Quote, RestError};
use serde_json::Value;
use std::time::Duration;

/// What an attempt found.
pub(super) enum Attempt {
    /// The answer to a send (a text, a reaction or a read receipt).
    Send(Result<Value, RestError>),
    /// The answer to a lookup of a message whose send was left in doubt.
    Lookup(Result<Looked, RestError>),
}

/// What the outbox knows of a message when an attempt of it answers.
#[derive(Debug, Clone, Default)]
pub(super) struct Facts {
    /// Its id.
    pub(super) id: String,
    /// Sends so far (this one included).
    pub(super) sends: u32,
    /// Failed attempts before this one.
    pub(super) failures: u32,
    /// A text (looked up when an answer is lost); a reaction or a read receipt is sent again.
    pub(super) text: bool,
    /// It still carries a quote the server may refuse.
    pub(super) quoted: bool,
    /// The failure that left it in doubt (it was looked up), if one did.
    pub(super) doubt: Option<RestError>,
    /// The last failure that proved nothing was sent.
    pub(super) last: Option<RestError>,
    /// The outbox is stopping: nothing is tried again.
    pub(super) stopping: bool,
}

/// What becomes of the message.
#[derive(Debug)]
pub(super) enum Verdict {
    /// It is settled: this is its outcome.
    Settled(Result<Outcome, OutboxError>),
    /// It is tried again after `after`: looked up first when [`Facts::doubt`] is set, else sent.
    Again {
        /// How long its chat waits.
        after: Duration,
        /// What the message's facts are now.
        facts: Facts,
    },
}

/// What the answer tells beyond its message.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Learnt {
    /// Whether the server keeps the messages it sends, when the answer shows it.
    pub(super) saves: Option<bool>,
    /// The server asked to slow down: every send waits this long.
    pub(super) pause: Option<Duration>,
    /// The message was found on the server after its answer was lost.
    pub(super) found: bool,
    /// The send may or may not have arrived: it is looked up next.
    pub(super) doubted: bool,
    /// The server refused the message's quote: it goes again without, at once.
    pub(super) unquoted: bool,
}

/// Whether a failed send may have reached the server.
pub(super) fn in_doubt(error: &RestError) -> bool {
    matches!(
        error,
        RestError::Server { .. }
            | RestError::Timeout(_)
            | RestError::Connect(_)
            | RestError::Decode(_)
    )
}

/// What `attempt`'s answer means for a message with `facts`, paced by `pacing`, whose requests
/// time out after `timeout`.
pub(super) fn decide(
    attempt: Attempt,
    mut facts: Facts,
    pacing: &Pacing,
    timeout: Duration,
) -> (Verdict, Learnt) {
    let mut learnt = Learnt::default();
    let mut after = Duration::ZERO;
    let settled = match attempt {
        Attempt::Send(Ok(answer)) => {
            if answer.get("id").is_some_and(Value::is_number) {
                learnt.saves = Some(true);
            }
            // The id the server gave it: the outbox's own on CodeChat, which takes it; the
            // server's on Evolution API, which makes its own.
            let id = answer["key"]["id"]
                .as_str()
                .map_or_else(|| facts.id.clone(), str::to_owned);
            Some(Ok(Outcome::Sent {
                id,
                answer,
                attempts: facts.sends,
            }))
        }
        Attempt::Send(Err(RestError::RateLimited { retry_after, body })) => {
            facts.failures += 1;
            let pause = retry_after
                .unwrap_or_else(|| pacing.backoff_after(facts.failures))
                .min(pacing.max_pause);
            learnt.pause = Some(pause);
            after = pacing.per_chat;
            facts.last = Some(RestError::RateLimited { retry_after, body });
            None
        }
        // A reaction or a read receipt: doing it again changes nothing, so it is tried again
        // rather than looked up (the server's API gives it no id to look up by).
        Attempt::Send(Err(e)) if in_doubt(&e) && !facts.text => {
            facts.failures += 1;
            after = pacing.backoff_after(facts.failures);
            facts.last = Some(e);
            None
        }
        Attempt::Send(Err(e)) if in_doubt(&e) => {
            facts.failures += 1;
            after = pacing.backoff_after(facts.failures);
            if matches!(e, RestError::Timeout(_)) {
                // The server may still be working on it: give it that long again.
                after = after.max(timeout);
            }
            learnt.doubted = true;
            facts.doubt = Some(e);
            None
        }
        // The server checks a quote before it sends anything: nothing went out, and the
        // message goes again at once, without the quote.
        Attempt::Send(Err(RestError::Rejected { status, body }))
            if facts.quoted && Quote::refused_in(&body) =>
        {
            learnt.unquoted = true;
            facts.quoted = false;
            facts.last = Some(RestError::Rejected { status, body });
            None
        }
        Attempt::Send(Err(e)) => Some(Err(OutboxError::Refused(e))),
        Attempt::Lookup(Ok(Looked::Found(found))) => {
            learnt.found = true;
            Some(Ok(Outcome::Found {
                id: found.unwrap_or_else(|| facts.id.clone()),
                attempts: facts.sends,
            }))
        }
        // Not there, on a server that keeps what it sends: it did not arrive.
        Attempt::Lookup(Ok(Looked::Absent)) => {
            learnt.saves = Some(true);
            facts.last = facts.doubt.take();
            None
        }
        Attempt::Lookup(Ok(Looked::Unknowable)) => Some(Err(OutboxError::InDoubt {
            last: facts
                .doubt
                .take()
                .unwrap_or(RestError::Unavailable("the answer was lost".into())),
        })),
        Attempt::Lookup(Err(_)) => {
            facts.failures += 1;
            after = pacing.backoff_after(facts.failures);
            None
        }
    };
    let verdict = match settled {
        Some(outcome) => Verdict::Settled(outcome),
        None if facts.stopping => Verdict::Settled(Err(if facts.doubt.is_some() {
            OutboxError::StoppedInDoubt
        } else {
            OutboxError::Stopped
        })),
        None if facts.failures > pacing.retries => {
            Verdict::Settled(Err(match (facts.doubt, facts.last) {
                (Some(last), _) => OutboxError::InDoubt { last },
                (None, Some(last)) => OutboxError::GaveUp {
                    attempts: facts.sends,
                    last,
                },
                (None, None) => OutboxError::Stopped,
            }))
        }
        None => Verdict::Again { after, facts },
    };
    (verdict, learnt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacing() -> Pacing {
        Pacing::default()
            .backoff(Duration::from_secs(1))
            .per_chat(Duration::from_secs(2))
            .retries(3)
    }

    fn text() -> Facts {
        Facts {
            id: "3EB0A".into(),
            sends: 1,
            text: true,
            ..Facts::default()
        }
    }

    fn server_error() -> RestError {
        RestError::Server {
            status: 502,
            body: Value::Null,
        }
    }

    fn again(verdict: Verdict) -> (Duration, Facts) {
        match verdict {
            Verdict::Again { after, facts } => (after, facts),
            Verdict::Settled(outcome) => panic!("settled: {outcome:?}"),
        }
    }

    fn settled(verdict: Verdict) -> Result<Outcome, OutboxError> {
        match verdict {
            Verdict::Settled(outcome) => outcome,
            Verdict::Again { after, .. } => panic!("tried again after {after:?}"),
        }
    }

    const TIMEOUT: Duration = Duration::from_secs(30);

    #[test]
    fn an_answer_settles_and_a_numeric_id_shows_the_server_keeps_messages() {
        let answer = serde_json::json!({"id": 7, "keyId": "3EB0A"});
        let (verdict, learnt) = decide(Attempt::Send(Ok(answer)), text(), &pacing(), TIMEOUT);
        assert!(matches!(
            settled(verdict),
            Ok(Outcome::Sent { attempts: 1, .. })
        ));
        assert_eq!(learnt.saves, Some(true));
    }

    #[test]
    fn a_429_pauses_every_send_and_tries_again_after_the_chats_interval() {
        let limited = RestError::RateLimited {
            retry_after: Some(Duration::from_secs(3)),
            body: Value::Null,
        };
        let (verdict, learnt) = decide(Attempt::Send(Err(limited)), text(), &pacing(), TIMEOUT);
        let (after, facts) = again(verdict);
        assert_eq!(after, Duration::from_secs(2));
        assert_eq!(learnt.pause, Some(Duration::from_secs(3)));
        assert_eq!((facts.failures, facts.doubt.is_none()), (1, true));
    }

    #[test]
    fn a_lost_answer_of_a_text_is_looked_up_and_a_timeout_waits_as_long_again() {
        let (verdict, learnt) = decide(
            Attempt::Send(Err(server_error())),
            text(),
            &pacing(),
            TIMEOUT,
        );
        let (after, facts) = again(verdict);
        assert_eq!(after, Duration::from_secs(1));
        assert!(learnt.doubted && facts.doubt.is_some());
        let timeout = RestError::Timeout(Duration::from_secs(30));
        let (verdict, _) = decide(Attempt::Send(Err(timeout)), text(), &pacing(), TIMEOUT);
        assert_eq!(again(verdict).0, TIMEOUT);
    }

    #[test]
    fn a_lost_answer_of_a_reaction_is_sent_again_not_looked_up() {
        let reaction = Facts {
            text: false,
            ..text()
        };
        let (verdict, learnt) = decide(
            Attempt::Send(Err(server_error())),
            reaction,
            &pacing(),
            TIMEOUT,
        );
        let (_, facts) = again(verdict);
        assert!(!learnt.doubted && facts.doubt.is_none() && facts.last.is_some());
    }

    #[test]
    fn a_refused_quote_goes_again_at_once_without_it_and_other_refusals_settle() {
        let refused = || RestError::Rejected {
            status: 400,
            body: serde_json::json!({"message": ["Quoted message not found"]}),
        };
        let quoted = Facts {
            quoted: true,
            ..text()
        };
        let (verdict, learnt) = decide(Attempt::Send(Err(refused())), quoted, &pacing(), TIMEOUT);
        let (after, facts) = again(verdict);
        assert_eq!(
            (after, learnt.unquoted, facts.quoted),
            (Duration::ZERO, true, false)
        );
        // Without a quote, the same refusal fails the message.
        let (verdict, _) = decide(Attempt::Send(Err(refused())), text(), &pacing(), TIMEOUT);
        assert!(matches!(settled(verdict), Err(OutboxError::Refused(_))));
    }

    #[test]
    fn a_lookup_settles_found_or_unknowable_and_sends_again_when_absent() {
        let doubted = || Facts {
            doubt: Some(server_error()),
            ..text()
        };
        let found = decide(
            Attempt::Lookup(Ok(Looked::Found(None))),
            doubted(),
            &pacing(),
            TIMEOUT,
        );
        assert!(matches!(settled(found.0), Ok(Outcome::Found { .. })) && found.1.found);
        let unknowable = decide(
            Attempt::Lookup(Ok(Looked::Unknowable)),
            doubted(),
            &pacing(),
            TIMEOUT,
        );
        assert!(matches!(
            settled(unknowable.0),
            Err(OutboxError::InDoubt { .. })
        ));
        let (verdict, learnt) = decide(
            Attempt::Lookup(Ok(Looked::Absent)),
            doubted(),
            &pacing(),
            TIMEOUT,
        );
        let (_, facts) = again(verdict);
        assert!(facts.doubt.is_none() && facts.last.is_some());
        assert_eq!(learnt.saves, Some(true));
    }

    #[test]
    fn past_its_retries_a_message_gives_up_in_doubt_or_not_and_stopping_tries_nothing() {
        let tired = Facts {
            failures: 3,
            ..text()
        };
        let (verdict, _) = decide(
            Attempt::Send(Err(server_error())),
            tired.clone(),
            &pacing(),
            TIMEOUT,
        );
        assert!(matches!(settled(verdict), Err(OutboxError::InDoubt { .. })));
        let reaction = Facts {
            text: false,
            ..tired
        };
        let (verdict, _) = decide(
            Attempt::Send(Err(server_error())),
            reaction,
            &pacing(),
            TIMEOUT,
        );
        assert!(matches!(
            settled(verdict),
            Err(OutboxError::GaveUp { attempts: 1, .. })
        ));
        let stopping = Facts {
            stopping: true,
            ..text()
        };
        let (verdict, _) = decide(
            Attempt::Send(Err(server_error())),
            stopping,
            &pacing(),
            TIMEOUT,
        );
        assert!(matches!(settled(verdict), Err(OutboxError::StoppedInDoubt)));
    }
}
