//! Regenerates `man/` and `completions/` from the clap definition.
//! Run: `cargo run --example gen-docs`
use std::path::Path;

fn write_all(dir: &Path, files: &[(String, Vec<u8>)]) -> std::io::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    write_all(&root.join("man"), &gym::cmd::docs::man_pages())?;
    write_all(
        &root.join("completions"),
        &gym::cmd::docs::completion_files(),
    )?;
    eprintln!("wrote man/ and completions/");
    Ok(())
}
