//! cargo-fuzz target `access_token`; the target itself is `nats_callout::testing::fuzz::access_token`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nats_callout::testing::fuzz::access_token(data));
