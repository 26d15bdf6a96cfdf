//! `gym_protocol._native`: the Rust half of the Python package. Every function here is a thin
//! wrapper over gym's core library that releases the GIL while the library works; the Python
//! half (`gym_protocol/`) turns buffers into numpy/torch tensors and dicts into DataFrames.

use pyo3::prelude::*;

/// As in the `gym` binary: glibc returns the 1 MiB chunk buffers of a verified read to the
/// kernel and faults them back in for the next chunk; mimalloc keeps them. Only Rust's own
/// allocations go through it (Python objects use Python's allocator).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod delta;
mod errors;
mod keys;
mod publish;
mod reward;
mod ring;
mod train;
mod work;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    gym::cmd::apply_environment();
    errors::register(m)?;
    let blas = std::env::var("GYM_BLAS").unwrap_or_default();
    gym::cmd::select_blas(&blas).map_err(errors::to_py)?;
    m.add_function(wrap_pyfunction!(delta::read_delta, m)?)?;
    m.add_function(wrap_pyfunction!(delta::verify, m)?)?;
    m.add_function(wrap_pyfunction!(delta::inspect, m)?)?;
    m.add_function(wrap_pyfunction!(delta::write_delta, m)?)?;
    m.add_function(wrap_pyfunction!(delta::write_delta_from_file, m)?)?;
    m.add_function(wrap_pyfunction!(keys::generate_key, m)?)?;
    m.add_function(wrap_pyfunction!(keys::load_key, m)?)?;
    m.add_function(wrap_pyfunction!(publish::cid, m)?)?;
    m.add_function(wrap_pyfunction!(publish::upload_ipfs, m)?)?;
    m.add_function(wrap_pyfunction!(publish::publish_local, m)?)?;
    m.add_function(wrap_pyfunction!(publish::publish_hub, m)?)?;
    m.add_function(wrap_pyfunction!(reward::estimate, m)?)?;
    m.add_function(wrap_pyfunction!(reward::claim_rewards, m)?)?;
    m.add_function(wrap_pyfunction!(reward::verify_claim, m)?)?;
    m.add_function(wrap_pyfunction!(ring::ring_join, m)?)?;
    m.add_function(wrap_pyfunction!(work::work, m)?)?;
    m.add_class::<train::NativeTrainer>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

/// Carries a value into `Python::detach` on the same thread. `detach` runs its closure on the
/// calling thread; it only asks for `Send` to keep Python objects out, and this wrapper is used
/// for Rust values (the trainer, which candle does not mark `Send`) that never leave the thread.
pub(crate) struct SendBox<T>(pub T);
// SAFETY: see above; `Python::detach` runs the closure synchronously on the current thread, so
// nothing wrapped here is touched by another thread.
unsafe impl<T> Send for SendBox<T> {}
