//! [`SqlError`] and the sanitiser that turns engine errors into it.
//!
//! DataFusion and Arrow errors may quote row values (a failed `CAST` names the string it
//! could not convert, an overflow names its operands). The developer whose query failed
//! must never see those values, so every engine error passes through [`Sanitiser`]:
//!
//! * errors raised while the engine is *executing* (reading rows) keep only a category;
//! * errors raised while *planning* may keep their message, but only when it is one
//!   line, names no file of a grant, and every quoted word in it is a word of the
//!   developer's SQL text, a known identifier (granted table or column, function,
//!   catalog, type name) or a number of at most three digits (as in `count(Int64(1))`).
//!   Anything else is withheld behind a generic message;
//! * unknown error kinds become [`SqlError::Internal`], with no detail.

use std::collections::HashSet;
use std::time::Duration;

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;

/// Why a sandboxed SQL job failed. Messages never contain row values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// The SQL text could not be parsed.
    #[error("SQL syntax error: {0}")]
    Syntax(String),
    /// The input is not a single read-only query, or the plan reaches outside the grants.
    #[error("refused: {0}")]
    Forbidden(String),
    /// The query could not be planned (unknown table, column or function, type mismatch).
    #[error("the query could not be planned: {0}")]
    Plan(String),
    /// A value could not be converted to the requested type.
    #[error("a value could not be converted (CAST failed)")]
    Conversion,
    /// A division by zero happened while executing.
    #[error("division by zero")]
    DivideByZero,
    /// An arithmetic overflow happened while executing.
    #[error("arithmetic overflow")]
    Overflow,
    /// Execution failed for another data-dependent reason (only the category is kept).
    #[error("the query failed while executing: {0}")]
    Execution(&'static str),
    /// The memory pool of the sandbox was exhausted (spilling to disk is disabled).
    #[error("memory limit of {limit} bytes exceeded")]
    Memory {
        /// The configured pool size in bytes.
        limit: usize,
    },
    /// The wall-clock limit was reached; the query was cancelled.
    #[error("time limit of {} ms exceeded", .limit.as_millis())]
    Timeout {
        /// The configured time limit.
        limit: Duration,
    },
    /// The result has more rows than allowed.
    #[error("output exceeds {limit} rows")]
    TooManyRows {
        /// The configured row cap.
        limit: usize,
    },
    /// The result is larger than allowed.
    #[error("output exceeds {limit} bytes")]
    TooManyBytes {
        /// The configured byte cap.
        limit: usize,
    },
    /// A table grant is unusable (bad name, missing file or column); a platform error.
    #[error("invalid table grant: {0}")]
    Grant(String),
    /// The limits are unusable (e.g. zero partitions); a platform error.
    #[error("invalid SQL limits: {0}")]
    Limits(&'static str),
    /// The result could not be encoded in the named format.
    #[error("the output could not be encoded as {0}")]
    Encode(&'static str),
    /// The engine failed for a reason that is not the developer's (details withheld).
    #[error("internal error in the SQL engine ({0})")]
    Internal(&'static str),
}

impl SqlError {
    /// True when the developer's SQL was at fault or one of the job's limits was hit;
    /// false when the platform (grant, configuration, engine) is at fault.
    pub fn is_client_error(&self) -> bool {
        match self {
            SqlError::Syntax(_)
            | SqlError::Forbidden(_)
            | SqlError::Plan(_)
            | SqlError::Conversion
            | SqlError::DivideByZero
            | SqlError::Overflow
            | SqlError::Execution(_)
            | SqlError::Memory { .. }
            | SqlError::Timeout { .. }
            | SqlError::TooManyRows { .. }
            | SqlError::TooManyBytes { .. } => true,
            SqlError::Grant(_)
            | SqlError::Limits(_)
            | SqlError::Encode(_)
            | SqlError::Internal(_) => false,
        }
    }
}

/// When an engine error happened: planning sees only the query and the schema,
/// execution sees rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Parsing, logical and physical planning.
    Plan,
    /// Reading and computing rows.
    Execute,
}

/// Longest planning message passed on, in characters.
const MAX_MESSAGE_CHARS: usize = 300;

/// Message used when a planning error is withheld.
const WITHHELD_PLAN: &str = "details withheld; check table, column and function names and types";

/// Generic execution category.
const EXECUTION_FAILED: &str = "a function or operator could not be evaluated on the data";

/// Arrow type names that may appear quoted in planning messages.
const TYPE_WORDS: &[&str] = &[
    "null",
    "boolean",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "utf8",
    "utf8view",
    "largeutf8",
    "binary",
    "binaryview",
    "largebinary",
    "date32",
    "date64",
    "timestamp",
    "time32",
    "time64",
    "duration",
    "interval",
    "decimal128",
    "decimal256",
    "list",
    "largelist",
    "struct",
    "map",
    "dictionary",
    "second",
    "millisecond",
    "microsecond",
    "nanosecond",
    "varchar",
    "bigint",
    "int",
    "integer",
    "double",
    "float",
    "real",
    "text",
    "string",
    "date",
    "smallint",
    "tinyint",
    "decimal",
    "bool",
];

/// Classifies engine errors into [`SqlError`] without leaking row values.
#[derive(Debug, Clone)]
pub(crate) struct Sanitiser {
    /// Lower-cased words that may appear quoted in a planning message.
    known: HashSet<String>,
    /// Lower-cased strings (grant file paths and names) that must never be echoed.
    hidden: Vec<String>,
    /// Pool size, for [`SqlError::Memory`].
    memory_limit: usize,
}

impl Sanitiser {
    /// A sanitiser that knows the given identifiers and hides the given strings.
    pub(crate) fn new(
        known: impl IntoIterator<Item = String>,
        hidden: impl IntoIterator<Item = String>,
        memory_limit: usize,
    ) -> Self {
        let mut words: HashSet<String> = TYPE_WORDS.iter().map(|w| (*w).to_owned()).collect();
        for identifier in known {
            words.extend(tokens(&identifier));
        }
        let hidden = hidden
            .into_iter()
            .map(|h| h.to_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        Self {
            known: words,
            hidden,
            memory_limit,
        }
    }

    /// Maps an engine error raised at `stage` for the query `sql` (if known).
    pub(crate) fn classify(
        &self,
        err: &DataFusionError,
        stage: Stage,
        sql: Option<&str>,
    ) -> SqlError {
        match leaf(err) {
            Leaf::Arrow(a) => self.classify_arrow(a),
            Leaf::Unknown => SqlError::Internal("unclassified engine error"),
            Leaf::DataFusion(e) => match e {
                DataFusionError::SQL(parser, _) => SqlError::Syntax(
                    self.clean(&parser.to_string(), sql)
                        .unwrap_or_else(|| "the SQL text could not be parsed".to_owned()),
                ),
                DataFusionError::Plan(m)
                | DataFusionError::NotImplemented(m)
                | DataFusionError::Configuration(m) => self.plan_message(m, stage, sql),
                DataFusionError::SchemaError(s, _) => self.plan_message(&s.to_string(), stage, sql),
                DataFusionError::ResourcesExhausted(_) => SqlError::Memory {
                    limit: self.memory_limit,
                },
                DataFusionError::Execution(_) => SqlError::Execution(EXECUTION_FAILED),
                DataFusionError::ExecutionJoin(_) => SqlError::Internal("a worker task failed"),
                DataFusionError::IoError(_) | DataFusionError::ObjectStore(_) => {
                    SqlError::Internal("a granted file could not be read")
                }
                DataFusionError::ParquetError(_) => {
                    SqlError::Internal("a granted file could not be decoded")
                }
                DataFusionError::Internal(_) => SqlError::Internal("engine invariant violated"),
                _ => SqlError::Internal("unclassified engine error"),
            },
        }
    }

    /// Planning-type messages: passed on (sanitised) while planning, withheld while executing.
    fn plan_message(&self, message: &str, stage: Stage, sql: Option<&str>) -> SqlError {
        match stage {
            Stage::Plan => SqlError::Plan(
                self.clean(message, sql)
                    .unwrap_or_else(|| WITHHELD_PLAN.to_owned()),
            ),
            Stage::Execute => SqlError::Execution(EXECUTION_FAILED),
        }
    }

    /// Arrow errors keep only their kind.
    fn classify_arrow(&self, err: &ArrowError) -> SqlError {
        match err {
            ArrowError::CastError(_) | ArrowError::ParseError(_) => SqlError::Conversion,
            ArrowError::DivideByZero => SqlError::DivideByZero,
            ArrowError::ArithmeticOverflow(_) => SqlError::Overflow,
            ArrowError::MemoryError(_) => SqlError::Memory {
                limit: self.memory_limit,
            },
            ArrowError::ComputeError(_)
            | ArrowError::InvalidArgumentError(_)
            | ArrowError::NotYetImplemented(_)
            | ArrowError::SchemaError(_)
            | ArrowError::OffsetOverflowError(_)
            | ArrowError::DictionaryKeyOverflowError
            | ArrowError::RunEndIndexOverflowError => SqlError::Execution(EXECUTION_FAILED),
            _ => SqlError::Internal("columnar engine error"),
        }
    }

    /// The first line of a planning message, if it is safe to show; `None` withholds it.
    pub(crate) fn clean(&self, raw: &str, sql: Option<&str>) -> Option<String> {
        let line = raw.lines().next()?.trim();
        if line.is_empty() {
            return None;
        }
        let lower = line.to_lowercase();
        if lower.contains("file://") || self.hidden.iter().any(|h| lower.contains(h.as_str())) {
            return None;
        }
        let sql_words: HashSet<String> = sql.map(|s| tokens(s).collect()).unwrap_or_default();
        for segment in quoted_segments(line)? {
            for word in tokens(segment) {
                let small_number = word.len() <= 3 && word.bytes().all(|b| b.is_ascii_digit());
                if !small_number && !self.known.contains(&word) && !sql_words.contains(&word) {
                    return None;
                }
            }
        }
        Some(truncate(line, MAX_MESSAGE_CHARS))
    }
}

/// The innermost informative error of a chain.
enum Leaf<'e> {
    /// A DataFusion error that wraps nothing else.
    DataFusion(&'e DataFusionError),
    /// An Arrow error that wraps nothing else.
    Arrow(&'e ArrowError),
    /// Something foreign, or a chain too deep to follow.
    Unknown,
}

/// Walks wrappers (context, diagnostics, shared, collections, external boxes) down to the
/// error that says what happened. Iterative, with a depth cap.
fn leaf(err: &DataFusionError) -> Leaf<'_> {
    enum Node<'e> {
        Df(&'e DataFusionError),
        Arrow(&'e ArrowError),
    }
    let mut node = Node::Df(err);
    for _ in 0..64 {
        node = match node {
            Node::Df(e) => match e {
                DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
                    Node::Df(inner.as_ref())
                }
                DataFusionError::Shared(inner) => Node::Df(inner.as_ref()),
                DataFusionError::Collection(errs) => match errs.first() {
                    Some(first) => Node::Df(first),
                    None => return Leaf::Unknown,
                },
                DataFusionError::ArrowError(a, _) => Node::Arrow(a.as_ref()),
                DataFusionError::External(boxed) => {
                    if let Some(d) = boxed.downcast_ref::<DataFusionError>() {
                        Node::Df(d)
                    } else if let Some(a) = boxed.downcast_ref::<ArrowError>() {
                        Node::Arrow(a)
                    } else {
                        return Leaf::Unknown;
                    }
                }
                other => return Leaf::DataFusion(other),
            },
            Node::Arrow(a) => match a {
                ArrowError::ExternalError(boxed) => {
                    if let Some(d) = boxed.downcast_ref::<DataFusionError>() {
                        Node::Df(d)
                    } else if let Some(inner) = boxed.downcast_ref::<ArrowError>() {
                        Node::Arrow(inner)
                    } else {
                        return Leaf::Unknown;
                    }
                }
                other => return Leaf::Arrow(other),
            },
        };
    }
    Leaf::Unknown
}

/// Lower-cased words (runs of letters, digits and `_`) of a text.
pub(crate) fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// The contents of every '…', "…" and `…` segment, or `None` if a quote is unbalanced.
fn quoted_segments(line: &str) -> Option<Vec<&str>> {
    let mut segments = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find(['\'', '"', '`']) {
        let quote = rest[start..].chars().next()?;
        let after = &rest[start + quote.len_utf8()..];
        let end = after.find(quote)?;
        segments.push(&after[..end]);
        rest = &after[end + quote.len_utf8()..];
    }
    Some(segments)
}

/// At most `max` characters of `s`, with an ellipsis when cut.
fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sanitiser() -> Sanitiser {
        Sanitiser::new(
            ["people".to_owned(), "name".to_owned(), "age".to_owned()],
            ["/data/zone/abc.parquet".to_owned()],
            1024,
        )
    }

    #[test]
    fn quoted_words_must_come_from_the_query_or_the_schema() {
        let s = sanitiser();
        let sql = "SELECT nam FROM people";
        assert_eq!(
            s.clean("No field named nam. Did you mean 'people.name'?", Some(sql))
                .as_deref(),
            Some("No field named nam. Did you mean 'people.name'?")
        );
        assert_eq!(
            s.clean("Cannot cast string 'Alice' to Int64", Some(sql)),
            None
        );
        assert_eq!(s.clean("unbalanced 'quote", Some(sql)), None);
        let count = "only \"count(Int64(1))\" appears";
        let grouped = "SELECT name, count(*) FROM people";
        assert_eq!(s.clean(count, Some(grouped)).as_deref(), Some(count));
        assert_eq!(s.clean("value '12345' seen", Some(sql)), None);
        assert_eq!(
            s.clean("cannot read /data/zone/abc.parquet", Some(sql)),
            None
        );
    }

    #[test]
    fn cast_errors_keep_no_value() {
        let s = sanitiser();
        let err = DataFusionError::ArrowError(
            Box::new(ArrowError::CastError(
                "Cannot cast string 'Alice' to value of Int64 type".into(),
            )),
            None,
        )
        .context("while projecting");
        let mapped = s.classify(&err, Stage::Execute, None);
        assert!(matches!(mapped, SqlError::Conversion));
        assert!(!format!("{mapped} {mapped:?}").contains("Alice"));
    }

    #[test]
    fn execution_time_plan_errors_are_withheld() {
        let s = sanitiser();
        let err = DataFusionError::Plan("value 'Alice' seen".into());
        assert!(matches!(
            s.classify(&err, Stage::Execute, None),
            SqlError::Execution(_)
        ));
        assert!(
            matches!(s.classify(&err, Stage::Plan, None), SqlError::Plan(m) if m == WITHHELD_PLAN)
        );
    }
}
