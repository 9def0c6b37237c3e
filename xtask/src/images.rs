//! `cargo xtask images`: build the repository's own images from `multiarch.toml`.
//!
//! This is also the example of a `cargo xtask images` in a user's workspace: load
//! the spec, detect the commit, plan, run with a reporter. The whole pipeline is
//! the library's; the xtask only prepares the machine.

use std::path::Path;

use multiarch::context::{DockerCli, ALTERNATIVE_DOCKERS};
use multiarch::report::PlainReporter;
use multiarch::spec::EngineKind;
use multiarch::{Environment, GitCli, GitContext, Overrides, Plan, PlanOptions, RunOptions, Spec};

use crate::Result;

/// Builds, pushes and publishes the images of `<root>/multiarch.toml` to
/// `registry`, with the busybox binaries for the base image from `busybox_dir`.
/// Extra arguments are those of `multiarch run`. Returns the exit code.
pub fn run_images(
    root: &Path,
    registry: &str,
    busybox_dir: &Path,
    buildkit_docker: Option<&str>,
    extra: &[String],
) -> Result<i32> {
    stage_busybox(root, busybox_dir)?;
    let mut env = Environment::from_process().with("MULTIARCH_REGISTRY", registry);
    if let Some(d) = buildkit_docker {
        env.set("MULTIARCH_DOCKER", d);
    }
    let spec_path = root.join("multiarch.toml");
    if !extra.is_empty() {
        // Flags of `multiarch run` (--dry-run, --branch, -j, …): the CLI parses them.
        let mut args: Vec<std::ffi::OsString> = vec![
            "multiarch".into(),
            "run".into(),
            "-f".into(),
            spec_path.into(),
        ];
        args.extend(extra.iter().map(Into::into));
        return Ok(multiarch::cli::main_with(args, env));
    }
    let spec = match Spec::load(&spec_path, &env).map_err(multiarch::Error::from) {
        Ok(s) => s,
        Err(e) => {
            eprint!("{}", render(&e));
            return Ok(e.exit_code());
        }
    };
    let ctx = GitContext::detect(&env, &GitCli::new(&spec.dir), &Overrides::default())
        .map_err(|e| e.to_string())?;
    // `[project] builder`, resolved against the docker CLI as `multiarch run` does.
    let builder = DockerCli::resolve(
        None,
        spec.project.builder,
        spec.project.engine == EngineKind::Docker,
        &env,
        ALTERNATIVE_DOCKERS,
    )
    .map_err(|e| e.to_string())?;
    let opts = PlanOptions {
        builder,
        ..PlanOptions::default()
    };
    let plan = Plan::new(&spec, &ctx, &opts).map_err(|e| e.to_string())?;
    eprintln!(
        "xtask: {} steps; {}",
        plan.steps().len(),
        plan.publish_reason
    );
    let mut reporter = PlainReporter::new(std::io::stdout().lock(), false, false);
    let summary = match multiarch::run(&plan, &RunOptions::default(), &env, &mut reporter) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(e.exit_code());
        }
    };
    let code = summary.exit_code();
    if code == 0 {
        println!(
            "\nimages are in the registry at {registry} (http://{registry}/v2/_catalog); try:"
        );
        if let Some(list) = plan
            .steps()
            .iter()
            .filter(|s| s.kind() == multiarch::StepKind::ManifestPush)
            .find_map(|s| s.reference().map(str::to_string))
        {
            println!("  docker run --rm --network none --platform linux/arm/v7 {list}");
        }
    }
    Ok(code)
}

fn render(e: &multiarch::Error) -> String {
    match e {
        multiarch::Error::Spec(s) => s.render(false, 100),
        other => format!("error: {other}\n"),
    }
}

/// The busybox example builds from `examples/busybox/rootfs/<arch>/busybox`.
pub fn stage_busybox(root: &Path, busybox_dir: &Path) -> Result<()> {
    for arch in ["amd64", "arm64v8", "arm32v7"] {
        let src = busybox_dir.join(arch).join("busybox");
        let dir = root.join("examples/busybox/rootfs").join(arch);
        let dst = dir.join("busybox");
        let same = std::fs::metadata(&dst).ok().map(|m| m.len())
            == std::fs::metadata(&src).ok().map(|m| m.len());
        if !same {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            std::fs::copy(&src, &dst)
                .map_err(|e| format!("cannot copy {} to {}: {e}", src.display(), dst.display()))?;
        }
    }
    Ok(())
}
