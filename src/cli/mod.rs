//! The subcommands of the `eventsock` binary.

pub(crate) mod demo;
pub(crate) mod nats;
pub(crate) mod output;
pub(crate) mod send;
pub(crate) mod sim;
pub(crate) mod tail;

use eventsock_core::{EventName, Protocol, Source, Token};
use std::time::Duration;

/// The CodeChat server and the events to take from it: shared by `tail` and `bridge`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServerArgs {
    /// The server, for example http://localhost:8084 (an event socket's URL such as
    /// ws://localhost:8084/ws/events also works, and picks the protocol).
    #[arg(long, env = "EVENTSOCK_URL")]
    url: Option<String>,
    #[command(flatten)]
    token: TokenArgs,
    /// An event to take (repeat for several).
    #[arg(long = "event", required = true)]
    events: Vec<String>,
    /// The server's protocol: legacy (/ws/events) or v2 (/ws/instance/events) for CodeChat,
    /// evolution (Socket.IO on /socket.io/) for Evolution API. By default the one the URL's
    /// path names, else legacy.
    #[arg(long, env = "EVENTSOCK_PROTOCOL")]
    protocol: Option<Protocol>,
    /// The instance: needed on Evolution API, whose key names none (on CodeChat, the one the
    /// token names).
    #[arg(long, env = "EVENTSOCK_INSTANCE")]
    instance: Option<String>,
}

impl ServerArgs {
    /// The source to subscribe on, and the events.
    pub(crate) fn source(self) -> anyhow::Result<(Source, Vec<EventName>)> {
        let (Some(url), Some(token)) = (&self.url, self.token.token()?) else {
            anyhow::bail!(
                "no server given: pass --url URL and --token-file PATH, or set EVENTSOCK_URL and EVENTSOCK_TOKEN"
            );
        };
        let source = Source::for_instance(url, token, self.protocol, self.instance.as_deref())
            .map_err(|e| anyhow::anyhow!(eventsock::RunError::Source(e)))?;
        let events = self.events();
        Ok((source, events))
    }

    /// The events, each once: `--event x --event x` is one.
    pub(crate) fn events(&self) -> Vec<EventName> {
        let mut events: Vec<EventName> = Vec::new();
        for e in self.events.iter().map(|e| EventName::parse(e)) {
            if !events.contains(&e) {
                events.push(e);
            }
        }
        events
    }
}

/// Where the instance's token comes from: a file, or the environment (or, readable by every
/// user of the machine through `ps`, the command line).
#[derive(Debug, clap::Args)]
pub(crate) struct TokenArgs {
    /// A file holding the instance token (JWT), read at start; preferred to --token, which every
    /// user of the machine can read with `ps`.
    #[arg(long, env = "EVENTSOCK_TOKEN_FILE", value_name = "PATH")]
    token_file: Option<std::path::PathBuf>,
    /// The instance token (JWT). On a command line every user of the machine can read it: give
    /// EVENTSOCK_TOKEN or --token-file instead.
    #[arg(long, env = "EVENTSOCK_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl TokenArgs {
    /// The token: from the file when one is given, else from `--token` or `EVENTSOCK_TOKEN`
    /// (with a warning when it was on the command line).
    pub(crate) fn token(&self) -> anyhow::Result<Option<Token>> {
        if let Some(path) = &self.token_file {
            return Ok(Some(Token::from_file(path)?));
        }
        if self.token.is_some() && on_command_line("--token") {
            output::say!(
                "eventsock: warning: a token given with --token can be read by every user of this machine (ps); give it with EVENTSOCK_TOKEN or --token-file PATH"
            );
        }
        Ok(self.token.clone().map(Token::new))
    }
}

/// Whether flag `name` was given on this process's command line (as `name value` or
/// `name=value`).
pub(crate) fn on_command_line(name: &str) -> bool {
    std::env::args()
        .skip(1)
        .any(|a| a == name || a.strip_prefix(name).is_some_and(|r| r.starts_with('=')))
}

/// The host's leases on streams, for a command that holds streams (see
/// `eventsock_client::Leases`): one eventsock process per stream, unless asked to take it.
pub(crate) fn leases() -> anyhow::Result<eventsock_client::Leases> {
    Ok(eventsock_client::Leases::new(
        eventsock_client::Leases::default_dir(),
    )?)
}

/// Why a supervisor did not start, in the command's words: a stream another eventsock process
/// holds names it, and the way out.
pub(crate) fn not_started(e: eventsock_client::ClientError) -> anyhow::Error {
    use eventsock_client::{ClientError, LeaseError};
    match e {
        ClientError::Lease(held @ LeaseError::Held { .. }) => anyhow::anyhow!(
            "{held}; nothing was connected (the server would have given this process the stream and left the other silent). Stop that process, or take the stream with --take: it stands down, and takes the stream back when this one ends. To look without taking a stream that eventsock bridge holds: eventsock tail --nats URL"
        ),
        e => e.into(),
    }
}

/// Parses `500ms`, `5s`, `1m`...
pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("\"{s}\" is not a duration such as 500ms or 5s: {e}"))
}

/// Resolves on Ctrl-C or SIGTERM: the library's, which every subcommand stops on.
pub(crate) use eventsock::terminated;
