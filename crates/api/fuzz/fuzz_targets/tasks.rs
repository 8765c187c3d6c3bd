//! A REST `POST /v1` body or a WebSocket text frame (the server parses both with
//! `parse_task_array`, then `parse_task` per element): never a panic, every refusal a 4xx.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nobg_api::invariants::check_task_body(data));
