//! Chat templates: the model's own Jinja `chat_template`, rendered the way transformers'
//! `apply_chat_template` renders it.
//!
//! A model directory carries its template in `chat_template.jinja` (transformers ≥ 4.43 writes it
//! there) or in the `chat_template` field of `tokenizer_config.json` (a string, or a list of
//! `{name, template}` of which `default` is used). The engine is minijinja configured like
//! transformers' sandboxed Jinja2 environment:
//!
//! - `trim_blocks` and `lstrip_blocks` on, a single trailing newline dropped, loop controls;
//! - Python's string and dict methods (`startswith`, `split`, `rstrip`, `items`, …);
//! - `raise_exception(msg)` fails the render with `msg`; `strftime_now(fmt)` formats the local time;
//! - `tojson` is Python's `json.dumps` with `ensure_ascii=False` (transformers overrides Jinja's
//!   HTML-escaping filter): `", "`/`": "` separators, `indent=` for pretty output, Python's float
//!   repr (`1e-07`, `1e+16`, `2.0`), keys in insertion order unless `sort_keys=true`;
//! - the variables `messages`, `tools` (none unless given), `documents` (none),
//!   `add_generation_prompt`, the tokenizer's special tokens (`bos_token`, `eos_token`, …) and any
//!   extra keyword (`enable_thinking` for Qwen3);
//! - `{{ none }}` prints `None` and booleans print `True`/`False`, as Python's `str` does.
//!
//! Parity with transformers is tested byte for byte on the real templates of Qwen3, Qwen2.5,
//! Llama 3.1 and Mistral v0.3 (testdata/chat-templates/, rendered by
//! tools/reference/chat_templates.py), tool definitions and tool calls included. Not covered:
//! the `{% generation %}` tag (assistant-token masks) and transformers 5's aliasing of reasoning
//! fields (`reasoning` ↔ `reasoning_content`).

use std::path::Path;

use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind};
use serde_json::{Map, Value as Json};

use crate::core::error::{Classify, ErrorClass};

/// Qwen3's `chat_template`, byte for byte (testdata/chat-templates/README.md says where it comes
/// from): the bundled tiny model is a Qwen3 and uses it.
pub const QWEN3_TEMPLATE: &str = include_str!("../../testdata/chat-templates/qwen3.jinja");

const NAME: &str = "chat_template";

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {problem}")]
    Config { path: String, problem: String },
    #[error("{origin}: the chat template does not compile: {message}")]
    Syntax { origin: String, message: String },
    #[error("the chat template refused the conversation: {0}")]
    Raised(String),
    #[error("rendering the chat template: {0}")]
    Render(String),
}

impl Classify for ChatError {
    fn class(&self) -> ErrorClass {
        match self {
            ChatError::Io { .. } => ErrorClass::Io,
            _ => ErrorClass::Malformed,
        }
    }
}

/// A compiled chat template with the special tokens of its tokenizer.
pub struct ChatTemplate {
    env: Environment<'static>,
    special: Map<String, Json>,
    origin: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("origin", &self.origin)
            .field("special", &self.special)
            .finish()
    }
}

/// What one rendering gets besides the messages.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    pub add_generation_prompt: bool,
    /// Tool definitions (JSON schemas), passed as `tools`.
    pub tools: Option<Json>,
    /// Extra template variables (`enable_thinking`, `date_string`, …).
    pub extra: Map<String, Json>,
}

/// The special tokens of `tokenizer_config.json` the templates read.
const SPECIAL_KEYS: [&str; 7] = [
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
];

impl ChatTemplate {
    /// Compiles `source`; `special` maps `bos_token` etc. to their text; `origin` names the
    /// template in errors.
    pub fn new(
        source: &str,
        special: Map<String, Json>,
        origin: &str,
    ) -> Result<ChatTemplate, ChatError> {
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .expect("default delimiters are valid");
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_formatter(python_formatter);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned(NAME, source.to_string())
            .map_err(|e| ChatError::Syntax {
                origin: origin.to_string(),
                message: describe(&e),
            })?;
        Ok(ChatTemplate {
            env,
            special,
            origin: origin.to_string(),
        })
    }

    /// Qwen3's template with Qwen3's special tokens (for the bundled tiny model).
    pub fn qwen3() -> ChatTemplate {
        let mut special = Map::new();
        special.insert("eos_token".into(), Json::from("<|im_end|>"));
        special.insert("pad_token".into(), Json::from("<|endoftext|>"));
        ChatTemplate::new(QWEN3_TEMPLATE, special, "<Qwen3 chat template>")
            .expect("the bundled Qwen3 template compiles")
    }

    /// The template of a model directory, or `None` when it has none.
    pub fn from_model_dir(dir: &Path) -> Result<Option<ChatTemplate>, ChatError> {
        let cfg_path = dir.join("tokenizer_config.json");
        let cfg: Map<String, Json> = match std::fs::read_to_string(&cfg_path) {
            Ok(text) => match serde_json::from_str(&text) {
                Ok(Json::Object(m)) => m,
                Ok(_) => return Err(config_err(&cfg_path, "expected a JSON object".into())),
                Err(e) => return Err(config_err(&cfg_path, format!("invalid JSON: {e}"))),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(source) => return Err(io_err(&cfg_path, source)),
        };
        let special = special_tokens(&cfg);
        let jinja = dir.join("chat_template.jinja");
        match std::fs::read_to_string(&jinja) {
            Ok(src) => {
                return ChatTemplate::new(&src, special, &jinja.display().to_string()).map(Some);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(io_err(&jinja, source)),
        }
        let origin = format!("{} (chat_template)", cfg_path.display());
        match cfg.get("chat_template") {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(src)) => ChatTemplate::new(src, special, &origin).map(Some),
            Some(Json::Array(named)) => {
                let default = named.iter().find(|t| t["name"] == "default");
                match default.and_then(|t| t["template"].as_str()) {
                    Some(src) => ChatTemplate::new(src, special, &origin).map(Some),
                    None => Err(config_err(
                        &cfg_path,
                        "`chat_template` is a list without a `default` template".into(),
                    )),
                }
            }
            Some(_) => Err(config_err(
                &cfg_path,
                "`chat_template` must be a string or a list of {name, template}".into(),
            )),
        }
    }

    /// Where the template came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Renders `messages` (a JSON array of message objects).
    pub fn render(&self, messages: &Json, opts: &RenderOptions) -> Result<String, ChatError> {
        let mut ctx = Map::new();
        for (k, v) in &self.special {
            ctx.insert(k.clone(), v.clone());
        }
        for (k, v) in &opts.extra {
            ctx.insert(k.clone(), v.clone());
        }
        ctx.insert("messages".into(), messages.clone());
        ctx.insert("tools".into(), opts.tools.clone().unwrap_or(Json::Null));
        ctx.insert("documents".into(), Json::Null);
        ctx.insert(
            "add_generation_prompt".into(),
            Json::Bool(opts.add_generation_prompt),
        );
        let tmpl = self
            .env
            .get_template(NAME)
            .expect("the template was added in new()");
        tmpl.render(Value::from(minijinja::value::Serde(&ctx)))
            .map_err(|e| match raised_message(&e) {
                Some(msg) => ChatError::Raised(msg),
                None => ChatError::Render(describe(&e)),
            })
    }
}

fn io_err(path: &Path, source: std::io::Error) -> ChatError {
    ChatError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn config_err(path: &Path, problem: String) -> ChatError {
    ChatError::Config {
        path: path.display().to_string(),
        problem,
    }
}

/// `bos_token` etc. from a tokenizer config: a string, or an added-token object's `content`.
fn special_tokens(cfg: &Map<String, Json>) -> Map<String, Json> {
    let mut out = Map::new();
    for key in SPECIAL_KEYS {
        let text = match cfg.get(key) {
            Some(Json::String(s)) => Some(s.clone()),
            Some(Json::Object(o)) => o.get("content").and_then(|c| c.as_str()).map(String::from),
            _ => None,
        };
        if let Some(t) = text {
            out.insert(key.to_string(), Json::String(t));
        }
    }
    out
}

/// Marks errors raised by `raise_exception` so that they surface with the template's message.
const RAISED: &str = "raise_exception: ";

fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(
        ErrorKind::InvalidOperation,
        format!("{RAISED}{message}"),
    ))
}

fn raised_message(e: &Error) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(me) = err.downcast_ref::<Error>()
            && let Some(d) = me.detail()
            && let Some(msg) = d.strip_prefix(RAISED)
        {
            return Some(msg.to_string());
        }
        cur = err.source();
    }
    None
}

fn describe(e: &Error) -> String {
    let mut s = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(err) = cur {
        s.push_str(": ");
        s.push_str(&err.to_string());
        cur = err.source();
    }
    s
}

/// `strftime_now(fmt)`: the current time (UTC; gym has no time-zone database) in `fmt`, for the
/// directives the templates use: `%d`, `%b`, `%B`, `%Y`, `%m`, `%H`, `%M`, `%S`, `%%`.
fn strftime_now(fmt: String) -> Result<Value, Error> {
    let now = time::OffsetDateTime::now_utc();
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let month = now.month();
        match chars.next() {
            Some('d') => out.push_str(&format!("{:02}", now.day())),
            Some('b') => out.push_str(&month.to_string()[..3]),
            Some('B') => out.push_str(&month.to_string()),
            Some('Y') => out.push_str(&now.year().to_string()),
            Some('m') => out.push_str(&format!("{:02}", u8::from(month))),
            Some('H') => out.push_str(&format!("{:02}", now.hour())),
            Some('M') => out.push_str(&format!("{:02}", now.minute())),
            Some('S') => out.push_str(&format!("{:02}", now.second())),
            Some('%') => out.push('%'),
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "strftime_now: unsupported directive %{}",
                        other.unwrap_or(' ')
                    ),
                ));
            }
        }
    }
    Ok(Value::from(out))
}

/// Prints values as Python's `str` does where it differs from minijinja: `None`, `True`, `False`.
fn python_formatter(
    out: &mut minijinja::Output,
    state: &mut minijinja::State,
    value: &Value,
) -> Result<(), Error> {
    let text = match value.kind() {
        ValueKind::None => "None",
        ValueKind::Bool if value.is_true() => "True",
        ValueKind::Bool => "False",
        _ => return minijinja::escape_formatter(out, state, value),
    };
    out.write_str(text).map_err(Error::from)
}

/// transformers' `tojson`: `json.dumps(x, ensure_ascii=False, indent=indent,
/// separators=separators, sort_keys=sort_keys)`.
fn tojson(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let separators: Option<Vec<String>> = kwargs.get("separators")?;
    kwargs.assert_all_used()?;
    let (item, key) = match separators.as_deref() {
        Some([i, k]) => (i.clone(), k.clone()),
        Some(_) => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "tojson: separators must be a pair of strings",
            ));
        }
        None if indent.is_some() => (",".to_string(), ": ".to_string()),
        None => (", ".to_string(), ": ".to_string()),
    };
    let mut w = PyJson {
        out: String::new(),
        indent,
        item,
        key,
        sort_keys: sort_keys.unwrap_or(false),
        ensure_ascii: ensure_ascii.unwrap_or(false),
    };
    w.value(value, 0)?;
    Ok(Value::from(w.out))
}

struct PyJson {
    out: String,
    indent: Option<usize>,
    item: String,
    key: String,
    sort_keys: bool,
    ensure_ascii: bool,
}

impl PyJson {
    fn value(&mut self, v: &Value, depth: usize) -> Result<(), Error> {
        match v.kind() {
            ValueKind::None | ValueKind::Undefined => self.out.push_str("null"),
            ValueKind::Bool => self
                .out
                .push_str(if v.is_true() { "true" } else { "false" }),
            ValueKind::Number if v.is_integer() => self.out.push_str(&v.to_string()),
            ValueKind::Number => {
                let f = f64::try_from(v.clone())?;
                self.out.push_str(&python_float(f));
            }
            ValueKind::String => self.string(v.as_str().unwrap_or_default()),
            ValueKind::Map => self.map(v, depth)?,
            ValueKind::Seq | ValueKind::Iterable => {
                let items: Vec<Value> = v.try_iter()?.collect();
                self.open('[', items.is_empty());
                for (i, it) in items.iter().enumerate() {
                    self.sep(i, depth + 1);
                    self.value(it, depth + 1)?;
                }
                self.close(']', items.is_empty(), depth);
            }
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("tojson: a {other} is not JSON serializable"),
                ));
            }
        }
        Ok(())
    }

    fn map(&mut self, v: &Value, depth: usize) -> Result<(), Error> {
        let mut keys: Vec<Value> = v.try_iter()?.collect();
        if self.sort_keys {
            keys.sort();
        }
        self.open('{', keys.is_empty());
        for (i, k) in keys.iter().enumerate() {
            self.sep(i, depth + 1);
            match k.as_str() {
                Some(s) => self.string(s),
                None => self.string(&k.to_string()),
            }
            let key = self.key.clone();
            self.out.push_str(&key);
            self.value(&v.get_item(k)?, depth + 1)?;
        }
        self.close('}', keys.is_empty(), depth);
        Ok(())
    }

    fn open(&mut self, c: char, _empty: bool) {
        self.out.push(c);
    }

    fn sep(&mut self, i: usize, depth: usize) {
        if i > 0 {
            let item = self.item.clone();
            self.out.push_str(&item);
        }
        if let Some(n) = self.indent {
            self.out.push('\n');
            self.out.push_str(&" ".repeat(n * depth));
        }
    }

    fn close(&mut self, c: char, empty: bool, depth: usize) {
        if let (Some(n), false) = (self.indent, empty) {
            self.out.push('\n');
            self.out.push_str(&" ".repeat(n * depth));
        }
        self.out.push(c);
    }

    /// Python's `json` string escaping: `"`, `\`, and control characters below U+0020
    /// (`\n`, `\r`, `\t`, `\b`, `\f` by name, the others as `\u00XX`); everything else as is
    /// unless `ensure_ascii`.
    fn string(&mut self, s: &str) {
        self.out.push('"');
        for c in s.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                '\r' => self.out.push_str("\\r"),
                '\t' => self.out.push_str("\\t"),
                '\u{8}' => self.out.push_str("\\b"),
                '\u{c}' => self.out.push_str("\\f"),
                c if (c as u32) < 0x20 => self.out.push_str(&format!("\\u{:04x}", c as u32)),
                c if self.ensure_ascii && !c.is_ascii() => {
                    let mut buf = [0u16; 2];
                    for unit in c.encode_utf16(&mut buf) {
                        self.out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }
}

/// Python's `repr(float)`: the shortest round-trip digits, positional for exponents in
/// -4..16, otherwise `d.ddde±XX`; integral values keep a `.0`; non-finite ones as `json.dumps`
/// writes them (`NaN`, `Infinity`).
pub fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // `{:e}` gives the shortest round-trip digits: "-1.2345e-7".
    let sci = format!("{f:e}");
    let (mant, exp) = sci.split_once('e').expect("`{:e}` has an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` exponent is an integer");
    let (sign, mant) = match mant.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mant),
    };
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exp) {
        let n = digits.len() as i32;
        let body = if exp < 0 {
            format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
        } else if exp + 1 >= n {
            format!("{digits}{}.0", "0".repeat((exp + 1 - n) as usize))
        } else {
            let (a, b) = digits.split_at((exp + 1) as usize);
            format!("{a}.{b}")
        };
        format!("{sign}{body}")
    } else {
        let m = if digits.len() == 1 {
            digits
        } else {
            format!("{}.{}", &digits[..1], &digits[1..])
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{m}e{esign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_float_repr() {
        let cases = [
            (0.5, "0.5"),
            (2.0, "2.0"),
            (21.5, "21.5"),
            (-0.75, "-0.75"),
            (1e-7, "1e-07"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123456789012345.0, "123456789012345.0"),
            (0.0001, "0.0001"),
            (0.00012, "0.00012"),
            (1e-5, "1e-05"),
            (0.1 + 0.2, "0.30000000000000004"),
            (-1e300, "-1e+300"),
            (0.0, "0.0"),
        ];
        for (f, want) in cases {
            assert_eq!(python_float(f), want, "{f}");
        }
    }

    fn render(src: &str, messages: Json, opts: &RenderOptions) -> Result<String, ChatError> {
        ChatTemplate::new(src, Map::new(), "t")?.render(&messages, opts)
    }

    #[test]
    fn tojson_is_pythons_json_dumps() {
        let opts = RenderOptions::default();
        let m = serde_json::json!([{"b": [1, 2.5, {}], "a": "x\"\n\u{1}é", "c": null, "d": true, "e": []}]);
        let got = render("{{ messages[0] | tojson }}", m.clone(), &opts).unwrap();
        assert_eq!(
            got,
            r#"{"b": [1, 2.5, {}], "a": "x\"\n\u0001é", "c": null, "d": true, "e": []}"#
        );
        let got = render(
            "{{ messages[0] | tojson(indent=2, sort_keys=true) }}",
            m,
            &opts,
        )
        .unwrap();
        assert_eq!(
            got,
            "{\n  \"a\": \"x\\\"\\n\\u0001é\",\n  \"b\": [\n    1,\n    2.5,\n    {}\n  ],\n  \"c\": null,\n  \"d\": true,\n  \"e\": []\n}"
        );
    }

    #[test]
    fn raise_exception_and_syntax_errors_are_typed() {
        let e = render(
            "{{ raise_exception('roles must alternate') }}",
            serde_json::json!([]),
            &RenderOptions::default(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the chat template refused the conversation: roles must alternate"
        );
        let e = ChatTemplate::new("{% if %}", Map::new(), "x/tokenizer_config.json").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("x/tokenizer_config.json: the chat template does not compile"),
            "{e}"
        );
        assert_eq!(e.class(), ErrorClass::Malformed);
    }

    #[test]
    fn python_str_of_none_and_booleans() {
        let got = render(
            "{{ none }} {{ true }} {{ messages[0].x }} {{ messages[0].y }}|{{ nothing }}|",
            serde_json::json!([{"x": false, "y": null}]),
            &RenderOptions::default(),
        )
        .unwrap();
        assert_eq!(got, "None True False None||");
    }

    #[test]
    fn model_dir_template_sources() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ChatTemplate::from_model_dir(dir.path()).unwrap().is_none());
        let cfg = dir.path().join("tokenizer_config.json");
        std::fs::write(
            &cfg,
            r#"{"bos_token": {"content": "<s>"}, "eos_token": "</s>",
                "chat_template": [{"name": "tool_use", "template": "T"},
                                  {"name": "default", "template": "{{ bos_token }}D{{ eos_token }}"}]}"#,
        )
        .unwrap();
        let t = ChatTemplate::from_model_dir(dir.path()).unwrap().unwrap();
        let opts = RenderOptions::default();
        assert_eq!(t.render(&serde_json::json!([]), &opts).unwrap(), "<s>D</s>");
        std::fs::write(dir.path().join("chat_template.jinja"), "J{{ eos_token }}\n").unwrap();
        let t = ChatTemplate::from_model_dir(dir.path()).unwrap().unwrap();
        assert_eq!(t.render(&serde_json::json!([]), &opts).unwrap(), "J</s>");
        std::fs::write(&cfg, r#"{"chat_template": 3}"#).unwrap();
        std::fs::remove_file(dir.path().join("chat_template.jinja")).unwrap();
        let e = ChatTemplate::from_model_dir(dir.path()).unwrap_err();
        assert!(e.to_string().contains("must be a string"), "{e}");
    }

    /// testdata/chat-templates/reference.json: transformers' apply_chat_template on the real
    /// templates (tools/reference/chat_templates.py).
    #[test]
    fn real_templates_match_transformers() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/chat-templates/");
        let doc: Json = serde_json::from_str(
            &std::fs::read_to_string(format!("{root}reference.json")).unwrap(),
        )
        .unwrap();
        let files = [
            ("qwen3", "qwen3.jinja"),
            ("qwen2.5", "qwen2.5.jinja"),
            ("llama3.1", "llama3.1.jinja"),
            ("mistral-v0.3", "mistral-v0.3.jinja"),
        ];
        let mut templates = std::collections::HashMap::new();
        for (name, file) in files {
            let src = std::fs::read_to_string(format!("{root}{file}")).unwrap();
            let special = doc["special_tokens"][name].as_object().unwrap().clone();
            templates.insert(name, ChatTemplate::new(&src, special, file).unwrap());
        }
        let cases = doc["cases"].as_array().unwrap();
        assert!(cases.len() >= 200);
        let (mut texts, mut errors, mut with_tools) = (0, 0, 0);
        for c in cases {
            let t = &templates[c["template"].as_str().unwrap()];
            let opts = RenderOptions {
                add_generation_prompt: c["add_generation_prompt"].as_bool().unwrap(),
                tools: Some(c["tools"].clone()).filter(|t| !t.is_null()),
                extra: c["kwargs"].as_object().unwrap().clone(),
            };
            with_tools += usize::from(opts.tools.is_some());
            let got = t.render(&c["messages"], &opts);
            match (c.get("text"), c.get("error")) {
                (Some(want), _) => {
                    texts += 1;
                    assert_eq!(got.unwrap(), want.as_str().unwrap(), "case {c}");
                }
                (None, Some(want)) => {
                    errors += 1;
                    let e = got.unwrap_err();
                    assert!(
                        matches!(e, ChatError::Raised(ref m) if m == want.as_str().unwrap()),
                        "{e}: case {c}"
                    );
                }
                _ => panic!("case without text or error"),
            }
        }
        assert!(
            texts >= 200 && errors >= 4 && with_tools >= 40,
            "{texts} {errors} {with_tools}"
        );
    }
}
