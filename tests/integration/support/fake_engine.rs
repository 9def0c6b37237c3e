//! A fake container engine: `docker` and `podman` executables written into a
//! directory that a test puts first on the PATH of the multiarch it runs (as
//! just's tests `write_executable`). No daemon, no registry, no qemu.
//!
//! Each call is logged (argv, and stdin for `login`) as one file, so parallel
//! steps never race. What a call does is decided in order by:
//! 1. the test's rules ([`FakeEngine::on`]): a shell glob (`*` and `?` only)
//!    matched against the arguments after the daemon flags (`--host H`,
//!    `--context C`, `--url U`, `--connection C`), e.g. `"push *amd64*"`, and a
//!    list of [`Reply`]s: the n-th matching call gets the n-th reply, the last
//!    one repeats;
//! 2. else the defaults of a working engine: `version` answers, `build`
//!    records the platform of its `-t` tag and `image inspect` answers it,
//!    `run --platform P` prints the uname of P, `push REF` writes a config of
//!    the built platform and a manifest into the directory the fake registry
//!    serves ([`super::fake_registry`]) and prints (docker) or writes to
//!    `--digestfile` (podman) the manifest's digest;
//! 3. anything else fails with exit 64 and says so on stderr.

use std::cell::RefCell;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// One call of the fake engine.
#[derive(Debug, Clone)]
pub struct Call {
    /// `docker` or `podman`.
    pub program: String,
    /// The daemon flags, e.g. `["--host", "ssh://fake-amd64"]`.
    pub base: Vec<String>,
    pub args: Vec<String>,
    /// What it read on stdin (`login --password-stdin` only).
    pub stdin: Option<String>,
}

impl Call {
    /// The arguments as rules see them: joined by spaces, daemon flags left out.
    pub fn line(&self) -> String {
        self.args.join(" ")
    }

    pub fn matches(&self, pattern: &str) -> bool {
        glob(pattern, &self.line())
    }
}

/// What a call that matched a rule does, in this order: wait until a
/// [`Reply::hang`] of another call has started, print its lines, write its
/// digest file, then hang or exit with its code ([`Reply::pass`]: go on as the
/// defaults do).
#[derive(Debug, Clone, Default)]
pub struct Reply {
    stdout: Vec<String>,
    stderr: Vec<String>,
    code: i32,
    pass: bool,
    digest_file: Option<String>,
    copy: Option<(PathBuf, PathBuf)>,
    after_hang: bool,
    hang: Option<Hang>,
    sh: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hang {
    /// Until signalled: SIGTERM ends it.
    Plain,
    /// SIGTERM is noted ([`FakeEngine::got_term`]) and ignored: only SIGKILL ends it.
    IgnoringTerm,
}

impl Reply {
    /// Exit 0.
    pub fn ok() -> Reply {
        Reply::default()
    }

    pub fn exit(code: i32) -> Reply {
        Reply {
            code,
            ..Reply::default()
        }
    }

    /// Behave as the defaults do (after this reply's lines and files).
    pub fn pass() -> Reply {
        Reply {
            pass: true,
            ..Reply::default()
        }
    }

    pub fn stdout(mut self, line: &str) -> Reply {
        self.stdout.push(line.to_string());
        self
    }

    pub fn stderr(mut self, line: &str) -> Reply {
        self.stderr.push(line.to_string());
        self
    }

    /// Run a shell line (after the printed lines): an output flood, say.
    pub fn sh(mut self, line: &str) -> Reply {
        self.sh.push(line.to_string());
        self
    }

    /// Write `digest` to the path after `--digestfile` (podman's push).
    pub fn digest_file(mut self, digest: &str) -> Reply {
        self.digest_file = Some(digest.to_string());
        self
    }

    /// Copy the file `from` to `to` when called (what a file held at that moment).
    pub fn copy(mut self, from: &Path, to: &Path) -> Reply {
        self.copy = Some((from.to_path_buf(), to.to_path_buf()));
        self
    }

    /// First wait until some call is hanging ([`Reply::hang`]).
    pub fn after_hang(mut self) -> Reply {
        self.after_hang = true;
        self
    }

    /// Never end by itself: the call and a grandchild of it wait, with
    /// [`FakeEngine::marker`] in their command lines, until a signal ends them.
    pub fn hang() -> Reply {
        Reply {
            hang: Some(Hang::Plain),
            ..Reply::default()
        }
    }

    /// As [`Reply::hang`], but SIGTERM is only noted: SIGKILL is needed.
    pub fn hang_ignoring_term() -> Reply {
        Reply {
            hang: Some(Hang::IgnoringTerm),
            ..Reply::default()
        }
    }

    fn script(&self, name: &str) -> String {
        let mut s = format!("{name}() {{\n");
        if self.after_hang {
            s.push_str("  while [ ! -e \"$STATE/hanging\" ]; do sleep 0.02; done\n");
        }
        for l in &self.stdout {
            s.push_str(&format!("  printf '%s\\n' {}\n", sh_quote(l)));
        }
        for l in &self.stderr {
            s.push_str(&format!("  printf '%s\\n' {} >&2\n", sh_quote(l)));
        }
        for l in &self.sh {
            s.push_str(&format!("  {l}\n"));
        }
        if let Some(d) = &self.digest_file {
            s.push_str(&format!(
                "  printf '%s' {} > \"$(flag --digestfile \"$@\")\"\n",
                sh_quote(d)
            ));
        }
        if let Some((from, to)) = &self.copy {
            s.push_str(&format!(
                "  cp {} {}\n",
                sh_quote(&from.display().to_string()),
                sh_quote(&to.display().to_string())
            ));
        }
        match self.hang {
            Some(Hang::Plain) => s.push_str(
                "  : > \"$STATE/hanging\"\n  sh -c 'sleep 300; :' \"$MARK\" &\n  exec sh -c 'sleep 300; :' \"$MARK\"\n",
            ),
            Some(Hang::IgnoringTerm) => s.push_str(
                "  : > \"$STATE/hanging\"\n  exec sh -c 'trap \": > \\\"$1\\\"\" TERM; while :; do sleep 1; done' \"$MARK\" \"$STATE/got-term\"\n",
            ),
            None if self.pass => s.push_str("  return 0\n"),
            None => s.push_str(&format!("  exit {}\n", self.code)),
        }
        s.push_str("}\n");
        s
    }
}

/// Single-quoted for sh.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A glob with `*` and `?` as a `case` pattern: the rest quoted.
fn case_pattern(glob: &str) -> String {
    let mut out = String::new();
    let mut lit = String::new();
    for c in glob.chars() {
        if c == '*' || c == '?' {
            if !lit.is_empty() {
                out.push_str(&sh_quote(&lit));
                lit.clear();
            }
            out.push(c);
        } else {
            lit.push(c);
        }
    }
    if !lit.is_empty() || out.is_empty() {
        out.push_str(&sh_quote(&lit));
    }
    out
}

/// `*` (any run) and `?` (one character), as `case` matches them.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

static MARKS: AtomicUsize = AtomicUsize::new(0);

/// `bin/docker` and `bin/podman` under a directory, with their state beside.
pub struct FakeEngine {
    bin: PathBuf,
    state: PathBuf,
    marker: String,
    rules: RefCell<Vec<(String, Vec<Reply>)>>,
    /// The fake registry, if started; its host is shown as [`SHOWN_REGISTRY`].
    registry: RefCell<Option<super::fake_registry::FakeRegistry>>,
}

/// How calls and runs show the fake registry's host, whatever its port.
pub const SHOWN_REGISTRY: &str = "127.0.0.1:5999";

impl FakeEngine {
    /// Serve what the fake's pushes write over the distribution API
    /// ([`super::fake_registry`]), on a free port.
    pub fn start_registry(&self) -> String {
        let r = super::fake_registry::FakeRegistry::start(&self.state.join("oci"));
        let host = r.host.clone();
        *self.registry.borrow_mut() = Some(r);
        host
    }

    /// The fake registry ([`FakeEngine::start_registry`] first).
    pub fn registry(&self) -> std::cell::Ref<'_, super::fake_registry::FakeRegistry> {
        std::cell::Ref::map(self.registry.borrow(), |r| {
            r.as_ref().expect("start_registry first")
        })
    }

    /// The fake registry's requests, its host shown as the tests write it.
    pub fn requests(&self) -> Vec<String> {
        self.registry().requests()
    }

    /// The digest of what the fake's push of `reference` wrote.
    pub fn pushed_digest(&self, reference: &str) -> String {
        let real = self.real(reference);
        let r = real.split_once('/').map_or(real.as_str(), |(_, r)| r);
        let (repo, tag) = r.rsplit_once(':').unwrap();
        let f = self
            .state
            .join("oci/m")
            .join(super::fake_registry::key(repo))
            .join(super::fake_registry::key(tag));
        multiarch::registry::client::sha256(
            &std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display())),
        )
    }

    /// `text` with the registry's host as the tests write it.
    pub fn shown(&self, text: &str) -> String {
        match &*self.registry.borrow() {
            Some(r) => text.replace(r.host.as_str(), SHOWN_REGISTRY),
            None => text.to_string(),
        }
    }

    /// `text` with the registry's real host.
    pub fn real(&self, text: &str) -> String {
        match &*self.registry.borrow() {
            Some(r) => text.replace(SHOWN_REGISTRY, &r.host),
            None => text.to_string(),
        }
    }

    /// The fake in `dir/bin`, its state in `dir/fake-engine`.
    pub fn new(dir: &Path) -> FakeEngine {
        let bin = dir.join("bin");
        let state = dir.join("fake-engine");
        for d in [
            bin.clone(),
            state.join("calls"),
            state.join("images"),
            state.join("oci/m"),
            state.join("oci/b"),
        ] {
            std::fs::create_dir_all(d).unwrap();
        }
        let marker = format!(
            "fake-engine-mark-{}-{}",
            std::process::id(),
            MARKS.fetch_add(1, Ordering::SeqCst)
        );
        let f = FakeEngine {
            bin,
            state,
            marker,
            rules: RefCell::new(Vec::new()),
            registry: RefCell::new(None),
        };
        f.write();
        f
    }

    /// Calls whose arguments match `pattern` get `replies`, in order; the last
    /// repeats. Rules are tried in the order they were added.
    pub fn on(&self, pattern: &str, replies: impl IntoIterator<Item = Reply>) -> &Self {
        let replies: Vec<Reply> = replies.into_iter().collect();
        let pattern = &self.real(pattern);
        assert!(!replies.is_empty(), "a rule needs a reply");
        self.rules.borrow_mut().push((pattern.to_string(), replies));
        self.write();
        self
    }

    /// A PATH with the fake first (and the system's tools after it).
    pub fn path(&self) -> String {
        format!("{}:/usr/bin:/bin", self.bin.display())
    }

    /// What the command lines of [`Reply::hang`]ing processes contain.
    pub fn marker(&self) -> &str {
        &self.marker
    }

    /// A file the fake wrote into its state (`buildkit`, `secret-seen`, …).
    pub fn state(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.state.join(name)).ok()
    }

    /// Whether a [`Reply::hang`] has started.
    pub fn hanging(&self) -> bool {
        self.state.join("hanging").exists()
    }

    /// Whether a [`Reply::hang_ignoring_term`] got SIGTERM.
    pub fn got_term(&self) -> bool {
        self.state.join("got-term").exists()
    }

    /// Every call so far, in the order they started.
    pub fn calls(&self) -> Vec<Call> {
        let dir = self.state.join("calls");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".argv"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|n| {
                let raw = std::fs::read(dir.join(n)).unwrap();
                let mut words: Vec<String> = raw
                    .split(|&b| b == 0)
                    .map(|w| self.shown(&String::from_utf8_lossy(w)))
                    .collect();
                words.pop(); // after the last NUL
                let program = words.remove(0);
                let base = match words.first().map(String::as_str) {
                    Some("--host" | "--context" | "--url" | "--connection") if words.len() > 1 => {
                        words.drain(..2).collect()
                    }
                    _ => Vec::new(),
                };
                let stdin = std::fs::read_to_string(dir.join(n.replace(".argv", ".stdin"))).ok();
                Call {
                    program,
                    base,
                    args: words,
                    stdin,
                }
            })
            .collect()
    }

    /// The calls whose arguments match `pattern` (as [`FakeEngine::on`] matches).
    pub fn calls_matching(&self, pattern: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.matches(pattern))
            .collect()
    }

    fn write(&self) {
        let mut rules = String::new();
        let mut replies = String::new();
        for (i, (pattern, rs)) in self.rules.borrow().iter().enumerate() {
            rules.push_str(&format!(
                "  {})\n    n=$(count {i})\n    case $n in\n",
                case_pattern(pattern)
            ));
            for (k, r) in rs.iter().enumerate() {
                let name = format!("reply_{i}_{k}");
                replies.push_str(&r.script(&name));
                let when = if k + 1 == rs.len() {
                    "*".to_string()
                } else {
                    k.to_string()
                };
                rules.push_str(&format!("      {when}) {name} \"$@\" ;;\n"));
            }
            rules.push_str("    esac ;;\n");
        }
        let script = SCRIPT
            .replace("@STATE@", &sh_quote(&self.state.display().to_string()))
            .replace("@MARK@", &sh_quote(&self.marker))
            .replace("@REPLIES@\n", &replies)
            .replace("@RULES@\n", &rules);
        for name in ["docker", "podman"] {
            let path = self.bin.join(name);
            let tmp = self.bin.join(format!(".{name}.new"));
            std::fs::write(&tmp, &script).unwrap();
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        }
    }
}

const SCRIPT: &str = r#"#!/bin/sh
# A fake container engine for multiarch's tests (tests/integration/support/fake_engine.rs).
STATE=@STATE@
MARK=@MARK@
flavour=${0##*/}

# The value after flag $1 in the rest of the arguments.
flag() { want=$1; shift; while [ $# -gt 0 ]; do [ "$1" = "$want" ] && { printf '%s' "$2"; return; }; shift; done; }
last() { for a; do :; done; printf '%s' "$a"; }
key() { printf '%s' "$1" | tr '/:@' '___'; }
sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
# How many earlier calls matched rule $1 (and count this one).
count() {
  exec 9>>"$STATE/lock"
  flock 9
  n=$(cat "$STATE/count-$1" 2>/dev/null || echo 0)
  echo $((n + 1)) > "$STATE/count-$1"
  flock -u 9
  echo "$n"
}
# Write $1 into file $2 whole, as a registry stores a blob: two runs at once
# push the same image (the same digest), and the registry must never serve
# a file half rewritten.
put() { printf '%s' "$1" > "$2.$$" && mv "$2.$$" "$2"; }
# Write image $1 into the fake registry's directory (support::fake_registry): a
# config of its built platform and a manifest; print the manifest's digest.
oci_push() {
  p=$(cat "$STATE/images/$(key "$1")" 2>/dev/null || echo linux/amd64)
  os=${p%%/*}; rest=${p#*/}; arch=${rest%%/*}; var=
  case "$rest" in */*) var=",\"variant\":\"${rest#*/}\"" ;; esac
  cfg="{\"architecture\":\"$arch\",\"os\":\"$os\"$var}"
  cd="sha256:$(sha "$cfg")"
  put "$cfg" "$STATE/oci/b/$(key "$cd")"
  m="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\",\"config\":{\"mediaType\":\"application/vnd.docker.container.image.v1+json\",\"digest\":\"$cd\",\"size\":${#cfg}},\"layers\":[]}"
  md="sha256:$(sha "$m")"
  r=${1#*/}; repo=${r%:*}
  mkdir -p "$STATE/oci/m/$(key "$repo")"
  put "$m" "$STATE/oci/m/$(key "$repo")/$(key "$md")"
  put "$m" "$STATE/oci/m/$(key "$repo")/$(key "${r##*:}")"
  printf '%s' "$md"
}
uname_of() {
  case "$1" in
    linux/amd64*) echo x86_64 ;;
    linux/arm64*) echo aarch64 ;;
    linux/arm/v7) echo armv7l ;;
    linux/arm/v6) echo armv6l ;;
    linux/arm/v5) echo armv5l ;;
    linux/386) echo i686 ;;
    linux/*) echo "${1#linux/}" ;;
    *) echo unknown ;;
  esac
}

call="$STATE/calls/$(date +%s%N)-$$"
case "$1" in
  --host|--context|--url|--connection) base="$1 $2" ;;
  *) base= ;;
esac
[ -n "$base" ] && shift 2
line="$*"
[ "$1" = login ] && cat > "$call.stdin"
# As docker's login does: the entry goes into the config it is pointed at.
if [ "$1" = login ] && [ "$flavour" = docker ]; then
  conf="${DOCKER_CONFIG:-$HOME/.docker}"
  mkdir -p "$conf" && printf '{"auths":{"fake":{"auth":"%s"}}}\n' "$(cat "$call.stdin")" > "$conf/config.json"
fi
if [ -n "$base" ]; then
  printf '%s\0' "$flavour" $base "$@" > "$call.tmp"
else
  printf '%s\0' "$flavour" "$@" > "$call.tmp"
fi
mv "$call.tmp" "$call.argv"

# What a build sees, whatever its rule does: its DOCKER_BUILDKIT, its secret's file.
case "$line" in
  "build "*)
    printf '%s' "${DOCKER_BUILDKIT:-}" > "$STATE/buildkit"
    s=$(flag --secret "$@")
    if [ -n "$s" ]; then
      src=${s#*src=}
      cp "$src" "$STATE/secret-seen"
      stat -c %a "$src" > "$STATE/secret-mode"
      stat -c %a "${src%/*}" > "$STATE/secret-dir-mode"
      printf '%s' "$src" > "$STATE/secret-path"
    fi ;;
esac

@REPLIES@
case "$line" in
@RULES@
esac

case "$line" in
  "version --format {{.Server.Version}}") [ "$flavour" = podman ] && echo 4.3.1 || echo 20.10.24 ;;
  "version --format {{.Client.Version}}") [ "$flavour" = podman ] && echo 4.3.1 || echo 28.2.2 ;;
  "--version") [ "$flavour" = podman ] && echo "podman version 4.3.1" || echo "Docker version 28.2.2, build e6534b4" ;;
  "info --format {{.Version.Version}}") echo 4.3.1 ;;
  "build "*)
    ref=$(flag -t "$@")
    flag --platform "$@" > "$STATE/images/$(key "$ref")"
    echo "Step 1/1 : FROM scratch"
    echo "Successfully built 0123456789ab"
    echo "Successfully tagged $ref" ;;
  "image inspect --format {{.Os}}/{{.Architecture}}/{{.Variant}} "*|"image inspect --format {{.Os}}/{{.Architecture}} "*)
    ref=$(last "$@")
    f="$STATE/images/$(key "$ref")"
    [ -e "$f" ] || { echo "Error: No such image: $ref" >&2; exit 1; }
    p=$(cat "$f")
    case "$4 $p" in
      *Variant*" "*/*/*) echo "$p" ;;
      *Variant*) echo "$p/" ;;
      *) echo "$p" | cut -d/ -f1,2 ;;
    esac ;;
  "image inspect --format {{.Id}} "*)
    ref=$(last "$@")
    [ -e "$STATE/images/$(key "$ref")" ] || { echo "Error: No such image: $ref" >&2; exit 1; }
    echo "sha256:$(sha "$ref")" ;;
  "image inspect --format {{json .RepoDigests}} "*) echo '[]' ;;
  "run "*) uname_of "$(flag --platform "$@")" ;;
  "push "*)
    ref=$(last "$@")
    d=$(oci_push "$ref")
    df=$(flag --digestfile "$@")
    if [ -n "$df" ]; then
      printf '%s' "$d" > "$df"
      echo "Writing manifest to image destination"
    else
      echo "The push refers to repository [${ref%:*}]"
      echo "latest: digest: $d size: 527"
    fi ;;
  "login "*) echo "Login Succeeded" ;;
  *) echo "fake $flavour: unexpected call: $line" >&2; exit 64 ;;
esac
exit 0
"#;

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs_match_as_case_does() {
        assert!(glob("push *amd64*", "push 127.0.0.1:5999/acme/app/amd64:1"));
        assert!(!glob("push *amd64*", "push r/arm64v8:1"));
        assert!(glob("version ?-format*", "version --format x"));
        assert!(glob("*", ""));
        assert!(!glob("a", "ab"));
        assert!(glob("a*b*c", "aXXbYYc"));
    }
}
