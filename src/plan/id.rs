//! What a step is and how it is named: [`StepKind`], [`Stage`], the typed
//! [`StepId`] (whose `Display` is the id of SPEC.md §4: `build:api/amd64`,
//! `manifest-push:api:latest`, `setup-qemu`), [`StepIdx`] (a position in a sealed
//! plan) and [`SkipId`] (what a skipped entry names).

use std::fmt::{self, Write as _};
use std::sync::Arc;

use serde::Serialize;

/// Names the plan shares: each image and arch name is allocated once by the
/// builder, and every id and action that mentions it holds a clone of the Arc.
pub type Name = Arc<str>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    SetupQemu,
    Build,
    Test,
    Push,
    ManifestCreate,
    ManifestPush,
    Verify,
}

impl StepKind {
    /// Every kind, in the order a plan's steps of one image come.
    pub const ALL: [StepKind; 7] = [
        StepKind::SetupQemu,
        StepKind::Build,
        StepKind::Test,
        StepKind::Push,
        StepKind::ManifestCreate,
        StepKind::ManifestPush,
        StepKind::Verify,
    ];

    /// The kind [`StepKind::as_str`] names.
    pub fn parse(s: &str) -> Option<StepKind> {
        StepKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::SetupQemu => "setup-qemu",
            StepKind::Build => "build",
            StepKind::Test => "test",
            StepKind::Push => "push",
            StepKind::ManifestCreate => "manifest-create",
            StepKind::ManifestPush => "manifest-push",
            StepKind::Verify => "verify",
        }
    }

    pub fn stage(self) -> Stage {
        match self {
            StepKind::SetupQemu | StepKind::Build | StepKind::Test => Stage::Build,
            StepKind::Push => Stage::Push,
            StepKind::ManifestCreate | StepKind::ManifestPush => Stage::Publish,
            StepKind::Verify => Stage::Verify,
        }
    }
}

/// `--stage`: a slice of the pipeline, for sharded CI jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    Build,
    Push,
    Publish,
    Verify,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Build, Stage::Push, Stage::Publish, Stage::Verify];
}

/// A step's id. It prints on its own (external needs, skipped entries and
/// events name steps that may not be in the plan), and costs two reference
/// counts to make.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StepId {
    SetupQemu,
    /// A build, test, push or verify of one image for one arch
    /// ([`StepId::per_arch`] makes them, of those kinds only).
    PerArch {
        kind: StepKind,
        image: Name,
        arch: Name,
    },
    /// A manifest-create or manifest-push of one image's list tag
    /// ([`StepId::list`]).
    List {
        kind: StepKind,
        image: Name,
        tag: Name,
    },
}

impl StepId {
    /// The id of a per-arch step (build, test, push, verify) of `image`.
    /// `None` for the other kinds, which are not per arch.
    pub fn per_arch(kind: StepKind, image: &Name, arch: &Name) -> Option<StepId> {
        matches!(
            kind,
            StepKind::Build | StepKind::Test | StepKind::Push | StepKind::Verify
        )
        .then(|| StepId::PerArch {
            kind,
            image: image.clone(),
            arch: arch.clone(),
        })
    }

    /// The id of a list step (manifest-create, manifest-push) of `image`.
    pub fn list(kind: StepKind, image: &Name, tag: &Name) -> Option<StepId> {
        matches!(kind, StepKind::ManifestCreate | StepKind::ManifestPush).then(|| StepId::List {
            kind,
            image: image.clone(),
            tag: tag.clone(),
        })
    }

    pub fn kind(&self) -> StepKind {
        match self {
            StepId::SetupQemu => StepKind::SetupQemu,
            StepId::PerArch { kind, .. } | StepId::List { kind, .. } => *kind,
        }
    }

    pub fn image(&self) -> Option<&str> {
        match self {
            StepId::SetupQemu => None,
            StepId::PerArch { image, .. } | StepId::List { image, .. } => Some(image),
        }
    }

    pub fn arch(&self) -> Option<&str> {
        match self {
            StepId::PerArch { arch, .. } => Some(arch),
            _ => None,
        }
    }

    pub fn tag(&self) -> Option<&str> {
        match self {
            StepId::List { tag, .. } => Some(tag),
            _ => None,
        }
    }

    /// The same image and arch (or tag), another kind of the same family:
    /// `test:api/amd64` → `push:api/amd64`. `None` across families.
    pub fn with_kind(&self, kind: StepKind) -> Option<StepId> {
        match self {
            StepId::PerArch { image, arch, .. } => StepId::per_arch(kind, image, arch),
            StepId::List { image, tag, .. } => StepId::list(kind, image, tag),
            StepId::SetupQemu => (kind == StepKind::SetupQemu).then_some(StepId::SetupQemu),
        }
    }
}

impl StepId {
    /// The pieces of the id's text: `build`, `:`, `api`, `/`, `amd64`.
    fn pieces(&self) -> [&str; 5] {
        let kind = self.kind().as_str();
        match self {
            StepId::SetupQemu => [kind, "", "", "", ""],
            StepId::PerArch { image, arch, .. } => [kind, ":", image, "/", arch],
            StepId::List { image, tag, .. } => [kind, ":", image, ":", tag],
        }
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.pieces().iter().try_for_each(|p| f.write_str(p))
    }
}

/// Compares with the id's text without making it: `step.id == "build:api/amd64"`.
impl PartialEq<str> for StepId {
    fn eq(&self, other: &str) -> bool {
        display_eq(self, other)
    }
}

impl PartialEq<&str> for StepId {
    fn eq(&self, other: &&str) -> bool {
        display_eq(self, other)
    }
}

/// `Display` of `value` is exactly `text`, checked piece by piece as it is written.
fn display_eq(value: &dyn fmt::Display, text: &str) -> bool {
    struct Rest<'a>(Option<&'a str>);
    impl fmt::Write for Rest<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0 = self.0.and_then(|r| r.strip_prefix(s));
            if self.0.is_some() {
                Ok(())
            } else {
                Err(fmt::Error)
            }
        }
    }
    let mut rest = Rest(Some(text));
    write!(rest, "{value}").is_ok() && rest.0 == Some("")
}

/// The id's text, put together without the formatting machinery (a plan's
/// JSON writes ~100,000 ids).
impl Serialize for StepId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.pieces().concat())
    }
}

/// A step's position in a sealed [`Plan`](super::Plan): the plan hands these
/// out, and its needs and dependents are lists of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StepIdx(pub(super) u32);

impl StepIdx {
    pub fn index(self) -> usize {
        self.0 as usize
    }

    pub(super) fn new(i: usize) -> StepIdx {
        StepIdx(i as u32)
    }
}

impl fmt::Display for StepIdx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What a skipped entry names: a step, or every step of one kind of a whole
/// image (`--changed-since`: `build:api`, `push:api`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipId {
    Step(StepId),
    Image { kind: StepKind, image: Name },
}

impl SkipId {
    pub fn kind(&self) -> StepKind {
        match self {
            SkipId::Step(id) => id.kind(),
            SkipId::Image { kind, .. } => *kind,
        }
    }

    pub fn image(&self) -> Option<&str> {
        match self {
            SkipId::Step(id) => id.image(),
            SkipId::Image { image, .. } => Some(image),
        }
    }

    pub fn arch(&self) -> Option<&str> {
        match self {
            SkipId::Step(id) => id.arch(),
            SkipId::Image { .. } => None,
        }
    }

    pub fn tag(&self) -> Option<&str> {
        match self {
            SkipId::Step(id) => id.tag(),
            SkipId::Image { .. } => None,
        }
    }
}

impl fmt::Display for SkipId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipId::Step(id) => id.fmt(f),
            SkipId::Image { kind, image } => write!(f, "{}:{image}", kind.as_str()),
        }
    }
}

impl PartialEq<&str> for SkipId {
    fn eq(&self, other: &&str) -> bool {
        display_eq(self, other)
    }
}

impl Serialize for SkipId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::from(s)
    }

    #[test]
    fn ids_print_as_in_the_plan_json() {
        let (api, amd) = (n("api"), n("amd64"));
        assert_eq!(StepId::SetupQemu.to_string(), "setup-qemu");
        let b = StepId::per_arch(StepKind::Build, &api, &amd).unwrap();
        assert_eq!(b.to_string(), "build:api/amd64");
        assert_eq!(
            b.with_kind(StepKind::Push).unwrap().to_string(),
            "push:api/amd64"
        );
        let l = StepId::list(StepKind::ManifestPush, &api, &n("latest")).unwrap();
        assert_eq!(l.to_string(), "manifest-push:api:latest");
        assert_eq!(l.tag(), Some("latest"));
        assert_eq!(l.arch(), None);
        assert!(b.with_kind(StepKind::ManifestCreate).is_none());
        let skip = SkipId::Image {
            kind: StepKind::Build,
            image: api,
        };
        assert_eq!(skip.to_string(), "build:api");
    }

    #[test]
    fn ids_compare_with_their_text() {
        let b = StepId::per_arch(StepKind::Test, &n("api"), &n("arm64v8")).unwrap();
        assert!(b == "test:api/arm64v8");
        assert!(b != "test:api/arm64v");
        assert!(b != "test:api/arm64v8x");
        assert!(b != "build:api/arm64v8");
        assert!(StepId::SetupQemu == "setup-qemu");
        assert!(StepId::SetupQemu != "");
    }
}
