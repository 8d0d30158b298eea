#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hapcert::fuzzing::certbot_renewal_conf(data));
