//! Colour for human output, and making child output safe to show.

/// ANSI colour, or none. Decided once by the CLI (`--color`, `NO_COLOR`, a
/// terminal); every human reporter takes one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
}

impl Style {
    pub const PLAIN: Style = Style { color: false };

    pub fn new(color: bool) -> Self {
        Style { color }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.color && !text.is_empty() {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn ok(self, t: &str) -> String {
        self.paint("32", t)
    }

    pub fn bad(self, t: &str) -> String {
        self.paint("1;31", t)
    }

    pub fn warn(self, t: &str) -> String {
        self.paint("33", t)
    }

    pub fn info(self, t: &str) -> String {
        self.paint("36", t)
    }

    pub fn dim(self, t: &str) -> String {
        self.paint("2", t)
    }

    pub fn bold(self, t: &str) -> String {
        self.paint("1", t)
    }

    /// A status label, padded to `width` before it is painted.
    pub fn status(self, status: &super::StepStatus, width: usize) -> String {
        use super::StepStatus::*;
        let text = format!("{:width$}", status.label());
        match status {
            Ok => self.ok(&text),
            Cached(_) => self.info(&text),
            Failed(_) | TimedOut(_) => self.bad(&text),
            Skipped(_) | Cancelled => self.warn(&text),
        }
    }
}

/// A line of child output made safe for a single terminal cell row or an XML
/// text node: escape sequences removed, other control characters dropped, tabs
/// turned into spaces. Printable text is kept as it is.
pub fn strip_controls(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                // CSI: ESC [ params final-byte (0x40..=0x7e); OSC: ESC ] … BEL or ESC \;
                // anything else: ESC plus one character.
                match chars.peek() {
                    Some('[') => {
                        chars.next();
                        for n in chars.by_ref() {
                            if ('\x40'..='\x7e').contains(&n) {
                                break;
                            }
                        }
                    }
                    Some(']') => {
                        chars.next();
                        while let Some(n) = chars.next() {
                            if n == '\x07' {
                                break;
                            }
                            if n == '\x1b' && chars.peek() == Some(&'\\') {
                                chars.next();
                                break;
                            }
                        }
                    }
                    Some(_) => {
                        chars.next();
                    }
                    None => {}
                }
            }
            '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_controls_are_removed() {
        assert_eq!(
            strip_controls("\x1b[1;31mred\x1b[0m\tx\x07\x1b]0;title\x07y\rz"),
            "red xyz"
        );
        assert_eq!(strip_controls("plain ünïcode ✓"), "plain ünïcode ✓");
    }

    #[test]
    fn no_colour_means_no_codes() {
        let s = Style::PLAIN;
        assert_eq!(s.bad("FAILED"), "FAILED");
        assert_eq!(Style::new(true).ok("ok"), "\x1b[32mok\x1b[0m");
    }
}
