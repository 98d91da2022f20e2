//! What the simulator plays of WhatsApp itself: the receipts of the messages an instance sends,
//! and the two ids a person can have (a phone number's JID and a LID).

use super::Sim;
use crate::config::Protocol;
use serde_json::{json, Value};

/// The statuses of a `messages.update`, as the real server names WhatsApp's
/// (`WebMessageInfo.Status` 0 to 5, whatsapp.service.ts).
pub(crate) const RECEIPT_STATUSES: [&str; 6] = [
    "ERROR",
    "PENDING",
    "SERVER_ACK",
    "DELIVERY_ACK",
    "READ",
    "PLAYED",
];

impl Sim {
    /// Emits one `messages.update` of `status` (`ERROR`, `PENDING`, `SERVER_ACK`,
    /// `DELIVERY_ACK`, `READ` or `PLAYED`) for the message `id` that `instance` sent: one the
    /// simulator emitted on its `messages.upsert` with `keyFromMe: true` (a send it accepted,
    /// or a payload emitted as one), or a text it accepted, whose chat is the receipt's
    /// `remoteJid`. It is emitted as asked, even where WhatsApp would send none (in a group).
    /// False, and nothing emitted, when the simulator knows no such message (it remembers the
    /// latest 10,000 messages of an instance and 100,000 texts), or for another status.
    pub fn receipt(&self, instance: &str, id: &str, status: &str) -> bool {
        if !RECEIPT_STATUSES.contains(&status) {
            return false;
        }
        let Some((chat, row)) = self.sent_message(instance, id) else {
            return false;
        };
        self.emit_receipt(instance, &chat, id, row, status);
        true
    }

    /// The chat and row id of the message `id` that `instance` sent, newest first.
    fn sent_message(&self, instance: &str, id: &str) -> Option<(String, Option<i64>)> {
        let emitted = {
            let history = self.inner.history.lock().unwrap_or_else(|p| p.into_inner());
            history.get(instance).and_then(|list| {
                list.iter()
                    .rev()
                    .find(|m| m["keyId"] == id && m["keyFromMe"] == true)
                    .and_then(|m| {
                        let chat = m["keyRemoteJid"].as_str().or(m["keyLid"].as_str())?;
                        Some((chat.to_owned(), m["id"].as_i64()))
                    })
            })
        };
        emitted.or_else(|| {
            let sent = self.inner.sent.lock().unwrap_or_else(|p| p.into_inner());
            sent.iter()
                .rev()
                .find(|s| s.instance == instance && s.id == id)
                .map(|s| (s.chat.clone(), None))
        })
    }

    /// WhatsApp's receipts of a message the instance just sent ([`SimConfig::receipts`]): the
    /// server's, then the recipient's. None for a group, where they are per participant
    /// (Baileys emits them as `message-receipt.update`, which the real server does not pass
    /// on), nor for what the server drops: `status@broadcast` and a JID with a device part.
    ///
    /// [`SimConfig::receipts`]: crate::SimConfig::receipts
    pub(crate) fn acknowledge(&self, instance: &str, message: &Value) {
        if !self.config().receipts {
            return;
        }
        let (Some(chat), Some(id)) = (message["keyRemoteJid"].as_str(), message["keyId"].as_str())
        else {
            return;
        };
        let device = chat
            .as_bytes()
            .windows(2)
            .any(|w| w[0] == b':' && w[1].is_ascii_digit());
        if chat.ends_with("@g.us") || chat == "status@broadcast" || device {
            return;
        }
        for status in ["SERVER_ACK", "DELIVERY_ACK"] {
            self.emit_receipt(instance, chat, id, message["id"].as_i64(), status);
        }
    }

    /// The legacy server's `messages.update` (whatsapp.service.ts: `{...key, status, dateTime,
    /// instanceId}`, the key of a 1:1 chat having no `participant`); for [`Protocol::V2`],
    /// which has no public source, the generator's shape (`{messageId, status, dateTime}`, the
    /// row id and a lower-case status).
    fn emit_receipt(&self, instance: &str, chat: &str, id: &str, row: Option<i64>, status: &str) {
        let now = chrono::Utc::now();
        let update = match self.config().protocol {
            // Evolution's `messages.update` of a status (whatsapp.baileys.service.ts).
            Protocol::Evolution => json!({
                "keyId": id,
                "remoteJid": chat,
                "fromMe": true,
                "status": status,
                "instanceId": self.instance_uuid(instance),
                "messageId": format!("sim{:022}", row.unwrap_or_default()),
            }),
            Protocol::Legacy => json!({
                "remoteJid": chat,
                "id": id,
                "fromMe": true,
                "status": status,
                "dateTime": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "instanceId": self.instance_id(instance),
            }),
            Protocol::V2 => {
                let status = match status {
                    "SERVER_ACK" => "sent".to_owned(),
                    "DELIVERY_ACK" => "delivered".to_owned(),
                    other => other.to_ascii_lowercase(),
                };
                json!({
                    "messageId": row,
                    "status": status,
                    "dateTime": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                })
            }
        };
        self.emit(instance, "messages.update", &update);
    }

    /// Records that the person whose phone number has the JID `phone_jid`
    /// (`5511988887777@s.whatsapp.net`, as `whatsappNumbers` answers it; bare digits get
    /// `@s.whatsapp.net`) also has the LID `lid` (`123456789012345@lid`): `whatsappNumbers`
    /// then answers it with the number, as WhatsApp's LID lookup does. A second pairing of
    /// the same number replaces the first.
    pub fn pair_lid(&self, phone_jid: &str, lid: &str) {
        let phone_jid = match phone_jid.contains('@') {
            true => phone_jid.to_owned(),
            false => format!("{phone_jid}@s.whatsapp.net"),
        };
        self.inner
            .lids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(phone_jid, lid.to_owned());
    }

    /// The LID paired with `phone_jid`, if any.
    pub(crate) fn lid_of(&self, phone_jid: &str) -> Option<String> {
        let lids = self.inner.lids.lock().unwrap_or_else(|p| p.into_inner());
        lids.get(phone_jid).cloned()
    }
}
