//! Math word problems: the final number of a completion, read the way GSM8K evaluations read it.
//!
//! The answer a completion gives is, in this order of preference:
//! 1. the first number after its last `####` (GSM8K's own answer line, lm-eval's strict match);
//! 2. the number inside its last `\boxed{…}` (the MATH / TRL convention; `\frac{a}{b}`,
//!    `\dfrac`, `\text{…}` units, `\$`, `\%` and `{,}` thousands separators are understood);
//! 3. the number after its last "answer is" / "answer:" (case-insensitive);
//! 4. its last number (lm-eval's flexible extract).
//!
//! A number may carry a sign, thousands commas (`1,234`), decimals, a leading `$` and a trailing
//! unit or `%` (`18 dollars`, `5 km`, `75%`); a sentence's full stop is not a decimal point.
//! The reference answer is read the same way: for a GSM8K solution (`…reasoning…\n#### 72`) that
//! is the number after `####`. Two answers are equal when their values agree to 1e-6 relative.

use regex::Regex;

fn number_re() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"[-−]?(?:\$\s?)?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-−]?\$?\.\d+")
            .expect("valid number regex")
    })
}

fn frac_re() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^([-−]?)\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}$").expect("valid frac regex")
    })
}

fn answer_is_re() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| Regex::new(r"(?i)answer\s*(?:is|:)").expect("valid regex"))
}

/// The value of a number as the regex matched it (`-$1,234.5` → -1234.5).
fn value(m: &str) -> Option<f64> {
    let neg = m.starts_with('-') || m.starts_with('−');
    let digits: String = m
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let v: f64 = digits.parse().ok()?;
    Some(if neg { -v } else { v })
}

fn first_number(s: &str) -> Option<f64> {
    number_re().find(s).and_then(|m| value(m.as_str()))
}

fn last_number(s: &str) -> Option<f64> {
    number_re()
        .find_iter(s)
        .last()
        .and_then(|m| value(m.as_str()))
}

/// The content of the last balanced `\boxed{…}`.
pub(super) fn last_boxed(s: &str) -> Option<&str> {
    const OPEN: &str = "\\boxed{";
    let mut end = s.len();
    while let Some(p) = s[..end].rfind(OPEN) {
        let start = p + OPEN.len();
        let mut depth = 1usize;
        for (i, c) in s[start..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(&s[start..start + i]);
                    }
                }
                _ => {}
            }
        }
        end = p;
    }
    None
}

/// The number a `\boxed{}` holds: LaTeX decorations dropped, `\frac{a}{b}` divided.
fn boxed_value(b: &str) -> Option<f64> {
    let mut t = b.trim().replace("{,}", ",").replace("\\!", "");
    for unit in ["\\text{", "\\mbox{", "\\mathrm{"] {
        if let Some(p) = t.find(unit) {
            t.truncate(p);
        }
    }
    let t = t.replace("\\$", "").replace("\\%", "").replace('$', "");
    let t = t.trim();
    if let Some(c) = frac_re().captures(t) {
        let (a, b) = (first_number(&c[2])?, first_number(&c[3])?);
        let v = a / b;
        return v
            .is_finite()
            .then_some(if c[1].is_empty() { v } else { -v });
    }
    first_number(t)
}

/// The final number of a completion (see the module documentation), or `None`.
pub fn final_number(text: &str) -> Option<f64> {
    if let Some(p) = text.rfind("####")
        && let Some(v) = first_number(text[p + 4..].lines().next().unwrap_or(""))
    {
        return Some(v);
    }
    if let Some(v) = last_boxed(text).and_then(boxed_value) {
        return Some(v);
    }
    if let Some(m) = answer_is_re().find_iter(text).last()
        && let Some(v) = first_number(&text[m.end()..])
    {
        return Some(v);
    }
    last_number(text)
}

/// 1 when the completion's final number equals the reference's, else 0 (also when either has
/// no number).
pub fn math_reward(completion: &str, answer: &str) -> f64 {
    match (final_number(completion), final_number(answer)) {
        (Some(a), Some(b)) if (a - b).abs() <= 1e-6 * b.abs().max(1.0) => 1.0,
        _ => 0.0,
    }
}

/// 1 when the completion states its answer in a form a grader can read without guessing: a
/// `#### N` line or a `\boxed{N}` holding a number; else 0.
pub fn math_format_reward(completion: &str) -> f64 {
    let hashes = completion.rfind("####").is_some_and(|p| {
        let line = completion[p + 4..].lines().next().unwrap_or("").trim();
        number_re().find(line).is_some_and(|m| m.start() == 0)
    });
    let boxed = last_boxed(completion).and_then(boxed_value).is_some();
    f64::from(u8::from(hashes || boxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_numbers_like_gsm8k_evaluations() {
        let cases: [(&str, Option<f64>); 20] = [
            ("Natalia sold 48/2 = 24 clips in May.\n#### 72", Some(72.0)),
            ("#### 1,234\nthen 5", Some(1234.0)),
            ("a #### 3 b #### -7 ", Some(-7.0)),
            ("#### $18 dollars", Some(18.0)),
            ("#### 18 dollars.", Some(18.0)),
            ("so \\boxed{\\frac{1}{2}} done", Some(0.5)),
            ("\\boxed{-\\dfrac{3}{4}}", Some(-0.75)),
            ("\\boxed{1{,}000}", Some(1000.0)),
            ("\\boxed{\\$5.50}", Some(5.5)),
            ("\\boxed{75\\%}", Some(75.0)),
            ("\\boxed{12 \\text{ apples}}", Some(12.0)),
            ("\\boxed{2} then \\boxed{unclosed", Some(2.0)),
            ("The answer is 42. Then 7 more steps.", Some(42.0)),
            ("Answer: $3,000 in total, 2 days", Some(3000.0)),
            ("He pays 3 * 4 = 12 dollars.", Some(12.0)),
            ("costs $1,000,000 total", Some(1e6)),
            ("x = .5", Some(0.5)),
            ("it is −3", Some(-3.0)),
            ("no numbers", None),
            ("#### \nbut 9", Some(9.0)),
        ];
        for (c, want) in cases {
            assert_eq!(final_number(c), want, "{c:?}");
        }
    }

    #[test]
    fn reward_compares_values_and_reads_gsm8k_solutions() {
        let solution = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72";
        assert_eq!(math_reward("She sold 72 clips.", solution), 1.0);
        assert_eq!(math_reward("\\boxed{72}", solution), 1.0);
        assert_eq!(math_reward("#### 72.0", "72"), 1.0);
        assert_eq!(math_reward("#### 1,234.50", "1234.5"), 1.0);
        assert_eq!(math_reward("She sold 71 clips.", solution), 0.0);
        assert_eq!(math_reward("72 then 24", solution), 0.0);
        assert_eq!(math_reward("nothing", solution), 0.0);
        assert_eq!(math_reward("#### 5", "five"), 0.0);
    }

    #[test]
    fn format_reward_wants_a_stated_answer() {
        assert_eq!(math_format_reward("work...\n#### 72"), 1.0);
        assert_eq!(math_format_reward("so \\boxed{\\frac{1}{2}}"), 1.0);
        assert_eq!(math_format_reward("#### about 72"), 0.0);
        assert_eq!(math_format_reward("\\boxed{x}"), 0.0);
        assert_eq!(math_format_reward("The answer is 72"), 0.0);
    }
}
