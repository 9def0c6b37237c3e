//! Running one command: argv only (never a shell), in its own process group so
//! that cancelling reaches grandchildren, with its output streamed line by line.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The process groups of a run, so that Ctrl-C, a timeout or `--fail-fast` can end
/// every child, grandchildren included.
#[derive(Debug, Default)]
pub struct ProcessTable {
    groups: Mutex<HashSet<i32>>,
    cancelled: AtomicBool,
}

impl ProcessTable {
    pub fn new() -> Arc<ProcessTable> {
        Arc::new(ProcessTable::default())
    }

    fn add(&self, pgid: i32) {
        if let Ok(mut g) = self.groups.lock() {
            g.insert(pgid);
        }
    }

    fn remove(&self, pgid: i32) {
        if let Ok(mut g) = self.groups.lock() {
            g.remove(&pgid);
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Stop starting processes and signal every running group.
    pub fn cancel(&self, signal: i32) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.signal_all(signal);
    }

    pub fn signal_all(&self, signal: i32) {
        let groups: Vec<i32> = self
            .groups
            .lock()
            .map(|g| g.iter().copied().collect())
            .unwrap_or_default();
        for pgid in groups {
            signal_group(pgid, signal);
        }
    }

    pub fn running(&self) -> usize {
        self.groups.lock().map(|g| g.len()).unwrap_or(0)
    }
}

fn signal_group(pgid: i32, signal: i32) {
    if pgid > 1 {
        // SAFETY: killpg only sends a signal; a stale group id fails with ESRCH.
        unsafe {
            libc::killpg(pgid, signal);
        }
    }
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    TimedOut(Duration),
    Cancelled,
    /// It could not be started (not installed, not executable).
    SpawnFailed(String),
}

impl Exit {
    pub fn success(&self) -> bool {
        matches!(self, Exit::Code(0))
    }

    pub fn describe(&self) -> String {
        match self {
            Exit::Code(c) => format!("exit code {c}"),
            Exit::Signal(s) => format!("killed by signal {s}"),
            Exit::TimedOut(d) => format!("timed out after {}", crate::events::format::duration(*d)),
            Exit::Cancelled => "cancelled".into(),
            Exit::SpawnFailed(e) => format!("could not start: {e}"),
        }
    }
}

/// One command to run.
#[derive(Debug, Clone, Default)]
pub struct Command {
    pub argv: Vec<String>,
    pub dir: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    /// Bytes for stdin (a password for `--password-stdin`); else stdin is null.
    pub stdin: Option<Vec<u8>>,
    pub timeout: Option<Duration>,
}

impl Command {
    pub fn new(argv: Vec<String>) -> Command {
        Command {
            argv,
            ..Command::default()
        }
    }

    fn expression(&self) -> Option<duct::Expression> {
        let (prog, args) = self.argv.split_first()?;
        let mut e = duct::cmd(resolve_program(prog, &self.env), args).unchecked();
        if let Some(d) = &self.dir {
            e = e.dir(d);
        }
        for (k, v) in &self.env {
            e = e.env(k, v);
        }
        e = match &self.stdin {
            Some(b) => e.stdin_bytes(b.clone()),
            None => e.stdin_null(),
        };
        Some(e.before_spawn(|cmd| {
            cmd.process_group(0);
            Ok(())
        }))
    }
}

/// `docker` → `/usr/bin/docker`, searched in the PATH the child will have (the
/// command's own `PATH`, else this process's). duct sets the child's whole
/// environment, and std cannot `posix_spawn` a bare name under a PATH it set:
/// it falls back to `fork`, which copies this process's page tables on every
/// step (about 1 ms per step more than `make -j`: docs/benchmarks.md). A name
/// found nowhere is left as it is, so the error is the usual "not found".
/// `docker` is `$MULTIARCH_DOCKER` when that is set (the command's, else this
/// process's): the docker CLI of every docker command multiarch runs.
fn resolve_program(prog: &str, env: &[(String, String)]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    if prog == "docker" {
        let chosen = env
            .iter()
            .rev()
            .find(|(k, _)| k == "MULTIARCH_DOCKER")
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var("MULTIARCH_DOCKER").ok())
            .filter(|v| !v.is_empty());
        if let Some(d) = chosen.filter(|d| d != "docker") {
            return resolve_program(&d, env);
        }
    }
    if prog.contains('/') {
        return PathBuf::from(prog);
    }
    let path = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| std::ffi::OsString::from(v))
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_default();
    std::env::split_paths(&path)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(prog))
        .find(|c| {
            std::fs::metadata(c).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .unwrap_or_else(|| PathBuf::from(prog))
}

/// The result of a command: how it ended and what it printed.
#[derive(Debug, Clone)]
pub struct Finished {
    pub exit: Exit,
    /// Stdout and stderr interleaved, line by line (merged mode), or stdout only
    /// (separate mode).
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
    pub duration: Duration,
}

impl Finished {
    /// The first line worth quoting (not blank): of stderr, then stdout; else
    /// how it ended.
    pub fn first_line(&self) -> String {
        self.lines()
            .find(|l| !l.trim().is_empty())
            .cloned()
            .unwrap_or_else(|| self.exit.describe())
    }

    /// Every line, stderr first: what a failure's tail shows.
    pub fn lines(&self) -> impl Iterator<Item = &String> {
        self.stderr.iter().chain(self.stdout.iter())
    }
}

/// Kill the group when the deadline passes, unless `done` fires first.
fn watchdog(
    pgid: i32,
    timeout: Option<Duration>,
    timed_out: Arc<AtomicBool>,
) -> Option<mpsc::Sender<()>> {
    let timeout = timeout?;
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(timeout) {
            timed_out.store(true, Ordering::SeqCst);
            signal_group(pgid, libc::SIGTERM);
            // A grace period for the command to clean up, then SIGKILL.
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(5)) {
                signal_group(pgid, libc::SIGKILL);
            }
        }
    });
    Some(tx)
}

fn exit_of(status: std::process::ExitStatus) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => Exit::Code(c),
        (None, Some(s)) => Exit::Signal(s),
        _ => Exit::Code(-1),
    }
}

/// Where a command's output goes.
pub enum Output<'a> {
    /// Stdout and stderr merged into one ordered stream, each line handed to the
    /// callback as it comes (and kept in [`Finished::stdout`]).
    Merged(&'a mut dyn FnMut(&str)),
    /// Stdout and stderr kept apart, read when the command ends (for commands
    /// whose stdout is compared: `uname -m` in a container).
    Captured,
}

/// Run `cmd` in its own process group, registered in `table` so a cancellation
/// reaches it, ended by its timeout: the one way multiarch starts a command.
pub fn spawn(cmd: &Command, table: &Arc<ProcessTable>, output: Output<'_>) -> Finished {
    let start = Instant::now();
    let ended = |exit: Exit, stdout: Vec<String>, stderr: Vec<String>| Finished {
        exit,
        stdout,
        stderr,
        duration: start.elapsed(),
    };
    if table.is_cancelled() {
        return Finished {
            duration: Duration::ZERO,
            ..ended(Exit::Cancelled, Vec::new(), Vec::new())
        };
    }
    let Some(expr) = cmd.expression() else {
        return ended(
            Exit::SpawnFailed("empty command".into()),
            Vec::new(),
            Vec::new(),
        );
    };
    let started = match output {
        Output::Merged(on_line) => expr
            .stderr_to_stdout()
            .reader()
            .map(|r| Running::Merged(r, on_line)),
        Output::Captured => expr
            .stdout_capture()
            .stderr_capture()
            .start()
            .map(Running::Captured),
    };
    let running = match started {
        Ok(r) => r,
        Err(e) => {
            return ended(
                Exit::SpawnFailed(spawn_error(&cmd.argv, &e)),
                Vec::new(),
                Vec::new(),
            )
        }
    };
    let pgid = running.pgid();
    table.add(pgid);
    if table.is_cancelled() {
        signal_group(pgid, libc::SIGTERM);
    }
    let timed_out = Arc::new(AtomicBool::new(false));
    let done = watchdog(pgid, cmd.timeout, timed_out.clone());
    let (status, stdout, stderr) = running.wait();
    drop(done);
    table.remove(pgid);
    let exit = if timed_out.load(Ordering::SeqCst) {
        Exit::TimedOut(cmd.timeout.unwrap_or_default())
    } else if table.is_cancelled() && !status.is_some_and(|s| s.success()) {
        Exit::Cancelled
    } else {
        status.map_or(Exit::Code(-1), exit_of)
    };
    ended(exit, stdout, stderr)
}

/// A started command, by how its output is read.
enum Running<'a> {
    Merged(duct::ReaderHandle, &'a mut dyn FnMut(&str)),
    Captured(duct::Handle),
}

impl Running<'_> {
    fn pgid(&self) -> i32 {
        let pids = match self {
            Running::Merged(r, _) => r.pids(),
            Running::Captured(h) => h.pids(),
        };
        pids.first().map_or(0, |p| *p as i32)
    }

    /// Read the output to its end: the status (if it could be read), stdout and
    /// stderr.
    fn wait(self) -> (Option<std::process::ExitStatus>, Vec<String>, Vec<String>) {
        match self {
            Running::Merged(reader, on_line) => {
                let mut lines = Vec::new();
                let mut buf = BufReader::new(&reader);
                let mut raw = Vec::new();
                loop {
                    raw.clear();
                    match buf.read_until(b'\n', &mut raw) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let text = String::from_utf8_lossy(&raw);
                            // Progress output uses \r; keep the last state of each line.
                            let line = text
                                .trim_end_matches(['\n', '\r'])
                                .rsplit('\r')
                                .next()
                                .unwrap_or("")
                                .to_string();
                            on_line(&line);
                            lines.push(line);
                        }
                    }
                }
                let status = reader.try_wait().ok().flatten().map(|o| o.status);
                (status, lines, Vec::new())
            }
            Running::Captured(handle) => {
                let split = |b: &[u8]| -> Vec<String> {
                    String::from_utf8_lossy(b)
                        .lines()
                        .map(str::to_string)
                        .collect()
                };
                match handle.wait() {
                    Ok(o) => (Some(o.status), split(&o.stdout), split(&o.stderr)),
                    Err(_) => (None, Vec::new(), Vec::new()),
                }
            }
        }
    }
}

fn spawn_error(argv: &[String], e: &std::io::Error) -> String {
    let prog = argv.first().map(String::as_str).unwrap_or("");
    if e.kind() == std::io::ErrorKind::NotFound {
        format!("`{prog}` is not installed or not on PATH")
    } else {
        format!("`{prog}`: {e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        Command::new(vec!["sh".into(), "-c".into(), script.into()])
    }

    #[test]
    fn streams_lines_and_exit_codes() {
        let t = ProcessTable::new();
        let mut seen = Vec::new();
        let f = spawn(
            &sh("echo one; echo two >&2; exit 3"),
            &t,
            Output::Merged(&mut |l| seen.push(l.to_string())),
        );
        assert_eq!(f.exit, Exit::Code(3));
        assert_eq!(seen, vec!["one", "two"]);
    }

    #[test]
    fn captured_keeps_stdout_apart() {
        let t = ProcessTable::new();
        let f = spawn(&sh("echo out; echo err >&2"), &t, Output::Captured);
        assert!(f.exit.success());
        assert_eq!(f.stdout, vec!["out"]);
        assert_eq!(f.stderr, vec!["err"]);
    }

    #[test]
    fn a_timeout_ends_the_whole_group() {
        let t = ProcessTable::new();
        let mut cmd = sh("sleep 30 & sleep 30; wait");
        cmd.timeout = Some(Duration::from_millis(300));
        let f = spawn(&cmd, &t, Output::Merged(&mut |_| {}));
        assert!(matches!(f.exit, Exit::TimedOut(_)), "{:?}", f.exit);
        assert!(f.duration < Duration::from_secs(10));
        assert_eq!(t.running(), 0);
    }

    #[test]
    fn missing_programs_are_reported() {
        let t = ProcessTable::new();
        let f = spawn(
            &Command::new(vec!["multiarch-no-such-program".into()]),
            &t,
            Output::Captured,
        );
        assert!(
            matches!(f.exit, Exit::SpawnFailed(ref m) if m.contains("not installed")),
            "{:?}",
            f.exit
        );
    }

    #[test]
    fn stdin_bytes_reach_the_child() {
        let t = ProcessTable::new();
        let mut cmd = sh("read x; echo got-$x");
        cmd.stdin = Some(b"abc\n".to_vec());
        let f = spawn(&cmd, &t, Output::Captured);
        assert_eq!(f.stdout, vec!["got-abc"]);
    }
}
