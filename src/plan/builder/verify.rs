//! The checks of what the registry serves: one verify step per pushed arch, of
//! the image's first list (resolved to the arch's digest) or of the per-arch
//! image when the build publishes no list.

use std::sync::Arc;

use super::lists::{external_list, FirstList};
use super::PlanBuilder;
use crate::engine::argv::EngineTarget;
use crate::plan::action::digest_placeholder;
use crate::plan::{Action, Check, ImageLists, Need, PlanError, SkipId, Skipped, StepKind};

impl PlanBuilder<'_> {
    /// The value of one of the lists' annotations.
    fn label(&self, key: &str) -> Option<String> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    /// `pushed`: each selected arch position of image `i`, and whether it is pushed.
    pub(super) fn verify(
        &mut self,
        i: usize,
        pushed: &[(usize, bool)],
        first: Option<FirstList>,
    ) -> Result<(), PlanError> {
        let img = &self.spec.images[i];
        // The first list is in the image's repository: one registry for all arches.
        let list_insecure = first.is_some() && self.insecure(&img.repo);
        // Lists another job publishes: the verify job resolves the first
        // commit-tagged one (no later commit moves it), and reads the others.
        let mut anchor: Option<String> = None;
        let published_elsewhere = match &first {
            Some(f) if f.idx.is_none() && !f.deferred => Some(ImageLists {
                platforms: img
                    .archs
                    .iter()
                    .map(|a| self.arch(a).map(|arch| arch.platform.clone()))
                    .collect::<Result<_, _>>()?,
                first_floating: f.floating && f.others.iter().all(|(_, fl)| *fl),
                others: match f.others.iter().position(|(_, fl)| !fl) {
                    Some(k) if f.floating => {
                        let mut others = f.others.clone();
                        let (tagged, _) = others.remove(k);
                        others.insert(0, (f.list.clone(), true));
                        anchor = Some(tagged);
                        others
                    }
                    _ => f.others.clone(),
                },
                revision: self.label("org.opencontainers.image.revision"),
                created: self.label("org.opencontainers.image.created"),
                immutable_refs: self.immutable_refs(),
                reference_insecure: false,
            }),
            _ => None,
        };
        for &(at, is_pushed) in pushed {
            let a = &img.archs[at];
            let arch = self.arch(a)?;
            if !is_pushed {
                self.draft.skip(Skipped {
                    id: SkipId::Step(self.id(StepKind::Verify, i, at)),
                    reason: "nothing is pushed for this arch".into(),
                });
                continue;
            }
            let Some(settings) = img.build_for(a) else {
                continue;
            };
            let reference = self.refs[i][at].reference.clone();
            let push_id = self.id(StepKind::Push, i, at);
            let mut needs = Vec::with_capacity(3);
            if arch.needs_emulation(&self.opts.host.platform) {
                if !self.emulated.contains(a) {
                    self.emulated.insert(a.clone());
                }
                needs.push(Need::Step(self.qemu));
            }
            let list_repo = first.as_ref().and_then(|f| f.repo.clone());
            let (list, run_reference) = match &first {
                Some(f) if f.deferred => {
                    // Atomic: after every tag of the release moved.
                    needs.extend(self.atomic_pushes.iter().copied().map(Need::Step));
                    let by_digest =
                        format!("{}@<digest of {} in {}>", img.repo, arch.platform, f.list);
                    (Some(f.list.clone()), by_digest)
                }
                Some(f) => {
                    needs.push(external_list(f));
                    // After every tag of the image moved, so that verify
                    // proves each of them (SPEC.md §2 names the first's need).
                    needs.extend(f.last.map(Need::Step));
                    let list = anchor.as_ref().unwrap_or(&f.list);
                    let by_digest =
                        format!("{}@<digest of {} in {}>", img.repo, arch.platform, list);
                    (Some(list.clone()), by_digest)
                }
                None => {
                    needs.push(self.need(StepKind::Push, i, at));
                    let by_digest = format!(
                        "{}@{}",
                        self.refs[i][at].repository,
                        digest_placeholder(&push_id)
                    );
                    (None, by_digest)
                }
            };
            let insecure = list.is_some() && list_insecure;
            let published_elsewhere = published_elsewhere.as_ref().map(|e| {
                Arc::new(ImageLists {
                    reference_insecure: self.insecure(&reference),
                    ..e.clone()
                })
            });
            self.draft.push_with(
                self.id(StepKind::Verify, i, at),
                Action::Verify {
                    engine: EngineTarget {
                        kind: self.engine,
                        builder: arch.builder.clone(),
                    },
                    list,
                    list_repo,
                    reference,
                    push_step: push_id,
                    platform: arch.platform.clone(),
                    run_reference,
                    check: Check::of(arch, &settings.verify),
                    insecure,
                    published_elsewhere,
                },
                self.timeout(img, StepKind::Verify),
                needs,
            );
        }
        Ok(())
    }
}
