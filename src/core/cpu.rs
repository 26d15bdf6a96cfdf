//! Process-wide CPU switches. The library never reads the environment: the edge (`gym`'s
//! `main`, the Python module's init) reads `GYM_NO_SIMD` and calls [`disable_simd`].

use std::sync::atomic::{AtomicBool, Ordering};

static SIMD_DISABLED: AtomicBool = AtomicBool::new(false);

/// Makes every SIMD kernel (multi-lane SHA3, the ring's fixed-point encoding) take its scalar
/// path for the rest of the process. Results are the same either way; only the speed differs.
pub fn disable_simd() {
    SIMD_DISABLED.store(true, Ordering::Relaxed);
}

/// Whether SIMD kernels may be used (true unless [`disable_simd`] was called).
pub fn simd_allowed() -> bool {
    !SIMD_DISABLED.load(Ordering::Relaxed)
}
