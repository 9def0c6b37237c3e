//! One retry policy for every command that talks to a registry: one attempt plus
//! at most `retries` more, each after an exponential backoff with jitter, said in
//! a note, and never after a final answer (a 4xx: unauthorized, denied, not
//! found, a bad request) or once the run is cancelled. What is worth another try
//! is the [`Retry`] kind's to say.

use std::time::{Duration, Instant};

use super::executor::StepIo;
use super::process::{Exit, Finished};

/// How often, and how patiently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub retries: u32,
    /// The first delay; it doubles on every retry, up to 30 s.
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 3,
            backoff: Duration::from_secs(1),
        }
    }
}

/// What is being retried: it decides which failures are worth another try and
/// how the note says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry<'a> {
    /// A read-only registry query (`manifest inspect`, a lookup): a list just
    /// pushed can be briefly unreadable while other lists of its repository are
    /// written, so any failure but a final answer is tried again.
    Read(&'a str),
    /// A registry write (push, manifest create/annotate/push): transient
    /// failures only (the network, a 5xx, a 429).
    Write,
    /// `run` of a test or verify: the engine failed before the command ran (exit
    /// 125), for a transient reason (a pull that met a registry's bad moment); the
    /// command's own failure is not retried.
    EngineRun,
}

impl Retry<'_> {
    /// Why `f` is worth another try (the line the note quotes), or `None`.
    fn why(&self, f: &Finished) -> Option<String> {
        let lines = || f.stderr.iter().chain(f.stdout.iter());
        let text = lines().cloned().collect::<Vec<_>>().join("\n");
        match self {
            Retry::Read(_) => (!is_permanent(&text)).then(|| f.first_line()),
            Retry::Write => is_transient(&text).then(|| {
                f.stdout
                    .iter()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .cloned()
                    .unwrap_or_else(|| f.exit.describe())
            }),
            Retry::EngineRun => (f.exit == Exit::Code(125) && is_transient(&text)).then(|| {
                lines()
                    .rev()
                    .find(|l| !l.trim().is_empty() && !l.starts_with("Run '"))
                    .cloned()
                    .unwrap_or_else(|| f.exit.describe())
            }),
        }
    }

    /// A read backs off half as long: it is cheap, and usually answers at once.
    fn base(&self, backoff: Duration) -> Duration {
        match self {
            Retry::Read(_) => backoff / 2,
            Retry::Write | Retry::EngineRun => backoff,
        }
    }

    fn note(&self, why: &str, attempt: u32, retries: u32, delay: Duration) -> String {
        let secs = delay.as_secs_f64();
        match self {
            Retry::Read(what) => format!("{what} failed ({why}); retry {attempt} in {secs:.1}s"),
            Retry::Write | Retry::EngineRun => {
                format!("transient failure ({why}); retry {attempt}/{retries} in {secs:.1}s")
            }
        }
    }
}

impl RetryPolicy {
    /// Run `attempt` until it succeeds, its failure is not worth another try
    /// (`kind`), the retries are spent, or the run is cancelled: the last
    /// failure then.
    pub fn run<T>(
        &self,
        kind: Retry<'_>,
        io: &StepIo<'_>,
        mut attempt: impl FnMut() -> Result<T, Finished>,
    ) -> Result<T, Finished> {
        let mut n = 0u32;
        loop {
            let f = match attempt() {
                Ok(t) => return Ok(t),
                Err(f) => f,
            };
            // A timeout, a cancellation or a program that cannot start is final.
            if !matches!(f.exit, Exit::Code(_)) || n >= self.retries || io.cancelled() {
                return Err(f);
            }
            let Some(why) = kind.why(&f) else {
                return Err(f);
            };
            n += 1;
            let delay = backoff(kind.base(self.backoff), n);
            io.note(&kind.note(&why, n, self.retries, delay));
            if !sleep_unless_cancelled(delay, io) {
                return Err(f);
            }
        }
    }
}

impl RetryPolicy {
    /// Run a registry operation of the client until it succeeds, its error is
    /// final ([`crate::registry::client::Error::transient`]: a 4xx, a wrong
    /// digest), the retries are spent, or the run is cancelled. A 429's or 503's
    /// `Retry-After` is waited for when it is longer than the backoff (at most
    /// 60 s). Without `io` (preflight, doctor) nothing is said and nothing can
    /// cancel.
    pub fn run_registry<T>(
        &self,
        what: &str,
        io: Option<&StepIo<'_>>,
        mut attempt: impl FnMut() -> Result<T, crate::registry::client::Error>,
    ) -> Result<T, crate::registry::client::Error> {
        let mut n = 0u32;
        loop {
            let e = match attempt() {
                Ok(t) => return Ok(t),
                Err(e) => e,
            };
            let Some(after) = e.transient() else {
                return Err(e);
            };
            if n >= self.retries || io.is_some_and(|io| io.cancelled()) {
                return Err(e);
            }
            n += 1;
            let delay = backoff(self.backoff, n)
                .max(after.unwrap_or_default().min(Duration::from_secs(60)));
            let secs = delay.as_secs_f64();
            match io {
                Some(io) => {
                    io.note(&format!(
                        "{what}: transient failure ({e}); retry {n}/{} in {secs:.1}s",
                        self.retries
                    ));
                    if !sleep_unless_cancelled(delay, io) {
                        return Err(e);
                    }
                }
                None => std::thread::sleep(delay),
            }
        }
    }
}

/// Answers that another try cannot change: authentication, not found, a bad
/// request (README: a 401/403/404/400 is never retried). A 429 is not one.
pub fn is_permanent(output: &str) -> bool {
    permanent(&words(output))
}

/// [`is_permanent`] of output already read into [`words`].
fn permanent(o: &str) -> bool {
    let permanent = [
        "unauthorized",
        "authentication required",
        // docker's words for a 401 when it holds no credentials for the registry.
        "no basic auth credentials",
        "denied",
        "not found",
        "manifest unknown",
        "name unknown",
        "400 bad request",
        "invalid reference",
        "no such manifest",
    ];
    (permanent.iter().any(|p| o.contains(p))
        || ["401", "403", "404"].iter().any(|c| has_status(o, c)))
        && !has_status(o, "429")
}

/// What the engine said, lowercased, without the references, URLs and paths
/// in it (each word with a `/`, its trailing `:` or `,` kept): an image named
/// `acme/timeout-proxy` or `acme/access-denied` says nothing about how a push
/// of it failed, yet docker names it in every push (`The push refers to
/// repository […/acme/timeout-proxy/amd64]`).
fn words(output: &str) -> String {
    let mut o = String::with_capacity(output.len());
    for line in output.lines() {
        for (k, w) in line.split_whitespace().enumerate() {
            if k > 0 {
                o.push(' ');
            }
            if w.contains('/') && !w.eq_ignore_ascii_case("i/o") {
                o.extend(w.chars().rev().take_while(|c| *c == ':' || *c == ','));
            } else {
                o.extend(w.chars().map(|c| c.to_ascii_lowercase()));
            }
        }
        o.push('\n');
    }
    o
}

/// Whether `code` stands in `output` as an HTTP status (`status: 429`,
/// `status:429`, `code 404.`, `(403)`), not as part of a port
/// (`127.0.0.1:42903`, `host:429`), a digest or a layer id (`dac429e1`), a
/// version or a size (`429.5MB`).
fn has_status(output: &str, code: &str) -> bool {
    let b = output.as_bytes();
    let at = |i: usize| b.get(i).copied();
    output.match_indices(code).any(|(start, _)| {
        let end = start + code.len();
        let before = start.checked_sub(1).and_then(at);
        let joined_before = match before {
            None => false,
            // `127.0.0.1:429` and `host:429` are ports; `status:429` and
            // `code:429` are statuses.
            Some(b':') => !["status", "code"]
                .iter()
                .any(|w| output[..start - 1].ends_with(w)),
            Some(c) => c.is_ascii_alphanumeric() || b".-_/".contains(&c),
        };
        let joined_after = match at(end) {
            None => false,
            // The end of a sentence (`code 429.`), not a decimal (`429.5MB`).
            Some(b'.') => at(end + 1).is_some_and(|c| c.is_ascii_alphanumeric()),
            Some(c) => c.is_ascii_alphanumeric() || c == b'_',
        };
        !joined_before && !joined_after
    })
}

/// Errors worth retrying: the network or the registry having a bad moment.
pub fn is_transient(output: &str) -> bool {
    let o = words(output);
    if permanent(&o) {
        return false;
    }
    let transient = [
        "connection refused",
        "connection reset",
        "broken pipe",
        "i/o timeout",
        "timeout",
        "timed out",
        "tls handshake",
        "unexpected eof",
        ": eof",
        "no such host",
        "502 bad gateway",
        "503 service unavailable",
        "504 gateway",
        "500 internal server error",
        "too many requests",
        "toomanyrequests",
        "server misbehaving",
        "temporary failure",
    ];
    transient.iter().any(|t| o.contains(t)) || has_status(&o, "429")
}

/// Exponential backoff with ±25 % jitter, capped at 30 s.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(10));
    let capped = exp.min(Duration::from_secs(30));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = 0.75 + (nanos % 1000) as f64 / 2000.0;
    capped.mul_f64(jitter)
}

/// Wait `d`, returning early (false) if the run is cancelled.
pub fn sleep_unless_cancelled(d: Duration, io: &StepIo<'_>) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if io.cancelled() {
            return false;
        }
        std::thread::park_timeout(
            Duration::from_millis(100).min(end.saturating_duration_since(Instant::now())),
        );
    }
    !io.cancelled()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(code: i32, stdout: &[&str], stderr: &[&str]) -> Finished {
        Finished {
            exit: Exit::Code(code),
            stdout: stdout.iter().map(|s| s.to_string()).collect(),
            stderr: stderr.iter().map(|s| s.to_string()).collect(),
            duration: Duration::ZERO,
        }
    }

    #[test]
    fn transient_or_not() {
        assert!(is_transient("Get \"http://127.0.0.1:5000/v2/\": dial tcp 127.0.0.1:5000: connect: connection refused"));
        assert!(is_transient(
            "received unexpected HTTP status: 503 Service Unavailable"
        ));
        assert!(is_transient("toomanyrequests: 429"));
        assert!(!is_transient("unauthorized: authentication required"));
        assert!(!is_transient("manifest unknown"));
        assert!(is_permanent("no such manifest: 127.0.0.1:5000/a/amd64:1"));
        assert!(is_permanent("unauthorized: authentication required"));
        assert!(!is_permanent(
            "received unexpected HTTP status: 500 Internal Server Error"
        ));
        assert!(!is_permanent("toomanyrequests: 429 not found"));
        assert!(!is_transient("some other error"));
    }

    /// docker 28's push to a registry that answers 401, on a port with 429 in
    /// it (a CI run's random port was 42903): final, not a rate limit.
    #[test]
    fn status_codes_are_read_as_statuses_not_inside_ports_or_ids() {
        let push = "The push refers to repository [127.0.0.1:42903/acme/busybox/amd64]\n\
                    dac98f533c7d: Preparing\nno basic auth credentials";
        assert!(is_permanent(push), "a 401 without credentials is final");
        assert!(!is_transient(push));
        for rate_limited in [
            "received unexpected HTTP status: 429 Too Many Requests",
            "unexpected status code 429",
            "StatusCode: 429, \"\"",
            "(HTTP code 429)",
            "toomanyrequests: You have reached your pull rate limit",
        ] {
            assert!(is_transient(rate_limited), "{rate_limited}");
            assert!(!is_permanent(rate_limited), "{rate_limited}");
        }
        for not_a_status in [
            "dial tcp 127.0.0.1:4290: some other error",
            "layer sha256:4291ab: some other error",
            "pushed 429.5MB: some other error",
            "v1.429 some other error",
        ] {
            assert!(!is_transient(not_a_status), "{not_a_status}");
        }
        for with_punctuation in [
            "unexpected status:429",
            "http status code 429.",
            "statuscode:429, retry later",
        ] {
            assert!(is_transient(with_punctuation), "{with_punctuation}");
        }
        assert!(!is_transient("dial tcp reg.lan:429: some other error"));
        assert!(is_permanent("unexpected status code 404"));
        assert!(is_permanent("unexpected status code:404."));
        assert!(is_permanent("HTTP/1.1 403 Forbidden"));
        assert!(!is_permanent(
            "listening on 127.0.0.1:14040: some other error"
        ));
        assert!(!is_permanent("blob sha256:401a: some other error"));
    }

    /// docker names the repository in every push: an image's name is not what
    /// went wrong.
    #[test]
    fn the_words_of_a_reference_or_url_do_not_classify_a_failure() {
        let reset = "The push refers to repository [127.0.0.1:5000/acme/access-denied/amd64]\n\
                     Put \"http://127.0.0.1:5000/v2/acme/access-denied/amd64/blobs/uploads/1\": connection reset by peer";
        assert!(!is_permanent(reset), "a reset is not a denial");
        assert!(is_transient(reset));
        let denied = "The push refers to repository [127.0.0.1:5000/acme/timeout-proxy/amd64]\n\
                      denied: requested access to the resource is denied";
        assert!(is_permanent(denied));
        assert!(!is_transient(denied));
        let odd = "The push refers to repository [127.0.0.1:5000/acme/timeout-proxy/amd64]\nblob upload invalid";
        assert!(!is_transient(odd), "only the words of the answer count");
        // What the URL is followed by still counts, and so does an i/o timeout.
        assert!(is_transient(
            "Put \"http://127.0.0.1:5000/v2/a/blobs/uploads/\": EOF"
        ));
        assert!(is_transient("dial tcp 127.0.0.1:5000: i/o timeout"));
        assert!(is_permanent(
            "reading manifest 1 in 127.0.0.1:5000/acme/api/amd64: manifest unknown"
        ));
        assert!(is_transient(
            "unexpected status from HEAD request to http://127.0.0.1:5000/v2/a/manifests/1: 429 Too Many Requests"
        ));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let b = Duration::from_secs(1);
        assert!(backoff(b, 1) <= Duration::from_millis(1250));
        assert!(backoff(b, 3) >= Duration::from_secs(3));
        assert!(backoff(b, 20) <= Duration::from_millis(37_500));
    }

    #[test]
    fn each_kind_retries_what_another_try_can_change() {
        let e503 = failed(
            1,
            &["received unexpected HTTP status: 503 Service Unavailable"],
            &[],
        );
        let denied = failed(1, &["unauthorized: authentication required"], &[]);
        let odd = failed(1, &[], &["something odd"]);
        assert!(Retry::Write.why(&e503).is_some());
        assert_eq!(Retry::Write.why(&denied), None, "a 4xx is final");
        assert_eq!(
            Retry::Write.why(&odd),
            None,
            "a write retries only the transient"
        );
        assert_eq!(Retry::Read("x").why(&odd).as_deref(), Some("something odd"));
        assert_eq!(
            Retry::Read("x").why(&failed(1, &["manifest unknown"], &[])),
            None
        );
        let run_503 = failed(
            125,
            &[],
            &["pull: 503 Service Unavailable", "Run 'docker run --help'"],
        );
        assert_eq!(
            Retry::EngineRun.why(&run_503).as_deref(),
            Some("pull: 503 Service Unavailable")
        );
        assert_eq!(
            Retry::EngineRun.why(&failed(1, &["503 Service Unavailable"], &[])),
            None
        );
    }

    #[test]
    fn notes_say_what_is_retried_and_when() {
        let d = Duration::from_millis(900);
        assert_eq!(
            Retry::Write.note("503", 1, 3, d),
            "transient failure (503); retry 1/3 in 0.9s"
        );
        assert_eq!(
            Retry::Read("manifest inspect").note("eof", 2, 3, d),
            "manifest inspect failed (eof); retry 2 in 0.9s"
        );
    }
}
