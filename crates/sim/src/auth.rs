//! Tokens: HS256 JWTs with the claims the CodeChat server issues and checks.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The claims of a token minted by the simulator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimClaims {
    /// The instance (instance tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_name: Option<String>,
    /// Always `whatsapp-api` for instance tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_name: Option<String>,
    /// A unique id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// The user (global tokens of the newer server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Expiry, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// `g-t`, as the legacy server sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
}

pub(crate) fn now_secs() -> u64 {
    eventsock_core::clock::now_secs()
}

fn token_id() -> String {
    // ULID-like: 26 Crockford base32 characters.
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    (0..26)
        .map(|_| ALPHABET[fastrand::usize(..32)] as char)
        .collect()
}

/// An instance token's claims; without `ttl`, `exp == iat`, as jsonwebtoken writes for
/// CodeChat's `expiresIn: 0`.
pub(crate) fn instance_claims(instance: &str, ttl: Option<Duration>) -> SimClaims {
    let iat = now_secs();
    SimClaims {
        instance_name: Some(instance.to_owned()),
        api_name: Some("whatsapp-api".into()),
        token_id: Some(token_id()),
        user_id: None,
        iat,
        exp: Some(ttl.map_or(iat, |t| iat + t.as_secs().max(1))),
        sub: Some("g-t".into()),
    }
}

pub(crate) fn user_claims(user_id: &str, ttl: Duration) -> SimClaims {
    let iat = now_secs();
    SimClaims {
        instance_name: None,
        api_name: None,
        token_id: Some(token_id()),
        user_id: Some(user_id.to_owned()),
        iat,
        exp: Some(iat + ttl.as_secs().max(1)),
        sub: None,
    }
}

pub(crate) fn sign(secret: &str, claims: &SimClaims) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    // HS256 with an in-memory key and plain claims has no failure mode.
    .expect("HS256 signing cannot fail")
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not a JWT, bad signature, or wrong claims.
    Invalid,
    /// Past its `exp`.
    Expired,
}

/// Checks the signature, and `exp` when `check_expiry` (the server's expiry setting is not 0).
pub(crate) fn verify(secret: &str, token: &str, check_expiry: bool) -> Result<SimClaims, Refusal> {
    let mut v = Validation::new(Algorithm::HS256);
    v.required_spec_claims.clear();
    v.leeway = 0;
    v.validate_exp = check_expiry;
    jsonwebtoken::decode::<SimClaims>(token, &DecodingKey::from_secret(secret.as_bytes()), &v)
        .map(|d| d.claims)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => Refusal::Expired,
            _ => Refusal::Invalid,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let claims = instance_claims("codechat", None);
        assert_eq!(claims.exp, Some(claims.iat), "expiry off: exp == iat");
        let token = sign("s", &claims);
        assert_eq!(verify("s", &token, false), Ok(claims));
        assert_eq!(verify("other", &token, false), Err(Refusal::Invalid));
        assert_eq!(verify("s", "not-a-jwt", false), Err(Refusal::Invalid));
        let mut old = instance_claims("codechat", Some(Duration::from_secs(1)));
        old.exp = Some(old.iat - 10);
        assert_eq!(verify("s", &sign("s", &old), true), Err(Refusal::Expired));
        assert!(
            verify("s", &sign("s", &old), false).is_ok(),
            "expiry off: never checked"
        );
    }
}
