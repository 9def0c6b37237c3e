//! The plan as text, JSON (SPEC.md §4) and Graphviz dot.

mod dot;
mod json;
mod text;

pub use dot::render_dot;
pub use json::{render_json, write_json, write_json_compact};
pub use text::render_text;

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

/// `a, b, c` of the ids of steps.
fn joined<'a>(ids: impl Iterator<Item = &'a super::StepId>) -> String {
    let mut out = String::new();
    for (i, id) in ids.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        std::fmt::Write::write_fmt(&mut out, format_args!("{id}")).ok();
    }
    out
}
