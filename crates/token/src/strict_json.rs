//! A JSON parser that refuses duplicate object keys, at every depth.
//!
//! `serde_json` silently keeps the last of two equal keys, so `{"aud":"a","aud":"b"}` would
//! mean different things to different JOSE libraries. Token headers and claims sets are parsed
//! here instead, into the same [`Value`] type, and a duplicate anywhere is an error. Nesting
//! depth is bounded by `serde_json`'s recursion limit (128), so hostile input cannot overflow
//! the stack.
//!
//! Components can use it for request bodies too, for the same reason.

use core::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Parses `bytes` as one JSON object with no duplicate keys at any depth, and nothing after it
/// but whitespace. `None` if it is anything else.
pub fn parse_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<StrictValue>(bytes) {
        Ok(StrictValue(Value::Object(map))) => Some(map),
        _ => None,
    }
}

/// A [`Value`] whose deserialization fails on duplicate keys.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value without duplicate object keys")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        // JSON text cannot spell NaN or infinity, so this only fails on a broken deserializer.
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom("duplicate object key"));
            }
            let StrictValue(value) = access.next_value()?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_objects_like_serde_json() {
        let text = br#" {"a":1,"b":[true,null,-2,1.5,"s",{"c":{}}],"u":18446744073709551615} "#;
        let map = parse_object(text).unwrap();
        assert_eq!(
            Value::Object(map),
            serde_json::from_slice::<Value>(text).unwrap()
        );
    }

    #[test]
    fn rejects_duplicate_keys_at_any_depth() {
        assert!(parse_object(br#"{"a":1,"a":1}"#).is_none());
        assert!(parse_object(br#"{"a":1,"b":{"c":1,"c":2}}"#).is_none());
        assert!(parse_object(br#"{"a":[{"x":1,"x":1}]}"#).is_none());
        // Escapes are decoded before comparing: "\u0061" is "a".
        assert!(parse_object(br#"{"a":1,"\u0061":2}"#).is_none());
        assert_eq!(
            parse_object(br#"{"a":1,"A":2}"#).map(Value::Object),
            Some(json!({"a":1,"A":2}))
        );
    }

    #[test]
    fn rejects_non_objects_trailing_data_and_bad_text() {
        for bad in [
            &b"[]"[..],
            b"1",
            b"\"x\"",
            b"null",
            b"",
            b"{",
            b"{}{}",
            b"{} x",
            b"{\"a\":1,}",
            b"{\"a\":\"\xff\"}",
            b"{\"a\":\"\\ud800\"}",
            b"{'a':1}",
        ] {
            assert!(
                parse_object(bad).is_none(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse_object(deep.as_bytes()).is_none());
    }
}
