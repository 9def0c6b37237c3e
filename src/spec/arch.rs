//! Architectures: the built-in table (Docker official-image prefixes) and OCI
//! platform strings with their normalisation.

use std::fmt;

/// An OCI platform `os/arch[/variant]`, normalised (`aarch64` → `arm64/v8`, …).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Piece by piece, not through `write!` (every step of a plan shows one).
        f.write_str(&self.os)?;
        f.write_str("/")?;
        f.write_str(&self.arch)?;
        if let Some(v) = &self.variant {
            f.write_str("/")?;
            f.write_str(v)?;
        }
        Ok(())
    }
}

/// OCI architectures (GOARCH values) accepted in a platform string.
pub const OCI_ARCHES: &[&str] = &[
    "386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le", "mipsle", "ppc64",
    "ppc64le", "riscv64", "s390x", "wasm",
];

/// Operating systems accepted in a platform string.
pub const OCI_OSES: &[&str] = &[
    "linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "illumos", "wasip1",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    #[error("a platform is `os/arch` or `os/arch/variant`")]
    Shape,
    #[error("unknown operating system `{0}`")]
    Os(String),
    #[error("unknown architecture `{0}`")]
    Arch(String),
    #[error("invalid variant `{0}`")]
    Variant(String),
}

impl Platform {
    /// Parse and normalise `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform, PlatformError> {
        let parts: Vec<&str> = s.split('/').collect();
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err(PlatformError::Shape);
        }
        let os = parts[0].to_ascii_lowercase();
        if !OCI_OSES.contains(&os.as_str()) {
            return Err(PlatformError::Os(parts[0].to_string()));
        }
        let raw_arch = parts[1].to_ascii_lowercase();
        let mut variant = parts.get(2).map(|v| v.to_ascii_lowercase());
        let arch = match raw_arch.as_str() {
            "x86_64" | "x86-64" | "x64" => "amd64".to_string(),
            "aarch64" => "arm64".to_string(),
            "i386" | "i686" | "x86" => "386".to_string(),
            "armhf" | "armv7" | "armv7l" => {
                variant.get_or_insert_with(|| "v7".into());
                "arm".to_string()
            }
            "armv6" | "armv6l" => {
                variant.get_or_insert_with(|| "v6".into());
                "arm".to_string()
            }
            // Debian's armel is ARMv5 (docker-library's arm32v5).
            "armel" | "armv5" | "armv5l" | "armv5tel" => {
                variant.get_or_insert_with(|| "v5".into());
                "arm".to_string()
            }
            a if OCI_ARCHES.contains(&a) => a.to_string(),
            _ => return Err(PlatformError::Arch(parts[1].to_string())),
        };
        match (arch.as_str(), variant.as_deref()) {
            ("arm64", None) => variant = Some("v8".into()),
            ("arm", None) => variant = Some("v7".into()),
            ("arm", Some("v5" | "v6" | "v7" | "v8")) | ("arm64", Some("v8" | "v9")) => {}
            ("amd64", Some("v1" | "v2" | "v3" | "v4")) => {}
            (_, Some(v)) if matches!(arch.as_str(), "arm" | "arm64" | "amd64") => {
                return Err(PlatformError::Variant(v.to_string()))
            }
            (_, Some(v)) if !v.chars().all(|c| c.is_ascii_alphanumeric()) => {
                return Err(PlatformError::Variant(v.to_string()))
            }
            _ => {}
        }
        Ok(Platform { os, arch, variant })
    }

    /// The platform as a tag component, the way Makefiles write
    /// `$(subst /,_,$(PLATFORM))`: `linux_amd64`, `linux_arm64` (arm64's default
    /// `v8` left out), `linux_arm_v7`.
    pub fn tag(&self) -> String {
        match self.variant.as_deref() {
            Some(v) if !(self.arch == "arm64" && v == "v8") => {
                format!("{}_{}_{v}", self.os, self.arch)
            }
            _ => format!("{}_{}", self.os, self.arch),
        }
    }

    /// The qemu binfmt handler that runs this platform's binaries
    /// (`/proc/sys/fs/binfmt_misc/<name>`).
    pub fn qemu_handler(&self) -> Option<&'static str> {
        Some(match self.arch.as_str() {
            "amd64" => "qemu-x86_64",
            "386" => "qemu-i386",
            "arm" => "qemu-arm",
            "arm64" => "qemu-aarch64",
            "ppc64le" => "qemu-ppc64le",
            "ppc64" => "qemu-ppc64",
            "s390x" => "qemu-s390x",
            "riscv64" => "qemu-riscv64",
            "mips64le" => "qemu-mips64el",
            "mips64" => "qemu-mips64",
            "mips" => "qemu-mips",
            "mipsle" => "qemu-mipsel",
            "loong64" => "qemu-loongarch64",
            _ => return None,
        })
    }

    /// Whether a machine of `host` runs this platform's binaries without emulation.
    pub fn runs_natively_on(&self, host: &Platform) -> bool {
        if self.os != host.os {
            return false;
        }
        match (host.arch.as_str(), self.arch.as_str()) {
            (h, a) if h == a => true,
            ("amd64", "386") => true,
            _ => false,
        }
    }

    /// The platform of the machine multiarch runs on.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "linux/amd64",
            "aarch64" => "linux/arm64",
            "arm" => "linux/arm/v7",
            "x86" => "linux/386",
            "powerpc64" => "linux/ppc64le",
            "s390x" => "linux/s390x",
            "riscv64" => "linux/riscv64",
            _ => "linux/amd64",
        };
        // The table above only holds valid platforms.
        Platform::parse(arch).unwrap_or(Platform {
            os: "linux".into(),
            arch: "amd64".into(),
            variant: None,
        })
    }
}

/// An entry of the arch table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arch {
    pub name: String,
    pub platform: Platform,
    /// Accepted `uname -m` answers inside a container of this arch.
    pub uname: Vec<String>,
    /// A native engine endpoint (DOCKER_HOST), or a docker context.
    pub builder: Option<Builder>,
    /// CI runner tags (GitLab `tags`, GitHub `runs-on`) for `multiarch ci`.
    pub runner_tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Builder {
    Host(String),
    Context(String),
}

impl Arch {
    /// Emulated archs need a qemu binfmt handler on the host.
    pub fn needs_emulation(&self, host: &Platform) -> bool {
        self.builder.is_none() && !self.platform.runs_natively_on(host)
    }
}

/// The built-in arches: name, platform, accepted `uname -m`.
pub const BUILTIN: &[(&str, &str, &[&str])] = &[
    ("amd64", "linux/amd64", &["x86_64"]),
    (
        "arm32v5",
        "linux/arm/v5",
        &["armv5tel", "armv5tejl", "armv7l"],
    ),
    ("arm32v6", "linux/arm/v6", &["armv6l", "armv7l"]),
    ("arm32v7", "linux/arm/v7", &["armv7l"]),
    ("arm64v8", "linux/arm64/v8", &["aarch64"]),
    ("i386", "linux/386", &["i686", "i386", "x86_64"]),
    ("ppc64le", "linux/ppc64le", &["ppc64le"]),
    ("s390x", "linux/s390x", &["s390x"]),
    ("riscv64", "linux/riscv64", &["riscv64"]),
    ("mips64le", "linux/mips64le", &["mips64"]),
];

pub fn builtin(name: &str) -> Option<Arch> {
    BUILTIN
        .iter()
        .find(|(n, _, _)| *n == name)
        .and_then(|(n, p, u)| {
            Some(Arch {
                name: n.to_string(),
                platform: Platform::parse(p).ok()?,
                uname: u.iter().map(|s| s.to_string()).collect(),
                builder: None,
                runner_tags: Vec::new(),
            })
        })
}

pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTIN.iter().map(|(n, _, _)| *n)
}

/// The built-in name of a normalised platform, if it has one.
pub fn builtin_for_platform(p: &Platform) -> Option<&'static str> {
    BUILTIN
        .iter()
        .find(|(_, plat, _)| Platform::parse(plat).ok().as_ref() == Some(p))
        .map(|(n, _, _)| *n)
}

/// Common names people write for an arch, mapped to the built-in name.
pub fn alias(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "x86_64" | "x86-64" | "x64" | "amd" | "linux/amd64" => "amd64",
        "arm64" | "aarch64" | "arm64v7" | "armv8" | "arm64/v8" => "arm64v8",
        "armhf" | "armv7" | "armv7l" | "arm" | "arm32" | "arm/v7" | "armv7hf" => "arm32v7",
        "armv6" | "armv6l" | "arm/v6" => "arm32v6",
        "armel" | "armv5" | "armv5l" | "armv5tel" | "arm/v5" => "arm32v5",
        "386" | "i686" | "x86" => "i386",
        "ppc64el" | "powerpc64le" => "ppc64le",
        "mips64el" => "mips64le",
        "riscv" | "rv64" => "riscv64",
        _ => return None,
    })
}

/// The built-in arch a name stands for: the name itself (`arm64v8`) or a common
/// alias (`aarch64`, `armhf`, `x86_64`, `arm64`), as files and directories of
/// per-arch projects are named.
pub fn builtin_or_alias(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    builtin_names()
        .find(|b| *b == lower)
        .or_else(|| alias(&lower))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        Platform::parse(s)
            .map(|p| p.to_string())
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn normalisation() {
        for (given, normal) in [
            ("linux/arm64", "linux/arm64/v8"),
            ("linux/aarch64", "linux/arm64/v8"),
            ("linux/x86_64", "linux/amd64"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/arm/v6", "linux/arm/v6"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/i386", "linux/386"),
            ("Linux/AMD64", "linux/amd64"),
            ("linux/ppc64le", "linux/ppc64le"),
        ] {
            assert_eq!(p(given), normal, "{given}");
        }
    }

    #[test]
    fn platform_tags() {
        for (platform, tag) in [
            ("linux/amd64", "linux_amd64"),
            ("linux/arm64", "linux_arm64"),
            ("linux/arm64/v8", "linux_arm64"),
            ("linux/arm64/v9", "linux_arm64_v9"),
            ("linux/arm/v7", "linux_arm_v7"),
            ("linux/arm/v6", "linux_arm_v6"),
            ("linux/386", "linux_386"),
            ("linux/amd64/v3", "linux_amd64_v3"),
        ] {
            assert_eq!(Platform::parse(platform).unwrap().tag(), tag);
        }
    }

    #[test]
    fn bad_platforms() {
        assert_eq!(
            p("linux"),
            "error: a platform is `os/arch` or `os/arch/variant`"
        );
        assert_eq!(
            p("linux/arm64/v8/x"),
            "error: a platform is `os/arch` or `os/arch/variant`"
        );
        assert_eq!(
            p("linux//v7"),
            "error: a platform is `os/arch` or `os/arch/variant`"
        );
        assert_eq!(p("lnux/amd64"), "error: unknown operating system `lnux`");
        assert_eq!(p("linux/arm65"), "error: unknown architecture `arm65`");
        assert_eq!(p("linux/arm/v9"), "error: invalid variant `v9`");
    }

    #[test]
    fn builtin_lookup_by_platform() {
        for (name, plat, _) in BUILTIN {
            let parsed = Platform::parse(plat).unwrap();
            assert_eq!(builtin_for_platform(&parsed), Some(*name));
        }
        let arm64 = Platform::parse("linux/arm64").unwrap();
        assert_eq!(builtin_for_platform(&arm64), Some("arm64v8"));
    }

    #[test]
    fn emulation() {
        let host = Platform::parse("linux/amd64").unwrap();
        assert!(!builtin("amd64").unwrap().needs_emulation(&host));
        assert!(!builtin("i386").unwrap().needs_emulation(&host));
        assert!(builtin("arm64v8").unwrap().needs_emulation(&host));
        assert_eq!(
            builtin("arm32v7").unwrap().platform.qemu_handler(),
            Some("qemu-arm")
        );
    }

    #[test]
    fn aliases() {
        for (given, name) in [
            ("arm64", "arm64v8"),
            ("x86_64", "amd64"),
            ("armhf", "arm32v7"),
        ] {
            assert_eq!(alias(given), Some(name));
        }
        assert_eq!(alias("zzz"), None);
    }
}
