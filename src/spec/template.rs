//! The two substitutions of multiarch.toml, each done in one pass:
//! `${NAME}` / `${NAME:-default}` from the environment when the file is loaded, and
//! `{var}` plan-time variables. Text that came from the environment is stored as a
//! literal segment, so it is never read as a template again.

use std::ops::Range;

use crate::diagnostic::Problem;
use crate::environment::Environment;

/// A string value of multiarch.toml after environment expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub segments: Vec<Segment>,
    /// Span of the whole value in the file.
    pub span: Range<usize>,
    /// A secret environment variable (a credential, or a secret-looking name)
    /// whose value is in this one, expanded from `${NAME}` or written out: a
    /// build arg that holds it is refused.
    pub secret_env: Option<String>,
}

const SECRET_WORDS: &[&str] = &["TOKEN", "PASSWORD", "PASSWD", "SECRET", "KEY", "CREDENTIAL"];

/// Names (of build args, of environment variables) that look like they carry
/// a secret.
pub fn looks_secret(name: &str) -> bool {
    let up = name.to_ascii_uppercase();
    up.split('_').any(|w| SECRET_WORDS.contains(&w))
        || SECRET_WORDS.iter().any(|s| *s != "KEY" && up.contains(s))
}

/// The secret-looking variable of `env` whose value `text` contains (values
/// shorter than 4 characters are ignored, as the masking does).
fn secret_in(text: &str, used: &[&str], env: &Environment) -> Option<String> {
    if text.len() < 4 && used.is_empty() {
        return None;
    }
    if let Some(u) = used.iter().find(|u| looks_secret(u)) {
        return Some(u.to_string());
    }
    // `looks_secret` allocates: asked only of a value the text contains (this
    // runs for every string of the file, against every variable).
    env.iter()
        .find(|(k, v)| v.len() >= 4 && v.len() <= text.len() && text.contains(v) && looks_secret(k))
        .map(|(k, _)| k.to_string())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    Var { name: String, span: Range<usize> },
}

/// Whether `{…}` is a plan-time variable in this value, or literal text (globs use
/// braces for alternatives, paths and names have no variables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Braces {
    Variables,
    Literal,
}

/// Where the characters of a string value sit in the file, for precise spans.
#[derive(Debug, Clone)]
pub struct Location {
    /// Span of the whole value (quotes included).
    pub whole: Range<usize>,
    /// Byte offset of the value's first character when the value is written without
    /// escapes, so offsets inside the value map 1:1 onto the file.
    pub content_start: Option<usize>,
}

impl Location {
    pub fn at(&self, r: Range<usize>) -> Range<usize> {
        match self.content_start {
            Some(s) => s + r.start..s + r.end,
            None => self.whole.clone(),
        }
    }
}

impl Template {
    pub fn literal(text: impl Into<String>, span: Range<usize>) -> Self {
        Template {
            segments: vec![Segment::Literal(text.into())],
            span,
            secret_env: None,
        }
    }

    /// Variables used, with their spans.
    pub fn vars(&self) -> impl Iterator<Item = (&str, &Range<usize>)> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Var { name, span } => Some((name.as_str(), span)),
            Segment::Literal(_) => None,
        })
    }

    pub fn uses(&self, var: &str) -> bool {
        self.vars().any(|(n, _)| n == var)
    }

    /// The text when the value has no variables.
    pub fn as_literal(&self) -> Option<String> {
        let mut out = String::new();
        for s in &self.segments {
            match s {
                Segment::Literal(l) => out.push_str(l),
                Segment::Var { .. } => return None,
            }
        }
        Some(out)
    }

    /// The value as the user wrote it after env expansion, variables in braces (for
    /// messages and the ids of skipped steps).
    pub fn display(&self) -> String {
        let mut out = String::new();
        for s in &self.segments {
            match s {
                Segment::Literal(l) => out.push_str(l),
                Segment::Var { name, .. } => {
                    out.push('{');
                    out.push_str(name);
                    out.push('}');
                }
            }
        }
        out
    }

    /// Render with `lookup`; the first variable without a value is returned as `Err`.
    pub fn render<F>(&self, mut lookup: F) -> Result<String, &str>
    where
        F: FnMut(&str) -> Option<String>,
    {
        let mut out = String::new();
        for s in &self.segments {
            match s {
                Segment::Literal(l) => out.push_str(l),
                Segment::Var { name, .. } => match lookup(name) {
                    Some(v) => out.push_str(&v),
                    None => return Err(name),
                },
            }
        }
        Ok(out)
    }
}

const MAX_EXPANDED: usize = 64 * 1024;

/// Parse one string value: expand the environment and split out `{var}`s.
/// Problems are returned with spans in the file.
pub fn parse(
    raw: &str,
    loc: &Location,
    env: &Environment,
    braces: Braces,
) -> Result<Template, Vec<Problem>> {
    let mut segments: Vec<Segment> = Vec::new();
    let mut lit = String::new();
    let mut problems = Vec::new();
    // The environment variables expanded here, for [`Template::secret_env`].
    let mut used: Vec<&str> = Vec::new();
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        let c = bytes[i];
        match c {
            b'$' if bytes.get(i + 1) == Some(&b'$') => {
                lit.push('$');
                i += 2;
            }
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                let Some(close) = raw[i + 2..].find('}').map(|p| i + 2 + p) else {
                    problems.push(
                        Problem::new(
                            "unclosed-env",
                            loc.at(i..raw.len()),
                            "unclosed `${` in an environment variable reference",
                            "this `${` is never closed",
                        )
                        .help("close it with `}`, or write `$$` for a literal `$`"),
                    );
                    break;
                };
                let inner = &raw[i + 2..close];
                // `${NAME:-d}`: d when NAME is unset or empty, as a shell does;
                // `${NAME-d}`: d only when NAME is unset.
                let (name, default, empty_is_unset) = match inner.find(":-") {
                    Some(p) => (&inner[..p], Some(&inner[p + 2..]), true),
                    None => match inner.find('-') {
                        Some(p) => (&inner[..p], Some(&inner[p + 1..]), false),
                        None => (inner, None, false),
                    },
                };
                let span = loc.at(i..close + 1);
                if !is_env_name(name) {
                    problems.push(
                        Problem::new(
                            "bad-env-name",
                            span,
                            format!("`{name}` is not a valid environment variable name"),
                            "not a variable name",
                        )
                        .help("names are letters, digits and `_`, not starting with a digit: `${NAME}` or `${NAME:-default}`"),
                    );
                } else {
                    let value = env.get(name).filter(|v| !(empty_is_unset && v.is_empty()));
                    // Only a value read from the environment can carry a secret.
                    if value.is_some() {
                        used.push(name);
                    }
                    match value.or(default) {
                        Some(v) => lit.push_str(v),
                        None => problems.push(
                            Problem::new(
                                "unset-env",
                                span,
                                format!("environment variable `{name}` is not set"),
                                "unset, and no default",
                            )
                            .help(format!(
                                "set {name}, or give a default: `${{{name}:-value}}`"
                            )),
                        ),
                    }
                }
                i = close + 1;
            }
            b'{' if braces == Braces::Variables && bytes.get(i + 1) == Some(&b'{') => {
                lit.push('{');
                i += 2;
            }
            b'}' if braces == Braces::Variables && bytes.get(i + 1) == Some(&b'}') => {
                lit.push('}');
                i += 2;
            }
            b'{' if braces == Braces::Variables => {
                let close = raw[i + 1..]
                    .find(['}', '{'])
                    .map(|p| i + 1 + p)
                    .filter(|&p| bytes[p] == b'}');
                let Some(close) = close else {
                    problems.push(
                        Problem::new(
                            "unclosed-brace",
                            loc.at(i..i + 1),
                            "unclosed `{` in a template",
                            "this `{` is never closed",
                        )
                        .help("close the variable with `}`, or write `{{` for a literal `{`"),
                    );
                    break;
                };
                let name = raw[i + 1..close].trim();
                let span = loc.at(i..close + 1);
                if name.is_empty() {
                    problems.push(
                        Problem::new(
                            "empty-variable",
                            span,
                            "empty template variable `{}`",
                            "no variable name",
                        )
                        .help("write a variable such as `{sha}`, or `{{}}` for literal braces"),
                    );
                } else {
                    if !lit.is_empty() {
                        segments.push(Segment::Literal(std::mem::take(&mut lit)));
                    }
                    segments.push(Segment::Var {
                        name: name.to_string(),
                        span,
                    });
                }
                i = close + 1;
            }
            b'}' if braces == Braces::Variables => {
                problems.push(
                    Problem::new(
                        "unmatched-brace",
                        loc.at(i..i + 1),
                        "unmatched `}` in a template",
                        "no `{` opens this",
                    )
                    .help("write `}}` for a literal `}`"),
                );
                i += 1;
            }
            _ => {
                // Copy up to the next special character in one go (from the next
                // character, which may be several bytes long).
                let from = i + raw[i..].chars().next().map_or(1, char::len_utf8);
                let next = raw[from..]
                    .find(['$', '{', '}'])
                    .map_or(raw.len(), |p| from + p);
                lit.push_str(&raw[i..next]);
                i = next;
            }
        }
        if lit.len() > MAX_EXPANDED {
            problems.push(
                Problem::new(
                    "value-too-long",
                    loc.whole.clone(),
                    format!(
                        "this value expands to more than {} KiB",
                        MAX_EXPANDED / 1024
                    ),
                    "too long after expansion",
                )
                .help("values of multiarch.toml are names, paths and tags: keep them short"),
            );
            break;
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    if !lit.is_empty() || segments.is_empty() {
        segments.push(Segment::Literal(lit));
    }
    let text: String = segments
        .iter()
        .filter_map(|s| match s {
            Segment::Literal(l) => Some(l.as_str()),
            Segment::Var { .. } => None,
        })
        .collect();
    Ok(Template {
        secret_env: secret_in(&text, &used, env),
        segments,
        span: loc.whole.clone(),
    })
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(raw: &str) -> Location {
        Location {
            whole: 0..raw.len() + 2,
            content_start: Some(1),
        }
    }

    fn parse_ok(raw: &str, env: &Environment) -> Template {
        parse(raw, &loc(raw), env, Braces::Variables).expect("parses")
    }

    #[test]
    fn env_expansion_with_defaults() {
        let env = Environment::from_pairs([("REG", "127.0.0.1:5000/acme")]);
        let t = parse_ok("${REG}/x:${TAG:-latest}", &env);
        assert_eq!(
            t.as_literal().as_deref(),
            Some("127.0.0.1:5000/acme/x:latest")
        );
    }

    #[test]
    fn a_set_but_empty_variable_takes_the_colon_default_as_a_shell_does() {
        let env = Environment::from_pairs([("EMPTY", ""), ("SET", "v")]);
        let lit = |raw: &str| parse_ok(raw, &env).as_literal();
        assert_eq!(lit("${EMPTY:-d}").as_deref(), Some("d"));
        assert_eq!(lit("${EMPTY-d}").as_deref(), Some(""));
        assert_eq!(lit("${UNSET-d}").as_deref(), Some("d"));
        assert_eq!(lit("${SET:-d}${SET-d}").as_deref(), Some("vv"));
        assert_eq!(lit("${EMPTY}").as_deref(), Some(""));
    }

    #[test]
    fn env_values_are_never_expanded_again() {
        let env = Environment::from_pairs([("V", "{sha}${HOME}")]);
        let t = parse_ok("a-${V}-{sha}", &env);
        assert_eq!(
            t.segments,
            vec![
                Segment::Literal("a-{sha}${HOME}-".into()),
                Segment::Var {
                    name: "sha".into(),
                    span: 8..13
                }
            ]
        );
    }

    #[test]
    fn escapes() {
        let t = parse_ok("$${{x}}{{y}}$", &Environment::empty());
        assert_eq!(t.as_literal().as_deref(), Some("${x}{y}$"));
    }

    /// The problems of `text` as a template with variables.
    fn problems(text: &str) -> Vec<Problem> {
        parse(text, &loc(text), &Environment::empty(), Braces::Variables).unwrap_err()
    }

    #[test]
    fn unset_env_is_an_error_with_a_span() {
        let err = problems("x${NOPE}");
        assert_eq!(err.len(), 1);
        assert_eq!(err[0].code, "unset-env");
        assert_eq!(err[0].span, 2..9);
    }

    #[test]
    fn unclosed_and_unmatched_braces() {
        assert_eq!(problems("{sha")[0].code, "unclosed-brace");
        assert_eq!(problems("a}b")[0].code, "unmatched-brace");
        assert_eq!(problems("{a{b}")[0].code, "unclosed-brace");
    }

    #[test]
    fn literal_braces_mode_keeps_globs() {
        let t = parse(
            "src/{a,b}/**",
            &loc(""),
            &Environment::empty(),
            Braces::Literal,
        )
        .unwrap();
        assert_eq!(t.as_literal().as_deref(), Some("src/{a,b}/**"));
    }

    #[test]
    fn non_ascii_text_after_a_special_character() {
        let t = parse_ok("Ürün {name}→ü$$é", &Environment::empty());
        assert_eq!(t.display(), "Ürün {name}→ü$é");
    }

    #[test]
    fn render_reports_the_missing_variable() {
        let t = parse_ok("{repo}:{version}", &Environment::empty());
        let r = t.render(|v| (v == "repo").then(|| "r".to_string()));
        assert_eq!(r, Err("version"));
        assert_eq!(t.display(), "{repo}:{version}");
    }
}
