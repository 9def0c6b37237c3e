//! Test harness for the engine tests: a registry on a free loopback port, a
//! project directory with its multiarch.toml, the multiarch binary, and the
//! library's HTTP client for asking the registry what it really serves.

pub mod fake_engine;
pub mod fake_registry;
pub mod token_server;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use multiarch::registry::http::{self, Client};
use multiarch::registry::{manifest_url, Scheme, MANIFEST_ACCEPT};
pub use tempfile::TempDir;

/// Engine tests share one docker daemon and its platform-blind build cache: they
/// run one at a time.
static ENGINE: Mutex<()> = Mutex::new(());

pub fn engine_lock() -> MutexGuard<'static, ()> {
    ENGINE.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Static busybox binaries per arch (made by `cargo xtask ci` / `cargo xtask images`).
pub fn busybox_dir() -> PathBuf {
    let dir = std::env::var_os("MULTIARCH_BUSYBOX")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/multiarch-env/busybox"));
    for a in ["amd64", "arm64v8", "arm32v7"] {
        assert!(
            dir.join(a).join("busybox").is_file(),
            "no busybox binary for {a} in {}: run `cargo xtask ci` (it prepares the engine, the registry tooling and these binaries)",
            dir.display()
        );
    }
    dir
}

/// A reference registry (distribution) on 127.0.0.1:<free port>, ended on drop.
pub struct Registry {
    pub addr: String,
    child: Option<Child>,
    cfg: PathBuf,
    dir: TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        Registry::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Registry {
        Registry::start_with(port, "")
    }

    /// With `extra` appended to its config (an `auth:` section, say); `/v2/`
    /// is then awaited until it answers 200 or 401.
    pub fn start_with(port: u16, extra: &str) -> Registry {
        let dir = temp_dir("registry");
        let addr = format!("127.0.0.1:{port}");
        let cfg = dir.path().join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{extra}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = spawn_registry(&cfg, dir.path());
        let r = Registry {
            addr,
            child: Some(child),
            cfg,
            dir,
        };
        r.wait_ready();
        r
    }

    fn wait_ready(&self) {
        wait_until(Duration::from_secs(20), || {
            http::ping_v2(&client(), Scheme::Http, &self.addr, None)
                .is_ok_and(|s| s == 200 || s == 401)
        })
        .expect("the registry answers /v2/");
    }

    /// Stop it (the storage stays, for a restart on the same port).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        wait_until(Duration::from_secs(10), || {
            TcpStream::connect(&self.addr).is_err()
        })
        .expect("the registry stops");
    }

    /// Start it again on the same port with the same storage.
    pub fn restart(&mut self) {
        self.stop();
        self.child = Some(spawn_registry(&self.cfg, self.dir.path()));
        self.wait_ready();
    }

    /// The status of a manifest in the registry (200 present, 404 absent) and its body.
    pub fn manifest(&self, repo: &str, reference: &str) -> (u16, String) {
        client()
            .get(manifest_url(Scheme::Http, &self.addr, repo, reference))
            .accept(MANIFEST_ACCEPT)
            .send()
            .map_or((0, String::new()), |a| (a.status(), a.text().into_owned()))
    }

    /// The platforms of a pushed list, as `os/arch[/variant]`, sorted.
    pub fn list_platforms(&self, repo: &str, tag: &str) -> Vec<String> {
        let (status, body) = self.manifest(repo, tag);
        assert_eq!(status, 200, "{repo}:{tag} is not in the registry: {body}");
        index_platforms(&serde_json::from_str(&body).unwrap())
    }
}

fn spawn_registry(cfg: &Path, dir: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("registry.log"))
        .unwrap();
    Command::new("docker-registry")
        .arg("serve")
        .arg(cfg)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("docker-registry is installed (cargo xtask ci installs it)")
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A finished command's exit code (-1 when a signal ended it).
pub fn code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// A finished command's stdout then stderr, as text.
pub fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The request line and the headers (names lowercased) of an HTTP request,
/// read up to the blank line; `None` when the connection ends before.
pub fn read_head(
    r: &mut impl BufRead,
) -> Option<(String, std::collections::HashMap<String, String>)> {
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut headers = std::collections::HashMap::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    Some((line.trim_end().to_string(), headers))
}

/// The platforms of an index's image entries, as `os/arch[/variant]`, sorted
/// (attestation manifests, which BuildKit adds as `unknown/unknown`, left out).
pub fn index_platforms(index: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = index["manifests"]
        .as_array()
        .expect("a list")
        .iter()
        .filter(|m| m["annotations"]["vnd.docker.reference.type"].is_null())
        .map(|m| {
            let p = &m["platform"];
            let mut s = format!(
                "{}/{}",
                p["os"].as_str().unwrap(),
                p["architecture"].as_str().unwrap()
            );
            if let Some(v) = p["variant"].as_str() {
                s.push('/');
                s.push_str(v);
            }
            s
        })
        .collect();
    out.sort();
    out
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The client tests ask registries with (a short timeout: they are loopback).
pub fn client() -> Client {
    Client::new(Duration::from_secs(10))
}

/// Poll a condition until it holds or the deadline passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> Result<(), String> {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if cond() {
            return Ok(());
        }
        std::thread::park_timeout(Duration::from_millis(100));
    }
    Err(format!("condition not met within {timeout:?}"))
}

/// A private temporary directory (`multiarch-test-<prefix>-…`), removed on drop.
pub fn temp_dir(prefix: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("multiarch-test-{prefix}-"))
        .tempdir()
        .expect("a temporary directory")
}

/// A project: a directory with a busybox base image, app images and a spec.
pub struct Project {
    pub dir: TempDir,
}

pub const SHA: &str = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";

impl Project {
    /// With `examples/busybox` (the per-arch base) already in place.
    pub fn new() -> Project {
        let dir = temp_dir("project");
        let bb = dir.path().join("busybox");
        std::fs::create_dir_all(bb.join("rootfs")).unwrap();
        std::fs::copy(
            workspace().join("examples/busybox/Dockerfile"),
            bb.join("Dockerfile"),
        )
        .unwrap();
        let src = busybox_dir();
        for a in ["amd64", "arm64v8", "arm32v7"] {
            std::fs::create_dir_all(bb.join("rootfs").join(a)).unwrap();
            std::fs::copy(
                src.join(a).join("busybox"),
                bb.join("rootfs").join(a).join("busybox"),
            )
            .unwrap();
        }
        Project { dir }
    }

    /// The busybox binaries in `rel/rootfs/<arch>/busybox` too, for an image
    /// made `FROM scratch` in the context `rel`.
    pub fn busybox_into(&self, rel: &str) -> &Self {
        let src = busybox_dir();
        for a in ["amd64", "arm64v8", "arm32v7"] {
            let dir = self.path().join(rel).join("rootfs").join(a);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::copy(src.join(a).join("busybox"), dir.join("busybox")).unwrap();
        }
        self
    }

    /// Without the busybox binaries (for tests that never reach an engine).
    pub fn new_without_busybox() -> Project {
        Project {
            dir: temp_dir("project"),
        }
    }

    pub fn file(&self, rel: &str, text: &str) -> &Self {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_multiarch"));
        c.args(args)
            .current_dir(self.path())
            .env_remove("DOCKER_BUILDKIT")
            .env_remove("MULTIARCH_DOCKER")
            .env_remove("MULTIARCH_BUILDER")
            .env("NO_COLOR", "1");
        for k in [
            "GITLAB_CI",
            "GITHUB_ACTIONS",
            "CIRCLECI",
            "BUILDKITE",
            "TF_BUILD",
            "TRAVIS",
            "JENKINS_URL",
            "BITBUCKET_BUILD_NUMBER",
            "CI_REGISTRY_USER",
            "MULTIARCH_REGISTRY_USER",
        ] {
            c.env_remove(k);
        }
        c
    }

    /// Run against the real engine, with the builder CI chose for this pass
    /// (`MULTIARCH_TEST_BUILDER`, `MULTIARCH_TEST_DOCKER`: the engine tests run
    /// once with the classic builder, once with BuildKit).
    pub fn run(&self, reg: &Registry, args: &[&str]) -> Output {
        let mut c = self.command(args);
        c.env("REG", &reg.addr);
        for (from, to) in [
            ("MULTIARCH_TEST_BUILDER", "MULTIARCH_BUILDER"),
            ("MULTIARCH_TEST_DOCKER", "MULTIARCH_DOCKER"),
        ] {
            if let Ok(v) = std::env::var(from) {
                c.env(to, v);
            }
        }
        let out = c.output().unwrap();
        eprintln!(
            "--- multiarch {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// Images a default `uname -m` check used to fail on (issue 12): a server whose
/// ENTRYPOINT refuses unknown arguments, the same image checked through its
/// entrypoint (`verify.entrypoint = true`), and a scratch image holding only a
/// static binary (busybox as /hello, no /bin/uname). `engine` is the
/// `[project] engine` line.
pub fn entrypoint_project(engine: &str) -> Project {
    let spec = format!(
        r#"
[project]
registry = "${{REG}}/acme"
{engine}

[archs]
default = ["amd64", "arm64v8"]

[[image]]
name = "busybox"
context = "busybox"

[[image]]
name = "server"
context = "server"
depends_on = ["busybox"]
args = {{ BASE = "{{image.busybox}}" }}

[[image]]
name = "selftest"
context = "server"
depends_on = ["busybox"]
args = {{ BASE = "{{image.busybox}}" }}
verify = {{ entrypoint = true, command = ["arch"] }}

[[image]]
name = "scratch"
context = "scratch"
"#
    );
    let p = Project::new();
    p.file("multiarch.toml", &spec)
        .file(
            "server/Dockerfile",
            "ARG BASE\nFROM ${BASE}\nCOPY entry.sh /entry.sh\nENTRYPOINT [\"/bin/sh\", \"/entry.sh\"]\nCMD [\"serve\"]\n",
        )
        .file(
            "server/entry.sh",
            "case \"$1\" in\n  serve) echo serving ;;\n  arch) exec uname -m ;;\n  *) echo \"server: unknown argument: $1\" >&2; exit 64 ;;\nesac\n",
        )
        .file(
            "scratch/Dockerfile",
            "# Only a static binary: no shell, no uname.\nARG ARCH=amd64\nFROM scratch AS amd64\nCOPY rootfs/amd64/busybox /hello\nFROM scratch AS arm64v8\nCOPY rootfs/arm64v8/busybox /hello\nFROM ${ARCH}\nENTRYPOINT [\"/hello\", \"echo\", \"hello\"]\n",
        )
        .busybox_into("scratch");
    p
}

/// After a run of [`entrypoint_project`] on `reg` with `--events events`: every
/// image's list serves both platforms, the steps of `ran` passed by running
/// their check, and those of `from_config` by their config's platform, saying so.
pub fn assert_entrypoint_run(
    reg: &Registry,
    events: &Path,
    ran: &[&str],
    from_config: &[(&str, &str)],
) {
    let want = vec!["linux/amd64", "linux/arm64/v8"];
    for image in ["server", "selftest", "scratch"] {
        assert_eq!(reg.list_platforms(&format!("acme/{image}"), "latest"), want);
    }
    let steps: std::collections::BTreeMap<String, serde_json::Value> =
        std::fs::read_to_string(events)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["event"] == "step-finished")
            .filter_map(|e| Some((e["id"].as_str()?.to_string(), e)))
            .collect();
    for id in ran {
        assert_eq!(steps[*id]["status"], "ok", "{id}");
        assert!(steps[*id].get("detail").is_none(), "{id} ran its check");
    }
    for (id, platform) in from_config {
        assert_eq!(steps[*id]["status"], "ok", "{id}");
        // BuildKit writes arm64 without its default variant v8, the classic
        // builder with it: both are linux/arm64/v8.
        let detail = steps[*id]["detail"].as_str().unwrap_or_default();
        let short = platform.strip_suffix("/v8").unwrap_or(platform);
        assert!(
            detail == format!("platform checked from config: {platform}")
                || detail == format!("platform checked from config: {short}"),
            "{id}: {detail}"
        );
    }
}

/// Spawn multiarch with stdout piped and read lines until one matches.
pub fn spawn_until(mut cmd: Command, pattern: &str, timeout: Duration) -> (Child, Vec<String>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let end = Instant::now() + timeout;
    loop {
        match rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
            Ok(l) => {
                let hit = l.contains(pattern);
                seen.push(l);
                if hit {
                    break;
                }
            }
            Err(_) => panic!("`{pattern}` never appeared; output:\n{}", seen.join("\n")),
        }
    }
    // Keep draining so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in rx {});
    (child, seen)
}

/// Processes whose command line contains `marker`.
pub fn processes_with(marker: &str) -> Vec<String> {
    let mut out = Vec::new();
    let me = std::process::id().to_string();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
                continue;
            }
            if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
                let c = String::from_utf8_lossy(&c).replace('\0', " ");
                if c.contains(marker) {
                    out.push(format!("{name}: {c}"));
                }
            }
        }
    }
    out
}

/// A loopback TCP proxy to `target` that resets the first `resets` connections
/// (SO_LINGER 0, then close: the client sees "connection reset by peer").
pub struct FlakyProxy {
    pub addr: String,
    pub accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FlakyProxy {
    pub fn start(target: &str, resets: usize) -> FlakyProxy {
        use std::os::fd::AsRawFd;
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        let target = target.to_string();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { break };
                let n = count.fetch_add(1, Ordering::SeqCst);
                if n < resets {
                    let linger = libc::linger {
                        l_onoff: 1,
                        l_linger: 0,
                    };
                    // SAFETY: setting a socket option on a socket we own.
                    unsafe {
                        libc::setsockopt(
                            client.as_raw_fd(),
                            libc::SOL_SOCKET,
                            libc::SO_LINGER,
                            &linger as *const libc::linger as *const libc::c_void,
                            std::mem::size_of::<libc::linger>() as libc::socklen_t,
                        );
                    }
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let (Ok(mut c2), Ok(mut s2)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                let (mut c1, mut s1) = (client, server);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c1, &mut s1);
                    let _ = s1.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        FlakyProxy { addr, accepted }
    }
}

/// A registry that answers 401 to everything. Returns its address and a count of
/// the requests it saw.
pub fn unauthorized_registry() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    refusing_registry(|_| "authentication required".to_string())
}

/// A registry that refuses every request (401, a Basic challenge) and echoes
/// what it was sent in its message: the Authorization header and the password
/// in it, as a careless registry or proxy might.
pub fn echoing_registry() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use base64::Engine as _;
    refusing_registry(|authorization| {
        let password = authorization
            .and_then(|a| a.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .and_then(|c| c.split_once(':').map(|(_, p)| p.to_string()))
            .unwrap_or_default();
        format!(
            "refused Authorization: {} (password {password})",
            authorization.unwrap_or("none")
        )
    })
}

/// A registry that answers 401 to everything, with `message(Authorization)`
/// as its error's message; its address and a count of the requests it saw.
fn refusing_registry(
    message: impl Fn(Option<&str>) -> String + Send + Sync + 'static,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { break };
            h.fetch_add(1, Ordering::SeqCst);
            let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
            let authorization = read_head(&mut BufReader::new(&c))
                .and_then(|(_, mut headers)| headers.remove("authorization"));
            let body = serde_json::json!({"errors": [{
                "code": "UNAUTHORIZED",
                "message": message(authorization.as_deref()),
                "detail": null
            }]})
            .to_string();
            let _ = write!(
                c,
                "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nDocker-Distribution-Api-Version: registry/2.0\r\nWWW-Authenticate: Basic realm=\"multiarch-test\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (addr, hits)
}

/// A second dockerd on its own unix socket: a stand-in for a native builder.
pub struct SecondDaemon {
    pub host: String,
    child: Option<Child>,
    dir: TempDir,
}

impl SecondDaemon {
    pub fn start() -> SecondDaemon {
        let dir = temp_dir("dockerd");
        let sock = dir.path().join("docker.sock");
        let log = std::fs::File::create(dir.path().join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip-forward=false",
                "--ip-masq=false",
            ])
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("dockerd is installed (cargo xtask ci installs it)");
        let host = format!("unix://{}", sock.display());
        let d = SecondDaemon {
            host,
            child: Some(child),
            dir,
        };
        let h = d.host.clone();
        wait_until(Duration::from_secs(60), || {
            Command::new("docker")
                .args(["--host", &h, "info", "--format", "{{.ServerVersion}}"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .unwrap_or_else(|e| {
            panic!(
                "the second dockerd did not answer: {e}; log:\n{}",
                std::fs::read_to_string(d.dir.path().join("dockerd.log")).unwrap_or_default()
            )
        });
        d
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .arg("--host")
            .arg(&self.host)
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for SecondDaemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling the daemon this test started.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let end = Instant::now() + Duration::from_secs(20);
            while Instant::now() < end {
                if c.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::park_timeout(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        // Its containers' mounts under the data root go with the daemon.
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.path().join("exec"))
            .output();
    }
}

/// Run git in a directory; panics on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=multiarch-test",
            "-c",
            "user.email=test@localhost",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
