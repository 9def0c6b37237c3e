//! Issue 17: hostile specs and command lines, and fault injection against the
//! run's own processes (signals, SIGKILL, timeouts, output floods, logins).
//! Each test names the fault it injects and asserts what must not happen.

use crate::support::text;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::runner::{command, exit_within, gone, project, signal, spawn, Run, TWO_ARCHES};
use crate::support::fake_engine::Reply;
use crate::support::{processes_with, wait_until, Project};

fn check(dir: &Path) -> Output {
    let p = Project::new_without_busybox();
    p.command(&["check"]).current_dir(dir).output().unwrap()
}

/// A pull request's spec must not copy host files into a pushed image: a
/// context or Dockerfile that resolves outside the repository is refused by
/// `check` (exit 2) with a span on the value and a help line.
#[test]
fn contexts_and_dockerfiles_outside_the_repository_are_refused() {
    let p = Project::new_without_busybox();
    let outside = p.path().join("outside");
    p.file("outside/Dockerfile", "FROM scratch\n")
        .file("repo/Dockerfile", "FROM scratch\n")
        .file("repo/inside/Dockerfile", "FROM scratch\n");
    std::os::unix::fs::symlink("/etc", p.path().join("repo/etclink")).unwrap();
    std::os::unix::fs::symlink(&outside, p.path().join("repo/sneaky")).unwrap();
    let hostile = [
        ("context = \"../outside\"", "../outside"),
        (&*format!("context = \"{}\"", outside.display()), "outside"),
        ("context = \"etclink\"", "/etc"),
        ("context = \"sneaky\"", "outside"),
        (
            "dockerfile = \"../outside/Dockerfile\"",
            "outside/Dockerfile",
        ),
        ("dockerfile = \"sneaky/Dockerfile\"", "outside/Dockerfile"),
    ];
    for (line, resolved) in hostile {
        // With an arch table that has a problem of its own: said too.
        let spec = format!("[[image]]\nname = \"app\"\n{line}\n[image.per_arch.amd64]\nverify = {{ expect = \" \" }}\n");
        p.file("repo/multiarch.toml", &spec);
        let out = check(&p.path().join("repo"));
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{line}: {t}");
        assert!(t.contains("is outside the repository"), "{line}: {t}");
        assert!(
            t.contains("`expect` is empty"),
            "{line}: the arch's own problem: {t}"
        );
        assert!(t.contains(resolved), "{line}: {t}");
        assert!(
            t.contains("multiarch.toml:3:"),
            "{line}: no span on line 3: {t}"
        );
        assert!(
            t.contains("help: contexts and Dockerfiles must be inside"),
            "{line}: {t}"
        );
    }
    // Inside the spec's directory (no git work tree here): accepted.
    p.file(
        "repo/multiarch.toml",
        "[[image]]\nname = \"app\"\ncontext = \"inside\"\n",
    );
    let out = check(&p.path().join("repo"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// With a git work tree, the repository is the work tree: a spec in a
/// subdirectory may use a context beside it, not one beside the work tree.
#[test]
fn the_repository_is_the_git_work_tree_when_there_is_one() {
    let p = Project::new_without_busybox();
    p.file("wt/.git/HEAD", "ref: refs/heads/main\n")
        .file("wt/shared/Dockerfile", "FROM scratch\n")
        .file("beside/Dockerfile", "FROM scratch\n")
        .file(
            "wt/sub/multiarch.toml",
            "[[image]]\nname = \"app\"\ncontext = \"../shared\"\n",
        );
    let out = check(&p.path().join("wt/sub"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    p.file(
        "wt/sub/multiarch.toml",
        "[[image]]\nname = \"app\"\ncontext = \"../../beside\"\n",
    );
    let out = check(&p.path().join("wt/sub"));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("is outside the repository"));
}

/// `--retries` has the file's cap (20): beyond it is a usage error, exit 2.
#[test]
fn retries_on_the_command_line_are_capped_like_in_the_file() {
    let p = Project::new_without_busybox();
    p.file("Dockerfile", "FROM scratch\n")
        .file("multiarch.toml", "[[image]]\nname = \"app\"\n");
    let args = ["run", "--dry-run", "--sha", crate::support::SHA];
    let out = p.command(&args).args(["--retries", "21"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("21"), "{}", text(&out));
    let out = p.command(&args).args(["--retries", "20"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// `${VAR:-default}` with VAR set but empty gives the default, as a shell does;
/// `${VAR-default}` keeps the empty value.
#[test]
fn an_empty_variable_takes_the_colon_default() {
    let p = Project::new_without_busybox();
    p.file("Dockerfile", "FROM scratch\n").file(
        "multiarch.toml",
        "[project]\nregistry = \"${REG:-127.0.0.1:5000/fallback}\"\n[[image]]\nname = \"app\"\nrepository = \"x${EMPTY-}\"\n",
    );
    let out = p
        .command(&["plan", "--sha", crate::support::SHA, "--format", "json"])
        .env("REG", "")
        .env("EMPTY", "")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("127.0.0.1:5000/fallback/x/amd64:"),
        "{}",
        text(&out)
    );
}

// ---------------------------------------------------------------- logins, signals, SIGKILL

const PW: &str = "hardening-pw-0042";
const USER_CONFIG: &str = r#"{"auths":{"other.lan:5000":{"auth":"b3RoZXI6eA=="}},"credHelpers":{"gcr.io":"gcloud"},"plugins":{"x":{"k":"v"}}}"#;

/// A home with a docker config.json of its own and an empty TMPDIR, for a
/// `--login` run: the test reads both back afterwards.
fn login_env(p: &Project, cmd: &mut std::process::Command) {
    p.file("home/.docker/config.json", USER_CONFIG);
    std::fs::create_dir_all(p.path().join("tmp")).unwrap();
    cmd.env("HOME", p.path().join("home"))
        .env_remove("DOCKER_CONFIG")
        .env("TMPDIR", p.path().join("tmp"))
        .env("MULTIARCH_REGISTRY_USER", "ci-bot")
        .env("MULTIARCH_REGISTRY_PASSWORD", PW);
}

/// Nothing of the run is left: the user's config.json is byte-identical and
/// the private login config (in TMPDIR) is gone.
fn assert_login_left_nothing(p: &Project) {
    let config = std::fs::read_to_string(p.path().join("home/.docker/config.json")).unwrap();
    assert_eq!(config, USER_CONFIG, "the user's config.json changed");
    let left: Vec<_> = std::fs::read_dir(p.path().join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
}

#[test]
fn a_login_goes_to_a_private_config_that_goes_with_the_run() {
    let (p, fake) = project(TWO_ARCHES);
    let mut cmd = command(&p, &fake, &["--login"]);
    login_env(&p, &mut cmd);
    let r = Run::of(&p, cmd.output().unwrap());
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(fake.calls_matching("login *").len(), 1);
    assert_login_left_nothing(&p);
}

#[test]
fn a_failed_step_after_a_login_leaves_nothing_either() {
    let (p, fake) = project(TWO_ARCHES);
    fake.on("push *amd64*", [Reply::exit(1).stderr("denied")]);
    let mut cmd = command(&p, &fake, &["--login"]);
    login_env(&p, &mut cmd);
    let r = Run::of(&p, cmd.output().unwrap());
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert_login_left_nothing(&p);
}

/// SIGTERM or SIGINT before the first step (the engine probe, the login) ends
/// the run as interrupted: exit 130, the events file and the JUnit report say
/// so, no `docker login` (or probe) is left, the private config is gone.
#[test]
fn a_signal_during_preflight_is_an_interruption() {
    for (phase, pattern, sig) in [
        ("login", "login *", libc::SIGTERM),
        ("login", "login *", libc::SIGINT),
        ("the engine checks", "version *", libc::SIGTERM),
    ] {
        let (p, fake) = project(TWO_ARCHES);
        fake.on(pattern, [Reply::hang()]);
        let junit = p.path().join("junit.xml");
        let mut cmd = command(&p, &fake, &["--login", "--junit", junit.to_str().unwrap()]);
        login_env(&p, &mut cmd);
        let mut child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        wait_until(Duration::from_secs(30), || {
            processes_with(fake.marker()).len() >= 2
        })
        .unwrap_or_else(|e| panic!("{phase}: the {pattern} call never hung: {e}"));
        signal(&child, sig);
        assert_eq!(
            exit_within(&mut child, Duration::from_secs(10)),
            Some(130),
            "{phase}, signal {sig}"
        );
        assert!(gone(&fake), "{phase}: {:?}", processes_with(fake.marker()));
        let events = std::fs::read_to_string(p.path().join("events.jsonl")).unwrap();
        let last: serde_json::Value = serde_json::from_str(events.lines().last().unwrap()).unwrap();
        assert_eq!(last["exit_code"], 130, "{phase}: {events}");
        let message = last["message"].as_str().unwrap_or_default();
        assert!(message.contains(&format!("during {phase}")), "{message}");
        let xml = std::fs::read_to_string(&junit).unwrap();
        assert!(xml.contains("interrupted"), "{phase}: {xml}");
        assert!(!events.contains(PW) && !xml.contains(PW));
        assert_login_left_nothing(&p);
        assert!(fake.calls_matching("build *").is_empty(), "{phase}");
    }
}

/// A publish stage whose needs the registry refuses to show (a 401 for the
/// credentials it was given) says so, is an environment error (exit 3) before
/// any step, and points at the credentials: not "missing", which would send
/// the user to rebuild what is there.
#[test]
fn needs_the_registry_refuses_to_show_are_exit_3_and_name_the_credentials() {
    let p = Project::new_without_busybox();
    let fake = crate::support::fake_engine::FakeEngine::new(p.path());
    let (addr, hits) = crate::support::unauthorized_registry();
    p.file(
        "multiarch.toml",
        "[project]\nregistry = \"${REG}/acme\"\n[archs]\ndefault = [\"amd64\", \"arm64v8\"]\n[[image]]\nname = \"app\"\n",
    )
    .file("Dockerfile", "FROM scratch\n")
    .file(
        "docker/config.json",
        &format!(r#"{{"auths":{{"{addr}":{{"auth":"Y2k6d3Jvbmc="}}}}}}"#),
    );
    let out = command(&p, &fake, &["--stage", "publish", "--retries", "5"])
        .env("REG", &addr)
        .env("DOCKER_CONFIG", p.path().join("docker"))
        .output()
        .unwrap();
    let t = crate::support::text(&out);
    assert_eq!(crate::support::code(&out), 3, "{t}");
    assert!(
        t.contains("needs outside this selection cannot be checked in the registry:"),
        "{t}"
    );
    assert!(
        t.contains("push:app/amd64") && t.contains("push:app/arm64v8"),
        "{t}"
    );
    assert!(t.contains("401 Unauthorized"), "the registry's answer: {t}");
    assert!(t.contains("credentials"), "the help: {t}");
    assert!(!t.contains("are missing"), "{t}");
    // One read per need, no retry of a 401.
    assert!(hits.load(std::sync::atomic::Ordering::SeqCst) <= 4, "{t}");
}

/// A credential helper that hangs (docker's config names it as `credsStore`)
/// is a process of the run: SIGINT while it runs ends the run as interrupted
/// (exit 130) within seconds, and the helper and its child are gone.
#[test]
fn sigint_ends_a_hanging_credential_helper() {
    use std::os::unix::fs::PermissionsExt;
    let p = Project::new_without_busybox();
    let fake = crate::support::fake_engine::FakeEngine::new(p.path());
    let (addr, _) = crate::support::unauthorized_registry();
    let helper = p.path().join("bin/docker-credential-hang");
    p.file(
        "multiarch.toml",
        "[project]\nregistry = \"${REG}/acme\"\n[archs]\ndefault = [\"amd64\", \"arm64v8\"]\n[[image]]\nname = \"app\"\n",
    )
    .file("Dockerfile", "FROM scratch\n")
    .file("docker/config.json", r#"{"credsStore":"hang"}"#)
    .file(
        "bin/docker-credential-hang",
        "#!/bin/sh\nd=\"$(dirname \"$0\")/..\"\nsleep 600 &\necho \"$$ $!\" > \"$d/helper.pids.tmp\"\nmv \"$d/helper.pids.tmp\" \"$d/helper.pids\"\nwait\n",
    );
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut child = command(&p, &fake, &["--stage", "publish"])
        .env("REG", &addr)
        .env("DOCKER_CONFIG", p.path().join("docker"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pids = p.path().join("helper.pids");
    wait_until(Duration::from_secs(30), || pids.exists())
        .expect("the run asks the credential helper");
    let pids: Vec<i32> = std::fs::read_to_string(&pids)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let t0 = std::time::Instant::now();
    signal(&child, libc::SIGINT);
    assert_eq!(exit_within(&mut child, Duration::from_secs(10)), Some(130));
    eprintln!("exit 130 {:?} after SIGINT", t0.elapsed());
    for pid in pids {
        wait_until(Duration::from_secs(5), || stat(pid).is_none())
            .unwrap_or_else(|e| panic!("helper process {pid} is still there: {e}"));
    }
    assert!(
        processes_with(helper.to_str().unwrap()).is_empty(),
        "{:?}",
        processes_with(helper.to_str().unwrap())
    );
    let events = std::fs::read_to_string(p.path().join("events.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(events.lines().last().unwrap()).unwrap();
    assert_eq!(last["exit_code"], 130, "{events}");
}

/// The pid, parent pid and process group of a process, from /proc (None once
/// it is gone or a zombie).
fn stat(pid: i32) -> Option<(i32, i32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    if f.first() == Some(&"Z") {
        return None;
    }
    Some((f.get(1)?.parse().ok()?, f.get(2)?.parse().ok()?))
}

/// SIGKILL of multiarch (no handler can see it): its children die with it
/// (the parent-death signal), within a second or two.
#[test]
fn children_die_with_a_killed_multiarch() {
    let (p, fake) = project(TWO_ARCHES);
    fake.on("build *", [Reply::hang()]);
    let mut child = spawn(&p, &fake, &[]);
    let me = child.id() as i32;
    let mut direct: Vec<(i32, i32)> = Vec::new();
    wait_until(Duration::from_secs(30), || {
        direct = processes_with(fake.marker())
            .iter()
            .filter_map(|l| l.split(':').next()?.parse::<i32>().ok())
            .filter_map(|pid| {
                stat(pid)
                    .filter(|(ppid, _)| *ppid == me)
                    .map(|(_, g)| (pid, g))
            })
            .collect();
        direct.len() >= 2
    })
    .expect("both builds hang as children of multiarch");
    signal(&child, libc::SIGKILL);
    let _ = child.wait();
    let died = wait_until(Duration::from_secs(5), || {
        direct.iter().all(|(pid, _)| stat(*pid).is_none())
    });
    // The grandchildren (in each child's process group) are the test's to end.
    for (_, group) in &direct {
        // SAFETY: signalling the process groups of the fake this test started.
        unsafe {
            libc::killpg(*group, libc::SIGKILL);
        }
    }
    died.unwrap_or_else(|e| panic!("children outlived a SIGKILLed multiarch: {e}"));
}

// ---------------------------------------------------------------- secrets

/// A build arg or a label that holds the registry password (or any
/// secret-looking variable's value) would show in `ps` and the image's history
/// or config: refused like a secret-looking name, unless `allow_secret_args`
/// names it.
#[test]
fn a_build_arg_or_label_holding_a_secret_value_is_refused() {
    for table in ["args", "labels"] {
        a_value_holding_a_secret_is_refused_in(table);
    }
}

fn a_value_holding_a_secret_is_refused_in(table: &str) {
    let p = Project::new_without_busybox();
    p.file("Dockerfile", "FROM scratch\n");
    let check_with = |args: &str, allow: &str| {
        p.file(
            "multiarch.toml",
            &format!("[project]\n{allow}\n[[image]]\nname = \"app\"\n{table} = {{ {args} }}\n"),
        );
        let out = p
            .command(&["check"])
            .env("MULTIARCH_REGISTRY_PASSWORD", PW)
            .env("DEPLOY_TOKEN", "tok-123456")
            .output()
            .unwrap();
        (out.status.code(), text(&out))
    };
    for args in [
        "X = \"${MULTIARCH_REGISTRY_PASSWORD}\"",
        "X = \"pre-${MULTIARCH_REGISTRY_PASSWORD}\"",
        &format!("X = \"{PW}\""),
        "X = \"${DEPLOY_TOKEN:-none}\"",
        "X = \"tok-123456\"",
    ] {
        let (code, t) = check_with(args, "");
        assert_eq!(code, Some(2), "{table} {args}: {t}");
        assert!(t.contains("holds the value of"), "{table} {args}: {t}");
        assert!(t.contains("multiarch.toml:5:"), "{args}: {t}");
        if args.contains("${") {
            assert!(!t.contains(PW), "the diagnostic shows the secret: {t}");
        }
        let (code, t) = check_with(args, "allow_secret_args = [\"X\"]");
        assert_eq!(code, Some(0), "{args} allowed: {t}");
    }
    let (code, t) = check_with("X = \"${HOME}\"", "");
    assert_eq!(code, Some(0), "{t}");
    // A secret-looking variable that is unset gives its default: no secret.
    let (code, t) = check_with("X = \"${UNSET_NPM_TOKEN:-none}\"", "");
    assert_eq!(code, Some(0), "{t}");
}

/// A multi-line secret (a JSON key for `_json_key`) is masked line by line:
/// printed whole, or one line at a time by a step, no line of it reaches the
/// output, the events or the JUnit report.
#[test]
fn every_line_of_a_multi_line_secret_is_masked() {
    let key = "{\n  \"type\": \"service_account\",\n  \"private_key_id\": \"0123456789abcdef\",\n  \"private_key\": \"-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBg\\n-----END PRIVATE KEY-----\\n\"\n}";
    let (p, fake) = project(TWO_ARCHES);
    let mut failing = Reply::exit(1);
    for l in key.lines() {
        failing = failing.stdout(&format!("echo: {l}"));
    }
    fake.on("build *ARCH=amd64*", [failing]);
    let junit = p.path().join("junit.xml");
    let mut cmd = command(&p, &fake, &["--login", "--junit", junit.to_str().unwrap()]);
    login_env(&p, &mut cmd);
    cmd.env("MULTIARCH_REGISTRY_USER", "_json_key")
        .env("MULTIARCH_REGISTRY_PASSWORD", key);
    let r = Run::of(&p, cmd.output().unwrap());
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    let events = std::fs::read_to_string(p.path().join("events.jsonl")).unwrap();
    let xml = std::fs::read_to_string(&junit).unwrap();
    let mut found = 0;
    for (what, t) in [
        ("stdout", &r.stdout),
        ("stderr", &r.stderr),
        ("events", &events),
        ("junit", &xml),
    ] {
        for l in key.lines().map(str::trim).filter(|l| l.len() >= 4) {
            // JSON and XML escape quotes: look for the line's longest bare word too.
            let word = l
                .split(['"', ' ', '\\'])
                .max_by_key(|w| w.len())
                .unwrap_or(l);
            if t.contains(l) || t.contains(word) {
                found += 1;
                eprintln!("{what} holds `{l}`");
            }
        }
    }
    assert_eq!(found, 0, "secret lines found in the output");
    assert!(r.stdout.contains("echo:   ••••••"), "{}", r.stdout);
    assert_eq!(
        fake.calls_matching("login *")[0].stdin.as_deref(),
        Some(key)
    );
}

// ---------------------------------------------------------------- memory

/// The peak RSS (VmHWM, KiB) of a running process, read until it ends.
fn peak_rss_kib(child: &mut std::process::Child) -> u64 {
    let path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(s) = std::fs::read_to_string(&path) {
            if let Some(v) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            {
                peak = v;
            }
        }
        if child.try_wait().ok().flatten().is_some() {
            return peak;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A step that prints 20 MB in 100-byte lines, or 50 MB as one line: the run's
/// memory stays bounded, the output is streamed, and the kept tail of a long
/// line says how much was cut.
#[test]
fn a_step_printing_megabytes_keeps_the_memory_bounded() {
    let floods = [
        (
            "many lines",
            "head -c 20000000 /dev/zero | tr '\\0' x | fold -w 99",
        ),
        ("one line", "head -c 50000000 /dev/zero | tr '\\0' x; echo"),
    ];
    for (what, flood) in floods {
        let (p, fake) = project(TWO_ARCHES);
        fake.on("build *ARCH=amd64*", [Reply::exit(1).sh(flood)]);
        let mut child = command(&p, &fake, &["--stage", "build"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let peak = peak_rss_kib(&mut child);
        let events = std::fs::read_to_string(p.path().join("events.jsonl")).unwrap();
        eprintln!(
            "{what}: peak RSS {} MB, events file {} MB",
            peak / 1024,
            events.len() >> 20
        );
        assert!(peak > 0, "{what}: no RSS read");
        assert!(peak < 64 * 1024, "{what}: peak RSS {} MB", peak / 1024);
        let failed = events
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|e| e["event"] == "step-finished" && e["id"] == "build:app/amd64")
            .unwrap();
        let tail = failed["tail"].as_array().unwrap();
        assert!(
            !tail.is_empty() && tail.len() <= 15,
            "{what}: {}",
            tail.len()
        );
        let longest = tail
            .iter()
            .map(|l| l.as_str().unwrap().len())
            .max()
            .unwrap();
        assert!(longest <= 4200, "{what}: a tail line of {longest} bytes");
        if what == "one line" {
            let last = tail
                .iter()
                .rev()
                .find(|l| l.as_str().unwrap().contains("bytes cut"))
                .unwrap();
            assert!(
                last.as_str().unwrap().contains("(49995904 bytes cut)"),
                "{last}"
            );
        }
    }
}

// ---------------------------------------------------------------- report files, ports

/// Every report file that cannot take its report is an error, never a silent
/// exit 0 or a panic: `--junit`/`--events` to /dev/full or /proc/version, and
/// `run --dry-run` to a full standard output.
#[test]
fn report_files_that_cannot_be_written_are_errors() {
    for (flag, path) in [
        ("--junit", "/dev/full"),
        ("--junit", "/proc/version"),
        ("--events", "/dev/full"),
        ("--events", "/proc/version"),
    ] {
        let (p, fake) = project(TWO_ARCHES);
        let mut c = p.command(&["run", "--branch", "main", "--sha", crate::support::SHA]);
        c.args([flag, path]).env("PATH", fake.path());
        let out = c.output().unwrap();
        let t = text(&out);
        let code = out.status.code();
        assert!(matches!(code, Some(1..=3)), "{flag} {path}: {code:?} {t}");
        assert!(
            t.contains(path),
            "{flag} {path}: the error names the file: {t}"
        );
        assert!(!t.contains("panicked"), "{t}");
    }
    let (p, _fake) = project(TWO_ARCHES);
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = p
        .command(&["run", "--dry-run", "--sha", crate::support::SHA])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("No space left"), "{}", text(&out));
}

/// A port outside 1–65535 is refused wherever one is accepted: the registry,
/// `insecure_registries`, a builder endpoint.
#[test]
fn ports_outside_the_range_are_refused_everywhere() {
    let p = Project::new_without_busybox();
    p.file("Dockerfile", "FROM scratch\n");
    for (line, port) in [
        ("[project]\nregistry = \"127.0.0.1:70000/acme\"", "70000"),
        ("[project]\nregistry = \"localhost:0\"", "0"),
        (
            "[project]\ninsecure_registries = [\"reg.lan:99999\"]",
            "99999",
        ),
        ("[arch.amd64]\nbuilder = \"tcp://127.0.0.1:65536\"", "65536"),
        ("[arch.amd64]\nbuilder = \"ssh://pi@pi-1:0\"", "0"),
    ] {
        p.file(
            "multiarch.toml",
            &format!("{line}\n[[image]]\nname = \"app\"\n"),
        );
        let out = p.command(&["check"]).output().unwrap();
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{line}: {t}");
        assert!(
            t.contains(&format!("port `{port}`")) && t.contains("1–65535"),
            "{line}: {t}"
        );
    }
}

// ---------------------------------------------------------------- time limits

fn timeouts(p: &Project) -> Vec<(String, Option<u64>)> {
    let out = p
        .command(&[
            "plan",
            "--branch",
            "main",
            "--sha",
            crate::support::SHA,
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["kind"].as_str().unwrap().to_string(),
                s["timeout_secs"].as_u64(),
            )
        })
        .collect()
}

/// Steps that wait on a registry or a container get 30 minutes unless
/// configured; builds stay unbounded; `timeout` overrides (as `--step-timeout`
/// does on `run`).
#[test]
fn registry_and_container_steps_have_a_default_time_limit() {
    let p = Project::new_without_busybox();
    p.file("Dockerfile", "FROM scratch\n").file(
        "multiarch.toml",
        "[project]\nregistry = \"127.0.0.1:5999/acme\"\n[[image]]\nname = \"app\"\n",
    );
    for (kind, t) in timeouts(&p) {
        match kind.as_str() {
            "build" | "setup-qemu" => assert_eq!(t, None, "{kind}"),
            _ => assert_eq!(t, Some(1800), "{kind}"),
        }
    }
    p.file(
        "multiarch.toml",
        "[project]\nregistry = \"127.0.0.1:5999/acme\"\ntimeout = \"2h\"\n[[image]]\nname = \"app\"\n",
    );
    for (kind, t) in timeouts(&p) {
        if kind != "setup-qemu" {
            assert_eq!(t, Some(7200), "{kind}");
        }
    }
}

// ---------------------------------------------------------------- containers

/// A test step whose `docker run` times out: only the CLI was ended, so the
/// step's container (found by the run's and the step's labels) is removed;
/// a run that ends normally asks nothing more.
#[test]
fn a_timed_out_container_step_removes_its_container() {
    let (p, fake) = project(TWO_ARCHES);
    fake.on("run *linux/amd64*", [Reply::hang()]);
    fake.on("ps --all --quiet *", [Reply::ok().stdout("c0ffee1")]);
    fake.on("rm --force *", [Reply::ok()]);
    let r = Run::of(
        &p,
        command(&p, &fake, &["--step-timeout", "2s", "--stage", "build"])
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert_eq!(r.status("test:app/amd64"), "timed-out");
    let run = fake
        .calls_matching("run *linux/amd64*")
        .iter()
        .flat_map(|c| c.args.clone())
        .find_map(|a| a.strip_prefix("multiarch.run=").map(str::to_string))
        .expect("the container is labelled with the run");
    let ps: Vec<String> = fake
        .calls_matching("ps *")
        .iter()
        .map(|c| c.line())
        .collect();
    assert!(
        ps.contains(&format!(
            "ps --all --quiet --filter label=multiarch.run={run} --filter label=multiarch.step=test:app/amd64"
        )),
        "{ps:#?}"
    );
    assert!(!fake.calls_matching("rm --force c0ffee1").is_empty());
    assert!(gone(&fake), "{:?}", processes_with(fake.marker()));

    let (p, fake) = project(TWO_ARCHES);
    let r = run_ok(&p, &fake);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        fake.calls_matching("ps *").is_empty(),
        "a clean run sweeps nothing"
    );
}

fn run_ok(p: &Project, fake: &crate::support::fake_engine::FakeEngine) -> Run {
    Run::of(p, command(p, fake, &[]).output().unwrap())
}

// ---------------------------------------------------------------- with the engine

mod engine {
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    use super::{assert_login_left_nothing, stat, text, PW};
    use crate::support::{engine_lock, processes_with, wait_until, Project, Registry, SHA};

    const NEEDS_ENGINE: &str =
        "needs dockerd, docker-registry and qemu binfmt; run by `cargo xtask ci`";

    /// The busybox base for amd64 only, pushed to `${REG}/acme`; its check
    /// (test and verify) is `CHECK`.
    fn spec(check: &str) -> String {
        format!(
            "[project]\nregistry = \"${{REG}}/acme\"\n[archs]\ndefault = [\"amd64\"]\n[[image]]\nname = \"busybox\"\ncontext = \"busybox\"\nverify = {{ command = {check} }}\n"
        )
    }

    /// The engine (held), a registry and the busybox project checked by `check`.
    fn busybox_project(check: &str) -> (std::sync::MutexGuard<'static, ()>, Registry, Project) {
        let g = engine_lock();
        let p = Project::new();
        p.file("multiarch.toml", &spec(check));
        (g, Registry::start(), p)
    }

    /// `run --stage build` in the background, its output dropped.
    fn spawn_build_stage(p: &Project, reg: &Registry) -> std::process::Child {
        p.command(&["run", "--stage", "build", "--sha", SHA])
            .env("REG", &reg.addr)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// The containers of any multiarch run whose image is in `registry`.
    fn containers_of(registry: &str) -> Vec<String> {
        let out = std::process::Command::new("docker")
            .args([
                "ps",
                "--all",
                "--filter",
                "label=multiarch.run",
                "--format",
                "{{.ID}} {{.Image}} {{.Labels}}",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "docker ps: {}", text(&out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(registry))
            .map(str::to_string)
            .collect()
    }

    /// `run --login` with the real docker CLI against a real registry: the
    /// pushes work through the private config, and the user's config.json is
    /// byte-identical afterwards, with nothing left in TMPDIR.
    #[test]
    #[ignore = "needs dockerd, docker-registry and qemu binfmt; run by `cargo xtask ci`"]
    fn a_real_login_leaves_the_users_docker_config_alone() {
        let (_g, reg, p) = busybox_project("[\"uname\", \"-m\"]");
        let mut cmd = p.command(&["run", "--login", "--branch", "main", "--sha", SHA]);
        super::login_env(&p, &mut cmd);
        let out = cmd.env("REG", &reg.addr).output().unwrap();
        eprintln!("{}", text(&out));
        assert_eq!(out.status.code(), Some(0), "{NEEDS_ENGINE}: {}", text(&out));
        assert!(text(&out).contains(&format!("logged in to {}", reg.addr)));
        assert_login_left_nothing(&p);
        assert!(!text(&out).contains(PW));
    }

    /// A test step whose container never ends: on the step's timeout, and on
    /// Ctrl-C, the container is removed, not only the docker CLI.
    #[test]
    #[ignore = "needs dockerd, docker-registry and qemu binfmt; run by `cargo xtask ci`"]
    fn a_timed_out_or_cancelled_container_is_removed() {
        let (_g, reg, p) = busybox_project("[\"sleep\", \"600\"]");
        let out = p.run(
            &reg,
            &[
                "run",
                "--stage",
                "build",
                "--sha",
                SHA,
                "--step-timeout",
                "20s",
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{NEEDS_ENGINE}: {}", text(&out));
        assert!(text(&out).contains("timed out"), "{}", text(&out));
        let left = containers_of(&reg.addr);
        assert!(left.is_empty(), "a timed-out test left {left:?}");

        // Ctrl-C while the container sleeps.
        let mut child = spawn_build_stage(&p, &reg);
        wait_until(Duration::from_secs(60), || {
            !containers_of(&reg.addr).is_empty()
        })
        .expect("the test container starts");
        // SAFETY: signalling the multiarch this test started.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGINT);
        }
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(130));
        let left = containers_of(&reg.addr);
        assert!(left.is_empty(), "a cancelled test left {left:?}");
    }

    /// A "registry" that accepts connections and never answers: the push step
    /// ends by its time limit, the run ends, and nothing of it is left running.
    #[test]
    #[ignore = "needs dockerd, docker-registry and qemu binfmt; run by `cargo xtask ci`"]
    fn a_registry_that_never_answers_does_not_hang_the_run() {
        let _g = engine_lock();
        let addr = crate::faults::black_hole();
        let p = Project::new();
        p.file("multiarch.toml", &spec("[\"uname\", \"-m\"]"));
        let t0 = Instant::now();
        let out = p
            .command(&[
                "run",
                "--stage",
                "build",
                "--stage",
                "push",
                "--sha",
                SHA,
                "--step-timeout",
                "25s",
                "--retries",
                "0",
            ])
            .env("REG", &addr)
            .output()
            .unwrap();
        eprintln!("{}", text(&out));
        assert_eq!(out.status.code(), Some(1), "{NEEDS_ENGINE}: {}", text(&out));
        assert!(t0.elapsed() < Duration::from_secs(90), "{:?}", t0.elapsed());
        assert!(
            processes_with(&addr).is_empty(),
            "{:?}",
            processes_with(&addr)
        );
    }

    /// SIGKILL of multiarch during a real `docker build`: the docker CLI dies
    /// with it.
    #[test]
    #[ignore = "needs dockerd, docker-registry and qemu binfmt; run by `cargo xtask ci`"]
    fn a_killed_multiarch_takes_its_docker_build_with_it() {
        let _g = engine_lock();
        let reg = Registry::start();
        let p = Project::new();
        p.file("multiarch.toml", "[project]\nregistry = \"${REG}/acme\"\n[archs]\ndefault = [\"amd64\"]\n[[image]]\nname = \"slow\"\ncontext = \"slow\"\n")
            .file("slow/Dockerfile", "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sleep\", \"30\"]\n");
        std::fs::copy(
            crate::support::busybox_dir().join("amd64/busybox"),
            p.path().join("slow/busybox"),
        )
        .unwrap();
        let mut child = spawn_build_stage(&p, &reg);
        let me = child.id() as i32;
        let mut builds: Vec<i32> = Vec::new();
        wait_until(Duration::from_secs(60), || {
            builds = processes_with(&format!("{}/acme/slow", reg.addr))
                .iter()
                .filter_map(|l| l.split(':').next()?.parse::<i32>().ok())
                .filter(|pid| stat(*pid).is_some_and(|(ppid, _)| ppid == me))
                .collect();
            !builds.is_empty()
        })
        .expect("docker build runs as a child of multiarch");
        // SAFETY: signalling the multiarch this test started.
        unsafe {
            libc::kill(me, libc::SIGKILL);
        }
        let _ = child.wait();
        let died = wait_until(Duration::from_secs(10), || {
            builds.iter().all(|pid| stat(*pid).is_none())
        });
        assert!(died.is_ok(), "docker build outlived multiarch: {builds:?}");
    }
}
