//! Diagnostics about multiarch.toml: every error points at the file, a span, a
//! label and (usually) a help line. They are collected, never thrown one by one.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode};

/// The text of a loaded multiarch.toml, shared by every diagnostic about it.
#[derive(Clone)]
pub struct SourceFile {
    pub(crate) named: NamedSource<Arc<str>>,
    text: Arc<str>,
}

impl SourceFile {
    pub fn new(name: impl AsRef<str>, text: impl Into<Arc<str>>) -> Self {
        let text: Arc<str> = text.into();
        SourceFile {
            named: NamedSource::new(name, text.clone()),
            text,
        }
    }

    pub fn name(&self) -> &str {
        self.named.name()
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(&self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl fmt::Debug for SourceFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceFile")
            .field("name", &self.name())
            .finish()
    }
}

/// One problem found in multiarch.toml.
#[derive(Debug, Clone)]
pub struct Problem {
    /// A stable short code, e.g. `unknown-arch`.
    pub code: &'static str,
    pub message: String,
    pub span: Range<usize>,
    pub label: String,
    pub help: Option<String>,
    /// Secondary spans (e.g. the other members of a dependency cycle).
    pub related: Vec<(Range<usize>, String)>,
}

impl Problem {
    pub fn new(
        code: &'static str,
        span: Range<usize>,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> Self {
        Problem {
            code,
            message: message.into(),
            span,
            label: label.into(),
            help: None,
            related: Vec::new(),
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn maybe_help(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    pub fn related(mut self, span: Range<usize>, label: impl Into<String>) -> Self {
        self.related.push((span, label.into()));
        self
    }
}

/// A problem bound to its source file: what miette renders.
#[derive(Debug, Clone)]
pub struct SpecDiagnostic {
    pub source: SourceFile,
    pub problem: Problem,
}

impl SpecDiagnostic {
    /// `file:line:col`, for one-line summaries.
    pub fn location(&self) -> String {
        let (line, col) = self.source.line_col(self.problem.span.start);
        format!("{}:{}:{}", self.source.name(), line, col)
    }
}

impl fmt::Display for SpecDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problem.message)
    }
}

impl std::error::Error for SpecDiagnostic {}

impl Diagnostic for SpecDiagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(format!("multiarch::{}", self.problem.code)))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.problem
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source.named)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let len = self.source.text().len();
        let clamp = move |r: &Range<usize>| {
            let start = r.start.min(len);
            let end = r.end.clamp(start, len);
            (start, end - start)
        };
        let (s, l) = clamp(&self.problem.span);
        let primary = LabeledSpan::new_primary_with_span(Some(self.problem.label.clone()), (s, l));
        let rest = self.problem.related.iter().map(move |(r, label)| {
            let (s, l) = clamp(r);
            LabeledSpan::new_with_span(Some(label.clone()), (s, l))
        });
        Some(Box::new(std::iter::once(primary).chain(rest)))
    }
}

/// Every problem found in one file, in source order.
#[derive(Debug, Clone)]
pub struct SpecErrors {
    pub diagnostics: Vec<SpecDiagnostic>,
}

impl SpecErrors {
    pub fn new(source: &SourceFile, mut problems: Vec<Problem>) -> Self {
        problems.sort_by_key(|p| (p.span.start, p.span.end));
        problems.dedup_by(|a, b| a.span == b.span && a.message == b.message);
        SpecErrors {
            diagnostics: problems
                .into_iter()
                .map(|problem| SpecDiagnostic {
                    source: source.clone(),
                    problem,
                })
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.diagnostics.len()
    }

    pub fn is_empty(&self) -> bool {
        self.diagnostics.is_empty()
    }

    /// Render every diagnostic, as the CLI prints them. `color = false` and a fixed
    /// `width` give stable text for snapshots and logs.
    pub fn render(&self, color: bool, width: usize) -> String {
        let theme = if color {
            miette::GraphicalTheme::unicode()
        } else {
            miette::GraphicalTheme::unicode_nocolor()
        };
        let handler = miette::GraphicalReportHandler::new_themed(theme)
            .with_width(width)
            .with_links(false);
        let mut out = String::new();
        for d in &self.diagnostics {
            // Writing into a String cannot fail.
            let _ = handler.render_report(&mut out, d);
            out.push('\n');
        }
        let n = self.diagnostics.len();
        out.push_str(&format!(
            "error: {} problem{} in {}\n",
            n,
            if n == 1 { "" } else { "s" },
            self.diagnostics
                .first()
                .map_or("multiarch.toml", |d| d.source.name())
        ));
        out
    }
}

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {}", d.location(), d.problem.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

/// "did you mean `x`?" for the closest candidate, when one is close enough.
pub fn did_you_mean<'a>(
    given: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    closest(given, candidates).map(|c| format!("did you mean `{c}`?"))
}

pub fn closest<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let given_l = given.to_ascii_lowercase();
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(&given_l, &c.to_ascii_lowercase());
        if score >= 0.8 && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c)
}
