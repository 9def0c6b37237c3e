//! `cargo xtask bench pipeline`: the real pipeline, measured side by side.
//!
//! The project is bench/pipeline/: 3 independent images × 3 arches (amd64,
//! arm32v7, arm64v8), each build checksumming busybox 100 times in a RUN step
//! (under qemu for the two arm arches). Each round runs, alternating, the seed
//! article's sequential script (build, push per arch, then manifest
//! create/annotate/push, then `docker run` per arch, one command after
//! another) and `multiarch run` (which also runs a test container per arch
//! before pushing and reads each list back to verify it by digest). Both build
//! with `--no-cache` so every round does the same work; a fresh sha per round.
//! Then a no-op rerun: `multiarch run --skip-existing` on the last round's sha.

use std::path::Path;
use std::time::{Duration, Instant};

use multiarch::plan::Action;
use multiarch::report::PlainReporter;
use multiarch::{Environment, GitContext, Plan, PlanOptions, RunOptions, Spec, StepKind};

use crate::Result;

fn run_argv(argv: &[String], dir: &Path, tolerate: bool) -> Result<()> {
    let out = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(dir)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
    if !out.status.success() && !tolerate {
        return Err(format!(
            "`{}` failed: {}",
            argv.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The article's script, generated from the same plan: per image, per arch
/// `docker build` + `docker push`; then the list by tag; then `docker run`.
fn sequential(plan: &Plan, dir: &Path) -> Result<Duration> {
    let t0 = Instant::now();
    let mut images: Vec<String> = Vec::new();
    for s in &plan.steps {
        if let Some(i) = &s.image {
            if !images.contains(i) {
                images.push(i.clone());
            }
        }
    }
    for img in &images {
        let mut refs = Vec::new();
        for s in plan.steps.iter().filter(|s| s.image.as_ref() == Some(img)) {
            if let Action::Build {
                reference,
                platform,
                ..
            } = &s.action
            {
                run_argv(&s.command(), dir, false)?;
                run_argv(
                    &["docker".into(), "push".into(), reference.clone()],
                    dir,
                    false,
                )?;
                refs.push((reference.clone(), platform.clone()));
            }
        }
        for s in plan
            .steps
            .iter()
            .filter(|s| s.image.as_ref() == Some(img) && s.kind == StepKind::ManifestPush)
        {
            let list = s.reference.clone().unwrap_or_default();
            run_argv(
                &[
                    "docker".into(),
                    "manifest".into(),
                    "rm".into(),
                    list.clone(),
                ],
                dir,
                true,
            )?;
            let mut create = vec![
                "docker".to_string(),
                "manifest".into(),
                "create".into(),
                "--insecure".into(),
                list.clone(),
            ];
            create.extend(refs.iter().map(|(r, _)| r.clone()));
            run_argv(&create, dir, false)?;
            for (r, p) in &refs {
                let mut a = vec![
                    "docker".to_string(),
                    "manifest".into(),
                    "annotate".into(),
                    list.clone(),
                    r.clone(),
                    "--os".into(),
                    p.os.clone(),
                    "--arch".into(),
                    p.arch.clone(),
                ];
                if let Some(v) = &p.variant {
                    a.push("--variant".into());
                    a.push(v.clone());
                }
                run_argv(&a, dir, false)?;
            }
            run_argv(
                &[
                    "docker".into(),
                    "manifest".into(),
                    "push".into(),
                    "--purge".into(),
                    "--insecure".into(),
                    list.clone(),
                ],
                dir,
                false,
            )?;
        }
        let list = plan
            .steps
            .iter()
            .find(|s| s.image.as_ref() == Some(img) && s.kind == StepKind::ManifestPush)
            .and_then(|s| s.reference.clone());
        for (r, p) in &refs {
            let target = list.clone().unwrap_or_else(|| r.clone());
            run_argv(
                &[
                    "docker".into(),
                    "run".into(),
                    "--rm".into(),
                    "--network".into(),
                    "none".into(),
                    "--pull".into(),
                    "always".into(),
                    "--platform".into(),
                    p.to_string(),
                    target,
                    "uname".into(),
                    "-m".into(),
                ],
                dir,
                false,
            )?;
        }
    }
    Ok(t0.elapsed())
}

fn with_multiarch(plan: &Plan, env: &Environment, opts: &RunOptions) -> Result<Duration> {
    let t0 = Instant::now();
    let mut quiet = PlainReporter::new(std::io::sink(), true, false);
    let summary = multiarch::run(plan, opts, env, &mut quiet).map_err(|e| e.to_string())?;
    if summary.exit_code() != 0 {
        let failed: Vec<String> = summary
            .failed()
            .map(|s| format!("{}: {:?}\n    {}", s.id, s.status, s.tail.join("\n    ")))
            .collect();
        return Err(format!("multiarch run failed: {}", failed.join("; ")));
    }
    Ok(t0.elapsed())
}

/// Copy the staged busybox binaries (examples/busybox/rootfs) into the
/// benchmark's build context.
fn stage(root: &Path) -> Result<()> {
    for arch in ["amd64", "arm32v7", "arm64v8"] {
        let src = root
            .join("examples/busybox/rootfs")
            .join(arch)
            .join("busybox");
        let dir = root.join("bench/pipeline/rootfs").join(arch);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        std::fs::copy(&src, dir.join("busybox"))
            .map_err(|e| format!("cannot copy {}: {e}", src.display()))?;
    }
    Ok(())
}

pub fn pipeline(root: &Path, registry: &str, rounds: usize) -> Result<()> {
    stage(root)?;
    let env = Environment::from_process().with("MULTIARCH_REGISTRY", registry);
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
    let jobs = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let (mut seq, mut like, mut full) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = None;
    for round in 0..rounds {
        // A fresh sha per run: nothing of an earlier one is reused by tag.
        let plan_for = |spec: &Spec, n: u64| {
            let ctx = GitContext {
                branch: Some("main".into()),
                sha: Some(format!("{:040x}", 0xbe9c_0000_u64 + 3 * round as u64 + n)),
                ..GitContext::default()
            };
            let opts = PlanOptions {
                no_cache: true,
                ..PlanOptions::default()
            };
            Plan::new(spec, &ctx, &opts).map_err(|e| e.to_string())
        };
        let plan = plan_for(&spec, 0)?;
        let s = sequential(&plan, &spec.dir)?;
        let l = with_multiarch(&plan_for(&same_work, 1)?, &env, &RunOptions::default())?;
        let full_plan = plan_for(&spec, 2)?;
        let m = with_multiarch(&full_plan, &env, &RunOptions::default())?;
        println!(
            "round {}: sequential script {:.1}s, multiarch run {:.1}s (same steps), {:.1}s (with a test run per arch before its push; {} steps), -j {jobs}",
            round + 1,
            s.as_secs_f64(),
            l.as_secs_f64(),
            m.as_secs_f64(),
            full_plan.steps.len(),
        );
        seq.push(s);
        like.push(l);
        full.push(m);
        last = Some(full_plan);
    }
    // The no-op rerun: everything of this sha is in the registry.
    let mut reruns = Vec::new();
    if let Some(plan) = &last {
        let opts = RunOptions {
            skip_existing: true,
            ..RunOptions::default()
        };
        for _ in 0..rounds {
            reruns.push(with_multiarch(plan, &env, &opts)?);
        }
    }
    let med = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (s, l, m, r) = (
        med(&mut seq),
        med(&mut like),
        med(&mut full),
        med(&mut reruns),
    );
    println!(
        "pipeline (3 images x 3 arches, --no-cache, medians of {rounds}): sequential script {:.1}s; multiarch {:.1}s ({:.2}x) on the same steps, {:.1}s ({:.2}x) with the test runs; no-op rerun with --skip-existing {:.2}s",
        s.as_secs_f64(),
        l.as_secs_f64(),
        s.as_secs_f64() / l.as_secs_f64(),
        m.as_secs_f64(),
        s.as_secs_f64() / m.as_secs_f64(),
        r.as_secs_f64()
    );
    Ok(())
}
