//! Image-side steps of background removal.
