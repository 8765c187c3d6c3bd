//! What the allocator does to the process, read back from glibc and the kernel. Its own
//! `main` (no test harness): the settings are process-wide, and heap reuse has to be set before
//! any other thread starts, as in nobg's binaries.

use nobg_alloc::TensorAlloc;

#[global_allocator]
static ALLOC: TensorAlloc = TensorAlloc;

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn main() {}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn main() {
    use nobg_alloc::Settings;

    const BLOCK: usize = 64 << 20;
    let mapped = || unsafe { libc::mallinfo2() }.hblks; // SAFETY: reads glibc's counters

    // glibc's defaults (what nobg had before): a 64 MiB block is a mapping of its own.
    let before = mapped();
    let block = vec![1u8; BLOCK];
    assert_eq!(mapped(), before + 1, "glibc maps a 64 MiB block on its own");
    drop(block);

    // Heap reuse, on this thread and on one started afterwards (a fresh thread would otherwise
    // get an arena of 64 MiB heaps and a new mapping per tensor).
    nobg_alloc::apply(Settings::default());
    for on_worker in [false, true] {
        let check = move || {
            let before = unsafe { libc::mallinfo2() };
            let block = vec![1u8; BLOCK];
            let during = unsafe { libc::mallinfo2() };
            assert_eq!(
                during.hblks, before.hblks,
                "worker {on_worker}: no mapping of its own"
            );
            assert!(
                during.uordblks >= before.uordblks + BLOCK,
                "served from the heap"
            );
            huge_page_advice_is_set(block.as_ptr() as usize + BLOCK / 2, true);
            drop(block);
            let after = unsafe { libc::mallinfo2() };
            assert!(after.fordblks >= BLOCK, "freed and kept for the next block");
            assert!(after.arena >= during.arena, "not given back to the system");
        };
        if on_worker {
            std::thread::spawn(check).join().unwrap();
        } else {
            check();
        }
    }

    // Huge pages off: a fresh block (over the threshold, so mapped on its own) is not advised.
    nobg_alloc::apply(Settings {
        huge_pages: false,
        ..Settings::default()
    });
    let block = vec![1u8; (nobg_alloc::DEFAULT_HEAP_RETAIN_MIB << 20) + BLOCK];
    huge_page_advice_is_set(block.as_ptr() as usize + BLOCK, false);
    println!("nobg-alloc: heap reuse and huge-page advice checked");
}

/// Whether the mapping holding `addr` carries the kernel's `hg` (MADV_HUGEPAGE) flag, as
/// /proc/self/smaps shows it; not checked where the kernel has transparent huge pages off.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn huge_page_advice_is_set(addr: usize, expected: bool) {
    let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled");
    if mode.as_ref().map_or(true, |m| m.contains("[never]")) {
        eprintln!("transparent huge pages are off in this kernel: the advice is not checked");
        return;
    }
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut inside = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((lo, hi)) = first.split_once('-') {
            if let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                inside = (lo..hi).contains(&addr);
                continue;
            }
        }
        if let Some(flags) = line.strip_prefix("VmFlags:").filter(|_| inside) {
            let advised = flags.split_whitespace().any(|f| f == "hg");
            assert_eq!(advised, expected, "VmFlags of {addr:#x}:{flags}");
            return;
        }
    }
    panic!("no mapping holds {addr:#x}");
}
