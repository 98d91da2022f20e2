//! Why the legacy server refused a handshake with 401, found out over REST.

use super::*;

/// Why the legacy server refused a handshake with 401, as found out over REST ([`probe`]): its
/// route checks the token and nothing else, so REST tells a bad token from a bad path or event.
#[derive(Debug, Clone)]
pub(super) enum Diagnosis {
    /// REST takes the token: the socket's path or event was refused.
    TokenAccepted { protocol: Protocol },
    /// REST refuses the token too.
    TokenRefused { instance: String },
    /// The server has no such REST route: not a CodeChat server, or a wrong path prefix.
    NoRestRoute,
    /// REST could not tell.
    Unknown(RestError),
}

impl std::fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Diagnosis::TokenAccepted { protocol } => write!(
                f,
                "the server accepts this token (GET /instance/connectionState answered 200), so it refused the socket's path or event: check the URL's path, that this server serves the event, and the protocol (this is the {protocol} one)"
            ),
            Diagnosis::TokenRefused { instance } => write!(
                f,
                "the server refuses this token (REST answered 401 too): it is wrong, expired, or not for instance {}; get the instance's current token",
                human::escaped(instance)
            ),
            Diagnosis::NoRestRoute => f.write_str("the server has no /instance/connectionState route (404): the URL may not point at a CodeChat server, or its path prefix is wrong"),
            Diagnosis::Unknown(e) => write!(f, "could not tell whether the token or the path is wrong (REST probe: {e})"),
        }
    }
}

/// Finds out over REST whether the legacy server refused a handshake for its token or for its
/// path or event: the route checks the token and nothing else.
pub(super) async fn probe(client: &awc::Client, source: &Source, token: Token) -> Diagnosis {
    let mut url = source.endpoint().rest_base();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty()
            .extend(["instance", "connectionState", source.instance()]);
    }
    let timeout = std::time::Duration::from_secs(5);
    let answer = eventsock_rest::request(
        client,
        Method::Get,
        &url,
        Some(&token),
        &Value::Null,
        timeout,
    );
    match answer.await {
        Ok(_) => Diagnosis::TokenAccepted {
            protocol: source.protocol(),
        },
        Err(RestError::Unauthorized { .. }) => Diagnosis::TokenRefused {
            instance: source.instance().to_owned(),
        },
        Err(RestError::NotFound { .. }) => Diagnosis::NoRestRoute,
        Err(e) => Diagnosis::Unknown(e),
    }
}
