//! Test and verify steps: the check command run in an image (the local one
//! before pushing; the registry's, by digest, after publishing), its output
//! compared with what the arch must print.

use super::list::{created, revision, Published};
use super::{repo_of, EngineRunner};
use crate::engine::answers::{is_missing_executable, platform_matches};
use crate::engine::{EngineTarget, Pull};
use crate::events::format::short_digest;
use crate::exec::executor::{StepIo, StepResult};
use crate::exec::retry::Retry;
use crate::plan::{Check, ImageLists, Step, StepId};
use crate::registry::client::{Manifest, Repo};
use crate::registry::index;
use crate::spec::Platform;

/// Whose list a tag names, for a verify job after another job published it.
enum Commit {
    Ours,
    /// A newer commit's (its sha, and why it is newer).
    Newer(String, String),
    /// Another commit's, not newer (its sha).
    Other(String),
    /// The list or this build has no revision.
    Unknown,
}

/// What a floating tag naming another commit's list was not shown to be.
fn not_shown_newer(floating: bool) -> &'static str {
    if floating {
        ", nor one shown to be newer (by git ancestry, else commit time)"
    } else {
        ""
    }
}

fn short_sha(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// What became of a floating tag this run moved.
enum Moved {
    On,
    BackAndRestored,
    Elsewhere,
}

/// Where a check runs.
pub(super) struct Target<'a> {
    pub engine: &'a EngineTarget,
    pub image: &'a str,
    pub platform: &'a Platform,
    pub pull: Pull,
}

/// What a verify step reads before it runs its check.
pub(super) struct Verify<'a> {
    pub engine: &'a EngineTarget,
    /// On a publishing build: the pushed list, resolved to this platform's digest.
    pub list: Option<&'a str>,
    /// The per-arch reference and the step that pushed it.
    pub reference: &'a str,
    pub push_step: &'a StepId,
    pub platform: &'a Platform,
    /// The image's lists, when another job of the build published them.
    pub published_elsewhere: Option<&'a ImageLists>,
}

impl EngineRunner {
    /// Run the check in the target's image (its argv from the engine) and compare
    /// its output. The uname check on an image without `uname` checks the image
    /// config's platform instead, and says so.
    pub(super) fn check(
        &self,
        step: &Step,
        io: &StepIo<'_>,
        t: Target<'_>,
        check: &Check,
        what: &str,
    ) -> StepResult {
        let run_argv =
            t.engine
                .engine()
                .run(t.engine, t.image, t.platform, t.pull, check.run_command());
        let f = self
            .retry
            .run(Retry::EngineRun, io, || {
                let f = self.captured(run_argv.clone(), step, io, true);
                self.after_container(t.engine, &step.id.to_string(), &f.exit);
                super::ok_or_err(f)
            })
            .unwrap_or_else(|f| f);
        if !f.exit.success() {
            let first = check.command.first().map_or("", String::as_str);
            let code = match f.exit {
                crate::exec::process::Exit::Code(c) => Some(c),
                _ => None,
            };
            if check.platform_fallback
                && is_missing_executable(code, f.lines().map(String::as_str), first)
            {
                return self.platform_from_config(step, io, &t, first, what);
            }
            return self.fail(&format!("{what} command failed"), &f);
        }
        let out = f.stdout.join("\n");
        if !check.expect.check(&out) {
            return StepResult::failed(
                format!(
                    "{what} printed `{}`, expected {}",
                    out.trim(),
                    check.expect.describe()
                ),
                f.stdout.clone(),
            );
        }
        StepResult::ok()
    }

    /// The image has no `command` (scratch, distroless): its config's platform
    /// must be the arch's.
    fn platform_from_config(
        &self,
        step: &Step,
        io: &StepIo<'_>,
        t: &Target<'_>,
        command: &str,
        what: &str,
    ) -> StepResult {
        let inspect = self.captured(
            t.engine.engine().inspect_platform(t.engine, t.image),
            step,
            io,
            false,
        );
        if !inspect.exit.success() {
            return self.fail(
                &format!("{what}: the image has no `{command}`, and its config cannot be read"),
                &inspect,
            );
        }
        let got = inspect.stdout.first().map_or("", |l| l.trim());
        let got = got.trim_end_matches('/');
        if !platform_matches(got, t.platform) {
            return StepResult::failed(
                format!(
                    "{what}: the image has no `{command}`, and its config says {got}, not {}",
                    t.platform
                ),
                inspect.stdout,
            );
        }
        let detail = format!("platform checked from config: {got}");
        io.note(&format!("the image has no `{command}` to run: {detail}"));
        StepResult::ok_with(detail)
    }

    /// Resolve what the registry serves to a digest, then check it.
    pub(super) fn verify(
        &self,
        step: &Step,
        io: &StepIo<'_>,
        v: Verify<'_>,
        check: &Check,
    ) -> StepResult {
        let by_digest = match v.list {
            Some(list) => match self.list_entry(step, io, &v, list) {
                Ok(r) => r,
                Err(r) => return r,
            },
            None => match self.entry_digest(io, v.push_step, v.reference) {
                Ok(d) => format!("{}@{d}", repo_of(v.reference)),
                Err(r) => return r,
            },
        };
        let t = Target {
            engine: v.engine,
            image: &by_digest,
            platform: v.platform,
            pull: Pull::Always,
        };
        self.check(step, io, t, check, "verify")
    }

    /// `REPO@sha256:…` of the platform's entry in the list the registry serves,
    /// after proving (issue 17) that every tag of the image this run published
    /// names the index this run pushed (or was kept, and says so), that the list
    /// has exactly one entry per arch (attestations aside) and that this arch's
    /// entry is the digest this run pushed for it.
    fn list_entry(
        &self,
        step: &Step,
        io: &StepIo<'_>,
        v: &Verify<'_>,
        list: &str,
    ) -> Result<String, StepResult> {
        let fail = |why: String| StepResult::failed(why, Vec::new());
        // Lists another job of the build published (the plan says so only
        // when their pushes are not in it): proved from the plan.
        if let Some(e) = v.published_elsewhere {
            return self.published_elsewhere(io, v, list, e).map_err(fail);
        }
        let image = step.image().unwrap_or("");
        let published: Vec<(String, Published)> = self
            .published
            .lock()
            .ok()
            .and_then(|m| m.get(image).cloned())
            .unwrap_or_default();
        for (tag_list, p) in &published {
            let served = self
                .registry_digest(tag_list, Some(io))
                .map_err(|e| fail(format!("cannot read {tag_list}: {e}")))?;
            match (p, served) {
                (Published::Pushed(d) | Published::Floating(d), Some(s)) if *d == s => {}
                // Another run moved a floating tag: on to a newer commit (as
                // it should), or back to an older one (its check raced this
                // run's push), which this run undoes.
                (Published::Floating(d), s) => match self.moved(io, tag_list) {
                    Moved::On => io.line(&format!(
                        "{tag_list} has moved on from this run's {} to a newer commit's {}",
                        short_digest(d),
                        s.as_deref().map_or("nothing".to_string(), short_digest)
                    )),
                    Moved::BackAndRestored => io.note(&format!(
                        "{tag_list} had been moved back to an older commit's list by another run; it names this run's {} again",
                        short_digest(d)
                    )),
                    Moved::Elsewhere => {
                        return Err(fail(format!(
                            "{tag_list} names {}, not the index this run pushed ({})",
                            s.as_deref().map_or("nothing".to_string(), short_digest),
                            short_digest(d)
                        )))
                    }
                },
                (Published::Pushed(d), s) => {
                    return Err(fail(format!(
                        "{tag_list} names {}, not the index this run pushed ({})",
                        s.as_deref().map_or("nothing".to_string(), short_digest),
                        short_digest(d)
                    )))
                }
                (Published::Kept { why, .. }, _) => io.line(&format!("{tag_list}: {why}")),
            }
        }
        let built = self.built(list);
        let served = self.read_list(io, list).map_err(fail)?;
        let platforms: Option<Vec<&Platform>> = built
            .as_ref()
            .map(|b| b.images.iter().map(|(p, _)| p).collect());
        let pushed = io.digest_of(&v.push_step.to_string());
        let digest = self
            .entry_of(io, v, list, &served, platforms.as_deref(), "run", pushed)
            .map_err(fail)?;
        Ok(format!("{}@{digest}", repo_of(list)))
    }

    /// The list `list` names, which must exist.
    fn read_list(&self, io: &StepIo<'_>, list: &str) -> Result<Manifest, String> {
        self.get_list(io, list)?
            .ok_or_else(|| format!("the registry does not serve {list}"))
    }

    /// What the tag `list` (`REPO:TAG`) names, if anything.
    fn get_list(&self, io: &StepIo<'_>, list: &str) -> Result<Option<Manifest>, String> {
        let Some((repo, Some(tag))) = Repo::parse(list) else {
            return Err(format!("`{list}` is not a tagged reference"));
        };
        self.retry
            .run_registry(&format!("reading {list}"), Some(io), || {
                self.registry.get_manifest(&repo, &tag)
            })
            .map_err(|e| format!("cannot read {list}: {e}"))
    }

    /// The digest of the platform's image entry in `served` (what `list`
    /// names), after checking that the list has exactly `platforms` (when
    /// known: `whose` list they are) and that the entry is `pushed` (when
    /// known; a pushed index counts by its image for the platform).
    #[allow(clippy::too_many_arguments)]
    fn entry_of(
        &self,
        io: &StepIo<'_>,
        v: &Verify<'_>,
        list: &str,
        served: &Manifest,
        platforms: Option<&[&Platform]>,
        whose: &str,
        pushed: Option<String>,
    ) -> Result<String, String> {
        let entries = index::entries(&served.bytes)
            .ok_or_else(|| format!("{list} is not a list ({})", served.media_type))?;
        let images: Vec<&index::Descriptor> = index::image_entries(&entries).collect();
        if let Some(platforms) = platforms {
            let want: Vec<String> = platforms.iter().map(|p| p.to_string()).collect();
            let mut got: Vec<String> = images
                .iter()
                .map(|e| {
                    e.platform
                        .as_ref()
                        .map_or("(no platform)".into(), |p| index::normalized(p).to_string())
                })
                .collect();
            let mut want_n: Vec<String> = platforms
                .iter()
                .map(|p| index::normalized(p).to_string())
                .collect();
            got.sort();
            want_n.sort();
            if got != want_n {
                return Err(format!(
                    "{list} lists {}; this {whose}'s list is {}",
                    if got.is_empty() {
                        "no image".to_string()
                    } else {
                        got.join(", ")
                    },
                    want.join(", ")
                ));
            }
        }
        let mine: Vec<&index::Descriptor> = index::images_for(&entries, v.platform).collect();
        let entry = match mine.as_slice() {
            [one] => one,
            [] => return Err(format!("the list {list} has no entry for {}", v.platform)),
            more => {
                return Err(format!(
                    "the list {list} has {} entries for {}",
                    more.len(),
                    v.platform
                ))
            }
        };
        if let Some(pushed) = pushed {
            if entry.digest != pushed
                && !self.index_entry_is(io, v.reference, &pushed, &entry.digest, v.platform)?
            {
                return Err(format!(
                    "{list}'s {} entry is {}, not the image pushed as {} ({})",
                    v.platform,
                    short_digest(&entry.digest),
                    v.reference,
                    short_digest(&pushed)
                ));
            }
        }
        io.line(&format!("{list} serves {} as {}", v.platform, entry.digest));
        Ok(entry.digest.clone())
    }

    /// A verify job after another job published the image's lists: `REPO@…`
    /// of what to run. Every tag names a list. This commit's list is the first
    /// commit-tagged one (`{sha}`, `{short_sha}`, `{git_tag}`, `{version}`: no
    /// later commit moves it), else
    /// the first floating one that still names it, else the first (`first`).
    /// It must be this commit's (a floating tag's may have moved on), with one
    /// entry per arch, the arch's the image its commit-tagged reference names;
    /// every other tag names a list of this commit or, a floating one, a newer
    /// commit's. When this commit's list has moved on, this commit's own image
    /// of the arch is run, where its tag names it.
    fn published_elsewhere(
        &self,
        io: &StepIo<'_>,
        v: &Verify<'_>,
        first: &str,
        e: &ImageLists,
    ) -> Result<String, String> {
        let lists: Vec<(&str, bool)> = std::iter::once((first, e.first_floating))
            .chain(e.others.iter().map(|(l, f)| (l.as_str(), *f)))
            .collect();
        let mut served: Vec<Option<Manifest>> = Vec::with_capacity(lists.len());
        for &(list, _) in &lists {
            let m = self.get_list(io, list)?;
            if let Some(m) = &m {
                if index::entries(&m.bytes).is_none() {
                    return Err(format!(
                        "{list} names {}, which is not a list ({})",
                        short_digest(&m.digest),
                        m.media_type
                    ));
                }
            }
            served.push(m);
        }
        // This commit's list: the commit-tagged one, which the plan puts
        // first; with only floating tags, the first that still names it, else
        // the first.
        let at = if e.first_floating {
            served
                .iter()
                .position(|m| {
                    m.as_ref()
                        .is_some_and(|m| matches!(self.commit_of(&m.bytes, e, false), Commit::Ours))
                })
                .unwrap_or(0)
        } else {
            0
        };
        let (list, floating) = lists[at];
        let served_list = served[at]
            .take()
            .ok_or_else(|| format!("the registry does not serve {list}"))?;
        let ours = self.this_commits(io, list, &served_list, e, floating)?;
        for (k, &(other, floating)) in lists.iter().enumerate() {
            if k != at {
                self.other_tag(
                    io,
                    list,
                    &served_list,
                    e,
                    other,
                    floating,
                    served[k].as_ref(),
                )?;
            }
        }
        let served = served_list;
        let by_tag = || -> Result<String, String> {
            self.registry_digest(v.reference, Some(io))
                .map_err(|e| format!("cannot read {}: {e}", v.reference))?
                .ok_or_else(|| format!("{} names nothing", v.reference))
        };
        if !ours {
            if !e.immutable_refs {
                io.line(&format!(
                    "running {list}'s {} entry: the per-arch tag has no {{sha}} to find this commit's image by",
                    v.platform
                ));
                let digest = self.entry_of(io, v, list, &served, None, "build", None)?;
                return Ok(format!("{}@{digest}", repo_of(list)));
            }
            let d = by_tag()?;
            io.line(&format!(
                "running this commit's {} image, {}@{d}",
                v.platform,
                repo_of(v.reference)
            ));
            return Ok(format!("{}@{d}", repo_of(v.reference)));
        }
        let platforms: Vec<&Platform> = e.platforms.iter().collect();
        let pushed = if e.immutable_refs {
            Some(by_tag().map_err(|why| format!("{list} is this commit's list, but {why}"))?)
        } else {
            None
        };
        let digest = self.entry_of(io, v, list, &served, Some(&platforms), "build", pushed)?;
        Ok(format!("{}@{digest}", repo_of(list)))
    }

    /// Whether `served` (what `list` names) is this commit's list (`true`);
    /// `false` when a floating tag moved on to a newer commit's, or names a
    /// list whose commit cannot be told; an error when it names another
    /// commit's (older, or not shown newer).
    fn this_commits(
        &self,
        io: &StepIo<'_>,
        list: &str,
        served: &Manifest,
        e: &ImageLists,
        floating: bool,
    ) -> Result<bool, String> {
        let d = short_digest(&served.digest);
        match self.commit_of(&served.bytes, e, floating) {
            Commit::Ours => Ok(true),
            // A commit-tagged list: no later commit moves it.
            Commit::Unknown if !floating => Ok(true),
            Commit::Unknown => {
                io.note(&format!(
                    "{list} names {d}, and whose commit's list it is cannot be told (no revision annotation to compare): its entries are not checked against this commit's images"
                ));
                Ok(false)
            }
            Commit::Newer(rev, why) => {
                io.line(&format!(
                    "{list} has moved on to commit {}'s list {d}: {why}",
                    short_sha(&rev)
                ));
                Ok(false)
            }
            Commit::Other(rev) => Err(format!(
                "{list} names commit {}'s list {d}, not this commit's ({}){}",
                short_sha(&rev),
                e.revision.as_deref().map_or("", short_sha),
                not_shown_newer(floating)
            )),
        }
    }

    /// Another tag of the build, when another job published its lists (`now`:
    /// what it names): the index `list` names (`served`), a list of this
    /// commit, or, a floating tag, a newer commit's list (SPEC.md §2: floating
    /// tags only move forward).
    #[allow(clippy::too_many_arguments)]
    fn other_tag(
        &self,
        io: &StepIo<'_>,
        list: &str,
        served: &Manifest,
        e: &ImageLists,
        other: &str,
        floating: bool,
        now: Option<&Manifest>,
    ) -> Result<(), String> {
        let Some(m) = now else {
            return Err(format!(
                "{other} names nothing, not this commit's list (the one {list} names, {})",
                short_digest(&served.digest)
            ));
        };
        let d = short_digest(&m.digest);
        if m.digest == served.digest {
            io.line(&format!("{other} names the same index as {list}"));
            return Ok(());
        }
        match self.commit_of(&m.bytes, e, floating) {
            Commit::Ours => io.line(&format!(
                "{other} names {d}, a list of this commit, not the one {list} names"
            )),
            Commit::Newer(rev, why) => io.line(&format!(
                "{other} has moved on to commit {}'s list {d}: {why}",
                short_sha(&rev)
            )),
            Commit::Unknown if floating => io.note(&format!(
                "{other} names {d}, and whose commit's list it is cannot be told (no revision annotation to compare)"
            )),
            c @ (Commit::Unknown | Commit::Other(_)) => {
                let whose = match c {
                    Commit::Other(rev) => format!("commit {}'s list ", short_sha(&rev)),
                    _ => String::new(),
                };
                return Err(format!(
                    "{other} names {whose}{d}, not this commit's list (the one {list} names, {}){}",
                    short_digest(&served.digest),
                    not_shown_newer(floating)
                ));
            }
        }
        Ok(())
    }

    /// Whose list `bytes` is, by its `revision` annotation against this
    /// commit's (a floating tag's: newer by git ancestry or commit time).
    fn commit_of(&self, bytes: &[u8], e: &ImageLists, floating: bool) -> Commit {
        let (Some(ours), Some(theirs)) = (e.revision.as_deref(), revision(bytes)) else {
            return Commit::Unknown;
        };
        if theirs == ours {
            return Commit::Ours;
        }
        if floating {
            if let Some(why) = self.later_commit(
                &theirs,
                created(bytes).as_deref(),
                ours,
                e.created.as_deref(),
            ) {
                return Commit::Newer(theirs, why);
            }
        }
        Commit::Other(theirs)
    }

    /// `pushed` names an index (BuildKit's attestations, containerd's image
    /// store) whose image entry for `platform` is `entry`: manifest-create
    /// lists that image, not the index. A read that fails is an error, not a
    /// mismatch.
    fn index_entry_is(
        &self,
        io: &StepIo<'_>,
        reference: &str,
        pushed: &str,
        entry: &str,
        platform: &Platform,
    ) -> Result<bool, String> {
        let Some((repo, _)) = Repo::parse(reference) else {
            return Ok(false);
        };
        let Some(m) = self.get_manifest(io, &repo, pushed)? else {
            return Ok(false);
        };
        Ok(index::is_index(&m.media_type)
            && index::entries(&m.bytes)
                .is_some_and(|es| index::images_for(&es, platform).any(|d| d.digest == entry)))
    }

    /// Where another run moved the floating `list` this run pushed, by SPEC.md
    /// §2's rule: on to a later commit's list, or back to an earlier one (then
    /// this run's index is PUT again: the tag only moves forward).
    fn moved(&self, io: &StepIo<'_>, list: &str) -> Moved {
        let (Some((repo, Some(tag))), Some(built)) = (Repo::parse(list), self.built(list)) else {
            return Moved::Elsewhere;
        };
        let Ok(Some(now)) = self
            .retry
            .run_registry(&format!("reading {list}"), Some(io), || {
                self.registry.get_manifest(&repo, &tag)
            })
        else {
            return Moved::Elsewhere;
        };
        if self.later(&now.bytes, &built.bytes).is_some() {
            return Moved::On;
        }
        if self.later(&built.bytes, &now.bytes).is_none() {
            return Moved::Elsewhere;
        }
        match self.put_index(io, list, &repo, &tag, &built) {
            Ok(_) => Moved::BackAndRestored,
            Err(_) => Moved::Elsewhere,
        }
    }
}
