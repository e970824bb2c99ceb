//! Any bytes as a license token: `cargo +nightly fuzz run verify`. Must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| drop(license_edge_token::fuzzing::verify_token(data)));
