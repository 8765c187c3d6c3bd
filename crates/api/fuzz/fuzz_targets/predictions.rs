//! A `POST /v1/predictions` body: accepted, or a 4xx in the predictions API's shape.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nobg_api::invariants::check_prediction_body(data));
