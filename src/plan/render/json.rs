//! SPEC.md §4: the plan as one JSON object, each step's commands derived while
//! it is written (the argv of a plan of 40,000 steps never exists all at once).

use serde::ser::SerializeSeq;
use serde::Serialize;
use std::io::Write;

use crate::plan::{Plan, Request, Skipped, StepId, StepIdx, StepKind};
use crate::spec::{BuildMode, Platform};

#[derive(Serialize)]
struct JsonStep<'a> {
    id: &'a StepId,
    kind: StepKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arch: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<Shown<'a, Platform>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<&'a str>,
    needs: Needs<'a>,
    #[serde(skip_serializing_if = "ExternalIds::is_empty")]
    external_needs: ExternalIds<'a>,
    /// Left out for a step performed over the registry's API (`request`).
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<&'a [String]>,
    /// All of a step's commands, when it has more than its main one.
    #[serde(skip_serializing_if = "single")]
    commands: &'a [Vec<String>],
    /// The main registry request of a step multiarch performs itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<&'a Request>,
    /// All of its requests, when it makes more than one.
    #[serde(skip_serializing_if = "single_request")]
    requests: &'a [Request],
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout_secs: Option<u64>,
}

/// A value written as its `Display` text, without a temporary string.
struct Shown<'a, T>(&'a T);

impl<T: std::fmt::Display> Serialize for Shown<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self.0)
    }
}

/// The ids of a step's needs in the plan.
struct Needs<'a>(&'a Plan, StepIdx);

impl Serialize for Needs<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let needs = self.0.needs(self.1);
        let mut seq = s.serialize_seq(Some(needs.len()))?;
        for n in needs {
            seq.serialize_element(&self.0.step(n).id)?;
        }
        seq.end()
    }
}

/// The ids of a step's needs outside the plan.
struct ExternalIds<'a>(&'a [crate::plan::ExternalNeed]);

impl ExternalIds<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for ExternalIds<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for e in self.0 {
            seq.serialize_element(&e.id)?;
        }
        seq.end()
    }
}

struct JsonSteps<'a>(&'a Plan);

impl Serialize for JsonSteps<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let plan = self.0;
        let mut seq = ser.serialize_seq(Some(plan.steps().len()))?;
        for idx in plan.indices() {
            seq.serialize_element(&OneStep(plan, idx))?;
        }
        seq.end()
    }
}

/// One step of the plan, its commands derived while it is written.
struct OneStep<'a>(&'a Plan, StepIdx);

impl Serialize for OneStep<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let (plan, idx) = (self.0, self.1);
        let s = plan.step(idx);
        let (commands, main) = s.action.commands();
        let requests = s.action.requests();
        let command = commands.get(main).map(|c| c.as_slice());
        JsonStep {
            id: &s.id,
            kind: s.kind(),
            image: s.image(),
            arch: s.arch(),
            tag: s.tag(),
            platform: s.platform().map(Shown),
            reference: s.reference(),
            needs: Needs(plan, idx),
            external_needs: ExternalIds(s.external_needs()),
            command: match (command, requests.is_empty()) {
                (None, false) => None,
                (c, _) => Some(c.unwrap_or(&[])),
            },
            commands: &commands,
            request: requests.first(),
            requests: &requests,
            timeout_secs: s.timeout.map(|t| t.as_secs()),
        }
        .serialize(ser)
    }
}

fn single(commands: &&[Vec<String>]) -> bool {
    commands.len() <= 1
}

fn single_request(requests: &&[Request]) -> bool {
    requests.len() <= 1
}

/// The plan's fields before its steps.
#[derive(Serialize)]
struct JsonHead<'a> {
    version: u32,
    branch: Option<&'a str>,
    git_tag: Option<&'a str>,
    sha: Option<&'a str>,
    publish: bool,
    publish_reason: &'a str,
    pull_request: Option<&'a str>,
    atomic: bool,
    engine: &'a str,
    /// The docker builder and why (docker only).
    #[serde(skip_serializing_if = "Option::is_none")]
    builder: Option<JsonBuilder<'a>>,
}

#[derive(Serialize)]
struct JsonBuilder<'a> {
    /// `classic`, `buildkit` (`DOCKER_BUILDKIT=1 docker build`) or `buildx`.
    mode: &'a str,
    why: &'a str,
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    #[serde(flatten)]
    head: JsonHead<'a>,
    steps: JsonSteps<'a>,
    skipped: &'a [Skipped],
}

/// SPEC.md §4: one JSON object, indented for reading, written as it is
/// serialised.
pub fn write_json(plan: &Plan, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    write_json_styled(plan, out, true)
}

/// SPEC.md §4 on one line: what `plan --format json` writes to a pipe or a
/// file, where a plan of thousands of steps would otherwise be mostly
/// indentation.
pub fn write_json_compact(plan: &Plan, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    write_json_styled(plan, out, false)
}

fn write_json_styled(
    plan: &Plan,
    out: &mut dyn std::io::Write,
    pretty: bool,
) -> std::io::Result<()> {
    let head = JsonHead {
        version: 1,
        branch: plan.branch.as_deref(),
        git_tag: plan.git_tag.as_deref(),
        sha: plan.sha.as_deref(),
        publish: plan.publish,
        publish_reason: &plan.publish_reason,
        pull_request: plan.pull_request.as_deref(),
        atomic: plan.atomic,
        engine: plan.engine.program(),
        builder: (plan.engine == crate::spec::EngineKind::Docker).then(|| JsonBuilder {
            mode: match plan.builder.mode {
                BuildMode::Classic => "classic",
                BuildMode::BuildKit => "buildkit",
                BuildMode::Buildx => "buildx",
            },
            why: &plan.builder.why,
        }),
    };
    // serde_json writes token by token: through a concrete buffer, not a
    // `dyn Write` call per token.
    let mut buf = std::io::BufWriter::with_capacity(1 << 16, out);
    let workers = workers(plan.steps().len());
    if pretty || workers < 2 {
        let j = JsonPlan {
            head,
            steps: JsonSteps(plan),
            skipped: plan.skipped(),
        };
        if pretty {
            serde_json::to_writer_pretty(&mut buf, &j).map_err(std::io::Error::other)?;
        } else {
            serde_json::to_writer(&mut buf, &j).map_err(std::io::Error::other)?;
        }
    } else {
        // The same bytes as serde_json's compact form of JsonPlan: the head's
        // object without its `}`, the steps written by several threads in
        // blocks and put together in order, then the skipped steps.
        let mut h = serde_json::to_vec(&head).map_err(std::io::Error::other)?;
        h.pop();
        buf.write_all(&h)?;
        buf.write_all(b",\"steps\":[")?;
        write_steps_parallel(plan, workers, &mut buf)?;
        buf.write_all(b"],\"skipped\":")?;
        serde_json::to_writer(&mut buf, plan.skipped()).map_err(std::io::Error::other)?;
        buf.write_all(b"}")?;
    }
    buf.write_all(b"\n")?;
    buf.flush()
}

/// Steps per block of the parallel writer.
const BLOCK: usize = 512;

/// Threads for writing `steps` steps: one below two blocks, else up to the
/// machine's cores (at most 8).
fn workers(steps: usize) -> usize {
    if steps < 2 * BLOCK {
        return 1;
    }
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
        .min(steps / BLOCK)
}

/// The steps' objects, comma-separated, in plan order: worker threads take the
/// next block of [`BLOCK`] steps and serialise it; this thread writes the
/// blocks in order as they arrive. A write error stops the workers.
fn write_steps_parallel(plan: &Plan, workers: usize, out: &mut dyn Write) -> std::io::Result<()> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let steps = plan.steps().len();
    let blocks = steps.div_ceil(BLOCK);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    // Written blocks' buffers go back to the workers: a plan of 40,000 steps
    // is ~80 blocks of ~0.5 MB, and fresh memory for each (which the kernel
    // zeroes on first touch) cost more than serialising into it.
    let spare = std::sync::Mutex::new(Vec::<Vec<u8>>::new());
    std::thread::scope(|scope| {
        let (tx, rx) =
            std::sync::mpsc::sync_channel::<(usize, std::io::Result<Vec<u8>>)>(2 * workers);
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, stop, spare) = (&next, &stop, &spare);
            scope.spawn(move || loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= blocks || stop.load(Ordering::Relaxed) {
                    break;
                }
                let buf = spare
                    .lock()
                    .map_or_else(|_| None, |mut s| s.pop())
                    .unwrap_or_default();
                let bytes = block_json(plan, b * BLOCK..steps.min((b + 1) * BLOCK), buf);
                if tx.send((b, bytes)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut waiting = std::collections::BTreeMap::new();
        let mut want = 0;
        let result = (|| {
            for (b, bytes) in &rx {
                waiting.insert(b, bytes?);
                while let Some(bytes) = waiting.remove(&want) {
                    if want > 0 {
                        out.write_all(b",")?;
                    }
                    out.write_all(&bytes)?;
                    if let Ok(mut s) = spare.lock() {
                        s.push(bytes);
                    }
                    want += 1;
                }
            }
            Ok(())
        })();
        if result.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        // Dropping the receiver ends a worker blocked on a full channel.
        drop(rx);
        result
    })
}

/// The comma-separated objects of the steps in `range`, by sonic-rs: the
/// bytes serde_json writes (a test holds it to that), its strings escaped with
/// SIMD. A plan of 40,000 steps is tens of MB of strings; serde_json's
/// byte-at-a-time escaping was a fifth of `plan`'s CPU.
/// `buf` is a spare buffer to fill (its contents are dropped).
fn block_json(
    plan: &Plan,
    range: std::ops::Range<usize>,
    mut buf: Vec<u8>,
) -> std::io::Result<Vec<u8>> {
    buf.clear();
    buf.reserve(range.len() * 1024);
    for (n, i) in range.enumerate() {
        if n > 0 {
            buf.push(b',');
        }
        sonic_rs::to_writer(&mut buf, &OneStep(plan, StepIdx::new(i)))
            .map_err(std::io::Error::other)?;
    }
    Ok(buf)
}

/// SPEC.md §4: one JSON object.
pub fn render_json(plan: &Plan) -> String {
    let mut buf = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = write_json(plan, &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::argv::EngineTarget;
    use crate::plan::{Action, Check, Draft, DraftStep, Expect};
    use crate::spec::EngineKind;

    /// Every kind of character a string in a plan can hold: what JSON escapes
    /// (quotes, backslashes, each control character), what it does not (DEL,
    /// `/`, `<`, non-ASCII, U+2028), and long runs either side of them.
    fn awkward() -> Vec<String> {
        let mut all: Vec<String> = (0u8..0x80).map(|b| format!("a{}b", b as char)).collect();
        all.push((0u8..0x80).map(char::from).collect());
        all.push("é ü 中文 🦀 \u{2028}\u{2029} \u{feff}".into());
        all.push(format!(
            "{}\"{}\\{}",
            "x".repeat(40),
            "y".repeat(70),
            "\n".repeat(3)
        ));
        all.push(String::new());
        all
    }

    /// A plan of enough steps for the parallel writer, every string awkward:
    /// tests (a platform with a variant), builds (two commands each) and list
    /// pushes (a request, no command), each needing the step before it.
    fn plan() -> Plan {
        let words = awkward();
        let mut d = Draft::new();
        let engine = || EngineTarget::local(EngineKind::Docker);
        let arm = crate::spec::Platform::parse("linux/arm/v7").unwrap();
        for i in 0..3 * BLOCK {
            let w = &words[i % words.len()];
            let image = format!("img-{i}").into();
            let reference: std::sync::Arc<str> = format!("r/{i}:{w}").into();
            let (kind, action) = match i % 3 {
                0 => (
                    StepKind::Test,
                    Action::Test {
                        engine: engine(),
                        reference,
                        platform: arm.clone(),
                        check: Check {
                            command: vec![w.clone(), format!("{w}{w}")],
                            expect: Expect::Contains(w.clone()),
                            entrypoint: i % 2 == 0,
                            platform_fallback: false,
                        },
                    },
                ),
                1 => {
                    let mut args =
                        crate::engine::argv::BuildArgs::example(w, "linux/arm/v7", &reference, w);
                    args.build_args = vec![(w.clone(), w.clone())];
                    args.labels = vec![("org.example".into(), w.clone())];
                    (
                        StepKind::Build,
                        Action::Build {
                            engine: engine(),
                            reference,
                            platform: arm.clone(),
                            args: Box::new(args),
                        },
                    )
                }
                _ => (
                    StepKind::ManifestPush,
                    Action::ManifestPush {
                        list: format!("127.0.0.1:5000/acme/app:{w}"),
                        format: Default::default(),
                        floating: true,
                        insecure: true,
                        repo: None,
                    },
                ),
            };
            let id = match kind {
                StepKind::ManifestPush => {
                    StepId::list(kind, &image, &format!("t{i}").into()).unwrap()
                }
                _ => StepId::per_arch(kind, &image, &"arm32v7".into()).unwrap(),
            };
            d.push(DraftStep {
                action,
                id,
                needs: (i > 0)
                    .then(|| crate::plan::Need::Step(StepIdx::new(i - 1)))
                    .into_iter()
                    .collect(),
                timeout: Some(std::time::Duration::from_secs(i as u64)),
            });
        }
        d.seal().unwrap()
    }

    #[test]
    fn the_parallel_writer_writes_the_bytes_of_serde_json() {
        let plan = plan();
        // On two threads whatever the machine has.
        let mut parallel = Vec::new();
        write_steps_parallel(&plan, 2, &mut parallel).unwrap();
        let mut one = Vec::new();
        for (n, i) in plan.indices().enumerate() {
            if n > 0 {
                one.push(b',');
            }
            serde_json::to_writer(&mut one, &OneStep(&plan, i)).unwrap();
        }
        assert_eq!(
            String::from_utf8(parallel).unwrap(),
            String::from_utf8(one).unwrap()
        );
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for w in awkward() {
            assert_eq!(
                sonic_rs::to_string(&w).unwrap(),
                serde_json::to_string(&w).unwrap()
            );
        }
    }
}
