//! Pack/unpack speed of gym's ring codec (src/core/ring/codec.rs, included verbatim) on one
//! core, release build, over a file of little-endian i64 (written by examples/ring-codec.rs).
#[path = "../../../src/core/ring/codec.rs"]
#[allow(dead_code)]
mod codec;
/// CPU time of this thread (the machine is shared: wall time would measure the others' load).
struct Instant(f64);
impl Instant {
    fn now() -> Self {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid out-pointer for clock_gettime.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
        Instant(t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9)
    }
    fn elapsed(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(Instant::now().0 - self.0)
    }
}

/// `gaussian N MIB`: N members' N(0, 0.01²) f32 vectors at the ring's fixed-point scale;
/// prints the packed size of the partial sums of 1..N members and writes the full sum.
fn gaussian(n: usize, mib: usize) -> Vec<u8> {
    let len = (mib << 20) / 4;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut uni = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let xs: Vec<Vec<f32>> = (0..n)
        .map(|_| {
            (0..len)
                .map(|_| {
                    let (u, v) = (uni(), uni());
                    (0.01 * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
                })
                .collect()
        })
        .collect();
    members(xs, "gaussian")
}

/// The packed size of the partial sums of 1..N members' vectors at the ring's scale; the full sum.
fn members(xs: Vec<Vec<f32>>, what: &str) -> Vec<u8> {
    let n = xs.len();
    let len = xs[0].len();
    // e = smallest integer with |x| < 2^e; F = min(60, 58 − e − bitlen(N)).
    let top = xs.iter().flatten().fold(0f32, |m, x| m.max(x.abs())) as f64;
    let e = top.log2().floor() as i32 + 1;
    let b = (usize::BITS - n.leading_zeros()) as i32;
    let f = (58 - e - b).min(60);
    println!("{what}: {n} members × {len} f32, e = {e}, F = {f}");
    let mut sum = vec![0i64; len];
    let mut sent = 0usize;
    for (k, x) in xs.iter().enumerate() {
        for (s, &v) in sum.iter_mut().zip(x) {
            *s += (v as f64 * (f as f64).exp2()).round_ties_even() as i64;
        }
        let packed: usize = sum.chunks(1 << 16).map(|c| codec::encode(c).len()).sum();
        println!(
            "  sum of {} member(s): {:.3} bytes/element",
            k + 1,
            packed as f64 / len as f64
        );
        sent += if k + 1 < n { packed } else { (n - 1) * packed };
    }
    let raw = 2 * (n - 1) * len * 8;
    println!(
        "  a member sends {:.3} bytes/element over the round: {:.2}x fewer than i64, {:.2}x than f32",
        sent as f64 / (raw / 8) as f64,
        raw as f64 / sent as f64,
        (raw / 2) as f64 / sent as f64
    );
    sum.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (path, le) = if args[0] == "files" {
        // files N F32FILE…: member j gets file j mod count (raw little-endian f32).
        let n: usize = args[1].parse().unwrap();
        let files: Vec<Vec<f32>> = args[2..]
            .iter()
            .map(|p| {
                std::fs::read(p)
                    .unwrap()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect()
            })
            .collect();
        let xs = (0..n).map(|j| files[j % files.len()].clone()).collect();
        ("files full sum".to_string(), members(xs, "f32 files"))
    } else if args[0] == "gaussian" {
        let g = gaussian(args[1].parse().unwrap(), args[2].parse().unwrap());
        ("gaussian full sum".to_string(), g)
    } else {
        (args[0].clone(), std::fs::read(&args[0]).unwrap())
    };
    let chunk = 8 << 16;
    let mut best = (f64::MAX, f64::MAX);
    let mut packed_total = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let mut streams = Vec::new();
        for c in le.chunks(chunk) {
            let mut p = Vec::with_capacity(codec::max_encoded_len(c.len() / 8));
            codec::encode_le_into(c, &mut p);
            streams.push(p);
        }
        let enc = t.elapsed().as_secs_f64();
        packed_total = streams.iter().map(Vec::len).sum::<usize>();
        let mut out = vec![0u8; chunk];
        let t = Instant::now();
        for (s, c) in streams.iter().zip(le.chunks(chunk)) {
            codec::decode_le_into(s, &mut out[..c.len()]).unwrap();
            assert_eq!(&out[..c.len()], c);
        }
        let dec = t.elapsed().as_secs_f64();
        best = (best.0.min(enc), best.1.min(dec));
    }
    let mb = le.len() as f64 / 1e6;
    println!(
        "{path}: {} elements, packed {:.3} bytes/element ({:.2}x smaller than i64); pack {:.0} MB/s, unpack+compare {:.0} MB/s of i64 (best of 5, thread CPU time)",
        le.len() / 8,
        packed_total as f64 / (le.len() / 8) as f64,
        le.len() as f64 / packed_total as f64,
        mb / best.0,
        mb / best.1
    );
}
