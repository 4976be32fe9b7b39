#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sifa_fuzz::registry(data));
