//! Hierarchical rounds through the real `gym ring join` (docs/ring-protocol.md "Hierarchical
//! rounds"): groups that write their exact sums, a leader ring over those sums, and the result
//! against one flat ring of every member at the same fixed scale.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::common::{gym, json, run, tmp};
use crate::ring::{finish, free_port, read_values, values, write_input};

/// The keys' public-key JSON lines (`gym key show --json`), one per member.
fn keys(dir: &Path, n: usize, len: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let key = dir.join(format!("k{i}.pem"));
            let (code, out, err) = run(gym().args(["keygen", "--json", "-o"]).arg(&key));
            assert_eq!(code, 0, "{err}");
            write_input(&dir.join(format!("in{i}.delta")), &key, &values(i, len));
            out.trim().to_string()
        })
        .collect()
}

/// `gym ring plan` of `members` (each on a fresh loopback port) with `flags`.
fn plan(dir: &Path, name: &str, keys: &[String], members: &[usize], flags: &[&str]) -> PathBuf {
    let lines: String = members
        .iter()
        .map(|&i| format!("127.0.0.1:{} {}\n", free_port(), keys[i]))
        .collect();
    let list = dir.join(format!("{name}.txt"));
    std::fs::write(&list, lines).unwrap();
    let ring = dir.join(format!("{name}.toml"));
    let (code, _, err) = run(gym()
        .args(["ring", "plan", "--chunk-elements", "64", "-o"])
        .arg(&ring)
        .args(flags)
        .arg(&list));
    assert_eq!(code, 0, "{err}");
    ring
}

fn spawn(dir: &Path, ring: &Path, i: usize, input: &Path, out: &Path, weight: u64) -> Child {
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
        .arg(input)
        .arg("-o")
        .arg(out)
        .args(["--weight", &weight.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gym starts")
}

/// Runs one ring: member `i` of `members` brings `input(i)` and writes `output(i)`; returns
/// the `--json` reports.
fn ring_round(
    dir: &Path,
    ring: &Path,
    members: &[usize],
    io: impl Fn(usize) -> (PathBuf, PathBuf, u64),
) -> Vec<serde_json::Value> {
    let children: Vec<Child> = members
        .iter()
        .map(|&i| {
            let (input, out, w) = io(i);
            spawn(dir, ring, i, &input, &out, w)
        })
        .collect();
    children
        .into_iter()
        .map(|c| {
            let (code, out, err) = finish(c);
            assert_eq!(code, 0, "{err}");
            json(&out)
        })
        .collect()
}

fn same_bytes(paths: &[PathBuf]) {
    let first = std::fs::read(&paths[0]).unwrap();
    for p in &paths[1..] {
        assert!(
            std::fs::read(p).unwrap() == first,
            "{} differs",
            p.display()
        );
    }
}

#[test]
fn groups_and_a_leader_ring_write_the_flat_ring_s_mean_bit_for_bit() {
    let d = tmp();
    let dir = d.path();
    let (n, len) = (5, 700);
    let weights = [1u64, 2, 3, 4, 5];
    let keys = keys(dir, n, len);
    // The round's scale: 58 − max_exponent 8 − bitlen(5 members · max_weight 5) = 45.
    let f = &["--max-weight", "5", "--scale-bits", "45"];
    let input = |i: usize| dir.join(format!("in{i}.delta"));
    // One flat ring of all five at F = 45.
    let flat = plan(dir, "flat", &keys, &[0, 1, 2, 3, 4], f);
    let flat_out = |i: usize| dir.join(format!("flat{i}.delta"));
    let flat_reports = ring_round(dir, &flat, &[0, 1, 2, 3, 4], |i| {
        (input(i), flat_out(i), weights[i])
    });
    // Groups {0, 1, 2} and {3, 4} write their exact sums.
    let sums = [&f[..], &["--sum-output"]].concat();
    let sum_out = |i: usize| dir.join(format!("sum{i}.gymsum"));
    for group in [&[0, 1, 2][..], &[3, 4]] {
        let ring = plan(dir, &format!("group{}", group[0]), &keys, group, &sums);
        let text = std::fs::read_to_string(&ring).unwrap();
        assert!(text.contains("format = \"gym-ring/2\""), "{text}");
        assert!(text.contains("output = \"sum\""), "{text}");
        ring_round(dir, &ring, group, |i| (input(i), sum_out(i), weights[i]));
        same_bytes(&group.iter().map(|&i| sum_out(i)).collect::<Vec<_>>());
    }
    // The leaders (0 and 3) bring the sums: weights 6 and 9 (max_weight 3 · 5 = 15).
    let leader = plan(
        dir,
        "leaders",
        &keys,
        &[0, 3],
        &["--max-weight", "15", "--scale-bits", "45"],
    );
    let lead_out = |i: usize| dir.join(format!("lead{i}.delta"));
    let lead_reports = ring_round(dir, &leader, &[0, 3], |i| (sum_out(i), lead_out(i), 1));
    same_bytes(&[lead_out(0), lead_out(3)]);
    same_bytes(&(0..n).map(flat_out).collect::<Vec<_>>());
    // Bit for bit the flat ring's mean: the same tensor bytes and result digest (the files
    // differ only in `extra.ring`, which names the ring that made them).
    let (flat_v, lead_v) = (read_values(&flat_out(0)), read_values(&lead_out(0)));
    assert_eq!(flat_v.len(), len);
    assert!(
        flat_v
            .iter()
            .map(|x| x.to_bits())
            .eq(lead_v.iter().map(|x| x.to_bits()))
    );
    let (fr, lr) = (&flat_reports[0], &lead_reports[0]);
    assert_eq!(lr["result_digest"], fr["result_digest"]);
    assert_eq!(lr["total_weight"], "15");
    assert_eq!(lr["scale_bits"], 45);
    // And that is the weighted mean to within 2^-46 per element.
    for (k, v) in flat_v.iter().enumerate() {
        let m: f64 = (0..n)
            .map(|i| values(i, len)[k] as f64 * weights[i] as f64)
            .sum::<f64>()
            / 15.0;
        assert!(
            (*v as f64 - m).abs() <= 2f64.powi(-46) + m.abs() * 2f64.powi(-24),
            "{k}"
        );
    }
    audits(dir, &sum_out, &lead_out);
}

/// `gym ring audit` of a group's sum file (with and without its inputs) and of the leader
/// ring's result with the groups' sum files as inputs.
fn audits(dir: &Path, sum_out: &dyn Fn(usize) -> PathBuf, lead_out: &dyn Fn(usize) -> PathBuf) {
    let input = |i: usize| dir.join(format!("in{i}.delta"));
    let audit = |result: &Path, inputs: &[PathBuf]| {
        let mut c = gym();
        c.args(["ring", "audit", "--json"]).arg(result);
        for p in inputs {
            c.arg("--input").arg(p);
        }
        run(&mut c)
    };
    let (code, out, err) = audit(&sum_out(1), &[input(0), input(1), input(2)]);
    assert_eq!(code, 0, "{err}{out}");
    let r = json(&out);
    assert_eq!(r["result_kind"], "sum");
    assert_eq!(r["exact_mean_checked"], true);
    let (code, out, _) = audit(&sum_out(4), &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(json(&out)["exact_mean_checked"], false);
    let (code, out, err) = audit(&lead_out(3), &[sum_out(0), sum_out(3)]);
    assert_eq!(code, 0, "{err}{out}");
    let r = json(&out);
    assert_eq!(r["result_kind"], "mean");
    assert_eq!(r["exact_mean_checked"], true);
    // The wrong group's inputs for a sum file: no member committed to them.
    let (code, _, _) = audit(&sum_out(0), &[input(3)]);
    assert_eq!(code, 15);
    // A sum file whose integers were changed (and its digest recomputed by a forger who
    // knows the format) is not what the members signed.
    let bytes = std::fs::read(sum_out(3)).unwrap();
    let mut s = gym::core::ring::sumfile::SumFile::decode(&bytes, Path::new("s")).unwrap();
    s.sum[0] += 1;
    let forged = dir.join("forged.gymsum");
    std::fs::write(&forged, s.encode()).unwrap();
    let (code, out, _) = audit(&forged, &[]);
    assert_eq!(code, 12, "{out}");
    assert!(out.contains("not the sum the members signed"), "{out}");
}

#[test]
fn a_sum_file_enters_only_a_ring_at_its_scale_and_brings_its_own_weight() {
    let d = tmp();
    let dir = d.path();
    let keys = keys(dir, 2, 50);
    let f = &["--max-weight", "3", "--scale-bits", "40"];
    let sums = [&f[..], &["--sum-output"]].concat();
    let group = plan(dir, "g", &keys, &[0, 1], &sums);
    let sum_out = |i: usize| dir.join(format!("s{i}.gymsum"));
    ring_round(dir, &group, &[0, 1], |i| {
        (dir.join(format!("in{i}.delta")), sum_out(i), 1)
    });
    // A ring without the fixed scale: member 0 refuses its own sum input by name.
    let plain = plan(dir, "p", &keys, &[0, 1], &["--max-weight", "3"]);
    let (code, _, err) = finish(spawn(dir, &plain, 0, &sum_out(0), &dir.join("x.delta"), 1));
    assert_eq!(code, 10, "{err}");
    assert!(
        err.contains("a sum enters only a ring with the same scale_bits"),
        "{err}"
    );
    // A weight given with a sum file is a usage error.
    let (code, _, err) = finish(spawn(dir, &plain, 0, &sum_out(0), &dir.join("x.delta"), 2));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("brings its own weight total"), "{err}");
    // --sum-output without a scale, and a scale above what the bounds allow.
    let (code, _, err) = run(gym()
        .args(["ring", "plan", "--sum-output"])
        .arg(dir.join("g.txt")));
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run(gym()
        .args(["ring", "plan", "--max-weight", "3", "--scale-bits", "50"])
        .arg(dir.join("g.txt")));
    assert_eq!(code, 10, "{err}");
    assert!(err.contains("scale_bits 50 is above 47"), "{err}");
}

/// An orchestrator and 5 `gym work` processes with `ring_size` 3: every round runs groups of
/// 3 and 2 and a leader ring of their leaders; every worker ends with the published adapter.
#[test]
fn five_workers_with_ring_size_3_run_leader_rings_and_end_with_the_published_adapter() {
    use crate::orchestrate::{finish as wait, key, orchestrate, wait_up, work};
    use std::time::Duration;
    let d = tmp();
    let dir = d.path();
    let (orch_key, _) = key(dir, "orch", 1);
    let workers: Vec<(PathBuf, String)> =
        (0..5).map(|i| key(dir, &format!("w{i}"), 30 + i)).collect();
    let mut job = "name = \"h\"\nepochs = 1\nrounds_per_epoch = 2\nmin_workers = 5\n\
                   max_workers = 5\nring_size = 3\nredundancy = 0\n\n[timeouts]\ntrain = 300\n\
                   ring = 120\n\n[train]\naggregate_interval = 1\n\n[publish]\nto = \"published\"\n"
        .to_string();
    for (_, id) in &workers {
        job.push_str(&format!("\n[[worker]]\nid = \"{id}\"\nstake = 10\n"));
    }
    let job_path = dir.join("job.toml");
    std::fs::write(&job_path, job).unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let olog = dir.join("orch.log");
    let orch = orchestrate(&job_path, &orch_key, port, &olog);
    wait_up(&url);
    let procs: Vec<Child> = workers
        .iter()
        .enumerate()
        .map(|(i, (k, _))| work(&url, k, &dir.join(format!("w{i}"))))
        .collect();
    for (i, p) in procs.into_iter().enumerate() {
        let (code, out) = wait(p, Duration::from_secs(900));
        let wlog = std::fs::read_to_string(dir.join(format!("w{i}.log"))).unwrap_or_default();
        let olog_text = std::fs::read_to_string(&olog).unwrap_or_default();
        assert_eq!(code, 0, "worker {i}:\n{wlog}\norchestrator:\n{olog_text}");
        let s = json(&out);
        assert_eq!(s["rounds_trained"], 2, "{s}\n{wlog}");
        assert_eq!(s["rings"], 2, "{s}\n{wlog}");
    }
    let (code, out, err) = run(gym().args(["job", "status", "--json", &url]));
    assert_eq!(code, 0, "{err}");
    let st = json(&out);
    assert_eq!(st["phase"], "finished");
    assert_eq!(st["accepted_rounds"], 2, "{st}");
    let published = st["published"].as_array().unwrap();
    let cid = published[0]["cid"].as_str().unwrap();
    let (code, _) = wait(orch, Duration::from_secs(60));
    assert_eq!(code, 0, "{}", std::fs::read_to_string(&olog).unwrap());
    // The leaders wrote group sums and ran the leader ring; the others took its result.
    let sums = (0..5)
        .filter(|i| {
            std::fs::read_dir(dir.join(format!("w{i}/deltas")))
                .unwrap()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with("-group.gymsum"))
        })
        .count();
    assert_eq!(sums, 5, "every worker's group ring wrote its sum file");
    let means = (0..5)
        .filter(|i| {
            std::fs::read_dir(dir.join(format!("w{i}/deltas")))
                .unwrap()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("avg-"))
        })
        .count();
    assert!(
        (2..5).contains(&means),
        "only leaders run the leader ring that writes the mean ({means} did)"
    );
    let published_bytes = std::fs::read(
        dir.join("published")
            .join(cid)
            .join("adapter_model.safetensors"),
    )
    .unwrap();
    for i in 0..5 {
        let got =
            std::fs::read(dir.join(format!("w{i}/adapter/adapter_model.safetensors"))).unwrap();
        assert!(
            got == published_bytes,
            "worker {i}'s adapter differs from {cid}"
        );
    }
}
