//! Errors of the client crate.

/// What can go wrong setting up or changing subscriptions. Connection failures at run time are
/// not errors here: they are retried, and reported as [`crate::Lifecycle`] messages and status.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A source cannot be made from the token (its claims cannot be read, or it names no
    /// instance).
    #[error(transparent)]
    Source(#[from] eventsock_core::SourceError),
    /// Nothing to subscribe to: no source fits the registered handlers.
    #[error("no subscription: register a handler whose payload fits a source's protocol")]
    NothingToSubscribe,
    /// Another supervisor in this process already holds this (endpoint, instance, event): the
    /// server keeps one socket per pair, so a second would silently starve one of the two.
    #[error("{endpoint} {instance} `{event}` is already subscribed by another supervisor in this process; register the handler there")]
    AlreadyHeld {
        /// The endpoint.
        endpoint: String,
        /// The instance.
        instance: String,
        /// The event.
        event: String,
    },
    /// A [`ClientConfig`](crate::ClientConfig) setting that cannot work.
    #[error(transparent)]
    Config(#[from] crate::ConfigError),
    /// An event the source's server never serves: its socket would be refused forever.
    #[error(
        "the {protocol} CodeChat server does not serve `{}`{}",
        eventsock_core::human::escaped(event),
        did_you_mean(suggestions)
    )]
    Unserved {
        /// The event.
        event: String,
        /// The source's protocol.
        protocol: eventsock_core::Protocol,
        /// Served names that look like it.
        suggestions: Vec<String>,
    },
    /// The supervisor is shutting down or gone.
    #[error("the supervisor is not running")]
    Stopped,
    /// Another eventsock process holds a stream, or the lease folder cannot be used (see
    /// [`SupervisorBuilder::leases`](crate::SupervisorBuilder::leases)).
    #[error(transparent)]
    Lease(#[from] crate::LeaseError),
}

fn did_you_mean(suggestions: &[String]) -> String {
    match suggestions {
        [] => String::new(),
        [one] => format!("; did you mean `{one}`?"),
        many => format!("; did you mean one of `{}`?", many.join("`, `")),
    }
}
