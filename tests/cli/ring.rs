//! `gym ring plan` and `gym ring join`, through real processes on loopback.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use gym::core::delta::{self, Compression, Dtype, Metadata, PackInput, PackOptions, TensorSource};

use crate::common::{gym, json, run, tmp};

/// A port for a member to listen on. Taken below the kernel's ephemeral range (32768 and up on
/// Linux), so that no other test's `bind(0)` can be handed it between this check and the member's
/// own bind; spread by process id so concurrent test processes do not pick the same ones.
fn free_port() -> u16 {
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
fn values(i: usize, len: usize) -> Vec<f32> {
    (0..len)
        .map(|k| (((k * 2654435761 + i * 40503) % 1000) as f32) / 1000.0 - 0.5)
        .collect()
}

/// Keys, input deltas and a ring file for `n` members.
fn setup(dir: &Path, n: usize, len: usize, chunk: u32) -> PathBuf {
    let mut lines = String::new();
    for i in 0..n {
        let key = dir.join(format!("k{i}.pem"));
        let (code, out, err) = run(gym().args(["keygen", "--json", "-o"]).arg(&key));
        assert_eq!(code, 0, "{err}");
        lines.push_str(&format!("127.0.0.1:{} {}", free_port(), out.trim()));
        lines.push('\n');
        let v = values(i, len);
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        let inputs = [PackInput {
            name: "lora.w".into(),
            dtype: Dtype::F32,
            shape: vec![len as u64],
            data: TensorSource::Bytes(&bytes),
        }];
        let opts = PackOptions {
            compression: Compression::None,
            chunk_size: delta::DEFAULT_CHUNK_SIZE,
            metadata: Metadata::new(format!("member-{i}")),
            identity: None,
        };
        let (file, _) = delta::pack_to_vec(&inputs, &opts).unwrap();
        std::fs::write(dir.join(format!("in{i}.delta")), file).unwrap();
    }
    let members = dir.join("members.txt");
    std::fs::write(&members, lines).unwrap();
    let ring = dir.join("ring.toml");
    let (code, _, err) = run(gym()
        .args(["ring", "plan", "--chunk-elements", &chunk.to_string(), "-o"])
        .arg(&ring)
        .arg(&members));
    assert_eq!(code, 0, "{err}");
    ring
}

fn join(dir: &Path, ring: &Path, i: usize, weight: u64) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("gym"))
        .args([
            "ring",
            "join",
            "--json",
            "--timeout",
            "20",
            "--connect-timeout",
            "60",
        ])
        .arg("--ring")
        .arg(ring)
        .arg("--key")
        .arg(dir.join(format!("k{i}.pem")))
        .arg("--input")
        .arg(dir.join(format!("in{i}.delta")))
        .arg("-o")
        .arg(dir.join(format!("out{i}.delta")))
        .args(["--weight", &weight.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gym starts")
}

fn finish(c: Child) -> (i32, String, String) {
    let o = c.wait_with_output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The f32 values of the single tensor of a delta.
fn read_values(p: &Path) -> Vec<f32> {
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
