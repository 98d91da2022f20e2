//! [`SupervisorBuilder`]: sources, a router, recovery and leases, then a started [`Supervisor`].

use super::*;

/// Builds a [`Supervisor`]: sources, handlers, and who hears about lifecycle and bad frames.
pub struct SupervisorBuilder {
    pub(super) config: ClientConfig,
    pub(super) sources: Vec<Source>,
    pub(super) router: Option<Router>,
    pub(super) lifecycle: Vec<Recipient<Lifecycle>>,
    pub(super) backfill: Option<Backfill>,
    pub(super) leases: Option<Leases>,
    pub(super) take: bool,
}

impl std::fmt::Debug for SupervisorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupervisorBuilder")
            .field("config", &self.config)
            .field("sources", &self.sources)
            .field("router", &self.router)
            .finish_non_exhaustive()
    }
}

impl SupervisorBuilder {
    /// Settings for every connection.
    pub fn config(mut self, config: ClientConfig) -> Self {
        self.config = config;
        self
    }

    /// A server and instance to subscribe on (repeat for several instances).
    pub fn source(mut self, source: Source) -> Self {
        self.sources.push(source);
        self
    }

    /// Delivers through `router`, whose handlers are all the supervisor runs: every source
    /// subscribes the events they need (a handler of `legacy::MessagesUpsert` on a legacy
    /// source means `messages.upsert` on `/ws/events`). The supervisor runs it with a REST
    /// client per source, so that its handlers' [`Ctx`](eventsock_handler::Ctx) can answer,
    /// and outboxes of its own: another supervisor running the same router shares none of them.
    pub fn router(mut self, router: Router) -> Self {
        self.router = Some(router);
        self
    }

    /// Recovers the `messages.upsert` events of every gap over REST, and delivers them through
    /// the router, oldest first, each once (see [`Backfill`]). Legacy sources only.
    pub fn backfill(mut self, backfill: Backfill) -> Self {
        self.backfill = Some(backfill);
        self
    }

    /// Holds a lease on every stream in `leases` (see [`Leases`]): another eventsock process of
    /// this host that holds one of them makes [`start`](Self::start) fail with
    /// [`ClientError::Lease`] before anything connects, unless [`take`](Self::take) is set;
    /// another process that takes one of this supervisor's streams has it stand down until it
    /// lets go ([`LifecycleKind::TakenOver`]).
    pub fn leases(mut self, leases: Leases) -> Self {
        self.leases = Some(leases);
        self
    }

    /// With [`leases`](Self::leases): takes the streams another process holds, which stands
    /// down, and takes them back (recovering what it missed) when this process ends.
    pub fn take(mut self, take: bool) -> Self {
        self.take = take;
        self
    }

    /// Sends every [`Lifecycle`] change to `handler`.
    pub fn lifecycle(mut self, handler: Recipient<Lifecycle>) -> Self {
        self.lifecycle.push(handler);
        self
    }

    /// Starts the supervisor on the current arbiter. Fails when no handler fits any source, or
    /// when another supervisor in this process holds one of the subscriptions.
    pub fn start(self) -> Result<Addr<Supervisor>, ClientError> {
        self.config.validate()?;
        let router = self.router.unwrap_or_else(|| Router::builder().build());
        let mut dispatcher = Dispatcher::new(router);
        // One REST client per source, with the connections' TLS settings.
        let rest_of = |source: &Source| {
            let rest = RestClient::for_source(source);
            match &self.config.tls {
                Some(tls) => rest.tls(tls.clone()),
                None => rest,
            }
        };
        for source in &self.sources {
            if !dispatcher.has_rest(source.instance()) {
                dispatcher = dispatcher.rest(rest_of(source));
            }
        }
        if self.backfill.is_some() {
            for s in self.sources.iter().filter(|s| s.protocol() == Protocol::V2) {
                tracing::warn!(
                    instance = %human::escaped(s.instance()),
                    "missed messages are recovered for legacy CodeChat and Evolution API sources only; this one speaks v2"
                );
            }
        }
        let recovery = self.backfill.map(|b| Arc::new(Recovery::load(b)));
        if let Some(r) = &recovery {
            dispatcher = dispatcher.gate(r.clone());
        }
        // Recovery's own clients: one try per page, each bounded by the page's time limit.
        let rest = match &recovery {
            Some(r) => self
                .sources
                .iter()
                .map(|s| {
                    let rest = rest_of(s).timeout(r.settings.page_timeout).retries(0);
                    (s.instance().to_owned(), rest)
                })
                .collect(),
            None => HashMap::new(),
        };
        let mut sup = Supervisor {
            recovery,
            rest,
            config: Arc::new(self.config),
            sources: self.sources,
            subs: Vec::new(),
            index: HashMap::new(),
            lifecycle: self.lifecycle,
            dispatcher: watch::Sender::new(dispatcher),
            client: None,
            heads: Heads::default(),
            shutting_down: false,
            next_retry: 0,
            leases: self.leases,
            take: self.take,
        };
        sup.register()?;
        if sup.subs.is_empty() {
            return Err(ClientError::NothingToSubscribe);
        }
        Ok(sup.start())
    }
}
