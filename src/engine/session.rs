//! What an engine prepares for one run: environment variables for its commands,
//! files they read (podman's registries.conf), a directory for digest files. The
//! directory and everything in it go when the session is dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::Error;
use crate::plan::{Action, Plan};
use crate::spec::reference::{self, is_loopback_host};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name no other session or probe of this machine uses at the same time.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A private directory under the system's temp dir, removed on drop.
#[derive(Debug)]
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> Result<ScratchDir, Error> {
        use std::os::unix::fs::DirBuilderExt;
        let path = std::env::temp_dir().join(unique_name("multiarch"));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| {
                Error::Environment(format!(
                    "cannot create a temporary directory {}: {e}",
                    path.display()
                ))
            })?;
        Ok(ScratchDir(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The run-wide preparation of an engine.
#[derive(Debug, Default)]
pub struct Session {
    /// Added to every command's environment.
    pub env: Vec<(String, String)>,
    /// What the preparation changed, for the person running multiarch.
    pub notes: Vec<String>,
    scratch: Option<ScratchDir>,
}

impl Session {
    pub fn new(env: Vec<(String, String)>) -> Session {
        Session {
            env,
            notes: Vec::new(),
            scratch: None,
        }
    }

    /// The session's directory, made on first use.
    pub fn dir(&mut self) -> Result<&Path, Error> {
        if self.scratch.is_none() {
            self.scratch = Some(ScratchDir::new()?);
        }
        match &self.scratch {
            Some(d) => Ok(&d.0),
            None => Err(Error::Environment("no temporary directory".into())),
        }
    }

    /// Writes `name` in the session's directory; returns its path.
    pub fn write(&mut self, name: &str, text: &str) -> Result<PathBuf, Error> {
        let path = self.dir()?.join(name);
        std::fs::write(&path, text)
            .map_err(|e| Error::Environment(format!("cannot write {}: {e}", path.display())))?;
        Ok(path)
    }

    /// A path for a file a command writes (a digest file), unique in this run. Its
    /// directory exists when the session made one; otherwise the system's temp dir.
    pub fn file_for(&self, what: &str) -> PathBuf {
        let name: String = what
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        match &self.scratch {
            Some(d) => d.0.join(unique_name(&name)),
            None => std::env::temp_dir().join(unique_name(&format!("multiarch-{name}"))),
        }
    }
}

/// The registries a plan reaches over plain HTTP: every `[project]
/// insecure_registries` entry, and the loopback registries its references name.
pub fn plain_http_registries(plan: &Plan) -> Vec<String> {
    let mut out: Vec<String> = plan.insecure_registries.clone();
    let mut refs: Vec<&str> = Vec::new();
    for s in plan.steps() {
        refs.extend(s.reference());
        match &s.action {
            Action::ManifestCreate { entries, .. } => {
                refs.extend(entries.iter().map(|e| e.reference.as_str()))
            }
            Action::Verify { reference, .. } => refs.push(reference),
            _ => {}
        }
    }
    // Needs outside the plan, in the order of their ids (each once).
    let external: std::collections::BTreeMap<String, &str> = plan
        .steps()
        .iter()
        .flat_map(|s| s.external_needs())
        .filter_map(|e| Some((e.id.to_string(), e.reference.as_deref()?)))
        .collect();
    refs.extend(external.into_values());
    for r in refs {
        if let Some(d) = reference::parse(r).ok().and_then(|r| r.domain) {
            if is_loopback_host(&d) && !out.contains(&d) {
                out.push(d);
            }
        }
    }
    out
}
