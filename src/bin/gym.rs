//! The `gym` executable: parse, dispatch, map errors to exit codes.

use clap::Parser as _;

/// glibc's allocator returns large buffers to the kernel and faults them back in on every
/// chunk; mimalloc keeps them, which measurably cuts system time when packing and training.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use gym::cmd;

/// "a: b: c" without repeating a cause that its parent already quoted.
fn message(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if s.is_empty() || parts.last().is_some_and(|p| p.contains(&s)) {
            continue;
        }
        parts.push(s);
    }
    parts.join(": ")
}

/// Fixes candle's thread counts before any thread exists. Unset, candle re-reads
/// /proc/cpuinfo on every matrix product (to count physical cores), and its element-wise ops
/// spin on barriers across threads, which on small tensors or a busy machine cost more than
/// they save (measured: a GSPO step on the tiny model 0.31 s → 0.09 s under load). Matrix
/// products keep one thread per core (`--threads`/`GYM_THREADS`/`RAYON_NUM_THREADS`);
/// element-wise ops run on one (`CANDLE_NUM_THREADS` overrides), and a system OpenBLAS's own
/// pool on one (`OPENBLAS_NUM_THREADS` overrides).
fn set_thread_env(cli: &cmd::Cli) {
    let threads = cli
        .threads
        .or_else(|| {
            std::env::var("RAYON_NUM_THREADS")
                .ok()
                .and_then(|s| s.parse().ok())
        })
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .max(1);
    #[allow(unsafe_code)]
    // SAFETY: called first thing in main, before any other thread is started, so nothing can
    // read the environment concurrently.
    unsafe {
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
            std::env::set_var("CANDLE_NUM_THREADS", "1");
        }
        // a system OpenBLAS (`--blas`) is called on one thread per part of a product, which
        // gym splits over its own threads: its pool would only spin beside them
        if std::env::var_os("OPENBLAS_NUM_THREADS").is_none() {
            std::env::set_var("OPENBLAS_NUM_THREADS", "1");
        }
    }
}

/// mimalloc hands freed memory back to the kernel 1 s after it is freed, and a training step
/// that takes longer than that faults its activations back in page by page on every step
/// (bench-model on mid-size Mixtral, 4 steps: 38,400 page faults, 674 with this, and 13 % less
/// CPU time). A 60 s delay keeps the memory while steps reuse it and still returns it when
/// the process idles.
fn keep_freed_memory() {
    /// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (include/mimalloc.h), which
    /// libmimalloc-sys 0.1 does not name.
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    #[allow(unsafe_code)]
    // SAFETY: a plain setter of a global option (not thread safe: called first in main,
    // before any other thread exists).
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 60_000)
    };
}

fn main() {
    keep_freed_memory();
    let cli = cmd::Cli::parse();
    set_thread_env(&cli);
    cmd::apply_environment();
    if let Err(err) = cmd::run(cli) {
        let code = cmd::exit::exit_code(&err);
        if code != 0 {
            let msg = message(&err);
            if !msg.is_empty() {
                eprintln!("error: {msg}");
            }
        }
        std::process::exit(code);
    }
}
