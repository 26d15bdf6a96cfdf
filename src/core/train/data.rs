//! Training data: JSONL prompts, the model's chat template, and seeded, resumable shuffling.
//!
//! One JSON object per line (blank lines are skipped):
//! ```json
//! {"prompt": "What is 2+3?", "answer": "5"}
//! {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+3?"}],
//!  "answer": 5, "difficulty": "easy"}
//! ```
//! Exactly one of `prompt` (a string, given to the tokenizer as is) or `messages` (rendered with
//! the model's chat template, ending with the assistant's generation prompt; see
//! [`crate::core::chat`]). Messages are passed to the template as they are (`tool_calls`,
//! `tool_call_id`, `name`, … included); a row's `tools` (a list of JSON schemas) goes to the
//! template as `tools`. `answer` is optional (a string or a number, kept as a string). Every other
//! field is kept in [`Example::extra`] and handed to reward scorers. Errors name the file and the
//! 1-based line.

use std::path::Path;

use serde_json::{Map, Value};

use crate::core::chat::{self, ChatError, RenderOptions};
use crate::core::error::{Classify, ErrorClass};

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{origin}: no examples (the file is empty or only blank lines)")]
    Empty { origin: String },
    #[error("{origin}:{line}: invalid JSON: {message}")]
    Json {
        origin: String,
        line: usize,
        message: String,
    },
    #[error("{origin}:{line}: expected a JSON object, found {found}")]
    NotObject {
        origin: String,
        line: usize,
        found: &'static str,
    },
    #[error("{origin}:{line}: {problem}")]
    PromptField {
        origin: String,
        line: usize,
        problem: &'static str,
    },
    #[error("{origin}:{line}: `{field}` must be {expected}, found {found}")]
    WrongType {
        origin: String,
        line: usize,
        field: String,
        expected: &'static str,
        found: String,
    },
    #[error(
        "{origin}:{line}: unknown role {role:?} in `messages` (expected system, user, assistant or tool)"
    )]
    Role {
        origin: String,
        line: usize,
        role: String,
    },
    #[error(
        "{origin}:{line}: `messages` needs a chat template, and the model has none (no `chat_template` in tokenizer_config.json or chat_template.jinja; give the prompt as `prompt`)"
    )]
    NoTemplate { origin: String, line: usize },
    #[error("{origin}:{line}: {source}")]
    Template {
        origin: String,
        line: usize,
        source: ChatError,
    },
}

impl Classify for DataError {
    fn class(&self) -> ErrorClass {
        match self {
            DataError::Io { .. } => ErrorClass::Io,
            DataError::NoTemplate { .. } => ErrorClass::Unsupported,
            DataError::Template { source, .. } => source.class(),
            _ => ErrorClass::Malformed,
        }
    }
}

/// One training prompt.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Example {
    /// 1-based line in the file.
    pub line: usize,
    /// The text the tokenizer gets (chat template applied for `messages`).
    pub prompt: String,
    /// The `answer` field; numbers are turned into strings.
    pub answer: Option<String>,
    /// Every other field, passed to scorers.
    pub extra: Map<String, Value>,
}

/// How `messages` become a prompt.
#[derive(Debug, Clone, Copy)]
pub enum ChatTemplate<'a> {
    /// The model's template with the assistant's generation prompt; `enable_thinking` is passed
    /// to it (Qwen3's template then appends the empty `<think>\n\n</think>\n\n` block that
    /// switches reasoning off; other templates ignore it).
    Model {
        template: &'a chat::ChatTemplate,
        enable_thinking: bool,
    },
    /// No template: lines with `messages` are rejected.
    None,
}

impl<'a> ChatTemplate<'a> {
    /// The model's template if it has one, else `None` (rows with `messages` are then refused).
    pub fn from_model(template: Option<&'a chat::ChatTemplate>, enable_thinking: bool) -> Self {
        match template {
            Some(template) => ChatTemplate::Model {
                template,
                enable_thinking,
            },
            None => ChatTemplate::None,
        }
    }
}

/// Reads a JSONL file of examples.
pub fn load_jsonl(path: &Path, chat_template: ChatTemplate) -> Result<Vec<Example>, DataError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: origin.clone(),
        source,
    })?;
    parse_jsonl(&text, &origin, chat_template)
}

/// Parses JSONL text; `origin` names it in errors (a path, or a bundled data set's name).
pub fn parse_jsonl(
    text: &str,
    origin: &str,
    chat_template: ChatTemplate,
) -> Result<Vec<Example>, DataError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        out.push(parse_line(raw, origin, line, chat_template)?);
    }
    if out.is_empty() {
        return Err(DataError::Empty {
            origin: origin.to_string(),
        });
    }
    Ok(out)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn parse_line(
    raw: &str,
    origin: &str,
    line: usize,
    chat_template: ChatTemplate,
) -> Result<Example, DataError> {
    let value: Value = serde_json::from_str(raw).map_err(|e| DataError::Json {
        origin: origin.to_string(),
        line,
        message: e.to_string(),
    })?;
    parse_value(value, origin, line, chat_template)
}

/// One example from a JSON value (a JSONL line, a JSON array element, a Parquet row);
/// `line` is its 1-based line, element or row number.
pub fn parse_value(
    value: Value,
    origin: &str,
    line: usize,
    chat_template: ChatTemplate,
) -> Result<Example, DataError> {
    let mut obj = match value {
        Value::Object(m) => m,
        other => {
            return Err(DataError::NotObject {
                origin: origin.to_string(),
                line,
                found: type_name(&other),
            });
        }
    };
    let wrong = |field: &str, expected: &'static str, found: &Value| DataError::WrongType {
        origin: origin.to_string(),
        line,
        field: field.to_string(),
        expected,
        found: type_name(found).to_string(),
    };
    let prompt = match (obj.remove("prompt"), obj.remove("messages")) {
        (Some(_), Some(_)) => {
            return Err(DataError::PromptField {
                origin: origin.to_string(),
                line,
                problem: "has both `prompt` and `messages` (give exactly one)",
            });
        }
        (None, None) => {
            return Err(DataError::PromptField {
                origin: origin.to_string(),
                line,
                problem: "has neither `prompt` nor `messages`",
            });
        }
        (Some(Value::String(p)), None) => p,
        (Some(other), None) => return Err(wrong("prompt", "a string", &other)),
        (None, Some(m)) => {
            check_messages(&m, origin, line)?;
            let tools = match obj.remove("tools") {
                None | Some(Value::Null) => None,
                Some(t @ Value::Array(_)) => Some(t),
                Some(other) => return Err(wrong("tools", "an array of tool schemas", &other)),
            };
            render(&m, tools, chat_template, origin, line)?
        }
    };
    let answer = match obj.remove("answer") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => return Err(wrong("answer", "a string or a number", &other)),
    };
    Ok(Example {
        line,
        prompt,
        answer,
        extra: obj,
    })
}

/// Checks the shape gym relies on: a non-empty array of objects with a known string `role` and a
/// `content` that is a string (or, next to `tool_calls`, null or missing, or a list of parts).
/// Everything else is the template's business.
fn check_messages(v: &Value, origin: &str, line: usize) -> Result<(), DataError> {
    let wrong = |field: String, expected: &'static str, found: &Value| DataError::WrongType {
        origin: origin.to_string(),
        line,
        field,
        expected,
        found: type_name(found).to_string(),
    };
    let Value::Array(items) = v else {
        return Err(wrong("messages".into(), "an array of {role, content}", v));
    };
    if items.is_empty() {
        return Err(DataError::PromptField {
            origin: origin.to_string(),
            line,
            problem: "`messages` is empty",
        });
    }
    for (i, item) in items.iter().enumerate() {
        let Value::Object(m) = item else {
            return Err(wrong(
                format!("messages[{i}]"),
                "an object {role, content}",
                item,
            ));
        };
        let role = match m.get("role") {
            Some(Value::String(s)) => s,
            other => {
                let found = other.unwrap_or(&Value::Null);
                return Err(wrong(format!("messages[{i}].role"), "a string", found));
            }
        };
        let has_calls = m.get("tool_calls").is_some_and(|c| !c.is_null());
        match m.get("content") {
            Some(Value::String(_)) | Some(Value::Array(_)) => {}
            None | Some(Value::Null) if has_calls => {}
            other => {
                let found = other.unwrap_or(&Value::Null);
                return Err(wrong(format!("messages[{i}].content"), "a string", found));
            }
        }
        if !matches!(role.as_str(), "system" | "user" | "assistant" | "tool") {
            return Err(DataError::Role {
                origin: origin.to_string(),
                line,
                role: role.clone(),
            });
        }
    }
    Ok(())
}

fn render(
    messages: &Value,
    tools: Option<Value>,
    chat_template: ChatTemplate,
    origin: &str,
    line: usize,
) -> Result<String, DataError> {
    let ChatTemplate::Model {
        template,
        enable_thinking,
    } = chat_template
    else {
        return Err(DataError::NoTemplate {
            origin: origin.to_string(),
            line,
        });
    };
    let mut extra = Map::new();
    extra.insert("enable_thinking".into(), Value::Bool(enable_thinking));
    let opts = RenderOptions {
        add_generation_prompt: true,
        tools,
        extra,
    };
    template
        .render(messages, &opts)
        .map_err(|source| DataError::Template {
            origin: origin.to_string(),
            line,
            source,
        })
}

/// Seeded, resumable epoch shuffling: every epoch is a fresh permutation derived from
/// (seed, epoch) alone, so a serialized sampler resumes with exactly the same sequence. The
/// permutation is a Fisher–Yates shuffle driven by SplitMix64, written out here so that it does
/// not change with a dependency's version.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Sampler {
    pub seed: u64,
    /// The epoch being drawn from (0-based).
    pub epoch: u64,
    /// How many indices of this epoch have been handed out.
    pub pos: usize,
    /// The number of examples.
    pub len: usize,
    /// This epoch's permutation; rebuilt from (seed, epoch) when missing.
    #[serde(skip)]
    order: Vec<usize>,
}

impl PartialEq for Sampler {
    fn eq(&self, other: &Self) -> bool {
        (self.seed, self.epoch, self.pos, self.len)
            == (other.seed, other.epoch, other.pos, other.len)
    }
}

impl Sampler {
    pub fn new(len: usize, seed: u64) -> Self {
        Sampler {
            seed,
            epoch: 0,
            pos: 0,
            len,
            order: Vec::new(),
        }
    }

    /// The permutation of `0..len` for `epoch`.
    pub fn permutation(len: usize, seed: u64, epoch: u64) -> Vec<usize> {
        let mut s0 = seed;
        let mut state = splitmix64(&mut s0) ^ epoch;
        let mut order: Vec<usize> = (0..len).collect();
        for i in (1..len).rev() {
            // Lemire's multiply-shift: an index in 0..=i without modulo bias worth noticing.
            let r = splitmix64(&mut state);
            let j = ((r as u128 * (i as u128 + 1)) >> 64) as usize;
            order.swap(i, j);
        }
        order
    }

    /// The next `k` indices, continuing into the next epoch (a new permutation) as needed.
    /// Empty when there are no examples.
    pub fn next_batch(&mut self, k: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(k);
        if self.len == 0 {
            return out;
        }
        while out.len() < k {
            if self.pos >= self.len {
                self.epoch += 1;
                self.pos = 0;
                self.order.clear();
            }
            if self.order.len() != self.len {
                self.order = Self::permutation(self.len, self.seed, self.epoch);
            }
            let take = (k - out.len()).min(self.len - self.pos);
            out.extend_from_slice(&self.order[self.pos..self.pos + take]);
            self.pos += take;
        }
        out
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    static QWEN3: std::sync::LazyLock<chat::ChatTemplate> =
        std::sync::LazyLock::new(chat::ChatTemplate::qwen3);

    /// Qwen3's template with thinking on.
    fn q() -> ChatTemplate<'static> {
        ChatTemplate::Model {
            template: &QWEN3,
            enable_thinking: true,
        }
    }

    fn err(text: &str) -> String {
        parse_jsonl(text, "data.jsonl", q())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn parses_prompts_messages_answers_and_extra_fields() {
        let text = "{\"prompt\": \"2+3?\", \"answer\": \"5\"}\n\n   \n\
                    {\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"answer\": 42, \"level\": 3}\n\
                    {\"prompt\": \"x\", \"answer\": -1.5}\n{\"prompt\": \"y\", \"answer\": null}\n";
        let ex = parse_jsonl(
            text,
            "d",
            ChatTemplate::Model {
                template: &QWEN3,
                enable_thinking: false,
            },
        )
        .unwrap();
        assert_eq!(ex.len(), 4);
        assert_eq!((ex[0].line, ex[0].prompt.as_str()), (1, "2+3?"));
        assert_eq!(ex[0].answer.as_deref(), Some("5"));
        assert_eq!(ex[1].line, 4);
        assert_eq!(
            ex[1].prompt,
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
        );
        assert_eq!(ex[1].answer.as_deref(), Some("42"));
        assert_eq!(ex[1].extra.get("level"), Some(&Value::from(3)));
        assert!(!ex[1].extra.contains_key("messages") && !ex[1].extra.contains_key("answer"));
        assert_eq!(ex[2].answer.as_deref(), Some("-1.5"));
        assert_eq!(ex[3].answer, None);
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let good = "{\"prompt\": \"a\"}\n";
        let cases = [
            ("{\"prompt\": \"a\"\n", "data.jsonl:2: invalid JSON"),
            (
                "[1, 2]\n",
                "data.jsonl:2: expected a JSON object, found an array",
            ),
            (
                "{\"answer\": \"1\"}\n",
                "data.jsonl:2: has neither `prompt` nor `messages`",
            ),
            (
                "{\"prompt\": \"a\", \"messages\": []}\n",
                "data.jsonl:2: has both `prompt` and `messages`",
            ),
            (
                "{\"prompt\": 3}\n",
                "data.jsonl:2: `prompt` must be a string, found a number",
            ),
            (
                "{\"prompt\": \"a\", \"answer\": [1]}\n",
                "data.jsonl:2: `answer` must be a string or a number, found an array",
            ),
            (
                "{\"messages\": \"hi\"}\n",
                "data.jsonl:2: `messages` must be an array",
            ),
            ("{\"messages\": []}\n", "data.jsonl:2: `messages` is empty"),
            (
                "{\"messages\": [{\"role\": \"user\"}]}\n",
                "data.jsonl:2: `messages[0].content` must be a string, found null",
            ),
            (
                "{\"messages\": [{\"role\": \"user\", \"content\": 1}]}\n",
                "data.jsonl:2: `messages[0].content` must be a string, found a number",
            ),
            (
                "{\"messages\": [{\"role\": \"bot\", \"content\": \"x\"}]}\n",
                "data.jsonl:2: unknown role \"bot\"",
            ),
        ];
        for (bad, want) in cases {
            let got = err(&format!("{good}{bad}"));
            assert!(got.starts_with(want), "{bad:?}: {got}");
        }
        assert_eq!(
            err("\n  \n"),
            "data.jsonl: no examples (the file is empty or only blank lines)"
        );
        let e = parse_jsonl(
            "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}",
            "d.jsonl",
            ChatTemplate::None,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("d.jsonl:1: `messages` needs a chat template")
        );
        assert_eq!(e.class(), ErrorClass::Unsupported);
        assert_eq!(
            parse_jsonl("[]", "d", q()).unwrap_err().class(),
            ErrorClass::Malformed
        );
    }

    #[test]
    fn load_jsonl_reads_a_file_and_names_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.jsonl");
        std::fs::write(&p, "{\"prompt\": \"a\"}\n{\"prompt\": 1}\n").unwrap();
        let e = load_jsonl(&p, q()).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:2: ", p.display())), "{e}");
        let missing = dir.path().join("nope.jsonl");
        let e = load_jsonl(&missing, q()).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Io);
        assert!(e.to_string().contains("nope.jsonl"));
    }

    #[test]
    fn rows_with_tools_and_tool_calls_reach_the_template() {
        let row = concat!(
            r#"{"messages": [{"role": "user", "content": "2+3?"}, "#,
            r#"{"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "add", "arguments": {"a": 2, "b": 3}}}]}, "#,
            r#"{"role": "tool", "content": "5"}], "#,
            r#""tools": [{"type": "function", "function": {"name": "add", "description": "Adds."}}], "answer": 5}"#
        );
        let ex = parse_jsonl(row, "d", q()).unwrap();
        let p = &ex[0].prompt;
        assert!(
            p.starts_with("<|im_start|>system\n# Tools\n\nYou may call one or more functions"),
            "{p}"
        );
        assert!(p.contains(
            "\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"add\", \"description\": \"Adds.\"}}\n</tools>"
        ));
        assert!(p.contains(
            "<|im_start|>assistant\n<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 2, \"b\": 3}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n5\n</tool_response><|im_end|>\n"
        ));
        assert!(p.ends_with("<|im_start|>assistant\n"));
        assert!(!ex[0].extra.contains_key("tools"));
        let e = parse_jsonl(
            "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tools\": 1}",
            "d",
            q(),
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("d:1: `tools` must be an array"),
            "{e}"
        );
    }

    #[test]
    fn a_template_that_raises_names_the_line() {
        let t = chat::ChatTemplate::new(
            "{% if messages[0].role != 'system' %}{{ raise_exception('system first') }}{% endif %}",
            Map::new(),
            "t",
        )
        .unwrap();
        let ct = ChatTemplate::Model {
            template: &t,
            enable_thinking: false,
        };
        let text =
            "{\"prompt\": \"a\"}\n{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}";
        let e = parse_jsonl(text, "d.jsonl", ct).unwrap_err();
        assert_eq!(
            e.to_string(),
            "d.jsonl:2: the chat template refused the conversation: system first"
        );
        assert_eq!(e.class(), ErrorClass::Malformed);
    }

    #[test]
    fn sampler_epochs_are_seeded_permutations() {
        let n = 37;
        let mut a = Sampler::new(n, 7);
        let mut b = Sampler::new(n, 7);
        let mut c = Sampler::new(n, 8);
        let ea = a.next_batch(n);
        assert_eq!(ea, b.next_batch(n));
        assert_ne!(ea, c.next_batch(n));
        let mut sorted = ea.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..n).collect::<Vec<_>>());
        assert_ne!(ea, sorted, "shuffled");
        // The next epoch is another permutation, different from the first.
        let e1 = a.next_batch(n);
        assert_eq!((a.epoch, a.pos), (1, n));
        let mut s1 = e1.clone();
        s1.sort_unstable();
        assert_eq!(s1, sorted);
        assert_ne!(e1, ea);
        assert_eq!(e1, Sampler::permutation(n, 7, 1));
    }

    #[test]
    fn sampler_batches_cross_epochs() {
        let mut s = Sampler::new(5, 1);
        let b = s.next_batch(7);
        assert_eq!(b[..5], Sampler::permutation(5, 1, 0)[..]);
        assert_eq!(b[5..], Sampler::permutation(5, 1, 1)[..2]);
        assert_eq!((s.epoch, s.pos), (1, 2));
        assert!(Sampler::new(0, 1).next_batch(3).is_empty());
    }

    #[test]
    fn sampler_resumes_from_serialized_state_mid_epoch() {
        let mut whole = Sampler::new(11, 42);
        let mut first = Sampler::new(11, 42);
        let mut expected = whole.next_batch(4);
        expected.extend(whole.next_batch(30));
        let mut got = first.next_batch(4);
        let saved = serde_json::to_string(&first).unwrap();
        let mut resumed: Sampler = serde_json::from_str(&saved).unwrap();
        assert_eq!(resumed, first);
        got.extend(resumed.next_batch(30));
        assert_eq!(got, expected);
        assert_eq!(resumed, whole);
    }
}
