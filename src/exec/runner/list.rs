//! manifest-create and manifest-push, over the registry's API (SPEC.md §2): each
//! entry read by digest (this run's push, else the registry), its config's
//! platform checked against the arch, an entry that is itself an index reduced
//! to its platform's image and that image's attestations, every entry copied
//! into the list's repository when it lives in another (blobs mounted, not
//! copied), the index assembled; then PUT by tag. A floating tag moves forward
//! only. With `--skip-existing`, a list the registry already serves as this
//! exact index is left alone.

use super::EngineRunner;
use crate::context::GitCli;
use crate::events::format::short_digest;
use crate::exec::executor::{StepIo, StepResult};
use crate::plan::{ListEntry, Step, StepId};
use crate::registry::client::{self, Manifest, Repo};
use crate::registry::index::{self, Descriptor, IndexFormat};
use crate::spec::Platform;

/// An index this run assembled, by its list.
#[derive(Debug, Clone)]
pub(super) struct Built {
    pub media_type: &'static str,
    pub bytes: Vec<u8>,
    pub digest: String,
    /// The image entries: each arch's platform and digest.
    pub images: Vec<(Platform, String)>,
}

/// What this run did with a list's tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Published {
    /// The tag names this run's index.
    Pushed(String),
    /// A floating tag moved to this run's index: a newer commit's run may move
    /// it on.
    Floating(String),
    /// A floating tag left where it was (the digest it names), and why.
    Kept { digest: String, why: String },
}

/// `[publish] atomic`: the tags this run moved, with what each named before
/// (`None`: it did not exist), and the failure that stopped the moves.
#[derive(Debug, Default)]
pub(super) struct TagMoves {
    moved: Vec<(Repo, String, String, Option<Manifest>)>,
    failed: Option<String>,
}

/// One entry as it goes into the index, and the manifests behind it.
struct Child {
    entries: Vec<Descriptor>,
    manifests: Vec<Manifest>,
}

impl EngineRunner {
    /// The digest of a per-arch reference: from this run's push, else the registry.
    pub(super) fn entry_digest(
        &self,
        io: &StepIo<'_>,
        push_step: &StepId,
        reference: &str,
    ) -> Result<String, StepResult> {
        if let Some(d) = io.digest_of(&push_step.to_string()) {
            return Ok(d);
        }
        match self.registry_digest(reference, Some(io)) {
            Ok(Some(d)) => Ok(d),
            Ok(None) => Err(StepResult::failed(
                format!("{reference} was not pushed in this run and is not in the registry ({push_step} is needed first)"),
                Vec::new(),
            )),
            Err(e) => Err(StepResult::failed(format!("cannot read {reference}: {e}"), Vec::new())),
        }
    }

    pub(super) fn manifest_create(
        &self,
        step: &Step,
        io: &StepIo<'_>,
        list: &str,
        entries: &[ListEntry],
        annotations: &[(String, String)],
        format: IndexFormat,
    ) -> StepResult {
        let _ = step;
        let Some((target, _)) = Repo::parse(list) else {
            return StepResult::failed(format!("`{list}` is not an image reference"), Vec::new());
        };
        let mut descriptors = Vec::new();
        let mut images = Vec::new();
        for e in entries {
            let digest = match self.entry_digest(io, &e.push_step, &e.reference) {
                Ok(d) => d,
                Err(r) => return r,
            };
            let Some((source, _)) = Repo::parse(&e.reference) else {
                return StepResult::failed(
                    format!("`{}` is not an image reference", e.reference),
                    Vec::new(),
                );
            };
            let child =
                match self.read_child(io, &source, &e.reference, &digest, &e.platform, format) {
                    Ok(c) => c,
                    Err(why) => return StepResult::failed(why, Vec::new()),
                };
            if source != target {
                if let Err(e) = self.copy_into(io, &source, &target, &child.manifests) {
                    return StepResult::failed(
                        format!("cannot copy {} into {target}: {e}", e_ref(&source, &digest)),
                        Vec::new(),
                    );
                }
            }
            images.push((e.platform.clone(), child.entries[0].digest.clone()));
            descriptors.extend(child.entries);
        }
        let bytes = index::build(format, &descriptors, annotations);
        let digest = client::sha256(&bytes);
        let shown: Vec<String> = images
            .iter()
            .map(|(p, d)| format!("{p} {}", short_digest(d)))
            .collect();
        io.line(&format!(
            "{list}: {} with {} ({})",
            match format {
                IndexFormat::Oci => "an OCI image index",
                IndexFormat::Docker => "a Docker manifest list",
            },
            shown.join(", "),
            short_digest(&digest)
        ));
        let built = Built {
            media_type: index::index_media_type(format),
            bytes,
            digest: digest.clone(),
            images,
        };
        // Atomic: every index is in the registry by digest before any tag moves.
        if self.atomic {
            let put = self
                .retry
                .run_registry(&format!("PUT {target}@{digest}"), Some(io), || {
                    self.registry
                        .put_manifest(&target, &digest, built.media_type, &built.bytes)
                });
            if let Err(e) = put {
                return StepResult::failed(
                    format!("cannot push the index by digest: {e}"),
                    Vec::new(),
                );
            }
        }
        if let Ok(mut m) = self.indexes.lock() {
            m.insert(list.to_string(), built);
        }
        if self.skip_existing {
            if let Ok(Some(d)) = self.registry_digest(list, Some(io)) {
                if d == digest {
                    if let Ok(mut m) = self.unchanged.lock() {
                        m.insert(list.to_string());
                    }
                    return StepResult::cached(
                        format!("{list} is already this index ({})", short_digest(&d)),
                        None,
                    );
                }
                io.note(&format!(
                    "{list} in the registry is {}, not this run's index; pushing it again",
                    short_digest(&d)
                ));
            }
        }
        StepResult::ok_with(format!(
            "{} entries, {}",
            descriptors.len(),
            short_digest(&digest)
        ))
    }

    /// Read one entry by digest: its manifest, its config's platform (which must
    /// be `want`), or, for an index, its `want` image and that image's attestations.
    fn read_child(
        &self,
        io: &StepIo<'_>,
        source: &Repo,
        reference: &str,
        digest: &str,
        want: &Platform,
        format: IndexFormat,
    ) -> Result<Child, String> {
        let m = self
            .get_manifest(io, source, digest)?
            .ok_or_else(|| format!("{reference} ({digest}) is not in the registry"))?;
        if !index::is_index(&m.media_type) {
            self.check_config(io, source, reference, &m, want)?;
            return Ok(Child {
                entries: vec![Descriptor {
                    media_type: m.media_type.clone(),
                    digest: m.digest.clone(),
                    size: m.bytes.len() as u64,
                    platform: Some(want.clone()),
                    annotations: Default::default(),
                }],
                manifests: vec![m],
            });
        }
        let entries = index::entries(&m.bytes)
            .ok_or_else(|| format!("{reference} is an index that cannot be read"))?;
        let matching: Vec<&Descriptor> = index::images_for(&entries, want).collect();
        let image = match matching.as_slice() {
            [one] => (*one).clone(),
            [] => {
                let have: Vec<String> = index::image_entries(&entries)
                    .filter_map(|e| e.platform.as_ref().map(|p| p.to_string()))
                    .collect();
                return Err(format!(
                    "{reference} is an index with no {want} entry (it has {})",
                    if have.is_empty() { "none".to_string() } else { have.join(", ") }
                ));
            }
            more => {
                return Err(format!(
                    "{reference} is an index with {} entries for {want}: which one is meant is not clear",
                    more.len()
                ))
            }
        };
        let im = self
            .get_manifest(io, source, &image.digest)?
            .ok_or_else(|| {
                format!(
                    "{reference}: its {want} entry {} is not in the registry",
                    image.digest
                )
            })?;
        self.check_config(io, source, reference, &im, want)?;
        let mut out = Child {
            entries: vec![Descriptor {
                platform: Some(want.clone()),
                ..image.clone()
            }],
            manifests: vec![im],
        };
        // A Docker manifest list has no annotations: attestations cannot be told
        // apart there, so they are left out of it.
        if format == IndexFormat::Oci {
            for a in entries
                .iter()
                .filter(|e| e.attests() == Some(image.digest.as_str()))
            {
                let am = self.get_manifest(io, source, &a.digest)?.ok_or_else(|| {
                    format!(
                        "{reference}: its attestation {} is not in the registry",
                        a.digest
                    )
                })?;
                out.entries.push(a.clone());
                out.manifests.push(am);
            }
        }
        Ok(out)
    }

    /// The image config of `m` must record `want` (variant included).
    fn check_config(
        &self,
        io: &StepIo<'_>,
        source: &Repo,
        reference: &str,
        m: &Manifest,
        want: &Platform,
    ) -> Result<(), String> {
        let (config, _) = index::image_blobs(&m.bytes).ok_or_else(|| {
            format!(
                "{reference}: {} is not an image manifest ({})",
                m.digest, m.media_type
            )
        })?;
        let bytes = self
            .retry
            .run_registry(
                &format!("reading the config of {reference}"),
                Some(io),
                || self.registry.get_blob(source, &config.digest),
            )
            .map_err(|e| format!("cannot read the config of {reference}: {e}"))?;
        let got = index::config_platform(&bytes)
            .ok_or_else(|| format!("{reference}: its config names no os/architecture"))?;
        if !index::same_platform(&got, want) {
            return Err(format!(
                "{reference} is {got} by its config, not {want}: it is not this arch's image"
            ));
        }
        Ok(())
    }

    pub(super) fn get_manifest(
        &self,
        io: &StepIo<'_>,
        repo: &Repo,
        reference: &str,
    ) -> Result<Option<Manifest>, String> {
        self.retry
            .run_registry(&format!("reading {repo}@{reference}"), Some(io), || {
                self.registry.get_manifest(repo, reference)
            })
            .map_err(|e| e.to_string())
    }

    /// Make the manifests (and their blobs) of `source` available in `target`
    /// by digest, as `docker manifest push` does: blobs are mounted. The lists
    /// of one image share their entries: each is copied once per run, one copy
    /// at a time (distribution 2.8 can answer a manifest PUT `blob unknown` while
    /// the same blob is being mounted into the repository by another request;
    /// such a PUT is tried again after mounting once more).
    fn copy_into(
        &self,
        io: &StepIo<'_>,
        source: &Repo,
        target: &Repo,
        manifests: &[Manifest],
    ) -> Result<(), client::Error> {
        let Ok(mut copied) = self.copied.lock() else {
            return Err(client::Error::Other("the copy lock is poisoned".into()));
        };
        for m in manifests {
            let key = format!("{target}@{}", m.digest);
            if copied.contains(&key) {
                continue;
            }
            let mut tries = 0;
            loop {
                match self.copy_one(io, source, target, m) {
                    Ok(()) => break,
                    Err(e) if e.status() == Some(400) && tries == 0 => {
                        tries += 1;
                        io.note(&format!(
                            "copying {} into {target}: {e}; once more",
                            m.digest
                        ));
                    }
                    Err(e) => return Err(e),
                }
            }
            copied.insert(key);
        }
        Ok(())
    }

    fn copy_one(
        &self,
        io: &StepIo<'_>,
        source: &Repo,
        target: &Repo,
        m: &Manifest,
    ) -> Result<(), client::Error> {
        let there = self
            .retry
            .run_registry("checking the list's repository", Some(io), || {
                self.registry.head_manifest(target, &m.digest)
            })?;
        if there.is_some() {
            return Ok(());
        }
        if let Some((config, layers)) = index::image_blobs(&m.bytes) {
            for b in std::iter::once(&config).chain(layers.iter()) {
                self.retry.run_registry("mounting a blob", Some(io), || {
                    self.registry.mount_blob(target, source, &b.digest)
                })?;
            }
        }
        self.retry
            .run_registry("copying a manifest", Some(io), || {
                self.registry
                    .put_manifest(target, &m.digest, &m.media_type, &m.bytes)
            })
            .map(|_| ())
    }

    /// Push the list's index by tag (see [`EngineRunner::push_list`]); what
    /// succeeded says which platforms the tag now serves: the index's image
    /// entries, each its config's platform as read from the registry by the
    /// manifest-create (a kept floating tag names another run's index: the
    /// plan's platforms are shown for it).
    pub(super) fn manifest_push(
        &self,
        io: &StepIo<'_>,
        image: &str,
        list: &str,
        floating: bool,
    ) -> StepResult {
        let mut r = self.push_list(io, image, list, floating);
        let pushed = self.published.lock().ok().is_some_and(|m| {
            m.get(image).is_some_and(|v| {
                v.iter()
                    .any(|(l, p)| l == list && !matches!(p, Published::Kept { .. }))
            })
        });
        if r.status.is_ok() && pushed {
            if let Some(b) = self.built(list) {
                r.platforms = b.images.iter().map(|(p, _)| p.to_string()).collect();
            }
        }
        r
    }

    fn push_list(&self, io: &StepIo<'_>, image: &str, list: &str, floating: bool) -> StepResult {
        if self.skip_existing && self.unchanged.lock().is_ok_and(|m| m.contains(list)) {
            let digest = self.built(list).map(|b| b.digest);
            if let Some(d) = &digest {
                self.record(image, list, Published::Pushed(d.clone()));
            }
            return StepResult::cached(
                format!("{list} is already in the registry with these entries"),
                digest,
            );
        }
        let Some(built) = self.built(list) else {
            return StepResult::failed(
                format!(
                    "{list} was not assembled in this run (its manifest-create did not succeed)"
                ),
                Vec::new(),
            );
        };
        let Some((repo, Some(tag))) = Repo::parse(list) else {
            return StepResult::failed(format!("`{list}` is not a tagged reference"), Vec::new());
        };
        if floating && !self.force_tags {
            match self.newer_there(io, &repo, &tag, &built) {
                Ok(Some((digest, why))) => {
                    io.note(&why);
                    self.record(image, list, Published::Kept { digest, why: why.clone() });
                    return StepResult::ok_with(why);
                }
                Ok(None) => {}
                Err(e) => {
                    return StepResult::failed(
                        format!("cannot read what {list} names now (a floating tag moves forward only): {e}"),
                        Vec::new(),
                    )
                }
            }
        }
        if self.atomic {
            return self.move_tag_atomically(io, image, list, &repo, &tag, &built);
        }
        match self.put_index(io, list, &repo, &tag, &built) {
            Ok(d) => {
                io.line(&format!("{list} → {d}"));
                let p = if floating {
                    Published::Floating(d.clone())
                } else {
                    Published::Pushed(d.clone())
                };
                self.record(image, list, p);
                StepResult::pushed(Some(d))
            }
            Err(e) => StepResult::failed(format!("manifest push failed: {e}"), Vec::new()),
        }
    }

    /// `[publish] atomic`: move one tag, remembering what it named; when the
    /// move fails, put every tag this run moved back (or remove one that did
    /// not exist, where the registry allows) and say so. After a failure no
    /// other tag moves.
    fn move_tag_atomically(
        &self,
        io: &StepIo<'_>,
        image: &str,
        list: &str,
        repo: &Repo,
        tag: &str,
        built: &Built,
    ) -> StepResult {
        let Ok(mut moves) = self.tag_moves.lock() else {
            return StepResult::failed(
                "[publish] atomic: the tag moves' lock is poisoned",
                Vec::new(),
            );
        };
        if let Some(why) = &moves.failed {
            return StepResult::failed(
                format!("[publish] atomic: {why}; {list} is left where it was"),
                Vec::new(),
            );
        }
        let before = self
            .retry
            .run_registry(&format!("reading {list}"), Some(io), || {
                self.registry.get_manifest(repo, tag)
            });
        let put = before.and_then(|before| {
            self.put_index(io, list, repo, tag, built)
                .map(|d| (before, d))
        });
        match put {
            Ok((before, d)) => {
                io.line(&format!("{list} → {d}"));
                moves
                    .moved
                    .push((repo.clone(), tag.to_string(), list.to_string(), before));
                drop(moves);
                self.record(image, list, Published::Pushed(d.clone()));
                StepResult::pushed(Some(d))
            }
            Err(e) => {
                moves.failed = Some(format!("moving {list} failed"));
                let mut said = Vec::new();
                for (r, t, l, before) in moves.moved.iter().rev() {
                    let undo = match before {
                        Some(m) => self
                            .retry
                            .run_registry(&format!("putting {l} back"), Some(io), || {
                                self.registry.put_manifest(r, t, &m.media_type, &m.bytes)
                            })
                            .map(|_| format!("{l} put back to {}", short_digest(&m.digest))),
                        None => self.registry.delete_manifest(r, t).map(|d| match d {
                            client::Deleted::Yes => format!("{l} removed (it did not exist before)"),
                            client::Deleted::NotAllowed => format!(
                                "{l} cannot be removed (the registry does not delete tags): it names this run's index"
                            ),
                        }),
                    };
                    let line = undo.unwrap_or_else(|e| format!("{l} could not be put back: {e}"));
                    io.note(&line);
                    said.push(line);
                }
                let undone = if said.is_empty() {
                    "no tag had moved".to_string()
                } else {
                    said.join("; ")
                };
                StepResult::failed(
                    format!("manifest push failed: {e}; [publish] atomic: {undone}"),
                    Vec::new(),
                )
            }
        }
    }

    /// SPEC.md §2: when the list `tag` names now is of a commit after this
    /// build's (a descendant; or, when either commit is outside the local
    /// history, created later), its digest and `kept TAG at SHORT: newer`.
    pub(super) fn newer_there(
        &self,
        io: &StepIo<'_>,
        repo: &Repo,
        tag: &str,
        built: &Built,
    ) -> Result<Option<(String, String)>, client::Error> {
        let Some(now) =
            self.retry
                .run_registry(&format!("reading {repo}:{tag}"), Some(io), || {
                    self.registry.get_manifest(repo, tag)
                })?
        else {
            return Ok(None);
        };
        if now.digest == built.digest {
            return Ok(None);
        }
        let short = revision(&now.bytes).unwrap_or_default();
        let short: String = short.chars().take(7).collect();
        let newer = self.later(&now.bytes, &built.bytes);
        Ok(newer.map(|why| (now.digest, format!("kept {tag} at {short}: {why}"))))
    }

    /// Why index `a` is of a commit after index `b`'s (its revision a
    /// descendant of `b`'s; or, when either is outside the local history, its
    /// `created` later), or `None` when it is not or cannot be told.
    pub(super) fn later(&self, a: &[u8], b: &[u8]) -> Option<String> {
        self.later_commit(
            &revision(a)?,
            created(a).as_deref(),
            &revision(b)?,
            created(b).as_deref(),
        )
    }

    /// [`Self::later`] of two commits, each its sha and commit time.
    pub(super) fn later_commit(
        &self,
        ra: &str,
        ca: Option<&str>,
        rb: &str,
        cb: Option<&str>,
    ) -> Option<String> {
        if ra == rb {
            return None;
        }
        match GitCli::new(&self.dir).is_ancestor(rb, ra) {
            Some(descendant) => descendant.then(|| "newer".to_string()),
            None => {
                let (ca, cb) = (ca?, cb?);
                let short: String = ra.chars().take(7).collect();
                (ca > cb).then(|| {
                    format!("newer ({short} is not in the local history; created {ca}, after this commit's {cb})")
                })
            }
        }
    }

    /// PUT this run's index of `list` by tag, under the registry retry policy:
    /// the digest the registry answers.
    pub(super) fn put_index(
        &self,
        io: &StepIo<'_>,
        list: &str,
        repo: &Repo,
        tag: &str,
        built: &Built,
    ) -> Result<String, client::Error> {
        self.retry
            .run_registry(&format!("PUT {list}"), Some(io), || {
                self.registry
                    .put_manifest(repo, tag, built.media_type, &built.bytes)
            })
    }

    pub(super) fn built(&self, list: &str) -> Option<Built> {
        self.indexes.lock().ok()?.get(list).cloned()
    }

    fn record(&self, image: &str, list: &str, p: Published) {
        if let Ok(mut m) = self.published.lock() {
            m.entry(image.to_string())
                .or_default()
                .retain(|(l, _)| l != list);
            if let Some(v) = m.get_mut(image) {
                v.push((list.to_string(), p));
            }
        }
    }

    /// The registry's digest of `reference` (`None`: it has none), under the
    /// retry policy.
    pub(crate) fn registry_digest(
        &self,
        reference: &str,
        io: Option<&StepIo<'_>>,
    ) -> Result<Option<String>, client::Error> {
        let Some((repo, Some(tag))) = Repo::parse(reference) else {
            return Err(client::Error::Other(format!(
                "`{reference}` is not a tagged reference"
            )));
        };
        self.retry
            .run_registry(&format!("reading {reference}"), io, || {
                self.registry.head_manifest(&repo, &tag)
            })
            .map(|h| h.map(|h| h.digest))
    }
}

/// An index's `org.opencontainers.image.created` (its commit's time).
pub(super) fn created(bytes: &[u8]) -> Option<String> {
    index::annotations(bytes)
        .get("org.opencontainers.image.created")?
        .as_str()
        .map(str::to_string)
}

/// An index's `org.opencontainers.image.revision`.
pub(super) fn revision(bytes: &[u8]) -> Option<String> {
    index::annotations(bytes)
        .get("org.opencontainers.image.revision")?
        .as_str()
        .map(str::to_string)
}

fn e_ref(repo: &Repo, digest: &str) -> String {
    format!("{repo}@{digest}")
}
