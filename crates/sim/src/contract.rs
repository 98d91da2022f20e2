//! What the real server checks before a REST call reaches its controller: the body against the
//! JSON schema of the route, with the server's own error messages.
//!
//! The schemas in `schemas/*.json` are those of CodeChat's `src/validate/validate.schema.ts`
//! (snapshot `de8ea661`), each written out as the JSON the TypeScript evaluates to, less its
//! random `$id` (`scripts/server-schemas.sh` checks them against a checkout of the server).
//! The server validates with the npm package `jsonschema` (1.5) in `dataValidate`
//! (`src/validate/router.validate.ts`) and answers `400` with one `{property, message}` per
//! violation; this module validates the same schemas with the `jsonschema` crate (draft 7, which
//! has the `if`/`then` and `propertyNames` the schemas use) and words each violation as the npm
//! package does.

use serde::Serialize;
use serde_json::Value;
use std::sync::OnceLock;

/// A route's schema: the names are the server's routes, the files its schemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Schema {
    /// `textMessageSchema`: `POST /message/sendText`.
    SendText,
    /// `reactionMessageSchema`: `POST /message/sendReaction`.
    SendReaction,
    /// `readMessageSchema`: `PUT /chat/markMessageAsRead`.
    MarkMessageAsRead,
    /// `updatePresenceSchema`: `PATCH /chat/updatePresence`.
    UpdatePresence,
    /// `messageValidateSchema`: `POST /chat/findMessages`.
    FindMessages,
    /// `oldTokenSchema`: `PUT /instance/refreshToken`.
    RefreshToken,
    /// `instanceNameSchema`: `GET /instance/connectionState`.
    InstanceName,
    /// `whatsappNumberSchema`: `POST /chat/whatsappNumbers`.
    WhatsappNumbers,
    /// `schema: null`, which `dataValidate` does not check: `POST /chat/mediaData`.
    None,
}

/// The schemas that are checked (every one but [`Schema::None`]).
const ALL: [Schema; 8] = [
    Schema::SendText,
    Schema::SendReaction,
    Schema::MarkMessageAsRead,
    Schema::UpdatePresence,
    Schema::FindMessages,
    Schema::RefreshToken,
    Schema::InstanceName,
    Schema::WhatsappNumbers,
];

impl Schema {
    fn text(self) -> &'static str {
        match self {
            Schema::SendText => include_str!("../schemas/sendText.json"),
            Schema::SendReaction => include_str!("../schemas/sendReaction.json"),
            Schema::MarkMessageAsRead => include_str!("../schemas/markMessageAsRead.json"),
            Schema::UpdatePresence => include_str!("../schemas/updatePresence.json"),
            Schema::FindMessages => include_str!("../schemas/findMessages.json"),
            Schema::RefreshToken => include_str!("../schemas/refreshToken.json"),
            Schema::InstanceName => include_str!("../schemas/instanceName.json"),
            Schema::WhatsappNumbers => include_str!("../schemas/whatsappNumbers.json"),
            // The empty schema takes every body, as no schema does.
            Schema::None => "{}",
        }
    }
}

/// One violation, as the server words it: `property` is where (`options.quotedMessageId`, or
/// `instance` for the body itself), `message` the schema's `description` when it has one, else
/// the npm package's sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Violation {
    pub(crate) property: String,
    pub(crate) message: String,
}

struct Compiled {
    schema: Value,
    validator: jsonschema::Validator,
}

fn compiled(schema: Schema) -> &'static Compiled {
    static COMPILED: OnceLock<Vec<Compiled>> = OnceLock::new();
    let all = COMPILED.get_or_init(|| {
        ALL.iter()
            .map(|s| {
                // The schemas are part of the source, and a test compiles every one.
                let schema: Value =
                    serde_json::from_str(s.text()).expect("a schema of schemas/ is JSON");
                let validator = jsonschema::draft7::new(&schema)
                    .expect("a schema of schemas/ is a valid draft 7 schema");
                Compiled { schema, validator }
            })
            .collect()
    });
    let i = ALL.iter().position(|s| *s == schema).unwrap_or_default();
    &all[i]
}

/// Checks `body` against the route's schema: every violation, in the server's words.
pub(crate) fn check(schema: Schema, body: &Value) -> Result<(), Vec<Violation>> {
    if schema == Schema::None {
        return Ok(());
    }
    let compiled = compiled(schema);
    let violations: Vec<Violation> = compiled
        .validator
        .iter_errors(body)
        .map(|e| violation(&compiled.schema, &e))
        .collect();
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations)
    }
}

fn violation(schema: &Value, error: &jsonschema::ValidationError<'_>) -> Violation {
    use jsonschema::error::ValidationErrorKind as Kind;
    // The subschema that holds the failing keyword: its `description` replaces the message.
    let keyword_at = error.schema_path().as_str();
    let holder = keyword_at
        .rsplit_once('/')
        .and_then(|(parent, _)| schema.pointer(parent));
    let mut property = String::from("instance");
    for segment in error.instance_path().segments() {
        match segment {
            jsonschema::paths::LocationSegment::Index(i) => property.push_str(&format!("[{i}]")),
            jsonschema::paths::LocationSegment::Property(p) if is_identifier(&p) => {
                property.push('.');
                property.push_str(&p);
            }
            jsonschema::paths::LocationSegment::Property(p) => {
                property.push('[');
                property.push_str(&Value::from(p.as_ref()).to_string());
                property.push(']');
            }
        }
    }
    let said = match error.kind() {
        Kind::Type { .. } => {
            let types = match holder.and_then(|h| h.get("type")) {
                Some(Value::Array(list)) => list
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
                Some(Value::String(one)) => one.clone(),
                _ => String::new(),
            };
            format!("is not of a type(s) {types}")
        }
        Kind::Required { property } => format!(
            "requires property {}",
            Value::from(property.as_str().unwrap_or_default())
        ),
        Kind::Pattern { pattern } => format!("does not match pattern {}", Value::from(&**pattern)),
        Kind::Enum { options } => {
            let options = match &**options {
                Value::Array(list) => list
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            format!("is not one of enum values: {options}")
        }
        Kind::MinLength { limit } | Kind::MinItems { limit } => {
            format!("does not meet minimum length of {limit}")
        }
        Kind::UniqueItems => "contains duplicate item".to_owned(),
        other => format!("{}", DisplayKind(other)),
    };
    let stack = format!("{property} {said}");
    let message = match holder
        .and_then(|h| h.get("description"))
        .and_then(Value::as_str)
    {
        Some(description) => description.to_owned(),
        None => stack.replacen("instance.", "", 1),
    };
    Violation {
        property: property.replacen("instance.", "", 1),
        message,
    }
}

/// What JavaScript writes after a dot: `a.b`, else `a["b c"]`.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// A violation the routes' schemas cannot produce, worded by the crate.
struct DisplayKind<'a>(&'a jsonschema::error::ValidationErrorKind);

impl std::fmt::Display for DisplayKind<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "fails the schema ({})", kind_name(self.0))
    }
}

fn kind_name(kind: &jsonschema::error::ValidationErrorKind) -> &'static str {
    use jsonschema::error::ValidationErrorKind as Kind;
    match kind {
        Kind::MaxLength { .. } => "maxLength",
        Kind::MaxItems { .. } => "maxItems",
        Kind::Minimum { .. } => "minimum",
        Kind::Maximum { .. } => "maximum",
        Kind::AdditionalProperties { .. } => "additionalProperties",
        _ => "another keyword",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every schema compiles, and a body eventsock sends on its route passes it.
    #[test]
    fn every_schema_compiles_and_takes_a_good_body() {
        let key =
            json!({"id": "3EB0A", "fromMe": false, "remoteJid": "5511988887777@s.whatsapp.net"});
        let good = [
            (
                Schema::SendText,
                json!({"number": "5511988887777", "textMessage": {"text": "hi"}}),
            ),
            (
                Schema::SendReaction,
                json!({"reactionMessage": {"key": key, "reaction": "👍"}}),
            ),
            (Schema::MarkMessageAsRead, json!({"readMessages": [key]})),
            (
                Schema::UpdatePresence,
                json!({"number": "5511988887777", "presence": "composing"}),
            ),
            (
                Schema::FindMessages,
                json!({"where": {"keyId": "3EB0A"}, "offset": 50, "page": 1}),
            ),
            (Schema::RefreshToken, json!({"oldToken": "a.b.c"})),
            (Schema::InstanceName, json!({})),
            (
                Schema::WhatsappNumbers,
                json!({"numbers": ["5511988887777", "123456789012345@lid"]}),
            ),
        ];
        assert_eq!(good.len(), ALL.len());
        for (schema, body) in good {
            assert_eq!(check(schema, &body), Ok(()), "{schema:?}");
        }
    }

    /// The server's words for the refusal a string `quotedMessageId` gets: the schema's
    /// description, at the property's path.
    #[test]
    fn a_string_quoted_message_id_is_refused_in_the_servers_words() {
        let body = json!({"number": "5511988887777", "textMessage": {"text": "pong"},
                          "options": {"quotedMessageId": "3EB0ABC"}});
        assert_eq!(
            check(Schema::SendText, &body),
            Err(vec![Violation {
                property: "options.quotedMessageId".into(),
                message: "Enter the message id".into(),
            }])
        );
        let missing = check(Schema::SendText, &json!({})).unwrap_err();
        assert!(missing.contains(&Violation {
            property: "instance".into(),
            message: "instance requires property \"number\"".into(),
        }));
    }
}
