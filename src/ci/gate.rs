//! Which refs a generated publish job runs on, derived from the globs multiarch
//! itself matches refs with (globset, `literal_separator(true)`; SPEC.md §1).
//!
//! GitLab: each glob becomes an RE2 pattern for `=~ /…/`, translated from the
//! regular expression globset compiles the glob to, so both match the same
//! names (every name git accepts as a branch or tag: on others, such as one
//! ending in `..`, globset's GlobSet shortcuts differ from its own regex).
//! GitHub has no regular expressions: a glob becomes `==` or `startsWith`,
//! exact for a literal and for `PREFIX/**`, a superset otherwise; then a first
//! step of the publish job matches the ref against POSIX EREs translated the
//! same way (under `LC_ALL=C`, so `?` and negated classes match one byte, as
//! globset's do), and the other steps run only when it matches. RE2 has no
//! byte mode: there `?` and negated classes become the ASCII characters they
//! match, exact on names of ASCII characters, and a name with any other
//! character also runs the job. Where a rule is wider than the globs, the job
//! still runs `multiarch run --stage publish`, which decides and says "this
//! build does not publish".

use crate::spec::Spec;

/// A publishing ref kind: branches (`publish.branches`) or git tags (`publish.tags`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    Branch,
    Tag,
}

impl RefKind {
    /// GitHub's `github.ref` prefix.
    fn github_prefix(self) -> &'static str {
        match self {
            RefKind::Branch => "refs/heads/",
            RefKind::Tag => "refs/tags/",
        }
    }

    /// GitLab's predefined variable holding the name.
    fn gitlab_variable(self) -> &'static str {
        match self {
            RefKind::Branch => "$CI_COMMIT_BRANCH",
            RefKind::Tag => "$CI_COMMIT_TAG",
        }
    }
}

/// Every publishing glob of the spec, branches first.
pub fn publishing_globs(spec: &Spec) -> Vec<(RefKind, &str)> {
    let branches = spec.publish.branches.patterns.iter();
    let tags = spec.publish.tags.patterns.iter();
    branches
        .map(|g| (RefKind::Branch, g.as_str()))
        .chain(tags.map(|g| (RefKind::Tag, g.as_str())))
        .collect()
}

// ---------------------------------------------------------------------------
// GitLab

/// A GitLab `rules: if:` expression for one glob, and whether it matches
/// exactly the names the glob matches (else: every name of that kind).
pub fn gitlab_rule(kind: RefKind, glob: &str) -> (String, bool) {
    let var = kind.gitlab_variable();
    match (gitlab_pattern(glob), gitlab_pattern_ascii(glob)) {
        (Some(p), _) => (format!("{var} =~ /{p}/"), true),
        // Exact on names of ASCII characters (every name in practice); a name
        // with another character runs the job, and multiarch decides.
        (None, Some(p)) => (
            format!("{var} =~ /{p}/ || {var} =~ /[^\\x00-\\x7f]/"),
            false,
        ),
        (None, None) => (var.to_string(), false),
    }
}

/// The RE2 pattern (the part between GitLab's `/…/`) that matches exactly the
/// names `glob` matches; `None` when RE2 cannot say it exactly.
///
/// globset matches bytes: its `?` and negated classes match one byte, RE2's one
/// character, so those differ on non-ASCII names and are not translated. A glob
/// with `\` escapes only matches names git refuses (`*`, `?`, `[`, `\`).
pub fn gitlab_pattern(glob: &str) -> Option<String> {
    re2_pattern(glob, false)
}

/// [`gitlab_pattern`] for names of ASCII characters alone: `?` and negated
/// classes as the ASCII characters they match. On such names it matches
/// exactly what the glob matches; on others it may not.
pub fn gitlab_pattern_ascii(glob: &str) -> Option<String> {
    re2_pattern(glob, true)
}

/// The RE2 pattern of `glob`; a one-byte piece as its ASCII characters when
/// `ascii`, else `None`.
fn re2_pattern(glob: &str, ascii: bool) -> Option<String> {
    let mut out = String::new();
    for piece in pieces(glob)? {
        match piece {
            Piece::Lit(c) => push_literal(c, &mut out),
            Piece::Segment => out.push_str("[^\\/]*"),
            Piece::Anything => out.push_str(".*"),
            Piece::Class(members) => {
                out.push('[');
                for m in members {
                    match m {
                        ClassMember::Char(c) => push_class_literal(c, &mut out),
                        ClassMember::Range => out.push('-'),
                    }
                }
                out.push(']');
            }
            Piece::Op(op) => out.push_str(op),
            // On a name of ASCII characters alone, bytes and characters are the same.
            Piece::OneByte { excluded } if ascii => {
                let bytes: Vec<u8> = (0u8..=0x7f)
                    .filter(|&b| !class_has(&excluded, b as char))
                    .collect();
                out.push_str(&re2_byte_class(&bytes));
            }
            Piece::OneByte { .. } => return None,
        }
    }
    Some(out)
}

/// An RE2 class of exactly `bytes` (ASCII), as `\\xNN` ranges: no character a
/// YAML or GitLab lexer could take for a quote or the pattern's end.
fn re2_byte_class(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        // Matches nothing: a class of no ASCII character (the rule still has
        // its non-ASCII alternative).
        return "[^\\x00-\\x{10ffff}]".into();
    }
    let mut out = String::from("[");
    let mut k = 0;
    while k < bytes.len() {
        let start = bytes[k];
        let mut end = start;
        while k + 1 < bytes.len() && bytes[k + 1] == end + 1 {
            k += 1;
            end = bytes[k];
        }
        if start == end {
            out.push_str(&format!("\\x{start:02x}"));
        } else {
            out.push_str(&format!("\\x{start:02x}-\\x{end:02x}"));
        }
        k += 1;
    }
    out.push(']');
    out
}

/// One element of the regular expression globset compiles a glob to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// A literal character.
    Lit(char),
    /// `[^/]*`: a `*`.
    Segment,
    /// `.*`: a `**` at an end.
    Anything,
    /// `[…]`, not negated, with ASCII members.
    Class(Vec<ClassMember>),
    /// `?` or a negated class (`[^/]`, `[^/a-c]`): one byte for globset, one
    /// character for RE2. The members it excludes.
    OneByte { excluded: Vec<ClassMember> },
    /// `^`, `$`, `(?:`, `|`, `)`, and the `.`, `*`, `?` in `**`'s groups.
    Op(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ClassMember {
    Char(char),
    Range,
}

/// globset's regex for `glob` (with `literal_separator`, as multiarch matches),
/// read back. Its syntax is a closed set: escaped literals, `\xNN` bytes,
/// `[^/]`, `[^/]*`, classes, `.*`, `(?:…|…)` and anchors; anything else, or a
/// glob with `\` escapes, is `None`.
fn pieces(glob: &str) -> Option<Vec<Piece>> {
    let compiled = crate::spec::glob(glob).ok()?;
    let re: Vec<char> = compiled.regex().strip_prefix("(?-u)")?.chars().collect();
    let mut out = Vec::new();
    let mut bytes: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < re.len() {
        let c = re[i];
        if c == '\\' && re.get(i + 1) == Some(&'x') {
            let hex: String = re.get(i + 2..i + 4)?.iter().collect();
            bytes.push(u8::from_str_radix(&hex, 16).ok()?);
            i += 4;
            continue;
        }
        flush_bytes(&mut bytes, &mut out)?;
        let rest = &re[i..];
        let (piece, len) = match c {
            '\\' => (Piece::Lit(*rest.get(1)?), 2),
            '[' => {
                let end = (1..rest.len()).find(|&j| rest[j] == ']' && rest[j - 1] != '\\')?;
                (class(&rest[1..end], rest.get(end + 1))?, end + 1)
            }
            '.' if rest.get(1) == Some(&'*') => (Piece::Anything, 2),
            '(' if rest.get(1..3) == Some(&['?', ':']) => (Piece::Op("(?:"), 3),
            '^' => (Piece::Op("^"), 1),
            '$' => (Piece::Op("$"), 1),
            '|' => (Piece::Op("|"), 1),
            ')' => (Piece::Op(")"), 1),
            '?' => (Piece::Op("?"), 1),
            '*' => (Piece::Op("*"), 1),
            '.' => (Piece::Op("."), 1),
            other => (Piece::Lit(other), 1),
        };
        // `[^/]*` is one piece: the class and its star.
        let len = if piece == Piece::Segment {
            len + 1
        } else {
            len
        };
        out.push(piece);
        i += len;
    }
    flush_bytes(&mut bytes, &mut out)?;
    Some(out)
}

/// The body of a `[…]` (and what follows it).
fn class(body: &[char], next: Option<&char>) -> Option<Piece> {
    if body == ['^', '/'] && next == Some(&'*') {
        return Some(Piece::Segment);
    }
    if body.first() == Some(&'^') {
        return Some(Piece::OneByte {
            excluded: class_members(&body[1..])?,
        });
    }
    Some(Piece::Class(class_members(body)?))
}

/// Whether `c` is one of a class's members (`a`, `a-z`).
fn class_has(members: &[ClassMember], c: char) -> bool {
    spans(members).iter().any(|(a, b)| (*a..=*b).contains(&c))
}

/// A class's members as inclusive ranges (`a-z`; a single `x` is `x-x`; a
/// `-` that ranges nothing is itself).
fn spans(members: &[ClassMember]) -> Vec<(char, char)> {
    let mut out = Vec::new();
    let mut k = 0;
    while k < members.len() {
        match (&members[k], members.get(k + 1), members.get(k + 2)) {
            (ClassMember::Char(a), Some(ClassMember::Range), Some(ClassMember::Char(b))) => {
                out.push((*a, *b));
                k += 3;
            }
            (ClassMember::Char(c), _, _) => {
                out.push((*c, *c));
                k += 1;
            }
            (ClassMember::Range, _, _) => {
                out.push(('-', '-'));
                k += 1;
            }
        }
    }
    out
}

/// A class body's members: characters and ranges. `None` for a body with an
/// escape that is not a literal character (`\\xNN` bytes of a non-ASCII member,
/// `\\s`): no pattern is written for it (the rule stays wider, and exact).
fn class_members(body: &[char]) -> Option<Vec<ClassMember>> {
    let mut members = Vec::new();
    let mut k = 0;
    while k < body.len() {
        match body[k] {
            '\\' => {
                let c = *body.get(k + 1)?;
                if c.is_ascii_alphanumeric() {
                    return None;
                }
                members.push(ClassMember::Char(c));
                k += 2;
            }
            '-' => {
                members.push(ClassMember::Range);
                k += 1;
            }
            m => {
                members.push(ClassMember::Char(m));
                k += 1;
            }
        }
    }
    Some(members)
}

/// Bytes of `\xNN` escapes, as the characters they encode.
fn flush_bytes(bytes: &mut Vec<u8>, out: &mut Vec<Piece>) -> Option<()> {
    if !bytes.is_empty() {
        out.extend(std::str::from_utf8(bytes).ok()?.chars().map(Piece::Lit));
        bytes.clear();
    }
    Some(())
}

/// A literal character for RE2 inside `/…/` in a YAML string: letters and
/// digits as they are, `/` as `\/` (GitLab's lexer ends the pattern at a bare
/// one), quotes, spaces and other characters as `\xNN` / `\x{…}` (nothing a
/// lexer could take for a quote or a separator), other punctuation escaped.
fn push_literal(c: char, out: &mut String) {
    match c {
        c if c.is_ascii_alphanumeric() || c == '_' || c == '-' => out.push(c),
        '/' => out.push_str("\\/"),
        c if c.is_ascii_punctuation() && !matches!(c, '\'' | '"' | '`') => {
            out.push('\\');
            out.push(c);
        }
        c if c.is_ascii() => out.push_str(&format!("\\x{:02x}", c as u32)),
        c => out.push_str(&format!("\\x{{{:x}}}", c as u32)),
    }
}

fn push_class_literal(c: char, out: &mut String) {
    match c {
        '-' | ']' | '[' | '^' | '\\' => {
            out.push('\\');
            out.push(c);
        }
        c => push_literal(c, out),
    }
}

// ---------------------------------------------------------------------------
// POSIX extended regular expressions (bash's `[[ NAME =~ RE ]]`)

/// The POSIX ERE that matches exactly the names `glob` matches, for a shell
/// gate where an expression language has no regular expressions; `None` where
/// [`gitlab_pattern`] is `None` too, or for a class POSIX brackets cannot hold.
pub fn posix_ere(glob: &str) -> Option<String> {
    let mut out = String::new();
    for piece in pieces(glob)? {
        match piece {
            Piece::Lit(c) => {
                if ".[]()*+?{}|^$\\".contains(c) {
                    out.push('\\');
                }
                out.push(c);
            }
            Piece::Segment => out.push_str("[^/]*"),
            Piece::Anything => out.push_str(".*"),
            Piece::Class(members) => out.push_str(&posix_bracket(&members)?),
            Piece::Op("(?:") => out.push('('),
            Piece::Op(op) => out.push_str(op),
            // The gate matches bytes (LC_ALL=C), as globset does.
            Piece::OneByte { excluded } => {
                let positive = posix_bracket(&excluded)?;
                out.push_str(&format!("[^{}", &positive[1..]));
            }
        }
    }
    Some(out)
}

/// A bracket expression: no escapes inside POSIX brackets, so `]` goes first,
/// `-` last and `^` anywhere but first.
fn posix_bracket(members: &[ClassMember]) -> Option<String> {
    let mut singles: Vec<char> = Vec::new();
    let mut ranges: Vec<(char, char)> = Vec::new();
    for (a, b) in spans(members) {
        if a == b {
            singles.push(a);
        } else if [a, b].iter().any(|c| matches!(c, ']' | '-' | '^' | '[')) {
            return None;
        } else {
            ranges.push((a, b));
        }
    }
    let mut out = String::from("[");
    if singles.contains(&']') {
        out.push(']');
    }
    for c in singles
        .iter()
        .filter(|c| !matches!(c, ']' | '^' | '[' | '-'))
    {
        out.push(*c);
    }
    for (a, b) in &ranges {
        out.push(*a);
        out.push('-');
        out.push(*b);
    }
    for special in ['^', '[', '-'] {
        if singles.contains(&special) {
            out.push(special);
        }
    }
    out.push(']');
    // `[^` would negate; `[:`, `[.`, `[=` open classes of their own.
    let body = &out[1..];
    if body.starts_with('^') || ["[:", "[.", "[="].iter().any(|s| body.contains(s)) {
        return None;
    }
    Some(out)
}

/// The EREs of the branch globs and of the tag globs, each one alternation
/// (`None` when there is no glob of that kind), and whether every glob has an
/// exact one (else it stands as `.*`: the gate is wider, multiarch decides).
pub fn posix_gates(globs: &[(RefKind, &str)]) -> (Option<String>, Option<String>, bool) {
    let mut exact = true;
    let mut one = |kind: RefKind| {
        let parts: Vec<String> = globs
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, g)| {
                posix_ere(g).unwrap_or_else(|| {
                    exact = false;
                    "^.*$".into()
                })
            })
            .map(|re| format!("({re})"))
            .collect();
        (!parts.is_empty()).then(|| parts.join("|"))
    };
    let branches = one(RefKind::Branch);
    let tags = one(RefKind::Tag);
    (branches, tags, exact)
}

// ---------------------------------------------------------------------------
// GitHub

/// A condition in GitHub's expression language, over `github.ref` and
/// `github.event_name`. Kept as a tree so tests can evaluate what is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    /// `github.event_name == '…'`
    Event(String),
    /// `github.ref == '…'`
    RefIs(String),
    /// `startsWith(github.ref, '…')`
    RefStartsWith(String),
    /// `endsWith(github.ref, '…')`
    RefEndsWith(String),
    All(Vec<Cond>),
    Any(Vec<Cond>),
}

impl Cond {
    /// The expression text (without `${{ }}`); string literals quote `'` as `''`.
    pub fn render(&self) -> String {
        fn lit(s: &str) -> String {
            format!("'{}'", s.replace('\'', "''"))
        }
        fn group(sep: &str, items: &[Cond]) -> String {
            items
                .iter()
                .map(|i| match i {
                    Cond::All(_) | Cond::Any(_) if items.len() > 1 => format!("({})", i.render()),
                    _ => i.render(),
                })
                .collect::<Vec<_>>()
                .join(sep)
        }
        match self {
            Cond::Event(e) => format!("github.event_name == {}", lit(e)),
            Cond::RefIs(r) => format!("github.ref == {}", lit(r)),
            Cond::RefStartsWith(p) => format!("startsWith(github.ref, {})", lit(p)),
            Cond::RefEndsWith(s) => format!("endsWith(github.ref, {})", lit(s)),
            Cond::All(items) => group(" && ", items),
            Cond::Any(items) => group(" || ", items),
        }
    }

    /// What GitHub computes for a run of `event` on `git_ref`: its string
    /// comparisons ignore case.
    pub fn eval(&self, git_ref: &str, event: &str) -> bool {
        let r = git_ref.to_lowercase();
        match self {
            Cond::Event(e) => event.to_lowercase() == e.to_lowercase(),
            Cond::RefIs(x) => r == x.to_lowercase(),
            Cond::RefStartsWith(p) => r.starts_with(&p.to_lowercase()),
            Cond::RefEndsWith(s) => r.ends_with(&s.to_lowercase()),
            Cond::All(items) => items.iter().all(|c| c.eval(git_ref, event)),
            Cond::Any(items) => items.iter().any(|c| c.eval(git_ref, event)),
        }
    }
}

/// The `if:` of a GitHub publish job for the publishing globs
/// ([`publishing_globs`]): pushes only (never a pull request), to a ref some
/// glob may match. `exact` when it holds on exactly the refs where multiarch
/// publishes (up to letter case, which GitHub ignores); `None` when nothing
/// publishes.
pub fn github_condition(globs: &[(RefKind, &str)]) -> Option<(Cond, bool)> {
    if globs.is_empty() {
        return None;
    }
    let mut exact = true;
    let mut any = Vec::new();
    for &(kind, glob) in globs {
        for (c, e) in github_glob(kind, glob) {
            exact &= e;
            if !any.contains(&c) {
                any.push(c);
            }
        }
    }
    let refs = if any.len() == 1 {
        any.remove(0)
    } else {
        Cond::Any(any)
    };
    Some((Cond::All(vec![Cond::Event("push".into()), refs]), exact))
}

/// Conditions that together hold on (at least) the refs `glob` matches, read
/// from globset's regex: literal text is `==`, literal text then `.*` is
/// `startsWith` (both exact), anything else `startsWith` its literal head and
/// `endsWith` its literal tail.
fn github_glob(kind: RefKind, glob: &str) -> Vec<(Cond, bool)> {
    let prefix = kind.github_prefix();
    let everything = || vec![(Cond::RefStartsWith(prefix.into()), false)];
    let Some(alternatives) = expand_braces(glob) else {
        return everything();
    };
    let mut out = Vec::new();
    for g in &alternatives {
        let Some(pieces) = pieces(g) else {
            return everything();
        };
        let [Piece::Op("^"), body @ .., Piece::Op("$")] = pieces.as_slice() else {
            return everything();
        };
        let lit = |p: &Piece| match p {
            Piece::Lit(c) => Some(*c),
            _ => None,
        };
        let head: String = body.iter().map_while(lit).collect();
        let n = head.chars().count();
        let start = Cond::RefStartsWith(format!("{prefix}{head}"));
        if n == body.len() {
            out.push((Cond::RefIs(format!("{prefix}{head}")), true));
        } else if n + 1 == body.len() && body[n] == Piece::Anything {
            out.push((start, true));
        } else {
            let tail: String = body
                .iter()
                .rev()
                .map_while(lit)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            if tail.is_empty() {
                out.push((start, false));
            } else {
                out.push((Cond::All(vec![start, Cond::RefEndsWith(tail)]), false));
            }
        }
    }
    out
}

/// `{a,b}x{c,d}` → `[axc, axd, bxc, bxd]`, as globset reads alternates (no
/// nesting; empty alternatives dropped). `None` past 64 alternatives, for an
/// escape, or a brace globset would refuse.
fn expand_braces(glob: &str) -> Option<Vec<String>> {
    const MAX: usize = 64;
    if glob.contains('\\') {
        return None;
    }
    let chars: Vec<char> = glob.chars().collect();
    let mut in_class = false;
    let mut open = None;
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '{' if !in_class => {
                open = Some(i);
                break;
            }
            _ => {}
        }
    }
    let Some(open) = open else {
        return Some(vec![glob.to_string()]);
    };
    let mut parts = vec![String::new()];
    let mut close = None;
    let mut in_class = false;
    for (j, &c) in chars.iter().enumerate().skip(open + 1) {
        match c {
            '[' if !in_class => {
                in_class = true;
                parts.last_mut()?.push(c);
            }
            ']' if in_class => {
                in_class = false;
                parts.last_mut()?.push(c);
            }
            ',' if !in_class => parts.push(String::new()),
            '{' if !in_class => return None,
            '}' if !in_class => {
                close = Some(j);
                break;
            }
            _ => parts.last_mut()?.push(c),
        }
    }
    let close = close?;
    let head: String = chars[..open].iter().collect();
    let rest: String = chars[close + 1..].iter().collect();
    let mut parts: Vec<String> = parts.into_iter().filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        parts.push(String::new());
    }
    let tails = expand_braces(&rest)?;
    let mut out = Vec::new();
    for p in &parts {
        for t in &tails {
            out.push(format!("{head}{p}{t}"));
            if out.len() > MAX {
                return None;
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{opt, rows};

    #[test]
    fn globs_become_re2_patterns_and_posix_eres() {
        let cases = r"
            // glob         RE2 (GitLab: slashes escaped)  POSIX ERE (bash, LC_ALL=C)
            main            ^main$                         ^main$
            release/*       ^release\/[^\/]*$              ^release/[^/]*$
            release/**      ^release\/.*$                  ^release/.*$
            v*              ^v[^\/]*$                      ^v[^/]*$
            rel-[0-9]*      ^rel-[0-9][^\/]*$              ^rel-[0-9][^/]*$
            {a,b}/**        ^(?:a|b)\/.*$                  ^(a|b)/.*$
            it's            ^it\x27s$                      ^it's$
            v1.*            ^v1\.[^\/]*$                   ^v1\.[^/]*$
            **/hotfix       ^(?:\/?|.*\/)hotfix$           ^(/?|.*/)hotfix$
            é*              ^\x{e9}[^\/]*$                 ^é[^/]*$
            // One byte against one character: RE2 has no byte mode, so no
            // pattern is the same on non-ASCII names (bash's is, under LC_ALL=C).
            v?              -                              ^v[^/]$
            a?              -                              ^a[^/]$
            [!a]*           -                              ^[^/a][^/]*$
            [!a-c]x         -                              ^[^/a-c]x$
            // An escape is its character.
            back\slash      ^backslash$                    ^backslash$
            a\*b            ^a\*b$                         ^a\*b$
            // No escapes in globset's classes: `\` is a member, as in POSIX
            // brackets; RE2 escapes every member that could be read otherwise.
            [a\-]x          ^[a\\\-]x$                     ^[a\-]x$
            []a-]x          ^[\]a\-]x$                     ^[]a-]x$
            [-a^]           ^[\-a\^]$                      ^[a^-]$
        ";
        for row in rows(cases, 3) {
            let glob = row[0];
            assert_eq!(gitlab_pattern(glob).as_deref(), opt(row[1]), "{glob}");
            assert_eq!(posix_ere(glob).as_deref(), Some(row[2]), "{glob}");
        }
        // On ASCII names: the ASCII characters they match.
        let ascii = |g: &str| gitlab_pattern_ascii(g);
        assert_eq!(ascii("v?").as_deref(), Some(r"^v[\x00-\x2e\x30-\x7f]$"));
        assert_eq!(
            ascii("[!a]x").as_deref(),
            Some(r"^[\x00-\x2e\x30-\x60\x62-\x7f]x$")
        );
        // A class with a non-ASCII member (globset writes its bytes as `\\x`
        // escapes) or a class escape gets no pattern: the rule stays wider.
        for g in ["v[!é]", "w[a-é]", "x[é]", "y[/]"] {
            assert_eq!(ascii(g), None, "{g}");
            assert_eq!(
                gitlab_rule(RefKind::Branch, g),
                ("$CI_COMMIT_BRANCH".into(), false),
                "{g}"
            );
        }
        let (rule, exact) = gitlab_rule(RefKind::Branch, "wat?");
        assert!(!exact);
        assert_eq!(
            rule,
            "$CI_COMMIT_BRANCH =~ /^wat[\\x00-\\x2e\\x30-\\x7f]$/ || $CI_COMMIT_BRANCH =~ /[^\\x00-\\x7f]/"
        );
    }

    #[test]
    fn a_pattern_never_holds_a_bare_slash_or_quote() {
        for g in ["a/b/**", "x'y\"z/*", "{a/b,c}", "[a-c]/x"] {
            let p = gitlab_pattern(g).unwrap();
            let bare_slash = p
                .char_indices()
                .any(|(i, c)| c == '/' && !p[..i].ends_with('\\'));
            assert!(!bare_slash, "{g} → {p}");
            assert!(!p.contains(['\'', '"']), "{g} → {p}");
        }
    }

    #[test]
    fn github_conditions_are_exact_for_literals_and_recursive_suffixes() {
        let one = |g: &str| github_glob(RefKind::Branch, g);
        assert_eq!(
            one("main"),
            vec![(Cond::RefIs("refs/heads/main".into()), true)]
        );
        assert_eq!(
            one("release/**"),
            vec![(Cond::RefStartsWith("refs/heads/release/".into()), true)]
        );
        assert_eq!(
            one("{a,b}/**"),
            vec![
                (Cond::RefStartsWith("refs/heads/a/".into()), true),
                (Cond::RefStartsWith("refs/heads/b/".into()), true)
            ]
        );
        let (c, exact) = one("release/*").remove(0);
        assert!(!exact);
        assert!(c.eval("refs/heads/release/a", "push"));
        // A superset: multiarch decides on release/a/b.
        assert!(c.eval("refs/heads/release/a/b", "push"));
        let (c, exact) = one("rel-[0-9]*").remove(0);
        assert!(!exact && c.eval("refs/heads/rel-1", "push"));
        assert!(!c.eval("refs/heads/main", "push"));
    }

    #[test]
    fn quotes_in_github_literals_are_doubled() {
        let c = Cond::RefIs("refs/heads/it's".into());
        assert_eq!(c.render(), "github.ref == 'refs/heads/it''s'");
        let all = Cond::All(vec![
            Cond::Event("push".into()),
            Cond::Any(vec![
                Cond::RefIs("refs/heads/main".into()),
                Cond::RefStartsWith("refs/tags/v".into()),
            ]),
        ]);
        assert_eq!(
            all.render(),
            "github.event_name == 'push' && (github.ref == 'refs/heads/main' || startsWith(github.ref, 'refs/tags/v'))"
        );
    }

    #[test]
    fn braces_expand_like_globset_alternates() {
        assert_eq!(expand_braces("{a,b}-{c,}").unwrap(), vec!["a-c", "b-c"]);
        assert_eq!(expand_braces("x[{]y"), Some(vec!["x[{]y".to_string()]));
        assert_eq!(expand_braces("{a,{b}}"), None);
        let many = "{a,b}{c,d}{e,f}{g,h}{i,j}{k,l}{m,n}";
        assert_eq!(expand_braces(many), None);
    }
}
