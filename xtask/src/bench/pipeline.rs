//! `cargo xtask bench`: the real pipeline, measured side by side.
//!
//! `pipeline` runs the repository's example images (3 images × 3 arches, one
//! doing real work under qemu) twice each, alternating: the seed article's
//! sequential script (build, push per arch, then manifest create/annotate/push,
//! then `docker run` per arch, one command after another), and `multiarch run`.
//! Both build with `--no-cache` so every round does the same work.

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

fn with_multiarch(plan: &Plan, env: &Environment) -> Result<Duration> {
    let t0 = Instant::now();
    let mut quiet = PlainReporter::new(std::io::sink(), true, false);
    let summary =
        multiarch::run(plan, &RunOptions::default(), env, &mut quiet).map_err(|e| e.to_string())?;
    if summary.exit_code() != 0 {
        let failed: Vec<String> = summary
            .failed()
            .map(|s| format!("{}: {:?}\n    {}", s.id, s.status, s.tail.join("\n    ")))
            .collect();
        return Err(format!("multiarch run failed: {}", failed.join("; ")));
    }
    Ok(t0.elapsed())
}

pub fn pipeline(root: &Path, registry: &str, rounds: usize) -> Result<()> {
    let env = Environment::from_process().with("MULTIARCH_REGISTRY", registry);
    let spec = Spec::load(&root.join("multiarch.toml"), &env).map_err(|e| e.to_string())?;
    let mut seq = Vec::new();
    let mut par = Vec::new();
    for round in 0..rounds {
        // A fresh sha per round: nothing of an earlier round is reused by tag.
        let sha = format!("{:040x}", 0xbe9c_0000_u64 + round as u64);
        let ctx = GitContext {
            branch: Some("main".into()),
            sha: Some(sha),
            ..GitContext::default()
        };
        let opts = PlanOptions {
            no_cache: true,
            ..PlanOptions::default()
        };
        let plan = Plan::new(&spec, &ctx, &opts).map_err(|e| e.to_string())?;
        let s = sequential(&plan, &spec.dir)?;
        let m = with_multiarch(&plan, &env)?;
        println!(
            "round {}: sequential script {:.1}s, multiarch run {:.1}s ({} steps, -j {})",
            round + 1,
            s.as_secs_f64(),
            m.as_secs_f64(),
            plan.steps.len(),
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        );
        seq.push(s);
        par.push(m);
    }
    let med = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (s, m) = (med(&mut seq), med(&mut par));
    println!(
        "pipeline (3 images x 3 arches, --no-cache): sequential {:.1}s, multiarch {:.1}s, speed-up {:.2}x (median of {rounds})",
        s.as_secs_f64(),
        m.as_secs_f64(),
        s.as_secs_f64() / m.as_secs_f64()
    );
    Ok(())
}
