//! `gym reward`: hand-computed estimates, epoch folders with signed records, claims, bad inputs.
//! Fixtures (deltas, receipts, reports, keys) are made here with the library and fixed seeds.

use std::path::{Path, PathBuf};

use gym::core::delta::{
    self, Compression, Compute, Dtype, Metadata, PackInput, PackOptions, TensorSource,
};
use gym::core::keys::Identity;
use gym::core::reward::records::{EvalReport, RingKind, RingReceipt, Verdict};

use crate::common::*;

/// decimals 0 and one epoch of 1,000,000 tokens, so that the numbers are easy to check by hand.
const SMALL: &str = "[token]\ndecimals = 0\n[emission]\ntotal_supply = 1000000\nepochs = 1\n";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

fn id(seed: u8) -> Identity {
    Identity::from_seeds(&[seed; 32], None)
}

fn wid(seed: u8) -> String {
    id(seed).public().worker_id()
}

fn node<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == name)
        .unwrap_or_else(|| panic!("no node {name}"))
}

/// The worked example of docs/rewards.md: five nodes, one below its minimum stake, one with a
/// negative quality score.
const FIVE: &str = "\
node,role,stake,flops,gpu_seconds,loss_improvement,uptime_seconds,ring_rounds
a,compute,10000,100,10,2,50,5
b,compute,20000,300,30,-5,50,5
c,compute,5000,1000,,,,
v,validator,30000,,,,,
o,orchestrator,60000,,,,,
";

#[test]
fn csv_what_if_matches_the_worked_example() {
    let d = tmp();
    let econ = write(d.path(), "e.toml", SMALL);
    let csv = write(d.path(), "c.csv", FIVE);
    let (code, stdout, stderr) = run(gym()
        .args(["reward", "estimate", "--json", "--economics"])
        .arg(&econ)
        .arg(&csv));
    assert_eq!(code, 0, "{stderr}");
    let v = json(&stdout);
    assert_eq!(v["format"], "gym-reward-estimate/1");
    assert_eq!(v["emission"], "1000000");
    let rewards: Vec<(&str, &str)> = ["a", "b", "c", "v", "o"]
        .iter()
        .map(|n| (*n, node(&v, n)["reward"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rewards,
        [
            ("a", "200000"),
            ("b", "200000"),
            ("c", "0"),
            ("v", "66666"),
            ("o", "133333")
        ]
    );
    assert_eq!(node(&v, "b")["shares"]["quality"], 0.0);
    assert_eq!(node(&v, "a")["shares"]["quality"], 1.0);
    assert_eq!(node(&v, "c")["eligible"], false);
    assert_eq!(
        node(&v, "c")["reasons"][0],
        "stake 5000 GYM is below the compute minimum of 10000 GYM"
    );
    assert_eq!(v["pools"]["reserve"]["total"], "100001");
    assert_eq!(v["pools"]["reserve"]["rounding"], "1");
    assert_eq!(v["totals"]["reward"], "599999");
}

#[test]
fn table_and_csv_output() {
    let d = tmp();
    let econ = write(d.path(), "e.toml", SMALL);
    let csv = write(d.path(), "c.csv", FIVE);
    let (code, stdout, _) = run(gym()
        .args(["reward", "estimate", "--economics"])
        .arg(&econ)
        .arg(&csv));
    assert_eq!(code, 0);
    assert!(
        stdout.contains(
            "| a     | compute      | 10000  | yes        | 25.00%  | 100.00% | 50.00%  | 200000 |"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("| total | 5 nodes      | 125000 | 4 eligible |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("c: stake 5000 GYM is below the compute minimum of 10000 GYM"),
        "{stdout}"
    );
    let (code, stdout, _) = run(gym()
        .args(["reward", "estimate", "--csv", "--economics"])
        .arg(&econ)
        .arg(&csv));
    assert_eq!(code, 0);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        "node,role,stake,eligible,compute_share,quality_share,network_share,reward,reasons"
    );
    assert_eq!(
        lines[1],
        "a,compute,10000,true,0.250000,1.000000,0.500000,200000,"
    );
    assert_eq!(lines[4], "v,validator,30000,true,,,,66666,");
}

/// With the default economics (18 decimals, 10^9 GYM over 3650 epochs), worked with Python's
/// integers: E = 10^27 // 3650 + 1 (epoch 0 < 10^27 mod 3650); mining = E*40//100.
#[test]
fn json_what_if_with_default_economics() {
    let d = tmp();
    let f = write(
        d.path(),
        "c.json",
        r#"{"format": "gym-reward-contributions/1", "epoch": 0, "nodes": [
            {"node": "x", "role": "compute", "stake": "10000", "flops": 1},
            {"node": "y", "role": "compute", "stake": "10000", "flops": 3},
            {"node": "v", "role": "validator", "stake": "25000"}]}"#,
    );
    let (code, stdout, stderr) = run(gym().args(["reward", "estimate", "--json"]).arg(&f));
    assert_eq!(code, 0, "{stderr}");
    let v = json(&stdout);
    assert_eq!(v["emission"], "273972.602739726027397261");
    assert_eq!(v["pools"]["mining"]["amount"], "109589.041095890410958904");
    assert_eq!(
        node(&v, "x")["reward_base_units"],
        "27397260273972602739726"
    );
    assert_eq!(
        node(&v, "y")["reward_base_units"],
        "82191780821917808219178"
    );
    assert_eq!(node(&v, "v")["reward"], "54794.520547945205479452");
    assert_eq!(v["pools"]["reserve"]["total"], "27397.260273972602739727");
    assert_eq!(v["categories"]["quality"]["active"], false);
}

#[test]
fn bad_contributions_name_the_record() {
    let cases = [
        ("node,role,stake\na,compute\n", "line 2 (\"a\"): 2 cells"),
        (
            "node,role\na,compute\n",
            "line 2 (\"a\"): missing field \"stake\"",
        ),
        (
            "node,role,stake\na,compute,-10\n",
            "line 2 (\"a\"): stake: amount \"-10\" is negative",
        ),
        (
            "node,role,stake,flops\na,compute,1,NaN\n",
            "line 2 (\"a\"): flops: \"NaN\" is not a finite number",
        ),
        (
            "node,role,stake\na,miner,1\n",
            "line 2 (\"a\"): unknown role \"miner\"",
        ),
        (
            "node,role,stake\na,compute,1\na,validator,1\n",
            "node \"a\" appears more than once",
        ),
    ];
    for (text, want) in cases {
        let d = tmp();
        let f = write(d.path(), "c.csv", text);
        let (code, _, stderr) = run(gym().args(["reward", "estimate"]).arg(&f));
        assert_eq!(code, 10, "{text:?}: {stderr}");
        assert!(
            stderr.contains(want) && stderr.contains("c.csv"),
            "{text:?}: {stderr}"
        );
    }
    let d = tmp();
    let f = write(
        d.path(),
        "c.json",
        r#"{"nodes": [{"node": "a", "role": "compute", "stake": 1, "flops": NaN}]}"#,
    );
    let (code, _, stderr) = run(gym().args(["reward", "estimate"]).arg(&f));
    assert_eq!(code, 10, "{stderr}");
    assert!(
        stderr.contains("c.json: document: invalid JSON"),
        "{stderr}"
    );
}

#[test]
fn economics_defaults_and_errors() {
    let (code, stdout, _) = run(gym().args(["reward", "economics"]));
    assert_eq!(code, 0);
    for want in [
        "mining = 40",
        "staking = 20",
        "compute = 60",
        "quality = 30",
        "network = 10",
        "validator = \"25000\"",
    ] {
        assert!(stdout.contains(want), "{want}: {stdout}");
    }
    let d = tmp();
    let bad = write(d.path(), "e.toml", "[distribution]\nmining = 50\n");
    let (code, _, stderr) = run(gym().args(["reward", "economics"]).arg(&bad));
    assert_eq!(code, 10);
    assert!(
        stderr.contains("distribution: percentages sum to 110, not 100"),
        "{stderr}"
    );
}

// ---- epoch folders ----

fn write_delta(
    path: &Path,
    signer: Option<&Identity>,
    worker: &str,
    seq: u64,
    tokens: u64,
    flops: f64,
    wall: f64,
) -> String {
    let data = [0u8; 16];
    let inputs = [PackInput {
        name: "w".into(),
        dtype: Dtype::F32,
        shape: vec![4],
        data: TensorSource::Bytes(&data),
    }];
    let mut meta = Metadata::new(worker);
    meta.timestamp = "2026-01-01T00:00:00Z".into();
    meta.epoch = 0;
    meta.seq = seq;
    meta.compute = Some(Compute {
        tokens,
        flops,
        device: "H100".into(),
        wall_seconds: wall,
    });
    let opts = PackOptions {
        compression: Compression::None,
        chunk_size: delta::DEFAULT_CHUNK_SIZE,
        metadata: meta,
        identity: signer,
    };
    let (bytes, summary) = delta::pack_to_vec(&inputs, &opts).unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
    hex::encode(summary.digest)
}

fn report(issuer: &Identity, subject: u8, digest: &str, loss: f64, stability: f64) -> String {
    let mut r = EvalReport::new(0, wid(subject), digest, Verdict::Pass);
    r.issued = "2026-01-01T00:00:00Z".into();
    r.loss_improvement = loss;
    r.grad_norm_stability = stability;
    r.sign(issuer);
    serde_json::to_string(&r).unwrap()
}

fn receipt(
    issuer: &Identity,
    subject: u8,
    kind: RingKind,
    uptime: f64,
    reason: Option<&str>,
) -> String {
    let mut r = RingReceipt::new(0, 1, kind, wid(subject));
    r.issued = "2026-01-01T00:00:00Z".into();
    r.uptime_seconds = uptime;
    r.reason = reason.map(str::to_string);
    r.sign(issuer);
    serde_json::to_string(&r).unwrap()
}

const A: u8 = 1;
const B: u8 = 2;
const C: u8 = 3;
const D: u8 = 4;
const V: u8 = 10;
const O: u8 = 11;

/// An epoch folder; every number is worked out in `epoch_folder_matches_hand_computation`.
fn epoch_folder(dir: &Path) {
    let roster = format!(
        "node,role,stake\n{},compute,10000\n{},compute,10000\n{},compute,10000\n{},compute,10000\n{},validator,25000\n{},orchestrator,50000\n",
        wid(A),
        wid(B),
        wid(C),
        wid(D),
        wid(V),
        wid(O)
    );
    write(dir, "nodes.csv", &roster);
    // A claims far more FLOPs than 1000 tokens on a 1000-parameter model allow (6e6).
    let da = write_delta(
        &dir.join("deltas/a.delta"),
        Some(&id(A)),
        &wid(A),
        1,
        1000,
        1e30,
        10.0,
    );
    let db = write_delta(
        &dir.join("deltas/b.delta"),
        Some(&id(B)),
        &wid(B),
        1,
        1000,
        3e6,
        30.0,
    );
    // C's delta is unsigned: no reward.
    write_delta(
        &dir.join("deltas/c.delta"),
        None,
        &wid(C),
        1,
        1000,
        3e6,
        30.0,
    );
    // D is caught cheating in the ring.
    write_delta(
        &dir.join("deltas/d.delta"),
        Some(&id(D)),
        &wid(D),
        1,
        1000,
        3e6,
        30.0,
    );
    let v = id(V);
    let eval = format!(
        "{}\n{}\n",
        report(&v, A, &da, 0.5, 1.0),
        report(&v, B, &db, -1.0, 0.5)
    );
    write(dir, "eval/v.jsonl", &eval);
    write(
        dir,
        "ring/b-for-a.json",
        &receipt(&id(B), A, RingKind::Forward, 60.0, None),
    );
    write(
        dir,
        "ring/a-for-b.json",
        &receipt(&id(A), B, RingKind::Forward, 60.0, None),
    );
    let more = format!(
        "{}\n{}\n",
        receipt(&v, A, RingKind::Checkpoint, 0.0, None),
        receipt(
            &id(O),
            D,
            RingKind::Fault,
            0.0,
            Some("sent a chunk that does not match its commitment")
        )
    );
    write(dir, "ring/orchestrator.jsonl", &more);
    write(dir, "economics.toml", SMALL);
}

fn estimate_epoch(dir: &Path) -> (i32, String, String) {
    run(gym()
        .args([
            "reward",
            "estimate",
            "--json",
            "--model-params",
            "1000",
            "--epoch",
            "0",
            "--economics",
        ])
        .arg(dir.join("economics.toml"))
        .arg(dir))
}

/// compute: flops A 6e6 (capped) B 3e6, gpu A 10 B 30; weights 50:30 (memory inactive)
///   A = 5/8·2/3 + 3/8·1/4 = 49/96, B = 47/96
/// quality: loss A 0.5, B -1 → 0; stable tokens A 1000, B 500; weights 50:20 (convergence inactive)
///   A = 5/7 + 2/7·2/3 = 19/21, B = 2/21
/// network: uptime 60/60, rounds 1/1, checkpoints A 1; weights 40:40:20 → A 0.6, B 0.4
/// S_A = 0.6·49/96 + 0.3·19/21 + 0.1·0.6 = 1785500/7 / 400000 → floor(400000·S_A) = 255071
/// S_B → floor(1014500/7) = 144928; rounding 1. Staking: V 25000, O 50000 of 200000.
#[test]
fn epoch_folder_matches_hand_computation() {
    let d = tmp();
    epoch_folder(d.path());
    let (code, stdout, stderr) = estimate_epoch(d.path());
    assert_eq!(code, 0, "{stderr}");
    let v = json(&stdout);
    assert_eq!(node(&v, &wid(A))["reward"], "255071");
    assert_eq!(node(&v, &wid(B))["reward"], "144928");
    assert_eq!(node(&v, &wid(V))["reward"], "66666");
    assert_eq!(node(&v, &wid(O))["reward"], "133333");
    let c = node(&v, &wid(C));
    assert_eq!(
        (c["eligible"].as_bool(), c["reward"].as_str()),
        (Some(false), Some("0"))
    );
    assert!(
        c["reasons"][0]
            .as_str()
            .unwrap()
            .contains("c.delta failed verification"),
        "{c}"
    );
    let dd = node(&v, &wid(D));
    assert_eq!(dd["reward"], "0");
    assert!(
        dd["reasons"][0]
            .as_str()
            .unwrap()
            .contains("ring fault in round 1 reported by"),
        "{dd}"
    );
    assert_eq!(v["pools"]["mining"]["paid"], "399999");
    assert!(
        v["notes"][0]
            .as_str()
            .unwrap()
            .contains("capped at 6000000"),
        "{}",
        v["notes"]
    );
}

#[test]
fn epoch_folder_needs_model_params() {
    let d = tmp();
    epoch_folder(d.path());
    let (code, _, stderr) = run(gym().args(["reward", "estimate"]).arg(d.path()));
    assert_eq!(code, 2);
    assert!(stderr.contains("--model-params is required"), "{stderr}");
}

#[test]
fn tampered_receipt_is_an_error_naming_it() {
    let d = tmp();
    epoch_folder(d.path());
    let p = d.path().join("ring/b-for-a.json");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("\"uptime_seconds\":60.0", "\"uptime_seconds\":6000.0");
    std::fs::write(&p, text).unwrap();
    let (code, _, stderr) = estimate_epoch(d.path());
    assert_eq!(code, 13, "{stderr}");
    assert!(
        stderr.contains("b-for-a.json: record: Ed25519 signature does not verify"),
        "{stderr}"
    );
}

#[test]
fn unsigned_report_is_an_error_naming_it() {
    let d = tmp();
    epoch_folder(d.path());
    let mut r: serde_json::Value =
        serde_json::from_str(&report(&id(V), A, &"00".repeat(32), 1.0, 1.0)).unwrap();
    r.as_object_mut().unwrap().remove("signature");
    write(d.path(), "eval/unsigned.json", &r.to_string());
    let (code, _, stderr) = estimate_epoch(d.path());
    assert_eq!(code, 14, "{stderr}");
    assert!(
        stderr.contains("unsigned.json: record: not signed"),
        "{stderr}"
    );
}

/// A delta reported again in a later round (a replay) gets a second report from the same
/// validator: it does not count twice, but its `fail` excludes the node, whichever of the two
/// reports is read first (here the fail, whose file name sorts first).
#[test]
fn a_fail_on_a_delta_seen_again_excludes_its_node() {
    let d = tmp();
    epoch_folder(d.path());
    let (code, stdout, stderr) = estimate_epoch(d.path());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(node(&json(&stdout), &wid(B))["eligible"], true);
    // B's delta digest, from the validator's first report on it
    let first = std::fs::read_to_string(d.path().join("eval/v.jsonl")).unwrap();
    let db = json(first.lines().nth(1).unwrap())["delta"]
        .as_str()
        .unwrap()
        .to_string();
    let mut r = EvalReport::new(0, wid(B), db, Verdict::Fail);
    r.issued = "2026-01-01T00:00:01Z".into();
    r.reason = Some("parent_hash names an earlier round's start".into());
    r.sign(&id(V));
    write(
        d.path(),
        "eval/v-again.json",
        &serde_json::to_string(&r).unwrap(),
    );
    let (code, stdout, stderr) = estimate_epoch(d.path());
    assert_eq!(code, 0, "{stderr}");
    let v = json(&stdout);
    let b = node(&v, &wid(B));
    assert_eq!(
        (b["eligible"].as_bool(), b["reward"].as_str()),
        (Some(false), Some("0")),
        "{b}"
    );
    assert!(
        b["reasons"][0]
            .as_str()
            .unwrap()
            .contains("an earlier round's start"),
        "{b}"
    );
    assert!(
        v["rejected"].to_string().contains("second report"),
        "{}",
        v["rejected"]
    );
}

#[test]
fn self_attestation_is_refused() {
    let d = tmp();
    epoch_folder(d.path());
    write(
        d.path(),
        "ring/self.json",
        &receipt(&id(A), A, RingKind::Forward, 1e6, None),
    );
    let (code, _, stderr) = estimate_epoch(d.path());
    assert_eq!(code, 15, "{stderr}");
    assert!(
        stderr.contains("self.json: record: issued by its own subject"),
        "{stderr}"
    );
    // A compute node may not issue checkpoint receipts.
    let d = tmp();
    epoch_folder(d.path());
    write(
        d.path(),
        "ring/ck.json",
        &receipt(&id(B), A, RingKind::Checkpoint, 0.0, None),
    );
    let (code, _, stderr) = estimate_epoch(d.path());
    assert_eq!(code, 15, "{stderr}");
    assert!(
        stderr.contains("is a compute node; only validator or orchestrator"),
        "{stderr}"
    );
    // An outsider's receipt.
    let d = tmp();
    epoch_folder(d.path());
    write(
        d.path(),
        "ring/outsider.json",
        &receipt(&id(99), A, RingKind::Forward, 1.0, None),
    );
    let (code, _, stderr) = estimate_epoch(d.path());
    assert_eq!(code, 14, "{stderr}");
    assert!(stderr.contains("is not in the epoch's roster"), "{stderr}");
}

#[test]
fn roster_must_not_carry_metrics() {
    let d = tmp();
    write(
        d.path(),
        "nodes.json",
        r#"{"epoch": 0, "nodes": [{"node": "a", "role": "compute", "stake": 1, "flops": 9}]}"#,
    );
    let (code, _, stderr) = run(gym()
        .args(["reward", "estimate", "--model-params", "1"])
        .arg(d.path()));
    assert_eq!(code, 10, "{stderr}");
    assert!(
        stderr.contains("metrics come from signed deltas"),
        "{stderr}"
    );
}

// ---- claims ----

fn key_file(dir: &Path, seed: u8, pq: bool) -> PathBuf {
    let p = dir.join(format!("k{seed}.pem"));
    let pq_seed = [seed; 32];
    Identity::from_seeds(&[seed; 32], pq.then_some(&pq_seed))
        .save(&p, false)
        .unwrap();
    p
}

const CID: &str = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";

#[test]
fn claim_and_verify() {
    let d = tmp();
    let key = key_file(d.path(), A, true);
    let me = Identity::load(&key).unwrap();
    let delta = d.path().join("a.delta");
    let digest = write_delta(&delta, Some(&me), &wid(A), 7, 1000, 6e6, 12.5);
    let claim = d.path().join("claim.json");
    let (code, _, stderr) = run(gym()
        .args(["reward", "claim", "--cid", CID, "--delta"])
        .arg(&delta)
        .arg("--key")
        .arg(&key)
        .arg("-o")
        .arg(&claim));
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = run(gym()
        .args(["reward", "verify-claim", "--json"])
        .arg(&claim)
        .arg("--delta")
        .arg(&delta));
    assert_eq!(code, 0, "{stderr}");
    let v = json(&stdout);
    assert_eq!(v["format"], "gym-reward-claim-verify/1");
    assert_eq!(v["valid"], true);
    assert_eq!(v["hybrid"], true);
    assert_eq!(v["worker_id"], me.public().worker_id());
    assert_eq!(v["delta"]["digest"], digest);
    assert_eq!(v["delta"]["cid"], CID);
    assert_eq!(v["compute"]["flops"], 6e6);
    assert_eq!((v["epoch"].as_u64(), v["seq"].as_u64()), (Some(0), Some(7)));
    // Never overwritten without --force.
    let (code, _, _) = run(gym()
        .args(["reward", "claim", "--delta"])
        .arg(&delta)
        .arg("--key")
        .arg(&key)
        .arg("-o")
        .arg(&claim));
    assert_eq!(code, 4);
}

#[test]
fn tampered_claim_fails() {
    let d = tmp();
    let key = key_file(d.path(), A, false);
    let delta = d.path().join("a.delta");
    write_delta(
        &delta,
        Some(&Identity::load(&key).unwrap()),
        &wid(A),
        1,
        1000,
        6e6,
        12.5,
    );
    let claim = d.path().join("claim.json");
    let (code, _, _) = run(gym()
        .args(["reward", "claim", "--delta"])
        .arg(&delta)
        .arg("--key")
        .arg(&key)
        .arg("-o")
        .arg(&claim));
    assert_eq!(code, 0);
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&claim).unwrap()).unwrap();
    v["compute"]["flops"] = serde_json::json!(6e9);
    std::fs::write(&claim, v.to_string()).unwrap();
    let (code, _, stderr) = run(gym().args(["reward", "verify-claim"]).arg(&claim));
    assert_eq!(code, 13, "{stderr}");
    assert!(
        stderr.contains("claim.json: record: Ed25519 signature does not verify"),
        "{stderr}"
    );
}

#[test]
fn claim_needs_the_deltas_own_key_and_a_signed_delta() {
    let d = tmp();
    let key_a = key_file(d.path(), A, false);
    let key_b = key_file(d.path(), B, false);
    let delta = d.path().join("a.delta");
    write_delta(&delta, Some(&id(A)), &wid(A), 1, 1000, 6e6, 12.5);
    let (code, _, stderr) = run(gym()
        .args(["reward", "claim", "--delta"])
        .arg(&delta)
        .arg("--key")
        .arg(&key_b)
        .arg("-o")
        .arg(d.path().join("c.json")));
    assert_eq!(code, 14, "{stderr}");
    assert!(
        stderr.contains(&format!("the delta is signed by {}", wid(A))),
        "{stderr}"
    );
    let unsigned = d.path().join("u.delta");
    write_delta(&unsigned, None, "anon", 1, 1000, 6e6, 12.5);
    let (code, _, stderr) = run(gym()
        .args(["reward", "claim", "--delta"])
        .arg(&unsigned)
        .arg("--key")
        .arg(&key_a)
        .arg("-o")
        .arg(d.path().join("c.json")));
    assert_eq!(code, 14, "{stderr}");
    assert!(
        stderr.contains("u.delta: the delta is not signed"),
        "{stderr}"
    );
    let (code, _, stderr) = run(gym()
        .args(["reward", "claim", "--cid", "not-a-cid", "--delta"])
        .arg(&delta)
        .arg("--key")
        .arg(&key_a)
        .arg("-o")
        .arg(d.path().join("c.json")));
    assert_eq!(code, 10, "{stderr}");
    assert!(!exists(&d.path().join("c.json")));
}

#[test]
fn verify_claim_against_another_delta_fails() {
    let d = tmp();
    let key = key_file(d.path(), A, false);
    let delta = d.path().join("a.delta");
    write_delta(&delta, Some(&id(A)), &wid(A), 1, 1000, 6e6, 12.5);
    let other = d.path().join("b.delta");
    write_delta(&other, Some(&id(A)), &wid(A), 2, 1000, 6e6, 12.5);
    let claim = d.path().join("claim.json");
    let (code, _, _) = run(gym()
        .args(["reward", "claim", "--delta"])
        .arg(&delta)
        .arg("--key")
        .arg(&key)
        .arg("-o")
        .arg(&claim));
    assert_eq!(code, 0);
    let (code, _, stderr) = run(gym()
        .args(["reward", "verify-claim"])
        .arg(&claim)
        .arg("--delta")
        .arg(&other));
    assert_eq!(code, 15, "{stderr}");
    assert!(stderr.contains("delta.digest in the claim is"), "{stderr}");
}

#[test]
fn tampered_or_equivocating_deltas_make_their_node_ineligible() {
    let d = tmp();
    epoch_folder(d.path());
    // Flip one byte of A's signature.
    let p = d.path().join("deltas/a.delta");
    let mut bytes = std::fs::read(&p).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    std::fs::write(&p, bytes).unwrap();
    // B signs a second, different delta with the same sequence number.
    write_delta(
        &d.path().join("deltas/b2.delta"),
        Some(&id(B)),
        &wid(B),
        1,
        1000,
        1e6,
        1.0,
    );
    let (code, stdout, stderr) = estimate_epoch(d.path());
    assert_eq!(code, 0, "{stderr}");
    let v = json(&stdout);
    let a = node(&v, &wid(A));
    assert_eq!(
        (a["eligible"].as_bool(), a["reward"].as_str()),
        (Some(false), Some("0"))
    );
    let reason = a["reasons"][0].as_str().unwrap();
    assert!(
        reason.contains("a.delta failed verification: Ed25519 signature"),
        "{reason}"
    );
    let b = node(&v, &wid(B));
    assert_eq!(
        (b["eligible"].as_bool(), b["reward"].as_str()),
        (Some(false), Some("0"))
    );
    assert!(
        b["reasons"][0]
            .as_str()
            .unwrap()
            .contains("two different deltas with sequence number 1"),
        "{b}"
    );
    // A's eval report now names a delta that did not verify: rejected, not counted.
    let rejected = v["rejected"].to_string();
    assert!(
        rejected.contains("is not a verified delta of"),
        "{rejected}"
    );
    // Nobody left to pay from mining: it goes to the reserve.
    assert_eq!(v["pools"]["mining"]["paid"], "0");
    assert_eq!(v["pools"]["reserve"]["undistributed"], "400000");
}

#[test]
fn receipts_from_understaked_members_do_not_count() {
    let d = tmp();
    epoch_folder(d.path());
    const E: u8 = 5;
    let roster = std::fs::read_to_string(d.path().join("nodes.csv")).unwrap();
    write(
        d.path(),
        "nodes.csv",
        &format!("{roster}{},compute,1\n", wid(E)),
    );
    // A round nobody else attested, so that counting it would change A's reward.
    let mut r = RingReceipt::new(0, 2, RingKind::Forward, wid(A));
    r.uptime_seconds = 1e9;
    r.sign(&id(E));
    write(
        d.path(),
        "ring/e-for-a.json",
        &serde_json::to_string(&r).unwrap(),
    );
    let (code, stdout, stderr) = estimate_epoch(d.path());
    assert_eq!(code, 0, "{stderr}");
    let v = json(&stdout);
    // Unchanged from epoch_folder_matches_hand_computation.
    assert_eq!(node(&v, &wid(A))["reward"], "255071");
    let rejected = v["rejected"].to_string();
    assert!(
        rejected.contains("has less than the compute minimum stake; not counted"),
        "{rejected}"
    );
}
