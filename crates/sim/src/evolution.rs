//! Playing Evolution API (`EvolutionAPI/evolution-api` 2.3.6): its API keys, its per-instance
//! websocket settings, the shape of its payloads and the Socket.IO packets that carry them.
//!
//! The simulator keeps one model of a message (the legacy CodeChat shape its other parts make);
//! an Evolution event is that model written as Evolution writes it (`prepareMessage` in
//! `whatsapp.baileys.service.ts`): `key {remoteJid, fromMe, id}`, the body under
//! `message.conversation` or `message.<type>`, and a `messageSecret` of 32 bytes, which makes
//! the event a Socket.IO binary event, as most of 2.3.6's messages are. A payload already in
//! Evolution's shape (one with a `key`) is sent as it is.

use crate::hub::{Out, Sim};
use bytestring::ByteString;
use eventsock_core::socketio;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The marker the simulator writes where a payload has bytes; turned into a Socket.IO
/// attachment when the packet is made, so it never reaches a client.
const BYTES: &str = "$simBytes";

/// Every event an instance's websocket settings can list (`EventController.events`,
/// event.controller.ts): what an empty list turns into. `groups.update` is spelled
/// `GROUP_UPDATE` there, so it never matches; `creds.update` and `messaging-history.set` are
/// not there at all.
pub(crate) const ALL_EVENTS: [&str; 31] = [
    "APPLICATION_STARTUP",
    "QRCODE_UPDATED",
    "MESSAGES_SET",
    "MESSAGES_UPSERT",
    "MESSAGES_EDITED",
    "MESSAGES_UPDATE",
    "MESSAGES_DELETE",
    "SEND_MESSAGE",
    "SEND_MESSAGE_UPDATE",
    "CONTACTS_SET",
    "CONTACTS_UPSERT",
    "CONTACTS_UPDATE",
    "PRESENCE_UPDATE",
    "CHATS_SET",
    "CHATS_UPSERT",
    "CHATS_UPDATE",
    "CHATS_DELETE",
    "GROUPS_UPSERT",
    "GROUP_UPDATE",
    "GROUP_PARTICIPANTS_UPDATE",
    "CONNECTION_UPDATE",
    "LABELS_EDIT",
    "LABELS_ASSOCIATION",
    "CALL",
    "TYPEBOT_START",
    "TYPEBOT_CHANGE_STATUS",
    "REMOVE_INSTANCE",
    "LOGOUT_INSTANCE",
    "INSTANCE_CREATE",
    "INSTANCE_DELETE",
    "STATUS_INSTANCE",
];

/// An instance's websocket settings (`POST /websocket/set/{instance}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Websocket {
    pub(crate) enabled: bool,
    /// The events sent to the instance's namespace, UPPER_SNAKE (`MESSAGES_UPSERT`).
    pub(crate) events: Vec<String>,
}

impl Default for Websocket {
    /// On, with every event: what the simulator starts with, so that a bot works at once.
    fn default() -> Self {
        Websocket::new(true, &[])
    }
}

impl Websocket {
    /// As the server stores them: off means no event; on with no list means every event.
    pub(crate) fn new(enabled: bool, events: &[&str]) -> Websocket {
        let events = if !enabled {
            Vec::new()
        } else if events.is_empty() {
            ALL_EVENTS.iter().map(|e| (*e).to_owned()).collect()
        } else {
            events.iter().map(|e| (*e).to_owned()).collect()
        };
        Websocket { enabled, events }
    }

    /// Whether `event` goes to the instance's namespace (`websocket.controller.ts`, `emit`).
    pub(crate) fn sends(&self, event: &str) -> bool {
        let setting = eventsock_core::EventName::parse(event).evolution_setting();
        self.enabled && self.events.contains(&setting)
    }

    /// As `/websocket/find` answers.
    pub(crate) fn to_json(&self, instance_id: &str) -> Value {
        json!({
            "id": format!("ws-{instance_id}"),
            "enabled": self.enabled,
            "events": self.events,
            "instanceId": instance_id,
        })
    }
}

impl Sim {
    /// The global API key (`AUTHENTICATION_API_KEY`).
    pub fn global_api_key(&self) -> &str {
        &self.config().secret
    }

    /// The token of `instance` (Evolution's per-instance API key), `None` for an unknown one.
    pub fn api_key(&self, instance: &str) -> Option<String> {
        self.instance_id(instance)?;
        let seed = format!("{}\u{0}{instance}", self.config().secret);
        Some(format!(
            "{:016X}{:016X}",
            eventsock_core::fnv1a(eventsock_core::FNV_BASIS, seed.bytes()),
            eventsock_core::fnv1a(1, seed.bytes())
        ))
    }

    /// Whether `key` is the global key or an instance's token; with `instance`, that instance's
    /// token (or the global key).
    pub(crate) fn accepts_key(&self, key: &str, instance: Option<&str>) -> bool {
        if key.is_empty() {
            return false;
        }
        if key == self.global_api_key() {
            return true;
        }
        match instance {
            Some(i) => self.api_key(i).is_some_and(|k| k == key),
            None => self
                .config()
                .instances
                .iter()
                .any(|i| self.api_key(i).is_some_and(|k| k == key)),
        }
    }

    /// The instance's id, a UUID as Evolution's are.
    pub(crate) fn instance_uuid(&self, instance: &str) -> String {
        let n = self.instance_id(instance).unwrap_or(0);
        format!("6c2d1f0e-0000-4000-8000-{n:012}")
    }

    /// Emits `data` as Evolution does: the instance's namespace is made at its first event the
    /// settings let through, and every session joined to it gets the event.
    pub(crate) fn emit_evolution(&self, instance: &str, event: &str, data: &Value) -> bool {
        if !self.websocket(instance).sends(event) {
            return false;
        }
        self.make_namespace(instance);
        let data = self.evolution_data(instance, event, data);
        let envelope = json!({
            "event": event,
            "instance": instance,
            "data": data,
            "server_url": "http://localhost:8080",
            "date_time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "sender": "5511999999999@s.whatsapp.net",
            "apikey": match self.exposes_api_key() {
                true => Value::from(self.api_key(instance)),
                false => Value::Null,
            },
        });
        self.send_out(instance, event, packet(instance, event, envelope))
    }

    /// A payload in Evolution's shape: the simulator's legacy-shaped messages and receipts
    /// rewritten; anything else as it is.
    fn evolution_data(&self, instance: &str, event: &str, data: &Value) -> Value {
        let message = matches!(event, "messages.upsert" | "send.message");
        if message && data.get("keyId").is_some() && data.get("key").is_none() {
            return self.evolution_message(instance, data);
        }
        data.clone()
    }

    /// A legacy-shaped message (`keyId`, `content`...) as `prepareMessage` writes it.
    pub(crate) fn evolution_message(&self, instance: &str, m: &Value) -> Value {
        let from_me = m["keyFromMe"].as_bool().unwrap_or(false);
        let mut key = Map::new();
        key.insert("remoteJid".into(), m["keyRemoteJid"].clone());
        if let Some(lid) = m["keyLid"].as_str() {
            key.insert("remoteJidAlt".into(), lid.into());
        }
        key.insert("fromMe".into(), from_me.into());
        key.insert("id".into(), m["keyId"].clone());
        if let Some(p) = m["keyParticipant"].as_str() {
            key.insert("participant".into(), p.into());
        }
        let content = &m["content"];
        let kind = m["messageType"].as_str().unwrap_or("conversation");
        let mut body = Map::new();
        let text_kind = matches!(kind, "conversation" | "extendedTextMessage");
        if text_kind {
            // prepareMessage turns an extendedTextMessage into a conversation.
            body.insert(
                "conversation".into(),
                content["text"].as_str().unwrap_or_default().into(),
            );
        } else {
            let mut media = content.clone();
            // 2.3.6 writes 64-bit fields as protobuf's `Long`.
            if let Some(n) = media["fileLength"]
                .as_u64()
                .or_else(|| media["fileLength"].as_str()?.parse().ok())
            {
                media["fileLength"] =
                    json!({"low": n & 0xffff_ffff, "high": n >> 32, "unsigned": true});
            }
            body.insert(kind.into(), media);
        }
        if !from_me {
            // What phones attach to most messages: 32 bytes, a Socket.IO attachment.
            let seed = m["keyId"].as_str().unwrap_or_default().as_bytes();
            let secret: Vec<u8> = (0..32u8)
                .map(|i| (eventsock_core::fnv1a(u64::from(i), seed.iter().copied()) & 0xff) as u8)
                .collect();
            body.insert(
                "messageContextInfo".into(),
                json!({"messageSecret": bytes_marker(&secret)}),
            );
        }
        let timestamp = m["messageTimestamp"]
            .as_i64()
            .or_else(|| m["messageTimestamp"].as_str()?.parse().ok())
            .unwrap_or_else(|| i64::try_from(crate::auth::now_secs()).unwrap_or(0));
        let mut out = json!({
            "key": key,
            "pushName": m["pushName"].as_str().unwrap_or(if from_me { "Você" } else { "" }),
            "status": if from_me { "PENDING" } else { "DELIVERY_ACK" },
            "message": body,
            "messageType": if text_kind { "conversation" } else { kind },
            "messageTimestamp": timestamp,
            "instanceId": self.instance_uuid(instance),
            "source": m["device"].as_str().unwrap_or("android"),
        });
        if let Some(seq) = m.get("burstSeq") {
            out["burstSeq"] = seq.clone();
        }
        out
    }
}

/// `value` as REST answers it: bytes as base64 text.
pub(crate) fn bytes_as_text(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(b64) = map.get(BYTES).and_then(Value::as_str) {
                *value = Value::String(b64.to_owned());
                return;
            }
            map.values_mut().for_each(bytes_as_text);
        }
        Value::Array(items) => items.iter_mut().for_each(bytes_as_text),
        _ => {}
    }
}

fn bytes_marker(bytes: &[u8]) -> Value {
    use base64::Engine as _;
    json!({ BYTES: base64::engine::general_purpose::STANDARD.encode(bytes) })
}

/// The Socket.IO packet of `envelope` on `instance`'s namespace: an event, or a binary event
/// with each byte marker turned into a placeholder and an attachment.
pub(crate) fn packet(instance: &str, event: &str, envelope: Value) -> Out {
    let nsp = socketio::namespace(instance);
    let mut body = json!([event, envelope]);
    let mut attachments = Vec::new();
    deconstruct(&mut body, &mut attachments);
    if attachments.is_empty() {
        return Out::Text(ByteString::from(format!("42{nsp},{body}")));
    }
    let text = format!("45{}-{nsp},{body}", attachments.len());
    Out::Packet(ByteString::from(text), Arc::from(attachments))
}

fn deconstruct(value: &mut Value, attachments: &mut Vec<bytes::Bytes>) {
    use base64::Engine as _;
    match value {
        Value::Object(map) => {
            if let Some(b64) = map.get(BYTES).and_then(Value::as_str) {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap_or_default();
                *value = json!({"_placeholder": true, "num": attachments.len()});
                attachments.push(bytes.into());
                return;
            }
            for v in map.values_mut() {
                deconstruct(v, attachments);
            }
        }
        Value::Array(items) => {
            for v in items {
                deconstruct(v, attachments);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_with_bytes_is_a_binary_event() {
        let sim = Sim::new(crate::SimConfig {
            protocol: eventsock_core::Protocol::Evolution,
            instances: vec!["bot".into()],
            ..crate::SimConfig::default()
        });
        let m = sim.evolution_message(
            "bot",
            &json!({"keyId": "A1", "keyRemoteJid": "5511@s.whatsapp.net", "content": {"text": "hi"}, "messageType": "extendedTextMessage"}),
        );
        assert_eq!(m["message"]["conversation"], "hi");
        assert_eq!(m["messageType"], "conversation");
        let Out::Packet(text, attachments) = packet("bot", "messages.upsert", json!({"data": m}))
        else {
            panic!("not binary")
        };
        assert!(text.starts_with("451-/bot,[\"messages.upsert\""), "{text}");
        assert!(text.contains(r#"{"_placeholder":true,"num":0}"#));
        assert_eq!(attachments[0].len(), 32);
        assert!(!text.contains(BYTES));
    }

    #[test]
    fn the_settings_name_events_as_the_server_does() {
        let name = eventsock_core::EventName::parse("group-participants.update");
        assert_eq!(name.evolution_setting(), "GROUP_PARTICIPANTS_UPDATE");
        let ws = Websocket::new(true, &["MESSAGES_UPSERT"]);
        assert!(ws.sends("messages.upsert") && !ws.sends("messages.update"));
        assert!(!Websocket::new(false, &[]).sends("messages.upsert"));
        assert!(Websocket::default().sends("call"));
        assert!(
            !Websocket::default().sends("groups.update"),
            "the server's own misspelling"
        );
        assert!(
            !Websocket::default().sends("creds.update"),
            "not in its list"
        );
    }
}
