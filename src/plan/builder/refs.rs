//! The per-arch reference of every image and arch, templates rendered with the
//! commit's values, and the registry facts derived from references.

use std::sync::Arc;

use crate::plan::PlanError;
use crate::registry::client::Repo;
use crate::spec::reference::{self, is_loopback_host};
use crate::spec::template::Template;
use crate::spec::vars::{GitValues, Vars};

use super::{PlanBuilder, IMAGES_PER_THREAD};

/// The per-arch reference of an image and arch, parsed once.
pub(super) struct ArchRef {
    pub reference: Arc<str>,
    /// Where `REPO@sha256:…` points.
    pub repository: Arc<str>,
    /// `repository` as the registry's API names it.
    pub repo: Arc<Repo>,
}

impl PlanBuilder<'_> {
    /// No sha, and a template needs one: say which, before anything else.
    pub(super) fn check_sha(&self) -> Result<(), PlanError> {
        if self.git.sha.is_some() {
            return Ok(());
        }
        let spec = self.spec;
        let uses = |t: &Template| t.uses("sha") || t.uses("short_sha");
        let mut users: Vec<&Template> = vec![&spec.tags.arch];
        users.extend(spec.tags.manifest.iter().map(|m| &m.tag));
        for i in &spec.images {
            users.extend(
                i.per_arch
                    .values()
                    .flat_map(|b| b.args.iter().map(|(_, t)| t)),
            );
            users.extend(i.labels.iter().map(|(_, t)| t));
            users.extend(i.cache_from.iter());
        }
        match users.into_iter().find(|t| uses(t)) {
            Some(t) => Err(PlanError::NoSha {
                what: if t.span.is_empty() {
                    String::from("the default per-arch reference {repo}/{arch}:{sha}")
                } else {
                    format!("line {}: `{}`", spec.line_of(t.span.start), t.display())
                },
            }),
            None => Ok(()),
        }
    }

    /// Per-arch references of every image, selected or not (dependencies need
    /// them), by image index and the image's arch position, each with its
    /// repository (where `REPO@sha256:…` points). With
    /// --changed-since, an unchanged image is the one built at the base
    /// revision: its references carry that revision's sha.
    pub(super) fn render_refs(
        &self,
        affected: Option<&[bool]>,
    ) -> Result<Vec<Vec<ArchRef>>, PlanError> {
        let base_git = self.opts.base_sha.as_ref().map(|b| GitValues {
            sha: Some(b.clone()),
            short_sha: Some(b[..7.min(b.len())].to_string()),
            ..self.git.clone()
        });
        // Images on several threads, in order: the first error is the one a
        // loop over the images would meet.
        let images = &self.spec.images;
        crate::par::in_order(images.len(), IMAGES_PER_THREAD, |i| {
            let img = &images[i];
            let unchanged = affected.is_some_and(|a| !a[i]);
            let mut of_image = Vec::with_capacity(img.archs.len());
            for a in &img.archs {
                let arch = self.arch(a)?;
                let mut vars = self.vars(img, Some(arch), None);
                if let (true, Some(g)) = (unchanged, base_git.as_ref()) {
                    vars.git = g;
                }
                let r = self.render(
                    &self.spec.tags.arch,
                    &vars,
                    format_args!("the per-arch reference"),
                )?;
                let parsed = match reference::parse(&r) {
                    Ok(parsed) => parsed,
                    Err(e) => {
                        return Err(PlanError::InvalidArchReference {
                            image: img.name.clone(),
                            arch: a.clone(),
                            rendered: r,
                            reason: e.to_string(),
                        })
                    }
                };
                of_image.push(ArchRef {
                    repository: parsed.repository().into(),
                    repo: Arc::new(Repo::of(&parsed)),
                    reference: r.into(),
                });
            }
            Ok(of_image)
        })
        .into_iter()
        .collect()
    }

    /// Render a template that must have a value (`what` names it in the error,
    /// written out only then).
    pub(super) fn render(
        &self,
        t: &Template,
        vars: &Vars<'_>,
        what: std::fmt::Arguments<'_>,
    ) -> Result<String, PlanError> {
        t.render(|n| vars.get(n))
            .map_err(|missing| PlanError::MissingValue {
                what: what.to_string(),
                template: t.display(),
                at: if t.span.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({}:{})",
                        self.spec.path.display(),
                        self.spec.line_of(t.span.start)
                    )
                },
                var: missing.to_string(),
                why: GitValues::why_missing(missing).to_string(),
            })
    }

    /// The registry of `reference` is spoken to over plain HTTP.
    pub(super) fn insecure(&self, reference: &str) -> bool {
        let domain = reference::parse(reference).ok().and_then(|r| r.domain);
        match domain {
            Some(d) => is_loopback_host(&d) || self.spec.project.insecure_registries.contains(&d),
            None => false,
        }
    }
}
