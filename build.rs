//! With the `cuda` feature: compiles gym's CUDA kernels (kernels/*.cu) to PTX with nvcc, one
//! OUT_DIR/<name>.ptx per file, embedded by src/core/model/kernels.rs; then assembles each PTX
//! with ptxas (the output is discarded), so that CI's `cargo check --features cuda` compiles
//! every kernel down to machine code even without a GPU. Without the feature it does nothing.
//!
//! Environment: NVCC (else $CUDA_HOME/bin/nvcc, else `nvcc` on PATH); CUDA_COMPUTE_CAP (as
//! candle's build reads it: 80, 90, 8.6 …; default 80). The PTX targets compute_<cap>, which
//! the driver compiles for any card of that capability or newer at the first launch.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=kernels");
    for var in ["NVCC", "CUDA_HOME", "CUDA_PATH", "CUDA_COMPUTE_CAP"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let nvcc = nvcc();
    let cap = compute_cap();
    let includes = toolkit_include();
    let mut sources: Vec<PathBuf> = std::fs::read_dir("kernels")
        .expect("the kernels/ folder")
        .map(|e| e.expect("a kernels/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "cu"))
        .collect();
    sources.sort();
    for src in &sources {
        let stem = src.file_stem().expect("a file name").to_string_lossy();
        let ptx = out.join(format!("{stem}.ptx"));
        run(Command::new(&nvcc)
            .args([
                "--ptx",
                &format!("-arch=compute_{cap}"),
                "-O3",
                "-std=c++17",
            ])
            .args(["--fmad=false", "-Ikernels"])
            .args(&includes)
            .arg("-o")
            .arg(&ptx)
            .arg(src));
        run(Command::new(ptxas(&nvcc))
            .arg(format!("-arch=sm_{cap}"))
            .arg(&ptx)
            .arg("-o")
            .arg(out.join(format!("{stem}.cubin"))));
    }
}

fn nvcc() -> PathBuf {
    if let Some(p) = std::env::var_os("NVCC") {
        return p.into();
    }
    if let Some(home) = std::env::var_os("CUDA_HOME") {
        let p = Path::new(&home).join("bin/nvcc");
        if p.exists() {
            return p;
        }
    }
    "nvcc".into()
}

/// `-I$CUDA_HOME/include` (or CUDA_PATH's) when it exists: nvcc finds its own headers, but a
/// toolkit assembled from wheels by symbolic links (tools/gpu-check.sh) may keep cuda_bf16.h
/// beside another package's nvcc.
fn toolkit_include() -> Vec<String> {
    ["CUDA_HOME", "CUDA_PATH"]
        .iter()
        .filter_map(std::env::var_os)
        .map(|root| Path::new(&root).join("include"))
        .filter(|dir| dir.is_dir())
        .map(|dir| format!("-I{}", dir.display()))
        .take(1)
        .collect()
}

/// ptxas next to nvcc, else on PATH.
fn ptxas(nvcc: &Path) -> PathBuf {
    match nvcc.parent() {
        Some(dir) if dir.join("ptxas").exists() => dir.join("ptxas"),
        _ => "ptxas".into(),
    }
}

fn compute_cap() -> String {
    let cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "80".into());
    let cap: String = cap.chars().filter(|c| c.is_ascii_digit()).collect();
    assert!(
        !cap.is_empty(),
        "CUDA_COMPUTE_CAP must be a compute capability such as 80 or 9.0"
    );
    cap
}

fn run(cmd: &mut Command) {
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is the CUDA toolkit on PATH?)"));
    assert!(status.success(), "{cmd:?} failed ({status})");
}
