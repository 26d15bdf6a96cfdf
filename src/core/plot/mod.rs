//! Training curves: metrics JSON Lines in, a picture out (one panel per metric against `step`),
//! laid out once as a [`Scene`] and written as hand-written SVG ([`to_svg`]) or as PNG
//! ([`png::to_png`]). Nothing here prints or touches files.
//!
//! Each metrics row is a JSON object with a numeric `step` and any numeric metrics:
//! `{"step": 1, "loss": 0.1, "reward_mean": 0.3, "kl": 0.0}`. A metric that is missing or null
//! in a row is skipped there; a value of another type is an error naming the line.

use serde_json::{Map, Value};

use crate::core::error::{Classify, ErrorClass};

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

const WIDTH: f64 = 720.0;
const PANEL_H: f64 = 200.0;
const TOP: f64 = 40.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const GAP: f64 = 50.0;
const COLORS: [Rgb; 6] = [
    Rgb(0x1f, 0x77, 0xb4),
    Rgb(0xd6, 0x27, 0x28),
    Rgb(0x2c, 0xa0, 0x2c),
    Rgb(0x94, 0x67, 0xbd),
    Rgb(0xff, 0x7f, 0x0e),
    Rgb(0x17, 0xbe, 0xcf),
];
const FRAME: Rgb = Rgb(0x88, 0x88, 0x88);
const GRID: Rgb = Rgb(0xee, 0xee, 0xee);
const INK: Rgb = Rgb(0, 0, 0);
const MUTED: Rgb = Rgb(0x55, 0x55, 0x55);
const WHITE: Rgb = Rgb(0xff, 0xff, 0xff);

/// A colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl std::fmt::Display for Rgb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

/// Where a text's `x` is: its start, middle or end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

/// One drawing instruction, in picture coordinates (pixels, y down; a text's `y` is its
/// baseline). The same scene becomes SVG ([`svg`]) or pixels (`plot::png`).
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// A panel begins (SVG: a `<g>` named after the metric).
    Group(String),
    EndGroup,
    Rect {
        x: f64,
        y: f64,
        w: f64,
        h: f64,
        fill: Option<Rgb>,
        stroke: Option<Rgb>,
    },
    Line {
        x1: f64,
        y1: f64,
        x2: f64,
        y2: f64,
        color: Rgb,
    },
    Polyline {
        points: Vec<(f64, f64)>,
        color: Rgb,
    },
    Dot {
        x: f64,
        y: f64,
        color: Rgb,
    },
    Text {
        x: f64,
        y: f64,
        text: String,
        anchor: Anchor,
        /// Font size in pixels.
        size: f64,
        color: Rgb,
    },
}

/// A picture: its size and shapes, back to front.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    pub width: f64,
    pub height: f64,
    pub shapes: Vec<Shape>,
}

/// Lays out one panel per metric (a metric without values gets an empty panel saying so);
/// fails when no metric has any value. `origin` names the input in errors.
pub fn scene(
    rows: &[Row],
    metrics: &[String],
    title: &str,
    origin: &str,
) -> Result<Scene, PlotError> {
    if metrics.is_empty() {
        return Err(PlotError::NoMetrics);
    }
    let all: Vec<Vec<(f64, f64)>> = metrics
        .iter()
        .map(|m| series(rows, m, origin))
        .collect::<Result<_, _>>()?;
    if all.iter().all(Vec::is_empty) {
        let mut keys: Vec<&str> = rows
            .iter()
            .flat_map(|r| r.values.keys().map(String::as_str))
            .filter(|k| *k != "step")
            .collect();
        keys.sort_unstable();
        keys.dedup();
        return Err(PlotError::NoData {
            wanted: metrics.join(", "),
            available: if keys.is_empty() {
                "nothing but step".into()
            } else {
                keys.join(", ")
            },
        });
    }
    let height = TOP + metrics.len() as f64 * (PANEL_H + GAP);
    let mut shapes = vec![
        Shape::Rect {
            x: 0.0,
            y: 0.0,
            w: WIDTH,
            h: height,
            fill: Some(WHITE),
            stroke: None,
        },
        Shape::Text {
            x: WIDTH / 2.0,
            y: 24.0,
            text: title.to_string(),
            anchor: Anchor::Middle,
            size: 15.0,
            color: INK,
        },
    ];
    for (i, (metric, pts)) in metrics.iter().zip(&all).enumerate() {
        let y0 = TOP + i as f64 * (PANEL_H + GAP) + 10.0;
        panel(&mut shapes, metric, pts, y0, COLORS[i % COLORS.len()]);
    }
    Ok(Scene {
        width: WIDTH,
        height,
        shapes,
    })
}

fn text(x: f64, y: f64, text: String, anchor: Anchor, color: Rgb) -> Shape {
    Shape::Text {
        x,
        y,
        text,
        anchor,
        size: 11.0,
        color,
    }
}

fn panel(s: &mut Vec<Shape>, metric: &str, pts: &[(f64, f64)], y0: f64, color: Rgb) {
    let (x_left, x_right) = (LEFT, WIDTH - RIGHT);
    let (y_top, y_bottom) = (y0 + 14.0, y0 + PANEL_H - 20.0);
    s.push(Shape::Group(metric.to_string()));
    s.push(Shape::Text {
        x: x_left,
        y: y0 + 8.0,
        text: metric.to_string(),
        anchor: Anchor::Start,
        size: 13.0,
        color: INK,
    });
    if pts.is_empty() {
        s.push(Shape::Rect {
            x: x_left,
            y: y_top,
            w: x_right - x_left,
            h: y_bottom - y_top,
            fill: None,
            stroke: Some(FRAME),
        });
        s.push(text(
            (x_left + x_right) / 2.0,
            (y_top + y_bottom) / 2.0,
            "no data".into(),
            Anchor::Middle,
            FRAME,
        ));
        s.push(Shape::EndGroup);
        return;
    }
    let (xs, ys) = (
        ticks(pts.iter().map(|p| p.0)),
        ticks(pts.iter().map(|p| p.1)),
    );
    let sx = |x: f64| x_left + (x - xs.lo) / (xs.hi - xs.lo) * (x_right - x_left);
    let sy = |y: f64| y_bottom - (y - ys.lo) / (ys.hi - ys.lo) * (y_bottom - y_top);
    for &t in &ys.values {
        let y = sy(t);
        s.push(Shape::Line {
            x1: x_left,
            y1: y,
            x2: x_right,
            y2: y,
            color: GRID,
        });
        s.push(text(
            x_left - 5.0,
            y + 4.0,
            label(t, ys.step),
            Anchor::End,
            INK,
        ));
    }
    for &t in &xs.values {
        let x = sx(t);
        s.push(Shape::Line {
            x1: x,
            y1: y_bottom,
            x2: x,
            y2: y_bottom + 4.0,
            color: FRAME,
        });
        s.push(text(
            x,
            y_bottom + 16.0,
            label(t, xs.step),
            Anchor::Middle,
            INK,
        ));
    }
    s.push(Shape::Rect {
        x: x_left,
        y: y_top,
        w: x_right - x_left,
        h: y_bottom - y_top,
        fill: None,
        stroke: Some(FRAME),
    });
    s.push(text(
        x_right,
        y_bottom + 30.0,
        "step".into(),
        Anchor::End,
        MUTED,
    ));
    s.push(Shape::Polyline {
        points: pts.iter().map(|&(x, y)| (sx(x), sy(y))).collect(),
        color,
    });
    if let [(x, y)] = pts {
        s.push(Shape::Dot {
            x: sx(*x),
            y: sy(*y),
            color,
        });
    }
    s.push(Shape::EndGroup);
}

/// The scene as SVG text.
pub fn to_svg(scene: &Scene) -> String {
    let (w, h) = (scene.width, scene.height);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"11\">\n"
    );
    let paint = |c: Option<Rgb>| c.map_or("none".to_string(), |c| c.to_string());
    for shape in &scene.shapes {
        let line = match shape {
            Shape::Group(name) => {
                format!("<g class=\"panel\" data-metric=\"{}\">", escape(name))
            }
            Shape::EndGroup => "</g>".to_string(),
            Shape::Rect {
                x,
                y,
                w,
                h,
                fill,
                stroke,
            } => format!(
                "<rect x=\"{x:.2}\" y=\"{y:.2}\" width=\"{w:.2}\" height=\"{h:.2}\" fill=\"{}\" stroke=\"{}\"/>",
                paint(*fill),
                paint(*stroke)
            ),
            Shape::Line {
                x1,
                y1,
                x2,
                y2,
                color,
            } => format!(
                "<line x1=\"{x1:.2}\" y1=\"{y1:.2}\" x2=\"{x2:.2}\" y2=\"{y2:.2}\" stroke=\"{color}\"/>"
            ),
            Shape::Polyline { points, color } => {
                let pts: Vec<String> = points
                    .iter()
                    .map(|(x, y)| format!("{x:.2},{y:.2}"))
                    .collect();
                format!(
                    "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>",
                    pts.join(" ")
                )
            }
            Shape::Dot { x, y, color } => {
                format!("<circle cx=\"{x:.2}\" cy=\"{y:.2}\" r=\"3\" fill=\"{color}\"/>")
            }
            Shape::Text {
                x,
                y,
                text,
                anchor,
                size,
                color,
            } => {
                let anchor = match anchor {
                    Anchor::Start => "start",
                    Anchor::Middle => "middle",
                    Anchor::End => "end",
                };
                format!(
                    "<text x=\"{x:.2}\" y=\"{y:.2}\" text-anchor=\"{anchor}\" font-size=\"{size}\" fill=\"{color}\">{}</text>",
                    escape(text)
                )
            }
        };
        s.push_str(&line);
        s.push('\n');
    }
    s.push_str("</svg>\n");
    s
}

/// [`scene`] drawn as SVG.
pub fn svg(
    rows: &[Row],
    metrics: &[String],
    title: &str,
    origin: &str,
) -> Result<String, PlotError> {
    Ok(to_svg(&scene(rows, metrics, title, origin)?))
}

/// An axis: its range (a multiple of `step` at both ends) and its tick values.
#[derive(Debug, PartialEq)]
pub struct Ticks {
    pub lo: f64,
    pub hi: f64,
    pub step: f64,
    pub values: Vec<f64>,
}

/// About five ticks at 1, 2 or 5 × 10^k that cover the data.
pub fn ticks(data: impl Iterator<Item = f64>) -> Ticks {
    let (mut lo, mut hi) = data.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo <= f64::EPSILON * hi.abs().max(lo.abs()).max(1.0) {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo, hi) = (lo - pad, hi + pad);
    }
    let rough = (hi - lo) / 5.0;
    let mag = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&st| st >= rough)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).floor();
    let last = (hi / step).ceil();
    let values: Vec<f64> = (0..=(last - first) as i64)
        .map(|k| (first + k as f64) * step)
        .collect();
    Ticks {
        lo: first * step,
        hi: last * step,
        step,
        values,
    }
}

/// A tick label with as many decimals as the tick step needs.
fn label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    let v = if v.abs() < step * 1e-9 { 0.0 } else { v };
    if v != 0.0 && (v.abs() >= 1e6 || v.abs() < 1e-4) {
        return format!("{v:.1e}");
    }
    format!("{v:.decimals$}")
}

/// Escapes text for SVG content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<Row> {
        parse_rows(text, "m.jsonl").unwrap()
    }

    #[test]
    fn ticks_are_round_and_cover_the_data() {
        let t = ticks([0.13, 0.87].into_iter());
        assert_eq!(t.step, 0.2);
        assert!(t.lo <= 0.13 && t.hi >= 0.87);
        assert_eq!(t.values.len(), 6);
        let labels: Vec<String> = t.values.iter().map(|&v| label(v, t.step)).collect();
        assert_eq!(labels, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let t = ticks([1.0, 100.0].into_iter());
        assert_eq!((t.lo, t.hi, t.step), (0.0, 100.0, 20.0));
        let t = ticks([-3.0, 7.0].into_iter());
        assert_eq!((t.lo, t.hi, t.step), (-4.0, 8.0, 2.0));
        // A flat series still gets a range.
        let t = ticks([5.0, 5.0].into_iter());
        assert!(t.lo < 5.0 && t.hi > 5.0);
        let t = ticks([0.0].into_iter());
        assert!(t.lo < 0.0 && t.hi > 0.0);
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
        let e = svg(&r, &["kl".into()], "t", "m.jsonl").unwrap_err();
        assert_eq!(
            e.to_string(),
            "m.jsonl:2: `kl` must be a number or null, found \"high\""
        );
        let e = svg(&r, &["loss".into()], "t", "m.jsonl").unwrap_err();
        assert_eq!(
            e.to_string(),
            "none of the metrics loss has a value (the rows have: kl)"
        );
    }

    #[test]
    fn svg_has_a_panel_and_polyline_per_metric() {
        let r = rows(
            "{\"step\":1,\"loss\":0.5,\"kl\":0}\n{\"step\":2,\"loss\":0.25}\n{\"step\":3,\"loss\":0.1,\"kl\":0.01}\n",
        );
        let metrics = ["loss".to_string(), "kl".to_string(), "lr".to_string()];
        let s = svg(&r, &metrics, "run <a&b>", "m").unwrap();
        assert!(s.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(s.contains(">run &lt;a&amp;b&gt;</text>"));
        assert_eq!(s.matches("<g class=\"panel\"").count(), 3);
        let polylines: Vec<usize> = s
            .lines()
            .filter(|l| l.starts_with("<polyline"))
            .map(|l| {
                l.split("points=\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap()
                    .split(' ')
                    .count()
            })
            .collect();
        assert_eq!(polylines, [3, 2]);
        assert!(s.contains(">no data</text>"));
    }

    #[test]
    fn escape_covers_markup_and_control_characters() {
        assert_eq!(escape("a<b>&\"'\u{1}"), "a&lt;b&gt;&amp;&quot;&#39; ");
    }
}
