//! The byte encodings tokens and their callers share: strict base64url without padding
//! (RFC 7515 section 2, the only encoding JOSE uses), lowercase hex, and a comparison of
//! secrets that does not leak through timing.
//!
//! Base64url decoding refuses padding, characters outside the URL-safe alphabet (including whitespace)
//! and non-zero trailing bits, so each byte string has exactly one accepted encoding.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Encodes `bytes` as base64url without padding.
pub fn base64url_encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes canonical base64url without padding; `None` for anything else.
pub fn base64url_decode(text: impl AsRef<[u8]>) -> Option<Vec<u8>> {
    // URL_SAFE_NO_PAD is configured with `DecodePaddingMode::RequireNone` and
    // `decode_allow_trailing_bits = false`: padding and non-canonical final characters fail.
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// Decodes canonical base64url that must hold exactly `N` bytes.
pub fn base64url_decode_array<const N: usize>(text: impl AsRef<[u8]>) -> Option<[u8; N]> {
    base64url_decode(text)?.try_into().ok()
}

/// `bytes` as lowercase hex digits, two per byte.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// Compares two secrets without leaking, through timing, where they first differ or how long
/// the expected one is: both are hashed with SHA-256 and the digests compared in full.
pub fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(given), Sha256::digest(expected));
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // `black_box` keeps the optimizer from turning the fold into an early-exit comparison.
    core::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let text = base64url_encode(&bytes);
            assert!(!text.contains('='));
            assert_eq!(base64url_decode(&text).as_deref(), Some(&bytes[..]));
        }
    }

    #[test]
    fn rejects_padding_whitespace_standard_alphabet_and_trailing_bits() {
        assert_eq!(base64url_decode("YQ").as_deref(), Some(&b"a"[..]));
        assert_eq!(base64url_decode("YQ=="), None);
        assert_eq!(base64url_decode("YQ="), None);
        assert_eq!(base64url_decode(" YQ"), None);
        assert_eq!(base64url_decode("YQ\n"), None);
        // "YR" decodes to the same byte as "YQ" in lax decoders: its low bits are not zero.
        assert_eq!(base64url_decode("YR"), None);
        // `+` and `/` belong to the standard alphabet, not the URL-safe one.
        assert_eq!(base64url_decode("+/8"), None);
        assert_eq!(base64url_decode("-_8").as_deref(), Some(&[0xfb, 0xff][..]));
        // A single leftover character can never be canonical.
        assert_eq!(base64url_decode("YQA").as_deref(), Some(&b"a\0"[..]));
        assert_eq!(base64url_decode("YQB"), None);
        assert_eq!(base64url_decode("Y"), None);
    }

    #[test]
    fn decode_array_requires_the_exact_length() {
        assert_eq!(base64url_decode_array::<2>("-_8"), Some([0xfb, 0xff]));
        assert_eq!(base64url_decode_array::<3>("-_8"), None);
        assert_eq!(base64url_decode_array::<1>("-_8"), None);
    }

    #[test]
    fn constant_time_eq_compares_whole_secrets() {
        assert!(constant_time_eq(b"secret-token", b"secret-token"));
        for other in [
            &b""[..],
            b"secret-toke",
            b"secret-tokenn",
            b"Secret-token",
            b"x",
        ] {
            assert!(!constant_time_eq(other, b"secret-token"), "{other:?}");
        }
        assert!(constant_time_eq(b"", b""));
    }
}
