//! multiarch.toml: the checked model ([`Spec`]) and how it is loaded.
//!
//! Loading reads the file ([`read_source`]), parses TOML keeping spans, expands
//! the environment (`${NAME}`), then validates everything: `Spec::load` and
//! `Spec::from_str_in` are defined with the validator, in validate/load.rs. Every
//! problem found is reported at once, each pointing at the file, line and value.

pub mod arch;
mod error;
pub mod raw;
pub mod reference;
pub mod template;
pub mod vars;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

pub use arch::{Arch, Builder, Platform};
pub use error::LoadError;
pub use template::Template;

use crate::diagnostic::SourceFile;
use crate::file_error::FileError;

/// The file name looked for when no `-f` is given.
pub const FILE_NAME: &str = "multiarch.toml";

/// Files larger than this are refused before parsing: a spec is a few KiB.
pub const MAX_FILE_SIZE: u64 = 4 * 1024 * 1024;

/// The most retries of a transient registry failure, in the file and on the
/// command line.
pub const MAX_RETRIES: u32 = 20;

/// A validated multiarch.toml.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The file it was read from.
    pub path: PathBuf,
    /// The directory paths in the file are relative to.
    pub dir: PathBuf,
    pub source: SourceFile,
    pub project: Project,
    /// Every arch the file uses or defines, by name.
    pub arches: Vec<Arch>,
    pub default_archs: Vec<String>,
    pub tags: Tags,
    pub publish: Publish,
    pub qemu: Qemu,
    pub verify: Verify,
    pub ci: Ci,
    pub images: Vec<Image>,
}

#[derive(Debug, Clone)]
pub struct Project {
    pub registry: Option<String>,
    pub engine: EngineKind,
    pub jobs: Option<usize>,
    pub timeout: Option<Duration>,
    pub retries: Option<u32>,
    pub insecure_registries: Vec<String>,
    pub allow_secret_args: Vec<String>,
    /// `builder`: how docker builds (podman always builds with buildah).
    pub builder: BuilderSetting,
}

/// `[project] builder` (and `--builder`): which docker builder to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BuilderSetting {
    /// BuildKit when the docker CLI can, else classic with a note.
    #[default]
    Auto,
    BuildKit,
    Classic,
}

impl BuilderSetting {
    pub fn as_str(self) -> &'static str {
        match self {
            BuilderSetting::Auto => "auto",
            BuilderSetting::BuildKit => "buildkit",
            BuilderSetting::Classic => "classic",
        }
    }
}

/// The docker builder a run uses, resolved from [`BuilderSetting`] and what the
/// docker CLI can do (`context::DockerCli`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BuildMode {
    /// The legacy builder, `DOCKER_BUILDKIT=0 docker build`.
    #[default]
    Classic,
    /// `DOCKER_BUILDKIT=1 docker build`: a CLI with BuildKit built in (< 23.0).
    BuildKit,
    /// `docker buildx build --load`: the buildx plugin.
    Buildx,
}

impl BuildMode {
    pub fn is_buildkit(self) -> bool {
        self != BuildMode::Classic
    }

    /// As `plan`, `doctor` and the notes name it.
    pub fn describe(self) -> &'static str {
        match self {
            BuildMode::Classic => "classic (DOCKER_BUILDKIT=0 docker build)",
            BuildMode::BuildKit => "buildkit (DOCKER_BUILDKIT=1 docker build)",
            BuildMode::Buildx => "buildkit (docker buildx build --load)",
        }
    }
}

/// A Dockerfile feature the classic builder does not have, where it first
/// stands: `RUN --mount=…` (any type), `RUN --network`/`--security`, a heredoc,
/// `COPY`/`ADD --chmod`/`--link` and the like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildKitUse {
    /// 1-based line of the flag.
    pub line: usize,
    /// Byte range of the flag in the text.
    pub span: Range<usize>,
    /// What it is, as written in a message: `RUN --mount=type=cache`.
    pub what: String,
}

/// The first use of a BuildKit-only feature in a Dockerfile's text (the
/// classic builder fails on it: "Unknown flag: mount", "the --chmod option
/// requires BuildKit"). Instructions are read as docker reads them: keywords in
/// any case, after spaces or tabs, continued over lines ending in the escape
/// character (`\`, or the one a `# escape=` directive sets), comment lines
/// inside a continuation skipped.
pub fn buildkit_use(text: &str) -> Option<BuildKitUse> {
    // Offsets stay the text's own past a byte-order mark.
    let bom = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let mut found = buildkit_use_in(&text[bom..])?;
    found.span = found.span.start + bom..found.span.end + bom;
    Some(found)
}

fn buildkit_use_in(dockerfile: &str) -> Option<BuildKitUse> {
    let escape = escape_char(dockerfile);
    // (byte offset, line) of each token of the instruction being read.
    let mut tokens: Vec<(usize, usize, &str)> = Vec::new();
    let mut continued = false;
    let mut offset = 0;
    for (n, raw) in dockerfile.split_inclusive('\n').enumerate() {
        let start = offset;
        offset += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);
        let body = line.trim_start();
        if body.starts_with('#') && (continued || tokens.is_empty()) {
            continue;
        }
        // An empty line inside a continuation continues it (docker warns).
        if body.trim_end().is_empty() && continued {
            continue;
        }
        let trimmed = body.trim_end();
        let (text, more) = match trimmed.strip_suffix(escape) {
            Some(t) => (t, true),
            None => (trimmed, false),
        };
        let base = start + (line.len() - body.len());
        let mut at = 0;
        for tok in text.split([' ', '\t']) {
            if !tok.is_empty() {
                tokens.push((base + at, n + 1, tok));
            }
            at += tok.len() + 1;
        }
        continued = more;
        if !more {
            if let Some(found) = buildkit_in(&tokens) {
                return Some(found);
            }
            tokens.clear();
        }
    }
    buildkit_in(&tokens)
}

/// `# escape=` among the parser directives at the top: the escape character.
/// The directives end at the first line that is not a known one.
fn escape_char(dockerfile: &str) -> char {
    for line in dockerfile.lines() {
        let Some((key, value)) = line
            .trim()
            .strip_prefix('#')
            .and_then(|d| d.split_once('='))
        else {
            break;
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "escape" => return if value.trim() == "`" { '`' } else { '\\' },
            "syntax" | "check" => {}
            _ => break,
        }
    }
    '\\'
}

/// A heredoc's opening word (`<<EOF`, `<<-EOF`, `<<"EOF"`), not a here-string (`<<<`).
fn is_heredoc(word: &str) -> bool {
    let Some(rest) = word.strip_prefix("<<") else {
        return false;
    };
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    let rest = rest.trim_start_matches(['"', '\'']);
    rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
}

/// The BuildKit-only feature of one instruction (its tokens, in order).
fn buildkit_in(tokens: &[(usize, usize, &str)]) -> Option<BuildKitUse> {
    let (_, _, keyword) = tokens.first()?;
    let keyword = keyword.to_ascii_uppercase();
    if keyword == "ONBUILD" {
        return buildkit_in(&tokens[1..]);
    }
    let found = |(at, line, tok): (usize, usize, &str), what: String| {
        Some(BuildKitUse {
            line,
            span: at..at + tok.len(),
            what,
        })
    };
    let args = &tokens[1..];
    let flags = args.iter().take_while(|(_, _, t)| t.starts_with("--"));
    let after_flags = args.iter().find(|(_, _, t)| !t.starts_with("--"));
    match keyword.as_str() {
        "RUN" => {
            for &(at, line, t) in flags {
                let name = t.split('=').next().unwrap_or(t);
                match name {
                    "--mount" => {
                        let kind = t
                            .split_once('=')
                            .map(|(_, v)| v)
                            .unwrap_or("")
                            .split(',')
                            .find_map(|kv| kv.strip_prefix("type="))
                            .unwrap_or("bind");
                        return found((at, line, t), format!("RUN --mount=type={kind}"));
                    }
                    "--network" | "--security" => {
                        return found((at, line, t), format!("RUN {name}"));
                    }
                    _ => {}
                }
            }
            // A heredoc anywhere in the command (`RUN python3 <<EOF`).
            let _ = after_flags;
            args.iter()
                .find(|(_, _, t)| is_heredoc(t))
                .and_then(|&(at, line, t)| found((at, line, t), "a heredoc (`RUN <<EOF`)".into()))
        }
        "COPY" | "ADD" => {
            for &(at, line, t) in flags {
                let name = t.split('=').next().unwrap_or(t);
                if matches!(
                    name,
                    "--chmod"
                        | "--link"
                        | "--parents"
                        | "--exclude"
                        | "--checksum"
                        | "--keep-git-dir"
                ) {
                    return found((at, line, t), format!("{keyword} {name}"));
                }
            }
            args.iter()
                .find(|(_, _, t)| is_heredoc(t))
                .and_then(|&(at, line, t)| {
                    found((at, line, t), format!("a heredoc (`{keyword} <<EOF`)"))
                })
        }
        _ => None,
    }
}

/// A build secret of an image: `RUN --mount=type=secret,id=ID` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    pub id: String,
    pub source: SecretSource,
    /// The `id = { … }` entry in the file.
    pub span: Range<usize>,
}

/// Where a secret's value comes from at run time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecretSource {
    /// An environment variable, by name.
    Env(String),
    /// A file (`~/` expanded; relative paths are relative to the spec's directory).
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineKind {
    #[default]
    Docker,
    Podman,
}

impl EngineKind {
    pub fn program(self) -> &'static str {
        match self {
            EngineKind::Docker => "docker",
            EngineKind::Podman => "podman",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Tags {
    /// The per-arch reference, e.g. `{repo}/{arch}:{sha}`.
    pub arch: Template,
    pub manifest: Vec<ManifestTag>,
}

#[derive(Debug, Clone)]
pub struct ManifestTag {
    pub tag: Template,
    /// Only on these branches, when set.
    pub branches: Option<Patterns>,
    /// Only on builds of a git tag.
    pub when_git_tag: bool,
    pub span: Range<usize>,
}

/// A compiled list of globs: `*` does not cross `/`, `**` does.
#[derive(Debug, Clone)]
pub struct Patterns {
    pub patterns: Vec<String>,
    set: GlobSet,
}

impl Patterns {
    pub fn new(patterns: &[String]) -> Result<Patterns, (usize, globset::Error)> {
        let mut b = GlobSetBuilder::new();
        for (i, p) in patterns.iter().enumerate() {
            b.add(glob(p).map_err(|e| (i, e))?);
        }
        let set = b.build().map_err(|e| (0, e))?;
        Ok(Patterns {
            patterns: patterns.to_vec(),
            set,
        })
    }

    pub fn is_match(&self, s: &str) -> bool {
        self.set.is_match(s)
    }

    /// The first pattern that matches, for explanations.
    pub fn matching(&self, s: &str) -> Option<&str> {
        self.set
            .matches(s)
            .first()
            .map(|&i| self.patterns[i].as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

pub(crate) fn glob(p: &str) -> Result<globset::Glob, globset::Error> {
    GlobBuilder::new(p).literal_separator(true).build()
}

#[derive(Debug, Clone)]
pub struct Publish {
    pub branches: Patterns,
    pub tags: Patterns,
    pub push: PushMode,
    pub atomic: bool,
    /// The kind of list pushed (`[publish] index`).
    pub index: IndexFormat,
}

/// Which list multiarch pushes: an annotated OCI image index (default), or a
/// Docker manifest list (no annotations), for clients older than 2019.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IndexFormat {
    #[default]
    Oci,
    Docker,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushMode {
    Always,
    PublishBranches,
    Never,
}

#[derive(Debug, Clone)]
pub struct Qemu {
    /// The command to register binfmt handlers; `None`: the default for the host.
    pub setup: Option<Vec<String>>,
}

/// `[ci]`: what `multiarch ci gitlab|github` writes around each job.
#[derive(Debug, Clone, Default)]
pub struct Ci {
    /// A shell line that puts multiarch on PATH (default: per CI system).
    pub install: Option<String>,
    /// The GitLab job image (default `docker:29`).
    pub image: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Verify {
    pub enabled: bool,
    pub command: Vec<String>,
    pub before_push: bool,
    /// Pass the command to the image's ENTRYPOINT as arguments, instead of
    /// replacing the ENTRYPOINT with its first word.
    pub entrypoint: bool,
}

/// The default verify command: trimmed stdout must be one of the arch's answers.
pub const UNAME_CHECK: &[&str] = &["uname", "-m"];

/// How one arch of an image is tested and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyCheck {
    pub command: Vec<String>,
    /// Stdout must contain this, instead of being one of the arch's `uname` answers.
    pub expect: Option<String>,
    /// Keep the image's ENTRYPOINT and pass `command` to it.
    pub entrypoint: bool,
}

impl VerifyCheck {
    /// The uname check (`uname -m`, no `expect`, the ENTRYPOINT replaced): on an
    /// image without `uname` it is checked by the image config's platform.
    pub fn is_uname_check(&self) -> bool {
        self.command == UNAME_CHECK && self.expect.is_none() && !self.entrypoint
    }
}

/// What one arch of an image is built and checked with: the image's settings
/// with its `[image.per_arch.ARCH]` overrides applied.
#[derive(Debug, Clone)]
pub struct ArchBuild {
    /// Relative to the spec's directory (context joined with the dockerfile).
    pub dockerfile: PathBuf,
    pub target: Option<String>,
    /// The image's build args with the arch's merged over them.
    pub args: Vec<(String, Template)>,
    pub verify: VerifyCheck,
}

#[derive(Debug, Clone)]
pub struct Image {
    pub name: String,
    /// `registry/repository`, or the repository alone without a registry: `{repo}`.
    pub repo: String,
    /// The repository as written (default: the name).
    pub repository: String,
    /// Relative to the spec's directory.
    pub context: PathBuf,
    pub archs: Vec<String>,
    /// Every arch of `archs`: its Dockerfile, target, build args and check.
    pub per_arch: BTreeMap<String, ArchBuild>,
    pub arch_arg: String,
    pub labels: Vec<(String, Template)>,
    pub cache_from: Vec<Template>,
    /// Build secrets (BuildKit, podman).
    pub secrets: Vec<Secret>,
    /// Globs of the files this image is built from (for `--changed-since`).
    pub paths: Vec<String>,
    pub depends_on: Vec<String>,
    pub timeout: Option<Duration>,
    pub span: Range<usize>,
    pub name_span: Range<usize>,
}

impl Image {
    /// What `arch` of this image builds with. Every arch of the image has one.
    pub fn build_for(&self, arch: &str) -> Option<&ArchBuild> {
        self.per_arch.get(arch)
    }
}

/// A spec file's text, read and checked to be usable (not a directory, not too
/// large, UTF-8), with the names messages and paths need.
#[derive(Debug, Clone)]
pub struct Source {
    pub text: String,
    /// The path as given, for messages.
    pub name: String,
    /// The directory paths in the file are relative to.
    pub dir: PathBuf,
}

/// Read a spec file: the I/O half of `Spec::load` (validating is the other).
pub fn read_source(path: &Path) -> Result<Source, LoadError> {
    let io = |source| LoadError::Io(FileError::read(path, source));
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return Err(LoadError::IsDirectory {
            path: path.to_path_buf(),
        });
    }
    if meta.len() > MAX_FILE_SIZE {
        return Err(LoadError::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
            limit: MAX_FILE_SIZE,
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let text = String::from_utf8(bytes).map_err(|e| LoadError::NotUtf8 {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })?;
    Ok(Source {
        text,
        name: path.display().to_string(),
        dir: source_dir(path).to_path_buf(),
    })
}

/// The directory the paths of the spec file at `path` are relative to (the
/// loaded spec's `dir`).
pub fn source_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

impl Spec {
    /// Find the spec: `explicit`, else ./multiarch.toml, else the nearest parent's.
    pub fn locate(explicit: Option<&Path>, cwd: &Path) -> Result<PathBuf, LoadError> {
        if let Some(p) = explicit {
            // Only a path that is not there is "does not exist"; one that cannot
            // be looked at (a link loop, a directory without search permission)
            // is taken, and reading it says why.
            if matches!(p.try_exists(), Ok(false)) {
                return Err(LoadError::NotFound {
                    path: p.to_path_buf(),
                });
            }
            return Ok(p.to_path_buf());
        }
        let mut dir = Some(cwd);
        while let Some(d) = dir {
            let candidate = d.join(FILE_NAME);
            // A directory (or other non-file, or a link that does not resolve) of
            // that name is taken too, so that loading says what it is instead of
            // "no multiarch.toml" or a parent directory's file.
            if std::fs::symlink_metadata(&candidate).is_ok() {
                return Ok(candidate);
            }
            dir = d.parent();
        }
        Err(LoadError::NoSpec {
            cwd: cwd.to_path_buf(),
        })
    }

    pub fn arch(&self, name: &str) -> Option<&Arch> {
        self.arches.iter().find(|a| a.name == name)
    }

    pub fn image(&self, name: &str) -> Option<&Image> {
        self.images.iter().find(|i| i.name == name)
    }

    /// Line of a byte offset, for messages.
    pub fn line_of(&self, offset: usize) -> usize {
        self.source.line_col(offset).0
    }
}

/// Parse `30m`, `1h30m`, `90s`, `500ms`, `2d` (or a plain number of seconds).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let d = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            "d" => Duration::from_secs(n.checked_mul(86400)?),
            _ => return None,
        };
        total = total.checked_add(d)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildkit_features_are_found_where_docker_reads_instructions() {
        let what = |f: &str| buildkit_use(f).map(|u| (u.line, u.what));
        let f = "FROM x\n# RUN --mount=type=cache,target=/c\nrun --mount=type=cache,target=/root/.cache go build\n";
        assert_eq!(what(f), Some((3, "RUN --mount=type=cache".into())));
        let u = buildkit_use(f).unwrap();
        assert_eq!(&f[u.span], "--mount=type=cache,target=/root/.cache");
        assert_eq!(
            what("FROM x\nRUN --mount=type=secret,id=npm npm ci\n"),
            Some((2, "RUN --mount=type=secret".into()))
        );
        assert_eq!(what("FROM x\nRUN make\n"), None);
        // The type anywhere in the mount, bind by default, after a tab.
        assert_eq!(
            what("FROM x\nRUN --mount=target=/var/cache/apk,type=cache apk add x\n"),
            Some((2, "RUN --mount=type=cache".into()))
        );
        assert_eq!(
            what("FROM x\nRUN\t--mount=from=build,target=/src make\n"),
            Some((2, "RUN --mount=type=bind".into()))
        );
        // On a continuation line, a comment line inside it skipped.
        let f =
            "FROM x\nRUN --network=default \\\n# cache\n    --mount=type=cache,target=/c make\n";
        assert_eq!(what(f), Some((2, "RUN --network".into())));
        let f = "FROM x\nRUN set -e; \\\n    make --mount=not-a-flag\n";
        assert_eq!(what(f), None, "a flag after the command is the command's");
        // Another escape character.
        let f = "# escape=`\nFROM x\nRUN `\n  --mount=type=ssh git clone x\n";
        assert_eq!(what(f), Some((4, "RUN --mount=type=ssh".into())));
        // Heredocs and COPY's BuildKit flags.
        assert_eq!(
            what("FROM x\nRUN <<EOF\nset -e\nEOF\n"),
            Some((2, "a heredoc (`RUN <<EOF`)".into()))
        );
        assert_eq!(
            what("FROM x\nCOPY --chmod=755 a /a\n"),
            Some((2, "COPY --chmod".into()))
        );
        assert_eq!(what("FROM x\nCOPY --from=build /a /a\n"), None);
        assert_eq!(
            what("FROM x\nRUN python3 <<EOF\nprint(1)\nEOF\n"),
            Some((2, "a heredoc (`RUN <<EOF`)".into()))
        );
        assert_eq!(what("FROM x\nRUN cat <<<\"x\"\n"), None, "a here-string");
        // An empty line inside a continuation; ONBUILD; a BOM before the directive.
        assert_eq!(
            what("FROM x\nRUN \\\n\n  --mount=type=cache,target=/c make\n"),
            Some((4, "RUN --mount=type=cache".into()))
        );
        assert_eq!(
            what("FROM x\nONBUILD RUN --mount=type=secret,id=a true\n"),
            Some((2, "RUN --mount=type=secret".into()))
        );
        let f = "\u{feff}# escape=`\nFROM x\nRUN `\n  --mount=type=ssh git clone x\n";
        let u = buildkit_use(f).unwrap();
        assert_eq!((u.line, &f[u.span]), (4, "--mount=type=ssh"));
        // The directives end at an unknown one.
        assert_eq!(
            what("# foo=bar\n# escape=`\nFROM x\nRUN `\n  --mount=type=ssh x\n"),
            None
        );
        assert_eq!(
            what("FROM x\r\nRUN --mount=type=cache,target=/c make\r\n"),
            Some((2, "RUN --mount=type=cache".into()))
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1x"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn patterns_do_not_cross_slashes_with_one_star() {
        let p = Patterns::new(&["release/*".into(), "hotfix/**".into()]).unwrap();
        assert!(p.is_match("release/1.2"));
        assert!(!p.is_match("release/1.2/x"));
        assert!(p.is_match("hotfix/a/b"));
        assert_eq!(p.matching("hotfix/a"), Some("hotfix/**"));
    }
}
