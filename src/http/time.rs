//! Times in query strings: RFC 3339 or Unix seconds.

/// RFC 3339 or unix seconds.
pub fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(secs) = text.trim().parse::<i64>() {
        return Ok(secs);
    }
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.timestamp())
        .map_err(|_| {
            format!("{text:?} is neither RFC 3339 (2026-01-02T15:04:05Z) nor unix seconds")
        })
}
