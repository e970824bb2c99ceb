//! The one error type for tokens and keys.
//!
//! Every way a token can be refused, and every way key material can be unusable, is a variant
//! here with a stable snake_case [`TokenError::code`]. Components map these codes to their API
//! answers; the CLI prints them. A code never changes meaning once released.

use core::fmt;

/// Why a token was refused, or why key material or claims could not be used.
///
/// Variants carry only static text or numbers taken from our own configuration, never bytes
/// from the token, so a message is always safe to log and short.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// The token is not a well-formed JWS compact serialization: not three segments, bad or
    /// padded base64url, trailing data, a header or claims set that is not a JSON object, a
    /// duplicate JSON key. `what` names the part that is wrong.
    Malformed {
        /// Which part of the token is malformed, in a few words.
        what: &'static str,
    },
    /// The token is longer than [`crate::jwt::MAX_TOKEN_BYTES`]; it was not looked at further.
    TokenTooLarge {
        /// The largest token accepted, in bytes.
        limit_bytes: usize,
    },
    /// The header's `alg` is not `EdDSA` (this includes `none`, `HS256`, `RS256`, ...).
    /// The server, not the token, decides the algorithm.
    UnsupportedAlgorithm,
    /// The header's `typ` is present and is not `JWT`.
    UnsupportedType,
    /// The header carries a `crit` parameter; no extension is understood, so none is accepted.
    CriticalHeader,
    /// The header names no `kid`, or one that is not in the key set.
    UnknownKey,
    /// The signature does not verify with the named key, or is not canonical (`S >= L`, or an
    /// `R` that is not a valid point encoding).
    BadSignature,
    /// A claim every license token carries is absent.
    MissingClaim {
        /// The claim's name, e.g. `exp`.
        claim: &'static str,
    },
    /// A claim is present with the wrong type or an impossible value (a string `exp`, a `mid`
    /// that is not 64 lowercase hex digits, an extra claim that shadows a registered one, ...).
    InvalidClaim {
        /// The claim's name, e.g. `exp`.
        claim: &'static str,
    },
    /// `exp` has passed (allowing for the policy's leeway).
    Expired,
    /// `nbf` is still in the future (allowing for the policy's leeway).
    NotYetValid,
    /// `iat` is in the future (allowing for the policy's leeway): the issuer's clock or the
    /// token is wrong.
    IssuedInFuture,
    /// The token's `aud` is not the audience the policy requires.
    WrongAudience,
    /// The token's `iss` is not the issuer the policy requires.
    WrongIssuer,
    /// The caller gave a machine id and the token's `mid` is absent or is another machine's.
    MachineMismatch,
    /// Key material is unusable: a malformed key text or JWKS, a bad `kid`, an all-zero seed,
    /// a public key that is not a canonical point or has small order, a duplicate `kid`.
    BadKey {
        /// What is wrong, in words safe to show an operator (never key bytes).
        reason: String,
    },
}

impl TokenError {
    /// The stable snake_case code for this error, e.g. `expired` or `bad_signature`.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Malformed { .. } => "malformed",
            TokenError::TokenTooLarge { .. } => "token_too_large",
            TokenError::UnsupportedAlgorithm => "unsupported_algorithm",
            TokenError::UnsupportedType => "unsupported_type",
            TokenError::CriticalHeader => "unsupported_critical_header",
            TokenError::UnknownKey => "unknown_key",
            TokenError::BadSignature => "bad_signature",
            TokenError::MissingClaim { .. } => "missing_claim",
            TokenError::InvalidClaim { .. } => "invalid_claim",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::IssuedInFuture => "issued_in_future",
            TokenError::WrongAudience => "wrong_audience",
            TokenError::WrongIssuer => "wrong_issuer",
            TokenError::MachineMismatch => "machine_mismatch",
            TokenError::BadKey { .. } => "bad_key",
        }
    }

    pub(crate) fn malformed(what: &'static str) -> Self {
        TokenError::Malformed { what }
    }

    pub(crate) fn bad_key(reason: impl Into<String>) -> Self {
        TokenError::BadKey {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Malformed { what } => write!(f, "malformed token: {what}"),
            TokenError::TokenTooLarge { limit_bytes } => {
                write!(f, "token is longer than {limit_bytes} bytes")
            }
            TokenError::UnsupportedAlgorithm => f.write_str("token algorithm is not EdDSA"),
            TokenError::UnsupportedType => f.write_str("token type is not JWT"),
            TokenError::CriticalHeader => {
                f.write_str("token header has a crit parameter, which is not supported")
            }
            TokenError::UnknownKey => f.write_str("token is signed with an unknown key"),
            TokenError::BadSignature => f.write_str("token signature is invalid"),
            TokenError::MissingClaim { claim } => write!(f, "token has no `{claim}` claim"),
            TokenError::InvalidClaim { claim } => write!(f, "token claim `{claim}` is invalid"),
            TokenError::Expired => f.write_str("token has expired"),
            TokenError::NotYetValid => f.write_str("token is not valid yet"),
            TokenError::IssuedInFuture => f.write_str("token is issued in the future"),
            TokenError::WrongAudience => f.write_str("token is for another audience"),
            TokenError::WrongIssuer => f.write_str("token is from another issuer"),
            TokenError::MachineMismatch => f.write_str("token is bound to another machine"),
            TokenError::BadKey { reason } => write!(f, "bad key: {reason}"),
        }
    }
}

impl std::error::Error for TokenError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_snake_case_and_distinct() {
        let all = [
            TokenError::Malformed { what: "x" },
            TokenError::TokenTooLarge { limit_bytes: 1 },
            TokenError::UnsupportedAlgorithm,
            TokenError::UnsupportedType,
            TokenError::CriticalHeader,
            TokenError::UnknownKey,
            TokenError::BadSignature,
            TokenError::MissingClaim { claim: "exp" },
            TokenError::InvalidClaim { claim: "exp" },
            TokenError::Expired,
            TokenError::NotYetValid,
            TokenError::IssuedInFuture,
            TokenError::WrongAudience,
            TokenError::WrongIssuer,
            TokenError::MachineMismatch,
            TokenError::bad_key("r"),
        ];
        let mut codes: Vec<&str> = all.iter().map(TokenError::code).collect();
        for c in &codes {
            assert!(
                c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'),
                "{c}"
            );
        }
        for e in &all {
            let text = e.to_string();
            assert!(!text.is_empty() && !text.contains('\n'), "{text}");
        }
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len(), "two variants share a code");
        // Pin the codes the issue names: clients branch on them.
        assert_eq!(TokenError::Expired.code(), "expired");
        assert_eq!(TokenError::UnknownKey.code(), "unknown_key");
        assert_eq!(TokenError::malformed("x").code(), "malformed");
    }
}
