//! Scorer: built-in scores of a completion and an external scorer process.
//!
//! A reward is a weighted sum of components. On the command line each component is
//! `KIND[:ARG][@WEIGHT]` (weight 1 by default; a trailing `@NUMBER` is always the weight):
//!
//! | kind | value |
//! |---|---|
//! | `exact` | 1 if the final answer extracted from the completion equals the example's `answer` |
//! | `regex:PAT` | 1 if PAT matches anywhere in the completion, else 0 |
//! | `coverage:PAT` | fraction of the completion's characters inside non-overlapping matches of PAT |
//! | `length:TARGET` | −\|chars − TARGET\| / TARGET, clamped to [−1, 0] |
//! | `format[:PAT]` | 1 if the completion is `<think>…</think>` then a non-empty answer (or matches PAT) |
//! | `cmd:COMMAND` | the number the external scorer prints for the sample |
//! | `math` | 1 if the completion's final number equals the answer's (GSM8K rules, see `math.rs`) |
//! | `math_format` | 1 if the completion states its answer as `#### N` or `\boxed{N}` |
//!
//! In a TOML settings file the same specs are tables whose parameters sit next to `kind`:
//! ```toml
//! [[reward]]
//! kind = "coverage"
//! pattern = "[0-9]"
//! weight = 0.5
//!
//! [[reward]]
//! kind = "cmd"
//! command = "python3 score.py"
//! timeout_s = 60
//! ```
//!
//! The external scorer (`cmd`) runs once per [`Scorer::score`] call as `sh -c COMMAND`. Its
//! stdin gets one JSON object per sample and line, `{"prompt", "completion", "answer", ...extra}`
//! (`answer` is null when the example has none); it must print exactly one finite number per
//! line, in the same order, and exit 0 within the timeout (600 s by default).

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::{Map, Value};

use crate::core::error::{Classify, ErrorClass};
use crate::core::train::data::Example;
use crate::core::train::math;

/// The external scorer's time limit when the spec gives none.
pub const DEFAULT_CMD_TIMEOUT_S: f64 = 600.0;

/// How much of a failed scorer's stderr an error quotes.
const STDERR_TAIL: usize = 2000;

#[derive(Debug, thiserror::Error)]
pub enum ScoringError {
    #[error("bad reward spec {spec:?}: {reason}")]
    Spec { spec: String, reason: String },
    #[error("no reward given (for example `--reward exact` or `--reward coverage:[0-9]`)")]
    NoSpecs,
    #[error("reward {kind}: invalid pattern {pattern:?}: {message}")]
    Pattern {
        kind: &'static str,
        pattern: String,
        message: String,
    },
    #[error("reward exact: sample {index} has no `answer` (prompt {prompt:?})")]
    MissingAnswer { index: usize, prompt: String },
    #[error("reward scorer `{command}`: could not start: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("reward scorer `{command}`: {status}{}", stderr_suffix(.stderr))]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("reward scorer `{command}`: no answer within {seconds} s; killed{}", stderr_suffix(.stderr))]
    Timeout {
        command: String,
        seconds: f64,
        stderr: String,
    },
    #[error(
        "reward scorer `{command}`: printed {got} lines for {want} samples (one number per line expected){}",
        stderr_suffix(.stderr)
    )]
    Count {
        command: String,
        got: usize,
        want: usize,
        stderr: String,
    },
    #[error("reward scorer `{command}`: output line {line}: {value:?} is {problem}{}", stderr_suffix(.stderr))]
    BadValue {
        command: String,
        line: usize,
        value: String,
        problem: &'static str,
        stderr: String,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.trim().is_empty() {
        String::new()
    } else {
        format!("; stderr: {}", stderr.trim_end())
    }
}

impl Classify for ScoringError {
    fn class(&self) -> ErrorClass {
        match self {
            ScoringError::Spec { .. }
            | ScoringError::NoSpecs
            | ScoringError::Pattern { .. }
            | ScoringError::MissingAnswer { .. } => ErrorClass::Malformed,
            ScoringError::Spawn { .. } => ErrorClass::Io,
            _ => ErrorClass::Training,
        }
    }
}

/// One sample to score: a completion of a prompt.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    pub prompt: &'a str,
    pub completion: &'a str,
    pub answer: Option<&'a str>,
    pub extra: &'a Map<String, Value>,
}

impl<'a> Sample<'a> {
    /// A completion of a training example.
    pub fn of(example: &'a Example, completion: &'a str) -> Self {
        Sample {
            prompt: &example.prompt,
            completion,
            answer: example.answer.as_deref(),
            extra: &example.extra,
        }
    }
}

/// What a reward component computes; the TOML form is internally tagged by `kind`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ScoreKind {
    Exact,
    Math,
    #[serde(rename = "math_format")]
    MathFormat,
    Regex {
        pattern: String,
    },
    Coverage {
        pattern: String,
    },
    Length {
        target: u64,
    },
    Format {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pattern: Option<String>,
    },
    Cmd {
        command: String,
        /// Seconds before the scorer is killed (default 600).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_s: Option<f64>,
    },
}

impl ScoreKind {
    pub fn name(&self) -> &'static str {
        match self {
            ScoreKind::Exact => "exact",
            ScoreKind::Math => "math",
            ScoreKind::MathFormat => "math_format",
            ScoreKind::Regex { .. } => "regex",
            ScoreKind::Coverage { .. } => "coverage",
            ScoreKind::Length { .. } => "length",
            ScoreKind::Format { .. } => "format",
            ScoreKind::Cmd { .. } => "cmd",
        }
    }

    fn arg(&self) -> Option<String> {
        match self {
            ScoreKind::Exact
            | ScoreKind::Math
            | ScoreKind::MathFormat
            | ScoreKind::Format { pattern: None } => None,
            ScoreKind::Regex { pattern }
            | ScoreKind::Coverage { pattern }
            | ScoreKind::Format {
                pattern: Some(pattern),
            } => Some(pattern.clone()),
            ScoreKind::Length { target } => Some(target.to_string()),
            ScoreKind::Cmd { command, .. } => Some(command.clone()),
        }
    }
}

/// One weighted reward component.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ScoreSpec {
    #[serde(flatten)]
    pub kind: ScoreKind,
    #[serde(default = "one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

impl FromStr for ScoreSpec {
    type Err = ScoringError;

    /// `KIND[:ARG][@WEIGHT]`: `exact`, `coverage:[0-9]@0.5`, `regex:^\d+$`, `length:64@0.1`,
    /// `format`, `cmd:python3 score.py@1.0`. A suffix `@X` is the weight only when X is a
    /// number, so `regex:a@b` is the pattern `a@b`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| ScoringError::Spec {
            spec: s.to_string(),
            reason: reason.to_string(),
        };
        let (body, weight) = match s.rsplit_once('@') {
            Some((body, w)) if w.trim().parse::<f64>().is_ok() => {
                (body, w.trim().parse::<f64>().unwrap_or(1.0))
            }
            _ => (s, 1.0),
        };
        if !weight.is_finite() {
            return Err(bad("the weight must be a finite number"));
        }
        let (kind, arg) = match body.split_once(':') {
            Some((k, a)) => (k.trim(), Some(a)),
            None => (body.trim(), None),
        };
        let need = |what: &str| -> Result<String, ScoringError> {
            match arg {
                Some(a) if !a.is_empty() => Ok(a.to_string()),
                _ => Err(bad(&format!("`{kind}` needs {what}, as `{kind}:{what}`"))),
            }
        };
        let kind = match kind {
            "exact" => {
                if arg.is_some() {
                    return Err(bad("`exact` takes no argument"));
                }
                ScoreKind::Exact
            }
            "math" | "math_format" => {
                if arg.is_some() {
                    return Err(bad(&format!("`{kind}` takes no argument")));
                }
                if kind == "math" {
                    ScoreKind::Math
                } else {
                    ScoreKind::MathFormat
                }
            }
            "regex" => ScoreKind::Regex {
                pattern: need("PATTERN")?,
            },
            "coverage" => ScoreKind::Coverage {
                pattern: need("PATTERN")?,
            },
            "length" => {
                let t = need("TARGET")?;
                match t.trim().parse::<u64>() {
                    Ok(target) if target > 0 => ScoreKind::Length { target },
                    _ => return Err(bad("the length target must be a whole number above 0")),
                }
            }
            "format" => ScoreKind::Format {
                pattern: arg.filter(|a| !a.is_empty()).map(str::to_string),
            },
            "cmd" => ScoreKind::Cmd {
                command: need("COMMAND")?,
                timeout_s: None,
            },
            "" => return Err(bad("empty reward kind")),
            _ => {
                return Err(bad(
                    "unknown kind (expected exact, math, math_format, regex, coverage, length, format or cmd)",
                ));
            }
        };
        Ok(ScoreSpec { kind, weight })
    }
}

/// The command-line form; parses back to the same spec (a `cmd` timeout is TOML-only and is
/// not part of it).
impl std::fmt::Display for ScoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind.name())?;
        if let Some(a) = self.kind.arg() {
            write!(f, ":{a}")?;
        }
        if self.weight != 1.0 {
            write!(f, "@{}", self.weight)?;
        }
        Ok(())
    }
}

/// Reward values of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// Weighted sum per sample.
    pub total: Vec<f32>,
    /// Per component (named by kind; a repeated kind gets `#2`, `#3`…), raw unweighted values.
    pub components: Vec<(String, Vec<f32>)>,
}

/// One compiled reward component.
enum Compiled {
    Exact,
    Math,
    MathFormat,
    Regex(Regex),
    Coverage(Regex),
    Length(f64),
    Format(Regex),
    Cmd { command: String, timeout: Duration },
}

/// Compiled reward components.
pub struct Scorer {
    parts: Vec<Part>,
}

struct Part {
    /// The component's name in [`Scores::components`].
    name: String,
    spec: ScoreSpec,
    scorer: Compiled,
}

/// `<think>…</think>` then an answer that is not only whitespace.
const FORMAT_DEFAULT: &str = r"^\s*<think>[\s\S]*?</think>\s*\S[\s\S]*$";

fn compile(kind: &'static str, pattern: &str) -> Result<Regex, ScoringError> {
    Regex::new(pattern).map_err(|e| ScoringError::Pattern {
        kind,
        pattern: pattern.to_string(),
        message: e.to_string(),
    })
}

impl Scorer {
    /// Compiles patterns and checks every spec; at least one spec is needed.
    pub fn new(specs: &[ScoreSpec]) -> Result<Self, ScoringError> {
        if specs.is_empty() {
            return Err(ScoringError::NoSpecs);
        }
        let mut parts = Vec::with_capacity(specs.len());
        for spec in specs {
            let bad = |reason: &str| ScoringError::Spec {
                spec: spec.to_string(),
                reason: reason.to_string(),
            };
            if !spec.weight.is_finite() {
                return Err(bad("the weight must be a finite number"));
            }
            let scorer = match &spec.kind {
                ScoreKind::Exact => Compiled::Exact,
                ScoreKind::Math => Compiled::Math,
                ScoreKind::MathFormat => Compiled::MathFormat,
                ScoreKind::Regex { pattern } => Compiled::Regex(compile("regex", pattern)?),
                ScoreKind::Coverage { pattern } => {
                    Compiled::Coverage(compile("coverage", pattern)?)
                }
                ScoreKind::Length { target } => {
                    if *target == 0 {
                        return Err(bad("the length target must be a whole number above 0"));
                    }
                    Compiled::Length(*target as f64)
                }
                ScoreKind::Format { pattern } => Compiled::Format(compile(
                    "format",
                    pattern.as_deref().unwrap_or(FORMAT_DEFAULT),
                )?),
                ScoreKind::Cmd { command, timeout_s } => {
                    if command.trim().is_empty() {
                        return Err(bad("the scorer command is empty"));
                    }
                    let t = timeout_s.unwrap_or(DEFAULT_CMD_TIMEOUT_S);
                    if !(t.is_finite() && t > 0.0) {
                        return Err(bad("timeout_s must be a positive number of seconds"));
                    }
                    Compiled::Cmd {
                        command: command.clone(),
                        timeout: Duration::from_secs_f64(t),
                    }
                }
            };
            let base = spec.kind.name();
            let n = parts
                .iter()
                .filter(|p: &&Part| p.spec.kind.name() == base)
                .count();
            let name = if n == 0 {
                base.to_string()
            } else {
                format!("{base}#{}", n + 1)
            };
            parts.push(Part {
                name,
                spec: spec.clone(),
                scorer,
            });
        }
        Ok(Scorer { parts })
    }

    /// Scores a batch: every component on every sample, then the weighted sum.
    pub fn score(&mut self, samples: &[Sample]) -> Result<Scores, ScoringError> {
        let mut total = vec![0f64; samples.len()];
        let mut components = Vec::with_capacity(self.parts.len());
        for Part { name, spec, scorer } in &self.parts {
            let values: Vec<f64> = match scorer {
                Compiled::Exact => with_answers(samples, exact)?,
                Compiled::Math => with_answers(samples, math::math_reward)?,
                Compiled::MathFormat => samples
                    .iter()
                    .map(|s| math::math_format_reward(s.completion))
                    .collect(),
                Compiled::Regex(re) | Compiled::Format(re) => samples
                    .iter()
                    .map(|s| f64::from(u8::from(re.is_match(s.completion))))
                    .collect(),
                Compiled::Coverage(re) => {
                    samples.iter().map(|s| coverage(re, s.completion)).collect()
                }
                Compiled::Length(target) => samples
                    .iter()
                    .map(|s| length_penalty(s.completion, *target))
                    .collect(),
                Compiled::Cmd { command, timeout } => run_scorer(command, *timeout, samples)?,
            };
            for (t, v) in total.iter_mut().zip(&values) {
                *t += spec.weight * v;
            }
            components.push((name.clone(), values.iter().map(|&v| v as f32).collect()));
        }
        Ok(Scores {
            total: total.into_iter().map(|v| v as f32).collect(),
            components,
        })
    }

    /// A one-line summary, e.g. `1.0·exact + 0.5·coverage([0-9])`.
    pub fn describe(&self) -> String {
        self.parts
            .iter()
            .map(|Part { spec, .. }| {
                let w = spec.weight;
                match spec.kind.arg() {
                    Some(a) => format!("{w:?}·{}({a})", spec.kind.name()),
                    None => format!("{w:?}·{}", spec.kind.name()),
                }
            })
            .collect::<Vec<_>>()
            .join(" + ")
    }

    /// The component names, in the order of [`Scores::components`].
    pub fn names(&self) -> Vec<String> {
        self.parts.iter().map(|p| p.name.clone()).collect()
    }
}

/// `f(completion, answer)` for every sample; a sample without an answer is an error.
fn with_answers(samples: &[Sample], f: fn(&str, &str) -> f64) -> Result<Vec<f64>, ScoringError> {
    samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let answer = s.answer.ok_or_else(|| ScoringError::MissingAnswer {
                index: i,
                prompt: s.prompt.chars().take(80).collect(),
            })?;
            Ok(f(s.completion, answer))
        })
        .collect()
}

/// The final answer of a completion: the text after the last `####` (to the end of its line),
/// else the content of the last `\boxed{…}` (nested braces allowed), else the last number.
pub fn extract_answer(completion: &str) -> Option<String> {
    if let Some(p) = completion.rfind("####") {
        let rest = completion[p + 4..].lines().next().unwrap_or("").trim();
        if !rest.is_empty() {
            return Some(rest.to_string());
        }
    }
    if let Some(b) = math::last_boxed(completion) {
        return Some(b.trim().to_string());
    }
    last_number(completion).map(str::to_string)
}

fn number_re() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+").expect("valid number regex")
    })
}

fn last_number(s: &str) -> Option<&str> {
    number_re().find_iter(s).last().map(|m| m.as_str())
}

/// Trims, drops `$` and thousands separators in numbers, and a trailing full stop.
fn normalize(s: &str) -> String {
    let t = s.trim().replace('$', "");
    let t = t.trim().trim_end_matches('.').trim();
    let whole = number_re()
        .find(t)
        .is_some_and(|m| m.as_str().len() == t.len());
    if whole {
        t.replace(',', "")
    } else {
        t.to_string()
    }
}

/// 1 when the extracted answer equals `answer`: numerically when both are numbers (`42.0` is
/// `42`), else as normalized text.
pub fn exact(completion: &str, answer: &str) -> f64 {
    let Some(got) = extract_answer(completion) else {
        return 0.0;
    };
    let (got, want) = (normalize(&got), normalize(answer));
    let same = match (got.parse::<f64>(), want.parse::<f64>()) {
        (Ok(a), Ok(b)) if a.is_finite() && b.is_finite() => a == b,
        _ => got == want,
    };
    f64::from(u8::from(same))
}

/// Fraction of characters covered by non-overlapping matches; 0 for an empty completion.
pub fn coverage(re: &Regex, completion: &str) -> f64 {
    let n = completion.chars().count();
    if n == 0 {
        return 0.0;
    }
    let covered: usize = re
        .find_iter(completion)
        .map(|m| m.as_str().chars().count())
        .sum();
    covered as f64 / n as f64
}

/// −|chars − target| / target, clamped to [−1, 0].
pub fn length_penalty(completion: &str, target: f64) -> f64 {
    let n = completion.chars().count() as f64;
    (-(n - target).abs() / target).clamp(-1.0, 0.0)
}

/// The scorer's stdin: one JSON object per sample and line (`prompt`, `completion`, `answer`,
/// then the example's other fields).
fn scorer_input(samples: &[Sample]) -> Vec<u8> {
    let mut input = Vec::new();
    for s in samples {
        let mut obj = Map::new();
        obj.insert("prompt".into(), Value::from(s.prompt));
        obj.insert("completion".into(), Value::from(s.completion));
        obj.insert(
            "answer".into(),
            s.answer.map(Value::from).unwrap_or(Value::Null),
        );
        for (k, v) in s.extra {
            if !obj.contains_key(k) {
                obj.insert(k.clone(), v.clone());
            }
        }
        serde_json::to_writer(&mut input, &Value::Object(obj)).expect("JSON to memory");
        input.push(b'\n');
    }
    input
}

/// Runs the external scorer once for the whole batch.
fn run_scorer(
    command: &str,
    timeout: Duration,
    samples: &[Sample],
) -> Result<Vec<f64>, ScoringError> {
    let input = scorer_input(samples);
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        // Its own process group, so that a timeout kills the scorer's children too.
        use std::os::unix::process::CommandExt as _;
        cmd.process_group(0);
    }
    let mut child = cmd.spawn().map_err(|source| ScoringError::Spawn {
        command: command.to_string(),
        source,
    })?;
    // Writing from a thread: a scorer that prints while it reads would otherwise fill its stdout
    // pipe while we block on its full stdin pipe.
    let mut stdin = child.stdin.take().expect("piped stdin");
    let writer = std::thread::spawn(move || {
        // A scorer that exits without reading all of its input is judged by its output.
        let _ = stdin.write_all(&input);
    });
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                kill_group(&mut child);
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(source) => {
                kill_group(&mut child);
                let _ = child.wait();
                return Err(ScoringError::Spawn {
                    command: command.to_string(),
                    source,
                });
            }
        }
    };
    let _ = writer.join();
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    let stderr = tail(&err);
    let command = command.to_string();
    let Some(status) = status else {
        return Err(ScoringError::Timeout {
            command,
            seconds: timeout.as_secs_f64(),
            stderr,
        });
    };
    if !status.success() {
        return Err(ScoringError::Failed {
            command,
            status: status.to_string(),
            stderr,
        });
    }
    let text = String::from_utf8_lossy(&out);
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() != samples.len() {
        return Err(ScoringError::Count {
            command,
            got: lines.len(),
            want: samples.len(),
            stderr,
        });
    }
    let mut values = Vec::with_capacity(lines.len());
    for (i, l) in lines.iter().enumerate() {
        let bad = |problem| ScoringError::BadValue {
            command: command.clone(),
            line: i + 1,
            value: l.to_string(),
            problem,
            stderr: stderr.clone(),
        };
        match l.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => values.push(v),
            Ok(_) => return Err(bad("not finite")),
            Err(_) => return Err(bad("not a number")),
        }
    }
    Ok(values)
}

/// Kills the scorer's process group (the shell and whatever it started), then the shell.
fn kill_group(child: &mut std::process::Child) {
    #[cfg(unix)]
    {
        let _ = Command::new("kill")
            // procps `kill` reads `-PID` as a process group only after `--`.
            .args(["-s", "KILL", "--"])
            .arg(format!("-{}", child.id()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let _ = child.kill();
}

/// The last lines of a scorer's stderr, at most [`STDERR_TAIL`] bytes.
fn tail(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let s = s.trim_end();
    if s.len() <= STDERR_TAIL {
        return s.to_string();
    }
    let mut start = s.len() - STDERR_TAIL;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &s[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> ScoreSpec {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn sample<'a>(
        completion: &'a str,
        answer: Option<&'a str>,
        extra: &'a Map<String, Value>,
    ) -> Sample<'a> {
        Sample {
            prompt: "p",
            completion,
            answer,
            extra,
        }
    }

    fn score(specs: &[&str], completions: &[(&str, Option<&str>)]) -> Result<Scores, ScoringError> {
        let specs: Vec<ScoreSpec> = specs.iter().map(|s| spec(s)).collect();
        let extra = Map::new();
        let samples: Vec<Sample> = completions
            .iter()
            .map(|(c, a)| sample(c, *a, &extra))
            .collect();
        Scorer::new(&specs)?.score(&samples)
    }

    #[test]
    fn extracts_final_answers() {
        let cases = [
            ("Natalia sold 48/2 = 24 clips.\n#### 72", Some("72")),
            ("#### 1,234\nthen 5", Some("1,234")),
            ("a #### 3 b #### -7 ", Some("-7")),
            ("so \\boxed{\\frac{1}{2}} done", Some("\\frac{1}{2}")),
            ("\\boxed{1} and \\boxed{ {a}{b} }", Some("{a}{b}")),
            ("\\boxed{2} then \\boxed{unclosed", Some("2")),
            ("the answer is -3.25.", Some("-3.25")),
            ("costs $1,000,000 total", Some("1,000,000")),
            ("1, 2, 3", Some("3")),
            ("x = .5", Some(".5")),
            ("no numbers", None),
            ("#### \nbut 9", Some("9")),
        ];
        for (c, want) in cases {
            assert_eq!(extract_answer(c).as_deref(), want, "{c:?}");
        }
    }

    #[test]
    fn exact_compares_normalized_answers() {
        let yes = [
            ("#### 72", "72"),
            ("The answer is 42.0", "42"),
            ("#### $1,234", "1234"),
            ("#### 1,234.50", "1234.5"),
            ("so -7.", "-7"),
            ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
            ("#### yes", " yes "),
            ("#### 0.5", ".5"),
        ];
        for (c, a) in yes {
            assert_eq!(exact(c, a), 1.0, "{c:?} vs {a:?}");
        }
        let no = [
            ("#### 71", "72"),
            ("-72", "72"),
            ("12", "1,2"),
            ("nothing", "1"),
            ("#### no", "yes"),
        ];
        for (c, a) in no {
            assert_eq!(exact(c, a), 0.0, "{c:?} vs {a:?}");
        }
    }

    #[test]
    fn coverage_length_regex_and_format_values() {
        let s = score(
            &["coverage:[0-9]", "length:4", "regex:^\\d+$", "format"],
            &[
                ("12ab", None),
                ("", None),
                ("1234567890", None),
                ("<think>hm</think>\n\n42", None),
                ("<think>hm</think>\n  ", None),
                ("ü1", None),
            ],
        )
        .unwrap();
        let c: Vec<&[f32]> = s.components.iter().map(|(_, v)| v.as_slice()).collect();
        assert_eq!(c[0], [0.5, 0.0, 1.0, (2.0 / 21.0f64) as f32, 0.0, 0.5]);
        assert_eq!(c[1], [0.0, -1.0, -1.0, -1.0, -1.0, -0.5]);
        assert_eq!(c[2], [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
        assert_eq!(c[3], [0.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
        let names: Vec<&str> = s.components.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["coverage", "length", "regex", "format"]);
        let l = score(
            &["length:10"],
            &[("12345678", None), ("123456789012", None)],
        )
        .unwrap();
        assert_eq!(l.total, [-0.2, -0.2]);
    }

    #[test]
    fn totals_are_weighted_sums() {
        let s = score(
            &["exact@2", "coverage:[0-9]@0.5", "regex:a@-1"],
            &[("#### 5", Some("5")), ("a4", Some("5"))],
        )
        .unwrap();
        assert_eq!(s.total, [(2.0 + 0.5 / 6.0f64) as f32, 0.25 - 1.0]);
        let names: Vec<&str> = s.components.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["exact", "coverage", "regex"]);
        let r = Scorer::new(&[spec("regex:a"), spec("regex:b@0.5")]).unwrap();
        assert_eq!(r.names(), ["regex", "regex#2"]);
        assert_eq!(r.describe(), "1.0·regex(a) + 0.5·regex(b)");
    }

    #[test]
    fn samples_of_examples_carry_answer_and_extra_fields() {
        let ex = crate::core::train::data::parse_jsonl(
            "{\"prompt\": \"2+3=\", \"answer\": 5, \"id\": \"q1\"}",
            "d",
            crate::core::train::data::ChatTemplate::None,
        )
        .unwrap();
        let s = Sample::of(&ex[0], "#### 5");
        assert_eq!((s.prompt, s.answer), ("2+3=", Some("5")));
        let got = cmd_score_samples(
            "awk '{ print ($0 ~ /\"id\":\"q1\"/) }'",
            &[s, Sample::of(&ex[0], "x")],
        )
        .unwrap();
        assert_eq!(got, [1.0, 1.0]);
        let mut r = Scorer::new(&[spec("exact")]).unwrap();
        assert_eq!(
            r.score(&[s, Sample::of(&ex[0], "4")]).unwrap().total,
            [1.0, 0.0]
        );
    }

    #[test]
    fn exact_without_an_answer_names_the_sample() {
        let e = score(&["exact"], &[("1", Some("1")), ("2", None)]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "reward exact: sample 1 has no `answer` (prompt \"p\")"
        );
        assert_eq!(e.class(), ErrorClass::Malformed);
    }

    #[test]
    fn specs_parse_and_round_trip() {
        let cases = [
            ("exact", ScoreKind::Exact, 1.0),
            (
                "coverage:[0-9]@0.5",
                ScoreKind::Coverage {
                    pattern: "[0-9]".into(),
                },
                0.5,
            ),
            (
                "regex:^\\d+$",
                ScoreKind::Regex {
                    pattern: "^\\d+$".into(),
                },
                1.0,
            ),
            (
                "regex:a@b",
                ScoreKind::Regex {
                    pattern: "a@b".into(),
                },
                1.0,
            ),
            ("length:64@0.1", ScoreKind::Length { target: 64 }, 0.1),
            ("format", ScoreKind::Format { pattern: None }, 1.0),
            (
                "format:^<a>",
                ScoreKind::Format {
                    pattern: Some("^<a>".into()),
                },
                1.0,
            ),
            (
                "cmd:python3 score.py --x=1@1.0",
                ScoreKind::Cmd {
                    command: "python3 score.py --x=1".into(),
                    timeout_s: None,
                },
                1.0,
            ),
            ("exact@-2", ScoreKind::Exact, -2.0),
        ];
        for (s, kind, weight) in cases {
            let p = spec(s);
            assert_eq!(p, ScoreSpec { kind, weight }, "{s}");
            assert_eq!(spec(&p.to_string()), p, "{s} -> {p}");
        }
    }

    #[test]
    fn bad_specs_are_refused() {
        for s in [
            "",
            "exactly",
            "exact:1",
            "regex",
            "regex:",
            "coverage",
            "length",
            "length:0",
            "length:-3",
            "length:x",
            "cmd",
            "cmd:",
            "exact@inf",
            "exact@NaN",
        ] {
            let e = s.parse::<ScoreSpec>().unwrap_err();
            assert!(matches!(e, ScoringError::Spec { .. }), "{s:?}: {e}");
            assert_eq!(e.class(), ErrorClass::Malformed);
        }
        let e = Scorer::new(&[spec("regex:(")]).err().unwrap();
        assert!(
            e.to_string()
                .starts_with("reward regex: invalid pattern \"(\""),
            "{e}"
        );
        assert!(matches!(Scorer::new(&[]), Err(ScoringError::NoSpecs)));
    }

    #[test]
    fn toml_specs_use_flattened_params() {
        #[derive(serde::Deserialize)]
        struct File {
            reward: Vec<ScoreSpec>,
        }
        let f: File = toml::from_str(
            "[[reward]]\nkind = \"exact\"\n\n[[reward]]\nkind = \"coverage\"\npattern = \"[0-9]\"\nweight = 0.5\n\n\
             [[reward]]\nkind = \"cmd\"\ncommand = \"./score.sh\"\ntimeout_s = 5\nweight = 2\n\n\
             [[reward]]\nkind = \"length\"\ntarget = 64\n",
        )
        .unwrap();
        assert_eq!(
            f.reward,
            [
                spec("exact"),
                spec("coverage:[0-9]@0.5"),
                ScoreSpec {
                    kind: ScoreKind::Cmd {
                        command: "./score.sh".into(),
                        timeout_s: Some(5.0)
                    },
                    weight: 2.0
                },
                spec("length:64"),
            ]
        );
        let back = toml::to_string(&File2 {
            reward: f.reward.clone(),
        })
        .unwrap();
        assert!(back.contains("kind = \"coverage\""), "{back}");
        #[derive(serde::Serialize)]
        struct File2 {
            reward: Vec<ScoreSpec>,
        }
    }

    // The external scorer runs through a real `sh -c` process; scripts use only POSIX sh and awk.

    fn cmd_score_samples(command: &str, samples: &[Sample]) -> Result<Vec<f32>, ScoringError> {
        let specs = [ScoreSpec {
            kind: ScoreKind::Cmd {
                command: command.into(),
                timeout_s: Some(60.0),
            },
            weight: 1.0,
        }];
        Ok(Scorer::new(&specs)?.score(samples)?.total)
    }

    fn cmd_score(command: &str, completions: &[&str]) -> Result<Vec<f32>, ScoringError> {
        let mut extra = Map::new();
        extra.insert("level".into(), Value::from(3));
        let samples: Vec<Sample> = completions
            .iter()
            .map(|c| sample(c, Some("5"), &extra))
            .collect();
        let specs = [ScoreSpec {
            kind: ScoreKind::Cmd {
                command: command.into(),
                timeout_s: Some(60.0),
            },
            weight: 1.0,
        }];
        Ok(Scorer::new(&specs)?.score(&samples)?.total)
    }

    #[test]
    fn external_scorer_reads_json_lines_and_prints_numbers() {
        // Score: length of the line's completion field as awk sees it (the JSON text between
        // the quotes after "completion":), plus 100 when the extra field arrived.
        let script = r#"awk '{ c = $0; sub(/.*"completion":"/, "", c); sub(/".*/, "", c);
                               x = length(c); if ($0 ~ /"level":3/ && $0 ~ /"answer":"5"/) x += 100; print x }'"#;
        let got = cmd_score(script, &["ab", "", "hello"]).unwrap();
        assert_eq!(got, [102.0, 100.0, 105.0]);
        // Large batches do not deadlock: the scorer prints while we are still writing.
        let many: Vec<String> = (0..20_000).map(|i| format!("{i:0>40}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let got = cmd_score("awk '{ print NR }'", &refs).unwrap();
        assert_eq!(got.len(), 20_000);
        assert_eq!(got[19_999], 20_000.0);
    }

    #[test]
    fn external_scorer_failures_are_clear() {
        let e = cmd_score("echo 'it broke' >&2; exit 3", &["a"]).unwrap_err();
        let m = e.to_string();
        assert!(
            m.starts_with("reward scorer `echo 'it broke' >&2; exit 3`: exit status: 3")
                && m.ends_with("stderr: it broke"),
            "{m}"
        );
        let e = cmd_score("cat >/dev/null; echo 1", &["a", "b"]).unwrap_err();
        assert!(
            e.to_string().contains("printed 1 lines for 2 samples"),
            "{e}"
        );
        let e = cmd_score("cat >/dev/null; printf '1\\nabc\\n'", &["a", "b"]).unwrap_err();
        assert!(
            e.to_string()
                .ends_with(": output line 2: \"abc\" is not a number"),
            "{e}"
        );
        let e = cmd_score("cat >/dev/null; echo nan", &["a"]).unwrap_err();
        assert!(
            e.to_string()
                .ends_with(": output line 1: \"nan\" is not finite"),
            "{e}"
        );
        let e = cmd_score("cat >/dev/null; echo -inf", &["a"]).unwrap_err();
        assert!(e.to_string().contains("\"-inf\" is not finite"), "{e}");
        assert_eq!(e.class(), ErrorClass::Training);
        // Exits without reading its input: judged by what it printed.
        assert_eq!(cmd_score("echo 0.5", &["a"]).unwrap(), [0.5]);
    }

    #[test]
    fn external_scorer_timeout_kills_the_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("bg.pid");
        let extra = Map::new();
        let samples = [sample("a", None, &extra)];
        let specs = [ScoreSpec {
            kind: ScoreKind::Cmd {
                command: format!(
                    "sleep 30 >/dev/null 2>&1 & echo $! > {}; sleep 30 >/dev/null 2>&1; echo 1",
                    pidfile.display()
                ),
                timeout_s: Some(2.0),
            },
            weight: 1.0,
        }];
        let e = Scorer::new(&specs).unwrap().score(&samples).unwrap_err();
        assert!(matches!(e, ScoringError::Timeout { .. }), "{e}");
        assert!(
            e.to_string().contains("no answer within 2 s; killed"),
            "{e}"
        );
        // The scorer's own child was killed too: it is gone or a zombie within moments (it
        // may still be finishing its exit right after the kill), not asleep for 30 s.
        #[cfg(target_os = "linux")]
        {
            let pid = std::fs::read_to_string(&pidfile).expect("the scorer started within 2 s");
            let path = format!("/proc/{}/stat", pid.trim());
            let dead = (0..500).any(|_| {
                let gone = match std::fs::read_to_string(&path) {
                    Ok(stat) => stat
                        .rsplit(')')
                        .next()
                        .unwrap()
                        .trim_start()
                        .starts_with('Z'),
                    Err(_) => true,
                };
                if !gone {
                    std::thread::sleep(Duration::from_millis(20));
                }
                gone
            });
            assert!(dead, "the scorer's background sleep still runs");
        }
    }
}
