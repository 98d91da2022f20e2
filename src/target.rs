//! Where an example or a quick bot connects: a real server given by `--url`/`--token` (or
//! `EVENTSOCK_URL`/`EVENTSOCK_TOKEN`), else a simulator embedded in the process.

use eventsock_core::{Endpoint, Token};
use eventsock_sim::{Embedded, SimConfig};

/// The server to use, and the embedded simulator when there is one.
#[derive(Debug)]
pub struct Target {
    /// The server.
    pub endpoint: Endpoint,
    /// The instance token.
    pub token: Token,
    /// The embedded simulator, when no server was given. Dropping it stops it.
    pub sim: Option<Embedded>,
}

/// Bad `--url`/`--token` arguments.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// `--url` without `--token`, or the reverse.
    #[error("give both --url and --token (or EVENTSOCK_URL and EVENTSOCK_TOKEN), or neither to use the built-in simulator")]
    Incomplete,
    /// The URL cannot be used.
    #[error(transparent)]
    Endpoint(#[from] eventsock_core::EndpointError),
    /// The simulator could not start.
    #[error("cannot start the simulator: {0}")]
    Sim(#[from] std::io::Error),
}

impl Target {
    /// Reads `--url URL --token TOKEN` from the command line (or the environment); with
    /// neither, starts a simulator with `config` and mints a token for its first instance.
    /// Call it inside an actix system.
    pub fn from_args(config: SimConfig) -> Result<Target, TargetError> {
        let args: Vec<String> = std::env::args().collect();
        let flag = |name: &str| {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1).cloned())
        };
        let url = flag("--url").or_else(|| std::env::var("EVENTSOCK_URL").ok());
        let token = flag("--token").or_else(|| std::env::var("EVENTSOCK_TOKEN").ok());
        match (url, token) {
            (Some(url), Some(token)) => Ok(Target {
                endpoint: Endpoint::parse(&url)?,
                token: Token::new(token),
                sim: None,
            }),
            (None, None) => {
                let sim = Embedded::start(config)?;
                let instance = sim.sim.default_instance().to_owned();
                Ok(Target {
                    endpoint: Endpoint::parse(&sim.url())?,
                    token: Token::new(sim.sim.mint_token(&instance, None)),
                    sim: Some(sim),
                })
            }
            _ => Err(TargetError::Incomplete),
        }
    }
}

impl Target {
    /// With the embedded simulator: `rate` generated events per second on its first instance for
    /// `duration`. Against a real server: until Ctrl-C.
    pub async fn run_traffic(
        &self,
        rate: f64,
        duration: std::time::Duration,
    ) -> std::io::Result<()> {
        match &self.sim {
            Some(sim) => {
                let instance = sim.sim.default_instance().to_owned();
                let traffic =
                    actix_rt::spawn(eventsock_sim::generate(sim.sim.clone(), instance, rate));
                tokio::time::sleep(duration).await;
                traffic.abort();
                Ok(())
            }
            None => tokio::signal::ctrl_c().await,
        }
    }
}
