//! The byte encodings tokens and their callers share: strict base64url without padding
//! (RFC 7515 section 2, the only encoding JOSE uses), standard base64 (RFC 4648 section 4, for
//! the Google APIs' JSON), lowercase hex, and a comparison of secrets that does not leak through
//! timing.
//!
//! Base64url decoding refuses padding, characters outside the URL-safe alphabet (including whitespace)
//! and non-zero trailing bits, so each byte string has exactly one accepted encoding.
//!
//! The codec is written here (about sixty lines, checked against the `base64` crate in the
//! tests) rather than taken from a crate: it is in every component, and the crate's general
//! engine was 7 KB of each.

use sha2::{Digest, Sha256};

/// The URL-safe alphabet (RFC 4648 section 5).
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/// The standard alphabet (RFC 4648 section 4).
const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/// Each byte's value in an alphabet, or [`NOT_IN_ALPHABET`].
type DecodeTable = [u8; 256];
const NOT_IN_ALPHABET: u8 = 0xff;
const URL_SAFE_VALUES: DecodeTable = decode_table(URL_SAFE);
const STANDARD_VALUES: DecodeTable = decode_table(STANDARD);

const fn decode_table(alphabet: &[u8; 64]) -> DecodeTable {
    let mut table = [NOT_IN_ALPHABET; 256];
    let mut i = 0;
    while i < 64 {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
}

/// Encodes `bytes` as base64url without padding.
pub fn base64url_encode(bytes: impl AsRef<[u8]>) -> String {
    encode(bytes.as_ref(), URL_SAFE, false)
}

/// Decodes canonical base64url without padding; `None` for anything else.
pub fn base64url_decode(text: impl AsRef<[u8]>) -> Option<Vec<u8>> {
    decode(text.as_ref(), &URL_SAFE_VALUES)
}

/// Decodes canonical base64url that must hold exactly `N` bytes.
pub fn base64url_decode_array<const N: usize>(text: impl AsRef<[u8]>) -> Option<[u8; N]> {
    base64url_decode(text)?.try_into().ok()
}

/// Encodes `bytes` as standard base64 with padding.
pub fn base64_encode(bytes: impl AsRef<[u8]>) -> String {
    encode(bytes.as_ref(), STANDARD, true)
}

/// Decodes canonical standard base64, padded or not (a padded text must be padded in full);
/// `None` for anything else, whitespace included.
pub fn base64_decode(text: impl AsRef<[u8]>) -> Option<Vec<u8>> {
    let text = text.as_ref();
    let unpadded = match text.iter().rposition(|&c| c != b'=') {
        Some(last) => &text[..=last],
        None => text,
    };
    let padding = text.len() - unpadded.len();
    let full = padding == 0 || (text.len() % 4 == 0 && padding == (4 - unpadded.len() % 4) % 4);
    if !full || padding > 2 {
        return None;
    }
    decode(unpadded, &STANDARD_VALUES)
}

fn encode(bytes: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let word = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(char::from(alphabet[(word >> (18 - 6 * i) & 63) as usize]));
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes unpadded base64 with an alphabet's `values`, refusing non-zero trailing bits.
fn decode(text: &[u8], values: &DecodeTable) -> Option<Vec<u8>> {
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in text {
        let value = match values[usize::from(c)] {
            NOT_IN_ALPHABET => return None,
            value => u32::from(value),
        };
        acc = acc << 6 | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // What is left over must be zero bits: one encoding per byte string.
    (acc == 0).then_some(out)
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
    fn standard_base64_is_padded_and_accepted_with_or_without_its_padding() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"a"), "YQ==");
        assert_eq!(base64_encode(b"ab"), "YWI=");
        assert_eq!(base64_encode([0xfb, 0xff]), "+/8=");
        for good in ["YQ==", "YQ", "YWI=", "YWI", "YWJj", "+/8=", ""] {
            assert!(base64_decode(good).is_some(), "{good}");
        }
        for bad in [
            "YQ=", "YQ===", "YWJj=", "YR==", "-_8=", "Y Q==", "=", "YQ==YQ==",
        ] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }

    /// The codec agrees with the `base64` crate's strict engines on every input: round trips of
    /// random bytes, and the verdict (and bytes) on random texts, valid or not.
    #[test]
    fn agrees_with_the_base64_crate() {
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
        use base64::Engine as _;
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2_000 {
            let len = (next() % 40) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            assert_eq!(base64url_encode(&bytes), URL_SAFE_NO_PAD.encode(&bytes));
            assert_eq!(base64_encode(&bytes), STANDARD.encode(&bytes));
            const CHARS: &[u8] = b"AQgwYZaz09+/-_= ";
            let text: Vec<u8> = (0..(next() % 12))
                .map(|_| CHARS[(next() % CHARS.len() as u64) as usize])
                .collect();
            assert_eq!(
                base64url_decode(&text),
                URL_SAFE_NO_PAD.decode(&text).ok(),
                "{text:?}"
            );
            let theirs = STANDARD
                .decode(&text)
                .or_else(|_| STANDARD_NO_PAD.decode(&text))
                .ok();
            assert_eq!(base64_decode(&text), theirs, "{text:?}");
        }
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
