//! One call to run a bot: [`Run::run`] (blocking, for `main`) and [`Run::start`] (async, for
//! programs with their own runtime, and tests).
//!
//! Both build the [`Source`] and its REST client (sharing the token provider) from
//! [`Settings`], start a [`Supervisor`] on the router, and, when asked, serve metrics and health
//! checks. [`Running`] is the bot at work: it stops on Ctrl-C, SIGTERM or a future of yours,
//! and lets the handlers finish what was read (a graceful drain).

use actix::Addr;
use eventsock_client::{
    Backfill, ClientConfig, ClientError, LeaseError, Leases, Shutdown, SubscriptionState,
    SubscriptionStatus, Supervisor,
};
use eventsock_core::{human, Protocol, Source, SourceError, Token};
use eventsock_handler::Router;
use futures_util::future::LocalBoxFuture;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

/// Where and how a bot runs. [`Settings::from_env`] reads them from the command line and the
/// environment; build one by hand to run from code.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The server, in any form the protocol's docs write it: `http://localhost:8084`, or an
    /// event socket's URL such as `ws://localhost:8084/ws/events` (`--url`, `EVENTSOCK_URL`).
    /// `None`: the built-in simulator, with the `sim` feature.
    pub url: Option<String>,
    /// The instance's token (`--token-file PATH`, `EVENTSOCK_TOKEN_FILE`; or `--token`,
    /// `EVENTSOCK_TOKEN`).
    pub token: Option<Token>,
    /// The instance (`--instance NAME`, `EVENTSOCK_INSTANCE`): needed on Evolution API, whose
    /// key names none; on CodeChat the token names it.
    pub instance: Option<String>,
    /// The server's protocol (`--protocol legacy|v2|evolution`, `EVENTSOCK_PROTOCOL`); by default the one
    /// the URL's path names, else legacy.
    pub protocol: Option<Protocol>,
    /// Serve Prometheus metrics (`/metrics`) and health checks (`/healthz`, `/readyz`) on this
    /// address (`--metrics ADDR`, `EVENTSOCK_METRICS`; needs the `metrics` feature).
    pub metrics: Option<SocketAddr>,
    /// Recover the `messages.upsert` events of every gap over REST (`--backfill`,
    /// `EVENTSOCK_BACKFILL=1`), keeping the checkpoint in a file (`--checkpoint FILE`,
    /// `EVENTSOCK_CHECKPOINT`; implies `--backfill`).
    pub backfill: Option<Backfill>,
    /// Also hold the streams in this NATS server (`--lease-nats URL`, `EVENTSOCK_LEASE_NATS`;
    /// needs the `nats` feature), as `eventsock bridge` does: an eventsock process on another
    /// host of that NATS then refuses them too, or takes them with `--take`.
    pub lease_nats: Option<String>,
    /// Take the streams another eventsock process of this host holds (`--take`,
    /// `EVENTSOCK_TAKE=1`): it stands down, and takes them back when this bot ends. Without
    /// it, a bot whose stream another eventsock process holds does not start.
    pub take: bool,
    /// Connection settings.
    pub config: ClientConfig,
}

impl Settings {
    /// Reads `--url`, `--token-file` (or `--token`, which every user of the machine can read with
    /// `ps`: a warning says so), `--protocol`, `--metrics`, `--checkpoint`, `--lease-nats` (each
    /// also as `--name=value`), `--backfill` and `--take` from the command line, else
    /// `EVENTSOCK_URL`, `EVENTSOCK_TOKEN_FILE` (or `EVENTSOCK_TOKEN`), `EVENTSOCK_PROTOCOL`,
    /// `EVENTSOCK_METRICS`, `EVENTSOCK_CHECKPOINT`, `EVENTSOCK_LEASE_NATS`, `EVENTSOCK_BACKFILL`
    /// and `EVENTSOCK_TAKE`. A token file's token wins over a token. Other arguments are left to
    /// the program.
    pub fn from_env() -> Result<Settings, RunError> {
        Settings::from_args(std::env::args().skip(1), |name| std::env::var(name).ok())
    }

    /// [`Settings::from_env`] on given arguments and variables.
    pub fn from_args(
        args: impl IntoIterator<Item = String>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, RunError> {
        let args: Vec<String> = args.into_iter().collect();
        let flag = |name: &str| -> Option<String> {
            let mut it = args.iter();
            while let Some(a) = it.next() {
                if a == name {
                    // `--token --url x`: the token is missing, not "--url".
                    return it.next().filter(|v| !v.starts_with("--")).cloned();
                }
                if let Some(v) = a.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
                    return Some(v.to_owned());
                }
            }
            None
        };
        let get = |flag_name: &str, var_name: &str| {
            flag(flag_name).or_else(|| var(var_name).filter(|v| !v.is_empty()))
        };
        let protocol = get("--protocol", "EVENTSOCK_PROTOCOL")
            .map(|p| p.parse::<Protocol>().map_err(RunError::Setting))
            .transpose()?;
        let metrics = get("--metrics", "EVENTSOCK_METRICS")
            .map(|m| {
                m.parse::<SocketAddr>().map_err(|_| {
                    RunError::Setting(format!(
                        "--metrics \"{}\" is not an address such as 127.0.0.1:9000",
                        human::escaped(&m)
                    ))
                })
            })
            .transpose()?;
        let checkpoint = get("--checkpoint", "EVENTSOCK_CHECKPOINT");
        let backfill = args.iter().any(|a| a == "--backfill")
            || var("EVENTSOCK_BACKFILL").is_some_and(|v| {
                !matches!(
                    v.to_ascii_lowercase().as_str(),
                    "" | "0" | "false" | "no" | "off"
                )
            })
            || checkpoint.is_some();
        let backfill = backfill.then(|| match checkpoint {
            Some(path) => Backfill::new().checkpoint(path),
            None => Backfill::new(),
        });
        let take = args.iter().any(|a| a == "--take")
            || var("EVENTSOCK_TAKE").is_some_and(|v| {
                !matches!(
                    v.to_ascii_lowercase().as_str(),
                    "" | "0" | "false" | "no" | "off"
                )
            });
        let token = match get("--token-file", "EVENTSOCK_TOKEN_FILE") {
            Some(path) => Some(
                Token::from_file(&path)
                    .map_err(|e| RunError::Setting(format!("--token-file: {e}")))?,
            ),
            None => {
                if flag("--token").is_some() {
                    tracing::warn!(
                        "a token given with --token can be read by every user of this machine (ps); give it with EVENTSOCK_TOKEN or --token-file PATH"
                    );
                }
                get("--token", "EVENTSOCK_TOKEN").map(Token::new)
            }
        };
        Ok(Settings {
            backfill,
            url: get("--url", "EVENTSOCK_URL"),
            token,
            instance: get("--instance", "EVENTSOCK_INSTANCE"),
            protocol,
            metrics,
            take,
            lease_nats: get("--lease-nats", "EVENTSOCK_LEASE_NATS"),
            config: ClientConfig::default(),
        })
    }
}

/// Why a bot could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// No server was given and the simulator is not compiled in.
    #[error("no server given: pass --url URL and --token-file PATH, or set EVENTSOCK_URL and EVENTSOCK_TOKEN (with the `sim` feature, no URL runs against the built-in simulator)")]
    NoServer,
    /// A server without a token, or a token without a server.
    #[error("give both --url and --token-file (or EVENTSOCK_URL and EVENTSOCK_TOKEN); with neither, a bot built with the `sim` feature runs against the built-in simulator")]
    Incomplete,
    /// A setting that cannot be used.
    #[error("{0}")]
    Setting(String),
    /// The URL or the token cannot make a source.
    #[error("{}", in_flags(.0))]
    Source(#[from] SourceError),
    /// The supervisor refused to start.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The simulator could not start.
    #[error("cannot start the built-in simulator: {0}")]
    Sim(std::io::Error),
    /// The metrics address cannot be served.
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A source error in the words of the settings that `run` and the `eventsock` command read
/// (`--url`, `--token`, `--protocol`): the library says what is wrong, this says which flag.
fn in_flags(e: &SourceError) -> String {
    match e {
        SourceError::ProtocolMismatch { path, named, given } => format!(
            "--url ends in {path}, a socket of the {named} server, but --protocol is {given}: drop one of the two"
        ),
        SourceError::Url(eventsock_core::EndpointError::TokenInUrl) => {
            format!("--url: {e} (give it with --token-file or EVENTSOCK_TOKEN)")
        }
        SourceError::Url(_) => format!("--url: {e}"),
        SourceError::NoInstance => "--instance: an Evolution API key (and a token without claims) names no instance: pass --instance NAME or set EVENTSOCK_INSTANCE".to_owned(),
        SourceError::InstanceMismatch { .. } | SourceError::InstanceName(_) => {
            format!("--instance: {e}")
        }
        _ => format!("--token: {e}"),
    }
}

/// Runs a [`Router`]: what `Router::run` and `Router::start` are.
pub trait Run {
    /// Runs the bot from [`Settings::from_env`] until Ctrl-C or SIGTERM, then lets its handlers
    /// finish what was read. For `fn main`: it starts the runtime itself, prints where it
    /// listens and every warning to standard error, and on a setting that cannot work, or when
    /// every subscription has given up, prints why and exits with status 1 (so that a service
    /// manager restarts it). Do not call it inside a running actix or tokio runtime; use
    /// [`Run::start`] there.
    fn run(self);

    /// Starts the bot with `settings` on the current actix system.
    fn start(self, settings: Settings) -> LocalBoxFuture<'static, Result<Running, RunError>>;
}

impl Run for Router {
    fn run(self) {
        init_logs();
        let system = actix_rt::System::new();
        let result = system.block_on(async move {
            let running = self.start(Settings::from_env()?).await?;
            eprintln!("eventsock: {}", running.describe());
            let gave_up = tokio::select! {
                _ = terminated() => false,
                _ = running.given_up() => true,
            };
            let status = running.stop().await;
            Ok::<_, RunError>(gave_up.then(|| {
                let reasons: Vec<String> = status
                    .iter()
                    .map(|s| {
                        format!(
                            "{} {}: {}",
                            human::escaped(&s.instance),
                            s.event,
                            s.last_error.as_deref().unwrap_or("given up")
                        )
                    })
                    .collect();
                reasons.join("; ")
            }))
        });
        match result {
            Ok(None) => {}
            Ok(Some(reasons)) => {
                eprintln!("eventsock: every subscription gave up, so the bot stops: {reasons}");
                std::process::exit(1);
            }
            Err(e) => {
                eprintln!("eventsock: {e}");
                std::process::exit(1);
            }
        }
    }

    fn start(self, settings: Settings) -> LocalBoxFuture<'static, Result<Running, RunError>> {
        Box::pin(start(self, settings))
    }
}

/// The built-in simulator a bot runs against when no server is given.
#[cfg(feature = "sim")]
type Sim = eventsock_sim::Embedded;
#[cfg(not(feature = "sim"))]
type Sim = std::convert::Infallible;

async fn start(router: Router, settings: Settings) -> Result<Running, RunError> {
    let (source, sim) = source(&settings)?;
    let mut builder = Supervisor::builder();
    if let Some(backfill) = settings.backfill.clone() {
        builder = builder.backfill(backfill);
    }
    if settings.url.is_some() {
        let leases =
            Leases::new(Leases::default_dir()).map_err(|e| RunError::Setting(e.to_string()))?;
        builder = builder.leases(leases).take(settings.take);
    }
    let lease = hold_in_nats(&settings, &source).await?;
    let supervisor = builder
        .config(settings.config.clone())
        .source(source.clone())
        .router(router.clone())
        .start()
        .map_err(|e| match e {
            ClientError::Lease(held @ LeaseError::Held { .. }) => RunError::Setting(format!(
                "{held}; nothing was connected. Stop that process, or start this bot with --take: the other stands down, and takes the stream back when this bot ends"
            )),
            e => e.into(),
        })?;
    #[cfg(feature = "metrics")]
    let metrics = match settings.metrics {
        Some(addr) => match crate::metrics::serve(addr, supervisor.clone()) {
            Ok(server) => Some(server),
            Err(source) => {
                // Nothing half-started is left behind: the supervisor lets its claims go.
                let _ = supervisor.send(Shutdown).await;
                return Err(RunError::Metrics { addr, source });
            }
        },
        None => None,
    };
    #[cfg(not(feature = "metrics"))]
    if let Some(addr) = settings.metrics {
        let _ = supervisor.send(Shutdown).await;
        return Err(RunError::Metrics {
            addr,
            source: std::io::Error::other("built without the `metrics` feature"),
        });
    }
    #[cfg(feature = "nats")]
    let lease = lease.map(|lease| keep(lease, supervisor.clone()));
    #[cfg(not(feature = "nats"))]
    let () = lease.unwrap_or(());
    Ok(Running {
        supervisor,
        router,
        source,
        sim,
        #[cfg(feature = "metrics")]
        metrics,
        #[cfg(feature = "nats")]
        lease,
    })
}

/// The lease in NATS that `settings` ask for, held (or taken) before anything connects.
#[cfg(feature = "nats")]
async fn hold_in_nats(
    settings: &Settings,
    source: &Source,
) -> Result<Option<eventsock_nats::KvLease>, RunError> {
    let Some(url) = &settings.lease_nats else {
        return Ok(None);
    };
    let endpoint = source.endpoint().to_string();
    let ttl = Duration::from_secs(15);
    let held = eventsock_nats::KvLease::hold(url, &endpoint, source.instance(), ttl, settings.take);
    // NATS may be down: its connection is retried until it answers, or Ctrl-C.
    let held = tokio::select! {
        held = held => held,
        _ = terminated() => {
            return Err(RunError::Setting(
                "stopped before NATS answered for --lease-nats".into(),
            ))
        }
    };
    held.map(Some).map_err(|e| match e {
        held @ LeaseError::Held { .. } => RunError::Setting(format!(
            "{held}; nothing was connected. Stop that process, or start this bot with --take: the other stands down, and takes the stream back when this bot ends"
        )),
        e => RunError::Setting(e.to_string()),
    })
}

#[cfg(not(feature = "nats"))]
async fn hold_in_nats(settings: &Settings, _: &Source) -> Result<Option<()>, RunError> {
    match settings.lease_nats {
        Some(_) => Err(RunError::Setting(
            "--lease-nats needs eventsock's `nats` feature".into(),
        )),
        None => Ok(None),
    }
}

/// Keeps `lease` for `supervisor` until told to stop, then lets it go.
#[cfg(feature = "nats")]
fn keep(mut lease: eventsock_nats::KvLease, supervisor: Addr<Supervisor>) -> Keeper {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = actix_rt::spawn(async move {
        tokio::select! {
            _ = stopped => {}
            _ = lease.keep_for(&supervisor) => {}
        }
        lease.release().await;
    });
    Keeper { stop, task }
}

/// The task that keeps a lease in NATS, and how to stop it.
#[cfg(feature = "nats")]
struct Keeper {
    stop: tokio::sync::oneshot::Sender<()>,
    task: actix_rt::task::JoinHandle<()>,
}

/// The source `settings` name, or the built-in simulator's.
fn source(settings: &Settings) -> Result<(Source, Option<Sim>), RunError> {
    match (&settings.url, &settings.token) {
        (Some(url), Some(token)) => Ok((
            Source::for_instance(
                url,
                token.clone(),
                settings.protocol,
                settings.instance.as_deref(),
            )?,
            None,
        )),
        (None, None) => simulated(settings.protocol),
        _ => Err(RunError::Incomplete),
    }
}

#[cfg(feature = "sim")]
fn simulated(protocol: Option<Protocol>) -> Result<(Source, Option<Sim>), RunError> {
    let protocol = protocol.unwrap_or_default();
    let sim = eventsock_sim::Embedded::start(eventsock_sim::SimConfig {
        protocol,
        ..Default::default()
    })
    .map_err(RunError::Sim)?;
    let instance = sim.sim.default_instance().to_owned();
    let token = match protocol {
        Protocol::Evolution => sim.sim.api_key(&instance).unwrap_or_default(),
        _ => sim.sim.mint_token(&instance, None),
    };
    let source = Source::for_instance(
        &sim.url(),
        Token::new(token),
        Some(protocol),
        Some(&instance),
    )?;
    Ok((source, Some(sim)))
}

#[cfg(not(feature = "sim"))]
fn simulated(_: Option<Protocol>) -> Result<(Source, Option<Sim>), RunError> {
    Err(RunError::NoServer)
}

/// A bot at work. Dropping it leaves the supervisor running; [`Running::stop`] or
/// [`Running::until`] end it gracefully.
pub struct Running {
    supervisor: Addr<Supervisor>,
    router: Router,
    source: Source,
    #[cfg_attr(not(feature = "sim"), allow(dead_code))]
    sim: Option<Sim>,
    #[cfg(feature = "metrics")]
    metrics: Option<crate::metrics::Server>,
    #[cfg(feature = "nats")]
    lease: Option<Keeper>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("source", &self.source)
            .field("simulated", &self.sim.is_some())
            .field("metrics", &self.metrics_addr())
            .finish_non_exhaustive()
    }
}

impl Running {
    /// The supervisor, to ask for its status or add handlers.
    pub fn supervisor(&self) -> &Addr<Supervisor> {
        &self.supervisor
    }

    /// The router the bot delivers through.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The server and instance it listens to.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The built-in simulator, when no server was given: emit events into it, read what the bot
    /// sent.
    #[cfg(feature = "sim")]
    pub fn sim(&self) -> Option<&eventsock_sim::Sim> {
        self.sim.as_ref().map(|s| &s.sim)
    }

    /// Where metrics and health checks are served, if they are.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        #[cfg(feature = "metrics")]
        return self.metrics.as_ref().map(|m| m.addr);
        #[cfg(not(feature = "metrics"))]
        None
    }

    /// With the built-in simulator: `rate` generated events a second (messages, receipts,
    /// presence) on its instance for `duration`, for examples and demos. Against a real server:
    /// waits for Ctrl-C or SIGTERM.
    pub async fn traffic(&self, rate: f64, duration: Duration) {
        #[cfg(feature = "sim")]
        if let Some(sim) = &self.sim {
            let instance = sim.sim.default_instance().to_owned();
            let traffic = actix_rt::spawn(eventsock_sim::generate(sim.sim.clone(), instance, rate));
            tokio::time::sleep(duration).await;
            traffic.abort();
            return;
        }
        let _ = (rate, duration);
        terminated().await;
    }

    /// One line saying where the bot listens.
    pub fn describe(&self) -> String {
        #[cfg(feature = "sim")]
        let simulated = self.sim.as_ref().map(|s| s.url());
        #[cfg(not(feature = "sim"))]
        let simulated: Option<String> = None;
        let mut line = match simulated {
            Some(url) => format!(
                "no server given (--url or EVENTSOCK_URL), so running against the built-in simulator at {url} (control API: POST {url}/control/emit), instance {}",
                human::escaped(self.source.instance())
            ),
            None => format!(
                "listening to {} ({} protocol), instance {}",
                self.source.endpoint(),
                self.source.protocol(),
                human::escaped(self.source.instance())
            ),
        };
        if let Some(addr) = self.metrics_addr() {
            line.push_str(&format!(
                "; metrics on http://{addr}/metrics, health on /healthz and /readyz"
            ));
        }
        line.push_str("; Ctrl-C stops");
        line
    }

    /// Runs until `shutdown` completes (or [`Running::given_up`]), then stops gracefully: see
    /// [`Running::stop`].
    pub async fn until(self, shutdown: impl Future<Output = ()>) -> Vec<SubscriptionStatus> {
        tokio::select! {
            _ = shutdown => {}
            _ = self.given_up() => {}
        }
        self.stop().await
    }

    /// Resolves when the bot can do nothing more: every subscription has given up (see
    /// `ClientConfig::intensity`), or the supervisor has stopped by itself.
    pub async fn given_up(&self) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            match self.supervisor.send(eventsock_client::GetStatus).await {
                Err(_) => return,
                Ok(status) => {
                    let failed = |s: &SubscriptionStatus| s.state == SubscriptionState::Failed;
                    if !status.is_empty() && status.iter().all(failed) {
                        return;
                    }
                }
            }
        }
    }

    /// Closes every connection, lets the handlers finish every event already read, gives the
    /// outboxes 10 seconds to send what they hold (what is left then is not sent, and says so in
    /// a warning; see `eventsock_client::Shutdown`), stops the metrics server and the simulator. Returns every subscription's
    /// final status.
    pub async fn stop(self) -> Vec<SubscriptionStatus> {
        let status = self.supervisor.send(Shutdown).await.unwrap_or_default();
        #[cfg(feature = "nats")]
        if let Some(keeper) = self.lease {
            let _ = keeper.stop.send(());
            let _ = keeper.task.await;
        }
        #[cfg(feature = "metrics")]
        if let Some(m) = self.metrics {
            m.stop().await;
        }
        // The simulator, if any, stops when dropped here.
        status
    }
}

/// Resolves on Ctrl-C or SIGTERM (on Ctrl-C alone where SIGTERM cannot be watched): what
/// [`Run::run`] stops on, for [`Running::until`] in programs with their own `main`.
pub async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Logs eventsock's `info` and above, other crates' warnings, to standard error (colours only on
/// a terminal, and never with `NO_COLOR`), unless the program installed a subscriber of its own.
fn init_logs() {
    use std::io::IsTerminal;
    use tracing::Level;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(Level::WARN)
        .with_target("eventsock", Level::INFO)
        .with_target("eventsock_client", Level::INFO)
        .with_target("eventsock_handler", Level::INFO)
        .with_target("eventsock_rest", Level::INFO)
        .with_target("eventsock_sim", Level::INFO);
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(colour)
                .with_writer(std::io::stderr),
        )
        .with(filter)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    /// A token file wins over a token; a file that cannot give one is a setting error that
    /// names the file and never the contents.
    #[test]
    fn a_token_file_is_read_and_its_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  file.jwt.token\n").unwrap();
        let env = |name: &str| (name == "EVENTSOCK_TOKEN").then(|| "env-token".to_owned());
        let file = path.to_str().unwrap();
        let s = Settings::from_args(args(&["--token-file", file]), env).unwrap();
        assert_eq!(s.token.as_ref().map(Token::expose), Some("file.jwt.token"));
        let by_env = |name: &str| (name == "EVENTSOCK_TOKEN_FILE").then(|| file.to_owned());
        let s = Settings::from_args(args(&[]), by_env).unwrap();
        assert_eq!(s.token.as_ref().map(Token::expose), Some("file.jwt.token"));
        std::fs::write(&path, " \n").unwrap();
        let empty = Settings::from_args(args(&["--token-file", file]), |_| None).unwrap_err();
        assert_eq!(
            empty.to_string(),
            format!("--token-file: the token file {file} is empty")
        );
        let missing = dir.path().join("nothing-here");
        let missing = missing.to_str().unwrap();
        let e = Settings::from_args(args(&["--token-file", missing]), |_| None).unwrap_err();
        assert!(
            e.to_string().starts_with(&format!(
                "--token-file: cannot read the token file {missing}: "
            )),
            "{e}"
        );
    }

    #[test]
    fn flags_win_over_the_environment_and_other_arguments_are_left_alone() {
        let env = |name: &str| match name {
            "EVENTSOCK_URL" => Some("http://from-env:8084".into()),
            "EVENTSOCK_TOKEN" => Some("env-token".into()),
            "EVENTSOCK_PROTOCOL" => Some("v2".into()),
            _ => None,
        };
        let s = Settings::from_args(
            args(&[
                "--verbose",
                "--url=ws://flag:8084/ws/events",
                "--metrics",
                "127.0.0.1:9000",
            ]),
            env,
        )
        .unwrap();
        assert_eq!(s.url.as_deref(), Some("ws://flag:8084/ws/events"));
        assert_eq!(s.token.as_ref().map(Token::expose), Some("env-token"));
        assert_eq!(s.protocol, Some(Protocol::V2));
        assert_eq!(s.metrics, Some("127.0.0.1:9000".parse().unwrap()));
        assert!(s.backfill.is_none());
        let s = Settings::from_args(args(&["--checkpoint", "cp.json"]), |_| None).unwrap();
        assert!(
            format!("{:?}", s.backfill).contains("cp.json"),
            "a checkpoint implies --backfill"
        );
        // Taking and the lease in NATS, from a flag or the environment.
        let s = Settings::from_args(args(&["--take", "--lease-nats", "nats://n:4222"]), |_| None)
            .unwrap();
        assert_eq!(
            (s.take, s.lease_nats.as_deref()),
            (true, Some("nats://n:4222"))
        );
        let var = |name: &str| match name {
            "EVENTSOCK_TAKE" => Some("1".into()),
            "EVENTSOCK_LEASE_NATS" => Some("nats://e:4222".into()),
            _ => None,
        };
        let s = Settings::from_args(args(&[]), var).unwrap();
        assert_eq!(
            (s.take, s.lease_nats.as_deref()),
            (true, Some("nats://e:4222"))
        );
        // An empty variable is no setting.
        let s = Settings::from_args(args(&[]), |_| Some(String::new())).unwrap();
        assert!(!s.take && s.lease_nats.is_none());
        assert_eq!((s.url, s.token.is_some(), s.protocol), (None, false, None));
    }

    #[test]
    fn bad_settings_say_which_and_how() {
        let none = |_: &str| None;
        let e = Settings::from_args(args(&["--protocol", "v3"]), none).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown protocol \"v3\": use legacy, v2 or evolution"
        );
        let e = Settings::from_args(args(&["--metrics", "localhost"]), none).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--metrics \"localhost\" is not an address such as 127.0.0.1:9000"
        );
        let half = Settings {
            url: Some("http://localhost:8084".into()),
            ..Settings::default()
        };
        assert!(matches!(source(&half), Err(RunError::Incomplete)));
        let not_a_jwt = Settings {
            token: Some(Token::new("abc")),
            ..half.clone()
        };
        let e = source(&not_a_jwt).unwrap_err().to_string();
        assert!(e.starts_with("--token: "), "{e}");
        // An Evolution API key names no instance: the instance is asked for.
        let no_instance = Settings {
            protocol: Some(Protocol::Evolution),
            ..not_a_jwt.clone()
        };
        let e = source(&no_instance).unwrap_err().to_string();
        assert!(e.starts_with("--instance: "), "{e}");
        let no_scheme = Settings {
            url: Some("localhost:8084".into()),
            ..not_a_jwt
        };
        let e = source(&no_scheme).unwrap_err().to_string();
        assert!(e.starts_with("--url: "), "{e}");
    }
}
