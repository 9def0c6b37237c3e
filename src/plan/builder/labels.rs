//! The OCI labels every build gets, from the commit.

use crate::context::GitContext;
use crate::spec::vars::GitValues;

/// `org.opencontainers.image.{revision, source, created, version}` where known.
pub(super) fn oci_labels(ctx: &GitContext, git: &GitValues) -> Vec<(String, String)> {
    let mut v = Vec::new();
    if let Some(sha) = &ctx.sha {
        v.push(("org.opencontainers.image.revision".to_string(), sha.clone()));
    }
    if let Some(url) = &ctx.source_url {
        v.push(("org.opencontainers.image.source".to_string(), url.clone()));
    }
    if let Some(t) = ctx.commit_time {
        v.push(("org.opencontainers.image.created".to_string(), rfc3339(t)));
    }
    if let Some(ver) = git.version.as_ref() {
        v.push(("org.opencontainers.image.version".to_string(), ver.clone()));
    } else if let Some(s) = &git.short_sha {
        v.push(("org.opencontainers.image.version".to_string(), s.clone()));
    }
    v
}

/// Seconds since the epoch → `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
