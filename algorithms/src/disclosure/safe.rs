//! Semantics that cannot fail on data (plan rules 8 and 9 of the module documentation).
//!
//! On conditional data a job's observable outcome must not depend on data values: a
//! query that fails only when some record satisfies a condition (`CAST` of a text that
//! is not a number, a division by a value that is zero, a regular expression built from
//! a column) would tell the developer the answer through the job's status. Like
//! BigQuery's `SAFE.` functions, the rewrite here gives such expressions a value
//! instead of an error:
//!
//! * `CAST(x AS t)` becomes `TRY_CAST(x AS t)`: NULL where `x` does not convert;
//! * `a / b` and `a % b` become `CASE WHEN b = 0 THEN NULL ELSE a / b END` unless `b`
//!   is a non-zero constant (CASE evaluates the division only on the rows where `b` is
//!   not zero, so no row can raise the error);
//!
//! and refuses, at planning, what could still fail on some rows only:
//!
//! * a regular expression (`~`, `SIMILAR TO`, the `regexp_*` functions) or `LIKE`
//!   pattern that is not a constant, and a constant regular expression that does not
//!   compile (it would fail only once a row reaches it).
//!
//! The checked plan is then optimised and [`try_casts`] turns the casts DataFusion's
//! own passes added (type coercion, `arrow_cast`) into `TRY_CAST` too, before it runs.
//!
//! Names are preserved (an expression that changes keeps its old name as an alias), so
//! the operators above still find the columns they refer to. What can still fail at run
//! time (arithmetic overflow, a function's own argument checks, memory and time
//! limits) is reported by the sandbox as one generic failure through review.

use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::logical_expr::expr::{Cast, TryCast};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator, lit, when};

use super::DisclosureError;
use super::analyse::refuse_first;

/// Scalar functions whose arguments after the first (pattern, flags, replacement,
/// start) must be constants.
const REGEX_FUNCTIONS: &[&str] = &[
    "regexp_like",
    "regexp_match",
    "regexp_replace",
    "regexp_count",
    "regexp_instr",
];

/// Checks the patterns of `plan` and rewrites it to the semantics above.
pub(crate) fn make_safe(plan: LogicalPlan) -> Result<LogicalPlan, DisclosureError> {
    check_patterns(&plan)?;
    rewrite_expressions(plan, safe_expr)
}

/// Turns every `CAST` of an *optimised* plan into `TRY_CAST`. DataFusion's own passes
/// add casts after [`make_safe`] has run: type coercion (`text_column > DATE '…'`
/// casts the column) and the simplifier (`arrow_cast(x, 'Int64')` becomes a cast), and
/// each of those could fail on some rows only.
pub(crate) fn try_casts(plan: LogicalPlan) -> Result<LogicalPlan, DisclosureError> {
    rewrite_expressions(plan, |expr| {
        Ok(match expr {
            Expr::Cast(cast) => Transformed::yes(try_cast(cast)),
            other => Transformed::no(other),
        })
    })
}

/// Applies `rewrite` bottom-up to every expression of every node of `plan`, keeping
/// each changed expression's name (as an alias) and recomputing the changed nodes'
/// schemas.
fn rewrite_expressions(
    plan: LogicalPlan,
    rewrite: fn(Expr) -> datafusion::error::Result<Transformed<Expr>>,
) -> Result<LogicalPlan, DisclosureError> {
    let rewritten = plan.transform_up(|node| {
        let preserver = NamePreserver::new(&node);
        let node = node.map_expressions(|expr| {
            let saved = preserver.save(&expr);
            let out = expr.transform_up(rewrite)?;
            Ok(if out.transformed {
                Transformed::yes(saved.restore(out.data))
            } else {
                out
            })
        })?;
        if node.transformed {
            node.map_data(LogicalPlan::recompute_schema)
        } else {
            Ok(node)
        }
    });
    rewritten.map(|t| t.data).map_err(|e| {
        DisclosureError::Rewrite(e.message().lines().next().unwrap_or_default().to_owned())
    })
}

/// `CAST(x AS t)` as `TRY_CAST(x AS t)`.
fn try_cast(Cast { expr, data_type }: Cast) -> Expr {
    Expr::TryCast(TryCast::new(expr, data_type))
}

/// One expression in its failure-free form (applied bottom-up).
fn safe_expr(expr: Expr) -> datafusion::error::Result<Transformed<Expr>> {
    Ok(match expr {
        Expr::Cast(cast) => Transformed::yes(try_cast(cast)),
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if matches!(op, Operator::Divide | Operator::Modulo)
                && !is_nonzero_constant(&right) =>
        {
            let divisor_is_zero = right.as_ref().clone().eq(lit(0i64));
            let quotient = Expr::BinaryExpr(BinaryExpr::new(left, op, right));
            Transformed::yes(when(divisor_is_zero, lit(ScalarValue::Null)).otherwise(quotient)?)
        }
        other => Transformed::no(other),
    })
}

/// Whether `expr` is a literal that is neither NULL nor zero.
fn is_nonzero_constant(expr: &Expr) -> bool {
    match expr {
        Expr::Literal(value, _) if !value.is_null() => {
            ScalarValue::new_zero(&value.data_type()).is_ok_and(|zero| zero != *value)
        }
        _ => false,
    }
}

/// The text of a string literal.
fn constant_text(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Literal(
            ScalarValue::Utf8(Some(text))
            | ScalarValue::LargeUtf8(Some(text))
            | ScalarValue::Utf8View(Some(text)),
            _,
        ) => Some(text),
        _ => None,
    }
}

/// A constant regular expression that compiles (the same engine DataFusion uses).
fn check_regex(pattern: &Expr) -> Result<(), DisclosureError> {
    let text = constant_text(pattern).ok_or(DisclosureError::Pattern(
        "a regular expression must be a constant string, not computed from data",
    ))?;
    regex::Regex::new(text)
        .map(|_| ())
        .map_err(|_| DisclosureError::Pattern("a regular expression in the query does not compile"))
}

/// Refuses patterns that could fail on some rows only.
fn check_patterns(plan: &LogicalPlan) -> Result<(), DisclosureError> {
    const NOT_CONSTANT_LIKE: DisclosureError = DisclosureError::Pattern(
        "a LIKE pattern must be a constant string, not computed from data",
    );
    refuse_first(plan, |e| match e {
        Expr::Like(like) => constant_text(&like.pattern)
            .is_none()
            .then_some(NOT_CONSTANT_LIKE),
        Expr::SimilarTo(like) => check_regex(&like.pattern).err(),
        Expr::BinaryExpr(binary) => match binary.op {
            Operator::RegexMatch
            | Operator::RegexIMatch
            | Operator::RegexNotMatch
            | Operator::RegexNotIMatch => check_regex(&binary.right).err(),
            Operator::LikeMatch
            | Operator::ILikeMatch
            | Operator::NotLikeMatch
            | Operator::NotILikeMatch => constant_text(&binary.right)
                .is_none()
                .then_some(NOT_CONSTANT_LIKE),
            _ => None,
        },
        Expr::ScalarFunction(call) if REGEX_FUNCTIONS.contains(&call.name()) => {
            call.args.iter().enumerate().skip(1).find_map(|(i, arg)| {
                if i == 1 {
                    check_regex(arg).err()
                } else if matches!(arg, Expr::Literal(..)) {
                    None
                } else {
                    Some(DisclosureError::Pattern(
                        "the flags and other arguments of a regexp function must be constants",
                    ))
                }
            })
        }
        _ => None,
    })
}
