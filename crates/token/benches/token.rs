//! Issue and verify throughput, against the bare Ed25519 verification that `verify` wraps.
//!
//! Run: `cargo bench -p license-edge --bench token -- --warm-up-time 1 --measurement-time 3`.
//! Figures go in BENCHMARKS.md; nothing here asserts a timing.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use license_edge_token::{
    issue, verify, Claims, KeySet, SigningKey, ValidationOptions, VerifiedCache,
};

const NOW: i64 = 1_800_000_000;

fn claims() -> Claims {
    let mut c = Claims::new(
        "https://lic.example",
        "lic_01HZX",
        "prod_a",
        "ses_01HZY",
        NOW,
        600,
    )
    .with_machine_id("machine-42");
    c.org = Some("org_1".into());
    c.plan = Some("pro".into());
    c.features = vec!["export".into(), "sso".into(), "audit".into()];
    c.max_seats = Some(25);
    c
}

fn bench(c: &mut Criterion) {
    let key = SigningKey::from_seed("bench", [42; 32]).expect("constant key is valid");
    let mut keys = KeySet::new();
    keys.insert(key.verifying_key()).expect("empty set");
    let claims = claims();
    let policy = ValidationOptions::new()
        .with_issuer("https://lic.example")
        .with_audience("prod_a");
    let token = issue(&key, &claims).expect("valid claims");

    // The bare signature check `verify` performs, on the same bytes.
    let (signing_input, signature_b64) = token.rsplit_once('.').expect("three segments");
    let signature = decode_b64url(signature_b64);
    let public = ed25519_compact::PublicKey::new(key.verifying_key().to_bytes());
    let signature = ed25519_compact::Signature::from_slice(&signature).expect("64 bytes");
    assert!(public.verify(signing_input, &signature).is_ok());

    let mut group = c.benchmark_group("token");
    group.throughput(Throughput::Elements(1));
    group.bench_function("issue", |b| {
        b.iter(|| issue(black_box(&key), black_box(&claims)))
    });
    group.bench_function("verify", |b| {
        b.iter(|| {
            verify(
                black_box(token.as_bytes()),
                black_box(&keys),
                black_box(&policy),
                NOW,
                Some(black_box("machine-42")),
            )
        })
    });
    let mut cache = VerifiedCache::new(1024);
    group.bench_function("verify_cached_hit", |b| {
        b.iter(|| {
            cache.verify(
                black_box(token.as_bytes()),
                black_box(&keys),
                black_box(&policy),
                NOW,
                Some(black_box("machine-42")),
            )
        })
    });
    group.bench_function("ed25519_verify_bare", |b| {
        b.iter(|| black_box(&public).verify(black_box(signing_input), black_box(&signature)))
    });
    group.finish();
    eprintln!("token length: {} bytes", token.len());
}

/// Minimal base64url decoder for the benchmark's own setup (the core keeps its own private).
fn decode_b64url(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => panic!("not base64url"),
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for &c in text.as_bytes() {
        acc = acc << 6 | u32::from(value(c));
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

criterion_group!(benches, bench);
criterion_main!(benches);
