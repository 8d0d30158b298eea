#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hapcert::fuzzing::pem(data));
