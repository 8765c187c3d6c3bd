//! Image references (UUID, URL, data URI, raw base64) and their decoding within a limit; the
//! first byte picks the limit, the rest is the reference.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&limit, rest)) = data.split_first() else {
        return;
    };
    nobg_api::invariants::check_image_ref(&String::from_utf8_lossy(rest), usize::from(limit));
    nobg_api::invariants::check_base64_round_trip(rest, limit, usize::from(limit) * 2);
});
