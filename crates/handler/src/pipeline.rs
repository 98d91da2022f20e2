//! [`Pipeline`]: typed steps that read left to right, ending in a handler.

use crate::route::{fan_out, BoxError, Flow, HandlerError, Route};
use actix::{Message, Recipient};
use std::future::Future;
use std::sync::Arc;

type Step<In, V> = dyn Fn(In) -> Option<V> + Send + Sync;

/// Steps from an `In` value to a `V` value, each of which may drop it: `filter`, `map`,
/// `filter_map`, `inspect`, `dedup`. End one with a handler ([`Pipeline::endpoint`],
/// [`Pipeline::to`], [`Pipeline::to_all`], [`Pipeline::branch`], [`Pipeline::to_route`]) to get
/// a [`Route<In>`].
///
/// ```
/// use eventsock_handler::{Pipeline, Route};
///
/// let route: Route<u32> = Pipeline::<u32>::new()
///     .filter(|n| n % 2 == 0)
///     .map(|n| n * 10)
///     .endpoint(|n| async move {
///         println!("{n}");
///         Ok::<_, std::convert::Infallible>(())
///     });
/// ```
pub struct Pipeline<In, V = In> {
    step: Arc<Step<In, V>>,
}

impl<In, V> Clone for Pipeline<In, V> {
    fn clone(&self) -> Self {
        Pipeline {
            step: self.step.clone(),
        }
    }
}

impl<In, V> std::fmt::Debug for Pipeline<In, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pipeline")
    }
}

impl<In: 'static> Pipeline<In, In> {
    /// A pipeline that passes every value.
    pub fn new() -> Self {
        Pipeline {
            step: Arc::new(Some),
        }
    }
}

impl<In: 'static> Default for Pipeline<In, In> {
    fn default() -> Self {
        Self::new()
    }
}

impl<In: 'static, V: 'static> Pipeline<In, V> {
    fn then<U: 'static>(
        self,
        next: impl Fn(V) -> Option<U> + Send + Sync + 'static,
    ) -> Pipeline<In, U> {
        let step = self.step;
        Pipeline {
            step: Arc::new(move |v| step(v).and_then(&next)),
        }
    }

    /// Keeps the values for which `f` is true.
    pub fn filter(self, f: impl Fn(&V) -> bool + Send + Sync + 'static) -> Self {
        self.then(move |v| f(&v).then_some(v))
    }

    /// Turns each value into another.
    pub fn map<U: 'static>(self, f: impl Fn(V) -> U + Send + Sync + 'static) -> Pipeline<In, U> {
        self.then(move |v| Some(f(v)))
    }

    /// Turns each value into another, or drops it.
    pub fn filter_map<U: 'static>(
        self,
        f: impl Fn(V) -> Option<U> + Send + Sync + 'static,
    ) -> Pipeline<In, U> {
        self.then(f)
    }

    /// Looks at each value (to log or count it) and passes it on.
    pub fn inspect(self, f: impl Fn(&V) + Send + Sync + 'static) -> Self {
        self.then(move |v| {
            f(&v);
            Some(v)
        })
    }

    /// Drops values whose key `dedup` has seen within its window. Share one [`Dedup`](crate::Dedup)
    /// between pipelines to drop a value seen on another (as `send.message` and
    /// `messages.upsert` carry the same message).
    pub fn dedup(
        self,
        dedup: &crate::Dedup,
        key: impl Fn(&V) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        let dedup = dedup.clone();
        self.filter(move |v| key(v).is_none_or(|k| dedup.first_time(k)))
    }

    /// Ends with a route: values the steps drop are [`Flow::Skipped`].
    pub fn to_route(self, route: Route<V>) -> Route<In> {
        let step = self.step;
        Route::new(move |input| {
            let next = step(input).map(|v| route.call(v));
            async move {
                match next {
                    Some(fut) => fut.await,
                    None => Ok(Flow::Skipped),
                }
            }
        })
    }

    /// Ends with an async function: `|v| async move { ...; Ok(()) }`.
    pub fn endpoint<F, Fut, E>(self, f: F) -> Route<In>
    where
        F: Fn(V) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + 'static,
        E: Into<BoxError>,
    {
        self.to_route(Route::from_fn(f))
    }

    /// Ends with a handler actor: waits until it has handled the value.
    pub fn to(self, handler: Recipient<V>) -> Route<In>
    where
        V: Message<Result = ()> + Send,
    {
        self.to_route(to_actor(handler))
    }

    /// Ends with several handler actors, each getting every value, concurrently.
    pub fn to_all(self, handlers: impl IntoIterator<Item = Recipient<V>>) -> Route<In>
    where
        V: Message<Result = ()> + Send + Clone,
    {
        self.to_route(fan_out(handlers.into_iter().map(to_actor)))
    }

    /// Ends with branches: the first that takes the value wins.
    pub fn branch(self, routes: impl IntoIterator<Item = Route<V>>) -> Route<In>
    where
        V: Clone,
    {
        self.to_route(crate::route::branch(routes))
    }
}

/// A route to a handler actor. A stopped (or panicked) actor gives [`HandlerError::Stopped`].
pub fn to_actor<V>(handler: Recipient<V>) -> Route<V>
where
    V: Message<Result = ()> + Send + 'static,
{
    Route::new(move |v| {
        let sent = handler.send(v);
        async move {
            sent.await.map_err(|_| HandlerError::Stopped)?;
            Ok(Flow::Taken)
        }
    })
}
