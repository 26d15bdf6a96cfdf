//! Training curves: metrics JSON Lines in, a picture out. [`panels`] picks what to draw (one
//! panel per metric against `step`; the reward with its ±std band and per-function means;
//! metrics without values or that never change are left out) and [`draw`] draws them with
//! plotters as SVG or PNG. Nothing here prints or touches files.
//!
//! Each metrics row is a JSON object with a numeric `step` and any numeric metrics:
//! `{"step": 1, "loss": 0.1, "reward_mean": 0.3, "kl": 0.0}`. A metric that is missing or null
//! in a row is skipped there; a value of another type is an error naming the line.

use serde_json::{Map, Value};

use crate::core::error::{Classify, ErrorClass};

pub mod draw;
pub mod png;

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{origin}:{line}: invalid JSON: {message}")]
    Json {
        origin: String,
        line: usize,
        message: String,
    },
    #[error("{origin}:{line}: expected a JSON object")]
    NotObject { origin: String, line: usize },
    #[error("{origin}:{line}: `step` must be a number, found {found}")]
    Step {
        origin: String,
        line: usize,
        found: String,
    },
    #[error("{origin}:{line}: `{metric}` must be a number or null, found {found}")]
    Value {
        origin: String,
        line: usize,
        metric: String,
        found: String,
    },
    #[error("{origin}: no metrics rows")]
    Empty { origin: String },
    #[error("none of the metrics {wanted} has a value (the rows have: {available})")]
    NoData { wanted: String, available: String },
    #[error("no metrics to plot")]
    NoMetrics,
    #[error("drawing the plot: {0}")]
    Draw(String),
}

impl Classify for PlotError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Malformed
    }
}

/// One metrics row and the line it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub line: usize,
    pub step: f64,
    pub values: Map<String, Value>,
}

/// Parses metrics JSON Lines (blank lines skipped); `origin` names the input in errors.
pub fn parse_rows(text: &str, origin: &str) -> Result<Vec<Row>, PlotError> {
    let mut rows = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(raw).map_err(|e| PlotError::Json {
            origin: origin.to_string(),
            line,
            message: e.to_string(),
        })?;
        let Value::Object(values) = v else {
            return Err(PlotError::NotObject {
                origin: origin.to_string(),
                line,
            });
        };
        let step = match values.get("step") {
            Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
            other => {
                return Err(PlotError::Step {
                    origin: origin.to_string(),
                    line,
                    found: other.map_or("nothing".to_string(), short),
                });
            }
        };
        rows.push(Row { line, step, values });
    }
    if rows.is_empty() {
        return Err(PlotError::Empty {
            origin: origin.to_string(),
        });
    }
    Ok(rows)
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s
    }
}

/// The (step, value) points of one metric, in file order.
pub fn series(rows: &[Row], metric: &str, origin: &str) -> Result<Vec<(f64, f64)>, PlotError> {
    let mut pts = Vec::new();
    for r in rows {
        match r.values.get(metric) {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) => {
                if let Some(v) = n.as_f64().filter(|v| v.is_finite()) {
                    pts.push((r.step, v));
                }
            }
            Some(other) => {
                return Err(PlotError::Value {
                    origin: origin.to_string(),
                    line: r.line,
                    metric: metric.to_string(),
                    found: short(other),
                });
            }
        }
    }
    Ok(pts)
}

/// One panel: lines against `step`, and an optional shaded band (reward mean ± std).
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub title: String,
    pub lines: Vec<Line>,
    /// (step, low, high)
    pub band: Vec<(f64, f64, f64)>,
}

/// One named series of (step, value) points.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A metric that got no panel, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub metric: String,
    pub reason: String,
}

/// The default panels of `gym plot`: the reward (mean with its ±std band, and each reward
/// function when there are several), completion length, KL, gradient norm, learning rate, loss.
pub const DEFAULT_METRICS: [&str; 6] = [
    "reward_mean",
    "completion_len",
    "kl",
    "grad_norm",
    "lr",
    "loss",
];

/// The panels for `metrics`: a metric without values or whose values never change gets no
/// panel (it is listed in the second vector); `reward_mean` also draws `reward_std` as a band
/// and the per-function means of `rewards`.
pub fn panels(
    rows: &[Row],
    metrics: &[String],
    origin: &str,
) -> Result<(Vec<Panel>, Vec<Skipped>), PlotError> {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for m in metrics {
        let pts = series(rows, m, origin)?;
        let skip = |reason: String| Skipped {
            metric: m.clone(),
            reason,
        };
        if pts.is_empty() {
            skipped.push(skip("no values".into()));
            continue;
        }
        if m != "reward_mean" && constant(&pts) {
            skipped.push(skip(format!("constant at {}", pts[0].1)));
            continue;
        }
        let mut panel = Panel {
            title: m.clone(),
            lines: vec![Line {
                name: m.clone(),
                points: pts,
            }],
            band: Vec::new(),
        };
        if m == "reward_mean" {
            reward_extras(rows, origin, &mut panel)?;
        }
        out.push(panel);
    }
    if out.is_empty() {
        let mut available: Vec<String> = rows
            .iter()
            .flat_map(|r| r.values.iter())
            .filter(|(k, v)| k.as_str() != "step" && v.is_number())
            .map(|(k, _)| k.clone())
            .collect();
        available.sort();
        available.dedup();
        return Err(PlotError::NoData {
            wanted: metrics.join(", "),
            available: if available.is_empty() {
                "nothing".into()
            } else {
                available.join(", ")
            },
        });
    }
    Ok((out, skipped))
}

fn constant(pts: &[(f64, f64)]) -> bool {
    let (lo, hi) = pts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
    hi - lo <= 1e-12 * hi.abs().max(lo.abs()).max(1e-300)
}

/// The reward panel's std band and per-function lines (when there are two or more functions).
fn reward_extras(rows: &[Row], origin: &str, panel: &mut Panel) -> Result<(), PlotError> {
    let std = series(rows, "reward_std", origin)?;
    let mean = &panel.lines[0].points;
    panel.band = mean
        .iter()
        .zip(&std)
        .filter(|(m, s)| m.0 == s.0)
        .map(|(m, s)| (m.0, m.1 - s.1, m.1 + s.1))
        .collect();
    panel.title = if panel.band.is_empty() {
        "reward (mean)".into()
    } else {
        "reward (mean ± std)".into()
    };
    panel.lines[0].name = "mean".into();
    let mut names: Vec<String> = Vec::new();
    for r in rows {
        if let Some(Value::Object(m)) = r.values.get("rewards") {
            for k in m.keys() {
                if !names.contains(k) {
                    names.push(k.clone());
                }
            }
        }
    }
    if names.len() < 2 {
        return Ok(());
    }
    for name in names {
        let points = rows
            .iter()
            .filter_map(|r| {
                let v = r.values.get("rewards")?.get(&name)?.as_f64()?;
                v.is_finite().then_some((r.step, v))
            })
            .collect();
        panel.lines.push(Line { name, points });
    }
    Ok(())
}

/// A tick label: no more digits than the axis' span needs, exponents for very large or small
/// magnitudes, and a plain `0`.
pub fn tick_label(v: f64, span: f64) -> String {
    if v == 0.0 || v.abs() < span.abs() * 1e-9 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.1e}");
        return s.replace(".0e", "e");
    }
    let step = if span > 0.0 { span / 5.0 } else { a };
    let decimals = (1.0 - step.log10().floor()).clamp(0.0, 7.0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<Row> {
        parse_rows(text, "m.jsonl").unwrap()
    }

    #[test]
    fn series_skip_missing_and_null_values() {
        let r = rows(
            "{\"step\":1,\"kl\":0.5}\n\n{\"step\":2}\n{\"step\":3,\"kl\":null}\n{\"step\":4,\"kl\":1}\n",
        );
        assert_eq!(series(&r, "kl", "m").unwrap(), [(1.0, 0.5), (4.0, 1.0)]);
        assert_eq!(r[1].line, 3);
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("{\"step\":1}\n{\"step\":2,\n", "m.jsonl:2: invalid JSON"),
            ("{\"step\":1}\n[1]\n", "m.jsonl:2: expected a JSON object"),
            (
                "{\"step\":1}\n{\"kl\":1}\n",
                "m.jsonl:2: `step` must be a number, found nothing",
            ),
            (
                "{\"step\":\"1\"}\n",
                "m.jsonl:1: `step` must be a number, found \"1\"",
            ),
            ("\n", "m.jsonl: no metrics rows"),
        ];
        for (text, want) in cases {
            let e = parse_rows(text, "m.jsonl").unwrap_err().to_string();
            assert!(e.starts_with(want), "{text:?}: {e}");
        }
        let r = rows("{\"step\":1,\"kl\":1}\n{\"step\":2,\"kl\":\"high\"}\n");
        let e = panels(&r, &["kl".into()], "m.jsonl").unwrap_err();
        assert_eq!(
            e.to_string(),
            "m.jsonl:2: `kl` must be a number or null, found \"high\""
        );
        let e = panels(&r, &["loss".into()], "m.jsonl").unwrap_err();
        assert_eq!(
            e.to_string(),
            "none of the metrics loss has a value (the rows have: kl)"
        );
    }

    #[test]
    fn panels_skip_empty_and_constant_metrics_and_band_the_reward() {
        let r = rows(concat!(
            "{\"step\":1,\"reward_mean\":0.2,\"reward_std\":0.1,\"kl\":0,\"lr\":1e-5,",
            "\"rewards\":{\"math\":0.1,\"math_format\":0.5}}\n",
            "{\"step\":2,\"reward_mean\":0.4,\"reward_std\":0.2,\"kl\":0,\"lr\":5e-6,",
            "\"rewards\":{\"math\":0.3,\"math_format\":0.7}}\n"
        ));
        let want: Vec<String> = ["reward_mean", "kl", "lr", "grad_norm"]
            .map(String::from)
            .to_vec();
        let (p, skipped) = panels(&r, &want, "m").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].title, "reward (mean ± std)");
        assert_eq!(
            p[0].band,
            [
                (1.0, 0.1, 0.30000000000000004),
                (2.0, 0.2, 0.6000000000000001)
            ]
        );
        let names: Vec<&str> = p[0].lines.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["mean", "math", "math_format"]);
        assert_eq!(p[0].lines[2].points, [(1.0, 0.5), (2.0, 0.7)]);
        assert_eq!(p[1].title, "lr");
        assert_eq!(
            skipped,
            [
                Skipped {
                    metric: "kl".into(),
                    reason: "constant at 0".into()
                },
                Skipped {
                    metric: "grad_norm".into(),
                    reason: "no values".into()
                }
            ]
        );
    }

    #[test]
    fn tick_labels_are_short() {
        let cases = [
            (0.0, 1.0, "0"),
            (1e-17, 0.02, "0"),
            (0.25, 1.0, "0.25"),
            (0.2, 1.0, "0.2"),
            (1.0, 4.0, "1"),
            (0.004, 0.01, "0.004"),
            (120.0, 400.0, "120"),
            (0.00001, 0.00002, "1e-5"),
            (2.5e-6, 1e-5, "2.5e-6"),
            (123456.0, 1e6, "1.2e5"),
            (-0.5, 2.0, "-0.5"),
        ];
        for (v, span, want) in cases {
            assert_eq!(tick_label(v, span), want, "{v} over {span}");
        }
    }

    /// Both formats draw: the SVG names the font and every panel title, the PNG has the size
    /// `draw::size` gives.
    #[test]
    fn svg_and_png_are_drawn() {
        let r =
            rows("{\"step\":1,\"loss\":0.5,\"kl\":0.1}\n{\"step\":2,\"loss\":0.25,\"kl\":0.3}\n");
        let (p, _) = panels(&r, &["loss".into(), "kl".into()], "m").unwrap();
        let svg = draw::svg(&p, "run <1> & co").unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        assert!(svg.contains("font-family=\"DejaVu Sans, sans-serif\""));
        assert!(svg.contains("run &lt;1&gt; &amp; co"));
        assert!(svg.contains(">\nloss\n</text>") && svg.contains(">\nkl\n</text>"));
        let png = draw::png(&p, "t").unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
        assert_eq!((w, h), draw::size(2));
    }
}
