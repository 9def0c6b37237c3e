//! `cargo xtask images`: build the repository's own images from `multiarch.toml`.

use std::path::Path;
use std::process::Command;

use crate::devenv::exit_code;
use crate::Result;

/// Builds and pushes the images in `<root>/multiarch.toml` to `registry`, with the
/// busybox binaries for the base images from `busybox_dir`. Returns the exit code.
pub fn run_images(
    root: &Path,
    registry: &str,
    busybox_dir: &Path,
    extra: &[String],
) -> Result<i32> {
    // TODO(lib): call the library directly
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let spec = root.join("multiarch.toml");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["run", "--quiet", "--bin", "multiarch", "--", "run", "-f"])
        .arg(&spec)
        .args(extra)
        .env("MULTIARCH_REGISTRY", registry)
        .env("MULTIARCH_BUSYBOX", busybox_dir);
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run `cargo run --bin multiarch`: {e}"))?;
    Ok(exit_code(status))
}
