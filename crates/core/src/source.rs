//! Where events come from: a server endpoint and a way to get a token for it.

use crate::{Channel, Endpoint, EventName, Token, TokenError};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A future that need not be `Send`: what a [`TokenProvider`] gives back (the same type as
/// `futures::future::LocalBoxFuture`).
pub type LocalBoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Why a [`Source`] cannot be made from a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The token's claims cannot be read.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The token names no instance (nor user), and none was given (an Evolution API key never
    /// names one).
    #[error("the token names no instance: give the instance's name (--instance, EVENTSOCK_INSTANCE, or Source::with_provider)")]
    NoInstance,
    /// The server URL cannot be used.
    #[error(transparent)]
    Url(#[from] crate::EndpointError),
    /// The instance given is not the one the token names.
    #[error("the token is for instance {named}, not {given}: give that instance's token, or drop the instance")]
    InstanceMismatch {
        /// The instance the token names.
        named: String,
        /// The instance given.
        given: String,
    },
    /// An instance name that cannot name a Socket.IO namespace (it has a `,`, which ends one
    /// in a packet, or is empty).
    #[error("{0:?} cannot name an Evolution API instance's namespace: a name with a comma, or none, breaks Socket.IO's packets")]
    InstanceName(String),
    /// The URL names a socket of one protocol's server, and another protocol was asked for.
    #[error("the URL ends in {path}, a socket of the {named} server, but the protocol given is {given}: drop one of the two")]
    ProtocolMismatch {
        /// The socket path the URL ends in.
        path: &'static str,
        /// The protocol whose server serves that path.
        named: Protocol,
        /// The protocol asked for.
        given: Protocol,
    },
}

/// The error a [`TokenProvider`] gives back.
pub type TokenProviderError = Box<dyn std::error::Error + Send + Sync>;

/// Gives the token for each connection attempt and each REST call.
///
/// Asked afresh before every attempt, so a rotated token is picked up on the next reconnect
/// (reconnecting-websocket's "URL as a function"). A fixed [`Token`] is a provider that always
/// gives itself; `RefreshingToken` (crate `eventsock-rest`) renews a token before it expires.
/// The future runs on the arbiter that asks, so it need not be `Send`.
pub trait TokenProvider: Send + Sync + 'static {
    /// The token to use for the next attempt.
    fn token(&self) -> LocalBoxFuture<'static, Result<Token, TokenProviderError>>;

    /// Told when the server refused `token` (a 401 at a handshake or a REST call, a close with
    /// 4001). Returns whether the next [`token`](TokenProvider::token) will be a new one worth
    /// trying at once; `false` (the default) makes the retry wait the longest backoff.
    fn refused(&self, token: &Token) -> bool {
        let _ = token;
        false
    }
}

impl TokenProvider for Token {
    fn token(&self) -> LocalBoxFuture<'static, Result<Token, TokenProviderError>> {
        let t = self.clone();
        Box::pin(async move { Ok(t) })
    }
}

impl<T: TokenProvider + ?Sized> TokenProvider for Arc<T> {
    fn token(&self) -> LocalBoxFuture<'static, Result<Token, TokenProviderError>> {
        (**self).token()
    }

    fn refused(&self, token: &Token) -> bool {
        (**self).refused(token)
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
    Fut: Future<Output = Result<Token, TokenProviderError>> + 'static,
{
    fn token(&self) -> LocalBoxFuture<'static, Result<Token, TokenProviderError>> {
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
    /// Evolution API: Socket.IO on `/socket.io/`, an `apikey` instead of a JWT.
    Evolution,
}

impl Protocol {
    /// The socket endpoints this protocol's server serves.
    pub fn channels(self) -> &'static [Channel] {
        match self {
            Protocol::Legacy => &[Channel::Legacy],
            Protocol::V2 => &[Channel::Instance, Channel::Global],
            Protocol::Evolution => &[Channel::Evolution],
        }
    }

    /// The protocol whose server serves `channel`.
    pub fn of(channel: Channel) -> Protocol {
        match channel {
            Channel::Legacy => Protocol::Legacy,
            Channel::Instance | Channel::Global => Protocol::V2,
            Channel::Evolution => Protocol::Evolution,
        }
    }

    /// The endpoint `event` is served on by this protocol's server, if any.
    pub fn channel_of(self, event: &EventName) -> Option<Channel> {
        self.channels()
            .iter()
            .copied()
            .find(|c| event.served_on(*c))
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Legacy => "legacy",
            Protocol::V2 => "v2",
            Protocol::Evolution => "evolution",
        })
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;

    /// `legacy`, `v2` or `evolution`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "legacy" => Ok(Protocol::Legacy),
            "v2" => Ok(Protocol::V2),
            "evolution" => Ok(Protocol::Evolution),
            other => Err(format!(
                "unknown protocol \"{}\": use legacy, v2 or evolution",
                crate::human::escaped(other)
            )),
        }
    }
}

/// One server and one instance (or, for global events, one user) to subscribe on.
#[derive(Clone)]
pub struct Source {
    endpoint: Endpoint,
    scope: Arc<str>,
    protocol: Protocol,
    tokens: Arc<dyn TokenProvider>,
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
    pub fn new(endpoint: Endpoint, token: Token) -> Result<Source, SourceError> {
        let claims = token.claims()?;
        let scope = claims
            .instance_name
            .or(claims.user_id)
            .ok_or(SourceError::NoInstance)?;
        Ok(Source::with_provider(endpoint, scope, token))
    }

    /// A source from a server URL in any form the protocol's docs write it (the base,
    /// `http://localhost:8084`, or an event socket's URL, `ws://localhost:8084/ws/events`) and
    /// a fixed token. The protocol is `protocol`, else the one the URL's path names, else
    /// legacy. The instance is read from the token's claims, which an Evolution API key does
    /// not have: use [`Source::for_instance`] there.
    pub fn from_url(
        url: &str,
        token: Token,
        protocol: Option<Protocol>,
    ) -> Result<Source, SourceError> {
        Source::for_instance(url, token, protocol, None)
    }

    /// [`Source::from_url`] for `instance` when given (needed on Evolution API, whose key names
    /// none; on CodeChat, it must be the one the token names, or the server refuses it).
    pub fn for_instance(
        url: &str,
        token: Token,
        protocol: Option<Protocol>,
        instance: Option<&str>,
    ) -> Result<Source, SourceError> {
        let (endpoint, channel) = Endpoint::split(url)?;
        let protocol = match (protocol, channel) {
            (Some(given), Some(c)) if given != Protocol::of(c) => {
                return Err(SourceError::ProtocolMismatch {
                    path: c.path(),
                    named: Protocol::of(c),
                    given,
                })
            }
            (Some(p), _) => p,
            (None, Some(c)) => Protocol::of(c),
            (None, None) => Protocol::Legacy,
        };
        let source = match (protocol, instance.filter(|i| !i.trim().is_empty())) {
            // An Evolution API key is opaque: it names no instance.
            (Protocol::Evolution, None) => return Err(SourceError::NoInstance),
            (Protocol::Evolution, Some(i)) if i.contains(',') => {
                return Err(SourceError::InstanceName(i.to_owned()))
            }
            (Protocol::Evolution, Some(i)) => return Ok(Source::evolution(endpoint, i, token)),
            // A CodeChat instance token names its instance: one given must be the same. (A
            // user token, or one whose claims cannot be read, names none: the one given is it.)
            (_, Some(i)) => match token.claims().ok().and_then(|c| c.instance_name) {
                Some(named) if named != i => {
                    return Err(SourceError::InstanceMismatch {
                        named,
                        given: i.to_owned(),
                    })
                }
                _ => Source::with_provider(endpoint, i, token),
            },
            (_, None) => Source::new(endpoint, token)?,
        };
        Ok(match protocol {
            Protocol::V2 => source.v2(),
            _ => source,
        })
    }

    /// A source on an Evolution API server: `instance`'s events, over Socket.IO, with `api_key`
    /// (the instance's token or the server's global key), sent in the `apikey` header of the
    /// handshake and of every REST call. The instance's name must have no `,` (it ends a
    /// namespace in a packet): [`Source::for_instance`] checks it.
    pub fn evolution(endpoint: Endpoint, instance: impl Into<Arc<str>>, api_key: Token) -> Source {
        Source {
            protocol: Protocol::Evolution,
            ..Source::with_provider(endpoint, instance, api_key)
        }
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

    /// The server.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The protocol it speaks.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The token provider, to share with a REST client (`RestClient::for_source` in crate
    /// `eventsock-rest`).
    pub fn tokens(&self) -> Arc<dyn TokenProvider> {
        self.tokens.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unsigned JWT whose claims are `claims` (the source reads claims, never checks them).
    fn jwt(claims: &str) -> Token {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        Token::new(format!("{}.{}.sig", b64(r#"{"alg":"HS256"}"#), b64(claims)))
    }

    #[test]
    fn an_instance_is_given_where_the_token_names_none_and_checked_where_it_does() {
        let url = "http://localhost:8080";
        let key = Token::new("an-evolution-key");
        let evo = Some(Protocol::Evolution);
        assert_eq!(
            Source::for_instance(url, key.clone(), evo, None).unwrap_err(),
            SourceError::NoInstance
        );
        let s = Source::for_instance(url, key.clone(), evo, Some("bot")).unwrap();
        assert_eq!((s.instance(), s.protocol()), ("bot", Protocol::Evolution));
        assert_eq!(
            Source::for_instance(url, key, evo, Some("a,b")).unwrap_err(),
            SourceError::InstanceName("a,b".into())
        );
        // A CodeChat instance token: the instance given must be its own.
        let token = jwt(r#"{"instanceName":"codechat","apiName":"whatsapp-api"}"#);
        let s = Source::for_instance(url, token.clone(), None, Some("codechat")).unwrap();
        assert_eq!(s.instance(), "codechat");
        assert!(matches!(
            Source::for_instance(url, token, None, Some("other")),
            Err(SourceError::InstanceMismatch { named, given }) if named == "codechat" && given == "other"
        ));
        // A user token names no instance: the one given is taken.
        let user = jwt(r#"{"userId":"u1"}"#);
        let s = Source::for_instance(url, user, Some(Protocol::V2), Some("shop")).unwrap();
        assert_eq!((s.instance(), s.protocol()), ("shop", Protocol::V2));
        // The URL of Evolution's socket names its protocol.
        let s = Source::for_instance(
            "http://localhost:8080/socket.io/",
            Token::new("k"),
            None,
            Some("bot"),
        )
        .unwrap();
        assert_eq!(s.protocol(), Protocol::Evolution);
    }
}
