//! The OCI distribution client: manifests by tag and digest (HEAD, GET, PUT,
//! DELETE), blobs (GET, cross-repository mount), authentication (anonymous,
//! basic, bearer tokens from the `WWW-Authenticate` challenge, cached per
//! scope), every digest the registry names checked against the bytes.
//!
//! One operation is one call; retries are the caller's (exec's retry policy asks
//! [`Error::transient`]). Every request has the HTTP client's timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use super::auth::{self, Secret, SecretSet, DOCKER_HUB};
use super::http::{self, Client, Request, Response};
use super::{Scheme, MANIFEST_ACCEPT};
use crate::environment::Environment;
use crate::spec::reference;

/// A repository of a registry: `127.0.0.1:5000` + `acme/api`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repo {
    pub host: String,
    pub name: String,
}

impl std::fmt::Display for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.host, self.name)
    }
}

impl Repo {
    /// The repository of an image reference and its tag or digest (the digest
    /// when it has both). `None` when it does not parse.
    pub fn parse(image: &str) -> Option<(Repo, Option<String>)> {
        let r = reference::parse(image).ok()?;
        Some((Repo::of(&r), r.digest.or(r.tag)))
    }

    /// The repository of a parsed reference.
    pub fn of(r: &reference::Reference) -> Repo {
        // Docker Hub under any of its names is reached at its API host, and
        // its official images are `library/NAME`, as docker resolves them.
        let host = match &r.domain {
            Some(d) => auth::canonical_host(d).to_string(),
            None => DOCKER_HUB.to_string(),
        };
        let name = if host == DOCKER_HUB && !r.path.contains('/') {
            format!("library/{}", r.path)
        } else {
            r.path.clone()
        };
        Repo { host, name }
    }
}

/// A manifest as the registry served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub media_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

/// What a HEAD of a manifest says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

/// What a DELETE did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Yes,
    /// The registry does not allow deletes (405, or 400 `UNSUPPORTED`).
    NotAllowed,
}

/// A registry operation that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No answer: connection, timeout, TLS.
    #[error("{method} {url}: {source}")]
    NoAnswer {
        method: String,
        url: String,
        #[source]
        source: Box<http::Error>,
    },
    /// An answer that is not a success, with the registry's own message.
    #[error("{method} {url}: {status} {message}")]
    Status {
        method: String,
        url: String,
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    /// The bytes are not what the registry named them.
    #[error("{url}: the registry says {said}, but the bytes it sent are {got}")]
    Digest {
        url: String,
        said: String,
        got: String,
    },
    /// A token server or credential helper that failed, a manifest that is not
    /// what it must be.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// Worth another try (the network, a 5xx, a 429), and how long the registry
    /// asked to wait; `None`: final (a 4xx, a wrong digest).
    pub fn transient(&self) -> Option<Option<Duration>> {
        match self {
            Error::NoAnswer { source, .. } => match source.kind {
                http::ErrorKind::BadRequest | http::ErrorKind::Tls => None,
                _ => Some(None),
            },
            Error::Status {
                status,
                retry_after,
                ..
            } if *status == 429 || *status >= 500 => Some(*retry_after),
            _ => None,
        }
    }

    /// The HTTP status of an answer that is not a success.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Runs `docker-credential-NAME get` with the server on stdin: the program's
/// stdout, or why it failed. exec runs it (process path, never a shell).
pub trait CredentialHelper: Send + Sync {
    fn get(&self, helper: &str, server: &str) -> Result<String, String>;
}

/// A registry client for one run: its HTTP connections, the credentials found
/// per registry and the tokens per scope, shared by every step.
pub struct Registry {
    http: Client,
    insecure: Vec<String>,
    env: Environment,
    helper: Option<Arc<dyn CredentialHelper>>,
    secrets: Mutex<HashMap<String, Option<Secret>>>,
    /// `host scope…` → the `Authorization` value that worked.
    auth: Mutex<HashMap<String, String>>,
    /// Every credential and token this client found or obtained: the run's
    /// masks read it, and the registry's messages are masked with it.
    found: SecretSet,
    /// Held while an `Authorization` is made after a 401: steps that meet the
    /// same challenge at once ask the token server once, and the others use
    /// what it answered.
    authorizing: Mutex<()>,
    /// Token servers (realm and credentials) that refused this run's
    /// credentials (a 401): not asked again with them; every later request
    /// fails with their answer (a 401's message).
    refused: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("insecure", &self.insecure)
            .finish_non_exhaustive()
    }
}

/// What a request needs from the token server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Pull,
    Push,
}

impl Registry {
    pub fn new(env: &Environment, insecure: &[String], timeout: Duration) -> Registry {
        Registry {
            http: Client::new(timeout),
            insecure: insecure.to_vec(),
            env: env.clone(),
            helper: None,
            secrets: Mutex::new(HashMap::new()),
            auth: Mutex::new(HashMap::new()),
            found: SecretSet::default(),
            authorizing: Mutex::new(()),
            refused: Mutex::new(HashMap::new()),
        }
    }

    /// The secrets this client has found and obtained so far, and from now on.
    pub fn secrets(&self) -> SecretSet {
        self.found.clone()
    }

    /// Credential helpers (`credsStore`, `credHelpers`) are run with `helper`.
    pub fn with_helper(mut self, helper: Arc<dyn CredentialHelper>) -> Registry {
        self.helper = Some(helper);
        self
    }

    pub fn scheme(&self, host: &str) -> Scheme {
        Scheme::for_host(host, &self.insecure)
    }

    pub fn manifest_url(&self, repo: &Repo, reference: &str) -> String {
        super::manifest_url(self.scheme(&repo.host), &repo.host, &repo.name, reference)
    }

    fn blob_url(&self, repo: &Repo, digest: &str) -> String {
        format!(
            "{}://{}/v2/{}/blobs/{digest}",
            self.scheme(&repo.host),
            repo.host,
            repo.name
        )
    }

    /// `GET` or `HEAD` the manifest `reference` names, accepting every
    /// manifest type: its URL and the 2xx answer, `None` on a 404.
    fn read_manifest(
        &self,
        repo: &Repo,
        reference: &str,
        method: &'static str,
    ) -> Result<Option<(String, Response)>, Error> {
        let url = self.manifest_url(repo, reference);
        let r = self.send(repo, &[], Access::Pull, &|c| {
            match method {
                "HEAD" => c.head(url.clone()),
                _ => c.get(url.clone()),
            }
            .accept(MANIFEST_ACCEPT)
        })?;
        if r.status() == 404 {
            return Ok(None);
        }
        Ok(Some((url.clone(), self.ok(r, method, &url)?)))
    }

    /// The manifest `reference` (tag or digest) names; `None` when there is none.
    pub fn get_manifest(&self, repo: &Repo, reference: &str) -> Result<Option<Manifest>, Error> {
        let Some((url, r)) = self.read_manifest(repo, reference, "GET")? else {
            return Ok(None);
        };
        let got = sha256(r.body());
        let said = if reference.starts_with("sha256:") {
            Some(reference.to_string())
        } else {
            r.content_digest().map(str::to_string)
        };
        if let Some(said) = said {
            if said != got {
                return Err(Error::Digest { url, said, got });
            }
        }
        let media_type = r
            .header("Content-Type")
            .map(|t| t.split(';').next().unwrap_or(t).trim().to_string())
            .filter(|t| !t.is_empty() && t != "application/json")
            .or_else(|| super::index::media_type_in(r.body()))
            .unwrap_or_default();
        Ok(Some(Manifest {
            media_type,
            digest: got,
            bytes: r.body().to_vec(),
        }))
    }

    /// The digest, media type and size of the manifest `reference` names.
    pub fn head_manifest(&self, repo: &Repo, reference: &str) -> Result<Option<Head>, Error> {
        let Some((_, r)) = self.read_manifest(repo, reference, "HEAD")? else {
            return Ok(None);
        };
        match r.content_digest() {
            Some(d) => Ok(Some(Head {
                media_type: r.header("Content-Type").unwrap_or("").to_string(),
                digest: d.to_string(),
                size: r
                    .header("Content-Length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0),
            })),
            // A registry that names no digest on HEAD: read it.
            None => Ok(self.get_manifest(repo, reference)?.map(|m| Head {
                media_type: m.media_type,
                digest: m.digest,
                size: m.bytes.len() as u64,
            })),
        }
    }

    /// PUT a manifest under `reference` (a tag, or its digest): its digest, as
    /// the registry confirmed it.
    pub fn put_manifest(
        &self,
        repo: &Repo,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String, Error> {
        let url = self.manifest_url(repo, reference);
        let r = self.send(repo, &[], Access::Push, &|c| {
            c.put(url.clone(), bytes.to_vec()).content_type(media_type)
        })?;
        let r = self.ok(r, "PUT", &url)?;
        let want = sha256(bytes);
        match r.content_digest() {
            Some(said) if said != want => Err(Error::Digest {
                url,
                said: said.to_string(),
                got: want,
            }),
            _ => Ok(want),
        }
    }

    /// DELETE a manifest by digest (this removes every tag naming it).
    pub fn delete_manifest(&self, repo: &Repo, digest: &str) -> Result<Deleted, Error> {
        let url = self.manifest_url(repo, digest);
        let r = self.send(repo, &[], Access::Push, &|c| c.delete(url.clone()))?;
        if r.status() == 405 || (r.status() == 400 && r.text().contains("UNSUPPORTED")) {
            return Ok(Deleted::NotAllowed);
        }
        self.ok(r, "DELETE", &url).map(|_| Deleted::Yes)
    }

    /// A blob (an image config), checked against its digest.
    pub fn get_blob(&self, repo: &Repo, digest: &str) -> Result<Vec<u8>, Error> {
        let url = self.blob_url(repo, digest);
        let r = self.send(repo, &[], Access::Pull, &|c| c.get(url.clone()))?;
        // Registries with external storage redirect blob reads: follow once,
        // without the credentials.
        let r = match r.header("Location") {
            Some(loc) if (300..400).contains(&r.status()) => {
                let loc = absolute(&url, loc);
                self.http.get(loc).send().map_err(no_answer)?
            }
            _ => r,
        };
        let r = self.ok(r, "GET", &url)?;
        let got = sha256(r.body());
        if got != digest {
            return Err(Error::Digest {
                url,
                said: digest.to_string(),
                got,
            });
        }
        Ok(r.body().to_vec())
    }

    /// Make blob `digest` of `from` available in `to` without copying its bytes
    /// (a cross-repository mount); nothing to do when `to` has it.
    pub fn mount_blob(&self, to: &Repo, from: &Repo, digest: &str) -> Result<(), Error> {
        let head = self.blob_url(to, digest);
        let r = self.send(to, &[from], Access::Push, &|c| c.head(head.clone()))?;
        if r.is_success() {
            return Ok(());
        }
        let url = format!(
            "{}://{}/v2/{}/blobs/uploads/?mount={digest}&from={}",
            self.scheme(&to.host),
            to.host,
            to.name,
            from.name
        );
        let r = self.send(to, &[from], Access::Push, &|c| {
            c.post(url.clone(), Vec::new())
        })?;
        match r.status() {
            201 => Ok(()),
            202 => Err(Error::Other(format!(
                "{to} did not mount {digest} from {from} (the registry offered an upload instead): keep the per-arch images in the list's repository (`[tags] arch = \"{{repo}}:{{sha}}-{{arch}}\"`)"
            ))),
            _ => self.ok(r, "POST", &url).map(|_| ()),
        }
    }

    /// `GET /v2/`: the status (200 in, 401 credentials wanted) after
    /// authenticating as this client would.
    pub fn ping(&self, host: &str) -> Result<u16, Error> {
        let repo = Repo {
            host: host.to_string(),
            name: String::new(),
        };
        let url = super::v2_url(self.scheme(host), host);
        self.send(&repo, &[], Access::Pull, &|c| c.get(url.clone()))
            .map(|r| r.status())
    }

    /// Send the request `make` builds, authenticating when the registry asks:
    /// with the `Authorization` that worked for this scope before, else after
    /// a 401 as its challenge says (basic, or a bearer token for the scope).
    fn send(
        &self,
        repo: &Repo,
        also: &[&Repo],
        access: Access,
        make: &dyn Fn(&Client) -> Request<'_>,
    ) -> Result<Response, Error> {
        let mut scopes = Vec::new();
        if !repo.name.is_empty() {
            scopes.push(scope(repo, access));
        }
        scopes.extend(also.iter().map(|r| scope(r, Access::Pull)));
        let key = format!("{} {}", repo.host, scopes.join(" "));
        let cached = self.auth.lock().ok().and_then(|m| m.get(&key).cloned());
        let first = with_auth(make(&self.http), cached.as_deref())
            .send()
            .map_err(no_answer)?;
        if first.status() != 401 {
            return Ok(first);
        }
        // A 401 without a challenge: basic credentials, if there are any.
        let challenge = first.challenge().unwrap_or("Basic").to_string();
        let authorization = {
            let _one = self.authorizing.lock().unwrap_or_else(|e| e.into_inner());
            // Another step may have authorized this scope meanwhile.
            let now = self.auth.lock().ok().and_then(|m| m.get(&key).cloned());
            match now.filter(|a| Some(a) != cached.as_ref()) {
                Some(a) => a,
                None => {
                    let Some(a) = self.authorize(&repo.host, &challenge, &scopes)? else {
                        return Ok(first);
                    };
                    if cached.as_deref() == Some(a.as_str()) {
                        return Ok(first);
                    }
                    if let Ok(mut m) = self.auth.lock() {
                        m.insert(key.clone(), a.clone());
                    }
                    a
                }
            }
        };
        let again = make(&self.http)
            .authorization(&authorization)
            .send()
            .map_err(no_answer)?;
        if again.status() == 401 {
            if let Ok(mut m) = self.auth.lock() {
                if m.get(&key) == Some(&authorization) {
                    m.remove(&key);
                }
            }
        }
        Ok(again)
    }

    /// The `Authorization` value the challenge asks for, or `None` when this
    /// client has nothing to offer (no credentials for a basic challenge).
    fn authorize(
        &self,
        host: &str,
        challenge: &str,
        scopes: &[String],
    ) -> Result<Option<String>, Error> {
        let c = auth::Challenge::parse(challenge);
        let secret = self.secret(host)?;
        match c.scheme.as_str() {
            "basic" => Ok(match secret {
                Some(Secret::Basic { user, password }) => Some(auth::basic(&user, &password)),
                _ => None,
            }),
            "bearer" => {
                let Some(realm) = c.param("realm") else {
                    return Err(Error::Other(format!(
                        "{host} asks for a bearer token but names no realm: {challenge}"
                    )));
                };
                let service = c.param("service");
                // The scopes this request needs, and any other the challenge
                // names (space-separated): a registry may want more than the
                // client guessed.
                let mut wanted = scopes.to_vec();
                for s in c.param("scope").unwrap_or("").split(' ') {
                    if !s.is_empty() && !wanted.iter().any(|w| w == s) {
                        wanted.push(s.to_string());
                    }
                }
                let token = self.token(realm, service, &wanted, secret.as_ref())?;
                Ok(Some(format!("Bearer {token}")))
            }
            _ => Ok(None),
        }
    }

    /// A token from the token server (distribution's token spec: GET with basic
    /// credentials; OAuth2 POST with a refresh token for an identity token).
    fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        secret: Option<&Secret>,
    ) -> Result<String, Error> {
        // These credentials at this realm (their digest: no secret as a key).
        let refusal = format!(
            "{realm} {}",
            sha256(secret.map_or("", |s| s.secret()).as_bytes())
        );
        let r_method = match secret {
            Some(Secret::IdentityToken(_)) => "POST",
            _ => "GET",
        };
        if let Some(message) = self
            .refused
            .lock()
            .ok()
            .and_then(|m| m.get(&refusal).cloned())
        {
            return Err(Error::Status {
                method: r_method.into(),
                url: realm.to_string(),
                status: 401,
                message: format!("{message} (asked once; not again with the same credentials)"),
                retry_after: None,
            });
        }
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = service {
            query.push(("service", s));
        }
        for s in scopes {
            query.push(("scope", s));
        }
        let r = match secret {
            Some(Secret::IdentityToken(t)) => {
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", t.as_str()),
                    ("client_id", "multiarch"),
                ];
                form.extend(query.iter().copied());
                self.http
                    .post(realm.to_string(), encode_query(&form).into_bytes())
                    .content_type("application/x-www-form-urlencoded")
                    .send()
            }
            other => {
                let sep = if realm.contains('?') { '&' } else { '?' };
                let url = format!("{realm}{sep}{}", encode_query(&query));
                let mut req = self.http.get(url);
                if let Some(Secret::Basic { user, password }) = other {
                    req = req.authorization(&auth::basic(user, password));
                }
                req.send()
            }
        }
        .map_err(no_answer)?;
        if !r.is_success() {
            let message = format!("token server: {}", self.found.mask(&registry_message(&r)));
            // Credentials it does not know stay unknown for the rest of the run.
            if r.status() == 401 && secret.is_some() {
                if let Ok(mut m) = self.refused.lock() {
                    m.insert(refusal, message.clone());
                }
            }
            return Err(Error::Status {
                method: r_method.into(),
                url: realm.to_string(),
                status: r.status(),
                message,
                retry_after: retry_after(&r),
            });
        }
        let v: serde_json::Value = serde_json::from_slice(r.body()).map_err(|e| {
            Error::Other(format!(
                "{realm}: the token server's answer is not JSON: {e}"
            ))
        })?;
        let token = v
            .get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                Error::Other(format!("{realm}: the token server's answer has no token"))
            })?;
        self.found.add(&token);
        Ok(token)
    }

    /// The credentials for `host`, found once: the environment's, else docker's
    /// config (a credential helper, a `docker login` entry, a credentials store).
    fn secret(&self, host: &str) -> Result<Option<Secret>, Error> {
        if let Some(s) = self.secrets.lock().ok().and_then(|m| m.get(host).cloned()) {
            return Ok(s);
        }
        let found = self.find_secret(host).map_err(|e| match e {
            Error::Other(m) => Error::Other(self.found.mask(&m)),
            e => e,
        })?;
        if let Some(s) = &found {
            self.found.add_credential(s);
        }
        if let Ok(mut m) = self.secrets.lock() {
            m.insert(host.to_string(), found.clone());
        }
        Ok(found)
    }

    fn find_secret(&self, host: &str) -> Result<Option<Secret>, Error> {
        if let Some(c) = auth::Credentials::from_env(&self.env).filter(|c| c.applies_to(host)) {
            return Ok(Some(Secret::Basic {
                user: c.user,
                password: c.password,
            }));
        }
        let helper = match auth::docker_config_auth(&self.env, host) {
            None => return Ok(None),
            Some(auth::DockerConfigAuth::Login(found)) => return Ok(found),
            Some(auth::DockerConfigAuth::Helper(h) | auth::DockerConfigAuth::Store(h)) => h,
        };
        let Some(run) = &self.helper else {
            return Ok(None);
        };
        match run.get(&helper, auth::config_server(host)) {
            Ok(out) => auth::helper_answer(&out)
                .map_err(|e| Error::Other(format!("docker-credential-{helper} get {host}: {e}"))),
            // A store that does not know the registry says so and exits 1.
            Err(e) if e.contains("credentials not found") => Ok(None),
            Err(e) => Err(Error::Other(format!(
                "docker-credential-{helper} get {host} failed: {e}"
            ))),
        }
    }
}

impl Registry {
    /// A success, or the registry's message as an error (masked: a registry
    /// may echo the credentials it refused).
    fn ok(&self, r: Response, method: &str, url: &str) -> Result<Response, Error> {
        if r.is_success() {
            return Ok(r);
        }
        Err(Error::Status {
            method: method.to_string(),
            url: url.to_string(),
            status: r.status(),
            message: self.found.mask(&registry_message(&r)),
            retry_after: retry_after(&r),
        })
    }
}

fn scope(repo: &Repo, access: Access) -> String {
    match access {
        Access::Pull => format!("repository:{}:pull", repo.name),
        Access::Push => format!("repository:{}:pull,push", repo.name),
    }
}

fn with_auth<'c>(r: Request<'c>, authorization: Option<&str>) -> Request<'c> {
    match authorization {
        Some(a) => r.authorization(a),
        None => r,
    }
}

fn no_answer(e: http::Error) -> Error {
    Error::NoAnswer {
        method: e.method.to_string(),
        url: e.url.clone(),
        source: Box::new(e),
    }
}

/// `Retry-After: SECONDS`.
fn retry_after(r: &Response) -> Option<Duration> {
    r.header("Retry-After")?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// The registry's errors (`{"errors":[{"code","message"}]}`) as one line, else
/// the body's first line, else the status text.
fn registry_message(r: &Response) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(r.body()) {
        if let Some(errors) = v.get("errors").and_then(|e| e.as_array()) {
            let m: Vec<String> = errors
                .iter()
                .map(|e| {
                    let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
                    let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
                    format!("{code}: {msg}")
                        .trim_matches([' ', ':'])
                        .to_string()
                })
                .collect();
            if !m.is_empty() {
                return m.join("; ");
            }
        }
        if let Some(d) = v
            .get("details")
            .or_else(|| v.get("error"))
            .and_then(|d| d.as_str())
        {
            return d.to_string();
        }
    }
    let text = r.text();
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        status_text(r.status()).to_string()
    } else {
        line.chars().take(300).collect()
    }
}

fn status_text(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// `a=b&c=d`, percent-encoded.
fn encode_query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", pct(k), pct(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn pct(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// A `Location` made absolute against the request's URL.
fn absolute(url: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let origin = url
        .find("://")
        .and_then(|i| url[i + 3..].find('/').map(|j| &url[..i + 3 + j]))
        .unwrap_or(url);
    format!("{origin}{location}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `acme/api` on the test server.
    fn acme_api(host: String) -> Repo {
        Repo {
            host,
            name: "acme/api".into(),
        }
    }

    #[test]
    fn repositories_of_references() {
        let (r, t) = Repo::parse("127.0.0.1:5000/acme/api:1").unwrap();
        assert_eq!(
            (r.host.as_str(), r.name.as_str()),
            ("127.0.0.1:5000", "acme/api")
        );
        assert_eq!(t.as_deref(), Some("1"));
        let (r, _) = Repo::parse("busybox").unwrap();
        assert_eq!(
            (r.host.as_str(), r.name.as_str()),
            (DOCKER_HUB, "library/busybox")
        );
        // `registry = "docker.io/acme"` is Docker Hub's API, not docker.io's web site.
        for image in ["docker.io/acme/app:1", "index.docker.io/acme/app:1"] {
            let (r, _) = Repo::parse(image).unwrap();
            assert_eq!((r.host.as_str(), r.name.as_str()), (DOCKER_HUB, "acme/app"));
        }
        let (r, _) = Repo::parse("docker.io/busybox").unwrap();
        assert_eq!(r.name, "library/busybox");
        let d = format!("sha256:{}", "a".repeat(64));
        let (_, t) = Repo::parse(&format!("reg:5000/x:1@{d}")).unwrap();
        assert_eq!(t, Some(d));
    }

    #[test]
    fn digests_queries_and_locations() {
        assert_eq!(
            sha256(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            encode_query(&[("scope", "repository:a/b:pull,push"), ("service", "r s")]),
            "scope=repository%3Aa%2Fb%3Apull%2Cpush&service=r%20s"
        );
        assert_eq!(
            absolute("http://h:1/v2/a/blobs/x", "/store/x"),
            "http://h:1/store/x"
        );
        assert_eq!(absolute("http://h/v2/", "https://s3/x"), "https://s3/x");
    }

    #[test]
    fn what_is_worth_another_try() {
        let status = |s, after| Error::Status {
            method: "PUT".into(),
            url: "u".into(),
            status: s,
            message: String::new(),
            retry_after: after,
        };
        assert_eq!(status(503, None).transient(), Some(None));
        assert_eq!(
            status(429, Some(Duration::from_secs(2))).transient(),
            Some(Some(Duration::from_secs(2)))
        );
        for s in [400, 401, 403, 404] {
            assert_eq!(status(s, None).transient(), None, "{s}");
        }
        assert_eq!(
            Error::Digest {
                url: "u".into(),
                said: "a".into(),
                got: "b".into()
            }
            .transient(),
            None
        );
    }

    /// A server on a free loopback port: each request (line, Authorization)
    /// goes to `answer`, which returns the raw response; what it saw is kept.
    fn serve(
        answer: impl Fn(&str, Option<&str>, &str) -> String + Send + Sync + 'static,
    ) -> (String, Arc<Mutex<Vec<String>>>) {
        use std::io::{BufRead, BufReader, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = l.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let answer = Arc::new(answer);
        let h = host.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { break };
                let mut r = BufReader::new(c.try_clone().unwrap());
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                let mut auth = None;
                loop {
                    let mut hdr = String::new();
                    r.read_line(&mut hdr).unwrap();
                    let hdr = hdr.trim_end().to_string();
                    if hdr.is_empty() {
                        break;
                    }
                    if let Some(v) = hdr
                        .strip_prefix("authorization: ")
                        .or_else(|| hdr.strip_prefix("Authorization: "))
                    {
                        auth = Some(v.to_string());
                    }
                }
                let line = line.trim_end().to_string();
                s.lock()
                    .unwrap()
                    .push(format!("{line} {}", auth.as_deref().unwrap_or("-")));
                let a = answer(&line, auth.as_deref(), &h);
                let _ = c.write_all(a.as_bytes());
            }
        });
        (host, seen)
    }

    fn reply(status: &str, headers: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;

    #[test]
    fn a_bearer_challenge_gets_a_token_for_the_scope_once() {
        let (host, seen) = token_registry();
        let reg = Registry::new(&user("p"), &[], Duration::from_secs(5));
        let repo = Repo {
            host: host.clone(),
            name: "acme/api".into(),
        };
        for _ in 0..2 {
            let m = reg.get_manifest(&repo, "latest").unwrap().unwrap();
            assert_eq!(m.media_type, super::super::index::OCI_INDEX);
            assert_eq!(m.digest, sha256(MANIFEST.as_bytes()));
        }
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            [
                "GET /v2/acme/api/manifests/latest HTTP/1.1 -".to_string(),
                format!(
                    "GET /token?service=reg&scope=repository%3Aacme%2Fapi%3Apull HTTP/1.1 {}",
                    auth::basic("u", "p")
                ),
                "GET /v2/acme/api/manifests/latest HTTP/1.1 Bearer tok-1".to_string(),
                "GET /v2/acme/api/manifests/latest HTTP/1.1 Bearer tok-1".to_string(),
            ],
            "the token is asked once and reused for the scope"
        );
    }

    /// A registry with a bearer challenge whose token server grants `tok-1`
    /// to `u:p` and answers 401 to anything else.
    fn token_registry() -> (String, Arc<Mutex<Vec<String>>>) {
        serve(|line, auth, host| {
            if line.starts_with("GET /token?") {
                return if auth == Some(auth::basic("u", "p").as_str()) {
                    reply("200 OK", "", r#"{"access_token":"tok-1","expires_in":300}"#)
                } else {
                    reply(
                        "401 Unauthorized",
                        "",
                        r#"{"details":"incorrect username or password"}"#,
                    )
                };
            }
            if auth != Some("Bearer tok-1") {
                return reply(
                    "401 Unauthorized",
                    &format!("WWW-Authenticate: Bearer realm=\"http://{host}/token\",service=\"reg\"\r\n"),
                    r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
                );
            }
            let d = sha256(MANIFEST.as_bytes());
            reply(
                "200 OK",
                &format!("Content-Type: application/vnd.oci.image.index.v1+json\r\nDocker-Content-Digest: {d}\r\n"),
                MANIFEST,
            )
        })
    }

    fn user(password: &str) -> Environment {
        Environment::from_pairs([
            ("MULTIARCH_REGISTRY_USER", "u"),
            ("MULTIARCH_REGISTRY_PASSWORD", password),
        ])
    }

    #[test]
    fn scopes_the_challenge_names_are_asked_for_too() {
        let (host, seen) = serve(|line, auth, host| {
            if line.starts_with("GET /token?") {
                let both = line.contains("scope=repository%3Aacme%2Fapi%3Apull&scope=repository%3Aacme%2Fbase%3Apull&scope=registry%3Acatalog%3A%2A");
                return reply(
                    "200 OK",
                    "",
                    &format!(r#"{{"token":"{}"}}"#, if both { "all" } else { "some" }),
                );
            }
            if auth == Some("Bearer all") {
                return reply("200 OK", "", "{}");
            }
            reply(
                "401 Unauthorized",
                &format!("WWW-Authenticate: Bearer realm=\"http://{host}/token\",scope=\"repository:acme/base:pull registry:catalog:*\"\r\n"),
                "",
            )
        });
        let reg = Registry::new(&user("p"), &[], Duration::from_secs(5));
        let repo = acme_api(host);
        let digest = sha256(b"{}");
        assert_eq!(
            reg.get_manifest(&repo, &digest).unwrap().unwrap().bytes,
            b"{}"
        );
        let seen = seen.lock().unwrap();
        assert!(
            seen[1].starts_with("GET /token?scope=repository%3Aacme%2Fapi%3Apull&scope=repository%3Aacme%2Fbase%3Apull&scope=registry%3Acatalog%3A%2A "),
            "{seen:?}"
        );
    }

    #[test]
    fn steps_meeting_one_challenge_at_once_ask_the_token_server_once() {
        let (host, seen) = token_registry();
        let reg = Arc::new(Registry::new(&user("p"), &[], Duration::from_secs(5)));
        let repo = acme_api(host);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (reg, repo) = (reg.clone(), repo.clone());
                std::thread::spawn(move || reg.get_manifest(&repo, "latest"))
            })
            .collect();
        for t in threads {
            assert!(t.join().unwrap().unwrap().is_some());
        }
        let tokens = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("GET /token?"))
            .count();
        assert_eq!(tokens, 1, "{:?}", seen.lock().unwrap());
    }

    #[test]
    fn a_token_server_that_refuses_the_credentials_is_asked_once() {
        let (host, seen) = token_registry();
        let reg = Registry::new(&user("wrong"), &[], Duration::from_secs(5));
        for name in ["acme/api", "acme/api/amd64", "acme/web"] {
            let repo = Repo {
                host: host.clone(),
                name: name.into(),
            };
            let e = reg.get_manifest(&repo, "latest").unwrap_err();
            assert_eq!((e.status(), e.transient()), (Some(401), None), "{e}");
            assert!(
                e.to_string()
                    .contains("token server: incorrect username or password"),
                "{e}"
            );
        }
        let seen = seen.lock().unwrap();
        let tokens = seen.iter().filter(|l| l.starts_with("GET /token?")).count();
        assert_eq!(tokens, 1, "{seen:?}");
    }

    #[test]
    fn a_bearer_token_or_password_a_server_echoes_is_masked_in_its_errors() {
        let (host, _) = serve(|line, auth, host| {
            if line.starts_with("GET /token?") {
                return reply("200 OK", "", r#"{"token":"tok-echoed-1234"}"#);
            }
            match auth {
                Some(a) if a.starts_with("Bearer ") => reply(
                    "403 Forbidden",
                    "",
                    &format!(r#"{{"errors":[{{"code":"DENIED","message":"{a} may not"}}]}}"#),
                ),
                _ => reply(
                    "401 Unauthorized",
                    &format!("WWW-Authenticate: Bearer realm=\"http://{host}/token\"\r\n"),
                    "",
                ),
            }
        });
        let reg = Registry::new(&user("pa55-word"), &[], Duration::from_secs(5));
        let repo = acme_api(host);
        let e = reg.get_manifest(&repo, "latest").unwrap_err().to_string();
        assert!(e.ends_with("403 DENIED: Bearer •••••• may not"), "{e}");
        let found = reg.secrets();
        for s in [
            "tok-echoed-1234",
            "pa55-word",
            &auth::basic("u", "pa55-word")[6..],
        ] {
            assert_eq!(found.mask(s), auth::MASK, "{s}");
        }
    }

    #[test]
    fn a_wrong_password_fails_once_with_the_registrys_message() {
        let (host, seen) = serve(|_, _, _| {
            reply(
                "401 Unauthorized",
                "WWW-Authenticate: Basic realm=\"r\"\r\nContent-Type: application/json\r\n",
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            )
        });
        let env = Environment::from_pairs([
            ("MULTIARCH_REGISTRY_USER", "u"),
            ("MULTIARCH_REGISTRY_PASSWORD", "wrong"),
        ]);
        let reg = Registry::new(&env, &[], Duration::from_secs(5));
        let repo = acme_api(host);
        let e = reg
            .put_manifest(
                &repo,
                "latest",
                super::super::index::OCI_INDEX,
                MANIFEST.as_bytes(),
            )
            .unwrap_err();
        assert_eq!(e.status(), Some(401));
        assert_eq!(e.transient(), None, "never retried");
        assert!(
            e.to_string()
                .ends_with("401 UNAUTHORIZED: authentication required"),
            "{e}"
        );
        assert_eq!(
            seen.lock().unwrap().len(),
            2,
            "anonymous, then basic: no more"
        );
    }

    #[test]
    fn a_digest_that_is_not_the_bytes_is_an_error() {
        let (host, _) = serve(|_, _, _| {
            reply(
                "200 OK",
                &format!("Docker-Content-Digest: sha256:{}\r\n", "0".repeat(64)),
                MANIFEST,
            )
        });
        let reg = Registry::new(&Environment::empty(), &[], Duration::from_secs(5));
        let repo = Repo {
            host,
            name: "a".into(),
        };
        let e = reg.get_manifest(&repo, "latest").unwrap_err();
        assert!(matches!(e, Error::Digest { .. }), "{e}");
    }

    #[test]
    fn a_credential_helper_answers_for_the_registry() {
        struct Helper;
        impl CredentialHelper for Helper {
            fn get(&self, helper: &str, server: &str) -> Result<String, String> {
                assert_eq!(helper, "test");
                Ok(format!(
                    r#"{{"ServerURL":"{server}","Username":"hu","Secret":"hp"}}"#
                ))
            }
        }
        let (host, seen) = serve(|_, auth, _| match auth {
            Some(a) if a == auth::basic("hu", "hp") => reply("200 OK", "", "{}"),
            _ => reply(
                "401 Unauthorized",
                "WWW-Authenticate: Basic realm=\"r\"\r\n",
                "",
            ),
        });
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("config.json"), r#"{"credsStore":"test"}"#).unwrap();
        let env = Environment::empty().with("DOCKER_CONFIG", d.path().to_str().unwrap());
        let reg = Registry::new(&env, &[], Duration::from_secs(5)).with_helper(Arc::new(Helper));
        assert_eq!(reg.ping(&host).unwrap(), 200);
        assert_eq!(seen.lock().unwrap().len(), 2);
    }
}
