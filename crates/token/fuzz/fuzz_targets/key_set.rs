//! Any bytes as a public key set (JWKS or compact text): `cargo +nightly fuzz run key_set`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| drop(license_edge_token::fuzzing::parse_key_set(data)));
