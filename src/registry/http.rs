//! A small blocking HTTP client for registries, over ureq.
//!
//! What a registry client needs and nothing more: GET, HEAD and PUT with headers;
//! the status as an answer (a 401 and its `WWW-Authenticate` challenge, a 404 are
//! read, not turned into errors); response headers (`Docker-Content-Digest`); a
//! timeout for each request; no automatic redirects (a 3xx is returned as it is,
//! so credentials never follow one); plain HTTP or HTTPS (rustls, webpki roots) as
//! [`super::Scheme`] decides. No proxy is used: registries multiarch talks to
//! directly are loopback or named in the spec.

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::time::Duration;

pub use ureq::http::{HeaderMap, Method};

use super::Scheme;

/// How long a request may take in all (connect, send, answer, body) unless the
/// request says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest body read. Manifests are at most 4 MiB (distribution's limit).
const MAX_BODY: u64 = 8 << 20;

/// An HTTP client: one connection pool, shared by every request made through it.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
    timeout: Duration,
}

impl Default for Client {
    fn default() -> Self {
        Client::new(DEFAULT_TIMEOUT)
    }
}

impl Client {
    /// A client whose requests time out after `timeout` unless they say otherwise.
    pub fn new(timeout: Duration) -> Client {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .user_agent(concat!("multiarch/", env!("CARGO_PKG_VERSION")))
            .build();
        Client {
            agent: ureq::Agent::new_with_config(config),
            timeout,
        }
    }

    pub fn get(&self, url: impl Into<String>) -> Request<'_> {
        self.request(Method::GET, url.into(), None)
    }

    pub fn head(&self, url: impl Into<String>) -> Request<'_> {
        self.request(Method::HEAD, url.into(), None)
    }

    pub fn put(&self, url: impl Into<String>, body: Vec<u8>) -> Request<'_> {
        self.request(Method::PUT, url.into(), Some(body))
    }

    pub fn post(&self, url: impl Into<String>, body: Vec<u8>) -> Request<'_> {
        self.request(Method::POST, url.into(), Some(body))
    }

    pub fn delete(&self, url: impl Into<String>) -> Request<'_> {
        self.request(Method::DELETE, url.into(), None)
    }

    fn request(&self, method: Method, url: String, body: Option<Vec<u8>>) -> Request<'_> {
        Request {
            client: self,
            method,
            url,
            headers: Vec::new(),
            body,
            timeout: self.timeout,
        }
    }
}

/// One request, built up and then [`send`](Request::send)-ed.
#[must_use]
pub struct Request<'c> {
    client: &'c Client,
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    timeout: Duration,
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values are left out: one may be an Authorization.
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Request<'_> {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn accept(self, media_types: &str) -> Self {
        self.header("Accept", media_types)
    }

    pub fn content_type(self, media_type: &str) -> Self {
        self.header("Content-Type", media_type)
    }

    /// An `Authorization` value, e.g. [`super::auth::basic`]'s.
    pub fn authorization(self, value: &str) -> Self {
        self.header("Authorization", value)
    }

    /// The time the whole request may take (instead of the client's).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Send it and read the whole answer. Any status is an answer; an error is a
    /// request that got none (connection, timeout, TLS, protocol, a bad URL).
    pub fn send(self) -> Result<Response, Error> {
        let fail = |kind, detail| Error {
            method: self.method.clone(),
            url: self.url.clone(),
            kind,
            detail,
        };
        let mut b = ureq::http::Request::builder()
            .method(self.method.clone())
            .uri(self.url.as_str());
        for (k, v) in &self.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        let agent = &self.client.agent;
        let answer = match &self.body {
            Some(body) => b.body(body.as_slice()).map(|r| {
                let r = agent
                    .configure_request(r)
                    .timeout_global(Some(self.timeout))
                    .build();
                agent.run(r)
            }),
            None => b.body(()).map(|r| {
                let r = agent
                    .configure_request(r)
                    .timeout_global(Some(self.timeout))
                    .build();
                agent.run(r)
            }),
        };
        let mut answer = match answer {
            Ok(a) => a.map_err(|e| classify(e, self.timeout)),
            Err(e) => Err((ErrorKind::BadRequest, e.to_string())),
        }
        .map_err(|(kind, detail)| fail(kind, detail))?;
        let status = answer.status().as_u16();
        let body = if self.method == Method::HEAD {
            Vec::new()
        } else {
            answer
                .body_mut()
                .with_config()
                .limit(MAX_BODY)
                .read_to_vec()
                .map_err(|e| classify(e, self.timeout))
                .map_err(|(kind, detail)| fail(kind, detail))?
        };
        Ok(Response {
            status,
            headers: std::mem::take(answer.headers_mut()),
            body,
        })
    }
}

/// A registry's answer: status, headers and the whole body.
#[derive(Debug, Clone)]
pub struct Response {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Response {
    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A header's value (the first, when repeated), if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// `Docker-Content-Digest`: the digest of the manifest answered or stored.
    pub fn content_digest(&self) -> Option<&str> {
        self.header("Docker-Content-Digest")
    }

    /// `WWW-Authenticate`: how a 401 wants the client to authenticate.
    pub fn challenge(&self) -> Option<&str> {
        self.header("WWW-Authenticate")
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

/// A request that got no answer.
#[derive(Debug, thiserror::Error)]
#[error("{detail}")]
pub struct Error {
    pub method: Method,
    pub url: String,
    pub kind: ErrorKind,
    detail: String,
}

/// Why a request got no answer; a retry policy decides by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No connection: refused, reset, the host unknown or unreachable.
    Connect,
    /// A timeout, of the request's whole time or of one phase.
    Timeout,
    /// Another I/O error on an open connection.
    Io,
    /// The TLS handshake or a certificate failed.
    Tls,
    /// The server's answer is not HTTP/1.1.
    Protocol,
    /// The request could not be made: a bad URL or header.
    BadRequest,
    Other,
}

/// ureq's error as (kind, text). I/O errors keep std's text ("Connection refused
/// (os error 111)"), which doctor shows as it did before ureq.
fn classify(e: ureq::Error, timeout: Duration) -> (ErrorKind, String) {
    match e {
        ureq::Error::Io(e) => {
            let kind = match e.kind() {
                io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::NotConnected
                | io::ErrorKind::AddrNotAvailable
                | io::ErrorKind::HostUnreachable
                | io::ErrorKind::NetworkUnreachable => ErrorKind::Connect,
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ErrorKind::Timeout,
                _ => ErrorKind::Io,
            };
            (kind, e.to_string())
        }
        ureq::Error::Timeout(phase) => (
            ErrorKind::Timeout,
            format!("no answer within {timeout:?} ({phase} timeout)"),
        ),
        ureq::Error::HostNotFound => (ErrorKind::Connect, "host not found".to_string()),
        ureq::Error::ConnectionFailed => (ErrorKind::Connect, "connection failed".to_string()),
        e @ (ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_)) => {
            (ErrorKind::Tls, e.to_string())
        }
        e @ ureq::Error::Protocol(_) => (ErrorKind::Protocol, e.to_string()),
        e @ (ureq::Error::BadUri(_) | ureq::Error::Http(_)) => {
            (ErrorKind::BadRequest, e.to_string())
        }
        e => (ErrorKind::Other, e.to_string()),
    }
}

/// `GET <scheme>://<host>/v2/`, the distribution API's version check: its status.
/// 200 is a registry that lets this client in, 401 one that wants credentials.
pub fn ping_v2(
    client: &Client,
    scheme: Scheme,
    host: &str,
    authorization: Option<&str>,
) -> Result<u16, Error> {
    let mut r = client.get(super::v2_url(scheme, host));
    if let Some(a) = authorization {
        r = r.authorization(a);
    }
    r.send().map(|a| a.status())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::mpsc;
    use std::thread::JoinHandle;

    /// What the test server saw: the request line, the headers (lowercased
    /// names) and the body.
    #[derive(Debug)]
    struct Seen {
        line: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }
    }

    fn read_request(s: &TcpStream) -> Seen {
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        let len = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .map_or(0, |(_, v)| v.parse().unwrap());
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        Seen {
            line: line.trim_end().to_string(),
            headers,
            body,
        }
    }

    /// A server on a free loopback port that answers one request with `answer`
    /// (raw HTTP) and hands back what it saw.
    fn serve_once(answer: &'static str) -> (String, JoinHandle<Seen>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = l.local_addr().unwrap().to_string();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let seen = read_request(&s);
            s.write_all(answer.as_bytes()).unwrap();
            seen
        });
        (host, t)
    }

    #[test]
    fn get_sends_headers_and_reads_status_headers_and_body() {
        let (host, server) = serve_once(
            "HTTP/1.1 200 OK\r\nDocker-Content-Digest: sha256:abc\r\nContent-Length: 2\r\n\r\n{}",
        );
        let c = Client::default();
        let a = c
            .get(format!("http://{host}/v2/acme/api/manifests/1"))
            .accept(crate::registry::MANIFEST_ACCEPT)
            .header("X-Test", "yes")
            .send()
            .unwrap();
        let seen = server.join().unwrap();
        assert_eq!(seen.line, "GET /v2/acme/api/manifests/1 HTTP/1.1");
        assert_eq!(
            seen.header("accept"),
            Some(crate::registry::MANIFEST_ACCEPT)
        );
        assert_eq!(seen.header("x-test"), Some("yes"));
        assert_eq!(seen.header("host"), Some(host.as_str()));
        assert!(seen
            .header("user-agent")
            .is_some_and(|u| u.starts_with("multiarch/")));
        assert_eq!(a.status(), 200);
        assert!(a.is_success());
        assert_eq!(a.content_digest(), Some("sha256:abc"));
        assert_eq!(a.text(), "{}");
    }

    #[test]
    fn a_401_is_an_answer_with_its_challenge() {
        let (host, server) = serve_once(
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://127.0.0.1/token\",service=\"r\"\r\nContent-Length: 0\r\n\r\n",
        );
        let status = ping_v2(&Client::default(), Scheme::Http, &host, Some("Basic dTpw"));
        let seen = server.join().unwrap();
        assert_eq!(seen.line, "GET /v2/ HTTP/1.1");
        assert_eq!(seen.header("authorization"), Some("Basic dTpw"));
        assert_eq!(status.unwrap(), 401);

        let (host, _server) = serve_once(
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"x\"\r\nContent-Length: 0\r\n\r\n",
        );
        let a = Client::default()
            .get(format!("http://{host}/v2/"))
            .send()
            .unwrap();
        assert_eq!(a.challenge(), Some("Bearer realm=\"x\""));
        assert!(!a.is_success());
    }

    #[test]
    fn put_sends_its_body_and_head_reads_none() {
        let (host, server) = serve_once(
            "HTTP/1.1 201 Created\r\nDocker-Content-Digest: sha256:def\r\nContent-Length: 0\r\n\r\n",
        );
        let a = Client::default()
            .put(
                format!("http://{host}/v2/api/manifests/1"),
                b"{\"a\":1}".to_vec(),
            )
            .content_type("application/vnd.oci.image.index.v1+json")
            .send()
            .unwrap();
        let seen = server.join().unwrap();
        assert_eq!(seen.line, "PUT /v2/api/manifests/1 HTTP/1.1");
        assert_eq!(
            seen.header("content-type"),
            Some("application/vnd.oci.image.index.v1+json")
        );
        assert_eq!(seen.body, b"{\"a\":1}");
        assert_eq!((a.status(), a.content_digest()), (201, Some("sha256:def")));

        let (host, server) = serve_once(
            "HTTP/1.1 200 OK\r\nDocker-Content-Digest: sha256:123\r\nContent-Length: 527\r\n\r\n",
        );
        let a = Client::default()
            .head(format!("http://{host}/v2/api/manifests/1"))
            .send()
            .unwrap();
        assert_eq!(
            server.join().unwrap().line,
            "HEAD /v2/api/manifests/1 HTTP/1.1"
        );
        assert_eq!((a.status(), a.content_digest()), (200, Some("sha256:123")));
        assert!(a.body().is_empty());
    }

    #[test]
    fn redirects_are_not_followed() {
        let (host, server) = serve_once(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:1/elsewhere\r\nContent-Length: 0\r\n\r\n",
        );
        let a = Client::default()
            .get(format!("http://{host}/v2/"))
            .authorization("Basic dTpw")
            .send()
            .unwrap();
        server.join().unwrap();
        assert_eq!(a.status(), 307);
        assert_eq!(a.header("location"), Some("http://127.0.0.1:1/elsewhere"));
    }

    #[test]
    fn a_server_that_does_not_answer_times_out() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = l.local_addr().unwrap().to_string();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let server = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            read_request(&s);
            // Hold the connection open, silent, until the client has given up.
            let _ = done_rx.recv();
        });
        let e = Client::new(Duration::from_secs(30))
            .get(format!("http://{host}/v2/"))
            .timeout(Duration::from_millis(300))
            .send()
            .unwrap_err();
        done_tx.send(()).unwrap();
        server.join().unwrap();
        assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
        assert_eq!(e.method, Method::GET);
        assert_eq!(e.url, format!("http://{host}/v2/"));
    }

    #[test]
    fn a_closed_port_is_a_connect_error_with_std_text() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = ping_v2(
            &Client::default(),
            Scheme::Http,
            &format!("127.0.0.1:{port}"),
            None,
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Connect);
        assert_eq!(e.to_string(), "Connection refused (os error 111)");
    }

    #[test]
    fn a_bad_url_is_an_error_not_a_panic() {
        let e = Client::default()
            .get("http://exa mple/")
            .send()
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadRequest, "{e}");
        let e = Client::default()
            .get("http://127.0.0.1:1/")
            .header("X", "a\nb")
            .send()
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadRequest, "{e}");
    }
}
