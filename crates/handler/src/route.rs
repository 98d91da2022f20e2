//! [`Route`]: an async handler of one value, and what can be wrapped around it.

use futures_util::future::LocalBoxFuture;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// An error a handler returns.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Whether a route took a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// A handler at the end of the route handled it.
    Taken,
    /// A filter let it go: the next branch may take it, or it becomes a dead letter.
    Skipped,
}

/// Why handling failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// The handler returned an error.
    #[error("the handler failed: {0}")]
    Failed(Arc<BoxError>),
    /// The handler panicked.
    #[error("the handler panicked: {0}")]
    Panicked(String),
    /// The handler took longer than its timeout.
    #[error("the handler took longer than {}", eventsock_core::human::duration(*.0))]
    Timeout(Duration),
    /// The handler actor has stopped (or panicked); a restarting route starts a new one.
    #[error("the handler actor has stopped")]
    Stopped,
}

impl HandlerError {
    /// Wraps any error.
    pub fn failed(e: impl Into<BoxError>) -> HandlerError {
        HandlerError::Failed(Arc::new(e.into()))
    }
}

type RouteFn<V> = dyn Fn(V) -> LocalBoxFuture<'static, Result<Flow, HandlerError>> + Send + Sync;

/// An async handler of `V` values: the end of a [`Pipeline`](crate::Pipeline), a branch of
/// one, or a whole bot. Cheap to clone; runs inside a [`Bot`](crate::Bot) actor.
pub struct Route<V> {
    f: Arc<RouteFn<V>>,
}

impl<V> Clone for Route<V> {
    fn clone(&self) -> Self {
        Route { f: self.f.clone() }
    }
}

impl<V> std::fmt::Debug for Route<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Route")
    }
}

impl<V: 'static> Route<V> {
    /// A route from a function that says whether it took the value.
    pub fn new<F, Fut>(f: F) -> Route<V>
    where
        F: Fn(V) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Flow, HandlerError>> + 'static,
    {
        Route {
            f: Arc::new(move |v| Box::pin(f(v))),
        }
    }

    /// A route that takes every value: `|v| async move { ...; Ok(()) }`.
    pub fn from_fn<F, Fut, E>(f: F) -> Route<V>
    where
        F: Fn(V) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + 'static,
        E: Into<BoxError>,
    {
        Route::new(move |v| {
            let fut = f(v);
            async move {
                fut.await.map_err(HandlerError::failed)?;
                Ok(Flow::Taken)
            }
        })
    }

    /// Runs the route on `v`.
    pub fn call(&self, v: V) -> LocalBoxFuture<'static, Result<Flow, HandlerError>> {
        (self.f)(v)
    }

    /// Fails with [`HandlerError::Timeout`] when handling takes longer than `limit`.
    pub fn timeout(self, limit: Duration) -> Route<V> {
        Route::new(move |v| {
            let fut = self.call(v);
            async move {
                tokio::time::timeout(limit, fut)
                    .await
                    .unwrap_or(Err(HandlerError::Timeout(limit)))
            }
        })
    }

    /// Lets at most `count` values through per `period`, spaced evenly; the others wait their
    /// turn (nothing is dropped), so callers feel the pace.
    pub fn throttle(self, count: u32, period: Duration) -> Route<V> {
        let spacing = period / count.max(1);
        let next = Arc::new(Mutex::new(tokio::time::Instant::now()));
        Route::new(move |v| {
            let slot = {
                let mut next = next.lock().unwrap_or_else(PoisonError::into_inner);
                let now = tokio::time::Instant::now();
                let slot = (*next).max(now);
                *next = slot + spacing;
                slot
            };
            let fut = self.call(v);
            async move {
                tokio::time::sleep_until(slot).await;
                fut.await
            }
        })
    }
}

/// The first route that takes the value wins; [`Flow::Skipped`] when none does.
pub fn branch<V: Clone + 'static>(routes: impl IntoIterator<Item = Route<V>>) -> Route<V> {
    let routes: Arc<[Route<V>]> = routes.into_iter().collect();
    Route::new(move |v: V| {
        let routes = routes.clone();
        async move {
            for r in routes.iter() {
                if r.call(v.clone()).await? == Flow::Taken {
                    return Ok(Flow::Taken);
                }
            }
            Ok(Flow::Skipped)
        }
    })
}

/// Every route gets the value, concurrently; taken when any takes it. The first error is
/// returned after all have finished.
pub fn fan_out<V: Clone + 'static>(routes: impl IntoIterator<Item = Route<V>>) -> Route<V> {
    let routes: Arc<[Route<V>]> = routes.into_iter().collect();
    Route::new(move |v: V| {
        let calls: Vec<_> = routes.iter().map(|r| r.call(v.clone())).collect();
        async move {
            let mut taken = false;
            let mut error = None;
            for result in futures_util::future::join_all(calls).await {
                match result {
                    Ok(flow) => taken |= flow == Flow::Taken,
                    Err(e) => error = error.or(Some(e)),
                }
            }
            match error {
                Some(e) => Err(e),
                None if taken => Ok(Flow::Taken),
                None => Ok(Flow::Skipped),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> (Arc<Mutex<Vec<u32>>>, Route<u32>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let route = Route::from_fn(move |v: u32| {
            s.lock().unwrap().push(v);
            async { Ok::<_, BoxError>(()) }
        });
        (seen, route)
    }

    #[actix_rt::test]
    async fn branch_takes_the_first_that_takes() {
        let (a, take_a) = counter();
        let only_even = crate::Pipeline::<u32>::new()
            .filter(|v| v % 2 == 0)
            .to_route(take_a);
        let (b, take_b) = counter();
        let r = branch([only_even, take_b]);
        for v in 1..=4 {
            assert_eq!(r.call(v).await.unwrap(), Flow::Taken);
        }
        assert_eq!(*a.lock().unwrap(), [2, 4]);
        assert_eq!(*b.lock().unwrap(), [1, 3]);
        let none = branch(Vec::<Route<u32>>::new());
        assert_eq!(none.call(1).await.unwrap(), Flow::Skipped);
    }

    #[actix_rt::test]
    async fn fan_out_reaches_every_route() {
        let (a, ra) = counter();
        let (b, rb) = counter();
        assert_eq!(fan_out([ra, rb]).call(7).await.unwrap(), Flow::Taken);
        assert_eq!((a.lock().unwrap().len(), b.lock().unwrap().len()), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_fails_slow_handlers() {
        let slow = Route::from_fn(|_: u32| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, BoxError>(())
        });
        let r = slow.timeout(Duration::from_secs(1));
        assert!(matches!(r.call(1).await, Err(HandlerError::Timeout(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn throttle_spaces_calls_without_dropping() {
        let (seen, r) = counter();
        let r = r.throttle(2, Duration::from_secs(1));
        let start = tokio::time::Instant::now();
        for v in 0..5 {
            r.call(v).await.unwrap();
        }
        // Two per second: the fifth waits for the slot at 2 s.
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert_eq!(*seen.lock().unwrap(), [0, 1, 2, 3, 4]);
    }
}
