//! Prometheus metrics and health checks for a running bot: `GET /metrics` (OpenMetrics text),
//! `GET /healthz` (liveness: the supervisor runs and not every subscription has given up) and
//! `GET /readyz` (readiness: every subscription is connected).
//!
//! Values are read at each scrape from the supervisor's status, its router's handler counters
//! and its outboxes, so nothing is counted twice and nothing is kept in between.

use actix::Addr;
use actix_web::{web, App, HttpResponse, HttpServer};
use eventsock_client::{
    GetDispatcher, GetStatus, SubscriptionState, SubscriptionStatus, Supervisor,
};
use eventsock_core::HistogramSnapshot;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;

/// The metrics server of a running bot.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
}

impl Server {
    pub(crate) async fn stop(self) {
        self.handle.stop(true).await;
    }
}

#[derive(Clone)]
struct State {
    supervisor: Addr<Supervisor>,
}

/// Serves the metrics and health routes on `addr` (port 0: any free port).
pub(crate) fn serve(addr: SocketAddr, supervisor: Addr<Supervisor>) -> std::io::Result<Server> {
    let state = State { supervisor };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .route("/metrics", web::get().to(metrics))
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(addr)?;
    let addr = server.addrs().first().copied().unwrap_or(addr);
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok(Server { addr, handle })
}

type Labels = Vec<(String, String)>;

/// The status of every subscription, or `None` when the supervisor has stopped.
async fn status(state: &State) -> Option<Vec<SubscriptionStatus>> {
    state.supervisor.send(GetStatus).await.ok()
}

async fn metrics(state: web::Data<State>) -> HttpResponse {
    let subs = status(&state).await.unwrap_or_default();
    let dispatcher = state.supervisor.send(GetDispatcher).await.ok();
    let mut registry = Registry::with_prefix("eventsock");
    let counter = |registry: &mut Registry, name: &str, help: &str| {
        let f = Family::<Labels, Counter>::default();
        registry.register(name, help, f.clone());
        f
    };
    let gauge = |registry: &mut Registry, name: &str, help: &str| {
        let f = Family::<Labels, Gauge>::default();
        registry.register(name, help, f.clone());
        f
    };
    let frames = counter(&mut registry, "frames", "Frames read from the socket");
    let events = counter(
        &mut registry,
        "events",
        "Events delivered to at least one handler",
    );
    let bad = counter(
        &mut registry,
        "bad_frames",
        "Frames not delivered as their type (not JSON, wrong shape, binary)",
    );
    let dropped = counter(
        &mut registry,
        "dropped",
        "Frames dropped by the overflow policy",
    );
    let restarts = counter(
        &mut registry,
        "restarts",
        "Connections replaced after they ended",
    );
    let displacements = counter(
        &mut registry,
        "displacements",
        "Times another client was found holding the stream (saved messages never arrived)",
    );
    let up = gauge(
        &mut registry,
        "subscription_state",
        "1 for the state each subscription is in",
    );
    let queued = gauge(
        &mut registry,
        "queue_bytes",
        "Bytes of frames read and waiting for the handlers",
    );
    let histogram = |registry: &mut Registry, name: &str, help: &str| {
        let f = Family::<Labels, Observed>::default();
        registry.register(name, help, f.clone());
        f
    };
    let handled = counter(&mut registry, "handler_handled", "Events a handler handled");
    let duration = histogram(
        &mut registry,
        "handler_duration_seconds",
        "How long a handler took with an event, to its outcome",
    );
    let age = histogram(
        &mut registry,
        "handler_event_age_seconds",
        "How old a message was when its frame was read (that time less its timestamp)",
    );
    let failed = counter(
        &mut registry,
        "handler_failed",
        "Events whose handling failed",
    );
    for s in &subs {
        let labels: Labels = vec![
            ("instance".into(), s.instance.to_string()),
            ("event".into(), s.event.to_string()),
        ];
        frames.get_or_create(&labels).inc_by(s.frames);
        events.get_or_create(&labels).inc_by(s.events);
        bad.get_or_create(&labels).inc_by(s.decode_errors);
        dropped.get_or_create(&labels).inc_by(s.dropped);
        restarts.get_or_create(&labels).inc_by(s.restarts);
        displacements.get_or_create(&labels).inc_by(s.displacements);
        queued
            .get_or_create(&labels)
            .set(i64::try_from(s.queued_bytes).unwrap_or(i64::MAX));
        for state in SubscriptionState::ALL {
            let mut l = labels.clone();
            l.push(("state".into(), state_name(state).into()));
            up.get_or_create(&l).set(i64::from(s.state == state));
        }
    }
    let handlers = dispatcher
        .as_ref()
        .map(|d| d.router().handlers())
        .unwrap_or_default();
    for h in handlers {
        let labels: Labels = vec![("handler".into(), h.name)];
        handled.get_or_create(&labels).inc_by(h.handled);
        failed.get_or_create(&labels).inc_by(h.failed);
        duration.get_or_create(&labels).set(h.duration);
        age.get_or_create(&labels).set(h.age);
    }
    let outbox_queued = gauge(
        &mut registry,
        "outbox_queued",
        "Messages waiting in the outbox or in flight",
    );
    let outbox = [
        (
            "outbox_sent",
            "Messages sent (found on the server after a lost answer included)",
        ),
        (
            "outbox_found",
            "Messages found on the server after their answer was lost",
        ),
        (
            "outbox_retried",
            "Attempts after the first: sends again and lookups",
        ),
        ("outbox_failed", "Messages not sent (in doubt included)"),
        (
            "outbox_in_doubt",
            "Messages that may have been sent, not tried again",
        ),
    ]
    .map(|(name, help)| counter(&mut registry, name, help));
    let latency = histogram(
        &mut registry,
        "outbox_send_latency_seconds",
        "How long a message took from posted to sent, pacing included",
    );
    let receipts = counter(
        &mut registry,
        "outbox_receipts",
        "Delivery receipts (messages.update) for the messages sent, by status",
    );
    let to_delivered = histogram(
        &mut registry,
        "outbox_delivery_seconds",
        "How long a message took from sent to delivered (DELIVERY_ACK)",
    );
    for o in dispatcher.iter().flat_map(|d| d.outboxes()) {
        let labels: Labels = vec![("instance".into(), o.instance().to_owned())];
        let s = o.stats();
        outbox_queued
            .get_or_create(&labels)
            .set(i64::try_from(s.queued).unwrap_or(i64::MAX));
        for (family, value) in outbox
            .iter()
            .zip([s.sent, s.found, s.retried, s.failed, s.in_doubt])
        {
            family.get_or_create(&labels).inc_by(value);
        }
        latency.get_or_create(&labels).set(s.send_latency);
        to_delivered
            .get_or_create(&labels)
            .set(s.delivery.to_delivered.clone());
        for status in eventsock_rest::Delivery::ALL {
            let mut l = labels.clone();
            l.push(("status".into(), status.as_str().into()));
            receipts.get_or_create(&l).inc_by(s.delivery.count(status));
        }
    }
    let mut body = String::new();
    if encode(&mut body, &registry).is_err() {
        return HttpResponse::InternalServerError().body("cannot encode the metrics");
    }
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(body)
}

async fn healthz(state: web::Data<State>) -> HttpResponse {
    match status(&state).await {
        None => HttpResponse::ServiceUnavailable().body("the supervisor has stopped\n"),
        Some(subs)
            if !subs.is_empty() && subs.iter().all(|s| s.state == SubscriptionState::Failed) =>
        {
            HttpResponse::ServiceUnavailable().body("every subscription has given up\n")
        }
        Some(_) => HttpResponse::Ok().body("ok\n"),
    }
}

async fn readyz(state: web::Data<State>) -> HttpResponse {
    let Some(subs) = status(&state).await else {
        return HttpResponse::ServiceUnavailable().body("the supervisor has stopped\n");
    };
    let waiting: Vec<String> = subs
        .iter()
        .filter(|s| s.state != SubscriptionState::Connected)
        .map(|s| {
            let why = s
                .last_error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            format!("{} {}: {}{why}\n", s.instance, s.event, s.state)
        })
        .collect();
    if waiting.is_empty() && !subs.is_empty() {
        HttpResponse::Ok().body(format!("ready: {} subscriptions up\n", subs.len()))
    } else {
        HttpResponse::ServiceUnavailable().body(waiting.concat())
    }
}

/// A state as a label value.
fn state_name(state: SubscriptionState) -> &'static str {
    match state {
        SubscriptionState::Connecting => "connecting",
        SubscriptionState::Connected => "connected",
        SubscriptionState::BackingOff => "backing_off",
        SubscriptionState::Displaced => "displaced",
        SubscriptionState::StoodDown => "stood_down",
        SubscriptionState::Failed => "failed",
        SubscriptionState::Stopped => "stopped",
    }
}

/// A histogram read at scrape time from eventsock's own counters.
#[derive(Debug, Default)]
struct Observed(std::sync::Mutex<HistogramSnapshot>);

impl Observed {
    fn set(&self, snapshot: HistogramSnapshot) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = snapshot;
    }
}

impl TypedMetric for Observed {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Observed {
    fn encode(&self, mut encoder: MetricEncoder) -> std::fmt::Result {
        let s = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The encoder sums the buckets itself: give each its own count, then what is over the
        // last bound.
        let mut buckets = Vec::with_capacity(s.buckets.len() + 1);
        let mut below = 0;
        for &(bound, cumulative) in &s.buckets {
            buckets.push((bound, cumulative - below));
            below = cumulative;
        }
        buckets.push((f64::INFINITY, s.count - below));
        encoder.encode_histogram::<NoLabelSet>(s.sum, s.count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}
