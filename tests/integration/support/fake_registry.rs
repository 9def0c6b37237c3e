//! A fake registry for the fake engine's tests: the distribution API's manifest
//! and blob endpoints on a free loopback port, over a directory the fake engine's
//! `push` writes its images into (so a pushed digest is one the registry serves).
//! Faults are injected per request ([`FakeRegistry::fail`]); every request is
//! logged ([`FakeRegistry::requests`]).

use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use multiarch::registry::client::sha256;

#[derive(Debug, Clone)]
struct Fault {
    method: String,
    path: String,
    status: u16,
    times: usize,
    /// Matching requests let through before the fault starts.
    after: usize,
}

#[derive(Default)]
struct State {
    faults: Vec<Fault>,
    log: Vec<String>,
}

pub struct FakeRegistry {
    pub host: String,
    dir: PathBuf,
    state: Arc<Mutex<State>>,
}

/// A repository name as a file name (what the fake engine's `key` does).
pub fn key(s: &str) -> String {
    s.replace(['/', ':', '@'], "_")
}

impl FakeRegistry {
    /// Serve `dir` (`dir/m/<repo>/<tag or digest>`, `dir/b/<digest>`).
    pub fn start(dir: &Path) -> FakeRegistry {
        std::fs::create_dir_all(dir.join("m")).unwrap();
        std::fs::create_dir_all(dir.join("b")).unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = l.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(State::default()));
        let (d, s) = (dir.to_path_buf(), state.clone());
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { continue };
                let (d, s) = (d.clone(), s.clone());
                std::thread::spawn(move || serve(c, &d, &s));
            }
        });
        FakeRegistry {
            host,
            dir: dir.to_path_buf(),
            state,
        }
    }

    /// The next `times` requests `METHOD …path…` (path containing `path`) are
    /// answered `status`.
    pub fn fail(&self, method: &str, path: &str, status: u16, times: usize) -> &Self {
        self.fail_after(method, path, status, times, 0)
    }

    /// As [`FakeRegistry::fail`], after `after` matching requests went through.
    pub fn fail_after(
        &self,
        method: &str,
        path: &str,
        status: u16,
        times: usize,
        after: usize,
    ) -> &Self {
        self.state.lock().unwrap().faults.push(Fault {
            method: method.into(),
            path: path.into(),
            status,
            times,
            after,
        });
        self
    }

    /// Every request so far: `METHOD /v2/…`.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    /// Put a manifest under `reference` (and its digest): its digest.
    pub fn put(&self, repo: &str, reference: &str, bytes: &[u8]) -> String {
        store(&self.dir, repo, reference, bytes)
    }

    /// The manifest `reference` names, if any.
    pub fn manifest(&self, repo: &str, reference: &str) -> Option<Vec<u8>> {
        std::fs::read(self.dir.join("m").join(key(repo)).join(key(reference))).ok()
    }

    /// A single-platform image (config + manifest) under `reference`: its digest.
    pub fn image(&self, repo: &str, reference: &str, platform: &str) -> String {
        let mut parts = platform.split('/');
        let (os, arch) = (parts.next().unwrap(), parts.next().unwrap());
        let variant = parts
            .next()
            .map(|v| format!(",\"variant\":\"{v}\""))
            .unwrap_or_default();
        let cfg = format!("{{\"architecture\":\"{arch}\",\"os\":\"{os}\"{variant}}}");
        let cd = sha256(cfg.as_bytes());
        write_whole(&self.dir.join("b").join(key(&cd)), cfg.as_bytes());
        let m = format!(
            "{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\",\"config\":{{\"mediaType\":\"application/vnd.docker.container.image.v1+json\",\"digest\":\"{cd}\",\"size\":{}}},\"layers\":[]}}",
            cfg.len()
        );
        self.put(repo, reference, m.as_bytes())
    }
}

fn store(dir: &Path, repo: &str, reference: &str, bytes: &[u8]) -> String {
    let d = sha256(bytes);
    let r = dir.join("m").join(key(repo));
    std::fs::create_dir_all(&r).unwrap();
    write_whole(&r.join(key(&d)), bytes);
    write_whole(&r.join(key(reference)), bytes);
    d
}

/// Write `path` so that a reader sees the old bytes or the new, never half of
/// them (as a registry serves a tag another push is moving).
fn write_whole(path: &Path, bytes: &[u8]) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp-{}-{n}", std::process::id()));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn serve(c: TcpStream, dir: &Path, state: &Mutex<State>) {
    let mut r = BufReader::new(&c);
    let Some((line, headers)) = super::read_head(&mut r) else {
        return;
    };
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    if r.read_exact(&mut body).is_err() {
        return;
    }
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or("").to_string();
    let path = words.next().unwrap_or("").to_string();
    let fault = {
        let mut s = state.lock().unwrap();
        s.log.push(format!("{method} {path}"));
        s.faults
            .iter_mut()
            .find(|f| f.times > 0 && f.method == method && path.contains(&f.path))
            .and_then(|f| {
                if f.after > 0 {
                    f.after -= 1;
                    return None;
                }
                f.times -= 1;
                Some(f.status)
            })
    };
    let answer = match fault {
        Some(status) => Answer::error(status, "FAULT", "injected by the test"),
        None => route(&method, &path, &body, dir),
    };
    let mut out = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", answer.status);
    for (k, v) in &answer.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", answer.body.len()));
    let mut c = &c;
    let _ = c.write_all(out.as_bytes());
    if method != "HEAD" {
        let _ = c.write_all(&answer.body);
    }
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn error(status: u16, code: &str, message: &str) -> Answer {
        Answer {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: format!("{{\"errors\":[{{\"code\":\"{code}\",\"message\":\"{message}\"}}]}}")
                .into_bytes(),
        }
    }
}

fn route(method: &str, path: &str, body: &[u8], dir: &Path) -> Answer {
    let ok = |status, headers, body| Answer {
        status,
        headers,
        body,
    };
    let Some(rest) = path.strip_prefix("/v2/") else {
        return Answer::error(404, "NOT_FOUND", "not the API");
    };
    if rest.is_empty() {
        return ok(200, vec![], b"{}".to_vec());
    }
    if let Some((repo, reference)) = rest.split_once("/manifests/") {
        let file = dir.join("m").join(key(repo)).join(key(reference));
        return match method {
            "GET" | "HEAD" => match std::fs::read(&file) {
                Ok(bytes) => {
                    let media = serde_json::from_slice::<serde_json::Value>(&bytes)
                        .ok()
                        .and_then(|v| v["mediaType"].as_str().map(str::to_string))
                        .unwrap_or_default();
                    ok(
                        200,
                        vec![
                            ("Content-Type".into(), media),
                            ("Docker-Content-Digest".into(), sha256(&bytes)),
                        ],
                        bytes,
                    )
                }
                Err(_) => Answer::error(404, "MANIFEST_UNKNOWN", "manifest unknown"),
            },
            "PUT" => {
                let d = store(dir, repo, reference, body);
                ok(201, vec![("Docker-Content-Digest".into(), d)], Vec::new())
            }
            // By digest: the manifest and every tag naming it; by tag (OCI
            // 1.1): the tag only.
            "DELETE" => {
                let r = dir.join("m").join(key(repo));
                let Ok(gone) = std::fs::read(r.join(key(reference))) else {
                    return Answer::error(404, "MANIFEST_UNKNOWN", "manifest unknown");
                };
                if !reference.starts_with("sha256:") {
                    let _ = std::fs::remove_file(r.join(key(reference)));
                    return ok(202, vec![], Vec::new());
                }
                for e in std::fs::read_dir(&r).unwrap().flatten() {
                    if std::fs::read(e.path()).ok().as_deref() == Some(&gone[..]) {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
                ok(202, vec![], Vec::new())
            }
            _ => Answer::error(405, "UNSUPPORTED", "method"),
        };
    }
    if let Some((_, digest)) = rest.split_once("/blobs/") {
        if digest.starts_with("uploads/") {
            return ok(201, vec![], Vec::new());
        }
        return match std::fs::read(dir.join("b").join(key(digest))) {
            Ok(bytes) => ok(200, vec![], bytes),
            Err(_) => Answer::error(404, "BLOB_UNKNOWN", "blob unknown"),
        };
    }
    Answer::error(404, "NOT_FOUND", "unknown path")
}
