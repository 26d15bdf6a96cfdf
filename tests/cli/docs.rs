//! Generated docs are current; the clap definition is sound; `--help` snapshots.

use crate::common::*;

fn compare_dir(dir: &str, files: &[(String, Vec<u8>)]) {
    let root = repo().join(dir);
    let mut stale = Vec::new();
    for (name, bytes) in files {
        match std::fs::read(root.join(name)) {
            Ok(b) if &b == bytes => {}
            _ => stale.push(name.clone()),
        }
    }
    let on_disk: Vec<String> = std::fs::read_dir(&root)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    for f in on_disk {
        if !files.iter().any(|(n, _)| *n == f) {
            stale.push(format!("{f} (no longer generated)"));
        }
    }
    assert!(
        stale.is_empty(),
        "{dir}/ is stale: {stale:?}\nrun `cargo run --example gen-docs` and commit the result"
    );
}

#[test]
fn clap_definition_is_sound() {
    gym::cmd::command().debug_assert();
}

#[test]
fn man_pages_are_current() {
    compare_dir("man", &gym::cmd::docs::man_pages());
}

#[test]
fn completions_are_current() {
    compare_dir("completions", &gym::cmd::docs::completion_files());
}

/// Every (sub)command path, e.g. ["delta", "pack"].
fn command_paths(cmd: &clap::Command, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(prefix.clone());
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let mut p = prefix.clone();
        p.push(sub.get_name().to_string());
        command_paths(sub, p, out);
    }
}

#[test]
fn help_snapshots_are_current() {
    let mut paths = Vec::new();
    command_paths(&gym::cmd::command(), Vec::new(), &mut paths);
    let dir = repo().join("tests/snapshots/help");
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let mut stale = Vec::new();
    for p in &paths {
        let mut args = p.clone();
        args.push("--help".into());
        let (code, stdout, _) = run(gym().args(&args).env("COLUMNS", "100"));
        assert_eq!(code, 0, "gym {} --help failed", p.join(" "));
        let name = if p.is_empty() {
            "gym.txt".to_string()
        } else {
            format!("gym-{}.txt", p.join("-"))
        };
        let file = dir.join(&name);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&file, &stdout).unwrap();
        } else if std::fs::read_to_string(&file).ok().as_deref() != Some(stdout.as_str()) {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "--help output changed for {stale:?}\nreview, then run `UPDATE_SNAPSHOTS=1 cargo test help_snapshots` and commit"
    );
}

#[test]
fn completions_subcommand_prints_a_script() {
    let (code, stdout, _) = run(gym().args(["completions", "bash"]));
    assert_eq!(code, 0);
    assert!(
        stdout.contains("_gym()"),
        "bash completion function missing"
    );
}
