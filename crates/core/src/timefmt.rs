//! Timestamps in the two shapes caasctl writes: RFC 3339 in manifests and journals, and a compact
//! UTC form used in backup IDs and in the names of data directories moved aside.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

/// Formats `t` as RFC 3339 in UTC with whole seconds, for manifests and journals.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Formats `t` as `YYYYMMDDTHHMMSSZ` in UTC, which sorts in time order and is safe in file names.
pub fn compact(t: OffsetDateTime) -> String {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Returns the current time in UTC.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_sorts_and_has_no_separators() {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(compact(t), "20231114T221320Z");
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20Z");
    }
}
