//! Realistic traffic: messages, receipts and presence built from the recorded fixtures.

use crate::config::Protocol;
use crate::hub::Sim;
use serde_json::{json, Value};
use std::time::Duration;

const LEGACY_UPSERT: &str = include_str!("../samples/legacy/messages.upsert.json");
const LEGACY_UPDATE: &str = include_str!("../samples/legacy/messages.update.json");
const LEGACY_PRESENCE: &str = include_str!("../samples/legacy/presence.update.json");
const V2_UPSERT: &str = include_str!("../samples/v2/messages.upsert.json");
const V2_UPDATE: &str = include_str!("../samples/v2/messages.update.json");
const V2_PRESENCE: &str = include_str!("../samples/v2/presence.updated.json");

const CONTACTS: &[(&str, &str)] = &[
    ("5511988887777@s.whatsapp.net", "Maria Silva"),
    ("5511977776666@s.whatsapp.net", "João Pereira"),
    ("5521966665555@s.whatsapp.net", "Ana Costa"),
    ("5531955554444@s.whatsapp.net", "Carlos Souza"),
];

/// The name the simulator's address book has for `jid`, if it has one.
pub(crate) fn contact_name(jid: &str) -> Option<&'static str> {
    CONTACTS
        .iter()
        .find(|(j, _)| *j == jid)
        .map(|(_, name)| *name)
}

const TEXTS: &[&str] = &[
    "Olá, tudo bem?",
    "!ping",
    "Gostaria de saber o status do meu pedido.",
    "Obrigado!",
    "Qual o horário de atendimento?",
];

/// Makes events in the shape of the fixtures, with fresh ids, chats, texts and times.
#[derive(Debug)]
pub struct Generator {
    protocol: Protocol,
    upsert: Value,
    update: Value,
    presence: Value,
    n: u64,
}

fn template(text: &str, enveloped: bool) -> Value {
    let v: Value =
        serde_json::from_str(text).expect("fixtures embedded at build time are valid JSON");
    if enveloped {
        v["data"].clone()
    } else {
        v
    }
}

impl Generator {
    /// A generator for `protocol`'s shapes.
    pub fn new(protocol: Protocol) -> Generator {
        let (u, d, p, env) = match protocol {
            // The simulator makes Evolution's payloads from the legacy ones (`evolution.rs`).
            Protocol::Legacy | Protocol::Evolution => {
                (LEGACY_UPSERT, LEGACY_UPDATE, LEGACY_PRESENCE, false)
            }
            Protocol::V2 => (V2_UPSERT, V2_UPDATE, V2_PRESENCE, true),
        };
        Generator {
            protocol,
            upsert: template(u, env),
            update: template(d, env),
            presence: template(p, env),
            n: 0,
        }
    }

    /// A `messages.upsert` payload of a text message `text` from `jid` (a chat's JID), whose
    /// sender is called `name`, sent now, with an id of its own.
    pub fn message(&mut self, jid: &str, name: &str, text: &str) -> Value {
        self.n += 1;
        let mut m = self.upsert.clone();
        m["keyId"] = json!(format!("3A{:018X}", self.n));
        m["keyRemoteJid"] = json!(jid);
        m["keyFromMe"] = json!(false);
        if let Some(m) = m.as_object_mut() {
            // The sample's LID belongs to the sample's chat.
            m.remove("keyLid");
        }
        m["pushName"] = json!(name);
        m["content"]["text"] = json!(text);
        m["messageTimestamp"] = json!(crate::auth::now_secs());
        // The row id is the server's to give, when it saves the message (Sim::emit).
        if let Some(m) = m.as_object_mut() {
            m.remove("id");
        }
        m
    }

    /// The next event: `(event name, payload)`. About 6 in 10 are messages, 1 in 4 receipts, the
    /// rest presence.
    pub fn next_event(&mut self) -> (&'static str, Value) {
        self.n += 1;
        let n = self.n;
        let (jid, name) = CONTACTS[(n as usize) % CONTACTS.len()];
        let legacy = self.protocol == Protocol::Legacy;
        match n % 20 {
            0..=11 => {
                let text = TEXTS[(n as usize / 3) % TEXTS.len()];
                ("messages.upsert", self.message(jid, name, text))
            }
            12..=16 => {
                let mut u = self.update.clone();
                let date = chrono::Utc::now();
                if legacy {
                    u["remoteJid"] = json!(jid);
                    u["id"] = json!(format!("3A{:018X}", n.saturating_sub(5)));
                    u["status"] = json!(["SERVER_ACK", "DELIVERY_ACK", "READ"][(n % 3) as usize]);
                    u["dateTime"] =
                        json!(date.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
                } else {
                    u["messageId"] = json!(n.saturating_sub(5));
                    u["status"] = json!(["sent", "delivered", "read"][(n % 3) as usize]);
                    u["dateTime"] = json!(date.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                }
                ("messages.update", u)
            }
            _ => {
                let state = ["composing", "paused", "available"][(n % 3) as usize];
                if legacy {
                    (
                        "presence.update",
                        json!({"id": jid, "presences": {jid: {"lastKnownPresence": state}}}),
                    )
                } else {
                    let mut p = self.presence.clone();
                    p["chatJid"] = json!(jid);
                    p["senderJid"] = json!(jid);
                    p["state"] = json!(if state == "available" {
                        "paused"
                    } else {
                        state
                    });
                    ("presence.updated", p)
                }
            }
        }
    }
}

/// Emits `rate` events per second on `instance` until the task is dropped. Returns nothing; the
/// events go to whichever sockets are subscribed, and are lost for the others, as on the server.
pub async fn generate(sim: Sim, instance: String, rate: f64) {
    if rate <= 0.0 {
        return;
    }
    let mut gen = Generator::new(sim.config().protocol);
    let tick = Duration::from_millis(10);
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let started = tokio::time::Instant::now();
    let mut sent = 0u64;
    loop {
        interval.tick().await;
        let due = (started.elapsed().as_secs_f64() * rate) as u64;
        while sent < due {
            let (event, data) = gen.next_event();
            sim.emit(&instance, event, &data);
            sent += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventsock_core::{legacy, v2, EventName, Frame, Payload};

    fn decodes<T: Payload>(event: &str, data: &Value) {
        let name = EventName::parse(event);
        let text = data.to_string();
        Frame::parse(&name, &text)
            .unwrap()
            .decode::<T>(&name)
            .unwrap();
    }

    #[test]
    fn generated_events_decode_as_their_types() {
        let mut g = Generator::new(Protocol::Legacy);
        for _ in 0..40 {
            let (event, data) = g.next_event();
            match event {
                "messages.upsert" => decodes::<legacy::MessagesUpsert>(event, &data),
                "messages.update" => decodes::<legacy::MessagesUpdate>(event, &data),
                "presence.update" => decodes::<legacy::PresenceUpdate>(event, &data),
                other => panic!("unexpected {other}"),
            }
        }
        let mut g = Generator::new(Protocol::V2);
        for _ in 0..40 {
            let (event, data) = g.next_event();
            match event {
                "messages.upsert" => decodes::<v2::MessagesUpsert>(event, &data),
                "messages.update" => decodes::<v2::MessagesUpdate>(event, &data),
                "presence.updated" => decodes::<v2::PresenceUpdated>(event, &data),
                other => panic!("unexpected {other}"),
            }
        }
    }
}

#[cfg(test)]
mod samples {
    /// The samples the generator builds traffic from are copies of the workspace's fixtures
    /// (which say where each shape comes from), kept in the crate so that it packages alone: the
    /// copies must not drift.
    #[test]
    fn the_samples_are_the_fixtures() {
        for (sample, fixture) in [
            (
                super::LEGACY_UPSERT,
                include_str!("../../../tests/fixtures/legacy/messages.upsert.json"),
            ),
            (
                super::LEGACY_UPDATE,
                include_str!("../../../tests/fixtures/legacy/messages.update.json"),
            ),
            (
                super::LEGACY_PRESENCE,
                include_str!("../../../tests/fixtures/legacy/presence.update.json"),
            ),
            (
                super::V2_UPSERT,
                include_str!("../../../tests/fixtures/v2/messages.upsert.json"),
            ),
            (
                super::V2_UPDATE,
                include_str!("../../../tests/fixtures/v2/messages.update.json"),
            ),
            (
                super::V2_PRESENCE,
                include_str!("../../../tests/fixtures/v2/presence.updated.json"),
            ),
        ] {
            assert_eq!(
                sample, fixture,
                "crates/sim/samples/ differs from tests/fixtures/"
            );
        }
    }
}
