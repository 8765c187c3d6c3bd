//! nobg: local background removal.
