//! Reading what an engine printed: pure parsers of its answers (push output,
//! `image inspect`, `manifest inspect` JSON). Running the commands is exec's.

use crate::spec::Platform;

/// `sha256:<64 hex>` in a line of output.
pub fn find_digest(line: &str) -> Option<String> {
    let i = line.find("sha256:")?;
    let hex: String = line[i + 7..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    (hex.len() == 64).then(|| format!("sha256:{hex}"))
}

/// `os/arch/variant` from `docker image inspect` against the arch's platform.
pub fn platform_matches(got: &str, want: &Platform) -> bool {
    let mut parts = got.trim().split('/');
    let os = parts.next().unwrap_or("");
    let arch = parts.next().unwrap_or("");
    let variant = parts.next().unwrap_or("");
    if os != want.os || arch != want.arch {
        return false;
    }
    match (&want.variant, variant) {
        (_, "") => true,
        (Some(w), v) => w == v,
        (None, _) => true,
    }
}

/// `["repo@sha256:…", …]` (`image inspect --format {{json .RepoDigests}}`): the
/// digest under `repository`.
pub fn repo_digest(json: &str, repository: &str) -> Option<String> {
    let list: Vec<String> = serde_json::from_str(json).ok()?;
    list.iter().find_map(|d| {
        d.strip_prefix(&format!("{repository}@"))
            .map(str::to_string)
    })
}

/// Whether a run failed because the runtime found no `command` in the image
/// (runc: `exec: "uname": executable file not found in $PATH`; crun:
/// "executable file `uname` not found in $PATH"), as docker and podman report it
/// with exit code 127 — not a command inside the container that exited 127.
pub fn is_missing_executable<'a>(
    exit_code: Option<i32>,
    mut output: impl Iterator<Item = &'a str>,
    command: &str,
) -> bool {
    if exit_code != Some(127) || command.is_empty() {
        return false;
    }
    output.any(|l| {
        l.contains("executable file")
            && l.contains("not found")
            && (l.contains(&format!("\"{command}\"")) || l.contains(&format!("`{command}`")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_check() {
        let arm64 = Platform::parse("linux/arm64").unwrap();
        assert!(platform_matches("linux/arm64/v8", &arm64));
        assert!(platform_matches("linux/arm64/", &arm64));
        assert!(!platform_matches("linux/amd64/", &arm64));
        let v7 = Platform::parse("linux/arm/v7").unwrap();
        assert!(platform_matches("linux/arm/v7", &v7));
        assert!(!platform_matches("linux/arm/v6", &v7));
    }

    #[test]
    fn digests_from_push_output() {
        let l = "abc: digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef size: 527";
        assert_eq!(
            find_digest(l).unwrap(),
            "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        );
        assert_eq!(find_digest("no digest here"), None);
        assert_eq!(
            repo_digest(r#"["r/a@sha256:1","r/b@sha256:2"]"#, "r/b").as_deref(),
            Some("sha256:2")
        );
    }

    #[test]
    fn a_missing_executable_is_the_runtimes_answer_not_the_commands() {
        let runc = ["docker: Error response from daemon: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"uname\": executable file not found in $PATH: unknown."];
        assert!(is_missing_executable(Some(127), runc.into_iter(), "uname"));
        assert!(!is_missing_executable(Some(1), runc.into_iter(), "uname"));
        assert!(!is_missing_executable(
            Some(127),
            ["sh: uname: not found"].into_iter(),
            "uname"
        ));
        let crun = ["Error: executable file `uname` not found in $PATH: No such file or directory"];
        assert!(is_missing_executable(Some(127), crun.into_iter(), "uname"));
    }
}
