//! Docker's image reference grammar (distribution/reference), as far as a pipeline
//! needs it: `[domain[:port]/]path[:tag][@digest]`.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("the reference is empty")]
    Empty,
    #[error("the repository name is {0} characters long (at most 255)")]
    NameTooLong(usize),
    #[error("repository path component `{0}` has uppercase letters")]
    Uppercase(String),
    #[error("`{0}` is not a valid repository path component (lowercase letters and digits, separated by `.`, `_`, `__` or `-`)")]
    Component(String),
    #[error("`{0}` is not a valid registry host[:port]")]
    Domain(String),
    /// A registry port outside 1–65535.
    #[error("port `{0}` is out of range (1–65535)")]
    Port(String),
    #[error("`{0}` is not a valid tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}`)")]
    Tag(String),
    #[error("`{0}` is not a valid digest")]
    Digest(String),
}

/// A parsed reference. `domain` is set only when the first component looks like a
/// host (has `.` or `:`, or is `localhost`), as docker decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub domain: Option<String>,
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    /// `domain/path` — what `docker push` calls the repository.
    pub fn repository(&self) -> String {
        match &self.domain {
            Some(d) => format!("{d}/{}", self.path),
            None => self.path.clone(),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repository())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

pub fn is_valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphanumeric())
        && tag.len() <= 128
        && chars.all(|c| c == '_' || c == '.' || c == '-' || c.is_ascii_alphanumeric())
}

/// One path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
pub fn is_valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `host[:port]` split at the port's colon: `[::1]:5000` → (`[::1]`, `5000`).
/// The host keeps an IPv6 address's brackets; the port is what follows the
/// colon, unchecked.
pub fn split_host_port(domain: &str) -> (&str, Option<&str>) {
    if domain.starts_with('[') {
        return match domain.find(']') {
            Some(close) => match &domain[close + 1..] {
                "" => (domain, None),
                rest => match rest.strip_prefix(':') {
                    Some(p) => (&domain[..close + 1], Some(p)),
                    // `[::1]x`: no valid split; the caller refuses the whole.
                    None => (domain, None),
                },
            },
            None => (domain, None),
        };
    }
    match domain.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (domain, None),
    }
}

/// Why `d` is not a registry `host[:port]`: the host a DNS name, `localhost`, an
/// IPv4 address or a bracketed IPv6 one; the port 1–65535.
fn check_domain(d: &str) -> Result<(), ReferenceError> {
    let (host, port) = split_host_port(d);
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inner) => inner.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !host.is_empty()
                && host.split('.').all(|label| {
                    let b = label.as_bytes();
                    !b.is_empty()
                        && b[0].is_ascii_alphanumeric()
                        && b[b.len() - 1].is_ascii_alphanumeric()
                        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                })
        }
    };
    if !host_ok {
        return Err(ReferenceError::Domain(d.to_string()));
    }
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ReferenceError::Domain(d.to_string()));
        }
        if !p.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n)) {
            return Err(ReferenceError::Port(p.to_string()));
        }
    }
    Ok(())
}

fn looks_like_domain(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost" || first.starts_with('[')
}

/// A `[project] registry` prefix: `host[:port][/path]`, or a path alone (a Docker
/// Hub namespace, `acme`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryPrefix {
    /// `host[:port]`, when the prefix names a registry host.
    pub domain: Option<String>,
    /// The namespace under the host (may be empty: `localhost:5000`).
    pub path: String,
}

/// Parse a registry prefix (SPEC.md §1 "Registries"): `localhost:5000`,
/// `127.0.0.1:5000/acme`, `[::1]:5000/x`, `[2001:db8::1]/repo`,
/// `registry.lan:5000`, or a namespace such as `acme`.
pub fn parse_registry(s: &str) -> Result<RegistryPrefix, ReferenceError> {
    if s.is_empty() {
        return Err(ReferenceError::Empty);
    }
    // A bare host: the first component is the whole prefix.
    let (first, rest) = match s.split_once('/') {
        Some((f, r)) => (f, Some(r)),
        None => (s, None),
    };
    if rest.is_none() && looks_like_domain(first) {
        check_domain(first)?;
        return Ok(RegistryPrefix {
            domain: Some(first.to_string()),
            path: String::new(),
        });
    }
    let r = parse_repository(s)?;
    Ok(RegistryPrefix {
        domain: r.domain,
        path: r.path,
    })
}

/// Parse a registry host as `insecure_registries` lists them: `host[:port]`.
pub fn parse_registry_host(s: &str) -> Result<(), ReferenceError> {
    if s.is_empty() {
        return Err(ReferenceError::Empty);
    }
    if s.contains('/') {
        return Err(ReferenceError::Domain(s.to_string()));
    }
    check_domain(s)
}

/// Parse `[domain/]path[:tag][@sha256:…]`.
pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
    if s.is_empty() {
        return Err(ReferenceError::Empty);
    }
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => {
            let ok = d.split_once(':').is_some_and(|(alg, hex)| {
                !alg.is_empty()
                    && alg
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                    && hex.len() >= 32
                    && hex.bytes().all(|b| b.is_ascii_hexdigit())
            });
            if !ok {
                return Err(ReferenceError::Digest(d.to_string()));
            }
            (r, Some(d.to_string()))
        }
        None => (s, None),
    };
    // The tag is after the last ':' that comes after the last '/'.
    let last_slash = rest.rfind('/').map_or(0, |p| p + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(p) => {
            let t = &rest[last_slash + p + 1..];
            if !is_valid_tag(t) {
                return Err(ReferenceError::Tag(t.to_string()));
            }
            (&rest[..last_slash + p], Some(t.to_string()))
        }
        None => (rest, None),
    };
    if name.is_empty() {
        return Err(ReferenceError::Empty);
    }
    if name.len() > 255 {
        return Err(ReferenceError::NameTooLong(name.len()));
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    let domain = if parts.len() > 1 && looks_like_domain(parts[0]) {
        let d = parts.remove(0);
        check_domain(d)?;
        Some(d.to_string())
    } else {
        None
    };
    for c in &parts {
        if !is_valid_component(c) {
            if c.chars().any(|ch| ch.is_ascii_uppercase())
                && is_valid_component(&c.to_ascii_lowercase())
            {
                return Err(ReferenceError::Uppercase(c.to_string()));
            }
            return Err(ReferenceError::Component(c.to_string()));
        }
    }
    Ok(Reference {
        domain,
        path: parts.join("/"),
        tag,
        digest,
    })
}

/// Parse a repository (no tag, no digest) such as `127.0.0.1:5000/acme/api`.
pub fn parse_repository(s: &str) -> Result<Reference, ReferenceError> {
    let r = parse(s)?;
    if r.tag.is_some() || r.digest.is_some() {
        let t = r.tag.unwrap_or_default();
        return Err(ReferenceError::Component(format!("{}:{t}", r.path)));
    }
    Ok(r)
}

/// Whether a registry host is loopback (always plain HTTP for docker):
/// `localhost`, 127.0.0.0/8, `[::1]`.
pub fn is_loopback_host(domain: &str) -> bool {
    let (host, _) = split_host_port(domain);
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner
            .parse::<std::net::Ipv6Addr>()
            .is_ok_and(|a| a.is_loopback());
    }
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
}

/// `{branch}` as a tag, the way docker/metadata-action does it: `/` and every
/// character outside `[A-Za-z0-9_.-]` become `-`, a leading `.` or `-` is dropped,
/// at most 128 characters. A longer name is cut to 120 and ends in `-` and 7 hex
/// digits of the SHA-256 of the whole name, so two long branches that share
/// their first 120 characters still get different tags.
pub fn sanitize_tag(s: &str) -> String {
    let replaced: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = replaced.trim_start_matches(['.', '-']);
    if trimmed.len() <= MAX_TAG {
        return trimmed.to_string();
    }
    use sha2::Digest;
    let hash = sha2::Sha256::digest(s.as_bytes());
    let short: String = hash.iter().take(4).map(|b| format!("{b:02x}")).collect();
    // Only ASCII is left after the replacement: byte and char counts agree.
    format!("{}-{}", &trimmed[..MAX_TAG - 8], &short[..7])
}

/// The longest tag docker accepts.
const MAX_TAG: usize = 128;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_references() {
        for s in [
            "busybox",
            "acme/api",
            "127.0.0.1:5000/acme/api/arm64v8:0123456",
            "localhost/x",
            "localhost:5000/x:latest",
            "registry.example.com/a/b_c/d__e/f-g--h:V1.2.3_x-y",
            "reg/acme/api@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "[::1]:5000/x:y",
            "[2001:db8::1]/repo",
            "[2001:db8::1]:443/repo/x:1",
            "localhost:65535/x",
        ] {
            assert!(parse(s).is_ok(), "{s}: {:?}", parse(s));
        }
    }

    #[test]
    fn invalid_references() {
        let cases = [
            ("", ReferenceError::Empty),
            ("Acme/api", ReferenceError::Uppercase("Acme".into())),
            ("acme/-api", ReferenceError::Component("-api".into())),
            ("acme//api", ReferenceError::Component("".into())),
            ("acme/a..b", ReferenceError::Component("a..b".into())),
            ("acme/api:.bad", ReferenceError::Tag(".bad".into())),
            (
                "acme/api:has space",
                ReferenceError::Tag("has space".into()),
            ),
            (
                "acme/api:feat/x",
                ReferenceError::Component("api:feat".into()),
            ),
            ("a@sha256:zz", ReferenceError::Digest("sha256:zz".into())),
            (
                "bad_host.:5000/x",
                ReferenceError::Domain("bad_host.:5000".into()),
            ),
            ("localhost:0/x", ReferenceError::Port("0".into())),
            ("reg.lan:70000/x", ReferenceError::Port("70000".into())),
            ("[::1]:99999/x", ReferenceError::Port("99999".into())),
            ("[::1]x/y", ReferenceError::Domain("[::1]x".into())),
            ("[zz::1]/y", ReferenceError::Domain("[zz::1]".into())),
            ("reg.lan:/x", ReferenceError::Domain("reg.lan:".into())),
        ];
        for (s, want) in cases {
            assert_eq!(parse(s), Err(want), "{s}");
        }
        let long_tag = format!("x:{}", "a".repeat(129));
        assert!(matches!(parse(&long_tag), Err(ReferenceError::Tag(_))));
        let long_name = format!("{}:t", "a".repeat(256));
        assert_eq!(parse(&long_name), Err(ReferenceError::NameTooLong(256)));
    }

    #[test]
    fn tag_grammar() {
        assert!(is_valid_tag("latest"));
        assert!(is_valid_tag("_x.y-z"));
        assert!(is_valid_tag(&"a".repeat(128)));
        assert!(!is_valid_tag(&"a".repeat(129)));
        assert!(!is_valid_tag("-x"));
        assert!(!is_valid_tag(".x"));
        assert!(!is_valid_tag(""));
        assert!(!is_valid_tag("a+b"));
    }

    #[test]
    fn branch_sanitising() {
        assert_eq!(sanitize_tag("feature/login"), "feature-login");
        assert_eq!(sanitize_tag("feat/$(reboot)"), "feat---reboot-");
        assert_eq!(sanitize_tag("-.hidden"), "hidden");
        assert_eq!(sanitize_tag("a b;c\nd"), "a-b-c-d");
        assert_eq!(sanitize_tag("Ünïcode"), "-n-code".trim_start_matches('-'));
        assert_eq!(sanitize_tag(&"x".repeat(300)).len(), 128);
        assert_eq!(sanitize_tag(&"x".repeat(128)), "x".repeat(128));
        let long = |end: &str| sanitize_tag(&format!("feature/{}{end}", "y".repeat(130)));
        assert_ne!(long("a"), long("b"), "two long branches share a tag");
        assert!(is_valid_tag(&long("a")) && long("a").len() == 128);
        assert_eq!(long("a"), long("a"));
        assert!(is_valid_tag(&sanitize_tag("release/1.2")));
    }

    #[test]
    fn loopback() {
        for host in [
            "127.0.0.1:5000",
            "127.1.2.3",
            "localhost:5000",
            "localhost",
            "[::1]:5000",
            "[::1]",
            "[0:0:0:0:0:0:0:1]:5000",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "registry.lan:5000",
            "127.example.com:5000",
            "[2001:db8::1]:5000",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn host_and_port() {
        assert_eq!(split_host_port("[::1]:5000"), ("[::1]", Some("5000")));
        assert_eq!(split_host_port("[2001:db8::1]"), ("[2001:db8::1]", None));
        assert_eq!(split_host_port("reg.lan:5000"), ("reg.lan", Some("5000")));
        assert_eq!(split_host_port("localhost"), ("localhost", None));
    }

    #[test]
    fn registry_prefixes() {
        let host = |s: &str| parse_registry(s).map(|r| (r.domain, r.path));
        for (s, domain, path) in [
            ("localhost:5000", Some("localhost:5000"), ""),
            ("127.0.0.1:5000", Some("127.0.0.1:5000"), ""),
            ("registry.lan:5000", Some("registry.lan:5000"), ""),
            ("registry.lan", Some("registry.lan"), ""),
            ("[::1]:5000", Some("[::1]:5000"), ""),
            ("[::1]:5000/x", Some("[::1]:5000"), "x"),
            ("[2001:db8::1]/repo", Some("[2001:db8::1]"), "repo"),
            (
                "127.0.0.1:5000/acme/team",
                Some("127.0.0.1:5000"),
                "acme/team",
            ),
            ("acme", None, "acme"),
        ] {
            assert_eq!(
                host(s),
                Ok((domain.map(str::to_string), path.to_string())),
                "{s}"
            );
        }
        use ReferenceError::{Domain, Port, Uppercase};
        for (registry, error) in [
            ("localhost:0", Port("0".into())),
            ("127.0.0.1:70000/acme", Port("70000".into())),
            ("https://reg.lan/acme", Domain("https:".into())),
            ("reg.lan:5000/Acme", Uppercase("Acme".into())),
        ] {
            assert_eq!(parse_registry(registry), Err(error), "{registry}");
        }
        assert!(parse_registry("[::1:5000").is_err());
        assert!(parse_registry_host("[::1]:5000").is_ok());
        assert!(parse_registry_host("registry.lan:5000").is_ok());
        assert_eq!(
            parse_registry_host("registry.lan:0"),
            Err(ReferenceError::Port("0".into()))
        );
        assert!(parse_registry_host("registry.lan/x").is_err());
    }
}
