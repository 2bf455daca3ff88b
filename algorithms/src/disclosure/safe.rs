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
//! Names are preserved (an expression that changes keeps its old name as an alias), so
//! the operators above still find the columns they refer to. What can still fail at run
//! time (arithmetic overflow, a function's own argument checks, memory and time
//! limits) is reported by the sandbox as one generic failure through review.

use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::expr::{Cast, TryCast};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator, lit, when};

use super::DisclosureError;

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
    let rewritten = plan.transform_up(|node| {
        let preserver = NamePreserver::new(&node);
        let node = node.map_expressions(|expr| {
            let saved = preserver.save(&expr);
            let out = expr.transform_up(safe_expr)?;
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

/// One expression in its failure-free form (applied bottom-up).
fn safe_expr(expr: Expr) -> datafusion::error::Result<Transformed<Expr>> {
    Ok(match expr {
        Expr::Cast(Cast { expr, data_type }) => {
            Transformed::yes(Expr::TryCast(TryCast::new(expr, data_type)))
        }
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
    let mut refusal = None;
    let walked = plan.apply(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                let problem = match e {
                    Expr::Like(like) => constant_text(&like.pattern).is_none().then_some(
                        DisclosureError::Pattern(
                            "a LIKE pattern must be a constant string, not computed from data",
                        ),
                    ),
                    Expr::SimilarTo(like) => check_regex(&like.pattern).err(),
                    Expr::BinaryExpr(binary) => match binary.op {
                        Operator::RegexMatch
                        | Operator::RegexIMatch
                        | Operator::RegexNotMatch
                        | Operator::RegexNotIMatch => check_regex(&binary.right).err(),
                        Operator::LikeMatch
                        | Operator::ILikeMatch
                        | Operator::NotLikeMatch
                        | Operator::NotILikeMatch => {
                            constant_text(&binary.right).is_none().then_some(
                                DisclosureError::Pattern(
                                    "a LIKE pattern must be a constant string, not computed from data",
                                ),
                            )
                        }
                        _ => None,
                    },
                    Expr::ScalarFunction(call) if REGEX_FUNCTIONS.contains(&call.name()) => {
                        let mut problem = None;
                        for (i, arg) in call.args.iter().enumerate().skip(1) {
                            let checked = if i == 1 {
                                check_regex(arg)
                            } else if matches!(arg, Expr::Literal(..)) {
                                Ok(())
                            } else {
                                Err(DisclosureError::Pattern(
                                    "the flags and other arguments of a regexp function must be constants",
                                ))
                            };
                            if let Err(e) = checked {
                                problem = Some(e);
                                break;
                            }
                        }
                        problem
                    }
                    _ => None,
                };
                match problem {
                    Some(p) => {
                        refusal = Some(p);
                        Ok(TreeNodeRecursion::Stop)
                    }
                    None => Ok(TreeNodeRecursion::Continue),
                }
            })
        })
    });
    if walked.is_err() {
        return Err(DisclosureError::Internal("the plan could not be inspected"));
    }
    refusal.map_or(Ok(()), Err)
}
