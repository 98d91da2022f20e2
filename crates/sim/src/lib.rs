//! A simulator of the CodeChat WhatsApp API server, for tests, examples, benchmarks and demos.
//!
//! It behaves like the real server wherever a client can observe it: the legacy Node server by
//! default (`/ws/events`, bare frames, `401` for every refused handshake, one socket per
//! (instance, event) with silent replacement, no server pings), or the newer server
//! ([`Protocol::V2`]: enveloped frames, 400/401/403/404 before the upgrade, pings, close codes
//! 4001, 4003 and 4008). It also serves the REST calls bots make (`sendText`, `sendReaction`,
//! `markMessageAsRead`, `updatePresence`, `findMessages`, `mediaData`, `whatsappNumbers`,
//! `refreshToken`, `connectionState`), checked as the legacy server checks them: its guards, and
//! each body against the route's JSON schema from the server's own `validate.schema.ts`
//! (`schemas/`), refused in its words. It plays WhatsApp's part too: the receipts of what an
//! instance sends (`messages.update`, [`SimConfig::receipts`], [`Sim::receipt`]), the files of
//! media messages ([`Sim::media_message`], served by `mediaData`), and the LIDs of phone numbers
//! ([`Sim::pair_lid`]). A control API emits events and misbehaves on purpose: drop every socket,
//! close with a code, go half-open, fail sends, stall or cut media downloads ([`MediaFault`]).
//!
//! Key types: [`Sim`] (the handle: emit, drop, mint tokens), [`SimConfig`], and [`run`] (or
//! [`run_tls`]), which serves a simulator on a listener until a shutdown future completes.
//!
//! ```no_run
//! use eventsock_sim::{run, Sim, SimConfig};
//!
//! # async fn demo() -> std::io::Result<()> {
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! let sim = Sim::new(SimConfig::default());
//! let token = sim.mint_token("codechat", None);
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = actix_web::rt::spawn(run(listener, sim.clone(), async { let _ = stopped.await; }));
//! // connect to ws://{addr}/ws/events?event=messages.upsert&token={token}, then:
//! sim.emit("codechat", "messages.upsert", &serde_json::json!({"keyId": "A"}));
//! let _ = stop.send(());
//! server.await.ok();
//! # let _ = (addr, token);
//! # Ok(()) }
//! ```

mod auth;
mod config;
mod contract;
mod control;
mod evolution;
mod generate;
mod hub;
mod listen;
mod rest;
mod socketio;
mod ws;

pub use auth::SimClaims;
pub use config::{Protocol, SimConfig};
pub use generate::{generate, Generator};
pub use hub::{FindMode, MediaFault, Request, SendFailure, Sent, Sim, SocketInfo, Ties, STORED};
pub use listen::Listener;

/// A simulator serving on `127.0.0.1` on a free port, inside the current actix system, until it
/// is dropped: for examples, tests and demos.
#[derive(Debug)]
pub struct Embedded {
    /// The simulator.
    pub sim: Sim,
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Embedded {
    /// Starts one. Call it inside an actix system (`#[actix::main]`, `#[actix_rt::test]`).
    pub fn start(config: SimConfig) -> std::io::Result<Embedded> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let sim = Sim::new(config);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        actix_web::rt::spawn(run(listener, sim.clone(), async {
            let _ = stopped.await;
        }));
        Ok(Embedded {
            sim,
            addr,
            _stop: stop,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

use actix_web::{web, App, HttpServer};
use std::future::Future;

/// Serves `sim` on `listener` until `shutdown` completes, then stops gracefully (open sockets
/// are ended). Runs one worker: the simulator is a test tool, and one worker keeps it cheap.
pub async fn run(
    listener: std::net::TcpListener,
    sim: Sim,
    shutdown: impl Future<Output = ()> + 'static,
) -> std::io::Result<()> {
    serve(listener, None, sim, shutdown).await
}

/// [`run`] over TLS (`https://` and `wss://`), with `tls` as the server's rustls settings.
pub async fn run_tls(
    listener: std::net::TcpListener,
    tls: rustls::ServerConfig,
    sim: Sim,
    shutdown: impl Future<Output = ()> + 'static,
) -> std::io::Result<()> {
    serve(listener, Some(tls), sim, shutdown).await
}

/// The simulator's HTTP service: its REST API, control API and WebSocket endpoints, for an
/// actix-web `App` (`App::new().configure(eventsock_sim::configure(sim))`). [`run`] serves it on
/// a socket; the test kit calls it in process.
pub fn configure(sim: Sim) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    let evolution = sim.config().protocol == eventsock_core::Protocol::Evolution;
    let data = web::Data::new(sim);
    move |cfg: &mut web::ServiceConfig| {
        if evolution {
            // Evolution API's own routes: its websocket settings, and its read marks (a POST
            // there, a PUT on CodeChat).
            cfg.route(
                "/websocket/set/{instance}",
                web::post().to(rest::set_websocket),
            )
            .route(
                "/websocket/find/{instance}",
                web::get().to(rest::find_websocket),
            )
            .route(
                "/chat/markMessageAsRead/{instance}",
                web::post().to(rest::mark_as_read),
            );
        }
        cfg.app_data(data.clone())
            .app_data(web::JsonConfig::default().limit(64 * 1024 * 1024))
            .app_data(web::PayloadConfig::default().limit(1024 * 1024))
            .configure(control::routes)
            .route(
                "/message/sendText/{instance}",
                web::post().to(rest::send_text),
            )
            .route(
                "/instance/{instance}/send/text",
                web::post().to(rest::send_text),
            )
            .route(
                "/message/sendReaction/{instance}",
                web::post().to(rest::send_reaction),
            )
            .route(
                "/chat/markMessageAsRead/{instance}",
                web::put().to(rest::mark_as_read),
            )
            .route(
                "/chat/updatePresence/{instance}",
                web::patch().to(rest::update_presence),
            )
            .route(
                "/chat/findMessages/{instance}",
                web::post().to(rest::find_messages),
            )
            .route(
                "/chat/mediaData/{instance}",
                web::post().to(rest::media_data),
            )
            .route(
                "/chat/whatsappNumbers/{instance}",
                web::post().to(rest::whatsapp_numbers),
            )
            .route(
                "/instance/refreshToken/{instance}",
                web::put().to(rest::refresh_token),
            )
            .route(
                "/instance/connectionState/{instance}",
                web::get().to(rest::connection_state),
            )
            .default_service(web::to(ws::any_path));
    }
}

async fn serve(
    listener: std::net::TcpListener,
    tls: Option<rustls::ServerConfig>,
    sim: Sim,
    shutdown: impl Future<Output = ()> + 'static,
) -> std::io::Result<()> {
    let app = configure(sim.clone());
    let server = HttpServer::new(move || App::new().configure(app.clone()))
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        // An abrupt drop must be abrupt. With a disconnect timeout (1 s by default) the connection
        // lingers that long after the response ends; ZERO disables the timer and closes at once.
        .client_disconnect_timeout(std::time::Duration::ZERO);
    let server = match tls {
        Some(tls) => server.listen_rustls_0_23(listener, tls)?,
        None => server.listen(listener)?,
    }
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        shutdown.await;
        // Sockets are long-lived; end them so the graceful stop does not wait on them.
        sim.drop_all();
        handle.stop(true).await;
    });
    server.await
}
