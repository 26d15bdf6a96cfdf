//! `gym ring plan`, `gym ring join` and `gym ring audit`, through real processes on loopback.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use gym::core::delta::{self, Compression, Dtype, Metadata, PackInput, PackOptions, TensorSource};
use gym::core::keys::{self, Identity};
use gym::core::ring::config::RingSpec;
use gym::core::ring::wire::{self, Body, Signed};

use crate::common::{gym, json, run, tmp};

/// A port for a member to listen on. Taken below the kernel's ephemeral range (32768 and up on
/// Linux), so that no other test's `bind(0)` can be handed it between this check and the member's
/// own bind; spread by process id so concurrent test processes do not pick the same ones.
pub(crate) fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port =
            10_000 + (std::process::id().wrapping_mul(7919).wrapping_add(n * 13) % 22_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Member `i`'s f32 values: a deterministic pattern in (-0.5, 0.5).
pub(crate) fn values(i: usize, len: usize) -> Vec<f32> {
    (0..len)
        .map(|k| (((k * 2654435761 + i * 40503) % 1000) as f32) / 1000.0 - 0.5)
        .collect()
}

/// A delta of one f32 tensor `lora.w` holding `v`, signed by the key at `key`.
pub(crate) fn write_input(path: &Path, key: &Path, v: &[f32]) {
    let id = Identity::load(key).unwrap();
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let inputs = [PackInput {
        name: "lora.w".into(),
        dtype: Dtype::F32,
        shape: vec![v.len() as u64],
        data: TensorSource::Bytes(&bytes),
    }];
    let opts = PackOptions {
        compression: Compression::None,
        chunk_size: delta::DEFAULT_CHUNK_SIZE,
        metadata: Metadata::new(id.public().worker_id()),
        identity: Some(&id),
    };
    let (file, _) = delta::pack_to_vec(&inputs, &opts).unwrap();
    std::fs::write(path, file).unwrap();
}

/// Keys, input deltas (each signed by its member) and a ring file for `n` members.
fn setup(dir: &Path, n: usize, len: usize, chunk: u32) -> PathBuf {
    setup_of(dir, n, len, chunk, false)
}

/// [`setup`]; with `pq` every key also has an ML-DSA-87 half (`gym keygen --pq`): a hybrid ring.
fn setup_of(dir: &Path, n: usize, len: usize, chunk: u32, pq: bool) -> PathBuf {
    setup_with(dir, n, len, chunk, pq, &[])
}

/// [`setup_of`] with `plan` arguments added to `gym ring plan`.
fn setup_with(dir: &Path, n: usize, len: usize, chunk: u32, pq: bool, plan: &[&str]) -> PathBuf {
    let mut lines = String::new();
    for i in 0..n {
        let key = dir.join(format!("k{i}.pem"));
        let pq_flag: &[&str] = if pq { &["--pq"] } else { &[] };
        let (code, out, err) = run(gym()
            .args(["keygen", "--json"])
            .args(pq_flag)
            .arg("-o")
            .arg(&key));
        assert_eq!(code, 0, "{err}");
        lines.push_str(&format!("127.0.0.1:{} {}", free_port(), out.trim()));
        lines.push('\n');
        write_input(&dir.join(format!("in{i}.delta")), &key, &values(i, len));
    }
    let members = dir.join("members.txt");
    std::fs::write(&members, lines).unwrap();
    let ring = dir.join("ring.toml");
    let (code, _, err) = run(gym()
        .args(["ring", "plan", "--chunk-elements", &chunk.to_string(), "-o"])
        .arg(&ring)
        .args(plan)
        .arg(&members));
    assert_eq!(code, 0, "{err}");
    ring
}

fn join(dir: &Path, ring: &Path, i: usize, weight: u64) -> Child {
    join_with(
        dir,
        ring,
        i,
        weight,
        &dir.join(format!("out{i}.delta")),
        &["--timeout", "20", "--connect-timeout", "60"],
    )
}

/// `gym ring join --json` as member `i`, writing `out`, with `extra` arguments.
fn join_with(dir: &Path, ring: &Path, i: usize, weight: u64, out: &Path, extra: &[&str]) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("gym"))
        .args(["ring", "join", "--json"])
        .args(extra)
        .arg("--ring")
        .arg(ring)
        .arg("--key")
        .arg(dir.join(format!("k{i}.pem")))
        .arg("--input")
        .arg(dir.join(format!("in{i}.delta")))
        .arg("-o")
        .arg(out)
        .args(["--weight", &weight.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gym starts")
}

pub(crate) fn finish(c: Child) -> (i32, String, String) {
    let o = c.wait_with_output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The f32 values of the single tensor of a delta.
pub(crate) fn read_values(p: &Path) -> Vec<f32> {
    let bytes = std::fs::read(p).unwrap();
    let report = delta::read_bytes(&bytes, &Default::default()).unwrap();
    let src: &[u8] = &bytes;
    let mut v = Vec::new();
    delta::read_tensor(&src, &report.delta, &report.delta.tensors[0], |raw| {
        v.extend(
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap())),
        )
    })
    .unwrap();
    v
}

/// The weighted mean of `members`' values, computed directly, rounded once to f32.
fn mean(members: &[usize], weights: &[u64], len: usize) -> Vec<f32> {
    let tw: f64 = members.iter().map(|&i| weights[i] as f64).sum();
    let vals: Vec<Vec<f32>> = members.iter().map(|&i| values(i, len)).collect();
    (0..len)
        .map(|k| {
            let s: f64 = members
                .iter()
                .zip(&vals)
                .map(|(&i, v)| v[k] as f64 * weights[i] as f64)
                .sum();
            (s / tw) as f32
        })
        .collect()
}

#[test]
fn ring_plan_reads_member_lines() {
    let d = tmp();
    let ring = setup(d.path(), 3, 4, 2);
    let text = std::fs::read_to_string(&ring).unwrap();
    assert!(text.starts_with("format = \"gym-ring/1\""), "{text}");
    assert_eq!(text.matches("[[member]]").count(), 3);
    let (code, toml, err) = run(gym()
        .args(["ring", "plan"])
        .arg(d.path().join("members.txt")));
    assert_eq!(code, 0, "{err}");
    assert!(toml.contains("chunk_elements = 65536"), "{toml}");
    // Without --force an existing ring file is kept.
    let (code, _, err) = run(gym()
        .args(["ring", "plan", "-o"])
        .arg(&ring)
        .arg(d.path().join("members.txt")));
    assert_eq!(code, 4, "{err}");
    // A bad line names the line.
    std::fs::write(d.path().join("bad.txt"), "127.0.0.1:1 notakey\n").unwrap();
    let (code, _, err) = run(gym().args(["ring", "plan"]).arg(d.path().join("bad.txt")));
    assert_eq!(code, 10, "{err}");
    assert!(err.contains("line 1"), "{err}");
}

#[test]
fn ring_join_processes_write_identical_exact_means() {
    let d = tmp();
    let n = 4;
    let len = 1000;
    let weights = [1u64, 2, 3, 5];
    let ring = setup(d.path(), n, len, 64);
    let children: Vec<Child> = (0..n)
        .map(|i| join(d.path(), &ring, i, weights[i]))
        .collect();
    let mut reports = Vec::new();
    for c in children {
        let (code, out, err) = finish(c);
        assert_eq!(code, 0, "{err}");
        reports.push(json(&out));
    }
    let first = std::fs::read(d.path().join("out0.delta")).unwrap();
    for i in 1..n {
        assert_eq!(
            std::fs::read(d.path().join(format!("out{i}.delta"))).unwrap(),
            first
        );
    }
    assert_eq!(
        read_values(&d.path().join("out0.delta")),
        mean(&[0, 1, 2, 3], &weights, len)
    );
    let r = &reports[0];
    assert_eq!(r["format"], "gym-ring-join/1");
    assert_eq!(r["view"], 0);
    assert_eq!(r["total_weight"], "11");
    assert_eq!(r["members"].as_array().unwrap().len(), 4);
    assert_eq!(r["result_digest"], reports[3]["result_digest"]);
}

#[test]
fn kill_9_mid_reduce_leaves_the_mean_of_the_survivors() {
    let d = tmp();
    let n = 4;
    let len = 300_000;
    let weights = [1u64, 1, 2, 1];
    let ring = setup(d.path(), n, len, 1024);
    let mut children: Vec<Child> = (0..n)
        .map(|i| join(d.path(), &ring, i, weights[i]))
        .collect();
    // Wait until member 3 is reducing, then kill it.
    let mut victim = children.pop().unwrap();
    let stderr = victim.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    loop {
        let line = lines.next().expect("member 3 reports progress").unwrap();
        if line.contains("view 0: reduce") {
            break;
        }
    }
    victim.kill().unwrap(); // SIGKILL
    victim.wait().unwrap();
    let mut reports = Vec::new();
    for c in children {
        let (code, out, err) = finish(c);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("excluded from view 0"), "{err}");
        reports.push(json(&out));
    }
    let first = std::fs::read(d.path().join("out0.delta")).unwrap();
    for i in 1..3 {
        assert_eq!(
            std::fs::read(d.path().join(format!("out{i}.delta"))).unwrap(),
            first
        );
    }
    assert!(!d.path().join("out3.delta").exists());
    assert_eq!(
        read_values(&d.path().join("out0.delta")),
        mean(&[0, 1, 2], &weights, len)
    );
    let r = &reports[0];
    assert_eq!(r["view"], 1);
    assert_eq!(r["members"].as_array().unwrap().len(), 3);
    assert_eq!(r["excluded"][0]["index"], 3);
}

#[test]
fn non_members_and_wrong_ring_files_are_refused() {
    let d = tmp();
    let ring = setup(d.path(), 2, 10, 4);
    // A key that is not in the ring file.
    let outsider = d.path().join("outsider.pem");
    let (code, _, err) = run(gym().args(["keygen", "-q", "-o"]).arg(&outsider));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(gym()
        .args(["ring", "join", "--ring"])
        .arg(&ring)
        .arg("--key")
        .arg(&outsider)
        .arg("--input")
        .arg(d.path().join("in0.delta"))
        .arg("-o")
        .arg(d.path().join("x.delta")));
    assert_eq!(code, 14, "{err}");
    assert!(err.contains("is not a member of ring file"), "{err}");

    // Member 1 uses a ring file of another round: member 0's handshake is refused.
    let text = std::fs::read_to_string(&ring).unwrap();
    let other = d.path().join("other.toml");
    std::fs::write(&other, text.replace("round = 0", "round = 1")).unwrap();
    let mut a = join(d.path(), &ring, 0, 1);
    let _ = &mut a;
    let b = Command::new(assert_cmd::cargo::cargo_bin("gym"))
        .args([
            "ring",
            "join",
            "--timeout",
            "5",
            "--connect-timeout",
            "5",
            "--ring",
        ])
        .arg(&other)
        .arg("--key")
        .arg(d.path().join("k1.pem"))
        .arg("--input")
        .arg(d.path().join("in1.delta"))
        .arg("-o")
        .arg(d.path().join("out1.delta"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (ca, _, ea) = finish(a);
    let (cb, _, eb) = finish(b);
    assert_eq!(ca, 15, "{ea}");
    assert!(ea.contains("wrong ring file or round"), "{ea}");
    assert_eq!(cb, 15, "{eb}");
    assert!(eb.contains("wrong ring file or round"), "{eb}");
    assert!(!d.path().join("out0.delta").exists());
}

/// Rewrites the delta at `path` with `edit` applied to its `extra.ring` record and `tensor` to
/// the bytes of its one tensor, as a valid (unsigned) delta file: what someone who edits a
/// result and repacks it produces.
fn repack(path: &Path, edit: impl FnOnce(&mut serde_json::Value), tensor: impl FnOnce(&mut [u8])) {
    let bytes = std::fs::read(path).unwrap();
    let report = delta::read_bytes(&bytes, &Default::default()).unwrap();
    let d = &report.delta;
    let src: &[u8] = &bytes;
    let mut raw = Vec::new();
    delta::read_tensor(&src, d, &d.tensors[0], |b| raw.extend_from_slice(b)).unwrap();
    tensor(&mut raw);
    let mut meta = d.metadata.clone();
    edit(meta.extra.as_mut().unwrap().get_mut("ring").unwrap());
    let inputs = [PackInput {
        name: d.tensors[0].name.clone(),
        dtype: d.tensors[0].dtype,
        shape: d.tensors[0].shape.clone(),
        data: TensorSource::Bytes(&raw),
    }];
    let opts = PackOptions {
        compression: Compression::None,
        chunk_size: delta::DEFAULT_CHUNK_SIZE,
        metadata: meta,
        identity: None,
    };
    std::fs::write(path, delta::pack_to_vec(&inputs, &opts).unwrap().0).unwrap();
}

fn audit(result: &Path, args: &[std::ffi::OsString]) -> (i32, String, String) {
    run(gym().args(["ring", "audit"]).arg(result).args(args))
}

#[test]
fn ring_audit_checks_a_real_round_and_names_cheaters() {
    let d = tmp();
    let dir = d.path();
    let n = 3;
    let len = 500;
    let ring = setup(dir, n, len, 32);
    let children: Vec<Child> = (0..n).map(|i| join(dir, &ring, i, i as u64 + 1)).collect();
    for c in children {
        let (code, _, err) = finish(c);
        assert_eq!(code, 0, "{err}");
    }
    let result = dir.join("out0.delta");
    let original = std::fs::read(&result).unwrap();
    let ins: Vec<PathBuf> = (0..n).map(|i| dir.join(format!("in{i}.delta"))).collect();
    let with_inputs = |inputs: &[PathBuf]| -> Vec<std::ffi::OsString> {
        let mut a: Vec<std::ffi::OsString> = vec!["--ring".into(), ring.clone().into()];
        for p in inputs {
            a.push("--input".into());
            a.push(p.clone().into());
        }
        a
    };
    let ids: Vec<String> = RingSpec::load(&ring)
        .unwrap()
        .members
        .iter()
        .map(|m| m.id.clone())
        .collect();

    // An honest round passes with every input: the exact mean is recomputed and compared.
    let mut args = with_inputs(&ins);
    args.push("--json".into());
    let (code, out, err) = audit(&result, &args);
    assert_eq!(code, 0, "{err}");
    let r = json(&out);
    assert_eq!(r["format"], "gym-ring-audit/1");
    assert_eq!(r["ok"], true);
    assert_eq!(r["keys"], "ring_file");
    assert_eq!(r["receipts_verified"], 3);
    assert_eq!(r["exact_mean_checked"], true);
    for m in r["members"].as_array().unwrap() {
        assert_eq!(m["sketch_matches_input"], true, "{m}");
    }
    // Without the ring file the recorded keys are used, and the report says so.
    let (code, out, err) = audit(&result, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("keys from the result's own record"), "{out}");
    assert!(out.contains("receipts: 3 of 3 verify"), "{out}");
    assert!(out.contains("not checked"), "{out}");

    // Member 1 hands the auditor another delta it signed, not the one it committed to.
    let swapped = dir.join("in1-other.delta");
    let mut other = values(1, len);
    other[7] += 0.25;
    write_input(&swapped, &dir.join("k1.pem"), &other);
    let (code, _, err) = audit(
        &result,
        &with_inputs(&[ins[0].clone(), swapped.clone(), ins[2].clone()]),
    );
    assert_eq!(code, 20, "{err}");
    assert!(
        err.contains(&format!(
            "member 1 ({}) convicted by {}",
            ids[1],
            swapped.display()
        )),
        "{err}"
    );
    assert!(err.contains("not the input it committed to"), "{err}");

    // Member 1 published (and signed) a sketch its committed input does not give: its true
    // input convicts it.
    let rd = RingSpec::load(&ring).unwrap().digest();
    let k1 = Identity::load(&dir.join("k1.pem")).unwrap();
    repack(
        &result,
        |rec| {
            let m = &mut rec["members"][1];
            let mut msg =
                wire::decode(&keys::unb64(m["sketch"].as_str().unwrap()).unwrap(), false).unwrap();
            let Body::Sketch { mut sketches } = msg.body else {
                panic!("a sketch message")
            };
            sketches[2] = (sketches[2] + 1) % ((1 << 61) - 1);
            msg = Signed::sign(
                &k1,
                &rd,
                false,
                1,
                msg.view,
                Body::Sketch { sketches },
                vec![],
            );
            m["sketch"] = keys::b64(&wire::encode(&msg)).into();
        },
        |_| {},
    );
    let (code, _, err) = audit(&result, &with_inputs(&ins));
    assert_eq!(code, 20, "{err}");
    assert!(
        err.contains(&format!(
            "member 1 ({}) convicted by {}",
            ids[1],
            ins[1].display()
        )),
        "{err}"
    );
    assert!(err.contains("published sketch of segment 2"), "{err}");

    // A flipped byte in member 2's receipt.
    std::fs::write(&result, &original).unwrap();
    repack(
        &result,
        |rec| {
            let m = &mut rec["members"][2];
            let mut b = keys::unb64(m["receipt"].as_str().unwrap()).unwrap();
            b[10] ^= 0x01;
            m["receipt"] = keys::b64(&b).into();
        },
        |_| {},
    );
    let (code, _, err) = audit(&result, &[]);
    assert_eq!(code, 13, "{err}");
    assert!(
        err.contains(&format!(
            "member 2 ({}): its receipt signature does not verify",
            ids[2]
        )),
        "{err}"
    );

    // Altered result data, repacked into a valid file: the inputs show it.
    std::fs::write(&result, &original).unwrap();
    repack(&result, |_| {}, |b| b[40] ^= 0x08);
    let (code, _, err) = audit(&result, &with_inputs(&ins));
    assert_eq!(code, 12, "{err}");
    assert!(
        err.contains("tensor \"lora.w\" differs from the exact weighted mean of the inputs (first at element 10)"),
        "{err}"
    );

    // Altered result data in place: the file's own checksum fails first, and the audit says so.
    let mut raw = original.clone();
    let mean_bytes: Vec<u8> = read_values(&dir.join("out1.delta"))
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let at = raw
        .windows(64)
        .position(|w| w == &mean_bytes[..64])
        .expect("tensor stored uncompressed");
    raw[at + 40] ^= 0x08;
    std::fs::write(&result, &raw).unwrap();
    let (code, _, err) = audit(&result, &with_inputs(&ins));
    assert_eq!(code, 12, "{err}");
    assert!(err.contains("does not verify as a delta file"), "{err}");

    // A result of an older gym is refused as such.
    std::fs::write(&result, &original).unwrap();
    repack(
        &result,
        |rec| rec["format"] = "gym-ring-result/1".into(),
        |_| {},
    );
    let (code, _, err) = audit(&result, &[]);
    assert_eq!(code, 11, "{err}");
    assert!(err.contains("written by an older gym"), "{err}");
}

/// A TCP proxy for one connection: listens on `listen`, dials `upstream` (retrying while it is
/// not up yet). With `replay` empty it forwards both ways and returns what the client sent;
/// otherwise it sends `replay` upstream instead of the client's bytes (which it discards) and
/// forwards the upstream's answers to the client.
fn proxy(
    listen: std::net::TcpListener,
    upstream: String,
    replay: Vec<u8>,
) -> std::thread::JoinHandle<Vec<u8>> {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpStream};
    std::thread::spawn(move || {
        let (mut client, _) = listen.accept().unwrap();
        let mut server = loop {
            match TcpStream::connect(&upstream) {
                Ok(s) => break s,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        };
        // Upstream → client, in both modes.
        let (mut s_rd, mut c_wr) = (server.try_clone().unwrap(), client.try_clone().unwrap());
        let back = std::thread::spawn(move || {
            let _ = std::io::copy(&mut s_rd, &mut c_wr);
            let _ = c_wr.shutdown(Shutdown::Write);
        });
        let mut seen = Vec::new();
        let mut buf = [0u8; 1 << 16];
        if replay.is_empty() {
            loop {
                match client.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => {
                        seen.extend_from_slice(&buf[..k]);
                        if server.write_all(&buf[..k]).is_err() {
                            break;
                        }
                    }
                }
            }
        } else {
            // The recorded bytes go upstream; the live ones are dropped.
            let _ = server.write_all(&replay);
            while let Ok(k) = client.read(&mut buf) {
                if k == 0 {
                    break;
                }
            }
        }
        let _ = server.shutdown(Shutdown::Write);
        let _ = back.join();
        seen
    })
}

#[test]
fn a_replayed_connection_is_refused_and_the_others_finish_without_its_member() {
    let d = tmp();
    let dir = d.path();
    let len = 400;
    let weights = [1u64, 2, 3];
    let ring = setup(dir, 3, len, 64);
    // Member 1 listens on its own port behind a proxy at the address the ring file lists for
    // it; member 0 (the lower index dials) reaches it only through the proxy.
    let listed = RingSpec::load(&ring).unwrap().members[1].address.clone();
    let real = format!("127.0.0.1:{}", free_port());
    let start = |round: &str, replay: Vec<u8>| {
        let listener = std::net::TcpListener::bind(&listed).unwrap();
        let p = proxy(listener, real.clone(), replay);
        let out = |i: usize| dir.join(format!("{round}-out{i}.delta"));
        // Member 2 gives up on a silent member after 2 s; member 0 waits longer in each step,
        // so that it does not time out of view 1 while member 2 is still leaving view 0.
        let m0 = ["--timeout", "20", "--connect-timeout", "60"];
        let m2 = ["--timeout", "2", "--connect-timeout", "60"];
        let m1 = [
            "--timeout",
            "20",
            "--connect-timeout",
            "20",
            "--listen",
            real.as_str(),
        ];
        let c = vec![
            join_with(dir, &ring, 0, weights[0], &out(0), &m0),
            join_with(dir, &ring, 1, weights[1], &out(1), &m1),
            join_with(dir, &ring, 2, weights[2], &out(2), &m2),
        ];
        (p, c)
    };

    // Round 1: the proxy forwards and records what member 0 sent to member 1.
    let (p, children) = start("r1", Vec::new());
    for c in children {
        let (code, _, err) = finish(c);
        assert_eq!(code, 0, "{err}");
    }
    let recorded = p.join().unwrap();
    assert_eq!(
        read_values(&dir.join("r1-out1.delta")),
        mean(&[0, 1, 2], &weights, len)
    );

    // Round 2, new processes, same ring file and keys: the proxy sends member 1 the recorded
    // bytes of round 1 instead of member 0's live ones.
    let (p, children) = start("r2", recorded);
    let results: Vec<(i32, String, String)> = children.into_iter().map(finish).collect();
    let _ = p.join();
    let (c1, _, e1) = &results[1];
    // Member 1 refuses the replayed handshake: its Finish signs round 1's transcript.
    assert!(
        e1.contains("refused a connection from")
            && e1.contains(
                "handshake signature of member 0 does not verify (a replayed, tampered or forged handshake)"
            ),
        "{e1}"
    );
    // Left without member 0 and dropped by the others, it stops with too few members.
    assert_eq!(*c1, 20, "{e1}");
    assert!(!dir.join("r2-out1.delta").exists());
    // Member 0's own handshake fails too (member 1 answered another Hello); members 0 and 2
    // exclude member 1 and finish with the mean of the two of them, in view 1.
    let (c0, o0, e0) = &results[0];
    assert_eq!(*c0, 0, "{e0}\n{}", results[2].2);
    assert!(e0.contains("handshake with member 1"), "{e0}");
    let (c2, _, e2) = &results[2];
    assert_eq!(*c2, 0, "{e2}");
    let r = json(o0);
    assert_eq!(r["view"], 1);
    assert_eq!(r["excluded"][0]["index"], 1);
    assert_eq!(
        std::fs::read(dir.join("r2-out0.delta")).unwrap(),
        std::fs::read(dir.join("r2-out2.delta")).unwrap()
    );
    assert_eq!(
        read_values(&dir.join("r2-out0.delta")),
        mean(&[0, 2], &weights, len)
    );
    // The view-1 result audits against the survivors' inputs.
    let (code, out, err) = run(gym()
        .args(["ring", "audit", "--json", "--ring"])
        .arg(&ring)
        .arg(dir.join("r2-out2.delta"))
        .arg("--input")
        .arg(dir.join("in0.delta"))
        .arg("--input")
        .arg(dir.join("in2.delta")));
    assert_eq!(code, 0, "{err}");
    let a = json(&out);
    assert_eq!(a["view"], 1);
    assert_eq!(a["exact_mean_checked"], true);
    assert_eq!(a["excluded"][0]["index"], 1);
}

#[test]
fn a_hybrid_ring_signs_with_ml_dsa_too_and_its_audit_checks_both_halves() {
    let d = tmp();
    let dir = d.path();
    let (n, len) = (3, 400);
    let weights = [2u64, 1, 3];
    let ring = setup_of(dir, n, len, 32, true);
    let spec = RingSpec::load(&ring).unwrap();
    assert!(spec.is_hybrid());
    assert!(
        std::fs::read_to_string(&ring)
            .unwrap()
            .contains("ml_dsa_87 = ")
    );
    // Without --chunk-elements a hybrid ring gets larger data messages (fewer ML-DSA signatures).
    let (code, toml, err) = run(gym().args(["ring", "plan"]).arg(dir.join("members.txt")));
    assert_eq!(code, 0, "{err}");
    assert!(toml.contains("chunk_elements = 262144"), "{toml}");
    let children: Vec<Child> = (0..n).map(|i| join(dir, &ring, i, weights[i])).collect();
    for c in children {
        let (code, _, err) = finish(c);
        assert_eq!(code, 0, "{err}");
    }
    let result = dir.join("out0.delta");
    let original = std::fs::read(&result).unwrap();
    for i in 1..n {
        assert_eq!(
            std::fs::read(dir.join(format!("out{i}.delta"))).unwrap(),
            original
        );
    }
    assert_eq!(read_values(&result), mean(&[0, 1, 2], &weights, len));

    // The audit verifies both halves of every signature, with and without the ring file.
    let mut args: Vec<std::ffi::OsString> = vec!["--ring".into(), ring.clone().into()];
    for i in 0..n {
        args.push("--input".into());
        args.push(dir.join(format!("in{i}.delta")).into());
    }
    let (code, out, err) = audit(&result, &args);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("signatures: hybrid: Ed25519 + ML-DSA-87, both verified"),
        "{out}"
    );
    assert!(out.contains("receipts: 3 of 3 verify"), "{out}");
    assert!(out.contains("audit passed"), "{out}");
    let (code, out, err) = audit(&result, &["--json".into()]);
    assert_eq!(code, 0, "{err}");
    let r = json(&out);
    assert_eq!(r["hybrid"], true);
    assert_eq!(r["receipts_verified"], 3);

    // A flipped byte in member 1's ML-DSA-87 receipt signature: exit 13, naming it.
    repack(
        &result,
        |rec| {
            let m = &mut rec["members"][1];
            let mut b = keys::unb64(m["receipt_ml_dsa_87"].as_str().unwrap()).unwrap();
            assert_eq!(b.len(), keys::MLDSA87_SIGNATURE_LEN);
            b[2000] ^= 0x01;
            m["receipt_ml_dsa_87"] = keys::b64(&b).into();
        },
        |_| {},
    );
    let (code, _, err) = audit(&result, &[]);
    assert_eq!(code, 13, "{err}");
    assert!(
        err.contains(&format!(
            "member 1 ({}): its receipt signature does not verify",
            spec.members[1].id
        )),
        "{err}"
    );

    // The same flip in the ML-DSA-87 half of member 0's signed commit (wire encoding in the
    // record: the signature ends the message).
    std::fs::write(&result, &original).unwrap();
    repack(
        &result,
        |rec| {
            let m = &mut rec["members"][0];
            let mut b = keys::unb64(m["commit"].as_str().unwrap()).unwrap();
            let at = b.len() - 100;
            b[at] ^= 0x01;
            let msg = wire::decode(&b, true).unwrap();
            assert!(msg.pq_sig.is_some());
            m["commit"] = keys::b64(&b).into();
        },
        |_| {},
    );
    let (code, _, err) = audit(&result, &[]);
    assert_eq!(code, 13, "{err}");
    assert!(
        err.contains("its commit signature does not verify"),
        "{err}"
    );

    // Member 2's key without its ML-DSA-87 half (the Ed25519 block of its key file alone)
    // cannot join the hybrid ring: refused at the start, before any connection.
    let pem = std::fs::read_to_string(dir.join("k2.pem")).unwrap();
    let end = "-----END PRIVATE KEY-----\n";
    let ed_only = &pem[..pem.find(end).unwrap() + end.len()];
    let stripped = dir.join("k2-ed25519.pem");
    std::fs::write(&stripped, ed_only).unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&stripped, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let id = Identity::load(&stripped).unwrap();
    assert!(!id.is_hybrid());
    assert_eq!(id.public().worker_id(), spec.members[2].id);
    let (code, _, err) = run(gym()
        .args(["ring", "join", "--ring"])
        .arg(&ring)
        .arg("--key")
        .arg(&stripped)
        .arg("--input")
        .arg(dir.join("in2.delta"))
        .arg("-o")
        .arg(dir.join("x.delta")));
    assert_eq!(code, 14, "{err}");
    assert!(err.contains("is a hybrid ring"), "{err}");
    assert!(err.contains("(member 2) has no ML-DSA-87 half"), "{err}");
    assert!(!dir.join("x.delta").exists());
}

#[test]
fn a_ring_file_where_only_some_members_have_ml_dsa_keys_is_refused() {
    let d = tmp();
    let dir = d.path();
    let mut lines = String::new();
    let mut ids = Vec::new();
    for (i, pq) in [true, false, true].into_iter().enumerate() {
        let key = dir.join(format!("k{i}.pem"));
        let pq_flag: &[&str] = if pq { &["--pq"] } else { &[] };
        let (code, out, err) = run(gym()
            .args(["keygen", "--json"])
            .args(pq_flag)
            .arg("-o")
            .arg(&key));
        assert_eq!(code, 0, "{err}");
        ids.push(json(&out)["worker_id"].as_str().unwrap().to_string());
        lines.push_str(&format!("127.0.0.1:{} {}\n", 7100 + i, out.trim()));
    }
    let members = dir.join("members.txt");
    std::fs::write(&members, &lines).unwrap();
    // `gym ring plan` refuses to write it.
    let ring = dir.join("ring.toml");
    let (code, _, err) = run(gym().args(["ring", "plan", "-o"]).arg(&ring).arg(&members));
    assert_eq!(code, 10, "{err}");
    assert!(
        err.contains("some members have an ML-DSA-87 key and some do not"),
        "{err}"
    );
    assert!(
        err.contains(&format!("without one: member 1 ({})", ids[1])),
        "{err}"
    );
    assert!(!ring.exists());
    // A ring file edited into the same state is refused when a member joins with it: plan
    // members 0 and 2, then add member 1 (no ML-DSA-87 key) by hand.
    let listed: Vec<&str> = lines.lines().collect();
    let pq_only = dir.join("pq.txt");
    std::fs::write(&pq_only, format!("{}\n{}\n", listed[0], listed[2])).unwrap();
    let (code, _, err) = run(gym().args(["ring", "plan", "-o"]).arg(&ring).arg(&pq_only));
    assert_eq!(code, 0, "{err}");
    let ed1 = json(listed[1].split_once(' ').unwrap().1)["ed25519"]
        .as_str()
        .unwrap()
        .to_string();
    let mut text = std::fs::read_to_string(&ring).unwrap();
    text.push_str(&format!(
        "\n[[member]]\nid = \"{}\"\naddress = \"127.0.0.1:7101\"\ned25519 = \"{ed1}\"\n",
        ids[1]
    ));
    std::fs::write(&ring, text).unwrap();
    let (code, _, err) = run(gym()
        .args(["ring", "join", "--ring"])
        .arg(&ring)
        .arg("--key")
        .arg(dir.join("k0.pem"))
        .arg("--input")
        .arg(dir.join("missing.delta"))
        .arg("-o")
        .arg(dir.join("x.delta")));
    assert_eq!(code, 10, "{err}");
    assert!(err.contains("ring.toml"), "{err}");
    assert!(
        err.contains(&format!("without one: member 2 ({})", ids[1])),
        "{err}"
    );
}

#[test]
fn a_timeout_that_is_not_a_positive_number_of_seconds_is_a_usage_error() {
    let d = tmp();
    for (flag, value) in [
        ("--timeout", "0"),
        ("--connect-timeout", "1e30"),
        ("--timeout", "NaN"),
    ] {
        let (code, _, err) = run(gym().args([
            "ring",
            "join",
            "--ring",
            &d.path().join("ring.toml").display().to_string(),
            "--key",
            &d.path().join("k.pem").display().to_string(),
            "--input",
            &d.path().join("in.delta").display().to_string(),
            "-o",
            &d.path().join("out.delta").display().to_string(),
            flag,
            value,
        ]));
        assert_eq!(code, 2, "{flag} {value}: {err}");
        assert!(
            err.contains(&format!("{flag} must be a positive number of seconds")),
            "{err}"
        );
    }
}

/// The peak resident set (VmHWM, bytes) of process `pid`, polled until it exits.
fn peak_rss(pid: u32) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0;
        while let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            let kib = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
            match kib {
                Some(k) => peak = peak.max(k * 1024),
                None => break, // a zombie: it has exited
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        peak
    })
}

/// Junk TCP connections to `targets` from loopback sources 127.0.0.2 to 127.0.0.9, one every
/// 2 ms, until `count` of them connected: random bytes, a length prefix of 64 MiB followed by
/// 1 MiB of junk (what a listener that allocated and buffered it would keep), or a slow-loris that announces a `Hello` and sends one byte every 300 ms. Counts connected
/// ones in `made`; slow-loris connections are held until the peer closes them or `stop`.
fn junk(
    targets: Vec<std::net::SocketAddr>,
    count: usize,
    made: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            let mut i = 0usize;
            while made.load(Ordering::Relaxed) < count && !stop.load(Ordering::Relaxed) {
                i += 1;
                let target = targets[i % targets.len()];
                let source: std::net::SocketAddr = ([127, 0, 0, 2 + (i % 8) as u8], 0).into();
                let (made, stop) = (made.clone(), stop.clone());
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let seed = x;
                tokio::spawn(async move {
                    let sock = tokio::net::TcpSocket::new_v4().unwrap();
                    if sock.bind(source).is_err() {
                        return;
                    }
                    let Ok(mut s) = sock.connect(target).await else {
                        return;
                    };
                    made.fetch_add(1, Ordering::Relaxed);
                    let mut junk: Vec<u8> = (0..512u64)
                        .map(|k| (seed.rotate_left(k as u32 % 64) >> 3) as u8)
                        .collect();
                    match i % 3 {
                        0 => {}
                        1 => {
                            junk = vec![0x5a; 1 << 20];
                            junk[..4].copy_from_slice(&(64u32 << 20).to_le_bytes());
                        }
                        _ => {
                            // `Hello` is 1283 bytes.
                            let _ = s.write_all(&1283u32.to_le_bytes()).await;
                            while !stop.load(Ordering::Relaxed) {
                                if s.write_all(&[0x42]).await.is_err() {
                                    return;
                                }
                                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                            }
                            return;
                        }
                    }
                    let _ = s.write_all(&junk).await;
                    let mut sink = Vec::new();
                    let _ = tokio::time::timeout(
                        std::time::Duration::from_secs(15),
                        s.read_to_end(&mut sink),
                    )
                    .await;
                });
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        });
    })
}

/// One 4-member round (weights 1..=4); with `junk_count`, that many junk connections from
/// loopback hit the members' listeners, starting before member 0 has connected to anybody and
/// going on through the round. The members' peak RSS and stderr.
fn junk_round(dir: &Path, ring: &Path, name: &str, junk_count: usize) -> (Vec<u64>, Vec<String>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let targets: Vec<std::net::SocketAddr> = RingSpec::load(ring)
        .unwrap()
        .members
        .iter()
        .map(|m| m.address.parse().unwrap())
        .collect();
    let out = |i: usize| dir.join(format!("{name}-out{i}.delta"));
    let args = ["--timeout", "30", "--connect-timeout", "60"];
    let start = |i: usize| {
        let c = join_with(dir, ring, i, i as u64 + 1, &out(i), &args);
        let peak = peak_rss(c.id());
        (c, peak)
    };
    let mut members: Vec<_> = (1..4).map(start).collect();
    let made = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let flood = junk(targets, junk_count, made.clone(), stop.clone());
    // Member 0 dials the others while they are flooded.
    while junk_count > 0 && made.load(Ordering::Relaxed) < junk_count / 2 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    members.insert(0, start(0));
    let mut peaks = Vec::new();
    let mut errs = Vec::new();
    for (i, (c, peak)) in members.into_iter().enumerate() {
        let (code, _, err) = finish(c);
        assert_eq!(code, 0, "member {i}: {err}");
        peaks.push(peak.join().unwrap());
        errs.push(err);
    }
    let reached = made.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();
    assert!(reached >= junk_count, "{reached} junk connections made");
    let expected = mean(&[0, 1, 2, 3], &[1, 2, 3, 4], 300_000);
    for i in 0..4 {
        assert_eq!(read_values(&out(i)), expected, "member {i}");
    }
    (peaks, errs)
}

#[test]
fn junk_connections_before_authentication_neither_stop_a_round_nor_grow_its_memory() {
    let d = tmp();
    let dir = d.path();
    let ring = setup(dir, 4, 300_000, 16384);
    let (base, _) = junk_round(dir, &ring, "base", 0);
    let (peaks, errs) = junk_round(dir, &ring, "junk", 1000);
    for i in 0..4 {
        assert!(
            peaks[i] < base[i] + (64 << 20),
            "member {i}: peak RSS {} with junk, {} without",
            peaks[i],
            base[i]
        );
    }
    // The junk reached the listeners and was counted, not kept.
    let turned_away: u64 = errs
        .iter()
        .filter_map(|e| {
            let l = e
                .lines()
                .find(|l| l.contains("before authentication: refused"))?;
            let n = |after: &str| -> Option<u64> {
                l.split(after)
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            };
            Some(n("refused ").unwrap_or(0) + n("dropped ").unwrap_or(0))
        })
        .sum();
    assert!(turned_away >= 100, "{turned_away}: {errs:?}");
    for e in &errs {
        let reported = e.matches("refused a connection from").count();
        assert!(reported <= 16, "{reported} refusals reported one by one");
    }
    eprintln!("peak RSS without junk {base:?}, with 1000 junk connections {peaks:?}");
}

#[test]
fn a_member_committing_a_huge_exponent_or_weight_is_excluded_and_the_round_completes() {
    let d = tmp();
    let dir = d.path();
    let len = 500;
    let ring = setup(dir, 4, len, 64);
    // The same members, planned with a weight bound (and the default max_exponent 8).
    let bounded = dir.join("bounded.toml");
    let (code, _, err) = run(gym()
        .args([
            "ring",
            "plan",
            "--chunk-elements",
            "64",
            "--max-weight",
            "100",
            "-o",
        ])
        .arg(&bounded)
        .arg(dir.join("members.txt")));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("within 2^-"), "{err}");
    assert_ne!(
        RingSpec::load(&bounded).unwrap().digest(),
        RingSpec::load(&ring).unwrap().digest()
    );
    // Member 2's delta reaches 1e18 (~2^60): alone it would leave no fixed-point scale for
    // anybody. Member 3 claims weight 1000.
    let huge: Vec<f32> = values(2, len).iter().map(|v| v * 1e18).collect();
    write_input(&dir.join("in2.delta"), &dir.join("k2.pem"), &huge);
    let args = ["--timeout", "20", "--connect-timeout", "60"];
    let weights = [1u64, 2, 3, 1000];
    let out = |i: usize| dir.join(format!("b-out{i}.delta"));
    let children: Vec<Child> = (0..4)
        .map(|i| join_with(dir, &bounded, i, weights[i], &out(i), &args))
        .collect();
    let results: Vec<(i32, String, String)> = children.into_iter().map(finish).collect();
    for i in [0, 1] {
        let (code, o, err) = &results[i];
        assert_eq!(*code, 0, "member {i}: {err}");
        let r = json(o);
        assert_eq!(r["view"], 1, "{err}");
        let excluded = r["excluded"].as_array().unwrap();
        let reason = |k: u64| {
            excluded
                .iter()
                .find(|e| e["index"] == k)
                .map(|e| e["reason"].as_str().unwrap().to_string())
                .unwrap_or_default()
        };
        assert!(reason(2).contains("exponent 59"), "{excluded:?}");
        assert!(reason(3).contains("weight 1000"), "{excluded:?}");
        assert_eq!(read_values(&out(i)), mean(&[0, 1], &weights, len));
    }
    for i in [2, 3] {
        let (code, _, err) = &results[i];
        assert_eq!(*code, 20, "member {i}: {err}");
        assert!(err.contains("excluded"), "{err}");
        assert!(!out(i).exists());
    }
}

/// The quantized value of every element of `x` (docs/ring-protocol.md, "Quantized
/// averaging"), written out here from the spec: per block of 64, the smallest `e` with
/// `max|x| < (1 − 2^−bits) · 2^e`, step `2^t` with `t = max(e − bits + 1, −F)`, round half to
/// even.
fn quantized(x: &[f32], bits: i32, scale: i32) -> Vec<f64> {
    let mut out = Vec::new();
    for blk in x.chunks(64) {
        let max = blk.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
        let mut e = -200;
        while max >= (1.0 - 2f64.powi(-bits)) * 2f64.powi(e) {
            e += 1;
        }
        let t = (e - bits + 1).max(-scale);
        out.extend(
            blk.iter()
                .map(|&v| (v as f64 * 2f64.powi(-t)).round_ties_even() * 2f64.powi(t)),
        );
    }
    out
}

#[test]
fn a_quantized_ring_writes_identical_bytes_and_its_audit_recomputes_the_quantization() {
    let d = tmp();
    let dir = d.path();
    let (n, len) = (3, 1000);
    let weights = [1u64, 2, 3];
    let ring = setup_with(dir, n, len, 64, false, &["--quantize", "8"]);
    let text = std::fs::read_to_string(&ring).unwrap();
    assert!(text.contains("quantize = 8"), "{text}");
    // Bits outside 2..=16 are refused by name.
    for bad in ["1", "17"] {
        let (code, _, err) = run(gym()
            .args(["ring", "plan", "--quantize", bad])
            .arg(dir.join("members.txt")));
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("quantize must be 2 to 16 bits"), "{err}");
    }
    // A join flag that disagrees with the ring file is refused before anything else.
    let (code, _, err) = finish(join_with(
        dir,
        &ring,
        0,
        1,
        &dir.join("never.delta"),
        &["--quantize", "4"],
    ));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--quantize 4 disagrees with ring file") && err.contains("quantize = 8"),
        "{err}"
    );
    assert!(!dir.join("never.delta").exists());
    // So is `gym train --ring-quantize` (before any training step).
    let (code, _, err) = run(gym()
        .args([
            "-q",
            "train",
            "--max-steps",
            "2",
            "--aggregate-interval",
            "2",
        ])
        .args(["--ring-quantize", "4", "--ring"])
        .arg(&ring)
        .arg("--key")
        .arg(dir.join("k0.pem"))
        .arg("-o")
        .arg(dir.join("train")));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--ring-quantize 4 disagrees with ring file"),
        "{err}"
    );

    // Member 0 states the ring's setting; the others follow the ring file.
    let children: Vec<Child> = (0..n)
        .map(|i| {
            let flags: &[&str] = if i == 0 { &["--quantize", "8"] } else { &[] };
            let mut extra = vec!["--timeout", "20", "--connect-timeout", "60"];
            extra.extend_from_slice(flags);
            join_with(
                dir,
                &ring,
                i,
                weights[i],
                &dir.join(format!("out{i}.delta")),
                &extra,
            )
        })
        .collect();
    let mut reports = Vec::new();
    for c in children {
        let (code, out, err) = finish(c);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("quantized to 8 bits"), "{err}");
        reports.push(json(&out));
    }
    let first = std::fs::read(dir.join("out0.delta")).unwrap();
    for i in 1..n {
        assert_eq!(
            std::fs::read(dir.join(format!("out{i}.delta"))).unwrap(),
            first,
            "member {i} wrote other bytes"
        );
    }
    let r = &reports[0];
    assert_eq!(r["quantize"], 8);
    // The exact weighted mean of the quantized inputs, rounded once to f32.
    let f = r["scale_bits"].as_i64().unwrap() as i32;
    let q: Vec<Vec<f64>> = (0..n).map(|i| quantized(&values(i, len), 8, f)).collect();
    let expected: Vec<f32> = (0..len)
        .map(|k| {
            let s: i64 = (0..n)
                .map(|i| (q[i][k] * 2f64.powi(f)) as i64 * weights[i] as i64)
                .sum();
            (s as f64 / 6.0 * 2f64.powi(-f)) as f32
        })
        .collect();
    let got = read_values(&dir.join("out0.delta"));
    assert_eq!(got, expected);
    let lossless = mean(&[0, 1, 2], &weights, len);
    assert_ne!(got, lossless, "8 bits changed the mean");
    for (a, b) in got.iter().zip(&lossless) {
        // Inputs in [−0.5, 0.5), blocks up to 0.499 ≥ (1 − 2^-8) · 2^-1: the step is at most
        // 2^(0−8+1), the error at most half of it (a convex combination keeps the bound).
        assert!((a - b).abs() <= 2f32.powi(-8) + 1e-7, "{a} vs {b}");
    }

    // The audit recomputes every member's quantized contribution from its input.
    let mut args: Vec<std::ffi::OsString> = vec!["--json".into()];
    for i in 0..n {
        args.push("--input".into());
        args.push(dir.join(format!("in{i}.delta")).into());
    }
    for with_ring in [false, true] {
        let mut a = args.clone();
        if with_ring {
            a.extend(["--ring".into(), ring.clone().into()]);
        }
        let (code, out, err) = audit(&dir.join("out1.delta"), &a);
        assert_eq!(code, 0, "{err}");
        let v = json(&out);
        assert_eq!(v["quantize"], 8);
        assert_eq!(v["exact_mean_checked"], true);
        for m in v["members"].as_array().unwrap() {
            assert_eq!(m["sketch_matches_input"], true, "{m}");
        }
    }
}

/// `gym train --ring` with a quantized ring file: every round of the run averages with the ring
/// file's quantization (and its digest for that round), and the members end with the same
/// adapter.
#[test]
fn train_with_a_quantized_ring_averages_quantized_every_round() {
    let d = tmp();
    let dir = d.path();
    let mut lines = String::new();
    for i in 0..3 {
        let key = dir.join(format!("k{i}.pem"));
        let (code, out, err) = run(gym().args(["keygen", "--json", "-o"]).arg(&key));
        assert_eq!(code, 0, "{err}");
        lines.push_str(&format!("127.0.0.1:{} {}\n", free_port(), out.trim()));
    }
    std::fs::write(dir.join("members.txt"), lines).unwrap();
    let ring = dir.join("ring.toml");
    let (code, _, err) = run(gym()
        .args(["ring", "plan", "--quantize", "8", "-o"])
        .arg(&ring)
        .arg(dir.join("members.txt")));
    assert_eq!(code, 0, "{err}");
    let children: Vec<Child> = (0..3)
        .map(|i| {
            Command::new(assert_cmd::cargo::cargo_bin("gym"))
                .args([
                    "train",
                    "--json",
                    "--max-steps",
                    "4",
                    "--aggregate-interval",
                    "2",
                ])
                .args(["--ring-quantize", "8", "--ring"])
                .arg(&ring)
                .arg("--key")
                .arg(dir.join(format!("k{i}.pem")))
                .arg("-o")
                .arg(dir.join(format!("r{i}")))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let (code, out, err) = finish(c);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("quantized to 8 bits"), "{err}");
        assert_eq!(json(&out)["aggregated"].as_array().unwrap().len(), 2);
    }
    let read = |i: usize, rel: &str| std::fs::read(dir.join(format!("r{i}")).join(rel)).unwrap();
    for rel in [
        "deltas/avg-000002.delta",
        "adapter/adapter_model.safetensors",
    ] {
        assert_eq!(read(0, rel), read(1, rel), "{rel}");
        assert_eq!(read(0, rel), read(2, rel), "{rel}");
    }
    let spec = RingSpec::load(&ring).unwrap();
    let deltas = dir.join("r1/deltas");
    for seq in [1u64, 2] {
        let mean = deltas.join(format!("ring-{seq:06}.delta"));
        let avg = deltas.join(format!("avg-{seq:06}.delta"));
        for f in [&mean, &avg] {
            let (code, out, err) = run(gym().args(["delta", "inspect", "--json"]).arg(f));
            assert_eq!(code, 0, "{err}");
            let rec = &json(&out)["metadata"]["extra"]["ring"];
            assert_eq!(rec["quantize"], 8, "{rec}");
            assert_eq!(rec["round"], seq);
            assert_eq!(
                rec["ring"].as_str().unwrap(),
                hex::encode(spec.for_round(seq).digest())
            );
        }
        // The audit recomputes the quantized contributions of the three updates averaged.
        let mut a: Vec<std::ffi::OsString> = Vec::new();
        for i in 0..3 {
            a.push("--input".into());
            a.push(
                dir.join(format!("r{i}/deltas/update-{seq:06}.delta"))
                    .into(),
            );
        }
        let (code, out, err) = audit(&mean, &a);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("exact mean: recomputed"), "{out}");
    }
    // The members continue from the last mean plus the mean update, element by element.
    let f32s = |name: &str| {
        let (input, _) = gym::core::ring::io::load_input(&deltas.join(name), 1).expect(name);
        match input.values {
            gym::core::ring::fixed::Values::F32(v) => v,
            _ => panic!("{name}: not f32"),
        }
    };
    let (start, mean, next) = (
        f32s("avg-000001.delta"),
        f32s("ring-000002.delta"),
        f32s("avg-000002.delta"),
    );
    assert!(mean.iter().any(|&x| x != 0.0));
    for k in 0..next.len() {
        assert_eq!(
            next[k],
            (start[k] as f64 + mean[k] as f64) as f32,
            "element {k}"
        );
    }
}
