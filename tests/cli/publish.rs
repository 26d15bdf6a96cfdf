//! `gym publish`: the local target, a real IPFS node (GYM_TEST_IPFS_API, started by
//! tools/ci/ipfs-node.sh) and the Hugging Face Hub protocol against tests/cli/hub_server.rs.

use std::path::Path;

use crate::cid::make_tree;
use crate::common::*;
use crate::hub_server::HubServer;

const TOKEN: &str = "hf_testtoken_0123456789abcdef";

fn publish(args: &[&str], path: &Path) -> (i32, String, String) {
    run(gym()
        .arg("publish")
        .arg(path)
        .args(args)
        .env("GYM_RETRY_DELAY_MS", "1"))
}

#[test]
fn to_dir_lays_files_out_under_their_cids() {
    let d = tmp();
    let f = d.path().join("model.delta");
    std::fs::write(&f, pattern(300_000)).unwrap();
    let store = d.path().join("store");
    let s = store.to_str().unwrap();
    let (code, stdout, stderr) = publish(&["--to", s, "--json"], &f);
    assert_eq!(code, 0, "{stderr}");
    let v = json(&stdout);
    assert_eq!(v["format"], "gym-publish/1");
    let cid = v["cid"].as_str().unwrap();
    assert!(cid.starts_with("Qm"));
    assert_eq!(v["targets"][0]["kind"], "local");
    assert_eq!(v["targets"][0]["written"], true);
    assert_eq!(std::fs::read(store.join(cid)).unwrap(), pattern(300_000));
    // Same CID as `gym cid`.
    let (_, out, _) = run(gym().arg("cid").arg(&f));
    assert!(out.starts_with(cid));
    // Again: the entry is there already and is left alone.
    let (code, stdout, _) = publish(&["--to", s], &f);
    assert_eq!(code, 0);
    assert!(stdout.contains("already present"), "{stdout}");
    // A folder becomes DIR/<cid>/… ; v1 CIDs on request.
    let tree = make_tree(d.path(), &ipfs_reference());
    let (code, stdout, stderr) = publish(&["--to", s, "--json", "--cid-version", "1"], &tree);
    assert_eq!(code, 0, "{stderr}");
    let v = json(&stdout);
    let want = ipfs_reference()["directories"][0]["v1"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(v["cid"], want);
    assert_eq!(
        std::fs::read(store.join(&want).join("sub/b.bin")).unwrap(),
        pattern(262_144 * 2 + 5)
    );
    let leftovers: Vec<_> = std::fs::read_dir(&store)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".gym-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind");
}

#[test]
fn no_target_is_an_error() {
    let d = tmp();
    let (code, _, stderr) = publish(&[], d.path());
    assert_eq!(code, 1);
    assert!(stderr.contains("no target"), "{stderr}");
}

#[test]
fn ipfs_round_trip_through_the_real_node() {
    let Some(api) = ipfs_node() else { return };
    let d = tmp();
    // Unique content per run so the node cannot already have it; two chunks and a bit.
    let mut bytes = pattern(262_144 * 2 + 1234);
    let nonce = format!("{:?}", std::time::SystemTime::now());
    bytes.extend_from_slice(nonce.as_bytes());
    let f = d.path().join("adapter.delta");
    std::fs::write(&f, &bytes).unwrap();
    let kubo = gym::core::ipfs::api::Kubo::new(&api, Default::default()).unwrap();
    for version in ["0", "1"] {
        let (code, stdout, stderr) =
            publish(&["--ipfs", &api, "--json", "--cid-version", version], &f);
        assert_eq!(code, 0, "{stderr}");
        let v = json(&stdout);
        let cid = v["cid"].as_str().unwrap().to_string();
        assert_eq!(v["targets"][0]["kind"], "ipfs");
        assert_eq!(v["targets"][0]["cid"], cid.as_str());
        let (_, local, _) = run(gym().args(["cid", "--cid-version", version]).arg(&f));
        assert!(
            local.starts_with(&cid),
            "gym cid {local} vs published {cid}"
        );
        assert!(cid.starts_with(if version == "0" { "Qm" } else { "bafy" }));
        assert_eq!(
            kubo.cat(&cid).unwrap(),
            bytes,
            "cat {cid} returns other bytes"
        );
    }
    // A folder, with the API taken from IPFS_API.
    let tree = make_tree(d.path(), &ipfs_reference());
    let (code, stdout, stderr) = run(gym()
        .arg("publish")
        .arg(&tree)
        .args(["--ipfs", "--json"])
        .env("IPFS_API", &api));
    assert_eq!(code, 0, "{stderr}");
    let v = json(&stdout);
    assert_eq!(v["cid"], ipfs_reference()["directories"][0]["v0"]);
    let b = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "tree/sub/b.bin")
        .unwrap()
        .clone();
    assert_eq!(
        kubo.cat(b["cid"].as_str().unwrap()).unwrap(),
        pattern(262_144 * 2 + 5)
    );
}

#[test]
fn ipfs_unreachable_is_a_network_error() {
    let d = tmp();
    let f = d.path().join("x");
    std::fs::write(&f, "x").unwrap();
    let url = format!("http://127.0.0.1:{}", closed_port());
    let (code, _, stderr) = publish(&["--ipfs", &url], &f);
    assert_eq!(code, 17, "{stderr}");
    assert!(stderr.contains("unreachable after 5 attempts"), "{stderr}");
}

/// A node that answers 5xx, then a wrong CID, then kubo's answer shape (`Size` as a string):
/// failure injection only, the round trip above uses the real node.
#[test]
fn ipfs_server_errors_and_wrong_cids_fail_loudly() {
    let d = tmp();
    let f = d.path().join("x");
    std::fs::write(&f, "x").unwrap();
    let (_, out, _) = run(gym().arg("cid").arg(&f));
    let x_cid = out.split_whitespace().next().unwrap().to_string();
    let kubo_answer = format!("{{\"Name\":\"x\",\"Hash\":\"{x_cid}\",\"Size\":\"9\"}}\n");
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}",
        server.server_addr().to_ip().unwrap().port()
    );
    let handle = std::thread::spawn(move || {
        for i in 0..8 {
            let Ok(mut rq) = server.recv() else { return };
            let mut body = Vec::new();
            let _ = std::io::Read::read_to_end(rq.as_reader(), &mut body);
            let resp = if i < 5 {
                tiny_http::Response::from_string(
                    r#"{"Message":"datastore broke","Code":0,"Type":"error"}"#,
                )
                .with_status_code(500)
            } else if i == 5 {
                tiny_http::Response::from_string(
                    r#"{"Message":"datastore broke","Code":0,"Type":"error"}"#,
                )
                .with_status_code(503)
            } else if i == 6 {
                tiny_http::Response::from_string(
                    "{\"Name\":\"x\",\"Hash\":\"QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH\",\"Size\":\"6\"}\n",
                )
            } else {
                tiny_http::Response::from_string(kubo_answer.clone())
            };
            let _ = rq.respond(resp);
        }
    });
    let (code, _, stderr) = publish(&["--ipfs", &url], &f);
    assert_eq!(code, 17, "{stderr}");
    assert!(
        stderr.contains("server error 500 after 5 attempts: datastore broke"),
        "{stderr}"
    );
    // 503 once (retried), then a CID that is not the file's.
    let (code, _, stderr) = publish(&["--ipfs", &url], &f);
    assert_eq!(code, 12, "{stderr}");
    assert!(
        stderr.contains("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"),
        "{stderr}"
    );
    assert!(stderr.contains("refusing"), "{stderr}");
    let (code, stdout, stderr) = publish(&["--ipfs", &url, "--json"], &f);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json(&stdout)["targets"][0]["node_size"], 9);
    handle.join().unwrap();
}

fn adapter(root: &Path) -> std::path::PathBuf {
    let dir = root.join("adapter");
    std::fs::create_dir_all(dir.join("shards")).unwrap();
    std::fs::create_dir_all(dir.join(".git")).unwrap();
    std::fs::write(dir.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    std::fs::write(
        dir.join("adapter_config.json"),
        r#"{"r": 8, "peft_type": "LORA"}"#,
    )
    .unwrap();
    std::fs::write(dir.join("README.md"), "# adapter\n").unwrap();
    std::fs::write(dir.join("adapter_model.safetensors"), pattern(300_000)).unwrap();
    std::fs::write(dir.join("shards/big.bin"), pattern((5 << 20) / 2)).unwrap();
    dir
}

fn hf(
    server: &HubServer,
    token: Option<&str>,
    dir: &Path,
    extra: &[&str],
) -> (i32, String, String) {
    let mut c = gym();
    c.arg("publish")
        .arg(dir)
        .args(["--hf", "me/adapter"])
        .args(extra);
    c.env("HF_ENDPOINT", &server.url)
        .env("GYM_RETRY_DELAY_MS", "1")
        .env_remove("HF_TOKEN");
    if let Some(t) = token {
        c.env("HF_TOKEN", t);
    }
    run(&mut c)
}

fn transfers(v: &serde_json::Value) -> Vec<(String, String, String)> {
    let hf = v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "hf")
        .unwrap();
    hf["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().into(),
                f["mode"].as_str().unwrap().into(),
                f["transfer"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[test]
fn hf_upload_regular_lfs_multipart_then_skip_existing() {
    let server = HubServer::start(TOKEN);
    let d = tmp();
    let dir = adapter(d.path());
    let (code, stdout, stderr) = hf(&server, Some(TOKEN), &dir, &["--json", "--private"]);
    assert_eq!(code, 0, "{stderr}\n{:?}", server.state().violations);
    assert!(
        !stdout.contains(TOKEN) && !stderr.contains(TOKEN),
        "the token was printed"
    );
    let v = json(&stdout);
    let hfv = &v["targets"][0];
    assert_eq!(hfv["created_repo"], true);
    assert_eq!(hfv["repo"], "me/adapter");
    assert_eq!(hfv["commit_oid"].as_str().unwrap().len(), 40);
    assert_eq!(
        transfers(&v),
        [
            (
                "README.md".to_string(),
                "regular".to_string(),
                "inline".to_string()
            ),
            (
                "adapter_config.json".into(),
                "regular".into(),
                "inline".into()
            ),
            (
                "adapter_model.safetensors".into(),
                "lfs".into(),
                "basic".into()
            ),
            ("shards/big.bin".into(), "lfs".into(), "multipart".into()),
        ]
    );
    {
        let st = server.state();
        assert!(st.violations.is_empty(), "{:?}", st.violations);
        let repo = &st.repos["me/adapter"];
        assert!(repo.private);
        assert_eq!(repo.files.len(), 4, ".git/ must not be uploaded");
        assert_eq!(repo.files["shards/big.bin"], pattern((5 << 20) / 2));
        assert_eq!(repo.files["adapter_model.safetensors"], pattern(300_000));
        assert_eq!(repo.files["README.md"], b"# adapter\n");
        assert_eq!(
            st.log
                .iter()
                .filter(|l| l.starts_with("PUT /s3/part/"))
                .count(),
            3
        );
    }
    // Second publish: the repository exists, LFS objects are skipped, a new commit is made.
    let before = server.state().log.len();
    let (code, stdout, stderr) = hf(&server, Some(TOKEN), &dir, &["--json"]);
    assert_eq!(code, 0, "{stderr}");
    let v = json(&stdout);
    assert_eq!(v["targets"][0]["created_repo"], false);
    let t = transfers(&v);
    assert_eq!(t[2].2, "skipped");
    assert_eq!(t[3].2, "skipped");
    let st = server.state();
    assert!(
        st.log[before..].iter().all(|l| !l.starts_with("PUT ")),
        "{:?}",
        &st.log[before..]
    );
    assert_eq!(st.repos["me/adapter"].commits.len(), 2);
}

#[test]
fn hf_auth_errors_are_clear_and_never_show_the_token() {
    let server = HubServer::start(TOKEN);
    let d = tmp();
    let dir = adapter(d.path());
    let (code, stdout, stderr) = hf(&server, Some("hf_wrong_secret_value"), &dir, &[]);
    assert_eq!(code, 18, "{stderr}");
    assert!(stderr.contains("authentication refused (401)"), "{stderr}");
    assert!(stderr.contains("Invalid credentials"), "{stderr}");
    assert!(stderr.contains("HF_TOKEN"), "{stderr}");
    assert!(!stderr.contains("hf_wrong_secret_value") && !stdout.contains("hf_wrong_secret_value"));
    let (code, _, stderr) = hf(&server, None, &dir, &[]);
    assert_eq!(code, 18, "{stderr}");
    assert!(stderr.contains("set HF_TOKEN"), "{stderr}");
    assert!(server.state().repos.is_empty());
}

#[test]
fn hf_server_errors_are_retried_then_reported() {
    let server = HubServer::start(TOKEN);
    let d = tmp();
    let dir = adapter(d.path());
    // Two 5xx on the commit and one on a multipart part: retried, the upload succeeds.
    server.fail("/commit/", 502, 2);
    server.fail("/s3/part/", 500, 1);
    let (code, _, stderr) = hf(&server, Some(TOKEN), &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(server.state().repos["me/adapter"].files.len(), 4);
    assert!(
        server.state().violations.is_empty(),
        "{:?}",
        server.state().violations
    );
    // A preupload that keeps failing: a network error naming the status and the server's words.
    server.fail("/preupload/", 503, 100);
    let (code, _, stderr) = hf(&server, Some(TOKEN), &dir, &[]);
    assert_eq!(code, 17, "{stderr}");
    assert!(
        stderr.contains("server error 503 after 5 attempts: injected failure"),
        "{stderr}"
    );
    // Another revision that does not exist: rejected, not retried.
    server.state().fail.clear();
    let (code, _, stderr) = hf(&server, Some(TOKEN), &dir, &["--revision", "dev"]);
    assert_eq!(code, 19, "{stderr}");
    assert!(stderr.contains("Revision not found"), "{stderr}");
}

#[test]
fn hf_forbidden_and_refused_objects_are_reported() {
    let server = HubServer::start(TOKEN);
    let d = tmp();
    let dir = adapter(d.path());
    server
        .state()
        .repos
        .insert("me/adapter".into(), Default::default());
    server.state().read_only.push("me/adapter".into());
    let (code, _, stderr) = hf(&server, Some(TOKEN), &dir, &[]);
    assert_eq!(code, 18, "{stderr}");
    assert!(stderr.contains("authentication refused (403)"), "{stderr}");
    assert!(stderr.contains("rights to create a commit"), "{stderr}");
    server.state().read_only.clear();
    server.state().lfs_error = Some((422, "Object too large for this repository".into()));
    let (code, _, stderr) = hf(&server, Some(TOKEN), &dir, &[]);
    assert_eq!(code, 19, "{stderr}");
    assert!(stderr.contains("422 Object too large"), "{stderr}");
    assert!(server.state().repos["me/adapter"].commits.is_empty());
}
