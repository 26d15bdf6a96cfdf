//! RFC 3339 UTC timestamps, the only time format gym writes or accepts in signed data.

use std::sync::OnceLock;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Formats a Unix time (seconds) as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_unix(secs: i64) -> Option<String> {
    let t = OffsetDateTime::from_unix_timestamp(secs).ok()?;
    t.format(&Rfc3339).ok()
}

/// A fixed "now" for reproducible output, set once by the edge from `SOURCE_DATE_EPOCH` (the
/// reproducible-builds convention); the library never reads the environment itself.
static FIXED_NOW: OnceLock<i64> = OnceLock::new();

/// Makes [`now_rfc3339`] return `secs` (Unix time) for the rest of the process. The first call
/// wins.
pub fn fix_now(secs: i64) {
    let _ = FIXED_NOW.set(secs);
}

/// The current time, or the time given to [`fix_now`].
pub fn now_rfc3339() -> String {
    let secs = FIXED_NOW
        .get()
        .copied()
        .unwrap_or_else(|| OffsetDateTime::now_utc().unix_timestamp());
    format_unix(secs).unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// Checks that `s` is an RFC 3339 timestamp in UTC written with a `Z` suffix.
pub fn validate_utc(s: &str) -> Result<OffsetDateTime, String> {
    if !s.ends_with('Z') {
        return Err(format!("timestamp {s:?} must be UTC and end in 'Z'"));
    }
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("timestamp {s:?} is not RFC 3339: {e}"))
}
