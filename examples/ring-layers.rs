//! Cost of each layer of `gym ring` on one core, for `bench/ring.sh`: the work one member does
//! for `MiB` of f32 in a ring of `N` members (each member sends and receives 2·(N−1)/N of it).
//! Run: `cargo run --release --example ring-layers -- [MiB] [N]`
use std::time::Instant;

use gym::core::keys::Identity;
use gym::core::ring::{fixed, sketch, wire};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mib: usize = args.get(1).map(|s| s.parse().expect("MiB")).unwrap_or(64);
    let n: usize = args.get(2).map(|s| s.parse().expect("N")).unwrap_or(4);
    let elements = (mib << 20) / 4;
    let chunk = 1usize << 16;
    let moved = 2 * (n - 1) * elements / n; // elements sent (and received) per member
    let x: Vec<f32> = (0..elements)
        .map(|k| ((k * 2654435761) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let time = |name: &str, f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        let s = t.elapsed().as_secs_f64();
        println!("{name:<40} {s:>8.3} s");
        s
    };
    // As a member makes it: one chunk at a time into a scratch buffer, where it is used.
    let mut scratch = vec![0i64; chunk];
    time("fixed point: w·round(x·2^F) (all input)", &mut || {
        for xs in x.chunks(chunk) {
            fixed::contribution_into(xs, 3, 54, &mut scratch[..xs.len()]);
        }
    });
    let c = fixed::contribution(&x, 3, 54);
    let mut acc = c.clone();
    time("exact sums (elements received)", &mut || {
        for _ in 0..(moved / 2 / elements.max(1)).max(1) {
            fixed::add_into(&mut acc, &c)
        }
    });
    let part = &c[..moved.min(c.len())];
    time("encode + decode (elements moved)", &mut || {
        for ch in part.chunks(chunk) {
            let m = wire::Signed {
                sender: 0,
                view: 0,
                body: wire::Body::Data(wire::DataHeader {
                    phase: 0,
                    step: 0,
                    segment: 0,
                    chunk: 0,
                    digest: [0; 32],
                }),
                sig: [0; 64],
                pq_sig: None,
                payload: ch.to_vec(),
            };
            let b = wire::encode(&m);
            let back = wire::decode(&b, false).unwrap();
            assert_eq!(back.payload.len(), ch.len());
        }
    });
    // Received frames (built here, outside the timing).
    let header = wire::DataHeader {
        phase: 0,
        step: 0,
        segment: 0,
        chunk: 0,
        digest: [0; 32],
    };
    // As they arrive: packed (protocol v4), built here outside the timing.
    let frames: Vec<Vec<u8>> = part
        .chunks(chunk)
        .map(|ch| {
            let mut f = wire::data_frame(ch.len(), false, |b| wire::put_le(b, ch));
            wire::put_data_prefix(&mut f, 0, 0, &header, &[0; 64], None);
            wire::pack_frame(&f, false)
        })
        .collect();
    let mut acc = vec![0i64; part.len()];
    time("receive → forward in place (moved)", &mut || {
        // What a member does per scatter chunk besides hashing, signing and sealing: decode
        // the header only, unpack the payload into a raw frame, then one pass that stores the
        // received partial sum, checks its range and adds our contribution into that frame,
        // which is forwarded (packed again by the sender, timed with the codec).
        for (frame, (a, own)) in frames
            .iter()
            .zip(acc.chunks_mut(chunk).zip(c.chunks(chunk)))
        {
            let (_, range) = wire::decode_split(frame, false).unwrap();
            let mut raw = wire::unpack_frame(frame, range, false).unwrap();
            let pre = wire::data_prefix(false);
            let mut bad = false;
            let body = &mut raw[pre..pre + 8 * own.len()];
            for ((o, a), &x) in body.chunks_exact_mut(8).zip(a.iter_mut()).zip(own) {
                let v = i64::from_le_bytes((&*o).try_into().unwrap());
                *a = v;
                bad |= v <= -fixed::BOUND || v >= fixed::BOUND;
                o.copy_from_slice(&v.wrapping_add(x).to_le_bytes());
            }
            assert!(!bad);
        }
    });
    drop(frames);
    time("payload digests (moved, ×2)", &mut || {
        for ch in part.chunks(chunk) {
            let _ = wire::payload_digest(ch);
            let _ = wire::payload_digest(ch);
        }
    });
    let id = Identity::from_seeds(&[1; 32], None);
    time("Ed25519 sign + verify per chunk", &mut || {
        for _ in part.chunks(chunk) {
            let s = id.sign_ed25519(&[7; 32]);
            assert!(id.public().verify_ed25519(&[7; 32], &s));
        }
    });
    // A hybrid ring adds, per chunk sent and received, an ML-DSA-87 signature over the same
    // 32-byte signing digest (deterministic signing, FIPS 204 context) and its verification.
    let pq = Identity::from_seeds(&[1; 32], Some(&[2; 32]));
    let pq_public = pq.public();
    time("ML-DSA-87 sign + verify per chunk", &mut || {
        for (i, _) in part.chunks(chunk).enumerate() {
            let d = [i as u8; 32];
            let s = pq.sign_ml_dsa(&d, wire::MLDSA_MSG_CONTEXT).unwrap();
            assert!(pq_public.verify_ml_dsa(&d, wire::MLDSA_MSG_CONTEXT, &s));
        }
    });
    time("AES-256-GCM seal + open (moved bytes)", &mut || {
        use ring::aead::{Aad, Nonce};
        let k = gym::core::ring::crypto::cipher(&[3; 32]);
        let mut buf = vec![0u8; chunk * 8];
        for (i, _) in part.chunks(chunk).enumerate() {
            let n = gym::core::ring::crypto::nonce_bytes(i as u64);
            let nonce = || Nonce::assume_unique_for_key(n);
            k.seal_in_place_append_tag(nonce(), Aad::empty(), &mut buf)
                .unwrap();
            let len = k
                .open_in_place(nonce(), Aad::empty(), &mut buf)
                .unwrap()
                .len();
            buf.truncate(len);
        }
    });
    time("  (same with the aes-gcm crate, before)", &mut || {
        use aes_gcm::aead::{AeadInPlace, KeyInit};
        let k = aes_gcm::Aes256Gcm::new_from_slice(&[3; 32]).unwrap();
        let mut buf = vec![0u8; chunk * 8];
        for (i, _) in part.chunks(chunk).enumerate() {
            let mut nonce = [0u8; 12];
            nonce[4..].copy_from_slice(&(i as u64).to_be_bytes());
            k.encrypt_in_place((&nonce).into(), b"", &mut buf).unwrap();
            k.decrypt_in_place((&nonce).into(), b"", &mut buf).unwrap();
        }
    });
    time("sketches: own + received (3× all input)", &mut || {
        for _ in 0..3 {
            std::hint::black_box(sketch::sketch(std::hint::black_box(&c), 123456789));
        }
    });
    time("result digest (whole sum)", &mut || {
        std::hint::black_box(gym::core::ring::proto::result_digest(&[0; 32], 54, 4, &c));
    });
    let leaves = wire::payload_leaves(&c);
    time("result digest from the checked leaves", &mut || {
        std::hint::black_box(wire::digest_of_leaves(c.len(), &leaves));
    });
    println!("({mib} MiB f32, {n} members, {moved} elements moved per member, i64 on the wire)");
}
