//! Raw model → [`Spec`]: every semantic check of SPEC.md §1, all problems collected.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};

mod deps;
mod load;

use crate::diagnostic::{closest, did_you_mean, Problem, SourceFile};
use crate::spec::arch::{self, Arch, Builder, Platform};
use crate::spec::raw::{RawArchDef, RawFile, RawImage, RawImageVerify, RawPerArch, RawSecret, Sp};
use crate::spec::reference::{self, is_valid_tag};
use crate::spec::template::Template;
use crate::spec::vars::{self, GitValues, Vars};
use crate::spec::{
    glob, parse_duration, ArchBuild, BuilderSetting, Ci, EngineKind, Image, IndexFormat,
    ManifestTag, Patterns, Project, Publish, PushMode, Qemu, Secret, SecretSource, Spec, Tags,
    Verify, VerifyCheck, UNAME_CHECK,
};

/// What to do about secrets (or cache mounts) with the classic builder.
pub const SECRETS_HELP: &str =
    "use builder = \"buildkit\" (or --builder buildkit), or engine = \"podman\": the classic builder has no `--secret`";

const DEFAULT_ARCHS: &[&str] = &["amd64", "arm64v8"];

/// Check a raw file, after the `problems` reading it found: the Spec when there is
/// no problem at all, else every problem. An empty `Err` would be a validator bug
/// (a part refused without saying why); `Spec::from_str_in` reports it as internal.
pub fn validate(
    raw: RawFile,
    source: &SourceFile,
    dir: &Path,
    mut problems: Vec<Problem>,
) -> Result<Spec, Vec<Problem>> {
    let real_dir = dir.canonicalize().ok();
    let root = real_dir.as_deref().map(repository_root);
    let mut v = Validator {
        problems: &mut problems,
        dir,
        real_dir: real_dir.as_deref(),
        root: root.as_deref(),
        arches: BTreeMap::new(),
        defined: BTreeSet::new(),
    };
    match v.run(raw, source) {
        Some(spec) if problems.is_empty() => Ok(spec),
        _ => Err(problems),
    }
}

struct Validator<'a> {
    problems: &'a mut Vec<Problem>,
    dir: &'a Path,
    /// `dir` resolved (symlinks followed); `None` when it does not resolve.
    real_dir: Option<&'a Path>,
    /// The repository contexts and Dockerfiles must stay in (see
    /// [`Validator::escapes`]); `None` when `dir` does not resolve.
    root: Option<&'a Path>,
    arches: BTreeMap<String, Arch>,
    /// Names of every `[arch.NAME]`, valid or not: a use of one whose definition
    /// has a problem is not also reported as an unknown arch.
    defined: BTreeSet<String>,
}

fn whole(len: usize) -> Range<usize> {
    0..len.min(1)
}

impl Validator<'_> {
    fn push(&mut self, p: Problem) {
        self.problems.push(p);
    }

    fn run(&mut self, raw: RawFile, source: &SourceFile) -> Option<Spec> {
        if let Some(v) = &raw.version {
            if v.value != 1 {
                self.push(
                    Problem::new(
                        "bad-version",
                        v.span.clone(),
                        format!("unsupported schema version {}", v.value),
                        "this multiarch understands version 1",
                    )
                    .help("write `version = 1`, or upgrade multiarch"),
                );
            }
        }
        let project = self.project(&raw);
        self.arch_defs(&raw.arch_defs);
        let default_archs = match &raw.default_archs {
            Some(list) => self.arch_list(list, "archs.default"),
            None => DEFAULT_ARCHS.iter().map(|s| s.to_string()).collect(),
        };
        for name in &default_archs {
            self.ensure_arch(name);
        }
        let tags = self.tags(&raw);
        let publish = self.publish(&raw);
        let qemu = Qemu {
            setup: raw
                .qemu_setup
                .as_ref()
                .and_then(|s| self.command(s, "qemu.setup")),
        };
        let verify = self.verify(&raw);
        let ci = self.ci(&raw);

        // `[image]` written as a table is reported as a wrong type; "no images" on
        // top of it would only repeat it.
        let images_reported = raw.images_span.as_ref().is_some_and(|s| {
            self.problems
                .iter()
                .any(|p| s.start <= p.span.start && p.span.end <= s.end)
        });
        if raw.images.is_empty() && !images_reported {
            let span = raw
                .images_span
                .clone()
                .unwrap_or_else(|| whole(source.text().len()));
            self.push(
                Problem::new("no-images", span, "no images to build", "no [[image]] here")
                    .help("add an image:\n[[image]]\nname = \"app\"\ncontext = \".\""),
            );
        }
        let images = self.images(&raw, &project, &default_archs, &verify);
        self.check_dependencies(&raw.images, &images);
        if let Some(t) = &tags {
            self.check_references(&project, t, &images);
        }

        let tags = tags?;
        Some(Spec {
            path: PathBuf::new(),
            dir: self.dir.to_path_buf(),
            source: source.clone(),
            project,
            arches: self.arches.values().cloned().collect(),
            default_archs,
            tags,
            publish: publish?,
            qemu,
            verify,
            ci,
            images,
        })
    }

    fn project(&mut self, raw: &RawFile) -> Project {
        let p = &raw.project;
        let engine = self.choice(
            p.engine.as_ref(),
            &[
                ("docker", EngineKind::Docker),
                ("podman", EngineKind::Podman),
            ],
            Choice {
                code: "unknown-engine",
                what: "engine",
                label: "not an engine multiarch drives",
                help: "engine is \"docker\" or \"podman\"",
            },
        );
        let jobs = p.jobs.as_ref().and_then(|j| {
            if j.value < 1 || j.value > 1024 {
                self.push(
                    Problem::new("bad-jobs", j.span.clone(), format!("`jobs = {}` is out of range", j.value), "must be between 1 and 1024")
                        .help("jobs is how many steps run at once; leave it out to use the number of CPUs"),
                );
                None
            } else {
                Some(j.value as usize)
            }
        });
        let retries = p.retries.as_ref().and_then(|r| {
            if !(0..=i64::from(crate::spec::MAX_RETRIES)).contains(&r.value) {
                self.push(
                    Problem::new(
                        "bad-retries",
                        r.span.clone(),
                        format!("`retries = {}` is out of range", r.value),
                        format!("must be between 0 and {}", crate::spec::MAX_RETRIES),
                    )
                    .help("retries of a transient registry failure; 3 is a good value"),
                );
                None
            } else {
                Some(r.value as u32)
            }
        });
        let timeout = p.timeout.as_ref().and_then(|t| self.duration(t));
        let registry = p.registry.as_ref().and_then(|r| {
            let value = r.value.trim_end_matches('/').to_string();
            match reference::parse_registry(&value) {
                Ok(_) => Some(value),
                Err(e) => {
                    let (label, help) = match (&e, value.split_once("://")) {
                        (_, Some((_, rest))) => ("not a registry prefix", format!("write it without the scheme: \"{rest}\" (plain-HTTP registries go in insecure_registries)")),
                        (reference::ReferenceError::Port(_), None) => ("port out of range", "a registry port is 1–65535, e.g. \"127.0.0.1:5000\"".to_string()),
                        _ => ("not a registry prefix", "a registry prefix is `host[:port][/namespace]`, lowercase: \"localhost:5000\", \"registry.lan:5000/acme\", \"[::1]:5000\"".into()),
                    };
                    self.push(
                        Problem::new("bad-registry", r.span.clone(), format!("invalid registry `{value}`: {e}"), label)
                            .help(help),
                    );
                    None
                }
            }
        });
        let mut insecure = Vec::new();
        for r in &p.insecure_registries {
            match reference::parse_registry_host(&r.value) {
                Ok(()) => insecure.push(r.value.clone()),
                Err(e) => {
                    let port = matches!(e, reference::ReferenceError::Port(_));
                    self.push(
                        Problem::new(
                            "bad-registry",
                            r.span.clone(),
                            match port {
                                true => format!("`{}` is not a registry host: {e}", r.value),
                                false => format!("`{}` is not a registry host", r.value),
                            },
                            if port {
                                "port out of range"
                            } else {
                                "expected host[:port]"
                            },
                        )
                        .help(match r.value.split_once("://") {
                            Some((_, rest)) => format!(
                                "write host[:port] without the scheme: \"{}\"",
                                rest.trim_end_matches('/')
                            ),
                            None if port => {
                                "a registry port is 1–65535, e.g. \"registry.lan:5000\"".into()
                            }
                            None => {
                                "for example \"registry.lan:5000\" or \"[fd00::1]:5000\"".into()
                            }
                        }),
                    );
                }
            }
        }
        let mut allow = Vec::new();
        for a in &p.allow_secret_args {
            allow.push(a.value.clone());
        }
        let builder = self.choice(
            p.builder.as_ref(),
            &[
                ("auto", BuilderSetting::Auto),
                ("buildkit", BuilderSetting::BuildKit),
                ("classic", BuilderSetting::Classic),
            ],
            Choice {
                code: "unknown-builder",
                what: "builder",
                label: "not a docker builder",
                help: "builder is \"auto\", \"buildkit\" or \"classic\"",
            },
        );
        Project {
            builder,
            registry,
            engine,
            jobs,
            timeout,
            retries,
            insecure_registries: insecure,
            allow_secret_args: allow,
        }
    }

    /// A setting that is one of a few words: the value `field` names, the first
    /// choice when it is absent, or (with a problem) the first choice again.
    fn choice<T: Copy>(
        &mut self,
        field: Option<&Sp<String>>,
        choices: &[(&str, T)],
        c: Choice,
    ) -> T {
        let Some(field) = field else {
            return choices[0].1;
        };
        if let Some((_, v)) = choices.iter().find(|(word, _)| *word == field.value) {
            return *v;
        }
        let other = &field.value;
        self.push(
            Problem::new(
                c.code,
                field.span.clone(),
                format!("unknown {} `{other}`", c.what),
                c.label,
            )
            .help(
                did_you_mean(other, choices.iter().map(|(word, _)| *word))
                    .unwrap_or_else(|| c.help.into()),
            ),
        );
        choices[0].1
    }

    fn duration(&mut self, t: &Sp<String>) -> Option<std::time::Duration> {
        match parse_duration(&t.value) {
            Some(d) if !d.is_zero() => Some(d),
            _ => {
                self.push(
                    Problem::new(
                        "bad-duration",
                        t.span.clone(),
                        format!("`{}` is not a duration", t.value),
                        "not a duration",
                    )
                    .help("write a number with a unit: \"90s\", \"30m\", \"1h30m\""),
                );
                None
            }
        }
    }

    fn arch_defs(&mut self, defs: &[RawArchDef]) {
        for d in defs {
            let name = &d.name.value;
            self.defined.insert(name.clone());
            if !is_arch_name(name) {
                self.push(
                    Problem::new("bad-arch-name", d.name.span.clone(), format!("`{name}` is not a valid arch name"), "invalid name")
                        .help("arch names are lowercase letters, digits, `.`, `_` and `-` (they appear in image references)"),
                );
                continue;
            }
            let base = arch::builtin(name);
            let platform = match &d.platform {
                Some(p) => match Platform::parse(&p.value) {
                    Ok(pl) => Some(pl),
                    Err(e) => {
                        self.bad_platform(&p.value, p.span.clone(), &e);
                        continue;
                    }
                },
                None => base.as_ref().map(|b| b.platform.clone()),
            };
            let Some(platform) = platform else {
                self.push(
                    Problem::new("missing-key", d.span.clone(), format!("arch `{name}` needs a `platform`"), "no platform")
                        .help("a new arch needs its OCI platform and `uname -m` answers: platform = \"linux/arm/v7\", uname = [\"armv7l\"]"),
                );
                continue;
            };
            let uname = match &d.uname {
                Some(u) if u.is_empty() => {
                    self.push(
                        Problem::new(
                            "empty-list",
                            d.span.clone(),
                            format!("arch `{name}` has an empty `uname` list"),
                            "no accepted answers",
                        )
                        .help("list what `uname -m` prints on this arch, e.g. [\"armv7l\"]"),
                    );
                    continue;
                }
                Some(u) => u.iter().map(|s| s.value.clone()).collect(),
                None => match (
                    &base,
                    arch::builtin_for_platform(&platform).and_then(arch::builtin),
                ) {
                    (Some(b), _) if b.platform == platform => b.uname.clone(),
                    (_, Some(b)) => b.uname.clone(),
                    _ => {
                        self.push(
                            Problem::new("missing-key", d.span.clone(), format!("arch `{name}` needs `uname`"), "no uname answers")
                                .help("list what `uname -m` prints on this arch, e.g. uname = [\"armv7l\"]"),
                        );
                        continue;
                    }
                },
            };
            let builder = match (&d.builder, &d.docker_context) {
                (Some(b), Some(c)) => {
                    self.push(
                        Problem::new(
                            "conflict",
                            c.span.clone(),
                            format!("arch `{name}` has both `builder` and `docker_context`"),
                            "second engine choice",
                        )
                        .related(b.span.clone(), "first engine choice")
                        .help(
                            "keep one: a DOCKER_HOST-style `builder`, or a named `docker_context`",
                        ),
                    );
                    None
                }
                (Some(b), None) => {
                    let ok = ["unix://", "tcp://", "ssh://", "npipe://", "fd://"]
                        .iter()
                        .any(|s| b.value.starts_with(s) && b.value.len() > s.len());
                    if !ok {
                        self.push(
                            Problem::new("bad-builder", b.span.clone(), format!("`{}` is not an engine endpoint", b.value), "expected unix://, tcp:// or ssh://")
                                .help("for example \"ssh://builder@arm64-1\" or \"unix:///run/arm64/docker.sock\""),
                        );
                    } else if let Some(port) = bad_endpoint_port(&b.value) {
                        self.push(
                            Problem::new("bad-builder", b.span.clone(), format!("port `{port}` of `{}` is out of range (1–65535)", b.value), "bad port")
                                .help("for example \"tcp://arm64-1:2376\" or \"ssh://builder@arm64-1:2222\""),
                        );
                    }
                    Some(Builder::Host(b.value.clone()))
                }
                (None, Some(c)) => {
                    if c.value.is_empty() {
                        self.push(
                            Problem::new(
                                "empty-value",
                                c.span.clone(),
                                "empty docker context name",
                                "empty",
                            )
                            .help("name a context from `docker context ls`"),
                        );
                    }
                    Some(Builder::Context(c.value.clone()))
                }
                (None, None) => base.as_ref().and_then(|b| b.builder.clone()),
            };
            let mut uname: Vec<String> = uname;
            if builder.is_some() && platform.arch == "arm" && !uname.iter().any(|u| u == "aarch64")
            {
                // 32-bit arm built on an arm64 machine reports the kernel's aarch64.
                uname.push("aarch64".into());
            }
            self.arches.insert(
                name.clone(),
                Arch {
                    name: name.clone(),
                    platform,
                    uname,
                    builder,
                    runner_tags: if d.runner_tags.is_empty() {
                        base.as_ref()
                            .map(|b| b.runner_tags.clone())
                            .unwrap_or_default()
                    } else {
                        d.runner_tags.iter().map(|t| t.value.clone()).collect()
                    },
                },
            );
        }
    }

    fn bad_platform(&mut self, value: &str, span: Range<usize>, e: &arch::PlatformError) {
        let help = match e {
            arch::PlatformError::Arch(a) => did_you_mean(a, arch::OCI_ARCHES.iter().copied())
                .unwrap_or_else(|| format!("architectures: {}", arch::OCI_ARCHES.join(", "))),
            arch::PlatformError::Os(o) => did_you_mean(o, arch::OCI_OSES.iter().copied())
                .unwrap_or_else(|| "the os is usually `linux`".into()),
            _ => "an OCI platform is os/arch[/variant], e.g. \"linux/arm64\" or \"linux/arm/v7\""
                .into(),
        };
        self.push(
            Problem::new(
                "bad-platform",
                span,
                format!("invalid platform `{value}`: {e}"),
                "not an OCI platform",
            )
            .help(help),
        );
    }

    /// Make sure a built-in arch used by name is in the table.
    fn ensure_arch(&mut self, name: &str) {
        if !self.arches.contains_key(name) {
            if let Some(b) = arch::builtin(name) {
                self.arches.insert(name.to_string(), b);
            }
        }
    }

    /// Resolve an arch written in the file (a name or a platform string).
    fn resolve_arch(&mut self, s: &Sp<String>) -> Option<String> {
        let name = s.value.as_str();
        if self.arches.contains_key(name) || arch::builtin(name).is_some() {
            self.ensure_arch(name);
            return Some(name.to_string());
        }
        if name.contains('/') {
            return match Platform::parse(name) {
                Ok(p) => {
                    if let Some(custom) = self.arches.values().find(|a| a.platform == p) {
                        return Some(custom.name.clone());
                    }
                    match arch::builtin_for_platform(&p) {
                        Some(b) => {
                            self.ensure_arch(b);
                            Some(b.to_string())
                        }
                        None => {
                            self.push(
                                Problem::new(
                                    "unnamed-platform",
                                    s.span.clone(),
                                    format!("platform `{p}` has no built-in arch name"),
                                    "needs a name",
                                )
                                .help(format!(
                                    "name it: [arch.NAME] platform = \"{p}\", uname = [\"…\"]"
                                )),
                            );
                            None
                        }
                    }
                }
                Err(e) => {
                    self.bad_platform(name, s.span.clone(), &e);
                    None
                }
            };
        }
        if self.defined.contains(name) {
            // Its [arch.NAME] has a problem, reported there.
            return None;
        }
        let mut known: Vec<String> = arch::builtin_names().map(str::to_string).collect();
        for custom in self.arches.keys() {
            if !known.contains(custom) {
                known.push(custom.clone());
            }
        }
        let help = match arch::alias(name) {
            Some(a) => Some(format!("did you mean `{a}` ({})? multiarch uses the Docker official-image names", arch::builtin(a).map(|b| b.platform.to_string()).unwrap_or_default())),
            None => did_you_mean(name, known.iter().map(String::as_str)),
        }
        .unwrap_or_else(|| format!("known arches: {}; or write a platform such as \"linux/arm64\", or define [arch.{name}]", known.join(", ")));
        self.push(
            Problem::new(
                "unknown-arch",
                s.span.clone(),
                format!("unknown arch `{name}`"),
                "not a known arch",
            )
            .help(help),
        );
        None
    }

    /// The arch a name or platform string resolves to, without reporting anything
    /// (it was reported where it was first resolved).
    fn arch_named(&self, s: &str) -> Option<String> {
        if self.arches.contains_key(s) {
            return Some(s.to_string());
        }
        let p = Platform::parse(s).ok().filter(|_| s.contains('/'))?;
        self.arches
            .values()
            .find(|a| a.platform == p)
            .map(|a| a.name.clone())
    }

    fn arch_list(&mut self, list: &Sp<Vec<Sp<String>>>, key: &str) -> Vec<String> {
        if list.value.is_empty() {
            self.push(
                Problem::new(
                    "empty-matrix",
                    list.span.clone(),
                    format!("`{key}` is empty: nothing would be built"),
                    "no arches",
                )
                .help("list at least one arch, e.g. [\"amd64\", \"arm64v8\"]"),
            );
            return Vec::new();
        }
        let mut out: Vec<String> = Vec::new();
        let mut seen: HashMap<String, Range<usize>> = HashMap::new();
        for s in &list.value {
            if let Some(name) = self.resolve_arch(s) {
                if let Some(first) = seen.get(&name) {
                    self.push(
                        Problem::new(
                            "duplicate-arch",
                            s.span.clone(),
                            format!("arch `{name}` is listed twice"),
                            "duplicate",
                        )
                        .related(first.clone(), "first here")
                        .help("platform strings are normalised to arch names: remove one"),
                    );
                    continue;
                }
                seen.insert(name.clone(), s.span.clone());
                out.push(name);
            }
        }
        out
    }

    fn tags(&mut self, raw: &RawFile) -> Option<Tags> {
        let arch_t = match &raw.tags_arch {
            Some(t) => {
                let allowed: Vec<&str> = vars::IMAGE_VARS
                    .iter()
                    .chain(vars::ARCH_VARS)
                    .chain(vars::GIT_VARS)
                    .copied()
                    .collect();
                self.check_vars(t, &allowed, "the per-arch reference", false);
                // An unknown variable (a typo of `{arch}`?) is reported on its own.
                let all_known = t
                    .vars()
                    .all(|(n, _)| n.starts_with("image.") || vars::all_names().any(|k| k == n));
                if all_known && !names_the_arch(t) {
                    self.push(
                        Problem::new("arch-missing-from-reference", t.span.clone(), "the per-arch reference does not contain `{arch}`", "every arch would get the same reference")
                            .help("include the arch, e.g. \"{repo}/{arch}:{sha}\", \"{repo}:{sha}-{arch}\" or \"{repo}:{version}_{platform_tag}\""),
                    );
                }
                t.clone()
            }
            None => default_arch_template(),
        };
        let mut manifest = Vec::new();
        match &raw.tags_manifest {
            Some(list) => {
                if list.value.is_empty() {
                    self.push(
                        Problem::new("empty-list", list.span.clone(), "`tags.manifest` is empty: no list would be published", "no tags")
                            .help("list at least one tag, e.g. [\"{sha}\", \"latest\"], or set [publish] push = \"always\" and branches = [] to push per-arch images only"),
                    );
                }
                let mut seen: HashMap<String, Range<usize>> = HashMap::new();
                for m in &list.value {
                    let allowed: Vec<&str> = vars::IMAGE_VARS
                        .iter()
                        .chain(vars::GIT_VARS)
                        .copied()
                        .collect();
                    self.check_vars(&m.tag, &allowed, "a manifest tag", false);
                    let shown = m.tag.display();
                    if let Some(first) = seen.get(&shown) {
                        self.push(
                            Problem::new(
                                "duplicate-tag",
                                m.tag.span.clone(),
                                format!("manifest tag `{shown}` is listed twice"),
                                "duplicate",
                            )
                            .related(first.clone(), "first here")
                            .help("remove one of them"),
                        );
                    }
                    seen.insert(shown, m.tag.span.clone());
                    let branches = m
                        .branches
                        .as_ref()
                        .and_then(|b| self.patterns(b, "branches"));
                    let when_git_tag = match &m.when {
                        None => false,
                        Some(w) if w.value == "git-tag" => true,
                        Some(w) => {
                            self.push(
                                Problem::new("bad-when", w.span.clone(), format!("unknown condition `{}`", w.value), "not a condition")
                                    .help("`when = \"git-tag\"` publishes the tag only on builds of a git tag; use `branches = [...]` for branches"),
                            );
                            false
                        }
                    };
                    manifest.push(ManifestTag {
                        tag: m.tag.clone(),
                        branches,
                        when_git_tag,
                        span: m.span.clone(),
                    });
                }
            }
            None => {
                for t in ["{sha}", "latest"] {
                    manifest.push(ManifestTag {
                        tag: literal_template(t),
                        branches: None,
                        when_git_tag: false,
                        span: 0..0,
                    });
                }
            }
        }
        Some(Tags {
            arch: arch_t,
            manifest,
        })
    }

    fn check_vars(&mut self, t: &Template, allowed: &[&str], what: &str, allow_images: bool) {
        for (name, span) in t.vars() {
            if let Some(other) = name.strip_prefix("image.") {
                if !allow_images {
                    self.push(
                        Problem::new("var-not-here", span.clone(), format!("`{{{name}}}` cannot be used in {what}"), "not available here")
                            .help("`{image.OTHER}` is for build args, labels and cache_from of an image that depends on OTHER"),
                    );
                } else if other.is_empty() {
                    self.push(
                        Problem::new(
                            "unknown-variable",
                            span.clone(),
                            "`{image.}` names no image",
                            "no image name",
                        )
                        .help("write `{image.NAME}` with an image of `depends_on`"),
                    );
                }
                continue;
            }
            if allowed.contains(&name) {
                continue;
            }
            let known = vars::all_names().any(|n| n == name);
            if known {
                let help = if vars::ARCH_VARS.contains(&name) {
                    "a list spans every arch; per-arch values belong in [tags] arch".to_string()
                } else {
                    format!(
                        "available here: {}",
                        allowed
                            .iter()
                            .map(|a| format!("{{{a}}}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    )
                };
                self.push(
                    Problem::new(
                        "var-not-here",
                        span.clone(),
                        format!("`{{{name}}}` has no value in {what}"),
                        "not available here",
                    )
                    .help(help),
                );
            } else {
                let help = closest(name, vars::all_names())
                    .map(|c| format!("did you mean `{{{c}}}`?"))
                    .unwrap_or_else(|| {
                        format!(
                            "variables: {} {{image.NAME}}; write `{{{{` and `}}}}` for literal braces",
                            vars::all_names().map(|a| format!("{{{a}}}")).collect::<Vec<_>>().join(" ")
                        )
                    });
                self.push(
                    Problem::new(
                        "unknown-variable",
                        span.clone(),
                        format!("unknown template variable `{{{name}}}`"),
                        "unknown variable",
                    )
                    .help(help),
                );
            }
        }
    }

    fn patterns(&mut self, list: &[Sp<String>], key: &str) -> Option<Patterns> {
        let mut ok = true;
        for p in list {
            if let Err(e) = glob(&p.value) {
                ok = false;
                self.push(
                    Problem::new("bad-glob", p.span.clone(), format!("invalid glob `{}`: {}", p.value, glob_error(&e)), "invalid pattern")
                        .help("`*` matches within one path segment, `**` across `/`, `{a,b}` alternatives, `[ab]` classes"),
                );
            }
        }
        if !ok {
            return None;
        }
        let values: Vec<String> = list.iter().map(|p| p.value.clone()).collect();
        Patterns::new(&values).ok().or_else(|| {
            let _ = key;
            None
        })
    }

    fn publish(&mut self, raw: &RawFile) -> Option<Publish> {
        let p = &raw.publish;
        let branches = match &p.branches {
            Some(b) => self.patterns(b, "publish.branches"),
            None => Patterns::new(&["main".into(), "master".into()]).ok(),
        };
        let tags = match &p.tags {
            Some(t) => self.patterns(t, "publish.tags"),
            None => Patterns::new(&[]).ok(),
        };
        let push = self.choice(
            p.push.as_ref(),
            &[
                ("always", PushMode::Always),
                ("publish-branches", PushMode::PublishBranches),
                ("never", PushMode::Never),
            ],
            Choice {
                code: "unknown-push-mode",
                what: "push mode",
                label: "not a push mode",
                help: "push is \"always\", \"publish-branches\" or \"never\"",
            },
        );
        let index = self.choice(
            p.index.as_ref(),
            &[("oci", IndexFormat::Oci), ("docker", IndexFormat::Docker)],
            Choice {
                code: "unknown-index-format",
                what: "index format",
                label: "not an index format",
                help: "index is \"oci\" (an annotated OCI image index) or \"docker\" (a Docker manifest list)",
            },
        );
        Some(Publish {
            branches: branches?,
            tags: tags?,
            push,
            atomic: p.atomic.as_ref().is_some_and(|a| a.value),
            index,
        })
    }

    fn command(&mut self, c: &Sp<Vec<Sp<String>>>, key: &str) -> Option<Vec<String>> {
        if c.value.is_empty() || c.value[0].value.trim().is_empty() {
            self.push(
                Problem::new("empty-command", c.span.clone(), format!("`{key}` is an empty command"), "nothing to run")
                    .help("a command is an argv list, e.g. [\"uname\", \"-m\"]; it is never run through a shell"),
            );
            return None;
        }
        Some(c.value.iter().map(|s| s.value.clone()).collect())
    }

    fn verify(&mut self, raw: &RawFile) -> Verify {
        let v = &raw.verify;
        let command = v
            .command
            .as_ref()
            .and_then(|c| self.command(c, "verify.command"))
            .unwrap_or_else(|| UNAME_CHECK.iter().map(|s| s.to_string()).collect());
        Verify {
            enabled: v.enabled.as_ref().is_none_or(|e| e.value),
            command,
            before_push: v.before_push.as_ref().is_none_or(|e| e.value),
            entrypoint: v.entrypoint.as_ref().is_some_and(|e| e.value),
        }
    }

    fn ci(&mut self, raw: &RawFile) -> Ci {
        let c = &raw.ci;
        if let Some(i) = c.install.as_ref().filter(|i| i.value.trim().is_empty()) {
            self.push(
                Problem::new("empty-value", i.span.clone(), "empty `ci.install`", "empty")
                    .help("a shell line that puts multiarch on PATH, e.g. `install = \"cargo install --locked multiarch\"`; leave the key out for the default"),
            );
        }
        if let Some(i) = &c.image {
            if let Err(e) = reference::parse(&i.value) {
                self.push(
                    Problem::new(
                        "bad-reference",
                        i.span.clone(),
                        format!("`ci.image` `{}` is not a valid image reference: {e}", i.value),
                        "invalid reference",
                    )
                    .help("the GitLab job image, with the docker CLI in it, e.g. `image = \"docker:29\"`"),
                );
            }
        }
        Ci {
            install: c.install.as_ref().map(|i| i.value.clone()),
            image: c.image.as_ref().map(|i| i.value.clone()),
        }
    }

    /// An image's or an arch's `verify` table over `base`.
    fn verify_check(&mut self, raw: &RawImageVerify, base: &VerifyCheck) -> VerifyCheck {
        let mut out = base.clone();
        if let Some(c) = raw
            .command
            .as_ref()
            .and_then(|c| self.command(c, "verify.command"))
        {
            out.command = c;
        }
        if let Some(e) = &raw.expect {
            if e.value.trim().is_empty() {
                self.push(
                    Problem::new(
                        "empty-value",
                        e.span.clone(),
                        "`expect` is empty: every output would match",
                        "empty",
                    )
                    .help("write what the command's output must contain, e.g. \"api 1.\""),
                );
            }
            out.expect = Some(e.value.clone());
        }
        if let Some(e) = &raw.entrypoint {
            out.entrypoint = e.value;
        }
        out
    }

    fn images(
        &mut self,
        raw: &RawFile,
        project: &Project,
        default_archs: &[String],
        verify: &Verify,
    ) -> Vec<Image> {
        // Names first (a missing, invalid or second name rejects the image),
        // then the images themselves, checked on several threads, then what
        // depends on the order (repositories used twice). Problems come out in
        // file order, as if it were one loop.
        let mut names: HashMap<String, Range<usize>> = HashMap::new();
        let mut rejected: Vec<(usize, Problem)> = Vec::new();
        let mut named: Vec<(usize, &RawImage, &Sp<String>)> = Vec::new();
        for (k, ri) in raw.images.iter().enumerate() {
            let Some(name) = &ri.name else {
                rejected.push((
                    k,
                    Problem::new(
                        "missing-key",
                        ri.span.clone(),
                        "an image needs a `name`",
                        "no name",
                    )
                    .help("add `name = \"app\"` (lowercase letters, digits, `.`, `_`, `-`)"),
                ));
                continue;
            };
            if !is_image_name(&name.value) {
                let lower = name.value.to_ascii_lowercase();
                let help = if is_image_name(&lower) {
                    format!("names are lowercase: did you mean `{lower}`?")
                } else {
                    "names match [a-z0-9][a-z0-9._-]*".into()
                };
                rejected.push((
                    k,
                    Problem::new(
                        "bad-image-name",
                        name.span.clone(),
                        format!("invalid image name `{}`", name.value),
                        "invalid name",
                    )
                    .help(help),
                ));
                continue;
            }
            if let Some(first) = names.get(&name.value) {
                rejected.push((
                    k,
                    Problem::new(
                        "duplicate-image",
                        name.span.clone(),
                        format!("image `{}` is defined twice", name.value),
                        "second definition",
                    )
                    .related(first.clone(), "first defined here")
                    .help("image names are unique; rename or remove one"),
                ));
                continue;
            }
            names.insert(name.value.clone(), name.span.clone());
            named.push((k, ri, name));
        }
        let checked = self.check_images(&named, project, default_archs, verify);
        let mut rejected = rejected.into_iter().peekable();
        let mut out: Vec<Image> = Vec::new();
        let mut repos: HashMap<String, Range<usize>> = HashMap::new();
        for (&(k, ri, name), (img, problems)) in named.iter().zip(checked) {
            while let Some((_, p)) = rejected.next_if(|(at, _)| *at < k) {
                self.push(p);
            }
            self.problems.extend(problems);
            let Some(img) = img else {
                continue;
            };
            if let Some(first) = repos.get(&img.repo) {
                let span = ri
                    .repository
                    .as_ref()
                    .map_or(name.span.clone(), |r| r.span.clone());
                self.push(
                    Problem::new(
                        "duplicate-repository",
                        span,
                        format!("two images push to `{}`", img.repo),
                        "same repository",
                    )
                    .related(first.clone(), "also used here")
                    .help("give each image its own `repository`"),
                );
            }
            repos.insert(
                img.repo.clone(),
                ri.repository
                    .as_ref()
                    .map_or(name.span.clone(), |r| r.span.clone()),
            );
            out.push(img);
        }
        for (_, p) in rejected {
            self.push(p);
        }
        out
    }

    /// Each named image checked on its own ([`Validator::image`]), with the
    /// problems it has: on up to eight threads for a large file (a monorepo of
    /// a thousand images), in order. The built-in arches the images name are
    /// added to the table as one loop would.
    fn check_images(
        &mut self,
        named: &[(usize, &RawImage, &Sp<String>)],
        project: &Project,
        default_archs: &[String],
        verify: &Verify,
    ) -> Vec<(Option<Image>, Vec<Problem>)> {
        let (dir, real_dir, root) = (self.dir, self.real_dir, self.root);
        let (arches, defined) = (&self.arches, &self.defined);
        let check = |chunk: &[(usize, &RawImage, &Sp<String>)]| {
            let mut problems = Vec::new();
            let mut v = Validator {
                problems: &mut problems,
                dir,
                real_dir,
                root,
                arches: arches.clone(),
                defined: defined.clone(),
            };
            let mut out = Vec::with_capacity(chunk.len());
            for &(_, ri, name) in chunk {
                let before = v.problems.len();
                let img = v.image(ri, name, project, default_archs, verify);
                out.push((img, v.problems.split_off(before)));
            }
            (out, v.arches)
        };
        const PER_THREAD: usize = 64;
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8)
            .min(named.len() / PER_THREAD);
        let results = if threads < 2 {
            vec![check(named)]
        } else {
            let size = named.len().div_ceil(threads);
            std::thread::scope(|scope| {
                let handles: Vec<_> = named
                    .chunks(size)
                    .map(|chunk| scope.spawn(move || check(chunk)))
                    .collect();
                handles
                    .into_iter()
                    // A panic in a checker is a bug: raise it here.
                    .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                    .collect()
            })
        };
        let mut out = Vec::with_capacity(named.len());
        for (checked, arches) in results {
            out.extend(checked);
            for (name, arch) in arches {
                self.arches.entry(name).or_insert(arch);
            }
        }
        out
    }

    fn image(
        &mut self,
        ri: &RawImage,
        name: &Sp<String>,
        project: &Project,
        default_archs: &[String],
        verify: &Verify,
    ) -> Option<Image> {
        let repository = ri
            .repository
            .as_ref()
            .map_or(name.value.clone(), |r| r.value.clone());
        let repo = match &project.registry {
            Some(reg) => format!("{reg}/{repository}"),
            None => repository.clone(),
        };
        let mut ok = true;
        if let Err(e) = reference::parse_repository(&repo) {
            ok = false;
            let span = ri
                .repository
                .as_ref()
                .map_or(name.span.clone(), |r| r.span.clone());
            self.push(
                Problem::new("bad-repository", span, format!("`{repo}` is not a valid repository: {e}"), "invalid repository")
                    .help("repositories are lowercase path components separated by `/`, e.g. \"acme/api\""),
            );
        }
        let context_rel = PathBuf::from(ri.context.as_ref().map_or(".", |c| c.value.as_str()));
        let context_abs = self.dir.join(&context_rel);
        if let Some(c) = &ri.context {
            if !context_abs.is_dir() {
                ok = false;
                self.push(
                    Problem::new(
                        "missing-context",
                        c.span.clone(),
                        format!("build context `{}` is not a directory", c.value),
                        "no such directory",
                    )
                    .help(format!(
                        "paths are relative to the directory of multiarch.toml ({})",
                        self.dir.display()
                    )),
                );
            }
        }
        // A context outside is said once; its Dockerfiles are not judged too.
        let mut context_outside = false;
        if let Some(c) = &ri.context {
            if let Some(outside) = self.escapes(&context_rel) {
                ok = false;
                context_outside = true;
                self.push(outside_repository(
                    c.span.clone(),
                    "build context",
                    &c.value,
                    &outside,
                ));
            }
        }
        if let Some(t) = &ri.target {
            self.check_target(t);
        }
        let archs = match &ri.archs {
            Some(list) => self.arch_list(list, "archs"),
            None => default_archs.to_vec(),
        };
        let arch_arg = match &ri.arch_arg {
            Some(a) if !is_build_arg_name(&a.value) => {
                self.push(
                    Problem::new(
                        "bad-build-arg",
                        a.span.clone(),
                        format!("`{}` is not a valid build-arg name", a.value),
                        "invalid name",
                    )
                    .help("build-arg names are letters, digits and `_`, not starting with a digit"),
                );
                "ARCH".to_string()
            }
            Some(a) => a.value.clone(),
            None => "ARCH".to_string(),
        };
        let allowed: Vec<&str> = vars::IMAGE_VARS
            .iter()
            .chain(vars::ARCH_VARS)
            .chain(vars::GIT_VARS)
            .copied()
            .collect();
        self.check_args(&ri.args, &arch_arg, project, &allowed);
        for (k, v) in &ri.labels {
            if k.value.is_empty()
                || k.value.contains('=')
                || k.value.chars().any(char::is_whitespace)
            {
                self.push(Problem::new("bad-label", k.span.clone(), format!("`{}` is not a valid label key", k.value), "invalid key").help("label keys are non-empty, without `=` or spaces, e.g. \"org.opencontainers.image.vendor\""));
            } else if let Some(var) = v
                .secret_env
                .as_ref()
                .filter(|_| !project.allow_secret_args.contains(&k.value))
            {
                // A label is in the build's command line and the image's config,
                // which anyone who pulls it reads.
                self.push(
                    Problem::new("secret-label", v.span.clone(), format!("label `{}` holds the value of {var}, a secret", k.value), "a secret's value")
                        .help(format!("labels are in the build's command line and the image's config for anyone who pulls it; leave the secret out of labels, or if this is meant add it to [project] allow_secret_args = [\"{}\"]", k.value)),
                );
            }
            self.check_vars(v, &allowed, "a label", true);
        }
        for c in &ri.cache_from {
            self.check_vars(c, &allowed, "cache_from", true);
        }
        let secrets = self.secrets(&ri.secrets, project);
        let timeout = ri.timeout.as_ref().and_then(|t| self.duration(t));
        let base_check = VerifyCheck {
            command: verify.command.clone(),
            expect: None,
            entrypoint: verify.entrypoint,
        };
        let image_check = self.verify_check(&ri.verify, &base_check);

        // [image.per_arch.ARCH]: each for an arch of this image, once.
        let mut overrides: BTreeMap<String, &RawPerArch> = BTreeMap::new();
        for o in &ri.per_arch {
            let Some(a) = self.resolve_arch(&o.arch) else {
                continue;
            };
            if !archs.contains(&a) {
                let shown = if a == o.arch.value {
                    format!("`{a}`")
                } else {
                    format!("`{}` ({a})", o.arch.value)
                };
                self.push(
                    Problem::new(
                        "arch-not-in-image",
                        o.arch.span.clone(),
                        format!("{shown} is not an arch of image `{}`", name.value),
                        "not in this image's archs",
                    )
                    .help(format!(
                        "`{}` is built for {}: add {a} to its `archs`, or remove this table",
                        name.value,
                        archs.join(", ")
                    )),
                );
                continue;
            }
            if let Some(first) = overrides.get(&a) {
                self.push(
                    Problem::new(
                        "duplicate-arch",
                        o.arch.span.clone(),
                        format!(
                            "arch `{a}` of image `{}` has two per_arch tables",
                            name.value
                        ),
                        "second table",
                    )
                    .related(first.arch.span.clone(), "first here")
                    .help("platform strings are normalised to arch names: merge the two tables"),
                );
                continue;
            }
            if let Some(t) = &o.target {
                self.check_target(t);
            }
            self.check_args(&o.args, &arch_arg, project, &allowed);
            overrides.insert(a, o);
        }
        let dockerfile_vars: Vec<&str> = std::iter::once("name")
            .chain(vars::ARCH_VARS.iter().copied())
            .collect();
        let templates = ri
            .dockerfile
            .iter()
            .chain(overrides.values().filter_map(|o| o.dockerfile.as_ref()));
        for t in templates {
            self.check_vars(t, &dockerfile_vars, "a dockerfile", false);
        }

        let mut per_arch = BTreeMap::new();
        let mut missing_once = false;
        // One stat per distinct file: eight arches usually share one Dockerfile.
        let context_is_dir = context_abs.is_dir();
        let mut is_file: HashMap<PathBuf, bool> = HashMap::new();
        let mut linked: HashMap<PathBuf, Option<PathBuf>> = HashMap::new();
        // Dockerfiles already checked against the repository (each once).
        let mut outside_files: HashMap<PathBuf, bool> = HashMap::new();
        for a in &archs {
            let Some(arch) = self.arches.get(a).cloned() else {
                continue;
            };
            let o = overrides.get(a).copied();
            let written = o
                .and_then(|o| o.dockerfile.as_ref())
                .or(ri.dockerfile.as_ref());
            let file = match written {
                None => "Dockerfile".to_string(),
                Some(t) => {
                    let vars = Vars {
                        registry: project.registry.as_deref(),
                        repo: &repo,
                        name: &name.value,
                        arch: Some(a),
                        platform: Some(&arch.platform),
                        git: &GitValues::default(),
                        images: None,
                    };
                    match t.render(|n| vars.get(n)) {
                        Ok(f) => f,
                        // An unknown variable, reported above.
                        Err(_) => {
                            ok = false;
                            continue;
                        }
                    }
                }
            };
            let rel = context_rel.join(&file);
            // A Dockerfile outside the repository is said once, and is not
            // judged further; the arch's other settings still are.
            let outside = context_outside
                || *outside_files
                    .entry(rel.clone())
                    .or_insert_with(|| match self.escapes(&rel) {
                        Some(outside) => {
                            let span = written.map_or(name.span.clone(), |t| t.span.clone());
                            self.push(outside_repository(span, "Dockerfile", &file, &outside));
                            true
                        }
                        None => false,
                    });
            if outside {
                ok = false;
            } else if context_is_dir
                && !*is_file
                    .entry(rel.clone())
                    .or_insert_with(|| self.dir.join(&rel).is_file())
            {
                ok = false;
                // A plain `dockerfile` is missing for every arch: said once.
                let per_arch_problem = written.is_some_and(|t| t.as_literal().is_none())
                    || o.is_some_and(|o| o.dockerfile.is_some());
                if per_arch_problem || !missing_once {
                    missing_once |= !per_arch_problem;
                    let span = written.map_or(name.span.clone(), |t| t.span.clone());
                    let templated = o.is_none_or(|o| o.dockerfile.is_none());
                    let for_arch = per_arch_problem.then_some((a.as_str(), templated));
                    self.missing_dockerfile(span, &context_abs, &context_rel, &file, for_arch);
                }
            }
            let mut args: Vec<(String, Template)> = ri
                .args
                .iter()
                .map(|(k, v)| (k.value.clone(), v.clone()))
                .collect();
            let mut check = image_check.clone();
            let mut target = ri.target.as_ref().map(|t| t.value.clone());
            if let Some(o) = o {
                for (k, v) in &o.args {
                    match args.iter_mut().find(|(ak, _)| *ak == k.value) {
                        Some(slot) => slot.1 = v.clone(),
                        None => args.push((k.value.clone(), v.clone())),
                    }
                }
                // An arch's verify table replaces the image's (its command and
                // expect go together), over the file's [verify].
                let v = &o.verify;
                if v.command.is_some() || v.expect.is_some() || v.entrypoint.is_some() {
                    check = self.verify_check(v, &base_check);
                }
                if let Some(t) = &o.target {
                    target = Some(t.value.clone());
                }
            }
            // A linked Dockerfile is built from the file it names: BuildKit
            // sends the `-f` file to the daemon as the link alone
            // (moby/buildkit#2119: "failed to read dockerfile").
            let rel = linked
                .entry(rel.clone())
                .or_insert_with(|| link_target(self.dir, &rel))
                .clone()
                .unwrap_or(rel);
            per_arch.insert(
                a.clone(),
                ArchBuild {
                    dockerfile: rel,
                    target,
                    args,
                    verify: check,
                },
            );
        }
        let paths = match &ri.paths {
            Some(p) => {
                self.patterns(p, "paths");
                p.iter().map(|s| s.value.clone()).collect()
            }
            None => {
                let ctx = context_rel
                    .to_string_lossy()
                    .trim_start_matches("./")
                    .trim_end_matches('/')
                    .to_string();
                let mut v = vec![if ctx.is_empty() || ctx == "." {
                    "**".to_string()
                } else {
                    format!("{ctx}/**")
                }];
                // Every arch's Dockerfile outside the context is an input too.
                let inside = |f: &Path| ctx.is_empty() || ctx == "." || f.starts_with(&ctx);
                for b in per_arch.values() {
                    let f = lexical(&b.dockerfile);
                    let shown = f.to_string_lossy().into_owned();
                    if !inside(&f) && !v.contains(&shown) {
                        v.push(shown);
                    }
                }
                v
            }
        };
        if !ok {
            return None;
        }
        Some(Image {
            name: name.value.clone(),
            repo,
            repository,
            context: context_rel,
            archs,
            per_arch,
            arch_arg,
            labels: ri
                .labels
                .iter()
                .map(|(k, v)| (k.value.clone(), v.clone()))
                .collect(),
            cache_from: ri.cache_from.clone(),
            secrets,
            paths,
            depends_on: ri.depends_on.iter().map(|d| d.value.clone()).collect(),
            timeout,
            span: ri.span.clone(),
            name_span: name.span.clone(),
        })
    }

    /// An image's build secrets: ids BuildKit accepts, files that exist, and a
    /// builder that can mount them.
    fn secrets(&mut self, raw: &[RawSecret], project: &Project) -> Vec<Secret> {
        let mut out = Vec::new();
        for s in raw {
            if s.id.value.is_empty()
                || !s
                    .id
                    .value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            {
                self.push(
                    Problem::new(
                        "bad-secret",
                        s.id.span.clone(),
                        format!("`{}` is not a valid secret id", s.id.value),
                        "invalid id",
                    )
                    .help("secret ids are letters, digits, `_`, `.` and `-`: `RUN --mount=type=secret,id=npm` reads the secret `npm`"),
                );
                continue;
            }
            let source = if s.kind.value == "env" {
                SecretSource::Env(s.value.value.clone())
            } else {
                let path = self.dir.join(&s.value.value);
                if !path.is_file() {
                    self.push(
                        Problem::new(
                            "missing-secret",
                            s.value.span.clone(),
                            format!("secret `{}`: no file `{}`", s.id.value, s.value.value),
                            "no such file",
                        )
                        .help(format!(
                            "relative paths are relative to the directory of multiarch.toml ({}); `~/` is $HOME",
                            self.dir.display()
                        )),
                    );
                    continue;
                }
                SecretSource::File(path)
            };
            if project.engine == EngineKind::Docker && project.builder == BuilderSetting::Classic {
                self.push(
                    Problem::new(
                        "secret-needs-buildkit",
                        s.span.clone(),
                        format!(
                            "secret `{}` needs BuildKit, and [project] builder = \"classic\"",
                            s.id.value
                        ),
                        "the classic builder cannot mount secrets",
                    )
                    .help(SECRETS_HELP),
                );
                continue;
            }
            out.push(Secret {
                id: s.id.value.clone(),
                source,
                span: s.span.clone(),
            });
        }
        out
    }

    fn check_target(&mut self, t: &Sp<String>) {
        if !is_arg_name_like(&t.value) {
            self.push(
                Problem::new(
                    "bad-target",
                    t.span.clone(),
                    format!("`{}` is not a valid build stage name", t.value),
                    "invalid stage",
                )
                .help("stage names are letters, digits, `_`, `-` and `.`"),
            );
        }
    }

    fn check_args(
        &mut self,
        args: &[(Sp<String>, Template)],
        arch_arg: &str,
        project: &Project,
        allowed: &[&str],
    ) {
        for (k, v) in args {
            if !is_build_arg_name(&k.value) {
                self.push(Problem::new("bad-build-arg", k.span.clone(), format!("`{}` is not a valid build-arg name", k.value), "invalid name").help("build-arg names are letters, digits and `_`, not starting with a digit (what `ARG NAME` accepts)"));
            } else if k.value == arch_arg {
                self.push(
                    Problem::new(
                        "conflict",
                        k.span.clone(),
                        format!(
                            "build arg `{}` is set by multiarch to the arch name",
                            k.value
                        ),
                        "set by multiarch",
                    )
                    .help("remove it, or set `arch_arg` to another name"),
                );
            } else if project.allow_secret_args.contains(&k.value) {
            } else if looks_secret(&k.value) {
                self.push(
                    Problem::new("secret-build-arg", k.span.clone(), format!("build arg `{}` looks like a secret", k.value), "would be stored in the image")
                        .help(format!("build-arg values are recorded in the image history for anyone who pulls it; pass secrets another way, or if this is not a secret add it to [project] allow_secret_args = [\"{}\"]", k.value)),
                );
            } else if let Some(var) = &v.secret_env {
                // The value is a secret whatever the arg's name: it would show in
                // `ps` (argv) and in the image's history.
                self.push(
                    Problem::new("secret-build-arg", v.span.clone(), format!("build arg `{}` holds the value of {var}, a secret", k.value), "a secret's value")
                        .help(format!("build-arg values are in the build's command line and the image history for anyone who pulls it; use a build secret (`secrets = {{ x = {{ env = \"{var}\" }} }}`), or if this is meant add it to [project] allow_secret_args = [\"{}\"]", k.value)),
                );
            }
            self.check_vars(v, allowed, "a build arg", true);
        }
    }

    /// No Dockerfile at `context/file`, with the context's file that is most
    /// likely meant. `arch`: the file is chosen per arch, by the image's templated
    /// `dockerfile` (`templated`) or by a per_arch table.
    fn missing_dockerfile(
        &mut self,
        span: Range<usize>,
        context_abs: &Path,
        context_rel: &Path,
        file: &str,
        arch: Option<(&str, bool)>,
    ) {
        let found: Vec<String> = std::fs::read_dir(context_abs)
            .map(|rd| {
                let mut v: Vec<String> = rd
                    .filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| {
                        n.contains("Dockerfile")
                            || n.contains("dockerfile")
                            || n.ends_with("Containerfile")
                    })
                    .collect();
                v.sort();
                v
            })
            .unwrap_or_default();
        let near = suggest_dockerfile(&found, file, arch.map(|(a, _)| a));
        let help = match (near, arch) {
            (Some(f), Some((a, true))) => format!("did you mean `{f}`? for a file named another way than the template, give {a} its own: [image.per_arch.{a}] dockerfile = \"{f}\""),
            (Some(f), _) => format!("did you mean `{f}`?"),
            (None, Some((a, _))) => format!(
                "`dockerfile` is relative to the context ({}); give {a} its own with [image.per_arch.{a}] dockerfile = \"…\", or leave {a} out of `archs`",
                context_rel.display()
            ),
            (None, None) => format!(
                "`dockerfile` is relative to the context ({}); no Dockerfile there",
                context_rel.display()
            ),
        };
        let rel = context_rel.join(file);
        let (message, label) = match arch {
            Some((a, _)) => (
                format!("no Dockerfile at `{}` for arch {a}", rel.display()),
                format!("not found for {a}"),
            ),
            None => (
                format!("no Dockerfile at `{}`", rel.display()),
                "not found".to_string(),
            ),
        };
        self.push(Problem::new("missing-dockerfile", span, message, label).help(help));
    }

    /// Render every per-arch reference and manifest tag with placeholder git values
    /// and check them against docker's grammar.
    fn check_references(&mut self, project: &Project, tags: &Tags, images: &[Image]) {
        let git = GitValues::placeholder();
        // Rendered and parsed on threads, image by image; judged below in
        // file order (problems and collisions as one loop would find them).
        let rendered = crate::par::in_order(images.len(), 64, |i| {
            let img = &images[i];
            let archs: Vec<(&str, String, Option<String>)> = img
                .archs
                .iter()
                .filter_map(|a| {
                    let arch = self.arches.get(a)?;
                    let vars = Vars {
                        registry: project.registry.as_deref(),
                        repo: &img.repo,
                        name: &img.name,
                        arch: Some(a),
                        platform: Some(&arch.platform),
                        git: &git,
                        images: None,
                    };
                    let r = tags.arch.render(|n| vars.get(n)).ok()?;
                    let invalid = reference::parse(&r).err().map(|e| e.to_string());
                    Some((a.as_str(), r, invalid))
                })
                .collect();
            let vars = Vars {
                registry: project.registry.as_deref(),
                repo: &img.repo,
                name: &img.name,
                arch: None,
                platform: None,
                git: &git,
                images: None,
            };
            // Per manifest tag: what it renders to when that is not a valid tag.
            let bad_tags: Vec<Option<String>> = tags
                .manifest
                .iter()
                .map(|m| {
                    m.tag
                        .render(|n| vars.get(n))
                        .ok()
                        .filter(|t| !is_valid_tag(t))
                })
                .collect();
            (archs, bad_tags)
        });
        let mut reported = BTreeSet::new();
        let mut seen: HashMap<String, (String, String)> = HashMap::new();
        for (img, (archs, bad_tags)) in images.iter().zip(rendered) {
            for (a, r, invalid) in archs {
                if let Some(e) = invalid {
                    if reported.insert((tags.arch.span.start, tags.arch.span.end)) {
                        self.push(
                            Problem::new("bad-reference", tags.arch.span.clone(), format!("renders to `{r}` for image `{}`, arch `{a}`, which is not a valid reference: {e}", img.name), "invalid reference")
                                .help("references are `[registry/]path:tag` with a lowercase path and a tag of [A-Za-z0-9_.-] (at most 128)"),
                        );
                    }
                } else if let Some((i2, a2)) =
                    seen.insert(r.clone(), (img.name.clone(), a.to_string()))
                {
                    // Two arches of one image: already reported as the reference
                    // missing `{arch}`.
                    let explained = i2 == img.name && !names_the_arch(&tags.arch);
                    if !explained && reported.insert((tags.arch.span.start, tags.arch.span.end)) {
                        self.push(
                            Problem::new("reference-collision", tags.arch.span.clone(), format!("`{i2}`/{a2} and `{}`/{a} get the same reference `{r}`", img.name), "not unique")
                                .help("the per-arch reference must differ per image and arch: use {repo} and {arch}"),
                        );
                    }
                }
            }
            for (m, bad) in tags.manifest.iter().zip(bad_tags) {
                let Some(t) = bad else {
                    continue;
                };
                if reported.insert((m.tag.span.start, m.tag.span.end)) {
                    self.push(
                        Problem::new("bad-tag", m.tag.span.clone(), format!("manifest tag renders to `{t}`, which is not a valid tag"), "invalid tag")
                            .help("a tag is [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}; it is only the part after `:`"),
                    );
                }
            }
        }
    }
}

/// The port of a `tcp://` or `ssh://` endpoint when it is not 1–65535.
fn bad_endpoint_port(endpoint: &str) -> Option<&str> {
    let rest = endpoint
        .strip_prefix("tcp://")
        .or_else(|| endpoint.strip_prefix("ssh://"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (_, port) = reference::split_host_port(host_port);
    port.filter(|p| !p.parse::<u16>().is_ok_and(|n| n > 0))
}

/// The repository of the spec in `dir` (resolved): the git work tree holding
/// `dir` (the nearest ancestor with a `.git`), or `dir` itself when there is
/// none.
fn repository_root(dir: &Path) -> PathBuf {
    let root = dir.ancestors().find(|a| a.join(".git").exists());
    root.unwrap_or(dir).to_path_buf()
}

impl Validator<'_> {
    /// Where `rel` (relative to the spec's directory) resolves after symlinks
    /// when that is outside the repository: a pull request's spec must not be
    /// able to copy host files (credentials, `/etc`) into a pushed image. A
    /// path that does not exist is not judged here (it is reported as
    /// missing).
    fn escapes(&self, rel: &Path) -> Option<PathBuf> {
        let real = resolve(self.real_dir, self.dir, rel)?;
        (!real.starts_with(self.root?)).then_some(real)
    }
}

/// The file the symlink `dir/rel` names, relative to `dir`, when `rel` is a
/// link to a file below `dir`.
fn link_target(dir: &Path, rel: &Path) -> Option<PathBuf> {
    let path = dir.join(rel);
    if !std::fs::symlink_metadata(&path)
        .ok()?
        .file_type()
        .is_symlink()
    {
        return None;
    }
    let real = path.canonicalize().ok()?;
    let below = real.strip_prefix(dir.canonicalize().ok()?).ok()?;
    real.is_file().then(|| below.to_path_buf())
}

/// `dir.join(rel)` with its symlinks followed, as `canonicalize` gives it.
/// `real_dir` is `dir` resolved: a path of plain names below it without a
/// symlink is resolved with one `lstat` per name (a thousand images'
/// contexts and Dockerfiles, each a `realpath` of every component, were 3 %
/// of planning); anything else is `canonicalize`d.
fn resolve(real_dir: Option<&Path>, dir: &Path, rel: &Path) -> Option<PathBuf> {
    use std::path::Component;
    let whole = || dir.join(rel).canonicalize().ok();
    let Some(real_dir) = real_dir else {
        return whole();
    };
    let mut real = real_dir.to_path_buf();
    for c in rel.components() {
        let name = match c {
            Component::Normal(name) => name,
            Component::CurDir => continue,
            _ => return whole(),
        };
        real.push(name);
        match std::fs::symlink_metadata(&real) {
            Ok(m) if m.file_type().is_symlink() => return whole(),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    Some(real)
}

fn outside_repository(span: Range<usize>, what: &str, written: &str, real: &Path) -> Problem {
    Problem::new(
        "outside-repository",
        span,
        format!(
            "{what} `{written}` is outside the repository (it resolves to {})",
            real.display()
        ),
        "outside the repository",
    )
    .help("contexts and Dockerfiles must be inside the repository (its git work tree, else the directory of multiarch.toml), after symlinks: a build can copy every file they reach into a pushed image")
}

/// The file of `found` that `file` most likely means: for an arch, the one named
/// for that arch in another way (`Dockerfile.aarch64` for arm64v8); never one
/// named for another arch.
fn suggest_dockerfile<'f>(found: &'f [String], file: &str, arch: Option<&str>) -> Option<&'f str> {
    let arch_of = |f: &str| {
        let name = f.rsplit('/').next().unwrap_or(f);
        name.strip_prefix("Dockerfile.")
            .or_else(|| name.strip_suffix(".Dockerfile"))
            .and_then(arch::builtin_or_alias)
    };
    if let Some(a) = arch {
        if let Some(f) = found.iter().find(|f| arch_of(f) == Some(a)) {
            return Some(f);
        }
    }
    closest(
        file,
        found
            .iter()
            .map(String::as_str)
            .filter(|f| arch.is_none() || arch_of(f).is_none()),
    )
}

/// `app/../docker/Dockerfile` as `docker/Dockerfile`, `./x` as `x`: how git
/// names a changed file, for matching `paths`. Without the file system (a
/// symlinked directory is taken as written).
fn lexical(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.iter().collect()
}

/// Whether a per-arch reference differs per arch by construction.
fn names_the_arch(t: &Template) -> bool {
    ["arch", "platform", "platform_tag"]
        .iter()
        .any(|v| t.uses(v))
        || (t.uses("architecture") && t.uses("variant"))
}

fn glob_error(e: &globset::Error) -> String {
    e.kind().to_string()
}

pub(crate) fn default_arch_template() -> Template {
    use crate::spec::template::Segment;
    Template {
        segments: vec![
            Segment::Var {
                name: "repo".into(),
                span: 0..0,
            },
            Segment::Literal("/".into()),
            Segment::Var {
                name: "arch".into(),
                span: 0..0,
            },
            Segment::Literal(":".into()),
            Segment::Var {
                name: "sha".into(),
                span: 0..0,
            },
        ],
        span: 0..0,
        secret_env: None,
    }
}

fn literal_template(t: &str) -> Template {
    use crate::spec::template::Segment;
    match t.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
        Some(v) => Template {
            segments: vec![Segment::Var {
                name: v.into(),
                span: 0..0,
            }],
            span: 0..0,
            secret_env: None,
        },
        None => Template::literal(t, 0..0),
    }
}

fn is_image_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(x) if x.is_ascii_lowercase() || x.is_ascii_digit())
        && c.all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || matches!(x, '.' | '_' | '-'))
        && s.len() <= 128
}

fn is_arch_name(s: &str) -> bool {
    is_image_name(s)
}

pub(crate) fn is_build_arg_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(x) if x == '_' || x.is_ascii_alphabetic())
        && c.all(|x| x == '_' || x.is_ascii_alphanumeric())
}

fn is_arg_name_like(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(x) if x.is_ascii_alphanumeric())
        && c.all(|x| x.is_ascii_alphanumeric() || matches!(x, '_' | '-' | '.'))
}

pub use crate::spec::template::looks_secret;

/// What [`Validator::choice`] says about a word that is not one of the choices.
struct Choice {
    code: &'static str,
    /// What the setting is, for the message: "unknown {what} `x`".
    what: &'static str,
    label: &'static str,
    /// The help when no choice is close to what was written.
    help: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{opt, rows};

    #[test]
    fn endpoint_ports_are_checked() {
        let cases = r"
            tcp://127.0.0.1:70000  70000
            ssh://pi@pi-1:0        0
            tcp://[::1]:99999/x    99999
            tcp://host:2376        -
            ssh://pi@pi-1          -
            unix:///run/x.sock     -
        ";
        for row in rows(cases, 2) {
            assert_eq!(bad_endpoint_port(row[0]), opt(row[1]), "{}", row[0]);
        }
    }

    #[test]
    fn secret_names() {
        for name in ["NPM_TOKEN", "DB_PASSWORD", "API_KEY", "GITHUB_TOKEN"] {
            assert!(looks_secret(name), "{name}");
        }
        for name in ["NODE_VERSION", "KEYBOARD_LAYOUT", "MONKEY"] {
            assert!(!looks_secret(name), "{name}");
        }
    }

    #[test]
    fn paths_resolve_as_canonicalize_resolves_them() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("repo");
        std::fs::create_dir_all(dir.join("app/sub")).unwrap();
        std::fs::write(dir.join("app/Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::create_dir_all(tmp.path().join("outside")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("outside"), dir.join("app/link")).unwrap();
        std::os::unix::fs::symlink("app", dir.join("alias")).unwrap();
        let real = dir.canonicalize().unwrap();
        for rel in [
            ".",
            "app",
            "./app/Dockerfile",
            "app/sub/../Dockerfile",
            "app/link",
            "alias/Dockerfile",
            "app/missing",
            "app/Dockerfile/x",
            "/etc",
            "../outside",
        ] {
            let rel = Path::new(rel);
            assert_eq!(
                resolve(Some(&real), &dir, rel),
                dir.join(rel).canonicalize().ok(),
                "{}",
                rel.display()
            );
        }
    }

    #[test]
    fn lexical_paths() {
        assert_eq!(
            lexical(Path::new("app/../docker/Dockerfile.amd64")),
            PathBuf::from("docker/Dockerfile.amd64")
        );
        assert_eq!(
            lexical(Path::new("./app/./Dockerfile")),
            PathBuf::from("app/Dockerfile")
        );
        assert_eq!(
            lexical(Path::new("../x/Dockerfile")),
            PathBuf::from("../x/Dockerfile")
        );
    }

    #[test]
    fn names() {
        assert!(is_image_name("api"));
        assert!(is_image_name("my-app_2.0"));
        assert!(!is_image_name("Api"));
        assert!(!is_image_name("-api"));
        assert!(is_build_arg_name("NODE_VERSION"));
        assert!(!is_build_arg_name("1X"));
        assert!(!is_build_arg_name("A-B"));
    }
}
