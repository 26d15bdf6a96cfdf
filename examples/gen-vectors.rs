//! Regenerates `testdata/vectors/` (the DELTA test vectors and their manifest).
//! Run: `cargo run --example gen-vectors`
use std::path::Path;

fn main() -> std::io::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/vectors");
    std::fs::create_dir_all(&dir)?;
    let files = gym::core::delta::vectors::generate();
    // Remove files no longer generated.
    for e in std::fs::read_dir(&dir)? {
        let p = e?.path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !files.iter().any(|(f, _)| *f == name) {
            std::fs::remove_file(&p)?;
        }
    }
    for (name, bytes) in &files {
        std::fs::write(dir.join(name), bytes)?;
    }
    eprintln!("wrote {} files to {}", files.len(), dir.display());
    Ok(())
}
