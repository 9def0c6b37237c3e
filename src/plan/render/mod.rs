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
    if s.chars().any(char::is_control) {
        return ansi_c_quote(s);
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// bash's `$'…'` for a value with control characters: a terminal never sees
/// them (an ESC from the file cannot recolour or move the cursor), a newline
/// stays on the command's line, and bash reads it back as the same bytes.
fn ansi_c_quote(s: &str) -> String {
    let mut out = String::from("$'");
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            // `\xNN` is one byte to bash: ASCII only; C1 controls as `\uNNNN`,
            // which bash writes as their UTF-8 bytes.
            c if c.is_control() && c.is_ascii() => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_as_bash_reads_them_back() {
        let cases = [
            ("a b", "'a b'"),
            ("x\u{1b}[31my", "$'x\\x1b[31my'"),
            ("a\nb'c\\", "$'a\\nb\\'c\\\\'"),
            ("\u{7}\t", "$'\\x07\\t'"),
            ("a\u{85}b", "$'a\\u0085b'"),
        ];
        for (value, shown) in cases {
            assert_eq!(shell_quote(value), shown);
            // bash gives back the same bytes.
            let out = std::process::Command::new("bash")
                .args(["-c", &format!("printf %s {shown}")])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), value);
        }
    }
}
