//! `wss://` through rustls, against the simulator served over TLS with a certificate made here.

mod common;

use actix::prelude::*;
use common::*;
use eventsock::client::Supervisor;
use eventsock::core::Source;
use eventsock::core::{legacy, Endpoint, Token};
use eventsock::sim::{run_tls, Sim, SimConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use std::sync::Arc;

#[actix_rt::test]
async fn wss_works_through_rustls() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_der = CertificateDer::from(cert.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_der).unwrap();
    let client_tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sim = Sim::new(SimConfig::default());
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    actix_rt::spawn(run_tls(listener, server_tls, sim.clone(), async {
        let _ = stopped.await;
    }));

    let mut config = fast_config();
    config.tls = Some(Arc::new(client_tls));
    let rec = Recorder::default();
    // `https://` becomes `wss://`; the name must match the certificate.
    let endpoint = Endpoint::parse(&format!("https://localhost:{port}")).unwrap();
    let _sup = Supervisor::builder()
        .config(config)
        .source(Source::new(endpoint, Token::new(sim.mint_token("codechat", None))).unwrap())
        .router(
            Router::builder()
                .actor::<legacy::MessagesUpsert>(rec.clone().start().recipient())
                .build(),
        )
        .start()
        .unwrap();
    until("the TLS socket", || {
        sim.is_subscribed("codechat", "messages.upsert")
    })
    .await;
    sim.emit("codechat", "messages.upsert", &json!({"keyId": "over-tls"}));
    assert_eq!(rec.wait_events(1).await[0].1["keyId"], "over-tls");
}
