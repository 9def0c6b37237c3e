//! `cargo xtask bench pipeline`: the real pipeline, measured side by side.
//!
//! The project is bench/pipeline/: 3 independent images × 3 arches (amd64,
//! arm32v7, arm64v8), each build running the same CPU-bound shell loop in a RUN
//! step (under qemu for the two arm arches), on Debian's static busybox staged
//! into bench/pipeline/rootfs/ (nothing from Docker Hub).
//!
//! Each round runs, one after another and each on a fresh sha:
//! - the seed article's sequential script, generated from the same plan: per
//!   image and arch `docker build` + `docker push`, then `docker manifest
//!   create`/`annotate`/`push`, then `docker run --pull always --platform P` of
//!   the list per arch;
//! - `multiarch run` on the same steps (`[verify] before_push = false`);
//! - the default `multiarch run` (also a test container per arch before its push).
//!
//! All build with `--no-cache`, so every round does the same work. Then the
//! no-op rerun: `multiarch run --skip-existing` on the last default run's sha,
//! with the verify stage and without it (`--stage build --stage push --stage
//! publish`). Every multiarch run prints where its time went (per kind of step:
//! count, summed step time, and when the last build ended).
//!
//! One round (`--quick`, CI's smoke run) builds image `alpha` only.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use multiarch::plan::{Action, BuilderChoice};
use multiarch::report::{Reporter, RunEvent, StepStatus};
use multiarch::{Environment, GitContext, Plan, PlanOptions, RunOptions, Spec, Stage, StepKind};

use crate::Result;

/// Wall time per phase of the sequential script.
#[derive(Default)]
struct ScriptTimes {
    build: Duration,
    push: Duration,
    list: Duration,
    run: Duration,
}

fn run_argv(argv: &[String], dir: &Path, tolerate: bool, into: &mut Duration) -> Result<()> {
    let t0 = Instant::now();
    let out = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(dir)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
    *into += t0.elapsed();
    if !out.status.success() && !tolerate {
        return Err(format!(
            "`{}` failed: {}",
            argv.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The article's script, generated from the same plan: per image, per arch
/// `docker build` + `docker push`; then the list by tag; then `docker run`.
fn sequential(plan: &Plan, dir: &Path) -> Result<(Duration, ScriptTimes)> {
    let t0 = Instant::now();
    let mut t = ScriptTimes::default();
    let mut images: Vec<String> = Vec::new();
    for s in plan.steps() {
        if let Some(i) = s.image() {
            if !images.iter().any(|x| x == i) {
                images.push(i.to_string());
            }
        }
    }
    for img in &images {
        let mut refs = Vec::new();
        for s in plan.steps().iter().filter(|s| s.image() == Some(img)) {
            if let Action::Build {
                reference,
                platform,
                ..
            } = &s.action
            {
                run_argv(&s.command(), dir, false, &mut t.build)?;
                run_argv(
                    &strings(&["docker", "push", reference]),
                    dir,
                    false,
                    &mut t.push,
                )?;
                refs.push((reference.to_string(), platform.clone()));
            }
        }
        let lists: Vec<String> = plan
            .steps()
            .iter()
            .filter(|s| s.image() == Some(img) && s.kind() == StepKind::ManifestPush)
            .filter_map(|s| s.reference().map(str::to_string))
            .collect();
        for list in &lists {
            run_argv(
                &strings(&["docker", "manifest", "rm", list]),
                dir,
                true,
                &mut t.list,
            )?;
            let mut create = strings(&["docker", "manifest", "create", "--insecure", list]);
            create.extend(refs.iter().map(|(r, _)| r.clone()));
            run_argv(&create, dir, false, &mut t.list)?;
            for (r, p) in &refs {
                let mut a = strings(&[
                    "docker", "manifest", "annotate", list, r, "--os", &p.os, "--arch", &p.arch,
                ]);
                if let Some(v) = &p.variant {
                    a.extend(strings(&["--variant", v]));
                }
                run_argv(&a, dir, false, &mut t.list)?;
            }
            run_argv(
                &strings(&["docker", "manifest", "push", "--purge", "--insecure", list]),
                dir,
                false,
                &mut t.list,
            )?;
        }
        for (r, p) in &refs {
            let target = lists.first().unwrap_or(r);
            run_argv(
                &strings(&[
                    "docker",
                    "run",
                    "--rm",
                    "--network",
                    "none",
                    "--pull",
                    "always",
                    "--platform",
                    &p.to_string(),
                    target,
                    "uname",
                    "-m",
                ]),
                dir,
                false,
                &mut t.run,
            )?;
        }
    }
    Ok((t0.elapsed(), t))
}

/// When each step started and ended, relative to the run's start.
struct Timeline {
    t0: Instant,
    started: HashMap<String, Duration>,
    steps: Vec<(StepKind, Duration, Duration, StepStatus)>,
}

impl Timeline {
    fn new() -> Self {
        Timeline {
            t0: Instant::now(),
            started: HashMap::new(),
            steps: Vec::new(),
        }
    }

    /// `build 9×3.6s (done at 19.0s) · test 9×0.5s · …`: per kind of step its
    /// count and mean time (cached steps counted apart).
    fn breakdown(&self) -> String {
        let first = self.steps.iter().map(|s| s.1).min().unwrap_or_default();
        let mut parts = vec![format!("before the first step {:.2}s", first.as_secs_f64())];
        for k in StepKind::ALL {
            let of: Vec<_> = self.steps.iter().filter(|s| s.0 == k).collect();
            if of.is_empty() {
                continue;
            }
            let ran: Vec<_> = of
                .iter()
                .filter(|s| !matches!(s.3, StepStatus::Cached(_)))
                .collect();
            let cached = of.len() - ran.len();
            let mut p = format!("{} ", k.as_str());
            if !ran.is_empty() {
                let sum: Duration = ran.iter().map(|s| s.2 - s.1).sum();
                p += &format!("{}×{:.2}s", ran.len(), sum.as_secs_f64() / ran.len() as f64);
            }
            if cached > 0 {
                if !ran.is_empty() {
                    p += " + ";
                }
                let sum: Duration = of
                    .iter()
                    .filter(|s| matches!(s.3, StepStatus::Cached(_)))
                    .map(|s| s.2 - s.1)
                    .sum();
                p += &format!("{cached} cached×{:.2}s", sum.as_secs_f64() / cached as f64);
            }
            if k == StepKind::Build && !ran.is_empty() {
                let last = of.iter().map(|s| s.2).max().unwrap_or_default();
                p += &format!(" (the last ends at {:.1}s)", last.as_secs_f64());
            }
            parts.push(p);
        }
        parts.join(" · ")
    }
}

impl Reporter for Timeline {
    fn event(&mut self, e: &RunEvent) {
        match e {
            RunEvent::StepStarted { id, .. } => {
                self.started.insert(id.clone(), self.t0.elapsed());
            }
            RunEvent::StepFinished(r) => {
                let end = self.t0.elapsed();
                let start = self.started.get(&r.id).copied().unwrap_or(end);
                self.steps.push((r.kind, start, end, r.status.clone()));
            }
            _ => {}
        }
    }
}

fn with_multiarch(
    plan: &Plan,
    env: &Environment,
    opts: &RunOptions,
) -> Result<(Duration, Timeline)> {
    let mut timeline = Timeline::new();
    let summary = multiarch::run(plan, opts, env, &mut timeline).map_err(|e| e.to_string())?;
    let wall = timeline.t0.elapsed();
    if summary.exit_code() != 0 {
        let failed: Vec<String> = summary
            .failed()
            .map(|s| format!("{}: {:?}\n    {}", s.id, s.status, s.tail.join("\n    ")))
            .collect();
        return Err(format!("multiarch run failed: {}", failed.join("; ")));
    }
    Ok((wall, timeline))
}

/// Copy the staged busybox binaries (examples/busybox/rootfs) into the
/// benchmark's build context.
fn stage(root: &Path) -> Result<()> {
    stage_busybox(root, &root.join("bench/pipeline/rootfs"))
}

/// Copy examples/busybox/rootfs/ARCH/busybox to `dest`/ARCH/busybox for the
/// amd64, arm32v7 and arm64v8 binaries the examples stage.
pub fn stage_busybox(root: &Path, dest: &Path) -> Result<()> {
    for arch in ["amd64", "arm32v7", "arm64v8"] {
        let src = root
            .join("examples/busybox/rootfs")
            .join(arch)
            .join("busybox");
        let dir = dest.join(arch);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        std::fs::copy(&src, dir.join("busybox"))
            .map_err(|e| format!("cannot copy {}: {e}", src.display()))?;
    }
    Ok(())
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

pub fn pipeline(
    root: &Path,
    registry: &str,
    rounds: usize,
    builder: &BuilderChoice,
    docker: Option<&str>,
) -> Result<()> {
    println!("builder: {}", builder.mode.describe());
    stage(root)?;
    let quick = rounds <= 1;
    let rounds = rounds.max(1);
    let mut env = Environment::from_process().with("MULTIARCH_REGISTRY", registry);
    if let Some(d) = docker {
        env.set("MULTIARCH_DOCKER", d);
    }
    let path = root.join("bench/pipeline/multiarch.toml");
    let spec = Spec::load(&path, &env).map_err(|e| e.to_string())?;
    // The same pipeline as the script (no test container before the push), to
    // compare like with like; the default run also tests each arch before
    // pushing it.
    let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    let same_work = Spec::from_str_in(
        &format!("{text}\n[verify]\nbefore_push = false\n"),
        &path.display().to_string(),
        &spec.dir,
        &env,
    )
    .map_err(|e| e.to_string())?;
    // `MULTIARCH_BENCH_JOBS=N`: multiarch's -j (default: the number of CPUs, as
    // `multiarch run` does).
    let jobs_override: Option<usize> = std::env::var("MULTIARCH_BENCH_JOBS")
        .ok()
        .and_then(|j| j.parse().ok());
    let jobs = jobs_override.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let run_opts = RunOptions {
        jobs: jobs_override,
        ..RunOptions::default()
    };
    let images = if quick {
        vec!["alpha".to_string()]
    } else {
        Vec::new()
    };
    // A fresh sha per run (nothing of an earlier run is reused by tag); stages
    // select part of the plan.
    let plan_with = |spec: &Spec, n: u64, stages: Vec<Stage>, builder: &BuilderChoice| {
        let ctx = GitContext {
            branch: Some("main".into()),
            sha: Some(format!("{:040x}", n)),
            ..GitContext::default()
        };
        let opts = PlanOptions {
            no_cache: true,
            images: images.clone(),
            stages,
            builder: builder.clone(),
            ..PlanOptions::default()
        };
        Plan::new(spec, &ctx, &opts).map_err(|e| e.to_string())
    };
    let plan_for = |spec: &Spec, n: u64, stages: Vec<Stage>| plan_with(spec, n, stages, builder);
    // Distinct from every earlier invocation's shas too (the registry persists).
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        << 8;
    let (mut seq, mut like, mut full) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = None;
    for round in 0..rounds {
        let n = base + 3 * round as u64;
        // The article's script is the classic builder's, whatever multiarch uses.
        let plan = plan_with(&spec, n, Vec::new(), &BuilderChoice::default())?;
        let (s, st) = sequential(&plan, &spec.dir)?;
        println!(
            "round {}: sequential script {:.1}s (build {:.1}s, push {:.1}s, lists {:.1}s, run {:.1}s)",
            round + 1,
            secs(s),
            secs(st.build),
            secs(st.push),
            secs(st.list),
            secs(st.run),
        );
        let (l, lt) = with_multiarch(&plan_for(&same_work, n + 1, Vec::new())?, &env, &run_opts)?;
        println!(
            "round {}: multiarch run, same steps {:.1}s ({:.2}x): {}",
            round + 1,
            secs(l),
            secs(s) / secs(l),
            lt.breakdown()
        );
        let full_plan = plan_for(&spec, n + 2, Vec::new())?;
        let (m, mt) = with_multiarch(&full_plan, &env, &run_opts)?;
        println!(
            "round {}: multiarch run {:.1}s ({:.2}x; {} steps, -j {jobs}): {}",
            round + 1,
            secs(m),
            secs(s) / secs(m),
            full_plan.steps().len(),
            mt.breakdown()
        );
        seq.push(s);
        like.push(l);
        full.push(m);
        last = Some(n + 2);
    }
    // The no-op rerun: everything of this sha is in the registry. With the verify
    // stage (the default), and without it.
    let (mut reruns, mut no_verify) = (Vec::new(), Vec::new());
    if let Some(n) = last {
        let opts = RunOptions {
            skip_existing: true,
            ..run_opts.clone()
        };
        let all = plan_for(&spec, n, Vec::new())?;
        let some = plan_for(&spec, n, vec![Stage::Build, Stage::Push, Stage::Publish])?;
        for _ in 0..rounds {
            let (r, rt) = with_multiarch(&all, &env, &opts)?;
            println!(
                "no-op rerun --skip-existing {:.2}s: {}",
                secs(r),
                rt.breakdown()
            );
            reruns.push(r);
            let (r, rt) = with_multiarch(&some, &env, &opts)?;
            println!(
                "no-op rerun --skip-existing --stage build --stage push --stage publish {:.2}s: {}",
                secs(r),
                rt.breakdown()
            );
            no_verify.push(r);
        }
    }
    let (s, l, m) = (median(&mut seq), median(&mut like), median(&mut full));
    let (r, rn) = (median(&mut reruns), median(&mut no_verify));
    println!(
        "pipeline, {} ({} x 3 arches, --no-cache, -j {jobs}, medians of {rounds}): sequential script {:.1}s; multiarch run {:.1}s ({:.2}x), on the same steps {:.1}s ({:.2}x); no-op rerun with --skip-existing {:.2}s, without the verify stage {:.2}s",
        builder.mode.describe(),
        if quick { "1 image" } else { "3 images" },
        secs(s),
        secs(m),
        secs(s) / secs(m),
        secs(l),
        secs(s) / secs(l),
        secs(r),
        secs(rn),
    );
    Ok(())
}
