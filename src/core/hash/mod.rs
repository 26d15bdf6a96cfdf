//! SHA3-256 helpers.

pub mod multi;

use sha3::{Digest, Sha3_256};

pub fn sha3_256(data: &[u8]) -> [u8; 32] {
    Sha3_256::digest(data).into()
}

/// SHA3-256 of a file, streamed.
pub fn sha3_256_reader(mut r: impl std::io::Read) -> std::io::Result<[u8; 32]> {
    let mut h = Sha3_256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}
