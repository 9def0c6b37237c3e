//! The raw shape of multiarch.toml: every value with its span, read from the
//! spanned TOML tree by hand so that *all* unknown keys and wrong types are reported
//! (serde's `deny_unknown_fields` stops at the first one).

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::template::{self, Braces, Location, Template};
use crate::diagnostic::{did_you_mean, Problem};
use crate::environment::Environment;

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sp<T> {
    pub value: T,
    pub span: Range<usize>,
}

impl<T> Sp<T> {
    pub fn new(value: T, span: Range<usize>) -> Self {
        Sp { value, span }
    }
}

#[derive(Debug, Default)]
pub struct RawFile {
    pub version: Option<Sp<i64>>,
    pub project: RawProject,
    pub default_archs: Option<Sp<Vec<Sp<String>>>>,
    pub arch_defs: Vec<RawArchDef>,
    pub tags_arch: Option<Template>,
    pub tags_manifest: Option<Sp<Vec<RawManifestTag>>>,
    pub publish: RawPublish,
    pub qemu_setup: Option<Sp<Vec<Sp<String>>>>,
    pub verify: RawVerify,
    pub ci: RawCi,
    pub images: Vec<RawImage>,
    pub images_span: Option<Range<usize>>,
}

#[derive(Debug, Default)]
pub struct RawProject {
    pub registry: Option<Sp<String>>,
    pub engine: Option<Sp<String>>,
    pub jobs: Option<Sp<i64>>,
    pub timeout: Option<Sp<String>>,
    pub retries: Option<Sp<i64>>,
    pub insecure_registries: Vec<Sp<String>>,
    pub allow_secret_args: Vec<Sp<String>>,
    pub builder: Option<Sp<String>>,
}

/// `secrets = { ID = { env = "NAME" } | { file = "PATH" } }`: one entry.
#[derive(Debug, Clone)]
pub struct RawSecret {
    pub id: Sp<String>,
    /// `env` or `file`.
    pub kind: Sp<String>,
    /// The variable's name, or the path (`~/` expanded with `$HOME`).
    pub value: Sp<String>,
    pub span: Range<usize>,
}

#[derive(Debug)]
pub struct RawArchDef {
    pub name: Sp<String>,
    pub platform: Option<Sp<String>>,
    pub uname: Option<Vec<Sp<String>>>,
    pub builder: Option<Sp<String>>,
    pub docker_context: Option<Sp<String>>,
    pub runner_tags: Vec<Sp<String>>,
    pub span: Range<usize>,
}

#[derive(Debug)]
pub struct RawManifestTag {
    pub tag: Template,
    pub branches: Option<Vec<Sp<String>>>,
    pub when: Option<Sp<String>>,
    pub span: Range<usize>,
}

#[derive(Debug, Default)]
pub struct RawPublish {
    pub branches: Option<Vec<Sp<String>>>,
    pub tags: Option<Vec<Sp<String>>>,
    pub push: Option<Sp<String>>,
    pub atomic: Option<Sp<bool>>,
    pub index: Option<Sp<String>>,
}

#[derive(Debug, Default)]
pub struct RawVerify {
    pub enabled: Option<Sp<bool>>,
    pub command: Option<Sp<Vec<Sp<String>>>>,
    pub before_push: Option<Sp<bool>>,
    pub entrypoint: Option<Sp<bool>>,
}

/// An image's (or one arch's) `verify` table.
#[derive(Debug, Default, Clone)]
pub struct RawImageVerify {
    pub command: Option<Sp<Vec<Sp<String>>>>,
    pub expect: Option<Sp<String>>,
    pub entrypoint: Option<Sp<bool>>,
}

/// `[image.per_arch.ARCH]`: what one arch of an image builds differently.
#[derive(Debug)]
pub struct RawPerArch {
    /// The arch as written (a name or a platform string).
    pub arch: Sp<String>,
    pub span: Range<usize>,
    pub dockerfile: Option<Template>,
    pub target: Option<Sp<String>>,
    pub args: Vec<(Sp<String>, Template)>,
    pub verify: RawImageVerify,
}

/// `[ci]`: what `multiarch ci gitlab|github` writes around each job.
#[derive(Debug, Default)]
pub struct RawCi {
    pub install: Option<Sp<String>>,
    pub image: Option<Sp<String>>,
}

#[derive(Debug)]
pub struct RawImage {
    pub span: Range<usize>,
    pub name: Option<Sp<String>>,
    pub repository: Option<Sp<String>>,
    pub context: Option<Sp<String>>,
    /// Templated with the arch's variables: `Dockerfile.{arch}`.
    pub dockerfile: Option<Template>,
    pub target: Option<Sp<String>>,
    pub archs: Option<Sp<Vec<Sp<String>>>>,
    pub args: Vec<(Sp<String>, Template)>,
    pub arch_arg: Option<Sp<String>>,
    pub labels: Vec<(Sp<String>, Template)>,
    pub cache_from: Vec<Template>,
    pub secrets: Vec<RawSecret>,
    pub paths: Option<Vec<Sp<String>>>,
    pub depends_on: Vec<Sp<String>>,
    pub timeout: Option<Sp<String>>,
    pub verify: RawImageVerify,
    pub per_arch: Vec<RawPerArch>,
}

type Node<'i> = Spanned<DeValue<'i>>;

pub(crate) struct Reader<'a> {
    src: &'a str,
    env: &'a Environment,
    pub problems: Vec<Problem>,
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

impl<'a> Reader<'a> {
    pub fn new(src: &'a str, env: &'a Environment) -> Self {
        Reader {
            src,
            env,
            problems: Vec::new(),
        }
    }

    fn wrong_type(&mut self, key: &str, node: &Node<'_>, expected: &str, example: &str) {
        self.problems.push(
            Problem::new(
                "wrong-type",
                node.span(),
                format!(
                    "`{key}` must be {expected}, not {}",
                    type_name(node.get_ref())
                ),
                format!("expected {expected}"),
            )
            .help(format!("for example: {example}")),
        );
    }

    /// Report keys of `table` not in `allowed`.
    fn known_keys(&mut self, table: &DeTable<'_>, allowed: &[&str], section: &str) {
        for (k, _) in table.iter() {
            let key: &str = k.get_ref();
            if !allowed.contains(&key) {
                let help = did_you_mean(key, allowed.iter().copied())
                    .unwrap_or_else(|| format!("{section} accepts: {}", allowed.join(", ")));
                self.problems.push(
                    Problem::new(
                        "unknown-key",
                        k.span(),
                        format!("unknown key `{key}` in {section}"),
                        "unknown key",
                    )
                    .help(help),
                );
            }
        }
    }

    fn table<'n, 'i>(
        &mut self,
        key: &str,
        node: &'n Node<'i>,
        example: &str,
    ) -> Option<&'n DeTable<'i>> {
        match node.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.wrong_type(key, node, "a table", example);
                None
            }
        }
    }

    fn location(&self, node: &Node<'_>, value: &str) -> Location {
        let whole = node.span();
        let raw = self.src.get(whole.clone()).unwrap_or("");
        let content_start = ["\"\"\"", "'''", "\"", "'"]
            .iter()
            .find(|q| raw.starts_with(**q))
            .and_then(|q| {
                let inner_start = whole.start + q.len();
                let inner = self.src.get(inner_start..inner_start + value.len())?;
                (inner == value).then_some(inner_start)
            });
        Location {
            whole,
            content_start,
        }
    }

    /// A string with `{var}` templates.
    fn template(&mut self, key: &str, node: &Node<'_>, example: &str) -> Option<Template> {
        self.string_with(key, node, example, Braces::Variables)
    }

    fn string_with(
        &mut self,
        key: &str,
        node: &Node<'_>,
        example: &str,
        braces: Braces,
    ) -> Option<Template> {
        match node.get_ref() {
            DeValue::String(s) => {
                let loc = self.location(node, s);
                match template::parse(s, &loc, self.env, braces) {
                    Ok(t) => Some(t),
                    Err(p) => {
                        self.problems.extend(p);
                        None
                    }
                }
            }
            _ => {
                self.wrong_type(key, node, "a string", example);
                None
            }
        }
    }

    /// A plain string: environment expanded, braces literal.
    fn string(&mut self, key: &str, node: &Node<'_>, example: &str) -> Option<Sp<String>> {
        let t = self.string_with(key, node, example, Braces::Literal)?;
        let text = t.as_literal().unwrap_or_default();
        Some(Sp::new(text, node.span()))
    }

    fn int(&mut self, key: &str, node: &Node<'_>, example: &str) -> Option<Sp<i64>> {
        match node.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(v) => Some(Sp::new(v, node.span())),
                Err(_) => {
                    self.problems.push(Problem::new(
                        "bad-integer",
                        node.span(),
                        format!("`{key}` is out of range"),
                        "not a 64-bit integer",
                    ));
                    None
                }
            },
            _ => {
                self.wrong_type(key, node, "an integer", example);
                None
            }
        }
    }

    fn bool(&mut self, key: &str, node: &Node<'_>, example: &str) -> Option<Sp<bool>> {
        match node.get_ref() {
            DeValue::Boolean(b) => Some(Sp::new(*b, node.span())),
            _ => {
                self.wrong_type(key, node, "a boolean", example);
                None
            }
        }
    }

    fn array<'n, 'i>(
        &mut self,
        key: &str,
        node: &'n Node<'i>,
        example: &str,
    ) -> Option<&'n [Node<'i>]> {
        match node.get_ref() {
            DeValue::Array(a) => Some(a.as_ref()),
            _ => {
                self.wrong_type(key, node, "an array", example);
                None
            }
        }
    }

    fn strings(
        &mut self,
        key: &str,
        node: &Node<'_>,
        example: &str,
    ) -> Option<Sp<Vec<Sp<String>>>> {
        let items = self.array(key, node, example)?;
        let mut out = Vec::new();
        for item in items {
            if let Some(s) = self.string(key, item, example) {
                out.push(s);
            }
        }
        Some(Sp::new(out, node.span()))
    }

    fn templates(&mut self, key: &str, node: &Node<'_>, example: &str) -> Vec<Template> {
        let Some(items) = self.array(key, node, example) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            if let Some(t) = self.template(key, item, example) {
                out.push(t);
            }
        }
        out
    }

    fn string_map(
        &mut self,
        key: &str,
        node: &Node<'_>,
        example: &str,
    ) -> Vec<(Sp<String>, Template)> {
        let Some(t) = self.table(key, node, example) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in t.iter() {
            let name = Sp::new(k.get_ref().to_string(), k.span());
            if let Some(val) = self.template(&format!("{key}.{}", k.get_ref()), v, example) {
                out.push((name, val));
            }
        }
        out
    }

    pub fn read(&mut self, root: &DeTable<'_>) -> RawFile {
        let mut f = RawFile::default();
        self.known_keys(
            root,
            &[
                "version", "project", "archs", "arch", "tags", "publish", "qemu", "verify", "ci",
                "image",
            ],
            "multiarch.toml",
        );
        for (k, v) in root.iter() {
            match k.get_ref().as_ref() {
                "version" => f.version = self.int("version", v, "version = 1"),
                "project" => self.project(v, &mut f.project),
                "archs" => {
                    if let Some(t) =
                        self.table("archs", v, "[archs] default = [\"amd64\", \"arm64v8\"]")
                    {
                        self.known_keys(t, &["default"], "[archs]");
                        if let Some(d) = t.get("default") {
                            f.default_archs = self.strings(
                                "archs.default",
                                d,
                                "default = [\"amd64\", \"arm64v8\"]",
                            );
                        }
                    }
                }
                "arch" => {
                    if let Some(t) = self.table("arch", v, "[arch.pi] platform = \"linux/arm/v7\"")
                    {
                        for (name, def) in t.iter() {
                            if let Some(d) = self.arch_def(name, def) {
                                f.arch_defs.push(d);
                            }
                        }
                    }
                }
                "tags" => {
                    if let Some(t) = self.table("tags", v, "[tags] arch = \"{repo}/{arch}:{sha}\"")
                    {
                        self.known_keys(t, &["arch", "manifest"], "[tags]");
                        if let Some(a) = t.get("arch") {
                            f.tags_arch =
                                self.template("tags.arch", a, "arch = \"{repo}/{arch}:{sha}\"");
                        }
                        if let Some(m) = t.get("manifest") {
                            f.tags_manifest = self.manifest_tags(m);
                        }
                    }
                }
                "publish" => self.publish(v, &mut f.publish),
                "qemu" => {
                    if let Some(t) = self.table(
                        "qemu",
                        v,
                        "[qemu] setup = [\"update-binfmts\", \"--enable\"]",
                    ) {
                        self.known_keys(t, &["setup"], "[qemu]");
                        if let Some(s) = t.get("setup") {
                            f.qemu_setup = self.strings(
                                "qemu.setup",
                                s,
                                "setup = [\"update-binfmts\", \"--enable\"]",
                            );
                        }
                    }
                }
                "verify" => self.verify(v, &mut f.verify),
                "ci" => self.ci(v, &mut f.ci),
                "image" => {
                    f.images_span = Some(v.span());
                    match v.get_ref() {
                        DeValue::Array(items) => {
                            for item in items.iter() {
                                if let Some(img) = self.image(item) {
                                    f.images.push(img);
                                }
                            }
                        }
                        _ => self.wrong_type(
                            "image",
                            v,
                            "an array of tables",
                            "[[image]] name = \"api\"",
                        ),
                    }
                }
                _ => {}
            }
        }
        f
    }

    fn project(&mut self, node: &Node<'_>, p: &mut RawProject) {
        let Some(t) = self.table(
            "project",
            node,
            "[project] registry = \"127.0.0.1:5000/acme\"",
        ) else {
            return;
        };
        self.known_keys(
            t,
            &[
                "registry",
                "engine",
                "jobs",
                "timeout",
                "retries",
                "insecure_registries",
                "allow_secret_args",
                "builder",
            ],
            "[project]",
        );
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "registry" => {
                    p.registry =
                        self.string("project.registry", v, "registry = \"127.0.0.1:5000/acme\"")
                }
                "engine" => p.engine = self.string("project.engine", v, "engine = \"docker\""),
                "builder" => {
                    p.builder = self.string("project.builder", v, "builder = \"buildkit\"")
                }
                "jobs" => p.jobs = self.int("project.jobs", v, "jobs = 4"),
                "timeout" => p.timeout = self.string("project.timeout", v, "timeout = \"30m\""),
                "retries" => p.retries = self.int("project.retries", v, "retries = 3"),
                "insecure_registries" => {
                    if let Some(l) = self.strings(
                        "project.insecure_registries",
                        v,
                        "insecure_registries = [\"registry.lan:5000\"]",
                    ) {
                        p.insecure_registries = l.value;
                    }
                }
                "allow_secret_args" => {
                    if let Some(l) = self.strings(
                        "project.allow_secret_args",
                        v,
                        "allow_secret_args = [\"NPM_TOKEN\"]",
                    ) {
                        p.allow_secret_args = l.value;
                    }
                }
                _ => {}
            }
        }
    }

    fn arch_def(
        &mut self,
        name: &Spanned<std::borrow::Cow<'_, str>>,
        node: &Node<'_>,
    ) -> Option<RawArchDef> {
        let t = self.table(
            &format!("arch.{}", name.get_ref()),
            node,
            "[arch.pi] platform = \"linux/arm/v7\"",
        )?;
        self.known_keys(
            t,
            &[
                "platform",
                "uname",
                "builder",
                "docker_context",
                "runner_tags",
            ],
            &format!("[arch.{}]", name.get_ref()),
        );
        let mut d = RawArchDef {
            name: Sp::new(name.get_ref().to_string(), name.span()),
            platform: None,
            uname: None,
            builder: None,
            docker_context: None,
            runner_tags: Vec::new(),
            span: node.span(),
        };
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "platform" => {
                    d.platform = self.string("platform", v, "platform = \"linux/arm/v7\"")
                }
                "uname" => {
                    d.uname = self
                        .strings("uname", v, "uname = [\"armv7l\"]")
                        .map(|s| s.value)
                }
                "builder" => d.builder = self.string("builder", v, "builder = \"ssh://pi@pi-1\""),
                "docker_context" => {
                    d.docker_context = self.string("docker_context", v, "docker_context = \"pi\"")
                }
                "runner_tags" => {
                    if let Some(l) = self.strings("runner_tags", v, "runner_tags = [\"arm64\"]") {
                        d.runner_tags = l.value;
                    }
                }
                _ => {}
            }
        }
        Some(d)
    }

    fn manifest_tags(&mut self, node: &Node<'_>) -> Option<Sp<Vec<RawManifestTag>>> {
        const EX: &str = "manifest = [\"{sha}\", { tag = \"latest\", branches = [\"main\"] }]";
        let items = self.array("tags.manifest", node, EX)?;
        let mut out = Vec::new();
        for item in items {
            match item.get_ref() {
                DeValue::String(_) => {
                    if let Some(t) = self.template("tags.manifest", item, EX) {
                        out.push(RawManifestTag {
                            tag: t,
                            branches: None,
                            when: None,
                            span: item.span(),
                        });
                    }
                }
                DeValue::Table(t) => {
                    self.known_keys(t, &["tag", "branches", "when"], "a manifest tag");
                    let mut tag = None;
                    let mut branches = None;
                    let mut when = None;
                    for (k, v) in t.iter() {
                        match k.get_ref().as_ref() {
                            "tag" => tag = self.template("tag", v, EX),
                            "branches" => {
                                branches = self
                                    .strings("branches", v, "branches = [\"main\"]")
                                    .map(|s| s.value)
                            }
                            "when" => when = self.string("when", v, "when = \"git-tag\""),
                            _ => {}
                        }
                    }
                    match tag {
                        Some(tag) => out.push(RawManifestTag {
                            tag,
                            branches,
                            when,
                            span: item.span(),
                        }),
                        None if !t.contains_key("tag") => self.problems.push(
                            Problem::new(
                                "missing-key",
                                item.span(),
                                "a manifest tag table needs `tag`",
                                "no `tag` here",
                            )
                            .help("for example: { tag = \"latest\", branches = [\"main\"] }"),
                        ),
                        None => {}
                    }
                }
                _ => self.wrong_type("tags.manifest", item, "a string or a table", EX),
            }
        }
        Some(Sp::new(out, node.span()))
    }

    fn publish(&mut self, node: &Node<'_>, p: &mut RawPublish) {
        let Some(t) = self.table("publish", node, "[publish] branches = [\"main\"]") else {
            return;
        };
        self.known_keys(
            t,
            &["branches", "tags", "push", "atomic", "index"],
            "[publish]",
        );
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "branches" => {
                    p.branches = self
                        .strings(
                            "publish.branches",
                            v,
                            "branches = [\"main\", \"release/**\"]",
                        )
                        .map(|s| s.value)
                }
                "tags" => {
                    p.tags = self
                        .strings("publish.tags", v, "tags = [\"v*\"]")
                        .map(|s| s.value)
                }
                "push" => p.push = self.string("publish.push", v, "push = \"always\""),
                "atomic" => p.atomic = self.bool("publish.atomic", v, "atomic = true"),
                "index" => p.index = self.string("publish.index", v, "index = \"oci\""),
                _ => {}
            }
        }
    }

    fn verify(&mut self, node: &Node<'_>, p: &mut RawVerify) {
        let Some(t) = self.table("verify", node, "[verify] command = [\"uname\", \"-m\"]") else {
            return;
        };
        self.known_keys(
            t,
            &["enabled", "command", "before_push", "entrypoint"],
            "[verify]",
        );
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "enabled" => p.enabled = self.bool("verify.enabled", v, "enabled = true"),
                "command" => {
                    p.command = self.strings("verify.command", v, "command = [\"uname\", \"-m\"]")
                }
                "before_push" => {
                    p.before_push = self.bool("verify.before_push", v, "before_push = true")
                }
                "entrypoint" => {
                    p.entrypoint = self.bool("verify.entrypoint", v, "entrypoint = true")
                }
                _ => {}
            }
        }
    }

    fn ci(&mut self, node: &Node<'_>, c: &mut RawCi) {
        let example = "[ci] install = \"cargo install --locked multiarch\"";
        let Some(t) = self.table("ci", node, example) else {
            return;
        };
        self.known_keys(t, &["install", "image"], "[ci]");
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "install" => {
                    c.install = self.string(
                        "ci.install",
                        v,
                        "install = \"cargo install --locked multiarch\"",
                    )
                }
                "image" => c.image = self.string("ci.image", v, "image = \"docker:29\""),
                _ => {}
            }
        }
    }

    fn image(&mut self, node: &Node<'_>) -> Option<RawImage> {
        let t = self.table("image", node, "[[image]] name = \"api\"")?;
        self.known_keys(
            t,
            &[
                "name",
                "repository",
                "context",
                "dockerfile",
                "target",
                "archs",
                "args",
                "arch_arg",
                "labels",
                "cache_from",
                "secrets",
                "paths",
                "depends_on",
                "timeout",
                "verify",
                "per_arch",
            ],
            "[[image]]",
        );
        let mut img = RawImage {
            span: node.span(),
            name: None,
            repository: None,
            context: None,
            dockerfile: None,
            target: None,
            archs: None,
            args: Vec::new(),
            arch_arg: None,
            labels: Vec::new(),
            cache_from: Vec::new(),
            secrets: Vec::new(),
            paths: None,
            depends_on: Vec::new(),
            timeout: None,
            verify: RawImageVerify::default(),
            per_arch: Vec::new(),
        };
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "name" => img.name = self.string("name", v, "name = \"api\""),
                "repository" => {
                    img.repository = self.string("repository", v, "repository = \"acme/api\"")
                }
                "context" => img.context = self.string("context", v, "context = \"services/api\""),
                "dockerfile" => {
                    img.dockerfile =
                        self.template("dockerfile", v, "dockerfile = \"Dockerfile.{arch}\"")
                }
                "target" => img.target = self.string("target", v, "target = \"runtime\""),
                "archs" => img.archs = self.strings("archs", v, "archs = [\"amd64\", \"arm64v8\"]"),
                "args" => img.args = self.string_map("args", v, "args = { NODE_VERSION = \"12\" }"),
                "arch_arg" => img.arch_arg = self.string("arch_arg", v, "arch_arg = \"ARCH\""),
                "labels" => {
                    img.labels = self.string_map(
                        "labels",
                        v,
                        "labels = { \"org.opencontainers.image.vendor\" = \"Acme\" }",
                    )
                }
                "cache_from" => {
                    img.cache_from =
                        self.templates("cache_from", v, "cache_from = [\"{repo}/{arch}:latest\"]")
                }
                "secrets" => img.secrets = self.secrets(v),
                "paths" => {
                    img.paths = self
                        .strings("paths", v, "paths = [\"services/api/**\"]")
                        .map(|s| s.value)
                }
                "depends_on" => {
                    if let Some(l) = self.strings("depends_on", v, "depends_on = [\"base\"]") {
                        img.depends_on = l.value;
                    }
                }
                "timeout" => img.timeout = self.string("timeout", v, "timeout = \"1h\""),
                "verify" => img.verify = self.image_verify(v, "an image's verify"),
                "per_arch" => {
                    const EX: &str = "[image.per_arch.arm32v7] dockerfile = \"Dockerfile.armhf\"";
                    if let Some(pt) = self.table("per_arch", v, EX) {
                        for (arch, node) in pt.iter() {
                            if let Some(o) = self.per_arch(arch, node) {
                                img.per_arch.push(o);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Some(img)
    }

    /// `secrets = { npm = { env = "NPM_TOKEN" }, netrc = { file = "~/.netrc" } }`.
    /// An `env` source must be set now: the build needs it, as `${NAME}` does.
    fn secrets(&mut self, node: &Node<'_>) -> Vec<RawSecret> {
        const EX: &str =
            "secrets = { npm = { env = \"NPM_TOKEN\" }, netrc = { file = \"~/.netrc\" } }";
        let mut out = Vec::new();
        let Some(t) = self.table("secrets", node, EX) else {
            return out;
        };
        for (id, v) in t.iter() {
            let Some(st) = self.table(&format!("secrets.{}", id.get_ref()), v, EX) else {
                continue;
            };
            let entries: Vec<_> = st.iter().collect();
            let [(kind, value)] = entries.as_slice() else {
                self.problems.push(
                    Problem::new(
                        "bad-secret",
                        v.span(),
                        format!("secret `{}` needs exactly one source", id.get_ref()),
                        "one of `env` or `file`",
                    )
                    .help("for example: npm = { env = \"NPM_TOKEN\" } or netrc = { file = \"~/.netrc\" }"),
                );
                continue;
            };
            let k: &str = kind.get_ref();
            if k != "env" && k != "file" {
                self.problems.push(
                    Problem::new(
                        "unknown-secret-source",
                        kind.span(),
                        format!("unknown secret source `{k}`"),
                        "not a source",
                    )
                    .help(did_you_mean(k, ["env", "file"]).unwrap_or_else(
                        || "a secret comes from `env = \"NAME\"` or `file = \"PATH\"`".into(),
                    )),
                );
                continue;
            }
            let Some(mut val) = self.string(&format!("secrets.{}.{k}", id.get_ref()), value, EX)
            else {
                continue;
            };
            if k == "env" && self.env.get(&val.value).is_none() {
                self.problems.push(
                    Problem::new(
                        "missing-secret",
                        val.span.clone(),
                        format!(
                            "secret `{}` comes from ${}, which is not set",
                            id.get_ref(),
                            val.value
                        ),
                        "not set",
                    )
                    .help(format!(
                        "export {} before running multiarch (in CI: a masked variable)",
                        val.value
                    )),
                );
                continue;
            }
            if k == "file" {
                if let (Some(rest), Some(home)) =
                    (val.value.strip_prefix("~/"), self.env.get("HOME"))
                {
                    val.value = format!("{}/{rest}", home.trim_end_matches('/'));
                }
            }
            out.push(RawSecret {
                id: Sp::new(id.get_ref().to_string(), id.span()),
                kind: Sp::new(k.to_string(), kind.span()),
                value: val,
                span: id.span().start..v.span().end,
            });
        }
        out
    }

    /// `verify = { command = [...], expect = "...", entrypoint = true }` of an
    /// image or of one of its arches.
    fn image_verify(&mut self, node: &Node<'_>, section: &str) -> RawImageVerify {
        const EX: &str = "verify = { command = [\"/app\", \"--version\"], expect = \"api 1.\" }";
        let mut out = RawImageVerify::default();
        let Some(vt) = self.table("verify", node, EX) else {
            return out;
        };
        self.known_keys(vt, &["command", "expect", "entrypoint"], section);
        for (vk, vv) in vt.iter() {
            match vk.get_ref().as_ref() {
                "command" => out.command = self.strings("verify.command", vv, EX),
                "expect" => out.expect = self.string("verify.expect", vv, EX),
                "entrypoint" => {
                    out.entrypoint = self.bool("verify.entrypoint", vv, "entrypoint = true")
                }
                _ => {}
            }
        }
        out
    }

    fn per_arch(
        &mut self,
        arch: &Spanned<std::borrow::Cow<'_, str>>,
        node: &Node<'_>,
    ) -> Option<RawPerArch> {
        let section = format!("[image.per_arch.{}]", arch.get_ref());
        let t = self.table(
            &format!("per_arch.{}", arch.get_ref()),
            node,
            "[image.per_arch.arm32v7] dockerfile = \"Dockerfile.armhf\"",
        )?;
        self.known_keys(t, &["dockerfile", "target", "args", "verify"], &section);
        let mut o = RawPerArch {
            arch: Sp::new(arch.get_ref().to_string(), arch.span()),
            span: node.span(),
            dockerfile: None,
            target: None,
            args: Vec::new(),
            verify: RawImageVerify::default(),
        };
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "dockerfile" => {
                    o.dockerfile =
                        self.template("dockerfile", v, "dockerfile = \"Dockerfile.armhf\"")
                }
                "target" => o.target = self.string("target", v, "target = \"runtime\""),
                "args" => o.args = self.string_map("args", v, "args = { GOARM = \"7\" }"),
                "verify" => o.verify = self.image_verify(v, &format!("the verify of {section}")),
                _ => {}
            }
        }
        Some(o)
    }
}
