//! Plan-time template variables (`{sha}`, `{branch}`, `{image.base}`, …) and their
//! values.

use std::collections::BTreeMap;

use super::arch::Platform;

/// Variables about the commit; a value is `None` when it is unknown (no git tag).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitValues {
    pub sha: Option<String>,
    pub short_sha: Option<String>,
    /// Already sanitised into a valid tag.
    pub branch: Option<String>,
    pub git_tag: Option<String>,
    pub version: Option<String>,
    pub major: Option<String>,
    pub minor: Option<String>,
    pub patch: Option<String>,
}

impl GitValues {
    /// Stand-in values for `multiarch check`, which validates without a commit.
    pub fn placeholder() -> Self {
        GitValues {
            sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
            short_sha: Some("0123456".into()),
            branch: Some("main".into()),
            git_tag: Some("v1.2.3".into()),
            version: Some("1.2.3".into()),
            major: Some("1".into()),
            minor: Some("2".into()),
            patch: Some("3".into()),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        match name {
            "sha" => self.sha.as_deref(),
            "short_sha" => self.short_sha.as_deref(),
            "branch" => self.branch.as_deref(),
            "git_tag" => self.git_tag.as_deref(),
            "version" => self.version.as_deref(),
            "major" => self.major.as_deref(),
            "minor" => self.minor.as_deref(),
            "patch" => self.patch.as_deref(),
            _ => None,
        }
    }

    /// Why a git variable has no value, for the plan's skipped entries.
    pub fn why_missing(name: &str) -> &'static str {
        match name {
            "sha" | "short_sha" => "no commit sha",
            "branch" => "no branch (detached HEAD or a tag build)",
            "git_tag" | "version" => "no git tag",
            "major" | "minor" | "patch" => {
                "no semver release tag (a pre-release sets only {version})"
            }
            _ => "no value",
        }
    }
}

pub const GIT_VARS: &[&str] = &[
    "sha",
    "short_sha",
    "branch",
    "git_tag",
    "version",
    "major",
    "minor",
    "patch",
];
pub const IMAGE_VARS: &[&str] = &["registry", "repo", "name"];
pub const ARCH_VARS: &[&str] = &[
    "arch",
    "platform",
    "os",
    "architecture",
    "variant",
    "platform_tag",
];

/// Every variable name, for "did you mean".
pub fn all_names() -> impl Iterator<Item = &'static str> {
    IMAGE_VARS.iter().chain(ARCH_VARS).chain(GIT_VARS).copied()
}

/// The values for one image (and arch, where there is one).
#[derive(Debug, Clone)]
pub struct Vars<'a> {
    pub registry: Option<&'a str>,
    pub repo: &'a str,
    pub name: &'a str,
    pub arch: Option<&'a str>,
    pub platform: Option<&'a Platform>,
    pub git: &'a GitValues,
    /// `{image.OTHER}`: per-arch references of dependencies, for this arch.
    pub images: Option<&'a BTreeMap<String, String>>,
}

impl Vars<'_> {
    pub fn get(&self, name: &str) -> Option<String> {
        if let Some(other) = name.strip_prefix("image.") {
            return self.images.and_then(|m| m.get(other).cloned());
        }
        match name {
            "registry" => self.registry.map(str::to_string),
            "repo" => Some(self.repo.to_string()),
            "name" => Some(self.name.to_string()),
            "arch" => self.arch.map(str::to_string),
            "platform" => self.platform.map(Platform::to_string),
            "os" => self.platform.map(|p| p.os.clone()),
            "architecture" => self.platform.map(|p| p.arch.clone()),
            "variant" => self.platform.map(|p| p.variant.clone().unwrap_or_default()),
            "platform_tag" => self.platform.map(Platform::tag),
            _ => self.git.get(name).map(str::to_string),
        }
    }
}

/// Split a semver-like git tag (`v1.2.3`, `1.2`, `v2.0.0-rc.1`) into its parts.
pub fn semver_parts(tag: &str) -> (Option<String>, Option<(String, String, String)>) {
    let v = tag
        .strip_prefix('v')
        .or_else(|| tag.strip_prefix('V'))
        .unwrap_or(tag);
    let core = v.split(['-', '+']).next().unwrap_or("");
    // A pre-release (`1.2.3-rc.1`) sets `{version}` only, as docker/metadata-action
    // does: a release candidate must not move `1` and `1.2`. Build metadata alone
    // (`1.2.3+build.5`) is a release.
    let pre_release = v[core.len()..].starts_with('-');
    let nums: Vec<&str> = core.split('.').collect();
    let numeric = !nums.is_empty()
        && nums.len() <= 3
        && nums
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if !numeric {
        return (Some(tag.to_string()), None);
    }
    if pre_release {
        return (Some(v.to_string()), None);
    }
    let get = |i: usize| nums.get(i).map_or("0".to_string(), |s| s.to_string());
    (Some(v.to_string()), Some((get(0), get(1), get(2))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver() {
        // (tag, {version}, {major}.{minor}.{patch} when a release)
        let cases = [
            ("v1.2.3", "1.2.3", Some("1.2.3")),
            ("2.0.0-rc.1", "2.0.0-rc.1", None),
            ("v1.2.3-rc.1+build.5", "1.2.3-rc.1+build.5", None),
            ("v1.2.3+build.5", "1.2.3+build.5", Some("1.2.3")),
            ("v3.1", "3.1", Some("3.1.0")),
            ("nightly", "nightly", None),
        ];
        for (tag, version, parts) in cases {
            let (v, p) = semver_parts(tag);
            assert_eq!(v.as_deref(), Some(version), "{tag}");
            let p = p.map(|(a, b, c)| format!("{a}.{b}.{c}"));
            assert_eq!(p.as_deref(), parts, "{tag}");
        }
    }
}
