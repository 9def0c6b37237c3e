//! The plan as text, JSON (SPEC.md §4) and Graphviz dot.

use std::fmt::Write;

use serde::Serialize;

use super::{Plan, Skipped, Step, StepKind};

/// Quote an argv element for display, the way a shell user would read it. Display
/// only: commands are never run through a shell.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,<>".contains(c))
        && !s.contains("<digest")
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub fn argv_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Serialize)]
struct JsonStep<'a> {
    id: &'a str,
    kind: StepKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arch: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<&'a str>,
    needs: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    external_needs: &'a [String],
    command: &'a [String],
    /// All of a step's commands, when it has more than its main one.
    #[serde(skip_serializing_if = "single")]
    commands: &'a [Vec<String>],
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout_secs: Option<u64>,
}

/// The steps, each one's commands derived while it is written: the argv of a
/// plan of 40,000 steps never exists all at once.
struct JsonSteps<'a>(&'a [Step]);

impl Serialize for JsonSteps<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = ser.serialize_seq(Some(self.0.len()))?;
        for s in self.0 {
            let (commands, main) = s.action.commands();
            seq.serialize_element(&JsonStep {
                id: &s.id,
                kind: s.kind,
                image: s.image.as_deref(),
                arch: s.arch.as_deref(),
                tag: s.tag.as_deref(),
                platform: s.platform.as_deref(),
                reference: s.reference.as_deref(),
                needs: &s.needs,
                external_needs: &s.external_needs,
                command: commands.get(main).map_or(&[], |c| c.as_slice()),
                commands: &commands,
                timeout_secs: s.timeout.map(|t| t.as_secs()),
            })?;
        }
        seq.end()
    }
}

fn single(commands: &&[Vec<String>]) -> bool {
    commands.len() <= 1
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    version: u32,
    branch: Option<&'a str>,
    git_tag: Option<&'a str>,
    sha: Option<&'a str>,
    publish: bool,
    publish_reason: &'a str,
    pull_request: Option<&'a str>,
    atomic: bool,
    engine: &'a str,
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
    let steps = JsonSteps(&plan.steps);
    let j = JsonPlan {
        version: 1,
        branch: plan.branch.as_deref(),
        git_tag: plan.git_tag.as_deref(),
        sha: plan.sha.as_deref(),
        publish: plan.publish,
        publish_reason: &plan.publish_reason,
        pull_request: plan.pull_request.as_deref(),
        atomic: plan.atomic,
        engine: plan.engine.program(),
        steps,
        skipped: &plan.skipped,
    };
    // serde_json writes token by token: through a concrete buffer, not a
    // `dyn Write` call per token.
    let mut buf = std::io::BufWriter::with_capacity(1 << 16, out);
    if pretty {
        serde_json::to_writer_pretty(&mut buf, &j).map_err(std::io::Error::other)?;
    } else {
        serde_json::to_writer(&mut buf, &j).map_err(std::io::Error::other)?;
    }
    std::io::Write::write_all(&mut buf, b"\n")?;
    std::io::Write::flush(&mut buf)
}

/// SPEC.md §4: one JSON object.
pub fn render_json(plan: &Plan) -> String {
    let mut buf = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = write_json(plan, &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

/// A readable listing: the header (what is built and whether it publishes), every
/// step with its needs and commands, then what was skipped and why.
pub fn render_text(plan: &Plan) -> String {
    let mut o = String::new();
    let short = plan
        .sha
        .as_deref()
        .map_or("(no sha)", |s| &s[..7.min(s.len())]);
    let what = match (&plan.branch, &plan.git_tag) {
        (Some(b), Some(t)) => format!("branch {b}, tag {t}"),
        (Some(b), None) => format!("branch {b}"),
        (None, Some(t)) => format!("tag {t}"),
        (None, None) => "no branch".to_string(),
    };
    let _ = writeln!(
        o,
        "plan for {what} at {short}: {} step{}, {} skipped",
        plan.steps.len(),
        if plan.steps.len() == 1 { "" } else { "s" },
        plan.skipped.len()
    );
    let _ = writeln!(
        o,
        "{}: {}",
        if plan.publish {
            "publishes"
        } else {
            "does not publish"
        },
        plan.publish_reason
    );
    if plan.atomic && plan.publish {
        let _ = writeln!(o, "atomic: no list is pushed unless every image succeeds");
    }
    let width = plan.steps.len().to_string().len();
    for (i, s) in plan.steps.iter().enumerate() {
        let _ = writeln!(o);
        let _ = write!(o, "{:>width$}. {}", i + 1, s.id);
        if let Some(r) = &s.reference {
            let _ = write!(o, "  → {r}");
        }
        let _ = writeln!(o);
        if !s.needs.is_empty() {
            let _ = writeln!(o, "{:width$}  needs: {}", "", s.needs.join(", "));
        }
        if !s.external_needs.is_empty() {
            let _ = writeln!(
                o,
                "{:width$}  needs (from the registry): {}",
                "",
                s.external_needs.join(", ")
            );
        }
        for (ci, c) in s.commands().iter().enumerate() {
            let tolerated = s.kind == StepKind::ManifestCreate && ci == 0;
            let _ = writeln!(
                o,
                "{:width$}  $ {}{}",
                "",
                argv_line(c),
                if tolerated {
                    "   (absence tolerated)"
                } else {
                    ""
                }
            );
        }
        if s.kind == StepKind::SetupQemu {
            if let super::Action::SetupQemu { handlers, .. } = &s.action {
                let _ = writeln!(
                    o,
                    "{:width$}  (only if a handler is missing: {})",
                    "",
                    handlers.join(", ")
                );
            }
        }
    }
    if !plan.skipped.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "skipped:");
        let w = plan
            .skipped
            .iter()
            .map(|s| s.id.len())
            .max()
            .unwrap_or(0)
            .min(60);
        for s in &plan.skipped {
            let _ = writeln!(o, "  {:w$}  {}", s.id, s.reason);
        }
    }
    o
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Graphviz: `multiarch plan --format dot | dot -Tsvg > plan.svg`.
pub fn render_dot(plan: &Plan) -> String {
    let mut o = String::from(
        "digraph plan {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n",
    );
    for s in &plan.steps {
        let color = match s.kind {
            StepKind::SetupQemu => "gray",
            StepKind::Build => "lightblue",
            StepKind::Test => "khaki",
            StepKind::Push => "lightgreen",
            StepKind::ManifestCreate | StepKind::ManifestPush => "orange",
            StepKind::Verify => "plum",
        };
        let _ = writeln!(
            o,
            "  \"{}\" [style=filled, fillcolor={color}];",
            dot_escape(&s.id)
        );
    }
    for s in &plan.steps {
        for n in &s.needs {
            let _ = writeln!(o, "  \"{}\" -> \"{}\";", dot_escape(n), dot_escape(&s.id));
        }
        for n in &s.external_needs {
            let _ = writeln!(
                o,
                "  \"{}\" [style=dashed];\n  \"{}\" -> \"{}\" [style=dashed];",
                dot_escape(n),
                dot_escape(n),
                dot_escape(&s.id)
            );
        }
    }
    o.push_str("}\n");
    o
}
