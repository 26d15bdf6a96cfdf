//! STAND-IN (replaced by the data branch).
use std::path::Path;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DataError(pub String);
impl crate::core::error::Classify for DataError {
    fn class(&self) -> crate::core::error::ErrorClass {
        crate::core::error::ErrorClass::Malformed
    }
}
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Message {
    pub role: String,
    pub content: String,
}
#[derive(Debug, Clone)]
pub struct Example {
    pub line: usize,
    pub prompt: String,
    pub answer: Option<String>,
    pub extra: serde_json::Map<String, serde_json::Value>,
}
#[derive(Debug, Clone, Copy)]
pub enum ChatTemplate {
    Qwen3 { enable_thinking: bool },
    None,
}
pub fn load_jsonl(path: &Path, t: ChatTemplate) -> Result<Vec<Example>, DataError> {
    let s = std::fs::read_to_string(path).map_err(|e| DataError(e.to_string()))?;
    parse_jsonl(&s, &path.display().to_string(), t)
}
pub fn parse_jsonl(text: &str, origin: &str, _t: ChatTemplate) -> Result<Vec<Example>, DataError> {
    let mut v = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let mut o: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(l).map_err(|e| DataError(format!("{origin}:{}: {e}", i + 1)))?;
        let prompt = o
            .remove("prompt")
            .and_then(|p| p.as_str().map(String::from))
            .ok_or_else(|| DataError(format!("{origin}:{}: no prompt", i + 1)))?;
        let answer = o
            .remove("answer")
            .map(|a| a.as_str().map(String::from).unwrap_or(a.to_string()));
        v.push(Example {
            line: i + 1,
            prompt,
            answer,
            extra: o,
        });
    }
    Ok(v)
}
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sampler {
    pub seed: u64,
    pub epoch: u64,
    pub pos: usize,
    pub len: usize,
}
impl Sampler {
    pub fn new(len: usize, seed: u64) -> Self {
        Sampler {
            seed,
            epoch: 0,
            pos: 0,
            len,
        }
    }
    fn order(&self) -> Vec<usize> {
        use rand::{SeedableRng, seq::SliceRandom};
        let mut o: Vec<usize> = (0..self.len).collect();
        o.shuffle(&mut rand::rngs::StdRng::seed_from_u64(
            self.seed ^ self.epoch.wrapping_mul(0x9E3779B97F4A7C15),
        ));
        o
    }
    pub fn next_batch(&mut self, k: usize) -> Vec<usize> {
        let mut out = Vec::new();
        while out.len() < k {
            if self.pos >= self.len {
                self.pos = 0;
                self.epoch += 1;
            }
            out.push(self.order()[self.pos]);
            self.pos += 1;
        }
        out
    }
}
