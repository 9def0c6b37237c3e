//! `cargo xtask bench buildkit`: what BuildKit buys, on the engine.
//!
//! - Cross-compiled vs emulated: the same CPU-bound shell loop for amd64 +
//!   arm32v7 + arm64v8, once in a `FROM --platform=$BUILDPLATFORM` stage (native)
//!   and once in the target stage (under qemu for the arm arches), each through
//!   `multiarch run` (`-j 1`, so each build's time is its own): the ratio of the
//!   totals, and each arch's emulation tax (its emulated build over its
//!   cross-compiled one).
//! - Cold vs registry-cached: the emulated image rebuilt after `docker builder
//!   prune -af` and removing its local images, without and with `cache_from` its
//!   last published list: the ratio, and whether the loop's step was `CACHED`.
//!
//! The project is written into target/multiarch-env/bench-buildkit, on the busybox staged in
//! examples/busybox/rootfs (nothing from Docker Hub). `--quick` runs a short loop.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use multiarch::context::{DockerCli, ALTERNATIVE_DOCKERS};
use multiarch::report::{Reporter, RunEvent};
use multiarch::spec::{BuildMode, BuilderSetting};
use multiarch::{Environment, GitContext, Plan, PlanOptions, RunOptions, Spec, StepKind};

use crate::Result;

const ARCHS: [&str; 3] = ["amd64", "arm32v7", "arm64v8"];

/// Build step times by arch, and whether a build printed a `CACHED` loop step.
#[derive(Default)]
struct Builds {
    times: BTreeMap<String, Duration>,
    loop_vertices: Vec<(String, String)>,
    cached: Vec<String>,
}

impl Reporter for Builds {
    fn event(&mut self, e: &RunEvent) {
        match e {
            RunEvent::Output { id, line } if id.starts_with("build:") => {
                if line.contains("while [ $i -lt") {
                    if let Some(v) = line.split_whitespace().find(|w| w.starts_with('#')) {
                        self.loop_vertices.push((id.clone(), v.to_string()));
                    }
                }
                if let Some(v) = line.strip_suffix(" CACHED") {
                    if self
                        .loop_vertices
                        .iter()
                        .any(|(i, lv)| i == id && lv == v.trim())
                    {
                        self.cached.push(id.clone());
                    }
                }
            }
            RunEvent::StepFinished(r) if r.kind == StepKind::Build => {
                let arch = r.id.rsplit('/').next().unwrap_or("").to_string();
                *self.times.entry(arch).or_default() += r.duration;
            }
            _ => {}
        }
    }
}

fn project(dir: &Path, root: &Path, iterations: u32) -> Result<()> {
    let w = |rel: &str, text: &str| {
        let p = dir.join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))
    };
    super::pipeline::stage_busybox(root, &dir.join("busybox/rootfs"))?;
    let busybox = std::fs::read_to_string(root.join("examples/busybox/Dockerfile"))
        .map_err(|e| e.to_string())?;
    w("busybox/Dockerfile", &busybox)?;
    let work = format!("i=0; while [ $i -lt {iterations} ]; do i=$((i+1)); done");
    w(
        "cross/Dockerfile",
        &format!("ARG BASE\nFROM --platform=$BUILDPLATFORM scratch AS tools-amd64\nCOPY busybox/rootfs/amd64/busybox /bin/busybox\nFROM --platform=$BUILDPLATFORM scratch AS tools-arm64\nCOPY busybox/rootfs/arm64v8/busybox /bin/busybox\nFROM tools-${{BUILDARCH}} AS build\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"{work}; echo done > /out\"]\nFROM ${{BASE}}\nCOPY --from=build /out /out\n"),
    )?;
    w(
        "emulated/Dockerfile",
        &format!("ARG BASE\nFROM ${{BASE}}\nRUN {work}; echo done > /out\n"),
    )?;
    w(
        "multiarch.toml",
        "[project]\nregistry = \"${MULTIARCH_REGISTRY}/bench-buildkit\"\n[archs]\ndefault = [\"amd64\", \"arm32v7\", \"arm64v8\"]\n[tags]\narch = \"{repo}/{arch}:bench\"\nmanifest = [\"latest\"]\n[publish]\nbranches = [\"main\"]\n[[image]]\nname = \"busybox\"\ncontext = \"busybox\"\nverify = { command = [\"uname\", \"-m\"] }\n[[image]]\nname = \"cross\"\ndockerfile = \"cross/Dockerfile\"\ndepends_on = [\"busybox\"]\nargs = { BASE = \"{image.busybox}\" }\n[[image]]\nname = \"emulated\"\ncontext = \"emulated\"\ndepends_on = [\"busybox\"]\nargs = { BASE = \"{image.busybox}\" }\ncache_from = [\"{repo}:latest\"]\n",
    )
}

/// BuildKit through `docker` (`MULTIARCH_DOCKER`), or why not.
pub fn choice(docker: Option<&str>) -> Result<multiarch::plan::BuilderChoice> {
    let mut env = Environment::from_process();
    if let Some(d) = docker {
        env.set("MULTIARCH_DOCKER", d);
    }
    let c = DockerCli::resolve(
        Some(BuilderSetting::BuildKit),
        BuilderSetting::Auto,
        true,
        &env,
        ALTERNATIVE_DOCKERS,
    )
    .map_err(|e| format!("no BuildKit here: {e}"))?;
    match c.mode {
        BuildMode::Classic => Err("no BuildKit here".into()),
        _ => Ok(c),
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn docker(args: &[&str]) {
    let _ = std::process::Command::new("docker").args(args).output();
}

pub fn run(root: &Path, registry: &str, buildkit_docker: Option<&str>, quick: bool) -> Result<()> {
    let mut env = Environment::from_process().with("MULTIARCH_REGISTRY", registry);
    if let Some(d) = buildkit_docker {
        env.set("MULTIARCH_DOCKER", d);
    }
    let builder = choice(buildkit_docker)?;
    let dir = crate::devenv::state_dir()?.join("bench-buildkit");
    let _ = std::fs::remove_dir_all(&dir);
    let iterations = if quick { 20_000 } else { 600_000 };
    project(&dir, root, iterations)?;
    let spec = Spec::load(&dir.join("multiarch.toml"), &env).map_err(|e| e.to_string())?;
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        << 8;
    let run_once = |n: u64, images: &[&str], no_cache: bool| -> Result<(Duration, Builds)> {
        let ctx = GitContext {
            branch: Some("main".into()),
            sha: Some(format!("{n:040x}")),
            ..GitContext::default()
        };
        let opts = PlanOptions {
            images: images.iter().map(|s| s.to_string()).collect(),
            no_cache,
            builder: builder.clone(),
            ..PlanOptions::default()
        };
        let plan = Plan::new(&spec, &ctx, &opts).map_err(|e| e.to_string())?;
        let ro = RunOptions {
            jobs: Some(1),
            ..RunOptions::default()
        };
        let mut b = Builds::default();
        let t0 = Instant::now();
        let s = multiarch::run(&plan, &ro, &env, &mut b).map_err(|e| e.to_string())?;
        if s.exit_code() != 0 {
            let f: Vec<String> = s
                .failed()
                .map(|r| format!("{}: {}", r.id, r.tail.join(" | ")))
                .collect();
            return Err(format!("multiarch run failed: {}", f.join("; ")));
        }
        Ok((t0.elapsed(), b))
    };
    // The base first, then each image alone (its per-arch needs are in the registry).
    run_once(base, &["busybox"], false)?;
    let (_, cross) = run_once(base, &["cross"], true)?;
    let (_, emulated) = run_once(base, &["emulated"], true)?;
    let total = |b: &Builds| b.times.values().copied().sum::<Duration>();
    println!(
        "cross-compiled vs emulated ({iterations} loop iterations, amd64 + arm32v7 + arm64v8, -j 1): cross {:.1}s, emulated {:.1}s: {:.1}x",
        secs(total(&cross)),
        secs(total(&emulated)),
        secs(total(&emulated)) / secs(total(&cross)).max(0.001)
    );
    let native = emulated.times.get("amd64").copied().unwrap_or_default();
    for arch in ARCHS {
        let c = cross.times.get(arch).copied().unwrap_or_default();
        let e = emulated.times.get(arch).copied().unwrap_or_default();
        println!(
            "  {arch}: cross-compiled {:.1}s, in the target stage {:.1}s ({:.1}x its cross build, {:.1}x amd64's)",
            secs(c),
            secs(e),
            secs(e) / secs(c).max(0.001),
            secs(e) / secs(native).max(0.001)
        );
    }
    // Cold vs cached: an empty builder cache and no local image either time.
    let empty = || {
        docker(&["builder", "prune", "-af"]);
        for arch in ARCHS {
            docker(&[
                "image",
                "rm",
                "-f",
                &format!("{registry}/bench-buildkit/emulated/{arch}:bench"),
            ]);
        }
    };
    empty();
    let (cold, _) = run_once(base + 1, &["emulated"], true)?;
    empty();
    let (warm, cached) = run_once(base + 1, &["emulated"], false)?;
    println!(
        "cold vs registry-cached (emulated image, after `docker builder prune -af`): cold {:.1}s, from the registry's cache {:.1}s: {:.1}x; loop step CACHED in {}/{} builds",
        secs(cold),
        secs(warm),
        secs(cold) / secs(warm).max(0.001),
        cached.cached.len(),
        ARCHS.len()
    );
    Ok(())
}
