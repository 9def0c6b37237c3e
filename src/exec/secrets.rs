//! Build secrets at run time: every value read once before anything runs (so
//! the masker knows them), then, for each build step alone, written to 0600
//! files in a private 0700 directory that is removed when the step ends —
//! success, failure, timeout or cancellation — by [`SecretFiles`]'s `Drop`.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

use super::RunError;
use crate::engine::{BuildArgs, SecretMount};
use crate::environment::Environment;
use crate::plan::{Action, Plan};
use crate::spec::SecretSource;

/// The value of every secret the plan's builds mount, by source.
#[derive(Debug, Clone, Default)]
pub struct SecretValues {
    values: BTreeMap<SecretSource, String>,
}

impl SecretValues {
    /// Read each secret of the plan's build steps: an unset variable or an
    /// unreadable file is an error before any build runs.
    pub fn read(plan: &Plan, env: &Environment) -> Result<SecretValues, RunError> {
        let mut values = BTreeMap::new();
        for s in plan.steps() {
            let Action::Build { args, .. } = &s.action else {
                continue;
            };
            for m in &args.secrets {
                if values.contains_key(&m.from) {
                    continue;
                }
                let value = match &m.from {
                    SecretSource::Env(name) => {
                        env.get(name).map(str::to_string).ok_or_else(|| {
                            RunError::SecretUnavailable {
                                id: m.id.clone(),
                                detail: format!("${name} is not set"),
                            }
                        })?
                    }
                    SecretSource::File(path) => {
                        std::fs::read_to_string(path).map_err(|e| RunError::SecretUnavailable {
                            id: m.id.clone(),
                            detail: format!("cannot read {}: {e}", path.display()),
                        })?
                    }
                };
                values.insert(m.from.clone(), value);
            }
        }
        Ok(SecretValues { values })
    }

    /// What the masker hides: each value, and each line of a multi-line one
    /// (a netrc's password line shows alone in an error).
    pub fn to_mask(&self) -> Vec<String> {
        let mut out = Vec::new();
        for v in self.values.values() {
            out.push(v.clone());
            let trimmed = v.trim();
            if trimmed != v {
                out.push(trimmed.to_string());
            }
            if v.contains('\n') {
                out.extend(
                    v.lines()
                        .map(|l| l.trim().to_string())
                        .filter(|l| !l.is_empty()),
                );
            }
        }
        out
    }

    /// Write the secrets of one build to a private directory: the build's args
    /// with each `src` the file's path, and the guard that removes them.
    pub fn write(&self, args: &BuildArgs) -> std::io::Result<(BuildArgs, Option<SecretFiles>)> {
        if args.secrets.is_empty() {
            return Ok((args.clone(), None));
        }
        let dir = tempfile::Builder::new()
            .prefix("multiarch-secrets-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()?;
        let mut mounts = Vec::with_capacity(args.secrets.len());
        for m in &args.secrets {
            let value = self.values.get(&m.from).ok_or_else(|| {
                std::io::Error::other(format!("secret `{}` was not read before the run", m.id))
            })?;
            let path = dir.path().join(&m.id);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            f.write_all(value.as_bytes())?;
            mounts.push(SecretMount {
                src: path.display().to_string(),
                ..m.clone()
            });
        }
        let args = BuildArgs {
            secrets: mounts,
            ..args.clone()
        };
        Ok((args, Some(SecretFiles { dir })))
    }
}

/// The secret files of one running build; dropping it removes them.
#[derive(Debug)]
pub struct SecretFiles {
    dir: tempfile::TempDir,
}

impl SecretFiles {
    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::BuildMode;

    fn args(from: SecretSource) -> BuildArgs {
        let mut a = BuildArgs {
            mode: BuildMode::BuildKit,
            ..BuildArgs::example("amd64", "linux/amd64", "r/amd64:1", "")
        };
        a.secrets[0].src = crate::engine::secret_file("npm");
        a.secrets[0].from = from;
        a
    }

    #[test]
    fn a_secret_file_is_private_and_gone_when_the_guard_drops() {
        let from = SecretSource::Env("NPM_TOKEN".into());
        let values = SecretValues {
            values: [(from.clone(), "tok-123\n".to_string())].into(),
        };
        let (written, guard) = values.write(&args(from)).unwrap();
        let guard = guard.unwrap();
        let src = std::path::PathBuf::from(&written.secrets[0].src);
        assert!(src.starts_with(guard.path()));
        assert_eq!(std::fs::read_to_string(&src).unwrap(), "tok-123\n");
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&src), 0o600);
        assert_eq!(mode(guard.path()), 0o700);
        let dir = guard.path().to_path_buf();
        drop(guard);
        assert!(!dir.exists(), "removed with the guard");
        assert_eq!(values.to_mask(), ["tok-123\n", "tok-123", "tok-123"]);
    }

    #[test]
    fn a_build_without_secrets_writes_nothing() {
        let values = SecretValues::default();
        let mut a = args(SecretSource::Env("X".into()));
        a.secrets.clear();
        let (same, guard) = values.write(&a).unwrap();
        assert!(guard.is_none());
        assert_eq!(same, a);
    }
}
