//! The process allocator of nobg's binaries and benchmarks.
//!
//! A CPU forward pass allocates and frees hundreds of tensors of tens of megabytes. glibc serves
//! each of them with a fresh `mmap` and returns it with `munmap`, so every pass faults in and
//! zeroes every page of every activation again: a fifth of Swin-T's CPU time at 1024² went to
//! the kernel. Two remedies, both plain glibc and Linux, measured in `forward_time`:
//!
//! - [`TensorAlloc`] asks for transparent huge pages (`madvise(MADV_HUGEPAGE)`) on every large
//!   block, so a 2 MiB page costs one fault instead of 512 (the kernel's default THP mode,
//!   `madvise`, leaves anonymous memory on 4 KiB pages otherwise);
//! - [`init`] raises malloc's mmap and trim thresholds, so freed blocks stay in the heap and the
//!   next pass reuses them instead of faulting them in again. That keeps the process's peak
//!   footprint mapped between requests, and fragmentation adds to the peak (measured below).
//!
//! Elsewhere (macOS, Windows, musl) both are the system allocator unchanged.
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOC: nobg_alloc::TensorAlloc = nobg_alloc::TensorAlloc;
//!
//! fn main() {
//!     let _ = nobg_alloc::init(); // reads NOBG_HUGE_PAGES and NOBG_HEAP_RETAIN_MIB
//! }
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

/// Blocks this large or larger get huge pages: smaller ones cannot hold an aligned 2 MiB page.
pub const HUGE_PAGE_MIN_BYTES: usize = 4 << 20;

/// The default for [`Settings::heap_retain_mib`]: the most mallopt takes. glibc maps blocks at
/// or over the threshold afresh and trims the heap once that much is free at its top, and
/// BiRefNet Swin-L at 1024² swings by more than 512 MiB between stages: at 2047 it ran 10–13%
/// faster than at 512 (f32 and bf16, alternating runs on a Xeon), at the same peak RSS;
/// IS-Net was unchanged. (At 256, a 64-channel 1024² activation, exactly 256 MiB, was
/// mapped afresh on every IS-Net convolution.)
pub const DEFAULT_HEAP_RETAIN_MIB: usize = MAX_HEAP_RETAIN_MIB;

/// mallopt takes an `int` of bytes.
pub const MAX_HEAP_RETAIN_MIB: usize = 2047;

static HUGE_PAGES: AtomicBool = AtomicBool::new(true);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{name}={value:?}: {why}")]
    BadEnv {
        name: &'static str,
        value: String,
        why: &'static str,
    },
}

/// What [`init`] applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Large blocks are advised to use transparent huge pages.
    pub huge_pages: bool,
    /// Blocks up to this size come from malloc's heap (one arena for all threads) and freed
    /// memory up to this size stays there for reuse; 0 keeps glibc's defaults (a fresh `mmap`
    /// for every block over 128 KiB–32 MiB, an arena per thread).
    pub heap_retain_mib: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            huge_pages: true,
            heap_retain_mib: DEFAULT_HEAP_RETAIN_MIB,
        }
    }
}

/// Applies the settings from `NOBG_HUGE_PAGES` (`0` or `1`, default 1) and
/// `NOBG_HEAP_RETAIN_MIB` (default [`DEFAULT_HEAP_RETAIN_MIB`], 0 = glibc's defaults). Call it
/// first thing in `main`, before any other thread starts.
pub fn init() -> Result<Settings, Error> {
    let settings = Settings::parse(
        std::env::var("NOBG_HUGE_PAGES").ok().as_deref(),
        std::env::var("NOBG_HEAP_RETAIN_MIB").ok().as_deref(),
    )?;
    apply(settings);
    Ok(settings)
}

impl Settings {
    /// The settings the two variables' values (None: unset) ask for.
    pub fn parse(huge_pages: Option<&str>, heap_retain_mib: Option<&str>) -> Result<Self, Error> {
        let mut settings = Settings::default();
        if let Some(value) = huge_pages {
            settings.huge_pages = match value.trim() {
                "0" | "false" | "off" => false,
                "1" | "true" | "on" => true,
                _ => {
                    return Err(Error::BadEnv {
                        name: "NOBG_HUGE_PAGES",
                        value: value.to_string(),
                        why: "expected 0 or 1",
                    })
                }
            };
        }
        if let Some(value) = heap_retain_mib {
            settings.heap_retain_mib = value
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|mib| *mib <= MAX_HEAP_RETAIN_MIB)
                .ok_or_else(|| Error::BadEnv {
                    name: "NOBG_HEAP_RETAIN_MIB",
                    value: value.to_string(),
                    why: "expected a whole number of MiB from 0 to 2047",
                })?;
        }
        Ok(settings)
    }
}

/// Applies `settings` (see [`init`]); later calls override earlier ones.
pub fn apply(settings: Settings) {
    HUGE_PAGES.store(settings.huge_pages, Ordering::Relaxed);
    if settings.heap_retain_mib > 0 {
        sys::retain_in_heap(settings.heap_retain_mib << 20);
    }
}

/// The system allocator, with transparent huge pages asked for on large blocks (Linux).
pub struct TensorAlloc;

// SAFETY: every block comes from and goes back to `System` unchanged; the advice only changes
// how the kernel backs the pages of a block this allocator has just handed out.
unsafe impl GlobalAlloc for TensorAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        advise(System.alloc(layout), layout.size())
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        advise(System.alloc_zeroed(layout), layout.size())
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        advise(System.realloc(ptr, layout, new_size), new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

fn advise(ptr: *mut u8, len: usize) -> *mut u8 {
    if !ptr.is_null() && len >= HUGE_PAGE_MIN_BYTES && HUGE_PAGES.load(Ordering::Relaxed) {
        sys::advise_huge_pages(ptr, len);
    }
    ptr
}

#[cfg(target_os = "linux")]
mod sys {
    const PAGE: usize = 4096;

    pub fn advise_huge_pages(ptr: *mut u8, len: usize) {
        // madvise wants a page-aligned start: advise the whole pages inside the block only.
        let start = (ptr as usize).div_ceil(PAGE) * PAGE;
        let end = (ptr as usize + len) / PAGE * PAGE;
        if end > start {
            // SAFETY: the range lies inside a block the allocator owns; MADV_HUGEPAGE changes no
            // contents. A kernel without THP answers EINVAL, which changes nothing either.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }

    #[cfg(target_env = "gnu")]
    pub fn retain_in_heap(bytes: usize) {
        let bytes = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only changes glibc's thresholds; it fails (returns 0) on values it
        // refuses, and the defaults then stay.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, bytes);
            libc::mallopt(libc::M_TRIM_THRESHOLD, bytes);
            // Threads other than main get arenas of 64 MiB heaps, too small for a tensor at
            // 1024², which would then be mapped afresh each time: one arena serves all threads
            // (a thread that has allocated already keeps its arena).
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }

    #[cfg(not(target_env = "gnu"))]
    pub fn retain_in_heap(_bytes: usize) {}
}

#[cfg(not(target_os = "linux"))]
mod sys {
    pub fn advise_huge_pages(_ptr: *mut u8, _len: usize) {}
    pub fn retain_in_heap(_bytes: usize) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_variables_give_the_defaults() {
        let s = Settings::parse(None, None).unwrap();
        assert_eq!(s, Settings::default());
        assert!(s.huge_pages);
        assert_eq!(s.heap_retain_mib, 2047);
    }

    #[test]
    fn variables_are_read() {
        let s = Settings::parse(Some("0"), Some(" 64 ")).unwrap();
        assert!(!s.huge_pages);
        assert_eq!(s.heap_retain_mib, 64);
        assert_eq!(
            Settings::parse(Some("on"), Some("0"))
                .unwrap()
                .heap_retain_mib,
            0
        );
    }

    #[test]
    fn bad_values_are_refused_with_the_variable_named() {
        let e = Settings::parse(Some("yes please"), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "NOBG_HUGE_PAGES=\"yes please\": expected 0 or 1"
        );
        let e = Settings::parse(None, Some("2048")).unwrap_err();
        assert!(
            e.to_string().starts_with("NOBG_HEAP_RETAIN_MIB=\"2048\""),
            "{e}"
        );
        assert!(Settings::parse(None, Some("-1")).is_err());
    }
}
