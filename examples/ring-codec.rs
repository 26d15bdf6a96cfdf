//! Packed payloads (docs/ring-protocol.md, "Packed payloads") on real inputs: the bytes a
//! member of an `N`-member ring sends per element, and packing/unpacking speed on one core.
//! Run: `cargo run --release --example ring-codec -- N (DELTA… | gaussian MIB)`
//! With fewer delta files than members, the files are reused in turn (member `j` gets file
//! `j mod files`); `gaussian MIB` gives every member its own N(0, 0.01²) f32 vector. With
//! `QUANTIZE=BITS` every contribution is quantized (docs/ring-protocol.md, "Quantized
//! averaging"), and the time to make one member's contribution is printed for both ways.
use std::path::Path;
use std::time::Instant;

use gym::core::ring::{codec, fixed, io, quant};
use rand::SeedableRng;
use rand_distr_free::gaussian;

/// Box–Muller from `rand`'s uniform generator (no extra crate).
mod rand_distr_free {
    use rand::Rng;
    pub fn gaussian(rng: &mut impl Rng, n: usize, sigma: f64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let u: f64 = rng.r#gen::<f64>().max(1e-300);
                let v: f64 = rng.r#gen::<f64>();
                (sigma * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
            })
            .collect()
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().expect("N").parse().expect("N");
    let inputs: Vec<fixed::Values> = if args.get(1).map(String::as_str) == Some("gaussian") {
        let mib: usize = args.get(2).expect("MIB").parse().expect("MIB");
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        (0..n)
            .map(|_| fixed::Values::F32(gaussian(&mut rng, (mib << 20) / 4, 0.01)))
            .collect()
    } else {
        let files: Vec<fixed::Values> = args[1..]
            .iter()
            .map(|p| io::load_input(Path::new(p), 1).expect("a delta").0.values)
            .collect();
        (0..n).map(|j| files[j % files.len()].clone()).collect()
    };
    let len = inputs[0].len();
    let exps: Vec<i32> = inputs.iter().map(|v| v.exponent().unwrap()).collect();
    let scale = fixed::scale_bits(&exps, &vec![1; n]).expect("a scale");
    let bits = std::env::var("QUANTIZE")
        .ok()
        .filter(|b| !b.is_empty())
        .map(|b| quant::Bits::new(b.parse().expect("QUANTIZE=BITS")).expect("BITS"));
    println!(
        "{n} members, {len} elements each, exponents {exps:?}, scale F = {scale}, quantize {bits:?}"
    );
    for q in [None, bits] {
        let t = Instant::now();
        let c = inputs[0].contribution_of(1, scale, q);
        println!(
            "contribution of one member ({q:?}): {:.3} s",
            t.elapsed().as_secs_f64()
        );
        std::hint::black_box(c);
    }
    // Partial sums of 1..n members: what the scatter steps and the all-gather send.
    let mut sum = vec![0i64; len];
    let mut sent = 0usize;
    let mut raw = 0usize;
    for (k, x) in inputs.iter().enumerate() {
        fixed::add_into(&mut sum, &x.contribution_of(1, scale, bits));
        let packed = packed_len(&sum);
        println!(
            "sum of {:>2} member(s): {:>6.3} bytes/element ({:.2}× smaller than i64, {:.2}× than f32)",
            k + 1,
            packed as f64 / len as f64,
            (8 * len) as f64 / packed as f64,
            (4 * len) as f64 / packed as f64
        );
        // Scatter step k sends sums of k + 1 members; the all-gather sends the full sum n − 1 times.
        let times = if k + 1 < n { 1 } else { n - 1 };
        sent += times * packed;
        raw += times * 8 * len;
    }
    println!(
        "a member sends {:.3} bytes/element over the round: {:.2}× fewer bytes than i64, {:.2}× than f32",
        sent as f64 / (raw / 8) as f64,
        raw as f64 / sent as f64,
        (raw / 2) as f64 / sent as f64
    );
    if let Ok(path) = std::env::var("DUMP") {
        // The full sum as little-endian i64, for timing the codec in a release build.
        let le: Vec<u8> = sum.iter().flat_map(|x| x.to_le_bytes()).collect();
        std::fs::write(path, le).expect("DUMP");
    }
    speed(&sum);
}

fn packed_len(v: &[i64]) -> usize {
    v.chunks(1 << 16).map(|c| codec::encode(c).len()).sum()
}

/// Pack and unpack the full sum in 64 Ki-element chunks, as a member does: MB/s of `i64`.
fn speed(sum: &[i64]) {
    let le: Vec<u8> = sum.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut packed = Vec::new();
    let chunk = 8 << 16;
    let t = Instant::now();
    let mut streams = Vec::new();
    for c in le.chunks(chunk) {
        packed.clear();
        codec::encode_le_into(c, &mut packed);
        streams.push(packed.clone());
    }
    let enc = t.elapsed().as_secs_f64();
    let mut out = vec![0u8; chunk];
    let t = Instant::now();
    for (s, c) in streams.iter().zip(le.chunks(chunk)) {
        codec::decode_le_into(s, &mut out[..c.len()]).unwrap();
    }
    let dec = t.elapsed().as_secs_f64();
    let mb = le.len() as f64 / 1e6;
    println!(
        "pack {:.0} MB/s, unpack {:.0} MB/s (of i64 bytes, one core; pack timing includes a copy)",
        mb / enc,
        mb / dec
    );
}
