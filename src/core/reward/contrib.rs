//! Contributions files: per-node roles, stakes and metrics for what-if estimates, as JSON or CSV.
//! The same reader loads an epoch folder's roster (`nodes.json` / `nodes.csv`), where metrics
//! are not allowed because they come from signed records.
//!
//! JSON: `{"format": "gym-reward-contributions/1", "epoch": 3, "nodes": [{...}, ...]}` (`format`
//! and `epoch` optional). CSV: a header line naming the columns, then one line per node; empty
//! cells are absent values; lines starting with `#` are comments. Quoted cells are not supported.
//!
//! Fields: `node`, `role` (compute | validator | orchestrator), `stake` (tokens, decimal) are
//! required; the metrics (see [`super::Metric`]), `tokens` (for the FLOPs cap) and `excluded` (a
//! reason that makes the node ineligible) are optional.

use std::collections::HashSet;
use std::path::Path;

use super::{Inputs, METRICS, Metric, NodeInput, Params, RewardError, Role, amount, to_fixed};

pub const CONTRIBUTIONS_FORMAT: &str = "gym-reward-contributions/1";

/// Whether metric fields are accepted (what-if files) or rejected (epoch rosters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Contributions,
    Roster,
}

/// One record before conversion: field name → text.
struct RawRecord {
    label: String,
    fields: Vec<(String, RawValue)>,
}

enum RawValue {
    Number(serde_json::Number),
    Text(String),
}

impl RawValue {
    fn text(&self) -> String {
        match self {
            RawValue::Number(n) => n.to_string(),
            RawValue::Text(s) => s.clone(),
        }
    }
}

/// Reads a contributions file or roster; `.csv` files are CSV, anything else JSON.
pub fn load(
    path: &Path,
    p: &Params,
    mode: Mode,
    model_params: Option<u128>,
) -> Result<Inputs, RewardError> {
    let text = std::fs::read_to_string(path).map_err(|source| RewardError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let file = path.display().to_string();
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        parse_csv(&text, &file, p, mode, model_params)
    } else {
        parse_json(&text, &file, p, mode, model_params)
    }
}

pub fn parse_json(
    text: &str,
    file: &str,
    p: &Params,
    mode: Mode,
    model_params: Option<u128>,
) -> Result<Inputs, RewardError> {
    let rec_err = |record: &str, reason: String| RewardError::Record {
        file: file.to_string(),
        record: record.to_string(),
        reason,
    };
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| rec_err("document", format!("invalid JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| {
        rec_err(
            "document",
            "expected a JSON object with a `nodes` array".into(),
        )
    })?;
    let mut epoch = None;
    for (k, val) in obj {
        match k.as_str() {
            "format" => {
                let f = val.as_str().unwrap_or_default();
                if f != CONTRIBUTIONS_FORMAT {
                    return Err(RewardError::Format {
                        file: file.to_string(),
                        record: "document".into(),
                        found: val.to_string(),
                        expected: CONTRIBUTIONS_FORMAT,
                    });
                }
            }
            "epoch" => {
                epoch = Some(
                    val.as_u64()
                        .ok_or_else(|| rec_err("epoch", format!("{val} is not an epoch number")))?,
                )
            }
            "nodes" => {}
            other => return Err(rec_err("document", format!("unknown field {other:?}"))),
        }
    }
    let nodes = obj
        .get("nodes")
        .and_then(|n| n.as_array())
        .ok_or_else(|| rec_err("document", "missing `nodes` array".into()))?;
    let mut records = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let name = n
            .get("node")
            .and_then(|x| x.as_str())
            .map(|s| format!(" ({s:?})"))
            .unwrap_or_default();
        let label = format!("node #{}{name}", i + 1);
        let o = n
            .as_object()
            .ok_or_else(|| rec_err(&label, "expected a JSON object".into()))?;
        let mut fields = Vec::new();
        for (k, val) in o {
            let rv = match val {
                serde_json::Value::Number(num) => RawValue::Number(num.clone()),
                serde_json::Value::String(s) => RawValue::Text(s.clone()),
                serde_json::Value::Null => continue,
                other => {
                    return Err(rec_err(
                        &label,
                        format!("{k}: expected a number or string, got {other}"),
                    ));
                }
            };
            fields.push((k.clone(), rv));
        }
        records.push(RawRecord { label, fields });
    }
    convert(records, file, p, mode, model_params, epoch)
}

pub fn parse_csv(
    text: &str,
    file: &str,
    p: &Params,
    mode: Mode,
    model_params: Option<u128>,
) -> Result<Inputs, RewardError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let (hline, header) = lines.next().ok_or_else(|| RewardError::Record {
        file: file.to_string(),
        record: "header".into(),
        reason: "empty file (expected a header line: node,role,stake,...)".into(),
    })?;
    let columns: Vec<String> = header.split(',').map(|c| c.trim().to_string()).collect();
    let mut records = Vec::new();
    for (i, line) in lines {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let node = columns
            .iter()
            .position(|c| c == "node")
            .and_then(|k| cells.get(k))
            .copied()
            .unwrap_or("");
        let label = if node.is_empty() {
            format!("line {}", i + 1)
        } else {
            format!("line {} ({node:?})", i + 1)
        };
        if cells.len() != columns.len() {
            return Err(RewardError::Record {
                file: file.to_string(),
                record: label,
                reason: format!(
                    "{} cells, but the header (line {}) has {} columns",
                    cells.len(),
                    hline + 1,
                    columns.len()
                ),
            });
        }
        if line.contains('"') {
            return Err(RewardError::Record {
                file: file.to_string(),
                record: label,
                reason: "quoted cells are not supported".into(),
            });
        }
        let fields = columns
            .iter()
            .zip(&cells)
            .filter(|(_, v)| !v.is_empty())
            .map(|(c, v)| (c.clone(), RawValue::Text(v.to_string())))
            .collect();
        records.push(RawRecord { label, fields });
    }
    convert(records, file, p, mode, model_params, None)
}

fn convert(
    records: Vec<RawRecord>,
    file: &str,
    p: &Params,
    mode: Mode,
    model_params: Option<u128>,
    epoch: Option<u64>,
) -> Result<Inputs, RewardError> {
    let mut inputs = Inputs {
        epoch,
        ..Inputs::default()
    };
    let mut seen = HashSet::new();
    for r in records {
        let err = |reason: String| RewardError::Record {
            file: file.to_string(),
            record: r.label.clone(),
            reason,
        };
        let get = |name: &str| r.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        let mut keys = HashSet::new();
        for (k, _) in &r.fields {
            if !keys.insert(k.as_str()) {
                return Err(err(format!("field {k:?} appears twice")));
            }
            let known = matches!(k.as_str(), "node" | "role" | "stake" | "excluded")
                || (mode == Mode::Contributions && (k == "tokens" || Metric::parse(k).is_some()));
            if !known {
                let why = if mode == Mode::Roster && (k == "tokens" || Metric::parse(k).is_some()) {
                    " (in an epoch folder, metrics come from signed deltas, receipts and eval reports)"
                } else {
                    ""
                };
                return Err(err(format!("unknown field {k:?}{why}")));
            }
        }
        let node = get("node")
            .map(RawValue::text)
            .ok_or_else(|| err("missing field \"node\"".into()))?;
        if node.is_empty() || node.len() > 128 || node.chars().any(char::is_control) {
            return Err(err(format!(
                "node {node:?} must be 1 to 128 characters without control characters"
            )));
        }
        let role_text = get("role")
            .map(RawValue::text)
            .ok_or_else(|| err("missing field \"role\"".into()))?;
        let role = Role::parse(&role_text).ok_or_else(|| {
            err(format!(
                "unknown role {role_text:?} (expected compute, validator or orchestrator)"
            ))
        })?;
        let stake_text = get("stake")
            .map(RawValue::text)
            .ok_or_else(|| err("missing field \"stake\"".into()))?;
        let stake =
            amount::parse(&stake_text, p.decimals).map_err(|e| err(format!("stake: {e}")))?;
        let mut n = NodeInput::new(node.clone(), role, stake);
        for m in METRICS {
            let Some(v) = get(m.name()) else { continue };
            let x = parse_number(v).map_err(|e| err(format!("{}: {e}", m.name())))?;
            let fixed = to_fixed(x).map_err(|e| err(format!("{}: {e}", m.name())))?;
            if fixed < 0 && !m.may_be_negative() {
                return Err(err(format!("{}: {x} is negative", m.name())));
            }
            n.metrics[m.index()] = fixed;
        }
        if let Some(v) = get("excluded") {
            n.exclusions.push(v.text());
        }
        if let (Some(params), Some(t)) = (model_params, get("tokens")) {
            let tokens: u128 = t
                .text()
                .parse()
                .map_err(|_| err(format!("tokens: {:?} is not a whole number", t.text())))?;
            let fi = Metric::Flops.index();
            let cap = flops_cap(p, params, tokens);
            if n.metrics[fi] > cap {
                inputs.notes.push(format!(
                    "{}: flops capped from {} to {} ({} x {params} params x {tokens} tokens)",
                    node,
                    n.metrics[fi] / super::FIXED_POINT,
                    cap / super::FIXED_POINT,
                    p.flops_per_param_token
                ));
                n.metrics[fi] = cap;
            }
        }
        if !seen.insert(node.clone()) {
            return Err(RewardError::DuplicateNode {
                file: file.to_string(),
                node,
            });
        }
        inputs.nodes.push(n);
    }
    Ok(inputs)
}

/// The most FLOPs that `tokens` of training on a `params`-parameter model can take, in fixed
/// point: `flops_per_param_token × params × tokens × 10^6`, saturating.
pub fn flops_cap(p: &Params, params: u128, tokens: u128) -> i128 {
    u128::from(p.flops_per_param_token)
        .checked_mul(params)
        .and_then(|v| v.checked_mul(tokens))
        .and_then(|v| v.checked_mul(super::FIXED_POINT as u128))
        .and_then(|v| i128::try_from(v).ok())
        .unwrap_or(i128::MAX)
}

fn parse_number(v: &RawValue) -> Result<f64, String> {
    let t = v.text();
    let x: f64 = t
        .trim()
        .parse()
        .map_err(|_| format!("{t:?} is not a number"))?;
    if !x.is_finite() {
        return Err(format!("{t:?} is not a finite number"));
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::reward::Economics;

    fn params() -> Params {
        Economics::default().params("d").unwrap()
    }

    fn err_json(text: &str) -> String {
        parse_json(text, "c.json", &params(), Mode::Contributions, None)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn json_and_csv_agree() {
        let json = r#"{"format":"gym-reward-contributions/1","epoch":2,"nodes":[
            {"node":"a","role":"compute","stake":"10000","flops":1e18,"loss_improvement":-0.5},
            {"node":"v","role":"validator","stake":25000.5}]}"#;
        let csv = "# what-if\nnode,role,stake,flops,loss_improvement\na,compute,10000,1e18,-0.5\nv,validator,25000.5,,\n";
        let j = parse_json(json, "c.json", &params(), Mode::Contributions, None).unwrap();
        let c = parse_csv(csv, "c.csv", &params(), Mode::Contributions, None).unwrap();
        assert_eq!(j.nodes, c.nodes);
        assert_eq!(j.epoch, Some(2));
        assert_eq!(
            j.nodes[0].metrics[Metric::LossImprovement.index()],
            -500_000
        );
        assert_eq!(j.nodes[1].stake, 25_000_500_000_000_000_000_000);
    }

    #[test]
    fn bad_records_are_named() {
        let cases = [
            (
                r#"{"nodes":[{"role":"compute","stake":1}]}"#,
                "node #1: missing field \"node\"",
            ),
            (
                r#"{"nodes":[{"node":"a","role":"compute"}]}"#,
                "node #1 (\"a\"): missing field \"stake\"",
            ),
            (
                r#"{"nodes":[{"node":"a","role":"miner","stake":1}]}"#,
                "unknown role \"miner\"",
            ),
            (
                r#"{"nodes":[{"node":"a","role":"compute","stake":-5}]}"#,
                "(\"a\"): stake: amount \"-5\" is negative",
            ),
            (
                r#"{"nodes":[{"node":"a","role":"compute","stake":1,"flops":"NaN"}]}"#,
                "(\"a\"): flops: \"NaN\" is not a finite",
            ),
            (
                r#"{"nodes":[{"node":"a","role":"compute","stake":1,"flops":-1}]}"#,
                "flops: -1 is negative",
            ),
            (
                r#"{"nodes":[{"node":"a","role":"compute","stake":1,"flop":1}]}"#,
                "unknown field \"flop\"",
            ),
            (
                r#"{"format":"gym-reward-contributions/9","nodes":[]}"#,
                "not supported",
            ),
        ];
        for (text, want) in cases {
            let e = err_json(text);
            assert!(e.contains(want), "{text}: {e}");
            assert!(e.starts_with("c.json: "), "{e}");
        }
        let dup = err_json(
            r#"{"nodes":[{"node":"a","role":"compute","stake":1},{"node":"a","role":"compute","stake":1}]}"#,
        );
        assert!(dup.contains("\"a\" appears more than once"), "{dup}");
        let csv = parse_csv(
            "node,role,stake\na,compute\n",
            "c.csv",
            &params(),
            Mode::Contributions,
            None,
        )
        .unwrap_err();
        assert!(csv.to_string().contains("line 2 (\"a\"): 2 cells"), "{csv}");
        let nan = parse_csv(
            "node,role,stake,gpu_seconds\nb,compute,1,nan\n",
            "c.csv",
            &params(),
            Mode::Contributions,
            None,
        )
        .unwrap_err();
        assert!(
            nan.to_string().contains("line 2 (\"b\"): gpu_seconds"),
            "{nan}"
        );
    }

    #[test]
    fn roster_rejects_metrics() {
        let e = parse_json(
            r#"{"nodes":[{"node":"a","role":"compute","stake":1,"flops":5}]}"#,
            "n.json",
            &params(),
            Mode::Roster,
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("metrics come from signed"), "{e}");
    }

    #[test]
    fn flops_are_capped_by_tokens_and_params() {
        let text =
            r#"{"nodes":[{"node":"a","role":"compute","stake":1,"flops":1e12,"tokens":1000}]}"#;
        let i = parse_json(text, "c.json", &params(), Mode::Contributions, Some(1000)).unwrap();
        assert_eq!(
            i.nodes[0].metrics[Metric::Flops.index()],
            6_000_000 * 1_000_000
        );
        assert_eq!(i.notes.len(), 1);
    }
}
