//! Whether a message whose answer was lost is on the server: one `findMessages` by its id.

use crate::{RestClient, RestError};
use serde_json::{json, Value};

/// What looking a message up found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Looked {
    /// It is on the server: it was sent.
    Found,
    /// It is not, on a server that keeps what it sends: it was not sent.
    Absent,
    /// It is not, on a server that keeps nothing: whether it was sent cannot be told.
    Unknowable,
}

/// Whether message `id` is on the server, which tells only on a server that keeps what it sends
/// (`known`: whether it does, when already learnt; otherwise it is asked whether it has any
/// message this instance sent).
pub(super) async fn look_up(
    rest: &RestClient,
    id: &str,
    known: Option<bool>,
) -> Result<Looked, RestError> {
    let found = rest.find_messages_page(json!({"keyId": id}), 10, 1).await?;
    if found
        .records
        .iter()
        .any(|r| r.get("keyId").and_then(Value::as_str) == Some(id))
    {
        return Ok(Looked::Found);
    }
    let keeps = match known {
        Some(keeps) => keeps,
        None => {
            let mine = rest
                .find_messages_page(json!({"keyFromMe": true}), 1, 1)
                .await?;
            !mine.records.is_empty()
        }
    };
    Ok(if keeps {
        Looked::Absent
    } else {
        Looked::Unknowable
    })
}
