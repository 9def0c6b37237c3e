//! A token server for the reference registry's `auth: token` (distribution's
//! token authentication spec), on a free loopback port: `GET /token?service=…&
//! scope=…` with Basic credentials answers `{"token","access_token",
//! "expires_in"}`, a JWT the registry checks against a self-signed certificate
//! made at start with the `openssl` CLI (which also signs each token, RS256).
//! Anonymous or wrong credentials get a 401. `POST /token` with the OAuth2
//! form `grant_type=refresh_token&refresh_token=…` (what docker and multiarch
//! send for an `identitytoken`) answers `{"access_token","refresh_token",
//! "expires_in"}` for [`TokenServer::refresh_token`]. Every request is recorded.
//!
//! The registry (distribution 2.8, registry/auth/token) accepts a token when
//! `iss` is its `issuer`, `aud` its `service`, `nbf`/`exp` hold (60 s leeway),
//! the `x5c` chain verifies against `rootcertbundle` (the self-signed
//! certificate is its own root) and the signature verifies with the leaf's key;
//! then the `access` claim must grant every action the request needs.

use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;

use super::{temp_dir, TempDir};

pub const SERVICE: &str = "multiarch-test";
pub const ISSUER: &str = "multiarch-test-issuer";

/// One request the token server saw.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub method: String,
    /// The decoded `scope` parameters, in order.
    pub scopes: Vec<String>,
    /// The Basic user, if credentials came.
    pub user: Option<String>,
    /// Whether it answered with a token.
    pub granted: bool,
    pub user_agent: String,
}

struct Keys {
    key: PathBuf,
    /// The certificate's DER, standard base64 (the `x5c` entry).
    x5c: String,
}

pub struct TokenServer {
    pub addr: String,
    refresh: String,
    dir: TempDir,
    keys: Arc<Keys>,
    seen: Arc<Mutex<Vec<TokenRequest>>>,
    issued: Arc<Mutex<Vec<String>>>,
}

/// What the token server grants tokens for.
#[derive(Clone)]
struct Accepts {
    /// `user:password` of a Basic `GET`.
    basic: String,
    /// The refresh token of an OAuth2 `POST`.
    refresh: String,
}

fn refresh_token_for(password: &str) -> String {
    format!("refresh-{password}-0a1b2c")
}

/// Run `openssl` with `args` (and `stdin`): its stdout; panics with its stderr.
fn openssl(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed (cargo xtask ci installs it)");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

impl TokenServer {
    /// A token server that grants every scope asked to `user` with `password`.
    pub fn start(user: &str, password: &str) -> TokenServer {
        let dir = temp_dir("token");
        let key = dir.path().join("key.pem");
        let cert = dir.path().join("cert.pem");
        let (k, c) = (key.to_str().unwrap(), cert.to_str().unwrap());
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=multiarch-test-token",
                "-days",
                "1",
                "-keyout",
                k,
                "-out",
                c,
            ],
            b"",
        );
        let der = openssl(&["x509", "-in", c, "-outform", "DER"], b"");
        let keys = Arc::new(Keys {
            key,
            x5c: STANDARD.encode(der),
        });
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let issued = Arc::new(Mutex::new(Vec::new()));
        let expected = Accepts {
            basic: format!("{user}:{password}"),
            refresh: refresh_token_for(password),
        };
        let (k, s, i) = (keys.clone(), seen.clone(), issued.clone());
        let jti = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { continue };
                let (k, s, i, e, j) = (
                    k.clone(),
                    s.clone(),
                    i.clone(),
                    expected.clone(),
                    jti.clone(),
                );
                std::thread::spawn(move || serve(c, &k, &e, &s, &i, &j));
            }
        });
        TokenServer {
            refresh: refresh_token_for(password),
            addr,
            dir,
            keys,
            seen,
            issued,
        }
    }

    /// The OAuth2 refresh token it accepts on `POST /token` (what a docker
    /// config's `identitytoken` holds).
    pub fn refresh_token(&self) -> String {
        self.refresh.clone()
    }

    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// The certificate the registry trusts (its `rootcertbundle`).
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// The registry config's `auth:` section for this token server.
    pub fn registry_config(&self) -> String {
        format!(
            "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            self.realm(),
            self.cert().display()
        )
    }

    pub fn requests(&self) -> Vec<TokenRequest> {
        self.seen.lock().unwrap().clone()
    }

    /// Every token it handed out.
    pub fn issued(&self) -> Vec<String> {
        self.issued.lock().unwrap().clone()
    }

    /// A token for `scopes`, as the server would grant it (for the test's own
    /// reads of the registry); not recorded.
    pub fn token(&self, scopes: &[&str]) -> String {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        jwt(&self.keys, "multiarch-test-reader", &scopes, 0)
    }
}

/// `iss`, `sub`, `aud`, the times, `jti` and an `access` entry per scope with
/// every action it asked for, signed RS256 with the certificate in `x5c`.
fn jwt(keys: &Keys, sub: &str, scopes: &[String], jti: usize) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|s| {
            let (kind, rest) = s.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            Some(serde_json::json!({
                "type": kind,
                "name": name,
                "actions": actions.split(',').collect::<Vec<_>>(),
            }))
        })
        .collect();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [keys.x5c]});
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": sub,
        "aud": SERVICE,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("multiarch-test-{jti}"),
        "access": access,
    });
    let b64 = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let signing_input = format!("{}.{}", b64(&header), b64(&claims));
    let signature = openssl(
        &["dgst", "-sha256", "-sign", keys.key.to_str().unwrap()],
        signing_input.as_bytes(),
    );
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// `%XX` and `+` of a query value decoded.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn serve(
    c: TcpStream,
    keys: &Keys,
    accepts: &Accepts,
    seen: &Mutex<Vec<TokenRequest>>,
    issued: &Mutex<Vec<String>>,
    jti: &AtomicUsize,
) {
    let mut reader = BufReader::new(&c);
    let Some((line, mut headers)) = super::read_head(&mut reader) else {
        return;
    };
    let length = headers
        .get("content-length")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(0)
        .min(1 << 16);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let authorization = headers.remove("authorization");
    let user_agent = headers.remove("user-agent").unwrap_or_default();
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or("").to_string();
    let target = words.next().unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    // The query's parameters, and a POST's form.
    let form = String::from_utf8_lossy(&body).into_owned();
    let params: Vec<(String, String)> = query
        .split('&')
        .chain(form.split('&'))
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), unescape(v)))
        .collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| {
            // One parameter may hold several scopes, space-separated.
            v.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let credentials = authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let user = credentials
        .as_deref()
        .map(|c| c.split_once(':').map_or(c, |(u, _)| u).to_string());
    let oauth = method == "POST";
    let known = matches!(method.as_str(), "GET" | "POST") && path == "/token";
    let granted = known
        && if oauth {
            param("grant_type") == Some("refresh_token")
                && param("refresh_token") == Some(accepts.refresh.as_str())
        } else {
            credentials.as_deref() == Some(accepts.basic.as_str())
        };
    let (status, body) = if granted {
        let token = jwt(
            keys,
            user.as_deref().or(param("client_id")).unwrap_or(""),
            &scopes,
            jti.fetch_add(1, Ordering::SeqCst),
        );
        issued.lock().unwrap().push(token.clone());
        let answer = if oauth {
            serde_json::json!({"access_token": token, "refresh_token": accepts.refresh, "expires_in": 300})
        } else {
            serde_json::json!({"token": token, "access_token": token, "expires_in": 300})
        };
        ("200 OK", answer.to_string())
    } else if !known {
        ("404 Not Found", r#"{"details":"not found"}"#.to_string())
    } else {
        (
            "401 Unauthorized",
            r#"{"details":"incorrect username or password"}"#.to_string(),
        )
    };
    seen.lock().unwrap().push(TokenRequest {
        method,
        scopes,
        user,
        granted,
        user_agent,
    });
    let mut c = &c;
    let _ = write!(
        c,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}
