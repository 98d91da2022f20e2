//! The instance token: kept out of logs, errors and `Debug` output.

use base64::Engine;
use serde::Deserialize;
use std::fmt;
use std::sync::Arc;

/// An instance (or user) JWT. Cheap to clone. Its `Debug` and `Display` never show the token;
/// [`Token::expose`] is the one way to read it, for the code that puts it on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Arc<str>);

impl Token {
    /// Wraps a token.
    pub fn new(token: impl Into<Arc<str>>) -> Token {
        Token(token.into())
    }

    /// The token held in the file at `path` (surrounding whitespace and a final newline
    /// trimmed): how a service is given its token without putting it on a command line, where
    /// every user of the machine can read it (`ps`). An empty file is an error.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Token, TokenFileError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Unreadable {
            path: path.to_owned(),
            source,
        })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(TokenFileError::Empty(path.to_owned()));
        }
        Ok(Token::new(token))
    }

    /// The token itself. Use it only to put it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads the claims **without checking the signature**: for routing and display (which
    /// instance this token is for, when it expires), never for trust.
    pub fn claims(&self) -> Result<Claims, TokenError> {
        let payload = self.0.split('.').nth(1).ok_or(TokenError::NotAJwt)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|_| TokenError::NotAJwt)?;
        serde_json::from_slice(&bytes).map_err(|e| TokenError::Claims(e.to_string()))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl serde::Serialize for Token {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Token {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Token::from)
    }
}

impl From<String> for Token {
    fn from(s: String) -> Token {
        Token::new(s)
    }
}

impl From<&str> for Token {
    fn from(s: &str) -> Token {
        Token::new(s)
    }
}

/// The claims of a CodeChat token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Claims {
    /// The instance this token opens (instance tokens).
    pub instance_name: Option<String>,
    /// `whatsapp-api` on the legacy server.
    pub api_name: Option<String>,
    /// Token id (a ULID).
    pub token_id: Option<String>,
    /// The user (global tokens of the newer server).
    pub user_id: Option<String>,
    /// Expiry, seconds since the epoch; none when tokens do not expire.
    pub exp: Option<i64>,
    /// Issue time, seconds since the epoch.
    pub iat: Option<i64>,
    /// Subject (`g-t` on the legacy server).
    pub sub: Option<String>,
}

/// A token whose claims cannot be read. The token itself is never part of the error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not three base64url parts.
    #[error("the token is not a JWT")]
    NotAJwt,
    /// The claims are not the expected JSON.
    #[error("the token's claims cannot be read: {0}")]
    Claims(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    // {"alg":"HS256"}.{"instanceName":"codechat","apiName":"whatsapp-api","tokenId":"01J","exp":9}.sig
    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJpbnN0YW5jZU5hbWUiOiJjb2RlY2hhdCIsImFwaU5hbWUiOiJ3aGF0c2FwcC1hcGkiLCJ0b2tlbklkIjoiMDFKIiwiZXhwIjo5fQ.c2ln";

    #[test]
    fn never_shown() {
        let t = Token::new(JWT);
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
        assert_eq!(t.to_string(), "<redacted>");
        assert_eq!(t.expose(), JWT);
    }

    #[test]
    fn claims_are_read() {
        let c = Token::new(JWT).claims().unwrap();
        assert_eq!(c.instance_name.as_deref(), Some("codechat"));
        assert_eq!(c.api_name.as_deref(), Some("whatsapp-api"));
        assert_eq!(c.exp, Some(9));
        assert_eq!(Token::new("nope").claims(), Err(TokenError::NotAJwt));
        assert!(matches!(
            Token::new("a.e30x.c").claims(),
            Err(TokenError::Claims(_))
        ));
        assert_eq!(Token::new("a.!!.c").claims(), Err(TokenError::NotAJwt));
    }
}

/// Why [`Token::from_file`] gave no token. It names the file, never its contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenFileError {
    /// The file could not be read.
    #[error("cannot read the token file {}: {source}", .path.display())]
    Unreadable {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds no token.
    #[error("the token file {} is empty", .0.display())]
    Empty(std::path::PathBuf),
}
