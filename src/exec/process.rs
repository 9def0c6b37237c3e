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
            die_with_parent(cmd);
            Ok(())
        }))
    }
}

/// The child gets SIGKILL when multiarch dies, even by SIGKILL (which no handler
/// sees): Linux's parent-death signal, set between fork and exec. It is sent
/// when the thread that started the child ends; [`spawn`] waits for its child on
/// that thread, so that is when multiarch ends. A parent that died before the
/// signal was set is seen by the parent pid changing. Grandchildren are not
/// reached this way (a fork clears the setting); they are in the child's
/// process group, which every cancellation signals.
#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut std::process::Command) {
    // SAFETY: getpid before the fork; prctl, getppid and raise are
    // async-signal-safe, as a pre_exec hook needs.
    let parent = unsafe { libc::getpid() };
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                libc::raise(libc::SIGKILL);
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut std::process::Command) {}

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
        Output::Captured => start_captured(&expr),
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
    /// Stdout read here; stderr drained by its own thread into its lines.
    Captured(duct::ReaderHandle, std::thread::JoinHandle<Vec<String>>),
}

/// A captured command: stdout through duct's reader, stderr through a pipe a
/// thread drains, each kept up to [`CAPTURE_LIMIT`] (a container whose check
/// floods stderr cannot fill the memory: duct's own capture keeps all of it).
fn start_captured<'a>(expr: &duct::Expression) -> std::io::Result<Running<'a>> {
    let (stderr, writer) = os_pipe::pipe()?;
    // The expression holding `writer` ends with this statement: the command's
    // copy is then the only one, and the pipe ends when the command does.
    let reader = expr.stderr_file(writer).reader()?;
    let drain = std::thread::Builder::new()
        .name("stderr".into())
        .spawn(move || keep_up_to(stderr, CAPTURE_LIMIT))?;
    Ok(Running::Captured(reader, drain))
}

/// The lines of `r` while they fit in `limit` bytes, then a line saying how
/// many bytes were cut.
fn keep_up_to(r: impl std::io::Read, limit: usize) -> Vec<String> {
    let mut kept = Vec::new();
    let mut left = limit;
    let mut cut = 0usize;
    for_each_line(r, limit, |line| {
        if line.len() <= left {
            left -= line.len();
            kept.push(line);
        } else {
            cut += line.len();
        }
    });
    if cut > 0 {
        kept.push(format!("… ({cut} bytes cut)"));
    }
    kept
}

impl Running<'_> {
    fn pgid(&self) -> i32 {
        let pids = match self {
            Running::Merged(r, _) => r.pids(),
            Running::Captured(h, _) => h.pids(),
        };
        pids.first().map_or(0, |p| *p as i32)
    }

    /// Read the output to its end: the status (if it could be read), stdout and
    /// stderr.
    fn wait(self) -> (Option<std::process::ExitStatus>, Vec<String>, Vec<String>) {
        match self {
            Running::Merged(reader, on_line) => {
                // Streamed to the reporters as it comes; only the last lines are
                // kept (a digest, a failure's tail), so memory does not grow with
                // the output.
                let mut kept = std::collections::VecDeque::with_capacity(KEPT_LINES);
                for_each_line(&reader, MAX_LINE, |line| {
                    on_line(&line);
                    if kept.len() == KEPT_LINES {
                        kept.pop_front();
                    }
                    kept.push_back(line);
                });
                let status = reader.try_wait().ok().flatten().map(|o| o.status);
                (status, kept.into(), Vec::new())
            }
            Running::Captured(reader, stderr) => {
                // Kept whole (a JSON document is parsed from it), up to a budget:
                // a check that floods stdout cannot fill the memory.
                let stdout = keep_up_to(&reader, CAPTURE_LIMIT);
                let status = reader.try_wait().ok().flatten().map(|o| o.status);
                // The drain ends with the pipe; a panic in it is a bug.
                let stderr = stderr
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e));
                (status, stdout, stderr)
            }
        }
    }
}

/// The longest line streamed or kept, in bytes: the rest of a longer one is
/// counted, and the line ends in `… (N bytes cut)`.
pub const MAX_LINE: usize = 4096;

/// The lines a streamed command keeps for its step (the last ones).
pub const KEPT_LINES: usize = 200;

/// The most of a captured command's stdout that is kept, in bytes.
pub const CAPTURE_LIMIT: usize = 8 * 1024 * 1024;

/// Each line of `r` (lossy UTF-8, at most `max_line` bytes and a marker),
/// read in bounded memory whatever the line lengths. Progress output rewrites a
/// line with `\r`: the last state of each line is the line.
fn for_each_line(r: impl std::io::Read, max_line: usize, mut f: impl FnMut(String)) {
    let mut buf = BufReader::with_capacity(64 * 1024, r);
    let mut line: Vec<u8> = Vec::new();
    let mut cut = 0usize;
    let mut after_cr = false;
    let push = |line: &mut Vec<u8>, cut: &mut usize, after_cr: &mut bool, b: &[u8]| {
        if b.is_empty() {
            return;
        }
        if std::mem::take(after_cr) {
            line.clear();
            *cut = 0;
        }
        let take = max_line.saturating_sub(line.len()).min(b.len());
        line.extend_from_slice(&b[..take]);
        *cut += b.len() - take;
    };
    let finish = |line: &mut Vec<u8>, cut: &mut usize| {
        let mut s = String::from_utf8_lossy(line).into_owned();
        if *cut > 0 {
            s.push_str(&format!("… ({cut} bytes cut)"));
        }
        line.clear();
        *cut = 0;
        s
    };
    loop {
        let chunk = match buf.fill_buf() {
            Ok(c) if !c.is_empty() => c,
            _ => break,
        };
        let n = chunk.len();
        let mut start = 0;
        while start < n {
            let rest = &chunk[start..];
            match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(p) => {
                    push(&mut line, &mut cut, &mut after_cr, &rest[..p]);
                    if rest[p] == b'\n' {
                        after_cr = false;
                        f(finish(&mut line, &mut cut));
                    } else {
                        after_cr = true;
                    }
                    start += p + 1;
                }
                None => {
                    push(&mut line, &mut cut, &mut after_cr, rest);
                    start = n;
                }
            }
        }
        buf.consume(n);
    }
    if !line.is_empty() || cut > 0 {
        f(finish(&mut line, &mut cut));
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
    fn lines_are_cut_with_a_marker_and_progress_keeps_its_last_state() {
        let long = "y".repeat(MAX_LINE + 10);
        let input = format!("a\r\nprogress 1\rprogress 2\n{long}\nlast");
        let mut seen = Vec::new();
        for_each_line(input.as_bytes(), MAX_LINE, |l| seen.push(l));
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert_eq!(seen[0], "a");
        assert_eq!(seen[1], "progress 2");
        assert_eq!(seen[2], format!("{}… (10 bytes cut)", "y".repeat(MAX_LINE)));
        assert_eq!(seen[3], "last");
    }

    #[test]
    fn a_streamed_command_keeps_only_its_last_lines() {
        let t = ProcessTable::new();
        let mut n = 0;
        let f = spawn(&sh("seq 1 1000"), &t, Output::Merged(&mut |_| n += 1));
        assert_eq!(n, 1000);
        assert_eq!(f.stdout.len(), KEPT_LINES);
        assert_eq!(f.stdout.last().map(String::as_str), Some("1000"));
    }

    #[test]
    fn a_captured_flood_of_either_stream_is_kept_up_to_its_budget() {
        let t = ProcessTable::new();
        let flood = "head -c 20000000 /dev/zero | tr '\\0' x | fold -w 1000";
        let f = spawn(
            &sh(&format!("{flood}; {flood} >&2; exit 3")),
            &t,
            Output::Captured,
        );
        assert_eq!(f.exit, Exit::Code(3));
        for lines in [&f.stdout, &f.stderr] {
            let kept: usize = lines.iter().map(String::len).sum();
            assert!(kept < CAPTURE_LIMIT + 100, "{kept}");
            assert!(lines.last().is_some_and(|l| l.ends_with("bytes cut)")));
        }
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
