//! `eventsock sim`: a simulated CodeChat server.

use anyhow::Context;

use eventsock_core::Protocol;
use eventsock_sim::{Sim, SimConfig};

#[derive(Debug, clap::Args)]
pub(crate) struct SimArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8084)]
    port: u16,
    /// Address to bind; keep it on loopback, since the control API has no authentication.
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// The HS256 secret tokens are signed with.
    #[arg(
        long,
        env = "EVENTSOCK_SIM_SECRET",
        default_value = "eventsock-sim-secret",
        hide_env_values = true
    )]
    secret: String,
    /// Instance name (repeat for several).
    #[arg(long = "instance", default_value = "codechat")]
    instances: Vec<String>,
    /// Which server to behave like: legacy (bare frames on /ws/events), v2 (envelopes), or
    /// evolution (Evolution API: Socket.IO on /socket.io/, an apikey).
    #[arg(long, default_value = "legacy")]
    protocol: Protocol,
    /// Emit realistic traffic (messages, receipts, presence) at this many events per second
    /// on the first instance.
    #[arg(long, value_name = "RATE")]
    generate: Option<f64>,
}

pub(crate) async fn run(args: SimArgs) -> anyhow::Result<()> {
    if let Some(rate) = args.generate {
        anyhow::ensure!(
            rate.is_finite() && rate > 0.0,
            "--generate takes a positive rate, got {rate}"
        );
    }
    let listener = std::net::TcpListener::bind((args.bind.as_str(), args.port))
        .with_context(|| format!("cannot listen on {}:{}", args.bind, args.port))?;
    let addr = listener.local_addr()?;
    let sim = Sim::new(SimConfig {
        protocol: args.protocol,
        secret: args.secret,
        instances: args.instances,
        ..SimConfig::default()
    });
    let instance = sim.default_instance().to_owned();
    // The token is printed on purpose: this is a local simulator, and the point is to use it.
    match args.protocol {
        Protocol::Evolution => {
            let key = sim.api_key(&instance).unwrap_or_default();
            println!("eventsock sim: Evolution API on http://{addr}");
            println!("  instance: {instance}");
            println!("  apikey:   {key}  (the instance's token; the global key is --secret)");
            println!("  events:   Socket.IO ws://{addr}/socket.io/?EIO=4&transport=websocket, namespace /{instance}");
            println!("  reply:    POST http://{addr}/message/sendText/{instance}  (apikey: <key>)");
            println!("  control:  POST http://{addr}/control/{{emit,burst,drop,close,half-open}}");
            println!(
                "  try:      eventsock tail --protocol evolution --url http://{addr} --instance {instance} --token {key} --event messages.upsert"
            );
        }
        protocol => {
            let token = sim.mint_token(&instance, None);
            let (path, name) = match protocol {
                Protocol::V2 => ("/ws/instance/events", "the newer CodeChat server (v2)"),
                _ => ("/ws/events", "the legacy CodeChat server"),
            };
            println!("eventsock sim: {name} on http://{addr}");
            println!("  instance: {instance}");
            println!("  token:    {token}");
            println!("  events:   ws://{addr}{path}?event=messages.upsert&token=<token>");
            println!("  reply:    POST http://{addr}/message/sendText/{instance}  (Authorization: Bearer <token>)");
            println!(
                "  control:  POST http://{addr}/control/{{emit,burst,drop,close,half-open,token,revoke}}"
            );
            println!(
                "  try:      eventsock tail --url http://{addr} --token {token} --event messages.upsert"
            );
        }
    }
    if let Some(rate) = args.generate {
        println!("  traffic:  {rate} events/s on {instance} (messages.upsert, messages.update, presence)");
        actix_rt::spawn(eventsock_sim::generate(sim.clone(), instance, rate));
    }
    println!("Ctrl-C stops it.");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    };
    eventsock_sim::run(listener, sim, shutdown).await?;
    Ok(())
}
