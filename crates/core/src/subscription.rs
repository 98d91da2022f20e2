//! Where to connect: the server endpoint and the subscription URL for one event.

use crate::name::{Channel, EventName};
use crate::token::Token;
use std::fmt;
use url::Url;

/// A CodeChat server's base URL, for example `http://localhost:8084` or `wss://api.example.com/wa`.
///
/// `http` and `https` are turned into `ws` and `wss` for sockets (and back for REST). A path
/// prefix, for a server behind a reverse proxy, is kept.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    ws: Url,
}

/// A base URL that cannot be used as an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// Not a URL.
    #[error("{input:?} is not a URL: {reason}")]
    Invalid {
        /// The input, with any query removed.
        input: String,
        /// What the URL parser said.
        reason: String,
    },
    /// No `scheme://`, as in `localhost:8084`.
    #[error("{input:?} has no scheme: write http://{input} (or https://{input} behind TLS)")]
    NoScheme {
        /// The input, with any query removed.
        input: String,
    },
    /// A scheme other than http, https, ws or wss.
    #[error("unsupported scheme {0:?}: use http, https, ws or wss")]
    Scheme(String),
    /// The URL carries a token in its query. The token is not repeated here.
    #[error("the URL carries a token in its query: give the server's URL alone and the token separately; the URL is not shown, to keep the token out of logs")]
    TokenInUrl,
    /// A query or fragment, which would clash with the subscription's own.
    #[error(
        "the URL must not have a query or a fragment: give the events and the token separately"
    )]
    Query,
}

impl Endpoint {
    /// Parses a server URL: the base (`http://localhost:8084`, `wss://api.example.com/wa`), or
    /// an event socket's URL as the protocol's docs write it (`ws://localhost:8084/ws/events`),
    /// whose channel path is dropped. [`Endpoint::split`] also tells which channel it named.
    pub fn parse(input: &str) -> Result<Endpoint, EndpointError> {
        Endpoint::split(input).map(|(endpoint, _)| endpoint)
    }

    /// Parses a server URL as [`Endpoint::parse`] does, and gives the channel whose path ended
    /// it, if any: `/ws/events` is the legacy server, `/ws/instance/events` the newer one.
    pub fn split(input: &str) -> Result<(Endpoint, Option<Channel>), EndpointError> {
        let input = input.trim();
        // Never echo a query: it may hold a token.
        let shown = input.split('?').next().unwrap_or_default().to_owned();
        let query = input.split_once('?').map(|(_, q)| q).unwrap_or_default();
        if url::form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == "token") {
            return Err(EndpointError::TokenInUrl);
        }
        if !shown.contains("://") {
            return Err(EndpointError::NoScheme { input: shown });
        }
        let mut url = Url::parse(input).map_err(|e| EndpointError::Invalid {
            input: shown,
            reason: e.to_string(),
        })?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(EndpointError::Query);
        }
        let scheme = match url.scheme() {
            "http" | "ws" => "ws",
            "https" | "wss" => "wss",
            other => return Err(EndpointError::Scheme(other.to_owned())),
        };
        // Switching between these special schemes is always accepted by `url`.
        let _ = url.set_scheme(scheme);
        let mut path = url.path().trim_end_matches('/').to_owned();
        let channel = [Channel::Legacy, Channel::Instance, Channel::Global]
            .into_iter()
            .find(|c| path.ends_with(c.path()))
            .or_else(|| path.ends_with("/socket.io").then_some(Channel::Evolution));
        if let Some(c) = channel {
            path.truncate(path.len() - c.path().trim_end_matches('/').len());
        }
        url.set_path(&path);
        Ok((Endpoint { ws: url }, channel))
    }

    /// The URL to subscribe to `event` on `channel`, with the token.
    pub fn subscription(
        &self,
        channel: Channel,
        event: &EventName,
        token: &Token,
    ) -> SubscriptionUrl {
        let mut url = self.ws.clone();
        let path = format!("{}{}", self.ws.path().trim_end_matches('/'), channel.path());
        url.set_path(&path);
        url.query_pairs_mut()
            .append_pair("event", event.as_str())
            .append_pair("token", token.expose());
        SubscriptionUrl(url)
    }

    /// The URL of an Engine.IO 4 session over WebSocket on this server
    /// (`/socket.io/?EIO=4&transport=websocket`). Evolution API takes its key in a header, so
    /// the URL holds no secret.
    pub fn socket_io(&self) -> Url {
        let mut url = self.ws.clone();
        let path = format!(
            "{}{}",
            self.ws.path().trim_end_matches('/'),
            Channel::Evolution.path()
        );
        url.set_path(&path);
        url.query_pairs_mut()
            .append_pair("EIO", "4")
            .append_pair("transport", "websocket");
        url
    }

    /// The HTTP(S) base URL for REST calls.
    pub fn rest_base(&self) -> Url {
        let mut url = self.ws.clone();
        let scheme = if url.scheme() == "wss" {
            "https"
        } else {
            "http"
        };
        let _ = url.set_scheme(scheme);
        url
    }

    /// `host:port` (with the scheme's default port when none is given), for logs.
    pub fn authority(&self) -> String {
        let host = self.ws.host_str().unwrap_or_default();
        match self.ws.port_or_known_default() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Endpoint({})", self.ws)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.ws.fmt(f)
    }
}

/// A subscription URL. It holds the token, so `Debug` and `Display` show it as `<redacted>`;
/// [`SubscriptionUrl::expose`] gives the real URL to the code that connects.
#[derive(Clone, PartialEq, Eq)]
pub struct SubscriptionUrl(Url);

impl SubscriptionUrl {
    /// A URL that carries no secret (Evolution API's, whose key goes in a header).
    pub fn without_secret(url: Url) -> SubscriptionUrl {
        SubscriptionUrl(url)
    }

    /// The full URL, token included. Use it only to connect.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    /// The URL with the token replaced by `<redacted>`.
    pub fn redacted(&self) -> String {
        let mut url = self.0.clone();
        let pairs: Vec<(String, String)> = self
            .0
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "token" {
                    "<redacted>".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
        url.to_string()
    }
}

impl fmt::Debug for SubscriptionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubscriptionUrl({})", self.redacted())
    }
}

impl fmt::Display for SubscriptionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::EventKind;

    #[test]
    fn builds_percent_encoded_urls() {
        let e = Endpoint::parse("http://localhost:8084").unwrap();
        let token = Token::new("a.b+c/d=.e");
        let url = e.subscription(
            Channel::Legacy,
            &EventKind::GroupParticipantsUpdate.into(),
            &token,
        );
        assert_eq!(
            url.expose(),
            "ws://localhost:8084/ws/events?event=group-participants.update&token=a.b%2Bc%2Fd%3D.e"
        );
        let odd = EventName::parse("a b&c");
        let url = e.subscription(Channel::Instance, &odd, &token);
        assert!(url
            .expose()
            .starts_with("ws://localhost:8084/ws/instance/events?event=a+b%26c&"));
    }

    #[test]
    fn schemes_and_prefixes() {
        let e = Endpoint::parse("https://api.example.com/wa/").unwrap();
        let url = e.subscription(
            Channel::Global,
            &EventKind::BatchProgress.into(),
            &Token::new("t"),
        );
        assert!(url
            .expose()
            .starts_with("wss://api.example.com/wa/ws/global/events?"));
        assert_eq!(e.rest_base().as_str(), "https://api.example.com/wa");
        assert_eq!(e.authority(), "api.example.com:443");
        assert!(Endpoint::parse("ws://h:1").is_ok());
        assert_eq!(
            Endpoint::parse("ftp://h").unwrap_err(),
            EndpointError::Scheme("ftp".into())
        );
        assert_eq!(
            Endpoint::parse("http://h/?token=x").unwrap_err(),
            EndpointError::TokenInUrl
        );
        assert_eq!(
            Endpoint::parse("http://h/?event=x").unwrap_err(),
            EndpointError::Query
        );
        let bad = Endpoint::parse("not a url?token=secret").unwrap_err();
        assert!(!bad.to_string().contains("secret"));
    }

    #[test]
    fn urls_as_the_protocol_docs_write_them() {
        // CodeChat's README gives the socket's URL; it means the server plus that channel.
        let (e, c) = Endpoint::split("ws://localhost:8084/ws/events").unwrap();
        assert_eq!(
            (e.to_string().as_str(), c),
            ("ws://localhost:8084/", Some(Channel::Legacy))
        );
        let url = e.subscription(
            Channel::Legacy,
            &EventKind::MessagesUpsert.into(),
            &Token::new("t"),
        );
        assert!(
            url.expose()
                .starts_with("ws://localhost:8084/ws/events?event="),
            "{url}"
        );
        let (e, c) = Endpoint::split("https://api.example.com/wa/ws/instance/events/").unwrap();
        assert_eq!(
            (e.to_string().as_str(), c),
            ("wss://api.example.com/wa", Some(Channel::Instance))
        );
        assert_eq!(Endpoint::split("http://h:1").unwrap().1, None);

        let no_scheme = Endpoint::parse("localhost:8084").unwrap_err();
        assert_eq!(
            no_scheme.to_string(),
            "\"localhost:8084\" has no scheme: write http://localhost:8084 (or https://localhost:8084 behind TLS)"
        );
        let with_token =
            Endpoint::parse("ws://h:8084/ws/events?event=messages.upsert&token=eyJs3cret")
                .unwrap_err();
        assert_eq!(with_token, EndpointError::TokenInUrl);
        assert!(!with_token.to_string().contains("s3cret"));
        let no_scheme_token = Endpoint::parse("h:8084/ws/events?token=eyJs3cret").unwrap_err();
        assert!(!no_scheme_token.to_string().contains("s3cret"));
    }

    #[test]
    fn token_never_shown() {
        let e = Endpoint::parse("http://localhost:8084").unwrap();
        let url = e.subscription(
            Channel::Legacy,
            &EventKind::MessagesUpsert.into(),
            &Token::new("s3cret"),
        );
        for shown in [format!("{url:?}"), url.to_string()] {
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("event=messages.upsert"), "{shown}");
        }
    }
}
