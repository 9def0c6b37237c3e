//! A generated monorepo for the benchmarks: `images` images in `depends_on`
//! chains of `chain` (each image builds on the previous one for the same arch
//! through `BASE = "{image.PREV}"`), every image on `arches`, a Dockerfile per
//! context. Shared by benches/plan.rs, benches/stages.rs and the xtask's
//! planning and scheduler benchmarks (included with `#[path]`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use multiarch::plan::Host;
use multiarch::{GitContext, PlanOptions};

/// The 8 arches of the planning benchmarks.
pub const ARCHES: &[&str] = &[
    "amd64", "arm32v5", "arm32v6", "arm32v7", "arm64v8", "i386", "ppc64le", "s390x",
];

/// The list tags of the planning benchmarks: three per image on main.
pub const THREE_TAGS: &str = r#"["{sha}", "{branch}", { tag = "latest", branches = ["main"] }]"#;

/// The spec text; `manifest` is the TOML array of list tags.
pub fn spec_text(images: usize, arches: &[&str], chain: usize, manifest: &str) -> String {
    let quoted: Vec<String> = arches.iter().map(|a| format!("\"{a}\"")).collect();
    let mut t = format!(
        "version = 1\n\n[project]\nregistry = \"127.0.0.1:5000/acme\"\n\n\
         [archs]\ndefault = [{}]\n\n\
         [tags]\narch = \"{{repo}}/{{arch}}:{{sha}}\"\nmanifest = {manifest}\n",
        quoted.join(", ")
    );
    for i in 0..images {
        t.push_str(&format!(
            "\n[[image]]\nname = \"img-{i:04}\"\ncontext = \"images/img-{i:04}\"\n"
        ));
        if i % chain != 0 {
            let p = i - 1;
            t.push_str(&format!(
                "depends_on = [\"img-{p:04}\"]\nargs = {{ BASE = \"{{image.img-{p:04}}}\" }}\n"
            ));
        }
    }
    t
}

/// Write the spec and the contexts under `dir` (replacing what is there);
/// the spec's path.
pub fn write(
    dir: &Path,
    images: usize,
    arches: &[&str],
    chain: usize,
    manifest: &str,
) -> std::io::Result<PathBuf> {
    let _ = std::fs::remove_dir_all(dir);
    for i in 0..images {
        let ctx = dir.join(format!("images/img-{i:04}"));
        std::fs::create_dir_all(&ctx)?;
        std::fs::write(ctx.join("Dockerfile"), "ARG BASE\nFROM ${BASE}\n")?;
    }
    let path = dir.join("multiarch.toml");
    std::fs::write(&path, spec_text(images, arches, chain, manifest))?;
    Ok(path)
}

/// A build of `main` at `sha` on an amd64 host: the context and options every
/// benchmark plans with.
pub fn main_at(sha: &str) -> (GitContext, PlanOptions) {
    let ctx = GitContext {
        branch: Some("main".into()),
        sha: Some(sha.into()),
        ..GitContext::default()
    };
    let opts = PlanOptions {
        host: Host::fixed("linux/amd64"),
        ..PlanOptions::default()
    };
    (ctx, opts)
}
