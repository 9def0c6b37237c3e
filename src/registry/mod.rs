//! Talking to registries: which scheme a registry is reached with, the URLs of the
//! distribution API, an HTTP client ([`http`]) and credentials ([`auth`]).
//!
//! The one rule for plain HTTP lives here: a registry is reached without TLS when
//! its host is loopback (`localhost`, 127.0.0.0/8, `[::1]`, with any port; dockerd
//! does the same by itself) or when `[project] insecure_registries` lists it. The
//! plan, the runner, podman's session and doctor all ask [`Scheme::for_host`] or
//! [`plain_http`].

pub mod auth;
pub mod client;
pub mod http;
pub mod index;

use std::fmt;

use crate::spec::reference;

/// How a registry is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    /// `Http` for a loopback host or one listed in `insecure` (`host[:port]`, as
    /// `[project] insecure_registries` writes them), else `Https`.
    pub fn for_host(host: &str, insecure: &[String]) -> Scheme {
        if reference::is_loopback_host(host) || insecure.iter().any(|i| i == host) {
            Scheme::Http
        } else {
            Scheme::Https
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the registry of image `reference` is reached over plain HTTP. A
/// reference without a registry (Docker Hub) or one that does not parse is not.
pub fn plain_http(reference: &str, insecure: &[String]) -> bool {
    reference::parse(reference)
        .ok()
        .and_then(|r| r.domain)
        .is_some_and(|d| Scheme::for_host(&d, insecure) == Scheme::Http)
}

/// The base of the distribution API: `http://127.0.0.1:5000/v2/`.
pub fn v2_url(scheme: Scheme, host: &str) -> String {
    format!("{scheme}://{host}/v2/")
}

/// `…/v2/<repository>/manifests/<tag or digest>`.
pub fn manifest_url(scheme: Scheme, host: &str, repository: &str, reference: &str) -> String {
    format!("{scheme}://{host}/v2/{repository}/manifests/{reference}")
}

/// The manifest media types a reader accepts: lists/indexes and single images,
/// Docker's and OCI's, in one `Accept` value.
pub const MANIFEST_ACCEPT: &str = "application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_listed_registries_are_plain_http() {
        let insecure = vec!["registry.lan:5000".to_string()];
        for host in [
            "127.0.0.1:5000",
            "127.1.2.3",
            "localhost",
            "localhost:5000",
            "LOCALHOST:5000",
            "[::1]",
            "[::1]:5000",
            "registry.lan:5000",
        ] {
            assert_eq!(Scheme::for_host(host, &insecure), Scheme::Http, "{host}");
        }
        for host in [
            "registry.lan",
            "registry.lan:5001",
            "127.example.com:5000",
            "[2001:db8::1]:5000",
            "ghcr.io",
        ] {
            assert_eq!(Scheme::for_host(host, &insecure), Scheme::Https, "{host}");
        }
    }

    #[test]
    fn the_rule_applies_to_a_reference_by_its_registry() {
        let insecure = vec!["registry.lan:5000".to_string()];
        assert!(plain_http("127.0.0.1:5000/acme/api:1", &[]));
        assert!(plain_http(
            "localhost/api@sha256:0123456789abcdef0123456789abcdef",
            &[]
        ));
        assert!(plain_http("registry.lan:5000/api:1", &insecure));
        assert!(!plain_http("registry.lan:5000/api:1", &[]));
        assert!(!plain_http("acme/api:1", &insecure), "Docker Hub");
        assert!(!plain_http("not a reference", &insecure));
    }

    #[test]
    fn urls() {
        assert_eq!(v2_url(Scheme::Http, "[::1]:5000"), "http://[::1]:5000/v2/");
        assert_eq!(
            manifest_url(Scheme::Https, "ghcr.io", "acme/api", "v1"),
            "https://ghcr.io/v2/acme/api/manifests/v1"
        );
    }
}
