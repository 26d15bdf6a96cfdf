//! STAND-IN (replaced by the data branch).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RewardError(pub String);
impl crate::core::error::Classify for RewardError {
    fn class(&self) -> crate::core::error::ErrorClass {
        crate::core::error::ErrorClass::Malformed
    }
}
pub struct Sample<'a> {
    pub prompt: &'a str,
    pub completion: &'a str,
    pub answer: Option<&'a str>,
    pub extra: &'a serde_json::Map<String, serde_json::Value>,
}
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct RewardSpec {
    pub kind: String,
    pub weight: f64,
}
impl std::str::FromStr for RewardSpec {
    type Err = RewardError;
    fn from_str(s: &str) -> Result<Self, RewardError> {
        Ok(RewardSpec {
            kind: s.into(),
            weight: 1.0,
        })
    }
}
pub struct Scores {
    pub total: Vec<f32>,
    pub components: Vec<(String, Vec<f32>)>,
}
pub struct Rewards {
    specs: Vec<RewardSpec>,
}
impl Rewards {
    pub fn new(specs: &[RewardSpec]) -> Result<Self, RewardError> {
        Ok(Rewards {
            specs: specs.to_vec(),
        })
    }
    pub fn score(&mut self, samples: &[Sample]) -> Result<Scores, RewardError> {
        let v: Vec<f32> = samples
            .iter()
            .map(|s| {
                let n = s.completion.chars().count();
                if n == 0 {
                    0.0
                } else {
                    s.completion.chars().filter(|c| c.is_ascii_digit()).count() as f32 / n as f32
                }
            })
            .collect();
        Ok(Scores {
            total: v.clone(),
            components: vec![("coverage".into(), v)],
        })
    }
    pub fn describe(&self) -> String {
        format!("{:?}", self.specs)
    }
}
