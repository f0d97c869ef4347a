#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| syncfabric_fuzz::retry_after(data));
