//! Spec loading + validation + planning on arbitrary input: no panic, no hang,
//! bounded memory. `cargo xtask fuzz [SECONDS]` runs it.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use multiarch::plan::Host;
use multiarch::{Environment, GitContext, Plan, PlanOptions, Spec};

/// A project directory with the Dockerfiles the inputs may name.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("multiarch-fuzz-{}", std::process::id()));
        for sub in ["", "app", "base", "services/api"] {
            let p = d.join(sub);
            let _ = std::fs::create_dir_all(&p);
            let _ = std::fs::write(p.join("Dockerfile"), "FROM scratch\n");
        }
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let env = Environment::from_pairs([("REG", "127.0.0.1:5000"), ("EMPTY", "")]);
    let Ok(spec) = Spec::from_str_in(text, "multiarch.toml", dir(), &env) else { return };
    for (branch, tag) in [(Some("main"), None), (Some("feat/$(reboot); x"), None), (None, Some("v1.2.3"))] {
        let ctx = GitContext {
            branch: branch.map(String::from),
            git_tag: tag.map(String::from),
            sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
            ..GitContext::default()
        };
        let opts = PlanOptions { host: Host::fixed("linux/amd64"), ..PlanOptions::default() };
        if let Ok(plan) = Plan::new(&spec, &ctx, &opts) {
            let _ = multiarch::plan::render_json(&plan);
        }
    }
});
