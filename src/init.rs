//! `multiarch init`: a commented starter multiarch.toml, one `[[image]]` per
//! Dockerfile found under a directory. The text is validated exactly as
//! `multiarch check` would before it is written.

use std::path::{Path, PathBuf};

use crate::environment::Environment;
use crate::error::Error;
use crate::spec::{Spec, FILE_NAME};

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
    /// The file name, relative to the context.
    pub dockerfile: String,
}

impl FoundImage {
    /// The image's Dockerfile(s), for the person running `init`.
    pub fn shown(&self) -> String {
        self.path().display().to_string()
    }

    pub fn path(&self) -> PathBuf {
        if self.context == Path::new(".") {
            PathBuf::from(&self.dockerfile)
        } else {
            self.context.join(&self.dockerfile)
        }
    }
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
    name == "Dockerfile" || name == "Containerfile" || name.ends_with(".Dockerfile")
}

/// Dockerfiles under `root`, as paths relative to it, sorted.
pub fn find_dockerfiles(root: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut found = Vec::new();
    let mut stack = vec![(PathBuf::new(), 0usize)];
    while let Some((rel, depth)) = stack.pop() {
        let dir = root.join(&rel);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            // The root itself must be readable; an unreadable subdirectory is skipped.
            Err(e) if rel.as_os_str().is_empty() => return Err(Error::io(&dir, e)),
            Err(_) => continue,
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let name = entry.file_name().to_string_lossy().into_owned();
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
/// (`legacy-api`), then a number.
pub fn images_of(root_name: &str, files: &[PathBuf]) -> Vec<FoundImage> {
    let mut out: Vec<FoundImage> = Vec::new();
    for f in files {
        let file = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = f.parent().unwrap_or(Path::new(""));
        let dirs: Vec<String> = dir
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let own = file.strip_suffix(".Dockerfile").map(str::to_string);
        let mut candidates: Vec<String> = Vec::new();
        match &own {
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
                if file == "Containerfile" {
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
        out.push(FoundImage {
            name,
            context: if dirs.is_empty() {
                PathBuf::from(".")
            } else {
                dir.to_path_buf()
            },
            dockerfile: file,
        });
    }
    out
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

[archs]
# Every image is built for these (Docker official-image names: each build gets
# --build-arg ARCH=<name>, so `ARG ARCH` + `FROM ${{ARCH}}/alpine` picks the base
# of the right arch). Also: arm32v7, arm32v6, i386, ppc64le, s390x, riscv64.
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
# `uname -m`. Images without `uname` set `verify = {{ command = [...], expect = "..." }}`.
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
"#,
    );
    for i in images {
        o.push_str("\n[[image]]\n");
        o.push_str(&format!("# from {}\n", i.path().display()));
        o.push_str(&format!("name = {}\n", quoted(&i.name)));
        o.push_str(&format!(
            "context = {}\n",
            quoted(&i.context.to_string_lossy())
        ));
        if i.dockerfile != "Dockerfile" {
            o.push_str(&format!("dockerfile = {}\n", quoted(&i.dockerfile)));
        }
    }
    o
}

/// Write `dir/multiarch.toml` for the Dockerfiles under `dir`.
pub fn init(dir: &Path, opts: &InitOptions, env: &Environment) -> Result<Initialized, Error> {
    let path = dir.join(FILE_NAME);
    if path.exists() && !opts.force {
        return Err(Error::Usage(format!(
            "{} already exists; pass --force to overwrite it",
            path.display()
        )));
    }
    let files = find_dockerfiles(dir)?;
    if files.is_empty() {
        return Err(Error::Usage(format!(
            "no Dockerfile, *.Dockerfile or Containerfile under {} (target/, node_modules/, vendor/ and hidden directories are not searched)",
            dir.display()
        )));
    }
    let root_name = std::fs::canonicalize(dir)
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "app".into());
    let images = images_of(&root_name, &files);
    let text = starter(&root_name, &images, &opts.archs);
    // What `multiarch check` would say, before anything is written.
    Spec::from_str_in(&text, FILE_NAME, dir, env)?;
    std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
    Ok(Initialized { path, images })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let names: Vec<String> = images_of("Shop", &files)
            .into_iter()
            .map(|i| i.name)
            .collect();
        assert_eq!(names, ["shop", "api", "services-api", "worker", "tools"]);
    }
}
