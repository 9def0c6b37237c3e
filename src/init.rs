//! `multiarch init`: a commented starter multiarch.toml, one `[[image]]` per
//! Dockerfile found under a directory. The text is validated exactly as
//! `multiarch check` would before it is written.

use std::path::{Path, PathBuf};

use crate::diagnostic::SpecErrors;
use crate::environment::Environment;
use crate::file_error::FileError;
use crate::spec::arch;
use crate::spec::LoadError;
use crate::spec::{Platform, Spec, FILE_NAME};

/// Directories never searched: build output, dependencies, VCS and hidden ones
/// (`.devcontainer/Dockerfile` is not an image to publish).
const SKIP_DIRS: &[&str] = &["target", "node_modules", "vendor"];
/// How deep to look below the directory.
const MAX_DEPTH: usize = 8;

/// The arches a starter file builds when none are given.
pub const DEFAULT_ARCHS: &[&str] = &["amd64", "arm64v8"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundImage {
    pub name: String,
    /// Relative to the directory, `.` for itself.
    pub context: PathBuf,
    /// The `dockerfile` value, relative to the context: a file name, or a template
    /// such as `Dockerfile.{arch}` for one file per arch.
    pub dockerfile: String,
    /// Arches whose Dockerfile the `dockerfile` value does not name:
    /// `[image.per_arch.ARCH] dockerfile = "…"`, relative to the context.
    pub per_arch: Vec<(String, String)>,
    /// The image's arches when its files say which (one Dockerfile per arch);
    /// `None`: `[archs] default`.
    pub archs: Option<Vec<String>>,
    /// The files it is built from, relative to the directory.
    pub files: Vec<PathBuf>,
    /// Files left out: a second file for an arch another file already gives
    /// (`Dockerfile.arm64` beside `Dockerfile.aarch64`), each with the file kept.
    pub left_out: Vec<(PathBuf, PathBuf)>,
}

impl FoundImage {
    /// The image's Dockerfile(s), for the person running `init`.
    pub fn shown(&self) -> String {
        self.files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The Dockerfile of a single-file image (the first file of a per-arch one).
    pub fn path(&self) -> PathBuf {
        self.files.first().cloned().unwrap_or_else(|| {
            if self.context == Path::new(".") {
                PathBuf::from(&self.dockerfile)
            } else {
                self.context.join(&self.dockerfile)
            }
        })
    }
}

pub use crate::spec::arch::builtin_or_alias as arch_of_name;

/// What a Dockerfile found on disk is for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Found {
    /// `Dockerfile`, `Containerfile`, `name.Dockerfile`: an image of its own.
    Plain(PathBuf),
    /// One arch's file of the image in `dir`: `Dockerfile.aarch64`,
    /// `aarch64.Dockerfile`, `arm64/Dockerfile`. `file` is relative to `dir`,
    /// `token` is the arch as the name writes it, inside `file`.
    PerArch {
        dir: PathBuf,
        arch: &'static str,
        file: String,
        token: String,
        /// docker-library's `ARCH/NAME/Dockerfile`: `NAME` (one image per name).
        sub: String,
    },
}

fn classify(path: &Path) -> Found {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
    if let Some(token) = arch_token(&name) {
        if let Some(arch) = arch_of_name(token) {
            return Found::PerArch {
                dir,
                arch,
                file: name.clone(),
                token: token.to_string(),
                sub: String::new(),
            };
        }
    }
    if name == "Dockerfile" || name == "Containerfile" {
        let parent = dir.file_name().map(|n| n.to_string_lossy().into_owned());
        if let Some(arch) = parent.as_deref().and_then(arch_of_name) {
            let token = parent.unwrap_or_default();
            return Found::PerArch {
                dir: dir.parent().unwrap_or(Path::new("")).to_path_buf(),
                arch,
                file: format!("{token}/{name}"),
                token,
                sub: String::new(),
            };
        }
        // docker-library's `ARCH/NAME/Dockerfile` (hello-world: amd64/hello-world,
        // arm64v8/hello-world): the arch, by its built-in name (not a common
        // one: `docker/amd/rocm` is no arch's), is the directory above the
        // image's own.
        let parts: Vec<String> = dir
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let builtin = |p: &str| arch::builtin_names().find(|b| *b == p);
        if let Some(at) = parts
            .len()
            .checked_sub(2)
            .filter(|&i| builtin(&parts[i]).is_some())
        {
            if let Some(arch) = builtin(&parts[at]) {
                let top: PathBuf = parts[..at].iter().collect();
                let rest = parts[at + 1..].join("/");
                return Found::PerArch {
                    dir: top,
                    arch,
                    file: format!("{}/{rest}/{name}", parts[at]),
                    token: parts[at].clone(),
                    sub: rest,
                };
            }
        }
    }
    Found::Plain(path.to_path_buf())
}

/// The arch a per-arch file's name gives, as written: `Dockerfile.aarch64`,
/// `Dockerfile-armhf`, `Dockerfile_arm64`, `aarch64.Dockerfile`, and the same
/// with `Containerfile`.
fn arch_token(name: &str) -> Option<&str> {
    ["Dockerfile", "Containerfile"].iter().find_map(|base| {
        let suffixed = name
            .strip_prefix(base)
            .and_then(|r| r.strip_prefix(['.', '-', '_']));
        let prefixed = name.strip_suffix(base).and_then(|r| r.strip_suffix('.'));
        suffixed.or(prefixed).filter(|t| arch_of_name(t).is_some())
    })
}

#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    /// Overwrite an existing multiarch.toml.
    pub force: bool,
    /// `[archs] default` (empty: amd64, arm64v8).
    pub archs: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Initialized {
    pub path: PathBuf,
    pub images: Vec<FoundImage>,
}

fn is_dockerfile(name: &str) -> bool {
    name == "Dockerfile"
        || name == "Containerfile"
        || name.ends_with(".Dockerfile")
        || arch_token(name).is_some()
}

/// Dockerfiles under `root`, as paths relative to it, sorted.
pub fn find_dockerfiles(root: &Path) -> Result<Vec<PathBuf>, InitError> {
    let mut found = Vec::new();
    let mut stack = vec![(PathBuf::new(), 0usize)];
    while let Some((rel, depth)) = stack.pop() {
        let dir = if rel.as_os_str().is_empty() {
            root.to_path_buf()
        } else {
            root.join(&rel)
        };
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            // The root itself must be readable; an unreadable subdirectory is skipped.
            Err(e) if rel.as_os_str().is_empty() => {
                return Err(InitError::Io(FileError::read(&dir, e)))
            }
            Err(_) => continue,
        };
        for entry in entries.flatten() {
            let Ok(mut kind) = entry.file_type() else {
                continue;
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            if kind.is_symlink() {
                // A linked Dockerfile (`Dockerfile.aarch64 -> Dockerfile.arm64`) is
                // a Dockerfile; linked directories are not followed (a link
                // back up would loop).
                match std::fs::metadata(entry.path()) {
                    Ok(m) if m.is_file() => kind = m.file_type(),
                    _ => continue,
                }
            }
            if kind.is_dir() {
                if depth < MAX_DEPTH
                    && !name.starts_with('.')
                    && !SKIP_DIRS.contains(&name.as_str())
                {
                    stack.push((rel.join(&name), depth + 1));
                }
            } else if kind.is_file() && is_dockerfile(&name) {
                found.push(rel.join(&name));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// A valid image name (`[a-z0-9][a-z0-9._-]*`, and a valid repository path
/// component): lowercase letters and digits, runs of anything else as one `-`.
pub fn image_name(raw: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in raw.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c);
        } else {
            dash = true;
        }
    }
    out.truncate(64);
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "app".to_string()
    } else {
        out
    }
}

/// Names from the files' directories (`services/api/Dockerfile` → `api`) or their
/// own names (`worker.Dockerfile` → `worker`); clashes take their parent's name
/// (`legacy-api`), then a number. One Dockerfile per arch in a directory
/// (`Dockerfile.aarch64`, `arm64/Dockerfile`) is one image of that directory,
/// built for those arches (and `default_archs` from a plain `Dockerfile` beside
/// them).
pub fn images_of(root_name: &str, files: &[PathBuf], default_archs: &[String]) -> Vec<FoundImage> {
    let mut plain: Vec<PathBuf> = Vec::new();
    let mut groups: Vec<Entry> = Vec::new();
    for f in files {
        match classify(f) {
            Found::Plain(p) => plain.push(p),
            Found::PerArch {
                dir,
                arch,
                file,
                token,
                sub,
            } => {
                let one = ArchFile { arch, file, token };
                match groups.iter_mut().find(|g| g.dir == dir && g.sub == sub) {
                    // Two files for one arch (`Dockerfile.arm64`, `arm64v8/Dockerfile`):
                    // the first, in sorted order, is the arch's; the other is
                    // left out, and `init` says so.
                    Some(g) => match g.per.iter().find(|x| x.arch == arch) {
                        Some(kept) => {
                            let kept = g.dir.join(&kept.file);
                            g.left_out.push((g.dir.join(&one.file), kept));
                        }
                        None => g.per.push(one),
                    },
                    None => groups.push(Entry {
                        dir,
                        sub,
                        plain: None,
                        per: vec![one],
                        left_out: Vec::new(),
                    }),
                }
            }
        }
    }
    // Each image: its directory, the plain file (if any) and its per-arch files.
    let mut entries: Vec<Entry> = Vec::new();
    for p in plain {
        let dir = p.parent().unwrap_or(Path::new("")).to_path_buf();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let joins = name == "Dockerfile" || name == "Containerfile";
        let (per, left_out) = match groups.iter().position(|g| g.dir == dir && g.sub.is_empty()) {
            // The first plain Dockerfile of the directory takes its per-arch files.
            Some(g) if joins => {
                let g = groups.remove(g);
                (g.per, g.left_out)
            }
            _ => (Vec::new(), Vec::new()),
        };
        entries.push(Entry {
            dir,
            sub: String::new(),
            plain: Some(name),
            per,
            left_out,
        });
    }
    entries.extend(groups);
    entries.sort_by_key(Entry::first_file);

    let mut out: Vec<FoundImage> = Vec::new();
    for Entry {
        dir,
        sub,
        plain,
        mut per,
        left_out,
    } in entries
    {
        let dirs: Vec<String> = dir
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let own = plain
            .as_deref()
            .and_then(|f| f.strip_suffix(".Dockerfile"))
            .map(str::to_string);
        let mut candidates: Vec<String> = Vec::new();
        match &own {
            // `ARCH/NAME/Dockerfile`: the image is NAME.
            _ if !sub.is_empty() => {
                let last = sub.rsplit('/').next().unwrap_or(&sub);
                candidates.push(image_name(last));
                candidates.push(image_name(&sub));
                if let Some(d) = dirs.last() {
                    candidates.push(image_name(&format!("{d}-{sub}")));
                }
            }
            Some(stem) => {
                candidates.push(image_name(stem));
                if let Some(d) = dirs.last() {
                    candidates.push(image_name(&format!("{d}-{stem}")));
                }
            }
            None => {
                candidates.push(image_name(dirs.last().map_or(root_name, |d| d.as_str())));
                if dirs.len() >= 2 {
                    candidates.push(image_name(&dirs[dirs.len() - 2..].join("-")));
                }
                if plain.as_deref() == Some("Containerfile") {
                    candidates.push(image_name(&format!(
                        "{}-containerfile",
                        dirs.last().map_or(root_name, |d| d.as_str())
                    )));
                }
            }
        }
        let taken = |n: &str| out.iter().any(|i| i.name == n);
        let name = candidates
            .iter()
            .find(|c| !taken(c))
            .cloned()
            .unwrap_or_else(|| {
                let base = candidates.first().cloned().unwrap_or_else(|| "app".into());
                (2..)
                    .map(|n| format!("{base}-{n}"))
                    .find(|c| !taken(c))
                    .unwrap_or(base)
            });
        let context = if dirs.is_empty() {
            PathBuf::from(".")
        } else {
            dir.clone()
        };
        per.sort_by_key(|x| builtin_rank(x.arch));
        let mut files: Vec<PathBuf> = plain.iter().map(|f| dir.join(f)).collect();
        files.extend(per.iter().map(|x| dir.join(&x.file)));
        let (dockerfile, per_arch, archs) = per_arch_layout(plain.as_deref(), &per, default_archs);
        out.push(FoundImage {
            name,
            context,
            dockerfile,
            per_arch,
            archs,
            files,
            left_out,
        });
    }
    out
}

/// One arch's Dockerfile of a per-arch image: `file` relative to the image's
/// directory, `token` the arch as the name writes it (`aarch64`).
#[derive(Debug, Clone)]
struct ArchFile {
    arch: &'static str,
    file: String,
    token: String,
}

/// An image found on disk: its directory, a plain Dockerfile, per-arch files.
#[derive(Debug, Clone)]
struct Entry {
    dir: PathBuf,
    /// `NAME` of docker-library's `ARCH/NAME/Dockerfile`, else empty.
    sub: String,
    plain: Option<String>,
    per: Vec<ArchFile>,
    /// Second files for an arch, with the file kept.
    left_out: Vec<(PathBuf, PathBuf)>,
}

impl Entry {
    /// Images are listed in the order of their first file's path.
    fn first_file(&self) -> PathBuf {
        self.plain
            .as_ref()
            .or(self.per.first().map(|x| &x.file))
            .map(|f| self.dir.join(f))
            .unwrap_or_default()
    }
}

/// Where an arch sits in the built-in table (its order in written lists).
fn builtin_rank(a: &str) -> usize {
    arch::builtin_names()
        .position(|b| b == a)
        .unwrap_or(usize::MAX)
}

/// The `dockerfile` value, the per_arch entries and the arches of an image with
/// one Dockerfile per arch (`per`: arch, file, the arch as the file names it).
/// One template covers the files when it can (`Dockerfile.{arch}`,
/// `{architecture}/Dockerfile`); the others get per_arch entries.
fn per_arch_layout(
    plain: Option<&str>,
    per: &[ArchFile],
    default_archs: &[String],
) -> (String, Vec<(String, String)>, Option<Vec<String>>) {
    let Some(first) = per.first() else {
        return (plain.unwrap_or("Dockerfile").to_string(), Vec::new(), None);
    };
    let mut archs: Vec<String> = per.iter().map(|x| x.arch.to_string()).collect();
    if plain.is_some() {
        // The plain Dockerfile builds the default arches that have no file.
        for d in default_archs {
            if !archs.contains(d) {
                archs.push(d.clone());
            }
        }
        archs.sort_by_key(|a| builtin_rank(a));
    }
    let mut default_sorted = default_archs.to_vec();
    default_sorted.sort_by_key(|a| builtin_rank(a));
    let archs_key = (archs != default_sorted).then(|| archs.clone());
    let every_arch_has_a_file = archs.iter().all(|a| per.iter().any(|x| x.arch == a));
    // A template from each file's shape and each variable that gives its token.
    let mut best: Option<(String, usize)> = None;
    if every_arch_has_a_file {
        for ArchFile {
            arch: arch_name,
            file,
            token,
        } in per
        {
            let Some(at) = file.find(token.as_str()) else {
                continue;
            };
            let Some(this) = arch::builtin(arch_name) else {
                continue;
            };
            for var in ["arch", "architecture"] {
                let value = match var {
                    "arch" => this.name.clone(),
                    _ => this.platform.arch.clone(),
                };
                if value != *token {
                    continue;
                }
                let template = format!("{}{{{var}}}{}", &file[..at], &file[at + token.len()..]);
                let covered = per
                    .iter()
                    .filter(|x| render_for(&template, x.arch).as_deref() == Some(x.file.as_str()))
                    .count();
                if best.as_ref().is_none_or(|(_, n)| covered > *n) {
                    best = Some((template, covered));
                }
            }
        }
    }
    let (dockerfile, uses_template) = match (&best, plain) {
        (Some((t, n)), _) if *n >= 2 => (t.clone(), true),
        (_, Some(p)) => (p.to_string(), false),
        _ => (first.file.clone(), false),
    };
    let per_arch = per
        .iter()
        .filter(|x| {
            let named = if uses_template {
                render_for(&dockerfile, x.arch)
            } else {
                Some(dockerfile.clone())
            };
            named.as_deref() != Some(x.file.as_str())
        })
        .map(|x| (x.arch.to_string(), x.file.clone()))
        .collect();
    (dockerfile, per_arch, archs_key)
}

/// `Dockerfile.{arch}` for a built-in arch, as multiarch renders it.
fn render_for(template: &str, arch_name: &str) -> Option<String> {
    let a = arch::builtin(arch_name)?;
    Some(
        template
            .replace("{arch}", &a.name)
            .replace("{architecture}", &a.platform.arch),
    )
}

fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The starter file's text.
pub fn starter(project: &str, images: &[FoundImage], archs: &[String]) -> String {
    let archs: Vec<String> = if archs.is_empty() {
        DEFAULT_ARCHS.iter().map(|a| quoted(a)).collect()
    } else {
        archs.iter().map(|a| quoted(a)).collect()
    };
    let project = image_name(project);
    let mut o = format!(
        r#"# multiarch.toml, written by `multiarch init`. Next: `multiarch check`, then
# `multiarch plan` to see every step and command, then `multiarch run`.
# `multiarch doctor` checks that this machine can run it.
version = 1

[project]
# The prefix of every image. `${{NAME:-default}}` reads the environment when the
# file is loaded: MULTIARCH_REGISTRY=registry.example.com:5000 multiarch run.
# In GitLab CI, `registry = "${{CI_REGISTRY_IMAGE}}"` is the project's registry.
# Loopback and [project] insecure_registries are spoken to over plain HTTP.
registry = "${{MULTIARCH_REGISTRY:-127.0.0.1:5000}}/{project}"
# jobs = 4                      # steps at once (default: the number of CPUs)
# timeout = "30m"               # per step
# builder = "auto"              # docker: BuildKit when the CLI can (buildx, or a
#                               # CLI before 23.0), else "classic"; `multiarch doctor`

[archs]
# Every image is built for these (Docker official-image names: each build gets
# --build-arg ARCH=<name>, so `ARG ARCH` + `FROM ${{ARCH}}/alpine` picks the base
# of the right arch). Also: arm32v7, arm32v6, i386, ppc64le, s390x, riscv64.
# With BuildKit, a stage `FROM --platform=$BUILDPLATFORM golang AS build` runs
# natively and cross-compiles for `ARG TARGETARCH` (amd64, arm, arm64), with no
# emulation; then `FROM ${{ARCH}}/alpine` + `COPY --from=build /out /app`.
# Foreign arches run under qemu, or natively on a builder:
#   [arch.arm64v8]
#   builder = "ssh://ci@arm64-host"
default = [{archs}]

[tags]
# Each arch's image; {{repo}} is registry/name, {{sha}} the full commit.
arch = "{{repo}}/{{arch}}:{{sha}}"
# The multi-arch lists pushed by publishing builds. Also {{branch}}, {{short_sha}},
# and {{ tag = "{{version}}", when = "git-tag" }} for v1.2.3 tags.
manifest = ["{{sha}}", "latest"]

[publish]
# Lists are pushed only by builds of these branches (globs: `*` stays within a
# segment, `**` crosses `/`) or git tags, never by pull/merge requests.
branches = ["main", "master"]
# tags = ["v*"]
# Per-arch images: "always" pushes them on every build (testable by digest),
# "publish-branches" only when publishing, "never" only builds and tests.
push = "always"

[verify]
# Run in each image after its build (before any push) and, after publishing, in
# each platform's entry of the list by digest: trimmed stdout must be the arch's
# `uname -m`. The command replaces the image's ENTRYPOINT (`entrypoint = true`
# passes it to the ENTRYPOINT instead); an image without `uname` (scratch,
# distroless) is checked by its config's platform. To run your own binary:
# `verify = {{ command = ["/app", "--version"], expect = "..." }}` in an image.
command = ["uname", "-m"]
"#,
        archs = archs.join(", ")
    );
    o.push_str(
        r#"
# One [[image]] per Dockerfile found. Other keys an image can have:
#   args = { VERSION = "1.0" }      build args, templated ({sha}, {branch}, …)
#   target = "runtime"              a multi-stage target
#   depends_on = ["base"]           built first; its per-arch image is {image.base}:
#                                   args = { BASE = "{image.base}" } + `FROM ${BASE}`
#   archs = ["amd64"]               instead of [archs] default
#   verify = { command = ["/app", "--version"], expect = "1.0" }
#   secrets = { npm = { env = "NPM_TOKEN" } }   BuildKit/podman build secrets:
#                                   `RUN --mount=type=secret,id=npm` reads them
#   cache_from = ["{repo}/{arch}:latest"]   reuse the pushed image's layers
"#,
    );
    for i in images {
        o.push_str("\n[[image]]\n");
        o.push_str(&format!("# from {}\n", i.shown()));
        for (file, kept) in &i.left_out {
            o.push_str(&format!(
                "# left out: {} (its arch is built from {})\n",
                file.display(),
                kept.display()
            ));
        }
        o.push_str(&format!("name = {}\n", quoted(&i.name)));
        o.push_str(&format!(
            "context = {}\n",
            quoted(&i.context.to_string_lossy())
        ));
        if i.dockerfile != "Dockerfile" {
            o.push_str(&format!("dockerfile = {}\n", quoted(&i.dockerfile)));
        }
        // Per-arch files in arch directories (`{arch}/Dockerfile`): the context
        // is above them.
        if i.archs.is_some()
            && std::iter::once(&i.dockerfile)
                .chain(i.per_arch.iter().map(|(_, f)| f))
                .any(|f| f.contains('/'))
        {
            o.push_str(
                "# the per-arch directories' parent is the context: COPY paths start there\n",
            );
        }
        if let Some(archs) = &i.archs {
            let list: Vec<String> = archs.iter().map(|a| quoted(a)).collect();
            o.push_str(&format!(
                "archs = [{}]  # one Dockerfile per arch\n",
                list.join(", ")
            ));
        }
        for (a, f) in &i.per_arch {
            o.push_str(&format!(
                "[image.per_arch.{a}]\ndockerfile = {}\n",
                quoted(f)
            ));
        }
    }
    o
}

/// A `--arch` value as the built-in name it stands for: the name itself, a
/// common name (`aarch64`, `armhf`, `x86_64`) or a platform (`linux/arm64`).
fn normalise_arch(a: &str) -> Option<&'static str> {
    arch::builtin_or_alias(a).or_else(|| {
        Platform::parse(a)
            .ok()
            .as_ref()
            .and_then(arch::builtin_for_platform)
    })
}

/// The `--arch` values as built-in names, in order, each once.
fn normalise_archs(given: &[String]) -> Result<Vec<String>, InitError> {
    let mut out: Vec<String> = Vec::new();
    for a in given {
        let Some(b) = normalise_arch(a) else {
            return Err(InitError::UnknownArch {
                name: a.clone(),
                known: arch::builtin_names().collect::<Vec<_>>().join(", "),
            });
        };
        if !out.iter().any(|o| o == b) {
            out.push(b.to_string());
        }
    }
    Ok(out)
}

/// Why `multiarch init` wrote nothing (exit 2).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum InitError {
    #[error("{} already exists; pass --force to overwrite it", path.display())]
    Exists { path: PathBuf },
    #[error("`--arch {name}` is not an arch multiarch knows")]
    #[diagnostic(help(
        "built-in arches: {known}; a platform (linux/arm64) or a common name (aarch64, armhf, x86_64) works too; define others in the written file's [arch.NAME]"
    ))]
    UnknownArch { name: String, known: String },
    #[error("no Dockerfile, *.Dockerfile, Dockerfile.<arch> (or -<arch>, _<arch>) or Containerfile under {} (target/, node_modules/, vendor/ and hidden directories are not searched)", dir.display())]
    NoDockerfiles { dir: PathBuf },
    /// The directory cannot be read (`doing` = "read"), or the file cannot be
    /// written ("write").
    #[error(transparent)]
    Io(FileError),
    /// The starter file would not pass `multiarch check` (a bug of init's).
    #[error("{0}")]
    Invalid(SpecErrors),
    #[error(transparent)]
    Load(LoadError),
}

impl InitError {
    pub fn exit_code(&self) -> i32 {
        match self {
            InitError::Load(e) => e.exit_code(),
            _ => crate::exit::USAGE,
        }
    }
}

impl From<LoadError> for InitError {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Invalid(errs) => InitError::Invalid(errs),
            other => InitError::Load(other),
        }
    }
}

/// Write `dir/multiarch.toml` for the Dockerfiles under `dir`.
pub fn init(dir: &Path, opts: &InitOptions, env: &Environment) -> Result<Initialized, InitError> {
    let path = dir.join(FILE_NAME);
    if path.exists() && !opts.force {
        return Err(InitError::Exists { path });
    }
    let files = find_dockerfiles(dir)?;
    if files.is_empty() {
        return Err(InitError::NoDockerfiles {
            dir: dir.to_path_buf(),
        });
    }
    let root_name = std::fs::canonicalize(dir)
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "app".into());
    let archs = normalise_archs(&opts.archs)?;
    let default_archs: Vec<String> = if archs.is_empty() {
        DEFAULT_ARCHS.iter().map(|s| s.to_string()).collect()
    } else {
        archs.clone()
    };
    let images = images_of(&root_name, &files, &default_archs);
    let text = starter(&root_name, &images, &archs);
    // What `multiarch check` would say, before anything is written.
    Spec::from_str_in(&text, FILE_NAME, dir, env)?;
    std::fs::write(&path, text).map_err(|e| InitError::Io(FileError::write(&path, e)))?;
    Ok(Initialized { path, images })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_that_cannot_be_read_says_read_and_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("not-a-dir");
        std::fs::write(&file, "").unwrap();
        let e = find_dockerfiles(&file).unwrap_err();
        assert!(matches!(&e, InitError::Io(f) if f.doing == "read" && f.path == file));
        assert!(e
            .to_string()
            .starts_with(&format!("cannot read {}: ", file.display())));
    }

    #[test]
    fn names_are_valid() {
        assert_eq!(image_name("My_App.v2"), "my-app-v2");
        assert_eq!(image_name("--"), "app");
        assert_eq!(image_name("Ünïcode dir"), "n-code-dir");
    }

    #[test]
    fn clashes_take_the_parent() {
        let files: Vec<PathBuf> = [
            "Dockerfile",
            "legacy/api/Dockerfile",
            "services/api/Dockerfile",
            "services/api/worker.Dockerfile",
            "tools/Containerfile",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let names: Vec<String> = images_of("Shop", &files, &[])
            .into_iter()
            .map(|i| i.name)
            .collect();
        assert_eq!(names, ["shop", "api", "services-api", "worker", "tools"]);
    }
}
