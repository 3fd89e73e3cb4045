#![no_main]

// The body lives in tests/fuzz_bodies so that `cargo test --test fuzz_seeds` runs it too.
#[path = "../../tests/fuzz_bodies/mod.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::json_import(data));
