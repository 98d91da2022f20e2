//! Where events come from: a server endpoint and a way to get a token for it.

use crate::error::ClientError;
use eventsock_core::{Endpoint, Token};
use futures_util::future::BoxFuture;
use std::sync::Arc;

/// The error a [`TokenProvider`] gives back.
pub type TokenProviderError = Box<dyn std::error::Error + Send + Sync>;

/// Gives the token for each connection attempt.
///
/// Asked afresh before every attempt, so a rotated token is picked up on the next reconnect
/// (reconnecting-websocket's "URL as a function"). A fixed [`Token`] is a provider that always
/// gives itself.
pub trait TokenProvider: Send + Sync + 'static {
    /// The token to use for the next attempt.
    fn token(&self) -> BoxFuture<'static, Result<Token, TokenProviderError>>;
}

impl TokenProvider for Token {
    fn token(&self) -> BoxFuture<'static, Result<Token, TokenProviderError>> {
        let t = self.clone();
        Box::pin(async move { Ok(t) })
    }
}

/// A closure as a provider: `|| async { Ok(fetch_token().await?) }`.
#[derive(Clone)]
pub struct FnTokenProvider<F>(pub F);

impl<F> std::fmt::Debug for FnTokenProvider<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnTokenProvider")
    }
}

impl<F, Fut> TokenProvider for FnTokenProvider<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Token, TokenProviderError>> + Send + 'static,
{
    fn token(&self) -> BoxFuture<'static, Result<Token, TokenProviderError>> {
        Box::pin((self.0)())
    }
}

/// Which server's protocol a source speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// The legacy Node server: `/ws/events`, bare frames.
    #[default]
    Legacy,
    /// The newer server: `/ws/instance/events` and `/ws/global/events`, enveloped frames.
    V2,
}

/// One server and one instance (or, for global events, one user) to subscribe on.
#[derive(Clone)]
pub struct Source {
    pub(crate) endpoint: Endpoint,
    pub(crate) scope: Arc<str>,
    pub(crate) protocol: Protocol,
    pub(crate) tokens: Arc<dyn TokenProvider>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("endpoint", &self.endpoint)
            .field("scope", &self.scope)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl Source {
    /// A source with a fixed token; the instance (or user) is read from the token's claims.
    pub fn new(endpoint: Endpoint, token: Token) -> Result<Source, ClientError> {
        let claims = token.claims().map_err(ClientError::Token)?;
        let scope = claims
            .instance_name
            .or(claims.user_id)
            .ok_or(ClientError::NoInstance)?;
        Ok(Source::with_provider(endpoint, scope, token))
    }

    /// A source for `instance` whose token is asked of `tokens` before every attempt.
    pub fn with_provider(
        endpoint: Endpoint,
        instance: impl Into<Arc<str>>,
        tokens: impl TokenProvider,
    ) -> Source {
        Source {
            endpoint,
            scope: instance.into(),
            protocol: Protocol::Legacy,
            tokens: Arc::new(tokens),
        }
    }

    /// Speak the newer server's protocol (enveloped frames, `/ws/instance/events`).
    pub fn v2(mut self) -> Source {
        self.protocol = Protocol::V2;
        self
    }

    /// The instance name (or user id) this source subscribes for.
    pub fn instance(&self) -> &str {
        &self.scope
    }
}
