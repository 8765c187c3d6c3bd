//! The widest x86 vector extension nobg's own f32 kernels dispatch to. AVX-512 twins are only
//! chosen in builds with the `avx512` feature (the default, which also turns on gemm's AVX-512
//! micro-kernels), so a build without it runs exactly what an AVX2-only CPU runs, and can be
//! measured as such on an AVX-512 machine.

/// A vector level, widest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Avx512,
    Avx2,
    Generic,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Avx512 => "avx512",
            Level::Avx2 => "avx2",
            Level::Generic => "generic",
        }
    }
}

/// The level this build uses on this CPU (FMA is required for both vector levels).
pub fn level() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("fma") {
            if cfg!(feature = "avx512") && is_x86_feature_detected!("avx512f") {
                return Level::Avx512;
            }
            if is_x86_feature_detected!("avx2") {
                return Level::Avx2;
            }
        }
    }
    Level::Generic
}
