//! Feeds arbitrary bytes to the DELTA reader. Properties checked: it never panics, never
//! allocates beyond what the declared sizes allow (libFuzzer's -rss_limit_mb catches that), and
//! anything it accepts re-encodes to the same digest: a file that verifies, scanned again, has
//! the same structure.
#![no_main]

use gym::core::delta::{Delta, VerifyOptions, read_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let scanned = Delta::scan(&data);
    match read_bytes(data, &VerifyOptions::default()) {
        Ok(report) => {
            let s = scanned.expect("a file that verifies also scans");
            assert_eq!(s.tensors, report.delta.tensors);
            assert_eq!(&report.digest[..16], &s.checksum);
            assert_eq!(report.delta.file_len as usize, data.len());
        }
        Err(_) => {}
    }
});
