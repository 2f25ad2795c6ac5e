//! cargo-fuzz target `request`; the target itself is `nats_callout::testing::fuzz::request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nats_callout::testing::fuzz::request(data));
