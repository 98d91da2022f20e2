//! A token that renews itself before it expires: [`RefreshingToken`].
//!
//! A CodeChat server started with `AUTHENTICATION_JWT_EXPIRES_IN` other than `0` issues tokens
//! that expire after an hour, and refuses an expired token on every new socket and every REST
//! call. `PUT /instance/refreshToken/{instance}` with `{"oldToken": JWT}` (no `Authorization`;
//! the old token may have expired) answers `201` with the new token in `token`, and refuses the
//! old one for later refreshes (`400 Invalid "oldToken"`). With the shipped default (`0`) a token
//! carries `exp == iat` and its expiry is never checked: such a token is never refreshed.

use crate::client::{request, Method};
use crate::RestError;
use eventsock_core::human::duration;
use eventsock_core::{Endpoint, Token};
use eventsock_core::{LocalBoxFuture, TokenProvider, TokenProviderError};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why a token could not be set up or renewed. The token itself is never part of it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshError {
    /// The token's claims cannot be read, or name no instance.
    #[error("the token cannot be refreshed: {0}")]
    Token(String),
    /// The refresh call failed.
    #[error("the server did not refresh the token: {0}")]
    Rest(#[from] RestError),
    /// The server answered without a `token`.
    #[error("the server's refresh answer has no token")]
    NoToken,
    /// The token file could not be read or written.
    #[error("token file {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// A [`TokenProvider`] that renews an expiring token over REST ahead of its expiry and when the
/// server refuses it (a 401, a close with 4001), and keeps the newest in a file if asked, so a
/// restart does not lose it. Cheap to clone; share one between the sockets and the
/// [`RestClient`](crate::RestClient) (through [`Source::with_provider`](eventsock_core::Source::with_provider)
/// and [`RestClient::for_source`](crate::RestClient::for_source)).
#[derive(Clone)]
pub struct RefreshingToken {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Endpoint,
    instance: String,
    current: Mutex<Token>,
    /// Set when the server refused the current token: renew before the next use.
    stale: AtomicBool,
    ahead: Option<Duration>,
    file: Option<PathBuf>,
    timeout: Duration,
    /// One refresh at a time: the server refuses a second refresh of the same old token.
    gate: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for RefreshingToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshingToken")
            .field("endpoint", &self.inner.endpoint)
            .field("instance", &self.inner.instance)
            .field("file", &self.inner.file)
            .finish_non_exhaustive()
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// `(iat, exp)` of a token that expires; `None` for one that does not (no `exp`, or the
/// `exp == iat` that CodeChat writes when expiry is off).
fn lifetime(token: &Token) -> Option<(i64, i64)> {
    let claims = token.claims().ok()?;
    let exp = claims.exp?;
    let iat = claims.iat.unwrap_or(exp);
    (exp > iat).then_some((iat, exp))
}

impl RefreshingToken {
    /// Renews `token`, a token of an instance on `endpoint`, when it is about to expire.
    pub fn new(endpoint: &Endpoint, token: Token) -> Result<RefreshingToken, RefreshError> {
        let claims = token
            .claims()
            .map_err(|e| RefreshError::Token(e.to_string()))?;
        let instance = claims
            .instance_name
            .ok_or_else(|| RefreshError::Token("it names no instance".into()))?;
        Ok(RefreshingToken {
            inner: Arc::new(Inner {
                endpoint: endpoint.clone(),
                instance,
                current: Mutex::new(token),
                stale: AtomicBool::new(false),
                ahead: None,
                file: None,
                timeout: Duration::from_secs(30),
                gate: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// Keeps the newest token in `path`, written atomically (a temporary file renamed over it,
    /// readable by the owner only). If `path` already holds a newer token of the same instance
    /// (from an earlier run that refreshed), that one is used.
    pub fn persist(self, path: impl AsRef<Path>) -> Result<RefreshingToken, RefreshError> {
        let path = path.as_ref().to_path_buf();
        let given = self.current();
        let mut current = given.clone();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let stored = Token::new(text.trim());
                let iat = |t: &Token| t.claims().ok().and_then(|c| c.iat).unwrap_or(i64::MIN);
                let same_instance = stored
                    .claims()
                    .is_ok_and(|c| c.instance_name.as_deref() == Some(&self.inner.instance));
                if same_instance && iat(&stored) >= iat(&given) {
                    current = stored;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(RefreshError::File { path, source }),
        }
        write_atomically(&path, &current)?;
        Ok(self.rebuild(|inner| {
            inner.current = Mutex::new(current);
            inner.file = Some(path);
        }))
    }

    /// Renews this long before expiry. By default a quarter of the token's lifetime, at most
    /// five minutes (so 5 minutes for CodeChat's one-hour tokens).
    pub fn ahead(self, ahead: Duration) -> RefreshingToken {
        self.rebuild(|inner| inner.ahead = Some(ahead))
    }

    /// A copy with `change` applied (the builder methods run before the token is shared).
    fn rebuild(self, change: impl FnOnce(&mut Inner)) -> RefreshingToken {
        let mut inner = Inner {
            endpoint: self.inner.endpoint.clone(),
            instance: self.inner.instance.clone(),
            current: Mutex::new(self.current()),
            stale: AtomicBool::new(false),
            ahead: self.inner.ahead,
            file: self.inner.file.clone(),
            timeout: self.inner.timeout,
            gate: tokio::sync::Mutex::new(()),
        };
        change(&mut inner);
        RefreshingToken {
            inner: Arc::new(inner),
        }
    }

    /// The instance the token is for.
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// The token as it stands.
    pub fn current(&self) -> Token {
        self.inner
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether `token` should be renewed before it is used.
    fn due(&self, token: &Token) -> bool {
        if self.inner.stale.load(Ordering::Acquire) {
            return true;
        }
        let Some((iat, exp)) = lifetime(token) else {
            return false;
        };
        let ahead = self.inner.ahead.map_or_else(
            || ((exp - iat) / 4).min(300),
            |d| d.as_secs().min(i64::MAX as u64) as i64,
        );
        now_secs() >= exp - ahead
    }

    /// Renews the token now: `PUT /instance/refreshToken/{instance}` with the current token,
    /// then keeps (and, with [`persist`](RefreshingToken::persist), writes) the new one. The
    /// exchange runs as a task of its own, so a caller that gives up waiting (a shutdown, a
    /// timeout) cannot lose a token the server has already rotated.
    pub async fn refresh(&self) -> Result<Token, RefreshError> {
        let this = self.clone();
        actix_rt::spawn(async move { this.exchange().await })
            .await
            .unwrap_or_else(|_| Err(RefreshError::Token("the refresh task stopped".into())))
    }

    async fn exchange(&self) -> Result<Token, RefreshError> {
        let old = self.current();
        let _one_at_a_time = self.inner.gate.lock().await;
        let current = self.current();
        if current != old {
            // Another caller renewed it while this one waited.
            return Ok(current);
        }
        let mut url = self.inner.endpoint.rest_base();
        url.path_segments_mut()
            .map_err(|_| RestError::Connect("the endpoint cannot take a path".into()))?
            .pop_if_empty()
            .extend(["instance", "refreshToken", &self.inner.instance]);
        let http = awc::Client::builder()
            .connector(awc::Connector::new().rustls_0_23(crate::tls::default_tls()))
            .finish();
        let body = json!({"oldToken": old.expose()});
        let answer = request(&http, Method::Put, &url, None, &body, self.inner.timeout)
            .await
            // The old token is in the request body: keep it out of an error that echoes it.
            .map_err(|e| e.scrubbed(old.expose()))?;
        let token = answer
            .get("token")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .map(Token::new)
            .ok_or(RefreshError::NoToken)?;
        // The server has rotated the token: keep the new one before anything else can fail.
        *self
            .inner
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = token.clone();
        self.inner.stale.store(false, Ordering::Release);
        if let Some(path) = &self.inner.file {
            if let Err(e) = write_atomically(path, &token) {
                tracing::error!(instance = %self.inner.instance, error = %e,
                    "the new token is in use but not saved: a restart would start from the old file");
            }
        }
        match lifetime(&token) {
            Some((_, exp)) => tracing::info!(
                instance = %self.inner.instance,
                "token refreshed; it expires in {}",
                duration(Duration::from_secs((exp - now_secs()).max(0) as u64))
            ),
            None => tracing::info!(instance = %self.inner.instance, "token refreshed"),
        }
        Ok(token)
    }

    async fn get(self) -> Result<Token, TokenProviderError> {
        let token = self.current();
        if !self.due(&token) {
            return Ok(token);
        }
        match self.refresh().await {
            Ok(new) => Ok(new),
            Err(e) => {
                let expired = lifetime(&token).is_some_and(|(_, exp)| now_secs() >= exp);
                if expired || self.inner.stale.load(Ordering::Acquire) {
                    Err(Box::new(e))
                } else {
                    // Still valid: use it, and try again on the next call.
                    tracing::warn!(instance = %self.inner.instance, error = %e, "token not refreshed ahead of its expiry; using it meanwhile");
                    Ok(token)
                }
            }
        }
    }
}

impl TokenProvider for RefreshingToken {
    fn token(&self) -> LocalBoxFuture<'static, Result<Token, TokenProviderError>> {
        Box::pin(self.clone().get())
    }

    /// A newer token is there already, or the refused one is expired or close to it (within a
    /// minute, or the renewal margin, for clocks that disagree): renew it and say so. A token
    /// refused long before its expiry (a wrong path, a revoked token) is not renewed: a new one
    /// would be refused alike, and each renewal rotates the instance's token.
    fn refused(&self, token: &Token) -> bool {
        if *token != self.current() {
            return true;
        }
        let margin = self.inner.ahead.map_or(60, |d| d.as_secs().max(60) as i64);
        let expiring = lifetime(token).is_some_and(|(_, exp)| now_secs() >= exp - margin);
        if expiring {
            self.inner.stale.store(true, Ordering::Release);
        }
        expiring
    }
}

/// Writes `token` to `path` atomically, readable by its owner only.
fn write_atomically(path: &Path, token: &Token) -> Result<(), RefreshError> {
    let line = format!("{}\n", token.expose());
    eventsock_core::file::write_atomically(path, line.as_bytes(), true).map_err(|source| {
        RefreshError::File {
            path: path.to_path_buf(),
            source,
        }
    })
}
