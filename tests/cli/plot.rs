//! `gym plot`: metrics JSON Lines in, SVG or PNG out (plotters, DejaVu Sans).

use std::path::Path;

use crate::common::*;

/// Rows shaped like `gym train`'s metrics: `kl` missing on one row and null on another.
fn metrics_file(dir: &Path) -> std::path::PathBuf {
    let mut text = String::new();
    for step in 1..=12 {
        let kl = match step {
            4 => String::new(),
            7 => ",\"kl\":null".to_string(),
            _ => format!(",\"kl\":{}", 0.001 * step as f64),
        };
        text.push_str(&format!(
            "{{\"step\":{step},\"loss\":{},\"reward_mean\":{},\"reward_std\":0.1{kl},\"clip_frac\":0.0,\
             \"grad_norm\":0.5,\"completion_len\":31.5,\"tokens_per_s\":120.0,\"step_time_s\":0.4,\"lr\":0.001}}\n",
            1.0 / step as f64,
            0.05 * step as f64
        ));
        if step == 6 {
            text.push('\n'); // blank lines are skipped
        }
    }
    let p = dir.join("metrics.jsonl");
    std::fs::write(&p, text).unwrap();
    p
}

/// The number of points of each `<polyline>` with more than two points (the data lines; axes,
/// ticks and legend samples have two), in document order.
fn polylines(svg: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut rest = svg;
    while let Some(p) = rest.find("<polyline") {
        rest = &rest[p..];
        let end = rest.find("/>").expect("polyline closes");
        let tag = &rest[..end];
        let pts = tag
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let pairs: Vec<&str> = pts.split_whitespace().collect();
        for pair in &pairs {
            let (x, y) = pair.split_once(',').unwrap();
            x.parse::<f64>().unwrap();
            y.parse::<f64>().unwrap();
        }
        if pairs.len() > 2 {
            out.push(pairs.len());
        }
        rest = &rest[end..];
    }
    out
}

/// Every `<` opens a tag that closes, and opening/closing element names pair up.
fn assert_well_formed(svg: &str) {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg;
    while let Some(p) = rest.find('<') {
        rest = &rest[p + 1..];
        let end = rest.find('>').expect("tag closes");
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
        } else if !tag.ends_with('/') {
            let name = tag.split_whitespace().next().unwrap();
            stack.push(name.to_string());
        }
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    assert!(!svg.contains("&&"), "unescaped ampersand");
}

#[test]
fn draws_the_default_panels_and_skips_constant_ones() {
    let dir = tmp();
    let input = metrics_file(dir.path());
    let out = dir.path().join("curves.svg");
    let (code, stdout, stderr) = run(gym()
        .args(["plot", "--json", "--title", "run <1> & co", "-o"])
        .arg(&out)
        .arg(&input));
    assert_eq!(code, 0, "{stderr}");
    let v = json(&stdout);
    assert_eq!(v["format"], "gym-plot/2");
    assert_eq!(v["rows"], 12);
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(svg.starts_with("<svg width=\"1200\""), "{}", &svg[..60]);
    assert_well_formed(&svg);
    assert!(svg.contains("run &lt;1&gt; &amp; co"));
    assert!(svg.contains("font-family=\"DejaVu Sans, sans-serif\""));
    // Default metrics: reward_mean (with its std band), completion_len, kl, grad_norm, lr,
    // loss; completion_len, grad_norm and lr never change; kl lacks two rows.
    let titles: Vec<&str> = v["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["reward (mean ± std)", "kl", "loss"]);
    assert_eq!(v["panels"][0]["band"], 12);
    assert_eq!(svg.matches("<polygon").count(), 1, "one std band");
    assert_eq!(polylines(&svg), [12, 10, 12]);
    let skipped: Vec<&str> = v["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        skipped,
        ["constant at 31.5", "constant at 0.5", "constant at 0.001"]
    );
    // readable ticks: no run of zeros like the old `00000000` label
    let labels: Vec<&str> = svg
        .split("</text>")
        .filter_map(|t| t.rsplit_once('>').map(|(_, label)| label.trim()))
        .filter(|l| !l.is_empty())
        .collect();
    assert!(
        labels.contains(&"step") && labels.contains(&"0"),
        "{labels:?}"
    );
    assert!(
        labels.iter().all(|l| !l.contains("0000") && l.len() <= 24),
        "{labels:?}"
    );

    let chosen = dir.path().join("two.svg");
    let (code, _, stderr) = run(gym()
        .args(["plot", "--metrics", "tokens_per_s,kl,missing,loss", "-o"])
        .arg(&chosen)
        .arg(&input));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("no panel for missing: no values"),
        "{stderr}"
    );
    assert!(
        stderr.contains("no panel for tokens_per_s: constant at 120"),
        "{stderr}"
    );
    let svg = std::fs::read_to_string(&chosen).unwrap();
    assert_well_formed(&svg);
    assert_eq!(polylines(&svg), [10, 12]);
}

#[test]
fn refuses_to_overwrite_without_force() {
    let dir = tmp();
    let input = metrics_file(dir.path());
    let out = dir.path().join("curves.svg");
    std::fs::write(&out, "keep me").unwrap();
    let (code, _, stderr) = run(gym().args(["plot", "-o"]).arg(&out).arg(&input));
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep me");
    let (code, _, stderr) = run(gym().args(["plot", "--force", "-o"]).arg(&out).arg(&input));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        polylines(&std::fs::read_to_string(&out).unwrap()),
        [12, 10, 12]
    );
}

#[test]
fn bad_input_names_the_line() {
    let dir = tmp();
    let input = dir.path().join("m.jsonl");
    let out = dir.path().join("c.svg");
    std::fs::write(&input, "{\"step\":1,\"loss\":1}\n{\"step\":2,\"loss\":\n").unwrap();
    let (code, _, stderr) = run(gym().args(["plot", "-o"]).arg(&out).arg(&input));
    assert_eq!(code, 10, "{stderr}");
    assert!(stderr.contains("m.jsonl:2: invalid JSON"), "{stderr}");
    assert!(!exists(&out));

    std::fs::write(
        &input,
        "{\"step\":1,\"loss\":1}\n\n{\"step\":3,\"loss\":\"x\"}\n",
    )
    .unwrap();
    let (code, _, stderr) = run(gym()
        .args(["plot", "--metrics", "loss", "-o"])
        .arg(&out)
        .arg(&input));
    assert_eq!(code, 10, "{stderr}");
    assert!(
        stderr.contains("m.jsonl:3: `loss` must be a number or null, found \"x\""),
        "{stderr}"
    );
    assert!(!exists(&out));
}

#[test]
fn writes_a_png() {
    let dir = tmp();
    let input = metrics_file(dir.path());
    let png = dir.path().join("curves.PNG");
    let (code, _, stderr) = run(gym()
        .args(["plot", "--metrics", "loss,kl", "-o"])
        .arg(&png)
        .arg(&input));
    assert_eq!(code, 0, "{stderr}");
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&bytes[12..16], b"IHDR");
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    // 1200 px wide, one row of two panels under the title strip: the SVG's size.
    let svg_out = dir.path().join("curves.svg");
    let (code, _, stderr) = run(gym()
        .args(["plot", "--metrics", "loss,kl", "-o"])
        .arg(&svg_out)
        .arg(&input));
    assert_eq!(code, 0, "{stderr}");
    let svg = std::fs::read_to_string(&svg_out).unwrap();
    let attr = |name: &str| -> u32 {
        svg.split(&format!(" {name}=\""))
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!((w, h), (attr("width"), attr("height")));
    assert_eq!(w, 1200);
}

#[test]
fn other_extensions_and_missing_input_are_refused() {
    let dir = tmp();
    let input = metrics_file(dir.path());
    let pdf = dir.path().join("c.pdf");
    let (code, _, stderr) = run(gym().args(["plot", "-o"]).arg(&pdf).arg(&input));
    assert_eq!(code, 11, "{stderr}");
    assert!(stderr.contains("writes .svg or .png"), "{stderr}");
    assert!(!exists(&pdf));
    let (code, _, stderr) = run(gym()
        .args(["plot", "-o"])
        .arg(dir.path().join("c.svg"))
        .arg(dir.path().join("nope.jsonl")));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("nope.jsonl"), "{stderr}");
}
