//! Strict base64url without padding (RFC 7515 section 2), the only encoding JOSE uses.
//!
//! Decoding refuses padding, characters outside the URL-safe alphabet (including whitespace)
//! and non-zero trailing bits, so each byte string has exactly one accepted encoding.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Encodes `bytes` as base64url without padding.
pub(crate) fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes canonical base64url without padding; `None` for anything else.
pub(crate) fn decode(text: impl AsRef<[u8]>) -> Option<Vec<u8>> {
    // URL_SAFE_NO_PAD is configured with `DecodePaddingMode::RequireNone` and
    // `decode_allow_trailing_bits = false`: padding and non-canonical final characters fail.
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// Decodes canonical base64url that must hold exactly `N` bytes.
pub(crate) fn decode_array<const N: usize>(text: impl AsRef<[u8]>) -> Option<[u8; N]> {
    decode(text)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let text = encode(&bytes);
            assert!(!text.contains('='));
            assert_eq!(decode(&text).as_deref(), Some(&bytes[..]));
        }
    }

    #[test]
    fn rejects_padding_whitespace_standard_alphabet_and_trailing_bits() {
        assert_eq!(decode("YQ").as_deref(), Some(&b"a"[..]));
        assert_eq!(decode("YQ=="), None);
        assert_eq!(decode("YQ="), None);
        assert_eq!(decode(" YQ"), None);
        assert_eq!(decode("YQ\n"), None);
        // "YR" decodes to the same byte as "YQ" in lax decoders: its low bits are not zero.
        assert_eq!(decode("YR"), None);
        // `+` and `/` belong to the standard alphabet, not the URL-safe one.
        assert_eq!(decode("+/8"), None);
        assert_eq!(decode("-_8").as_deref(), Some(&[0xfb, 0xff][..]));
        // A single leftover character can never be canonical.
        assert_eq!(decode("YQA").as_deref(), Some(&b"a\0"[..]));
        assert_eq!(decode("YQB"), None);
        assert_eq!(decode("Y"), None);
    }

    #[test]
    fn decode_array_requires_the_exact_length() {
        assert_eq!(decode_array::<2>("-_8"), Some([0xfb, 0xff]));
        assert_eq!(decode_array::<3>("-_8"), None);
        assert_eq!(decode_array::<1>("-_8"), None);
    }
}
