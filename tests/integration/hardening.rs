//! Issue 17: hostile specs and command lines, and fault injection against the
//! run's own processes (signals, SIGKILL, timeouts, output floods, logins).
//! Each test names the fault it injects and asserts what must not happen.

use std::path::Path;
use std::process::Output;

use crate::support::Project;

fn check(dir: &Path) -> Output {
    let p = Project::new_without_busybox();
    p.command(&["check"]).current_dir(dir).output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
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
        let spec = format!("[[image]]\nname = \"app\"\n{line}\n");
        p.file("repo/multiarch.toml", &spec);
        let out = check(&p.path().join("repo"));
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{line}: {t}");
        assert!(t.contains("is outside the repository"), "{line}: {t}");
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
