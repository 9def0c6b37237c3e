//! The steps of one arch of one image: build, test, push (or why it is not pushed).

use std::collections::BTreeMap;

use super::{PlanBuilder, Slot};
use crate::engine::argv::{secret_file, BuildArgs, EngineTarget, SecretMount};
use crate::plan::{Action, Check, Need, PlanError, SkipId, Skipped, Stage, StepKind};
use crate::spec::{Arch, ArchBuild, BuildMode, EngineKind, Image, PushMode};

/// The build of one arch, worked out before drafting; `None` where `per_arch`
/// works it out itself (an arch not selected, or an internal error to say).
pub(super) type Prepared = Option<Result<BuildArgs, PlanError>>;

impl PlanBuilder<'_> {
    /// Every selected arch of image `i`; for each arch position, whether its
    /// per-arch image is pushed (in this plan or not), for the verify steps.
    pub(super) fn per_arch(&mut self, i: usize) -> Result<Vec<(usize, bool)>, PlanError> {
        let img = &self.spec.images[i];
        let test_on = self.spec.verify.enabled && self.spec.verify.before_push;
        let mut pushed = Vec::new();
        for (at, a) in img.archs.iter().enumerate() {
            if !self.sel.arch(a) {
                continue;
            }
            let arch = self.arch(a)?;
            let engine = EngineTarget {
                kind: self.engine,
                builder: arch.builder.clone(),
            };
            let reference = self.refs[i][at].reference.clone();
            let Some(settings) = img.build_for(a) else {
                return Err(PlanError::Internal(format!(
                    "image `{}` has no settings for arch `{a}`",
                    img.name
                )));
            };
            let args = match self.prepared[i].get_mut(at).and_then(Option::take) {
                Some(prepared) => prepared?,
                None => self.build_args(i, at, arch, settings)?,
            };
            let timeout = |kind| self.timeout(img, kind);
            let (build_timeout, test_timeout, push_timeout) = (
                timeout(StepKind::Build),
                timeout(StepKind::Test),
                timeout(StepKind::Push),
            );
            let emulated = arch.needs_emulation(&self.opts.host.platform);
            if emulated && !self.emulated.contains(a) {
                self.emulated.insert(a.clone());
            }
            let mut slot = Slot::default();
            if self.sel.stage(Stage::Build) {
                let needs = self.build_needs(i, a, emulated, test_on);
                slot.build = Some(self.draft.push_with(
                    self.id(StepKind::Build, i, at),
                    Action::Build {
                        engine: engine.clone(),
                        reference: reference.clone(),
                        platform: arch.platform.clone(),
                        args: Box::new(args),
                    },
                    build_timeout,
                    needs,
                ));
                if test_on {
                    slot.test = Some(self.draft.push_with(
                        self.id(StepKind::Test, i, at),
                        Action::Test {
                            engine: engine.clone(),
                            reference: reference.clone(),
                            platform: arch.platform.clone(),
                            check: Check::of(arch, &settings.verify),
                        },
                        test_timeout,
                        slot.build.map(Need::Step),
                    ));
                }
            }
            self.slots[i][at] = slot;
            if self.pushes {
                if self.sel.stage(Stage::Push) {
                    let before = if test_on {
                        StepKind::Test
                    } else {
                        StepKind::Build
                    };
                    let need = self.need(before, i, at);
                    self.slots[i][at].push = Some(self.draft.push_with(
                        self.id(StepKind::Push, i, at),
                        Action::Push {
                            engine,
                            reference,
                            platform: arch.platform.clone(),
                        },
                        push_timeout,
                        [need],
                    ));
                }
            } else {
                self.skip_push(i, at);
            }
            pushed.push((at, self.pushes));
        }
        Ok(pushed)
    }

    /// [`Self::build_args`] of every selected arch of every image drafted
    /// (`affected`: not unchanged), by image index and arch position, on
    /// threads. It reads only what is fixed before drafting (the references),
    /// so `per_arch` meets the same values and the same first error.
    pub(super) fn prepare_build_args(&self, affected: Option<&[bool]>) -> Vec<Vec<Prepared>> {
        let images = &self.spec.images;
        crate::par::in_order(images.len(), super::IMAGES_PER_THREAD, |i| {
            let img = &images[i];
            if !self.sel.images[i] || affected.is_some_and(|a| !a[i]) {
                return Vec::new();
            }
            img.archs
                .iter()
                .enumerate()
                .map(|(at, a)| {
                    let arch = self.arch(a).ok().filter(|_| self.sel.arch(a))?;
                    let settings = img.build_for(a)?;
                    Some(self.build_args(i, at, arch, settings))
                })
                .collect()
        })
    }

    /// Everything the build command of image `i`, arch position `at` is made of.
    fn build_args(
        &self,
        i: usize,
        at: usize,
        arch: &Arch,
        settings: &ArchBuild,
    ) -> Result<BuildArgs, PlanError> {
        let img = &self.spec.images[i];
        let a = &img.archs[at];
        // `{image.DEP}`: the per-arch references of the dependencies built for this arch.
        let deps: BTreeMap<String, String> = img
            .depends_on
            .iter()
            .filter_map(|d| Some((d.clone(), self.dep_ref(d, a)?.to_string())))
            .collect();
        let vars = self.vars(img, Some(arch), Some(&deps));
        let mut build_args = Vec::new();
        for (k, t) in &settings.args {
            build_args.push((
                k.clone(),
                self.render(t, &vars, format_args!("build arg {k}"))?,
            ));
        }
        let mut labels = self.labels.clone();
        for (k, t) in &img.labels {
            let v = self.render(t, &vars, format_args!("label {k}"))?;
            labels.retain(|(lk, _)| lk != k);
            labels.push((k.clone(), v));
        }
        let mut cache_from = Vec::new();
        for t in &img.cache_from {
            // An entry whose variables have no value is simply not used.
            if let Ok(c) = t.render(|n| vars.get(n)) {
                if crate::spec::reference::parse(&c).is_ok() {
                    cache_from.push(c);
                }
            }
        }
        if self.engine == EngineKind::Docker && !self.opts.builder.mode.is_buildkit() {
            if let Some(s) = img.secrets.first() {
                let (line, _) = self.spec.source.line_col(s.span.start);
                return Err(PlanError::SecretsNeedBuildKit {
                    image: img.name.clone(),
                    secret: s.id.clone(),
                    at: format!(" ({}:{line})", self.spec.source.name()),
                    why: self.opts.builder.why.clone(),
                });
            }
        }
        let secrets = img
            .secrets
            .iter()
            .map(|s| SecretMount {
                id: s.id.clone(),
                src: secret_file(&s.id),
                from: s.source.clone(),
            })
            .collect();
        Ok(BuildArgs {
            arch_arg: (img.arch_arg.clone(), a.clone()),
            platform: arch.platform.clone(),
            reference: self.refs[i][at].reference.clone(),
            build_args,
            labels,
            target: settings.target.clone(),
            cache_from,
            dockerfile: settings.dockerfile.display().to_string(),
            context: img.context.display().to_string(),
            no_cache: self.opts.no_cache,
            pull: self.opts.pull,
            mode: match self.engine {
                EngineKind::Docker => self.opts.builder.mode,
                EngineKind::Podman => BuildMode::Buildx,
            },
            secrets,
            inline_cache: self.pushes,
        })
    }

    /// The per-arch reference of dependency `d` for arch `a`, if it builds `a`.
    fn dep_ref(&self, d: &str, a: &str) -> Option<&str> {
        let j = *self.names.index.get(d)?;
        let at = self.spec.images[j].archs.iter().position(|x| x == a)?;
        Some(&self.refs[j][at].reference)
    }

    /// qemu for an emulated arch, then each dependency's image for the same arch:
    /// pushed, else tested, else built.
    fn build_needs(&self, i: usize, a: &str, emulated: bool, test_on: bool) -> Vec<Need> {
        let img: &Image = &self.spec.images[i];
        let mut needs = Vec::with_capacity(1 + img.depends_on.len());
        if emulated {
            needs.push(Need::Step(self.qemu));
        }
        let kind = if self.pushes {
            StepKind::Push
        } else if test_on {
            StepKind::Test
        } else {
            StepKind::Build
        };
        for d in &img.depends_on {
            let Some(&j) = self.names.index.get(d.as_str()) else {
                continue;
            };
            if let Some(at) = self.spec.images[j].archs.iter().position(|x| x == a) {
                needs.push(self.need(kind, j, at));
            }
        }
        needs
    }

    fn skip_push(&mut self, i: usize, at: usize) {
        let reason = match self.spec.publish.push {
            PushMode::Never => "[publish] push = \"never\"".to_string(),
            _ => format!(
                "[publish] push = \"publish-branches\" and this build does not publish: {}",
                self.publish_reason
            ),
        };
        self.draft.skip(Skipped {
            id: SkipId::Step(self.id(StepKind::Push, i, at)),
            reason,
        });
    }
}
