//! Any header and claims, validly signed, through verification:
//! `cargo +nightly fuzz run signed`. Must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| drop(license_edge_token::fuzzing::verify_signed(data)));
