//! Process-wide allocator settings for long numeric runs (called by the `singlora` binary and the benches, never by
//! the library itself).
//!
//! A training step allocates its cache afresh (a transformer at width 128 with 1280 token rows: ~60 MB in f64) and
//! frees it at the end. With glibc's defaults the freed top of the heap is returned to the kernel at once, so every
//! step faults every page in again: measured 30k page faults per step, ~30% of the step's time. Keeping freed
//! memory in the process (no trimming, a 64 MB top pad, large blocks from the heap instead of fresh `mmap`s) makes
//! later steps reuse it. Values are unaffected; only the peak memory stays reserved.
//!
//! Blocks above glibc's largest mmap threshold (32 MB: a 2048 × 2048 f64 matrix, full fine-tuning's gradient) would
//! still be mapped and unmapped on every step, so mmap is switched off altogether, and every thread allocates from
//! the one main heap (one arena: worker threads' own heaps are capped at 64 MB and would map larger blocks anyway).
//! Measured on the MLP step with full fine-tuning at n = 2048, f64: 380 → 261 ms. The heap grows with `brk`; glibc
//! falls back to mapping memory only if that fails.

/// Tells glibc's `malloc` to keep freed memory for reuse (see the module doc). A no-op elsewhere; returns whether
/// every setting was accepted.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // The largest mmap threshold glibc accepts on 64-bit targets (blocks above it are still mmapped).
        const MMAP_THRESHOLD: libc::c_int = 32 << 20;
        const TOP_PAD: libc::c_int = 64 << 20;
        const NEVER_TRIM: libc::c_int = libc::c_int::MAX;
        // SAFETY: `mallopt` only changes allocator parameters; it is thread-safe and takes plain integers.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TOP_PAD, TOP_PAD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, NEVER_TRIM) == 1
                && libc::mallopt(libc::M_MMAP_MAX, 0) == 1
                && libc::mallopt(libc::M_ARENA_MAX, 1) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
