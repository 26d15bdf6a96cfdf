//! Training data in the formats the Hub stores: JSON Lines, JSON (an array of objects, or JSON
//! Lines in a `.json` file, as `datasets`' json loader accepts), and Parquet; and the files of a
//! hub dataset repository chosen by split (and configuration).
//!
//! Every format is read as a stream: a JSONL or JSON file one line or array element at a time,
//! a Parquet file one row at a time through the row-group pages (never a whole file or a whole
//! decoded row group in memory). Each row becomes an [`Example`] through the same rules as a
//! JSONL line ([`data::parse_value`]), after the column mapping: `--prompt-column C` makes
//! column `C` the prompt (a string) or the `messages` (a list of `{role, content}`),
//! `--answer-column C` makes `C` the answer. Every other column is kept for the scorers.
//! Errors name the file and the 1-based line, array element or row.
//!
//! Hub dataset repositories keep data files by split the way `datasets` finds them: a file
//! whose name starts with the split (`train-00000-of-00001.parquet`, `train.jsonl`) or that
//! sits in a folder named after it (`main/train/0000.parquet`). The first folder of such a path
//! is its configuration (`main/…`, `socratic/…` in `openai/gsm8k`); when a split exists in more
//! than one configuration, `--data-config` chooses. Parquet files are preferred over JSON when
//! a split has both.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use parquet::file::reader::{FileReader, SerializedFileReader};
use serde::de::{Deserializer as _, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::data::{self, ChatTemplate, DataError, Example};
use crate::core::error::{Classify, ErrorClass};

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("{path}: not a readable Parquet file: {message}")]
    Parquet { path: String, message: String },
    #[error("{origin}: no column {column:?} (columns: {available})")]
    Column {
        origin: String,
        column: String,
        available: String,
    },
    #[error("{path}: unknown data format (expected .jsonl, .json or .parquet)")]
    Format { path: String },
    #[error("{repo}: no data files for split {split:?}{config} (data files: {available})")]
    NoSplit {
        repo: String,
        split: String,
        config: String,
        available: String,
    },
    #[error(
        "{repo}: split {split:?} exists in several configurations ({configs}); choose one with --data-config"
    )]
    Configs {
        repo: String,
        split: String,
        configs: String,
    },
}

impl Classify for DatasetError {
    fn class(&self) -> ErrorClass {
        match self {
            DatasetError::Data(e) => e.class(),
            DatasetError::Parquet { .. } => ErrorClass::Malformed,
            DatasetError::Format { .. } => ErrorClass::Unsupported,
            DatasetError::Column { .. }
            | DatasetError::NoSplit { .. }
            | DatasetError::Configs { .. } => ErrorClass::Usage,
        }
    }
}

/// Which columns hold the prompt and the answer (`None`: `prompt`/`messages` and `answer`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Columns {
    pub prompt: Option<String>,
    pub answer: Option<String>,
}

/// A data file's format, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Json,
    Parquet,
}

impl Format {
    pub fn of(path: &str) -> Option<Format> {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".jsonl") {
            Some(Format::Jsonl)
        } else if lower.ends_with(".json") {
            Some(Format::Json)
        } else if lower.ends_with(".parquet") {
            Some(Format::Parquet)
        } else {
            None
        }
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> DatasetError + '_ {
    move |source| {
        DataError::Io {
            path: path.display().to_string(),
            source,
        }
        .into()
    }
}

/// Applies the column mapping to one row. Columns named `prompt`, `messages` or `answer` that
/// the mapping displaces are returned, to be kept with the other columns.
fn map_columns(
    mut obj: Map<String, Value>,
    cols: &Columns,
    origin: &str,
) -> Result<(Value, Vec<(String, Value)>), DatasetError> {
    let missing = |obj: &Map<String, Value>, c: &str| DatasetError::Column {
        origin: origin.to_string(),
        column: c.to_string(),
        available: obj.keys().cloned().collect::<Vec<_>>().join(", "),
    };
    let mut displaced = Vec::new();
    let mut take = |obj: &mut Map<String, Value>, keys: &[&str]| {
        for k in keys {
            if let Some(v) = obj.remove(*k) {
                displaced.push((k.to_string(), v));
            }
        }
    };
    if let Some(c) = &cols.prompt {
        let v = obj.remove(c).ok_or_else(|| missing(&obj, c))?;
        take(&mut obj, &["prompt", "messages"]);
        let key = if v.is_array() { "messages" } else { "prompt" };
        obj.insert(key.into(), v);
    }
    if let Some(c) = &cols.answer {
        let v = obj.remove(c).ok_or_else(|| missing(&obj, c))?;
        take(&mut obj, &["answer"]);
        obj.insert("answer".into(), v);
    }
    Ok((Value::Object(obj), displaced))
}

/// Turns rows into examples as they come.
struct Sink<'a> {
    origin: String,
    cols: &'a Columns,
    template: ChatTemplate<'a>,
    out: &'a mut Collector,
}

impl Sink<'_> {
    fn push(&mut self, value: Value, n: usize) -> Result<(), DatasetError> {
        let (value, displaced) = match value {
            Value::Object(obj) => map_columns(obj, self.cols, &format!("{}:{n}", self.origin))?,
            other => (other, Vec::new()),
        };
        let mut ex = data::parse_value(value, &self.origin, n, self.template)?;
        ex.extra.extend(displaced);
        self.out.push(ex)
    }
}

/// Reads one local data file (format by extension), appending its examples to `out`.
fn load_file_into(
    path: &Path,
    cols: &Columns,
    template: ChatTemplate<'_>,
    out: &mut Collector,
) -> Result<(), DatasetError> {
    let name = path.display().to_string();
    let format = Format::of(&name).ok_or(DatasetError::Format { path: name.clone() })?;
    let mut sink = Sink {
        origin: name,
        cols,
        template,
        out,
    };
    let before = sink.out.len();
    match format {
        Format::Parquet => read_parquet(path, &mut sink)?,
        Format::Jsonl => read_jsonl(
            BufReader::new(File::open(path).map_err(io(path))?),
            &mut sink,
        )?,
        Format::Json => read_json(path, &mut sink)?,
    }
    if sink.out.len() == before {
        return Err(DataError::Empty {
            origin: sink.origin,
        }
        .into());
    }
    Ok(())
}

/// Reads data files in order into one list of examples: in memory while they take less than
/// [`SPOOL_ABOVE`] bytes, else spooled to a temporary file.
pub fn load_files(
    paths: &[PathBuf],
    cols: &Columns,
    template: ChatTemplate<'_>,
) -> Result<Examples, DatasetError> {
    load_files_with(paths, cols, template, SPOOL_ABOVE)
}

/// [`load_files`] with the spooling threshold given.
pub fn load_files_with(
    paths: &[PathBuf],
    cols: &Columns,
    template: ChatTemplate<'_>,
    spool_above: usize,
) -> Result<Examples, DatasetError> {
    let mut out = Collector::new(spool_above);
    for p in paths {
        load_file_into(p, cols, template, &mut out)?;
    }
    out.finish()
}

/// Examples held in memory up to this many bytes (text and extra fields); beyond, all go to
/// an unlinked temporary file and only their offsets stay in memory (8 bytes each).
pub const SPOOL_ABOVE: usize = 64 << 20;

/// The examples of a dataset: in memory, or spooled to disk and read back by index.
#[derive(Debug)]
pub enum Examples {
    Memory(Vec<Example>),
    Spooled(Spool),
}

impl From<Vec<Example>> for Examples {
    fn from(v: Vec<Example>) -> Self {
        Examples::Memory(v)
    }
}

impl Examples {
    pub fn len(&self) -> usize {
        match self {
            Examples::Memory(v) => v.len(),
            Examples::Spooled(s) => s.offsets.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Example `i` (panics when out of range, like indexing).
    pub fn get(&self, i: usize) -> Result<std::borrow::Cow<'_, Example>, DatasetError> {
        match self {
            Examples::Memory(v) => Ok(std::borrow::Cow::Borrowed(&v[i])),
            Examples::Spooled(s) => s.get(i).map(std::borrow::Cow::Owned),
        }
    }

    /// All examples in memory (for small sets: tests).
    pub fn into_vec(self) -> Result<Vec<Example>, DatasetError> {
        self.first(usize::MAX)
    }

    /// The first `n` examples in memory (evaluation with a limit reads no more).
    pub fn first(self, n: usize) -> Result<Vec<Example>, DatasetError> {
        match self {
            Examples::Memory(mut v) => {
                v.truncate(n);
                Ok(v)
            }
            Examples::Spooled(s) => (0..s.offsets.len().min(n)).map(|i| s.get(i)).collect(),
        }
    }
}

/// Examples as JSON records in an unlinked temporary file, with their start offsets.
#[derive(Debug)]
pub struct Spool {
    file: std::sync::Mutex<File>,
    /// Start of each record; the last record ends at `end`.
    offsets: Vec<u64>,
    end: u64,
}

impl Spool {
    fn io(e: std::io::Error) -> DatasetError {
        DataError::Io {
            path: "<spooled examples>".into(),
            source: e,
        }
        .into()
    }

    fn get(&self, i: usize) -> Result<Example, DatasetError> {
        use std::io::{Read as _, Seek as _, SeekFrom};
        let start = self.offsets[i];
        let stop = self.offsets.get(i + 1).copied().unwrap_or(self.end);
        let mut buf = vec![0u8; (stop - start) as usize];
        {
            let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
            f.seek(SeekFrom::Start(start)).map_err(Self::io)?;
            f.read_exact(&mut buf).map_err(Self::io)?;
        }
        serde_json::from_slice(&buf)
            .map_err(|e| Self::io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
    }
}

/// Gathers examples as they are parsed; moves them to a [`Spool`] past the threshold.
enum Collector {
    Memory {
        v: Vec<Example>,
        bytes: usize,
        limit: usize,
    },
    Spool {
        w: std::io::BufWriter<File>,
        offsets: Vec<u64>,
        at: u64,
    },
}

impl Collector {
    fn new(limit: usize) -> Collector {
        Collector::Memory {
            v: Vec::new(),
            bytes: 0,
            limit,
        }
    }

    fn len(&self) -> usize {
        match self {
            Collector::Memory { v, .. } => v.len(),
            Collector::Spool { offsets, .. } => offsets.len(),
        }
    }

    fn push(&mut self, ex: Example) -> Result<(), DatasetError> {
        match self {
            Collector::Memory { v, bytes, limit } => {
                *bytes += ex.prompt.len()
                    + ex.answer.as_ref().map_or(0, |a| a.len())
                    + if ex.extra.is_empty() {
                        0
                    } else {
                        serde_json::to_string(&ex.extra).map_or(0, |s| s.len())
                    }
                    + 64;
                v.push(ex);
                if *bytes > *limit {
                    let held = std::mem::take(v);
                    let file = tempfile::tempfile().map_err(Spool::io)?;
                    *self = Collector::Spool {
                        w: std::io::BufWriter::new(file),
                        offsets: Vec::new(),
                        at: 0,
                    };
                    for e in held {
                        self.push(e)?;
                    }
                }
                Ok(())
            }
            Collector::Spool { w, offsets, at } => {
                use std::io::Write as _;
                let rec = serde_json::to_vec(&ex).map_err(|e| Spool::io(e.into()))?;
                w.write_all(&rec).map_err(Spool::io)?;
                offsets.push(*at);
                *at += rec.len() as u64;
                Ok(())
            }
        }
    }

    fn finish(self) -> Result<Examples, DatasetError> {
        match self {
            Collector::Memory { v, .. } => Ok(Examples::Memory(v)),
            Collector::Spool { w, offsets, at } => {
                let file = w.into_inner().map_err(|e| Spool::io(e.into_error()))?;
                Ok(Examples::Spooled(Spool {
                    file: std::sync::Mutex::new(file),
                    offsets,
                    end: at,
                }))
            }
        }
    }
}

fn read_jsonl(r: impl BufRead, sink: &mut Sink) -> Result<(), DatasetError> {
    for (i, line) in r.lines().enumerate() {
        let line = line.map_err(|source| DataError::Io {
            path: sink.origin.clone(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line).map_err(|e| DataError::Json {
            origin: sink.origin.clone(),
            line: i + 1,
            message: e.to_string(),
        })?;
        sink.push(v, i + 1)?;
    }
    Ok(())
}

/// A `.json` file: an array of objects (read one element at a time), or JSON Lines.
fn read_json(path: &Path, sink: &mut Sink) -> Result<(), DatasetError> {
    let mut r = BufReader::new(File::open(path).map_err(io(path))?);
    let first = loop {
        let buf = r.fill_buf().map_err(io(path))?;
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => break Some(buf[i]),
            None if buf.is_empty() => break None,
            None => {
                let n = buf.len();
                r.consume(n);
            }
        }
    };
    if first != Some(b'[') {
        return read_jsonl(r, sink);
    }
    let mut failure = None;
    let mut de = serde_json::Deserializer::from_reader(r);
    let res = de.deserialize_seq(Elements {
        sink,
        failure: &mut failure,
    });
    if let Some(e) = failure {
        return Err(e);
    }
    res.and_then(|_| de.end()).map_err(|e| {
        DataError::Json {
            origin: path.display().to_string(),
            line: e.line(),
            message: format!("{e} (in the array)"),
        }
        .into()
    })
}

/// Feeds each element of a JSON array to the sink as it is parsed.
struct Elements<'a, 'b> {
    sink: &'a mut Sink<'b>,
    failure: &'a mut Option<DatasetError>,
}

impl<'de> Visitor<'de> for Elements<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut n = 0;
        while let Some(v) = seq.next_element::<Value>()? {
            n += 1;
            if let Err(e) = self.sink.push(v, n) {
                *self.failure = Some(e);
                return Err(serde::de::Error::custom("stopped"));
            }
        }
        Ok(())
    }
}

fn read_parquet(path: &Path, sink: &mut Sink) -> Result<(), DatasetError> {
    let pq = |e: parquet::errors::ParquetError| DatasetError::Parquet {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let file = File::open(path).map_err(io(path))?;
    let reader = SerializedFileReader::new(file).map_err(pq)?;
    let names: Vec<String> = reader
        .metadata()
        .file_metadata()
        .schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    for c in [&sink.cols.prompt, &sink.cols.answer].into_iter().flatten() {
        if !names.contains(c) {
            return Err(DatasetError::Column {
                origin: sink.origin.clone(),
                column: c.clone(),
                available: names.join(", "),
            });
        }
    }
    for (i, row) in reader.get_row_iter(None).map_err(pq)?.enumerate() {
        let row = row.map_err(pq)?;
        sink.push(row.to_json_value(), i + 1)?;
    }
    Ok(())
}

/// Does `path` (in a dataset repository) hold data of `split`? Returns its configuration
/// (the first folder, or "" at the top level or directly in the split's folder).
fn split_of<'p>(path: &'p str, split: &str) -> Option<&'p str> {
    let parts: Vec<&str> = path.split('/').collect();
    let (file, dirs) = parts.split_last()?;
    let by_name = file.strip_prefix(split).is_some_and(|rest| {
        rest.is_empty() || rest.starts_with(|c: char| "-._ ".contains(c) || c.is_ascii_digit())
    });
    let by_dir = dirs.contains(&split);
    if !(by_name || by_dir) {
        return None;
    }
    match dirs.first() {
        Some(d) if *d != split => Some(d),
        _ => Some(""),
    }
}

const NOT_DATA: [&str; 3] = ["dataset_infos.json", "dataset_dict.json", "state.json"];

/// The data files of `split` in a dataset repository's file list.
pub fn split_files(
    repo: &str,
    listing: &[String],
    split: &str,
    config: Option<&str>,
) -> Result<Vec<String>, DatasetError> {
    let data: Vec<&String> = listing
        .iter()
        .filter(|p| Format::of(p).is_some())
        .filter(|p| {
            let name = p.rsplit('/').next().unwrap_or(p);
            !name.starts_with('.') && !NOT_DATA.contains(&name)
        })
        .collect();
    let mut hits: Vec<(&str, &String)> = data
        .iter()
        .filter_map(|p| split_of(p, split).map(|c| (c, *p)))
        .filter(|(c, _)| config.is_none_or(|want| *c == want))
        .collect();
    if hits
        .iter()
        .any(|(_, p)| Format::of(p) == Some(Format::Parquet))
    {
        hits.retain(|(_, p)| Format::of(p) == Some(Format::Parquet));
    }
    if hits.is_empty() {
        return Err(DatasetError::NoSplit {
            repo: repo.into(),
            split: split.into(),
            config: config
                .map(|c| format!(" in configuration {c:?}"))
                .unwrap_or_default(),
            available: if data.is_empty() {
                "none".into()
            } else {
                data.iter()
                    .take(12)
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        });
    }
    let mut configs: Vec<&str> = hits.iter().map(|(c, _)| *c).collect();
    configs.sort();
    configs.dedup();
    if configs.len() > 1 {
        return Err(DatasetError::Configs {
            repo: repo.into(),
            split: split.into(),
            configs: configs.join(", "),
        });
    }
    let mut files: Vec<String> = hits.into_iter().map(|(_, p)| p.clone()).collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str, text: &str, cols: &Columns) -> Result<Vec<Example>, DatasetError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        load_files(&[p], cols, ChatTemplate::None).and_then(Examples::into_vec)
    }

    #[test]
    fn json_arrays_and_lines_with_column_mapping() {
        let cols = Columns {
            prompt: Some("question".into()),
            answer: Some("solution".into()),
        };
        let arr = serde_json::json!([{"question": "2+3?", "solution": "#### 5", "id": 1},
                                     {"question": "4+4?", "solution": 8}]);
        let ex = load("d.json", &format!(" {arr}\n"), &cols).unwrap();
        assert_eq!(ex.len(), 2);
        assert_eq!(
            (ex[0].prompt.as_str(), ex[0].answer.as_deref()),
            ("2+3?", Some("#### 5"))
        );
        assert_eq!(ex[0].extra["id"], 1);
        assert_eq!(ex[1].answer.as_deref(), Some("8"));
        let lines = "{\"question\": \"a\", \"solution\": \"b\"}\n\n{\"question\": \"c\", \"solution\": \"d\"}\n";
        let ex = load("d.json", lines, &cols).unwrap();
        assert_eq!((ex[1].line, ex[1].prompt.as_str()), (3, "c"));
        let ex = load("d.jsonl", lines, &cols).unwrap();
        assert_eq!(ex.len(), 2);
    }

    #[test]
    fn errors_name_file_row_and_columns() {
        let cols = Columns {
            prompt: Some("question".into()),
            answer: None,
        };
        let e = load("d.json", r#"[{"question": "a"}, {"q": "b"}]"#, &cols).unwrap_err();
        assert!(
            e.to_string()
                .contains("d.json:2: no column \"question\" (columns: q)"),
            "{e}"
        );
        let e = load("d.json", r#"[{"question": "a"}, 3]"#, &cols).unwrap_err();
        assert!(
            e.to_string().contains("d.json:2: expected a JSON object"),
            "{e}"
        );
        let e = load("d.json", r#"[{"question": "a"},"#, &cols).unwrap_err();
        assert!(e.to_string().contains("invalid JSON"), "{e}");
        let e = load("d.json", "[]", &cols).unwrap_err();
        assert!(e.to_string().contains("no examples"), "{e}");
        let e = load("d.csv", "a,b", &cols).unwrap_err();
        assert!(e.to_string().contains("unknown data format"), "{e}");
        let e = load("d.parquet", "not parquet at all", &cols).unwrap_err();
        assert!(e.to_string().contains("not a readable Parquet file"), "{e}");
        assert_eq!(e.class(), ErrorClass::Malformed);
    }

    #[test]
    fn parquet_written_by_pyarrow_streams_into_examples() {
        // testdata/hub/math.parquet: tools/reference/hub-datasets.py (pyarrow, snappy, two row
        // groups of 16 and 8 rows)
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/hub/math.parquet");
        let cols = Columns {
            prompt: Some("question".into()),
            answer: Some("answer".into()),
        };
        let all = load_files(std::slice::from_ref(&p), &cols, ChatTemplate::None).unwrap();
        assert!(matches!(all, Examples::Memory(_)));
        // the same rows through a spool file (threshold 0: everything spooled)
        let spooled =
            load_files_with(std::slice::from_ref(&p), &cols, ChatTemplate::None, 0).unwrap();
        assert!(matches!(spooled, Examples::Spooled(_)));
        assert_eq!(spooled.len(), 24);
        let ex = all.into_vec().unwrap();
        for i in [0, 15, 16, 23] {
            let s = spooled.get(i).unwrap();
            assert_eq!(
                (s.line, &s.prompt, &s.answer, &s.extra),
                (ex[i].line, &ex[i].prompt, &ex[i].answer, &ex[i].extra)
            );
        }
        let two = spooled.first(2).unwrap();
        assert_eq!((two.len(), two[1].line), (2, 2));
        assert_eq!(ex.len(), 24);
        assert_eq!((ex[0].line, ex[23].line), (1, 24));
        assert!(ex[17].prompt.contains(" has ") && ex[17].prompt.ends_with("have now?"));
        let answer = ex[17].answer.as_deref().unwrap();
        assert!(answer.contains("\n#### "), "{answer}");
        assert_eq!(ex[17].extra["id"], 17);
        assert_eq!(ex[17].extra["messages"][0]["role"], "user");
        assert_eq!(
            ex[17].extra["messages"][0]["content"],
            ex[17].prompt.as_str()
        );
        let e = load_files(
            &[p],
            &Columns {
                prompt: Some("problem".into()),
                answer: None,
            },
            ChatTemplate::None,
        )
        .unwrap_err();
        assert!(
            e.to_string().ends_with(
                "math.parquet: no column \"problem\" (columns: id, question, answer, messages)"
            ),
            "{e}"
        );
    }

    #[test]
    fn splits_and_configurations() {
        let l: Vec<String> = [
            "README.md",
            ".gitattributes",
            "main/train-00000-of-00001.parquet",
            "main/test-00000-of-00001.parquet",
            "socratic/train-00000-of-00001.parquet",
            "socratic/test-00000-of-00001.parquet",
        ]
        .map(String::from)
        .to_vec();
        let e = split_files("openai/gsm8k", &l, "train", None).unwrap_err();
        assert!(e.to_string().contains("(main, socratic)"), "{e}");
        assert_eq!(
            split_files("openai/gsm8k", &l, "train", Some("main")).unwrap(),
            ["main/train-00000-of-00001.parquet"]
        );
        let e = split_files("openai/gsm8k", &l, "validation", Some("main")).unwrap_err();
        assert!(
            e.to_string()
                .contains("no data files for split \"validation\""),
            "{e}"
        );
        let l: Vec<String> = [
            "data/train-00000-of-00002.parquet",
            "data/train-00001-of-00002.parquet",
            "data/train.jsonl",
            "data/training_notes.json",
            "dataset_infos.json",
            "default/train/0000.parquet",
        ]
        .map(String::from)
        .to_vec();
        let e = split_files("o/d", &l, "train", None).unwrap_err();
        assert!(e.to_string().contains("(data, default)"), "{e}");
        assert_eq!(
            split_files("o/d", &l, "train", Some("data")).unwrap(),
            [
                "data/train-00000-of-00002.parquet",
                "data/train-00001-of-00002.parquet"
            ]
        );
        let l: Vec<String> = ["train.jsonl", "test.json"].map(String::from).to_vec();
        assert_eq!(
            split_files("o/d", &l, "train", None).unwrap(),
            ["train.jsonl"]
        );
    }
}
