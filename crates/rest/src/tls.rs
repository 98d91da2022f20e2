//! The TLS settings used when none are given.

use std::sync::{Arc, OnceLock};

/// The TLS settings eventsock uses when none are given: the Mozilla roots and the ring
/// provider, named explicitly (rustls' process-wide default panics when a build enables no
/// provider, or two). Built once, shared by every client.
pub fn default_tls() -> Arc<rustls::ClientConfig> {
    static TLS: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    TLS.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ));
        // The ring provider supports every protocol version rustls considers safe, so this
        // cannot fail; `expect` documents that rather than hiding it.
        let config = builder
            .with_safe_default_protocol_versions()
            .expect("ring supports rustls' default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    })
    .clone()
}
