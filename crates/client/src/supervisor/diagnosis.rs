//! Why a server refused a subscription, found out over REST: the legacy server's 401 to a
//! handshake, Evolution API's refusal of an instance's namespace.

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
    /// Evolution: the instance's websocket is off (or was never set).
    WebsocketOff { instance: String },
    /// Evolution: the instance's websocket is on, without this event.
    NotListed { instance: String, setting: String },
    /// Evolution: the settings send the event; the namespace is made at the instance's first
    /// event after each start of the server.
    NoEventYet,
    /// Evolution: an event 2.3 never sends to an instance's namespace: its settings cannot
    /// list it (`creds.update`, `messaging-history.set`), or spell it otherwise than its events
    /// (`GROUP_UPDATE` for `groups.update`).
    NeverSent { event: String },
}

impl Diagnosis {
    /// Whether it tells of a legacy 401 (the token, or the path), not of a namespace.
    pub(super) fn is_about_token(&self) -> bool {
        matches!(
            self,
            Diagnosis::TokenAccepted { .. }
                | Diagnosis::TokenRefused { .. }
                | Diagnosis::NoRestRoute
                | Diagnosis::Unknown(_)
        )
    }
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
            Diagnosis::Unknown(e) => write!(f, "could not tell why (REST probe: {e})"),
            Diagnosis::WebsocketOff { instance } => {
                let instance = human::escaped(instance);
                write!(
                    f,
                    "the websocket of instance {instance} is off: turn it on with POST /websocket/set/{instance} {{\"websocket\":{{\"enabled\":true,\"events\":[...]}}}} (the events in UPPER_SNAKE, MESSAGES_UPSERT)"
                )
            }
            Diagnosis::NotListed { instance, setting } => {
                let instance = human::escaped(instance);
                write!(
                    f,
                    "the websocket of instance {instance} does not send {setting}: add it to its events with POST /websocket/set/{instance}"
                )
            }
            Diagnosis::NeverSent { event } => write!(
                f,
                "Evolution API 2.3 never sends {event} to an instance's namespace (its websocket settings cannot list it{}): only its global events (WEBSOCKET_GLOBAL_EVENTS=true) carry it",
                if event == "groups.update" { "; they spell it GROUP_UPDATE" } else { "" }
            ),
            Diagnosis::NoEventYet => f.write_str(
                "its settings send this event, but the server has sent the instance nothing since it started (Evolution makes the namespace then): retrying until it does",
            ),
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

/// Evolution API: why the namespace of a subscription's instance was refused, or (after it was
/// joined) whether its event can come at all, from the instance's websocket settings. `None`:
/// the settings send the event.
pub(super) async fn websocket(rest: RestClient, event: &EventName) -> Option<Diagnosis> {
    let instance = rest.instance().to_owned();
    use eventsock_core::EventKind;
    if matches!(
        event.kind(),
        Some(EventKind::GroupsUpdate | EventKind::CredsUpdate | EventKind::MessagingHistorySet)
    ) {
        return Some(Diagnosis::NeverSent {
            event: event.to_string(),
        });
    }
    let settings = match rest.websocket_settings().await {
        Ok(s) => s,
        Err(e) => return Some(Diagnosis::Unknown(e)),
    };
    if settings["enabled"] != true {
        return Some(Diagnosis::WebsocketOff { instance });
    }
    let setting = event.evolution_setting();
    let listed = settings["events"]
        .as_array()
        .is_some_and(|e| e.iter().any(|e| e.as_str() == Some(setting.as_str())));
    (!listed).then_some(Diagnosis::NotListed { instance, setting })
}
