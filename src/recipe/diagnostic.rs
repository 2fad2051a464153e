//! Recipe diagnostics: every problem carries the file, a span and, where one
//! fits, a suggestion. All problems are collected, not only the first.

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode, SourceSpan};
use std::fmt;
use std::sync::Arc;

/// The recipe text, shared by every diagnostic that points into it.
pub type Source = Arc<Indexed>;

/// A named text with the offset of every line, so that a diagnostic finds
/// its excerpt and line number without reading the text from the start:
/// 10,000 errors in a big recipe render in linear time.
#[derive(Debug)]
pub struct Indexed {
    named: NamedSource<String>,
    starts: Vec<usize>,
}

impl Indexed {
    pub fn new(name: impl AsRef<str>, text: String) -> Indexed {
        let mut starts = vec![0];
        starts.extend(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1));
        Indexed {
            named: NamedSource::new(name, text),
            starts,
        }
    }

    pub fn name(&self) -> &str {
        self.named.name()
    }

    pub fn inner(&self) -> &String {
        self.named.inner()
    }

    /// Zero-based line of a byte offset.
    fn line_of(&self, offset: usize) -> usize {
        self.starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1)
    }

    /// One-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let text = self.inner();
        let offset = offset.min(text.len());
        let line = self.line_of(offset);
        let start = self.starts[line];
        let col = text.get(start..offset).map_or(0, |s| s.chars().count()) + 1;
        (line + 1, col)
    }
}

impl SourceCode for Indexed {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let text = self.inner();
        let end = span.offset() + span.len();
        if end > text.len() {
            return self.named.read_span(span, before, after);
        }
        let first = self.line_of(span.offset());
        let last = self.line_of(end.saturating_sub(1).max(span.offset()));
        // A window wider than miette looks at, so its excerpt is the same.
        let lo_line = first.saturating_sub(before + 2);
        let hi_line = (last + after + 3).min(self.starts.len());
        let lo = self.starts[lo_line];
        let hi = self
            .starts
            .get(hi_line)
            .copied()
            .unwrap_or(text.len())
            .max(end);
        let Some(sub) = text.get(lo..hi) else {
            return self.named.read_span(span, before, after);
        };
        let local = SourceSpan::new((span.offset() - lo).into(), span.len());
        let c = sub.read_span(&local, before, after)?;
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.name().to_string(),
            c.data(),
            SourceSpan::new((c.span().offset() + lo).into(), c.span().len()),
            c.line() + lo_line,
            c.column(),
            c.line_count(),
        )))
    }
}

/// What kind of problem; also the diagnostic code (`recipe::unknown_attribute`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Io,
    Syntax,
    UnknownBlock,
    UnknownAttribute,
    MissingAttribute,
    WrongType,
    InvalidValue,
    Duplicate,
    UnknownReference,
    BadNotify,
    Cycle,
    Variable,
}

impl ErrorKind {
    fn code(self) -> &'static str {
        match self {
            ErrorKind::Io => "recipe::io",
            ErrorKind::Syntax => "recipe::syntax",
            ErrorKind::UnknownBlock => "recipe::unknown_block",
            ErrorKind::UnknownAttribute => "recipe::unknown_attribute",
            ErrorKind::MissingAttribute => "recipe::missing_attribute",
            ErrorKind::WrongType => "recipe::wrong_type",
            ErrorKind::InvalidValue => "recipe::invalid_value",
            ErrorKind::Duplicate => "recipe::duplicate",
            ErrorKind::UnknownReference => "recipe::unknown_reference",
            ErrorKind::BadNotify => "recipe::bad_notify",
            ErrorKind::Cycle => "recipe::cycle",
            ErrorKind::Variable => "recipe::variable",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RecipeError {
    pub kind: ErrorKind,
    pub message: String,
    pub labels: Vec<(SourceSpan, String)>,
    pub help: Option<String>,
    pub source: Option<Source>,
}

impl RecipeError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> RecipeError {
        RecipeError {
            kind,
            message: message.into(),
            labels: Vec::new(),
            help: None,
            source: None,
        }
    }

    pub fn at(
        mut self,
        source: &Source,
        span: impl Into<SourceSpan>,
        label: impl Into<String>,
    ) -> Self {
        self.source = Some(source.clone());
        self.labels.push((span.into(), label.into()));
        self
    }

    pub fn label(mut self, span: impl Into<SourceSpan>, label: impl Into<String>) -> Self {
        self.labels.push((span.into(), label.into()));
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn help_opt(mut self, help: Option<String>) -> Self {
        self.help = help.or(self.help);
        self
    }

    /// `file:line:col` of the first label, for one-line summaries and tests.
    pub fn location(&self) -> Option<String> {
        let source = self.source.as_ref()?;
        let (span, _) = self.labels.first()?;
        let (line, col) = source.line_col(span.offset());
        Some(format!("{}:{}:{}", source.name(), line, col))
    }
}

/// One-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, col)
}

impl fmt::Display for RecipeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location() {
            Some(loc) => write!(f, "{loc}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for RecipeError {}

impl Diagnostic for RecipeError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.kind.code()))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|s| s.as_ref() as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.source.is_none() || self.labels.is_empty() {
            return None;
        }
        Some(Box::new(self.labels.iter().enumerate().map(
            |(i, (span, text))| {
                if i == 0 {
                    LabeledSpan::new_primary_with_span(Some(text.clone()), *span)
                } else {
                    LabeledSpan::new_with_span(Some(text.clone()), *span)
                }
            },
        )))
    }
}

/// All the problems found in one recipe.
#[derive(Debug, Clone)]
pub struct RecipeErrors {
    pub path: String,
    pub errors: Vec<RecipeError>,
}

impl RecipeErrors {
    /// A recipe or var file that cannot be read is one plain error, not
    /// "1 error in recipe …, each problem is listed below".
    fn unreadable(&self) -> Option<&RecipeError> {
        match self.errors.as_slice() {
            [only] if only.kind == ErrorKind::Io => Some(only),
            _ => None,
        }
    }
}

impl fmt::Display for RecipeErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(only) = self.unreadable() {
            return fmt::Display::fmt(only, f);
        }
        let n = self.errors.len();
        write!(
            f,
            "{} {} in recipe {}",
            n,
            if n == 1 { "error" } else { "errors" },
            self.path
        )
    }
}

impl std::error::Error for RecipeErrors {}

impl Diagnostic for RecipeErrors {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new("recipe::invalid"))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        if let Some(only) = self.unreadable() {
            return only.help();
        }
        Some(Box::new(
            "each problem is listed below; `imlrecover validate` re-checks the recipe without touching the host",
        ))
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        if self.unreadable().is_some() {
            return None;
        }
        Some(Box::new(self.errors.iter().map(|e| e as &dyn Diagnostic)))
    }
}

/// "did you mean" for a misspelt name among `candidates`.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3) && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 10), (2, 4));
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        assert_eq!(
            suggest("pth", ["path", "mode"]),
            Some("did you mean `path`?".into())
        );
        assert_eq!(suggest("colour", ["path", "mode"]), None);
    }
}
