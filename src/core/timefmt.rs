//! RFC 3339 UTC timestamps, the only time format gym writes or accepts in signed data.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Formats a Unix time (seconds) as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_unix(secs: i64) -> Option<String> {
    let t = OffsetDateTime::from_unix_timestamp(secs).ok()?;
    t.format(&Rfc3339).ok()
}

/// The current time, or `SOURCE_DATE_EPOCH` when set (reproducible builds convention).
pub fn now_rfc3339() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
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
