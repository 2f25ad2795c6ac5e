//! cargo-fuzz target `permissions`; the target itself is `nats_callout::testing::fuzz::permissions`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nats_callout::testing::fuzz::permissions(data));
