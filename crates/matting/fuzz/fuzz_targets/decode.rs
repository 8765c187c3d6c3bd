//! Any byte string given to `decode` returns a value (image or typed error), never a panic, a
//! hang or an allocation beyond the limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nobg_matting::decode::{decode, DecodeLimits};

fuzz_target!(|data: &[u8]| {
    // Small limits keep each run fast and bounded; the header checks are part of what is fuzzed.
    let limits = DecodeLimits {
        max_bytes: 1 << 20,
        max_pixels: 4_000_000,
    };
    if let Ok(image) = decode(data, &limits) {
        let (w, h) = image.rgb.dimensions();
        assert!(u64::from(w) * u64::from(h) <= limits.max_pixels);
        if let Some(alpha) = &image.alpha {
            assert_eq!(alpha.dimensions(), (w, h));
        }
    }
});
