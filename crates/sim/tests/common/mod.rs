//! What the simulator's integration tests share: a deadline, and a POST that gives back the
//! whole answer.

#![allow(dead_code, unreachable_pub)]

use eventsock_sim::Embedded;
use serde_json::Value;
use std::time::Duration;

/// How long any wait in a test may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A person's chat.
pub const PERSON: &str = "5511988887777@s.whatsapp.net";

/// An answer: its status, its headers (names in lower case) and its whole body.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`null` when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// POSTs `body` as JSON to `path` (with the token when given), failing the test unless the
/// whole answer comes within [`DEADLINE`].
pub async fn post(s: &Embedded, path: &str, token: Option<&str>, body: &Value) -> Answer {
    let mut req = awc::Client::new().post(format!("{}{path}", s.url()));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let mut resp = tokio::time::timeout(DEADLINE, req.send_json(body))
        .await
        .expect("no answer within the deadline")
        .unwrap();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = tokio::time::timeout(DEADLINE, resp.body().limit(64 * 1024 * 1024))
        .await
        .expect("no body within the deadline")
        .unwrap();
    Answer {
        status: resp.status().as_u16(),
        headers,
        body: body.to_vec(),
    }
}
