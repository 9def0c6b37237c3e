//! The lists of one image: a manifest-create and a manifest-push per tag that
//! renders (or why a tag has no list in this build).

use std::collections::HashSet;
use std::sync::Arc;

use super::PlanBuilder;
use crate::plan::{
    Action, ExternalNeed, ListEntry, Need, PlanError, SkipId, Skipped, Stage, StepId, StepIdx,
    StepKind,
};
use crate::registry::client::Repo;
use crate::spec::reference;
use crate::spec::vars::GitValues;
use crate::spec::{ManifestTag, PushMode};

/// The first list of an image: what its verify steps check.
pub(super) struct FirstList {
    pub push: StepId,
    /// The manifest-push step, when it is in this plan.
    pub idx: Option<StepIdx>,
    /// It is in this plan, drafted later (`[publish] atomic`).
    pub deferred: bool,
    /// The image's last manifest-push step in this plan, when it is not the
    /// first's (not atomic): the lists of one repository are pushed one after
    /// another, so a verify that needs it runs after every tag of the image
    /// moved, and proves each of them.
    pub last: Option<StepIdx>,
    /// `REPO:TAG`.
    pub list: String,
    /// `REPO` as the registry's API names it.
    pub repo: Option<Arc<Repo>>,
    /// Its tag is floating.
    pub floating: bool,
    /// The image's other lists, `REPO:TAG`, and whether each is floating.
    pub others: Vec<(String, bool)>,
}

/// A manifest-push drafted after every manifest-create (`[publish] atomic`).
pub(super) struct Deferred {
    id: StepId,
    action: Action,
    timeout: Option<std::time::Duration>,
    needs: Vec<Need>,
}

impl PlanBuilder<'_> {
    /// The lists of image `i`, and the first of them.
    pub(super) fn lists(&mut self, i: usize) -> Result<Option<FirstList>, PlanError> {
        let spec = self.spec;
        let img = &spec.images[i];
        let mut first: Option<FirstList> = None;
        let mut prev_push: Option<StepIdx> = None;
        let mut prev_deferred: Option<StepId> = None;
        let atomic = spec.publish.atomic;
        let mut listed: HashSet<String> = HashSet::new();
        // Every list of the image is in its repository, on one registry.
        let insecure = self.insecure(&img.repo);
        // What the URL of each list's request is made of (`url_of` of `REPO:TAG`).
        let repo = Repo::parse(&format!("{}:latest", img.repo)).map(|(r, _)| Arc::new(r));
        for m in &spec.tags.manifest {
            let tag = match self.list_tag(i, m) {
                Ok(Some(tag)) => tag,
                Ok(None) => continue,
                Err(reason) => {
                    self.skip_list(i, m, reason);
                    continue;
                }
            };
            if !listed.insert(tag.clone()) {
                self.skip_list(i, m, format!("renders to `{tag}`, a tag already listed"));
                continue;
            }
            let tag: Arc<str> = tag.into();
            let list = format!("{}:{tag}", img.repo);
            let test_on = spec.verify.enabled && spec.verify.before_push;
            let mut needs = Vec::with_capacity(2 * img.archs.len());
            let mut entries = Vec::with_capacity(img.archs.len());
            for (at, a) in img.archs.iter().enumerate() {
                let arch = self.arch(a)?;
                if test_on {
                    needs.push(self.need(StepKind::Test, i, at));
                }
                needs.push(self.need(StepKind::Push, i, at));
                let r = &self.refs[i][at];
                entries.push(ListEntry {
                    push_step: self.id(StepKind::Push, i, at),
                    reference: r.reference.clone(),
                    repository: r.repository.clone(),
                    repo: r.repo.clone(),
                    platform: arch.platform.clone(),
                });
            }
            let image = &self.names.images[i];
            let create_id = StepId::List {
                kind: StepKind::ManifestCreate,
                image: image.clone(),
                tag: tag.clone(),
            };
            let push_id = StepId::List {
                kind: StepKind::ManifestPush,
                image: image.clone(),
                tag,
            };
            let mut push_idx = None;
            if self.sel.stage(Stage::Publish) {
                let timeout = self.timeout(img, StepKind::ManifestCreate);
                let create = self.draft.push_with(
                    create_id,
                    Action::ManifestCreate {
                        list: list.clone(),
                        entries,
                        annotations: self.labels.clone(),
                        format: spec.publish.index,
                        insecure,
                    },
                    timeout,
                    needs,
                );
                // Lists of one repository are pushed one after another, the
                // immutable `{sha}` list first: a floating tag moves after it.
                let action = Action::ManifestPush {
                    list: list.clone(),
                    format: spec.publish.index,
                    floating: is_floating(m),
                    insecure,
                    repo: repo.clone(),
                };
                if atomic {
                    self.creates.push(create);
                    let needs = std::iter::once(Need::Step(create))
                        .chain(prev_deferred.take().map(Need::Id))
                        .collect();
                    self.deferred.push(Deferred {
                        id: push_id.clone(),
                        action,
                        timeout,
                        needs,
                    });
                    prev_deferred = Some(push_id.clone());
                } else {
                    let idx = self.draft.push_with(
                        push_id.clone(),
                        action,
                        timeout,
                        std::iter::once(create).chain(prev_push).map(Need::Step),
                    );
                    push_idx = Some(idx);
                    prev_push = Some(idx);
                }
            }
            match &mut first {
                Some(f) => f.others.push((list, is_floating(m))),
                None => {
                    first = Some(FirstList {
                        push: push_id,
                        idx: push_idx,
                        deferred: atomic && self.sel.stage(Stage::Publish),
                        last: None,
                        list,
                        repo: repo.clone(),
                        floating: is_floating(m),
                        others: Vec::new(),
                    })
                }
            }
        }
        if let Some(f) = &mut first {
            f.last = prev_push.filter(|last| Some(*last) != f.idx);
        }
        Ok(first)
    }

    /// The tag of a list in this build; `Ok(None)` when the stages selected make
    /// no list and say nothing; `Err(reason)` when the list is skipped.
    fn list_tag(&self, i: usize, m: &ManifestTag) -> Result<Option<String>, String> {
        if !self.publish {
            return Err(format!(
                "this build does not publish: {}",
                self.publish_reason
            ));
        }
        if self.spec.publish.push == PushMode::Never {
            return Err("[publish] push = \"never\": nothing to list".into());
        }
        if !self.sel.stage(Stage::Publish) && !self.sel.stage(Stage::Verify) {
            return Ok(None);
        }
        if self.sel.archs.is_some() && self.opts.stages.is_empty() {
            return Err("--arch selects part of the image's arches; a list needs all of them (add --stage publish to assemble it from the registry)".into());
        }
        if m.when_git_tag && self.ctx.git_tag.is_none() {
            return Err("when = \"git-tag\" and this build is not of a git tag".into());
        }
        if let Some(b) = &m.branches {
            if !self.ctx.branch.as_deref().is_some_and(|br| b.is_match(br)) {
                let br = self.ctx.branch.as_deref().unwrap_or("(none)");
                return Err(format!(
                    "branch `{br}` does not match this tag's branches ({})",
                    b.patterns.join(", ")
                ));
            }
        }
        // Lists have no arch: a tag names the list of every arch.
        let vars = self.vars(&self.spec.images[i], None, None);
        let tag = m.tag.render(|n| vars.get(n)).map_err(|missing| {
            format!(
                "{}: {{{missing}}} has no value",
                GitValues::why_missing(missing)
            )
        })?;
        if !reference::is_valid_tag(&tag) {
            return Err(format!("renders to `{tag}`, which is not a valid tag"));
        }
        Ok(Some(tag))
    }

    /// A list skipped before its tag rendered is named by the template.
    fn skip_list(&mut self, i: usize, m: &ManifestTag, reason: String) {
        let image = &self.names.images[i];
        let shown: Arc<str> = m.tag.display().into();
        for kind in [StepKind::ManifestCreate, StepKind::ManifestPush] {
            if let Some(id) = StepId::list(kind, image, &shown) {
                self.draft.skip(Skipped {
                    id: SkipId::Step(id),
                    reason: reason.clone(),
                });
            }
        }
    }
}

/// SPEC.md §2: a list tag without `{sha}`, `{short_sha}`, `{git_tag}` or
/// `{version}` is floating (`latest`, `{branch}`, `{major}.{minor}`).
fn is_floating(m: &ManifestTag) -> bool {
    !["sha", "short_sha", "git_tag", "version"]
        .iter()
        .any(|v| m.tag.uses(v))
}

impl PlanBuilder<'_> {
    /// `[publish] atomic`: the manifest-push steps, each after every
    /// manifest-create of the file.
    pub(super) fn draft_deferred_pushes(&mut self) {
        let creates = std::mem::take(&mut self.creates);
        for d in std::mem::take(&mut self.deferred) {
            let others: Vec<Need> = creates
                .iter()
                .map(|c| Need::Step(*c))
                .filter(|n| !d.needs.contains(n))
                .collect();
            let needs = d.needs.into_iter().chain(others);
            let idx = self.draft.push_with(d.id, d.action, d.timeout, needs);
            self.atomic_pushes.push(idx);
        }
    }
}

/// A need on a list push that is not in this plan: the list in the registry.
pub(super) fn external_list(first: &FirstList) -> Need {
    match first.idx {
        Some(idx) => Need::Step(idx),
        None if first.deferred => Need::Id(first.push.clone()),
        None => Need::External(ExternalNeed {
            id: first.push.clone(),
            reference: Some(first.list.as_str().into()),
        }),
    }
}
