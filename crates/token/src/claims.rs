//! The claims a license token carries, and how they are read from and written to JSON.
//!
//! Reading is strict about the claims this crate knows and lenient about the rest: a known
//! claim with the wrong type is [`TokenError::InvalidClaim`], a required one that is absent is
//! [`TokenError::MissingClaim`], and any other member is kept in [`Claims::extra`] so that a
//! newer server can add claims without breaking older verifiers.
//!
//! Times are integer Unix seconds (`i64`). RFC 7519 allows fractional NumericDates; our issuer
//! never writes them, and they are refused as invalid rather than rounded. Likewise `aud` is a
//! single string (RFC 7519 also allows an array of them; one license is for one product).

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::encoding::hex;
use crate::error::TokenError;

/// The claims this crate reads and writes itself; an extra claim may not reuse these names.
pub const REGISTERED_CLAIMS: [&str; 14] = [
    "iss",
    "sub",
    "aud",
    "iat",
    "nbf",
    "exp",
    "jti",
    "sid",
    "org",
    "plan",
    "features",
    "mid",
    "max_seats",
    "offline_grace",
];

/// The claims set of a license token.
///
/// `iss`, `sub`, `aud`, `iat`, `nbf`, `exp` and `sid` are required; the others are optional.
/// The session id is written twice, as `sid` and as the registered `jti` (RFC 7519 4.1.7), so
/// that generic JWT tooling sees a token id; on reading, a `jti` that differs from `sid` is
/// refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Issuer: who signed the token (e.g. the server's base URL).
    pub iss: String,
    /// Subject: the license id.
    pub sub: String,
    /// Audience: the product the license is for.
    pub aud: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Not before, Unix seconds.
    pub nbf: i64,
    /// Expires at, Unix seconds. The token is refused from this instant on (less leeway).
    pub exp: i64,
    /// The session (seat lease) id; also written as `jti`.
    pub sid: String,
    /// The organization (tenant) that owns the license.
    pub org: Option<String>,
    /// The license's plan name.
    pub plan: Option<String>,
    /// The features the license enables. Written even when empty; absent reads as empty.
    pub features: Vec<String>,
    /// The machine the session is bound to, as [`machine_id_hash`] of its id (64 lowercase
    /// hex digits). The raw machine id never goes into a token.
    pub mid: Option<String>,
    /// The license's seat limit.
    pub max_seats: Option<u32>,
    /// How long after `exp` a verifier working offline may still accept the token, in seconds,
    /// as the server decided for the license. A verifier that honours it
    /// ([`crate::ValidationOptions::honouring_offline_grace`]) accepts nothing longer; the online validate
    /// endpoint ignores it.
    pub offline_grace: Option<u32>,
    /// Any other claims, kept as they came.
    pub extra: Map<String, Value>,
}

impl Claims {
    /// Claims for a token valid from `now` for `ttl_secs` seconds: `iat = nbf = now`,
    /// `exp = now + ttl_secs` (saturating). Optional claims start empty.
    pub fn new(
        iss: impl Into<String>,
        license_id: impl Into<String>,
        product: impl Into<String>,
        session_id: impl Into<String>,
        now: i64,
        ttl_secs: i64,
    ) -> Self {
        Claims {
            iss: iss.into(),
            sub: license_id.into(),
            aud: product.into(),
            iat: now,
            nbf: now,
            exp: now.saturating_add(ttl_secs),
            sid: session_id.into(),
            org: None,
            plan: None,
            features: Vec::new(),
            mid: None,
            max_seats: None,
            offline_grace: None,
            extra: Map::new(),
        }
    }

    /// Binds the claims to a machine: sets `mid` to [`machine_id_hash`] of `machine_id`.
    pub fn with_machine_id(mut self, machine_id: &str) -> Self {
        self.mid = Some(machine_id_hash(machine_id));
        self
    }

    /// Reads claims from a JSON object (see the module docs for what is refused).
    pub fn from_json_object(mut map: Map<String, Value>) -> Result<Self, TokenError> {
        let claims = Claims {
            iss: required(take_string(&mut map, "iss")?, "iss")?,
            sub: required(take_string(&mut map, "sub")?, "sub")?,
            aud: required(take_string(&mut map, "aud")?, "aud")?,
            iat: required(take_time(&mut map, "iat")?, "iat")?,
            nbf: required(take_time(&mut map, "nbf")?, "nbf")?,
            exp: required(take_time(&mut map, "exp")?, "exp")?,
            sid: required(take_string(&mut map, "sid")?, "sid")?,
            org: take_string(&mut map, "org")?,
            plan: take_string(&mut map, "plan")?,
            features: take_features(&mut map)?.unwrap_or_default(),
            mid: take_string(&mut map, "mid")?,
            max_seats: take_u32(&mut map, "max_seats")?,
            offline_grace: take_u32(&mut map, "offline_grace")?,
            extra: Map::new(),
        };
        if let Some(jti) = take_string(&mut map, "jti")? {
            if jti != claims.sid {
                return Err(TokenError::InvalidClaim { claim: "jti" });
            }
        }
        let claims = Claims {
            extra: map,
            ..claims
        };
        claims.check_consistency()?;
        Ok(claims)
    }

    /// Reads claims from JSON text; duplicate keys are refused, as in a token.
    pub fn from_json(text: &str) -> Result<Self, TokenError> {
        let map =
            crate::strict_json::parse_object(text.as_bytes()).ok_or(TokenError::Malformed {
                what: "claims are not a JSON object without duplicate keys",
            })?;
        Self::from_json_object(map)
    }

    /// The claims as the JSON object a token carries (`jti` equal to `sid`). A [`Value`]'s
    /// keys are sorted; serialize the `Claims` itself to keep the registered claims first.
    pub fn to_json(&self) -> Value {
        // Serializing into a `Value` cannot fail: every key is a string.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Checks what does not depend on the clock: `mid` shape, `nbf`/`iat` not after `exp`,
    /// and no extra claim shadowing a registered one.
    pub(crate) fn check_consistency(&self) -> Result<(), TokenError> {
        if let Some(mid) = &self.mid {
            if !is_sha256_hex(mid) {
                return Err(TokenError::InvalidClaim { claim: "mid" });
            }
        }
        if self.nbf > self.exp {
            return Err(TokenError::InvalidClaim { claim: "nbf" });
        }
        if self.iat > self.exp {
            return Err(TokenError::InvalidClaim { claim: "iat" });
        }
        for name in REGISTERED_CLAIMS {
            if self.extra.contains_key(name) {
                return Err(TokenError::InvalidClaim { claim: name });
            }
        }
        Ok(())
    }
}

impl Serialize for Claims {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("iss", &self.iss)?;
        map.serialize_entry("sub", &self.sub)?;
        map.serialize_entry("aud", &self.aud)?;
        map.serialize_entry("iat", &self.iat)?;
        map.serialize_entry("nbf", &self.nbf)?;
        map.serialize_entry("exp", &self.exp)?;
        map.serialize_entry("jti", &self.sid)?;
        map.serialize_entry("sid", &self.sid)?;
        if let Some(org) = &self.org {
            map.serialize_entry("org", org)?;
        }
        if let Some(plan) = &self.plan {
            map.serialize_entry("plan", plan)?;
        }
        map.serialize_entry("features", &self.features)?;
        if let Some(mid) = &self.mid {
            map.serialize_entry("mid", mid)?;
        }
        if let Some(max_seats) = &self.max_seats {
            map.serialize_entry("max_seats", max_seats)?;
        }
        if let Some(grace) = &self.offline_grace {
            map.serialize_entry("offline_grace", grace)?;
        }
        for (name, value) in &self.extra {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// The value a token's `mid` holds for a machine: the SHA-256 of the machine id's UTF-8 bytes,
/// as 64 lowercase hex digits.
pub fn machine_id_hash(machine_id: &str) -> String {
    hex(&Sha256::digest(machine_id.as_bytes()))
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn required<T>(value: Option<T>, claim: &'static str) -> Result<T, TokenError> {
    value.ok_or(TokenError::MissingClaim { claim })
}

fn take_string(
    map: &mut Map<String, Value>,
    claim: &'static str,
) -> Result<Option<String>, TokenError> {
    match map.remove(claim) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(TokenError::InvalidClaim { claim }),
    }
}

fn take_time(map: &mut Map<String, Value>, claim: &'static str) -> Result<Option<i64>, TokenError> {
    match map.remove(claim) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or(TokenError::InvalidClaim { claim }),
        Some(_) => Err(TokenError::InvalidClaim { claim }),
    }
}

fn take_features(map: &mut Map<String, Value>) -> Result<Option<Vec<String>>, TokenError> {
    const CLAIM: &str = "features";
    match map.remove(CLAIM) {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Ok(s),
                _ => Err(TokenError::InvalidClaim { claim: CLAIM }),
            })
            .collect::<Result<_, _>>()
            .map(Some),
        Some(_) => Err(TokenError::InvalidClaim { claim: CLAIM }),
    }
}

fn take_u32(map: &mut Map<String, Value>, claim: &'static str) -> Result<Option<u32>, TokenError> {
    match map.remove(claim) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or(TokenError::InvalidClaim { claim }),
        Some(_) => Err(TokenError::InvalidClaim { claim }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Claims {
        let mut c = Claims::new(
            "https://lic.example",
            "lic_1",
            "prod_a",
            "ses_1",
            1_000,
            600,
        )
        .with_machine_id("machine-42");
        c.org = Some("org_1".into());
        c.plan = Some("pro".into());
        c.features = vec!["export".into(), "sso".into()];
        c.max_seats = Some(5);
        c.extra.insert("ver".into(), json!(2));
        c
    }

    #[test]
    fn machine_id_hash_is_hex_sha256() {
        // SHA-256("abc") from FIPS 180-2.
        assert_eq!(
            machine_id_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(is_sha256_hex(&machine_id_hash("")));
    }

    #[test]
    fn json_round_trips_and_writes_jti_and_sid() {
        let c = sample();
        let v = c.to_json();
        assert_eq!(v["jti"], "ses_1");
        assert_eq!(v["sid"], "ses_1");
        assert_eq!(v["exp"], 1_600);
        assert_eq!(v["ver"], 2);
        let Value::Object(map) = v else { panic!() };
        assert_eq!(Claims::from_json_object(map).unwrap(), c);
        let text = serde_json::to_string(&c).unwrap();
        assert!(text.starts_with(r#"{"iss":"https://lic.example","sub":"lic_1","aud":"prod_a","iat":1000,"nbf":1000,"exp":1600,"jti":"ses_1","sid":"ses_1","org":"org_1""#), "{text}");
        assert_eq!(Claims::from_json(&text).unwrap(), c);
    }

    #[test]
    fn optional_claims_may_be_absent() {
        let text = r#"{"iss":"i","sub":"s","aud":"a","iat":1,"nbf":1,"exp":2,"sid":"x"}"#;
        let c = Claims::from_json(text).unwrap();
        assert_eq!(c.features, Vec::<String>::new());
        assert_eq!(
            (c.org, c.plan, c.mid, c.max_seats),
            (None, None, None, None)
        );
    }

    fn with(change: impl FnOnce(&mut Map<String, Value>)) -> Result<Claims, TokenError> {
        let Value::Object(mut map) = sample().to_json() else {
            panic!()
        };
        change(&mut map);
        Claims::from_json_object(map)
    }

    #[test]
    fn rejects_missing_required_claims() {
        for claim in ["iss", "sub", "aud", "iat", "nbf", "exp", "sid"] {
            let err = with(|m| {
                m.remove(claim);
            })
            .unwrap_err();
            assert_eq!(err, TokenError::MissingClaim { claim }, "{claim}");
        }
    }

    #[test]
    fn rejects_claims_of_the_wrong_type_or_shape() {
        let cases: Vec<(&'static str, Value)> = vec![
            ("iss", json!(1)),
            ("sub", json!(null)),
            ("aud", json!(["prod_a"])),
            ("iat", json!("1000")),
            ("nbf", json!(1000.5)),
            ("exp", json!(1e3)),
            ("exp", json!(u64::MAX)),
            ("sid", json!({})),
            ("jti", json!("other")),
            ("jti", json!(1)),
            ("org", json!(false)),
            ("plan", json!(3)),
            ("features", json!("sso")),
            ("features", json!(["sso", 1])),
            ("mid", json!("ABC")),
            ("mid", json!(machine_id_hash("m").to_uppercase())),
            ("mid", json!(format!("{}0", machine_id_hash("m")))),
            ("max_seats", json!(-1)),
            ("max_seats", json!(u64::from(u32::MAX) + 1)),
            ("max_seats", json!(2.0)),
        ];
        for (claim, value) in cases {
            let err = with(|m| {
                m.insert(claim.into(), value.clone());
            })
            .unwrap_err();
            assert_eq!(err, TokenError::InvalidClaim { claim }, "{claim} = {value}");
        }
    }

    #[test]
    fn rejects_times_out_of_order() {
        assert_eq!(
            with(|m| {
                m.insert("nbf".into(), json!(2_000));
            })
            .unwrap_err(),
            TokenError::InvalidClaim { claim: "nbf" }
        );
        assert_eq!(
            with(|m| {
                m.insert("iat".into(), json!(2_000));
            })
            .unwrap_err(),
            TokenError::InvalidClaim { claim: "iat" }
        );
    }

    #[test]
    fn rejects_extra_claims_that_shadow_registered_ones() {
        let mut c = sample();
        c.extra.insert("exp".into(), json!(1));
        assert_eq!(
            c.check_consistency().unwrap_err(),
            TokenError::InvalidClaim { claim: "exp" }
        );
    }

    #[test]
    fn rejects_duplicate_keys_in_claims_text() {
        let text = r#"{"iss":"i","sub":"s","aud":"a","aud":"b","iat":1,"nbf":1,"exp":2,"sid":"x"}"#;
        assert_eq!(Claims::from_json(text).unwrap_err().code(), "malformed");
    }

    #[test]
    fn new_saturates_exp() {
        assert_eq!(
            Claims::new("i", "s", "a", "x", i64::MAX - 1, 600).exp,
            i64::MAX
        );
    }
}
