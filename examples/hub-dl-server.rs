//! The local Hugging Face Hub of the CLI tests (tests/cli/hub_dl_server.rs) as a standalone
//! server for `bench/hub_download.sh`: serves every file under DIR as the model repository
//! REPO (LFS redirects to a CDN path, ETags, Range), prints its URL, runs until killed.
//! Run: `cargo run --release --example hub-dl-server -- DIR OWNER/NAME`
#[allow(dead_code)]
#[path = "../tests/cli/hub_dl_server.rs"]
mod hub_dl_server;

use std::path::Path;

fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read DIR")
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = format!("{prefix}{}", e.file_name().to_string_lossy());
        if e.path().is_dir() {
            walk(&e.path(), &format!("{name}/"), out);
        } else {
            out.push((name, std::fs::read(e.path()).expect("read file")));
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(repo)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: hub-dl-server DIR OWNER/NAME");
        std::process::exit(2);
    };
    let mut files = Vec::new();
    walk(Path::new(dir), "", &mut files);
    let (names, blobs): (Vec<String>, Vec<Vec<u8>>) = files.into_iter().unzip();
    let refs: Vec<(&str, Vec<u8>)> = names.iter().map(|n| n.as_str()).zip(blobs).collect();
    let server = hub_dl_server::DlServer::start("hf_bench");
    server.add_repo("models", repo, &refs, false);
    drop(refs);
    println!("{}", server.url);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
