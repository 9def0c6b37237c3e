//! Graphviz: `multiarch plan --format dot | dot -Tsvg > plan.svg`.

use std::fmt::Write;

use crate::plan::{Plan, StepKind};

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Each step a box coloured by kind, each need an edge; needs from the registry dashed.
pub fn render_dot(plan: &Plan) -> String {
    let mut o = String::from(
        "digraph plan {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n",
    );
    for s in plan.steps() {
        let color = match s.kind() {
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
            dot_escape(&s.id.to_string())
        );
    }
    for idx in plan.indices() {
        let s = plan.step(idx);
        let me = dot_escape(&s.id.to_string());
        for n in plan.need_ids(idx) {
            let _ = writeln!(o, "  \"{}\" -> \"{me}\";", dot_escape(&n.to_string()));
        }
        for e in s.external_needs() {
            let n = dot_escape(&e.id.to_string());
            let _ = writeln!(
                o,
                "  \"{n}\" [style=dashed];\n  \"{n}\" -> \"{me}\" [style=dashed];"
            );
        }
    }
    o.push_str("}\n");
    o
}
