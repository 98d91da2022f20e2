//! [`Retries`]: the one retry policy of the client's calls (its REST calls and its media
//! downloads).

use crate::{RestClient, RestError};
use eventsock_core::Token;
use std::time::Duration;

/// The wait before retry `n` of an idempotent call: 0.4 s, doubling, at most 12.8 s.
const RETRY_BACKOFF: eventsock_core::Backoff = eventsock_core::Backoff::Exponential {
    min: Duration::from_millis(400),
    max: Duration::from_millis(12_800),
    factor: 2.0,
    jitter: 0.0,
};

/// What a failed call says about trying it again.
pub(crate) trait Retryable: std::fmt::Display {
    /// The server refused the token (a 401).
    fn token_refused(&self) -> bool;
    /// Worth another try, for a call that changes nothing when made twice.
    fn transient(&self) -> bool;
}

impl Retryable for RestError {
    fn token_refused(&self) -> bool {
        matches!(self, RestError::Unauthorized { .. })
    }

    fn transient(&self) -> bool {
        RestError::transient(self)
    }
}

/// When a call goes again: the one retry policy of the client's calls. Once with a new token
/// after a 401 whose token the provider gives up; after a transient failure of an idempotent
/// call, up to [`RestClient::retries`] times, after the backoff, and not past `deadline`.
pub(crate) struct Retries<'c> {
    client: &'c RestClient,
    route: &'c str,
    idempotent: bool,
    deadline: Option<tokio::time::Instant>,
    attempt: u32,
    renewed: bool,
}

impl<'c> Retries<'c> {
    pub(crate) fn new(
        client: &'c RestClient,
        route: &'c str,
        idempotent: bool,
        deadline: Option<tokio::time::Instant>,
    ) -> Retries<'c> {
        Retries {
            client,
            route,
            idempotent,
            deadline,
            attempt: 0,
            renewed: false,
        }
    }

    /// The token for the next attempt.
    pub(crate) async fn token(&self) -> Result<Token, RestError> {
        self.client
            .tokens
            .token()
            .await
            .map_err(|e| RestError::Token(e.to_string()))
    }

    /// Whether the call goes again after `failure` of an attempt made with `token` (having
    /// waited for the backoff when it does).
    pub(crate) async fn again<E: Retryable>(&mut self, failure: &E, token: &Token) -> bool {
        let route = self.route;
        // A refused token was not used: any call may go again, once, with a new one.
        if failure.token_refused() && !self.renewed && self.client.tokens.refused(token) {
            self.renewed = true;
            tracing::debug!(route, "token refused; retrying with a new one");
            return true;
        }
        if !self.idempotent || !failure.transient() || self.attempt >= self.client.retries {
            return false;
        }
        self.attempt += 1;
        let wait = RETRY_BACKOFF.delay(self.attempt);
        if self
            .deadline
            .is_some_and(|d| tokio::time::Instant::now() + wait >= d)
        {
            return false;
        }
        let attempt = self.attempt;
        tracing::debug!(route, attempt, error = %failure, wait = %eventsock_core::human::duration(wait), "retrying");
        tokio::time::sleep(wait).await;
        true
    }
}
