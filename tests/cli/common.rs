//! Helpers shared by the CLI tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn gym() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("gym").expect("gym binary is built");
    c.env_remove("GYM_THREADS").env("NO_COLOR", "1");
    c
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn testdata(rel: &str) -> PathBuf {
    repo().join("testdata").join(rel)
}

pub fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// Runs and returns (exit code, stdout, stderr).
pub fn run(cmd: &mut assert_cmd::Command) -> (i32, String, String) {
    let out = cmd.output().expect("gym runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{stdout}"))
}

pub fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// The generated test input of tools/reference/ipfs-cids.py: the stream
/// sha256("gym-ipfs-test" ‖ u64le(j)) for j = 0, 1, …, cut to `size` bytes.
pub fn pattern(size: usize) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut out = Vec::with_capacity(size + 32);
    let mut j = 0u64;
    while out.len() < size {
        let mut h = Sha256::new();
        h.update(b"gym-ipfs-test");
        h.update(j.to_le_bytes());
        out.extend_from_slice(&h.finalize());
        j += 1;
    }
    out.truncate(size);
    out
}

/// The reference CIDs from the real IPFS node (testdata/ipfs/cids.json).
pub fn ipfs_reference() -> serde_json::Value {
    let text =
        std::fs::read_to_string(testdata("ipfs/cids.json")).expect("testdata/ipfs/cids.json");
    serde_json::from_str(&text).expect("cids.json is JSON")
}

/// The IPFS node to test against, or None with the reason printed. With GYM_REQUIRE_IPFS=1 (CI)
/// a missing node fails the test instead.
pub fn ipfs_node() -> Option<String> {
    match std::env::var("GYM_TEST_IPFS_API") {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ => {
            assert!(
                std::env::var_os("GYM_REQUIRE_IPFS").is_none(),
                "GYM_REQUIRE_IPFS is set but GYM_TEST_IPFS_API is not: start the node with tools/ci/ipfs-node.sh"
            );
            eprintln!(
                "SKIPPED: GYM_TEST_IPFS_API is not set; start the test node with `eval $(tools/ci/ipfs-node.sh start)`"
            );
            None
        }
    }
}

/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}
