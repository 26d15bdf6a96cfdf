//! `gym keygen` and `gym key show`, through the real binary.

use crate::common::*;

#[test]
fn keygen_writes_private_key_0600_and_never_overwrites() {
    let d = tmp();
    let k = d.path().join("k.pem");
    let (code, stdout, _) = run(gym().args(["keygen", "-o"]).arg(&k));
    assert_eq!(code, 0);
    assert!(stdout.contains("worker id:  gym1"), "{stdout}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&k).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let before = std::fs::read(&k).unwrap();
    let (code, _, stderr) = run(gym().args(["keygen", "-o"]).arg(&k));
    assert_eq!(code, 4, "existing key must not be replaced: {stderr}");
    assert!(
        stderr.contains("already exists") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&k).unwrap(), before, "key file untouched");
    let (code, _, _) = run(gym().args(["keygen", "--force", "-o"]).arg(&k));
    assert_eq!(code, 0);
    assert_ne!(std::fs::read(&k).unwrap(), before, "--force replaced it");
    // No temporary files left behind.
    let names: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn openssl_reads_the_key_and_prints_the_same_public_key() {
    let d = tmp();
    let k = d.path().join("k.pem");
    assert_eq!(run(gym().args(["keygen", "--pq", "-o"]).arg(&k)).0, 0);
    let out = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&k)
        .output()
        .expect("openssl must be installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "openssl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, gym_pem, _) = run(gym().args(["key", "show", "--pem"]).arg(&k));
    assert_eq!(code, 0);
    assert_eq!(String::from_utf8_lossy(&out.stdout), gym_pem);
}

#[test]
fn key_show_json_and_hybrid() {
    let d = tmp();
    let k = d.path().join("k.pem");
    let (_, keygen_json, _) = run(gym().args(["keygen", "--pq", "--json", "-o"]).arg(&k));
    let (code, stdout, _) = run(gym().args(["key", "show", "--json"]).arg(&k));
    assert_eq!(code, 0);
    assert_eq!(keygen_json, stdout, "keygen and show agree");
    let v = json(&stdout);
    assert_eq!(v["format"], "gym-key/1");
    let id = v["worker_id"].as_str().unwrap();
    assert!(id.starts_with("gym1") && id.len() == 24, "{id}");
    assert_eq!(v["ed25519"].as_str().unwrap().len(), 44);
    let pq = v["ml_dsa_87"].as_str().expect("hybrid key has ML-DSA-87");
    assert_eq!(gym::core::keys::unb64(pq).unwrap().len(), 2592);
    // The same key gives the same id every time; another key another id.
    let k2 = d.path().join("k2.pem");
    let (_, other, _) = run(gym().args(["keygen", "--json", "-o"]).arg(&k2));
    assert_ne!(json(&other)["worker_id"], v["worker_id"]);
    assert!(json(&other)["ml_dsa_87"].is_null());
}

#[test]
fn bad_key_files_are_refused_clearly() {
    let d = tmp();
    let k = d.path().join("garbage.pem");
    std::fs::write(&k, "hello").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let (code, _, stderr) = run(gym().args(["key", "show"]).arg(&k));
    assert_eq!(code, 10, "{stderr}");
    assert!(
        stderr.contains("garbage.pem") && stderr.contains("PRIVATE KEY"),
        "{stderr}"
    );

    let (code, _, stderr) = run(gym()
        .args(["key", "show"])
        .arg(d.path().join("missing.pem")));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("missing.pem"), "{stderr}");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let k = d.path().join("open.pem");
        assert_eq!(run(gym().args(["keygen", "-o"]).arg(&k)).0, 0);
        std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (code, _, stderr) = run(gym().args(["key", "show"]).arg(&k));
        assert_eq!(code, 15, "{stderr}");
        assert!(stderr.contains("chmod 600"), "{stderr}");
    }
}
