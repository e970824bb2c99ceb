//! RSASSA-PKCS1-v1_5 signature verification with SHA-256 (RS256; RFC 8017 §8.2.2), and only
//! that: a public key, a digest, a signature, yes or no.
//!
//! Written here rather than taken from the `rsa` crate because verification needs one modular
//! exponentiation with a public exponent, and the general-purpose big-integer code behind the
//! crate was the largest part of the acquire component (BENCHMARKS.md, "component sizes").
//! Everything a verifier handles is public (the key, the signature, the message), so nothing
//! here needs to run in constant time. The tests check it against the `rsa` crate's signatures.
//!
//! Numbers are little-endian vectors of 32-bit limbs; the exponentiation is Montgomery
//! multiplication (the CIOS method) with left-to-right square-and-multiply over the exponent.

/// The smallest public exponent accepted.
const MIN_EXPONENT: u64 = 3;
/// The largest public exponent accepted (2^33 - 1, as the `rsa` crate and OpenSSL's default
/// limit): a bound on the work one verification may cost.
const MAX_EXPONENT: u64 = (1 << 33) - 1;

/// The DER `DigestInfo` prefix of a SHA-256 digest (RFC 8017 §9.2, note 1).
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// An RSA public key, ready to verify with.
#[derive(Clone, PartialEq, Eq)]
pub struct RsaPublicKey {
    /// The modulus, little-endian limbs, the top limb non-zero.
    n: Vec<u32>,
    /// The modulus's length in bytes (`k` in RFC 8017).
    len: usize,
    /// The public exponent.
    e: u64,
    /// `-n^-1 mod 2^32`, for Montgomery reduction.
    n0_inv: u32,
}

impl std::fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RsaPublicKey({} bits, e = {})", self.bits(), self.e)
    }
}

impl RsaPublicKey {
    /// The key with modulus `n` and exponent `e` (big-endian bytes, as a JWK's `n` and `e`),
    /// when the modulus is odd and `min_bits..=max_bits` long and the exponent odd and
    /// 3..=2^33-1.
    pub fn from_be_bytes(n: &[u8], e: &[u8], min_bits: usize, max_bits: usize) -> Option<Self> {
        let n = trim_leading_zeros(n);
        let e = trim_leading_zeros(e);
        if e.len() > 8 {
            return None;
        }
        let e = e.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b));
        if !(MIN_EXPONENT..=MAX_EXPONENT).contains(&e) || e % 2 == 0 {
            return None;
        }
        let limbs = limbs_from_be(n);
        let bits = bit_length(&limbs);
        if !(min_bits..=max_bits).contains(&bits) || limbs[0] % 2 == 0 {
            return None;
        }
        Some(RsaPublicKey {
            n0_inv: neg_inverse(limbs[0]),
            n: limbs,
            len: n.len(),
            e,
        })
    }

    /// The modulus's length in bits.
    pub fn bits(&self) -> usize {
        bit_length(&self.n)
    }

    /// Whether `signature` is this key's RSASSA-PKCS1-v1_5 signature of the SHA-256 `digest`.
    pub fn verify_sha256(&self, digest: &[u8; 32], signature: &[u8]) -> bool {
        // RFC 8017 §8.2.2 step 1: the signature is exactly k bytes.
        if signature.len() != self.len {
            return false;
        }
        let mut s = limbs_from_be(signature);
        s.resize(self.n.len(), 0);
        // Step 2.1 (RSAVP1): the signature representative is below the modulus.
        if compare(&s, &self.n) != std::cmp::Ordering::Less {
            return false;
        }
        let m = self.power(&s);
        // Steps 2.3 to 4: the encoded message, compared whole with the one expected.
        let encoded = be_from_limbs(&m, self.len);
        encoded == expected_encoding(digest, self.len)
    }

    /// `base^e mod n`.
    fn power(&self, base: &[u32]) -> Vec<u32> {
        let r2 = self.r_squared();
        let base_m = self.mont_mul(base, &r2);
        let mut acc = base_m.clone();
        let top = 63 - self.e.leading_zeros();
        for bit in (0..top).rev() {
            acc = self.mont_mul(&acc, &acc);
            if self.e >> bit & 1 == 1 {
                acc = self.mont_mul(&acc, &base_m);
            }
        }
        let mut one = vec![0u32; self.n.len()];
        one[0] = 1;
        self.mont_mul(&acc, &one)
    }

    /// `R^2 mod n` with `R = 2^(32 * limbs)`: 1 doubled modulo n, 2 * 32 * limbs times.
    fn r_squared(&self) -> Vec<u32> {
        let l = self.n.len();
        let mut x = vec![0u32; l];
        x[0] = 1;
        for _ in 0..2 * 32 * l {
            let carry = shl1(&mut x);
            if carry || compare(&x, &self.n) != std::cmp::Ordering::Less {
                sub_assign(&mut x, &self.n);
            }
        }
        x
    }

    /// `a * b / R mod n` for `a, b < n`.
    fn mont_mul(&self, a: &[u32], b: &[u32]) -> Vec<u32> {
        let n = &self.n;
        let l = n.len();
        let mut t = vec![0u32; l + 2];
        for &bi in b {
            let mut carry = 0u64;
            for j in 0..l {
                let s = u64::from(t[j]) + u64::from(a[j]) * u64::from(bi) + carry;
                t[j] = s as u32;
                carry = s >> 32;
            }
            let s = u64::from(t[l]) + carry;
            t[l] = s as u32;
            t[l + 1] = (s >> 32) as u32;

            let m = t[0].wrapping_mul(self.n0_inv);
            let s = u64::from(t[0]) + u64::from(m) * u64::from(n[0]);
            let mut carry = s >> 32;
            for j in 1..l {
                let s = u64::from(t[j]) + u64::from(m) * u64::from(n[j]) + carry;
                t[j - 1] = s as u32;
                carry = s >> 32;
            }
            let s = u64::from(t[l]) + carry;
            t[l - 1] = s as u32;
            t[l] = t[l + 1] + (s >> 32) as u32;
            t[l + 1] = 0;
        }
        // t < 2n: one subtraction at most.
        let high = t[l] != 0;
        t.truncate(l);
        if high || compare(&t, n) != std::cmp::Ordering::Less {
            sub_assign(&mut t, n);
        }
        t
    }
}

/// `0x00 0x01 0xff.. 0x00 DigestInfo digest`, `len` bytes (EMSA-PKCS1-v1_5 for SHA-256).
fn expected_encoding(digest: &[u8; 32], len: usize) -> Vec<u8> {
    let t_len = SHA256_DIGEST_INFO.len() + digest.len();
    let mut em = Vec::with_capacity(len);
    // A 2048-bit key or larger always leaves room for the eight bytes of padding required.
    let pad = len.saturating_sub(t_len + 3);
    em.extend_from_slice(&[0x00, 0x01]);
    em.resize(2 + pad, 0xff);
    em.push(0x00);
    em.extend_from_slice(&SHA256_DIGEST_INFO);
    em.extend_from_slice(digest);
    em
}

fn trim_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// Little-endian limbs of a big-endian byte string (at least one limb).
fn limbs_from_be(bytes: &[u8]) -> Vec<u32> {
    let mut limbs: Vec<u32> = bytes
        .rchunks(4)
        .map(|chunk| chunk.iter().fold(0u32, |acc, &b| acc << 8 | u32::from(b)))
        .collect();
    while limbs.len() > 1 && limbs.last() == Some(&0) {
        limbs.pop();
    }
    if limbs.is_empty() {
        limbs.push(0);
    }
    limbs
}

/// The big-endian bytes of `limbs`, `len` bytes (higher bytes are zero for a value below n).
fn be_from_limbs(limbs: &[u32], len: usize) -> Vec<u8> {
    let mut out: Vec<u8> = limbs.iter().rev().flat_map(|l| l.to_be_bytes()).collect();
    let extra = out.len().saturating_sub(len);
    if out[..extra].iter().any(|&b| b != 0) {
        // Cannot happen for a value below a `len`-byte modulus; never a match if it did.
        return Vec::new();
    }
    out.drain(..extra);
    out
}

fn bit_length(limbs: &[u32]) -> usize {
    match limbs.iter().rposition(|&l| l != 0) {
        Some(i) => 32 * i + 32 - limbs[i].leading_zeros() as usize,
        None => 0,
    }
}

/// `-x^-1 mod 2^32` for odd `x` (Newton's iteration doubles the correct bits each step).
fn neg_inverse(x: u32) -> u32 {
    let mut inv = 1u32;
    for _ in 0..5 {
        inv = inv.wrapping_mul(2u32.wrapping_sub(x.wrapping_mul(inv)));
    }
    inv.wrapping_neg()
}

/// Compares equal-length numbers.
fn compare(a: &[u32], b: &[u32]) -> std::cmp::Ordering {
    a.iter().rev().cmp(b.iter().rev())
}

/// `a -= b` for equal-length numbers, modulo 2^(32 * len).
fn sub_assign(a: &mut [u32], b: &[u32]) {
    let mut borrow = 0u64;
    for (x, &y) in a.iter_mut().zip(b) {
        let d = u64::from(*x).wrapping_sub(u64::from(y) + borrow);
        *x = d as u32;
        borrow = (d >> 63) & 1;
    }
}

/// `a <<= 1`; whether a bit fell off the top.
fn shl1(a: &mut [u32]) -> bool {
    let mut carry = 0u32;
    for x in a.iter_mut() {
        let next = *x >> 31;
        *x = *x << 1 | carry;
        carry = next;
    }
    carry == 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::traits::{PrivateKeyParts, PublicKeyParts};
    use rsa::{Pkcs1v15Sign, RsaPrivateKey};
    use sha2::{Digest, Sha256};

    fn ours(key: &RsaPrivateKey) -> RsaPublicKey {
        RsaPublicKey::from_be_bytes(&key.n().to_bytes_be(), &key.e().to_bytes_be(), 1024, 8192)
            .unwrap()
    }

    fn sign(key: &RsaPrivateKey, message: &[u8]) -> ([u8; 32], Vec<u8>) {
        let digest: [u8; 32] = Sha256::digest(message).into();
        let signature = key.sign(Pkcs1v15Sign::new::<Sha256>(), &digest).unwrap();
        (digest, signature)
    }

    #[test]
    fn the_rsa_crates_signatures_verify_and_nothing_else_does() {
        let mut rng = rand::thread_rng();
        for bits in [1024, 2048, 3072] {
            let private = RsaPrivateKey::new(&mut rng, bits).unwrap();
            let key = ours(&private);
            assert_eq!(key.bits(), bits);
            for message in [&b""[..], b"header.payload", &[0xa5; 300]] {
                let (digest, signature) = sign(&private, message);
                assert!(key.verify_sha256(&digest, &signature), "{bits} bits");

                // Any one bit flipped, in the signature or the digest, fails.
                for i in [0, 1, signature.len() / 2, signature.len() - 1] {
                    let mut bad = signature.clone();
                    bad[i] ^= 0x10;
                    assert!(!key.verify_sha256(&digest, &bad), "{bits}: byte {i}");
                }
                let mut other = digest;
                other[31] ^= 1;
                assert!(!key.verify_sha256(&other, &signature));
            }
            // Another key's signature of the same digest fails.
            let stranger = RsaPrivateKey::new(&mut rng, bits).unwrap();
            let (digest, signature) = sign(&stranger, b"m");
            assert!(!key.verify_sha256(&digest, &signature));
        }
    }

    #[test]
    fn signatures_of_the_wrong_length_or_not_below_the_modulus_fail() {
        let private = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        let key = ours(&private);
        let (digest, signature) = sign(&private, b"m");
        let mut longer = vec![0u8];
        longer.extend_from_slice(&signature);
        assert!(!key.verify_sha256(&digest, &longer), "a leading zero byte");
        assert!(!key.verify_sha256(&digest, &signature[1..]));
        assert!(!key.verify_sha256(&digest, &[]));
        // s = n and s = n + (s mod n) are refused, not reduced.
        let n = private.n().to_bytes_be();
        assert!(!key.verify_sha256(&digest, &n));
        assert!(!key.verify_sha256(&digest, &[0xff; 256]));
    }

    #[test]
    fn a_signature_with_another_hash_or_short_padding_fails() {
        // The same key's raw RSA applied to a hand-built encoding: only the exact SHA-256
        // DigestInfo with full padding is accepted.
        let private = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        let key = ours(&private);
        let digest: [u8; 32] = Sha256::digest(b"m").into();
        let raw_sign = |em: &[u8]| {
            let m = rsa::BigUint::from_bytes_be(em);
            let s = m.modpow(private.d(), private.n()).to_bytes_be();
            let mut out = vec![0u8; 256 - s.len()];
            out.extend_from_slice(&s);
            out
        };
        let good = expected_encoding(&digest, 256);
        assert!(key.verify_sha256(&digest, &raw_sign(&good)));
        // SHA-384's OID with a 32-byte payload, a 0x02 block type, no zero separator.
        let mut wrong_oid = good.clone();
        wrong_oid[256 - 32 - 19 + 14] = 0x02;
        assert!(!key.verify_sha256(&digest, &raw_sign(&wrong_oid)));
        let mut block_type = good.clone();
        block_type[1] = 0x02;
        assert!(!key.verify_sha256(&digest, &raw_sign(&block_type)));
        let mut separator = good.clone();
        separator[256 - 32 - 19 - 1] = 0x01;
        assert!(!key.verify_sha256(&digest, &raw_sign(&separator)));
    }

    #[test]
    fn keys_out_of_bounds_are_refused() {
        let n = [0xff; 256];
        let e = [0x01, 0x00, 0x01];
        assert!(RsaPublicKey::from_be_bytes(&n, &e, 2048, 8192).is_some());
        let mut even = n;
        even[255] = 0xfe;
        assert!(RsaPublicKey::from_be_bytes(&even, &e, 2048, 8192).is_none());
        assert!(RsaPublicKey::from_be_bytes(&n[..255], &e, 2048, 8192).is_none());
        assert!(RsaPublicKey::from_be_bytes(&[0xff; 1025], &e, 2048, 8192).is_none());
        for bad_e in [
            &[][..],
            &[1],
            &[2],
            &[0x01, 0x00, 0x00],
            &[0x02, 0, 0, 0, 1],
        ] {
            assert!(RsaPublicKey::from_be_bytes(&n, bad_e, 2048, 8192).is_none());
        }
        // Leading zero bytes are not part of the length.
        let mut padded = vec![0u8; 3];
        padded.extend_from_slice(&n);
        assert_eq!(
            RsaPublicKey::from_be_bytes(&padded, &e, 2048, 8192).map(|k| k.len),
            Some(256)
        );
    }

    #[test]
    fn the_inverse_is_the_negated_inverse() {
        for x in [1u32, 3, 0xffff_ffff, 0x8000_0001, 65537] {
            assert_eq!(x.wrapping_mul(neg_inverse(x)), u32::MAX);
        }
    }
}
