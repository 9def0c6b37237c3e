//! The machine planning happens for.

use std::path::Path;

use crate::spec::Platform;

/// Where `update-binfmts` may be installed.
const UPDATE_BINFMTS: &[&str] = &[
    "/usr/sbin/update-binfmts",
    "/usr/bin/update-binfmts",
    "/sbin/update-binfmts",
];

/// The machine planning happens for.
#[derive(Debug, Clone)]
pub struct Host {
    pub platform: Platform,
    /// `update-binfmts` is installed (chooses the default qemu setup).
    pub has_update_binfmts: bool,
}

impl Host {
    /// This machine: its platform, and whether `update-binfmts` is installed.
    pub fn detect() -> Host {
        Host {
            platform: Platform::host(),
            has_update_binfmts: UPDATE_BINFMTS.iter().any(|p| Path::new(p).exists()),
        }
    }

    /// A given platform (tests, `MULTIARCH_HOST_PLATFORM`), with `update-binfmts`.
    pub fn fixed(platform: &str) -> Host {
        Host {
            platform: Platform::parse(platform).unwrap_or_else(|_| Platform::host()),
            has_update_binfmts: true,
        }
    }
}
