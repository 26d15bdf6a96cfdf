//! TensorBoard event files (`gym train --report-to tensorboard`), written without TensorFlow.
//!
//! Format (TensorFlow's `core/util/event.proto` and TFRecord framing): a file named
//! `events.out.tfevents.<unix seconds>.<host>` holds records, each
//! `u64 length (LE) ‖ u32 masked_crc32c(length bytes) ‖ data ‖ u32 masked_crc32c(data)`, where
//! `masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8` and crc32c is the Castagnoli CRC. The first
//! record's data is an `Event { wall_time = 1 (double), file_version = 3 (string "brain.Event:2") }`;
//! every later one an `Event { wall_time, step = 2 (int64), summary = 5 (Summary) }` with
//! `Summary { repeated Value value = 1 }` and `Value { tag = 1 (string), simple_value = 2 (float) }`.
//!
//! Tags follow TRL's GRPO trainer (`train/reward`, `train/reward_std`,
//! `train/rewards/<name>/mean`, `train/kl`, `train/completions/mean_length`, …) so that runs of
//! both show up side by side. tools/reference/read_tensorboard.py reads the files back with the
//! `tensorboard` package's own reader (a CLI test runs it).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::core::train::trainer::StepMetrics;

/// Appends scalar events to one event file; every event is flushed as it is written, so that a
/// running TensorBoard sees each step.
pub struct EventWriter {
    file: std::fs::File,
    path: PathBuf,
}

impl EventWriter {
    /// Creates `dir` if needed and a new event file in it, named as TensorFlow names them.
    pub fn create(dir: &Path) -> std::io::Result<EventWriter> {
        std::fs::create_dir_all(dir)?;
        let now = wall_time();
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty() && !h.contains('/'))
            .unwrap_or_else(|| "localhost".into());
        let path = dir.join(format!(
            "events.out.tfevents.{}.{host}.{}",
            now as u64,
            std::process::id()
        ));
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)?;
        let mut w = EventWriter { file, path };
        let mut ev = Vec::new();
        put_double(&mut ev, 1, now);
        put_bytes(&mut ev, 3, b"brain.Event:2");
        w.record(&ev)?;
        Ok(w)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One event at `step` holding the given scalars (non-finite values are skipped).
    pub fn scalars(&mut self, step: i64, values: &[(String, f64)]) -> std::io::Result<()> {
        let mut summary = Vec::new();
        for (tag, v) in values.iter().filter(|(_, v)| v.is_finite()) {
            let mut value = Vec::new();
            put_bytes(&mut value, 1, tag.as_bytes());
            put_float(&mut value, 2, *v as f32);
            put_bytes(&mut summary, 1, &value);
        }
        let mut ev = Vec::new();
        put_double(&mut ev, 1, wall_time());
        put_varint_field(&mut ev, 2, step as u64);
        put_bytes(&mut ev, 5, &summary);
        self.record(&ev)
    }

    fn record(&mut self, data: &[u8]) -> std::io::Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        let mut rec = Vec::with_capacity(data.len() + 16);
        rec.extend_from_slice(&len);
        rec.extend_from_slice(&masked_crc(&len).to_le_bytes());
        rec.extend_from_slice(data);
        rec.extend_from_slice(&masked_crc(data).to_le_bytes());
        self.file.write_all(&rec)?;
        self.file.flush()
    }
}

/// The scalars of one training step under TRL's tag names.
pub fn step_scalars(m: &StepMetrics) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = vec![
        ("train/loss".into(), m.loss),
        ("train/reward".into(), m.reward_mean),
        ("train/reward_std".into(), m.reward_std),
    ];
    for (name, value) in &m.rewards {
        if let Some(x) = value.as_f64() {
            v.push((format!("train/rewards/{name}/mean"), x));
        }
    }
    v.extend([
        ("train/kl".into(), m.kl),
        ("train/completions/mean_length".into(), m.completion_len),
        ("train/completions/stopped_ratio".into(), m.stopped_frac),
        ("train/clip_ratio/region_mean".into(), m.clip_frac),
        ("train/clip_ratio/low_mean".into(), m.clip_low),
        ("train/clip_ratio/high_mean".into(), m.clip_high),
        ("train/grad_norm".into(), m.grad_norm),
        ("train/learning_rate".into(), m.lr),
        ("train/epoch".into(), m.data_epoch as f64),
        ("train/tokens_per_second".into(), m.tokens_per_s),
    ]);
    v
}

fn wall_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    put_varint(out, u64::from(field) << 3);
    put_varint(out, v);
}

fn put_double(out: &mut Vec<u8>, field: u32, v: f64) {
    put_varint(out, (u64::from(field) << 3) | 1);
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_float(out: &mut Vec<u8>, field: u32, v: f32) {
    put_varint(out, (u64::from(field) << 3) | 5);
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    put_varint(out, (u64::from(field) << 3) | 2);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
pub fn crc32c(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
            }
            *e = c;
        }
        t
    });
    let mut crc = !0u32;
    for &b in data {
        crc = table[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c(data);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_known_answers() {
        // RFC 3720 appendix B.4 and the usual check value.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62A8_AB43);
    }

    /// Reads the framing back: lengths, both CRCs, and the first event's file_version.
    #[test]
    fn records_are_framed_and_checksummed() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path()).unwrap();
        w.scalars(3, &[("train/reward".into(), 0.5), ("x".into(), f64::NAN)])
            .unwrap();
        let name = w.path().file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.starts_with("events.out.tfevents."), "{name}");
        let bytes = std::fs::read(w.path()).unwrap();
        let mut rest = &bytes[..];
        let mut records = Vec::new();
        while !rest.is_empty() {
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            let lc = u32::from_le_bytes(rest[8..12].try_into().unwrap());
            assert_eq!(lc, masked_crc(&rest[..8]));
            let data = &rest[12..12 + len];
            let dc = u32::from_le_bytes(rest[12 + len..16 + len].try_into().unwrap());
            assert_eq!(dc, masked_crc(data));
            records.push(data.to_vec());
            rest = &rest[16 + len..];
        }
        assert_eq!(records.len(), 2);
        assert!(records[0].ends_with(b"\x1a\x0dbrain.Event:2"));
        // step 3, one value: tag "train/reward", simple_value 0.5 (the NaN is skipped)
        let ev = &records[1];
        assert_eq!(ev[0], 0x09); // wall_time, double
        assert_eq!(&ev[9..11], &[0x10, 3]);
        let mut value = vec![0x0a, 12];
        value.extend_from_slice(b"train/reward");
        value.push(0x15);
        value.extend_from_slice(&0.5f32.to_le_bytes());
        let mut summary = vec![0x0a, value.len() as u8];
        summary.extend_from_slice(&value);
        assert_eq!(&ev[11..13], &[0x2a, summary.len() as u8]);
        assert_eq!(&ev[13..], &summary[..]);
    }
}
