//! Writes a LoRA-like `.safetensors` file for `bench/delta.sh`: rank-16 A/B factor pairs for
//! every projection of a 4096-wide transformer until the target size is reached, f32 values
//! drawn from a normal distribution (σ 0.02) by a fixed-seed generator.
//! Run: `cargo run --release --example bench-input -- OUT.safetensors [MiB]`
use std::io::Write;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let out = args
        .get(1)
        .expect("usage: bench-input OUT.safetensors [MiB]");
    let mib: u64 = args.get(2).map(|s| s.parse().expect("MiB")).unwrap_or(1024);
    let target = mib << 20;
    let (hidden, rank) = (4096u64, 16u64);
    let mut specs = Vec::new();
    let mut total = 0u64;
    'outer: for layer in 0.. {
        for proj in [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ] {
            for (ab, shape) in [("lora_A", [rank, hidden]), ("lora_B", [hidden, rank])] {
                let len = shape[0] * shape[1] * 4;
                if total + len > target {
                    break 'outer;
                }
                specs.push(gym::core::safetensors_io::TensorSpec {
                    name: format!(
                        "base_model.model.model.layers.{layer}.self_attn.{proj}.{ab}.weight"
                    ),
                    dtype: gym::core::delta::Dtype::F32,
                    shape: shape.to_vec(),
                    len,
                });
                total += len;
            }
        }
    }
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
    f.write_all(&gym::core::safetensors_io::header_bytes(&specs, None))?;
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut buf = Vec::with_capacity(1 << 20);
    for spec in &specs {
        let mut left = spec.len / 4;
        while left > 0 {
            buf.clear();
            let n = left.min(1 << 18);
            for _ in 0..n / 2 {
                let (u1, u2) = (next().max(1e-300), next());
                let r = (-2.0 * u1.ln()).sqrt() * 0.02;
                let t = std::f64::consts::TAU * u2;
                buf.extend_from_slice(&((r * t.cos()) as f32).to_le_bytes());
                buf.extend_from_slice(&((r * t.sin()) as f32).to_le_bytes());
            }
            if n % 2 == 1 {
                buf.extend_from_slice(&0f32.to_le_bytes());
            }
            f.write_all(&buf)?;
            left -= n;
        }
    }
    f.flush()?;
    eprintln!(
        "wrote {} tensors, {} MiB of f32 to {out}",
        specs.len(),
        total >> 20
    );
    Ok(())
}
