//! What a refused handshake answered, beyond its status.
//!
//! awc reports a refused WebSocket handshake by its status alone (`InvalidResponseStatus`) and
//! drops the headers, so a `429 Too Many Requests` would lose its `Retry-After`. [`Heads`] is an
//! awc middleware that sees every handshake's response head first and keeps what a refusal said,
//! keyed by the request's URI, until the connection that made it asks with [`Heads::forget`].

use actix_http::header::{HeaderMap, HttpDate, RETRY_AFTER};
use actix_http::StatusCode;
use actix_service::Service;
use awc::error::SendRequestError;
use awc::http::Uri;
use awc::{ConnectRequest, ConnectResponse};
use futures_util::future::LocalBoxFuture;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

/// What a refused handshake's head said.
#[derive(Debug, Clone, Default)]
pub(crate) struct Head {
    /// `Retry-After`, as a delay from now.
    pub(crate) retry_after: Option<Duration>,
}

/// The heads of refused handshakes not yet collected, by authority and path (the same client
/// serves every connection of a supervisor's arbiter). See the module docs.
#[derive(Clone, Default)]
pub(crate) struct Heads(Rc<RefCell<HashMap<String, Head>>>);

impl std::fmt::Debug for Heads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Heads")
    }
}

/// The key of a request: authority, path and query (the token is in it; it is never shown).
fn key(uri: &Uri) -> String {
    format!(
        "{}{}",
        uri.authority().map(|a| a.as_str()).unwrap_or_default(),
        uri.path_and_query().map(|p| p.as_str()).unwrap_or_default()
    )
}

impl Heads {
    /// Takes what the refusal of a handshake to `url` said, if it was refused.
    pub(crate) fn forget(&self, url: &str) -> Option<Head> {
        let uri: Uri = url.parse().ok()?;
        self.0.borrow_mut().remove(&key(&uri))
    }
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at: SystemTime = value.parse::<HttpDate>().ok()?.into();
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

impl<S> awc::middleware::Transform<S, ConnectRequest> for Heads
where
    S: Service<ConnectRequest, Response = ConnectResponse, Error = SendRequestError> + 'static,
{
    type Transform = Capture<S>;

    fn new_transform(self, service: S) -> Capture<S> {
        Capture {
            heads: self,
            service: Rc::new(service),
        }
    }
}

/// The service [`Heads`] wraps around awc's connector.
pub(crate) struct Capture<S> {
    heads: Heads,
    service: Rc<S>,
}

impl<S> Service<ConnectRequest> for Capture<S>
where
    S: Service<ConnectRequest, Response = ConnectResponse, Error = SendRequestError> + 'static,
{
    type Response = ConnectResponse;
    type Error = SendRequestError;
    type Future = LocalBoxFuture<'static, Result<ConnectResponse, SendRequestError>>;

    actix_service::forward_ready!(service);

    fn call(&self, req: ConnectRequest) -> Self::Future {
        let key = match &req {
            ConnectRequest::Tunnel(head, _) => Some(key(&head.uri)),
            ConnectRequest::Client(..) => None,
        };
        let response = self.service.call(req);
        let heads = self.heads.clone();
        Box::pin(async move {
            let response = response.await?;
            if let (Some(key), ConnectResponse::Tunnel(head, _)) = (key, &response) {
                if head.status != StatusCode::SWITCHING_PROTOCOLS {
                    let refused = Head {
                        retry_after: retry_after(&head.headers),
                    };
                    heads.0.borrow_mut().insert(key, refused);
                }
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_http::header::HeaderValue;

    #[test]
    fn retry_after_in_both_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(120)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO), "a date in the past");
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }
}
