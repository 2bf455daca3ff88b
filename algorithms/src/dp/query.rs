//! Parsing and validation of the restricted DP SQL into a small query description.
//!
//! The SQL is parsed with `sqlparser` (as re-exported by DataFusion) and then accepted only
//! if it has exactly the shape `SELECT keys and aggregates FROM one table [WHERE simple
//! predicates] [GROUP BY columns]`. Every AST field that could carry anything else is
//! destructured exhaustively and must be empty, so a new sqlparser field fails to compile
//! here instead of being silently ignored.

use datafusion::sql::sqlparser::ast::{
    self, BinaryOperator, Expr as SqlExpr, FunctionArg, FunctionArgExpr, FunctionArguments,
    GroupByExpr, Ident, ObjectNamePart, Query as SqlQuery, Select, SelectItem, SetExpr, Statement,
    TableFactor, UnaryOperator, Value,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::DpError;
use super::table::{ColumnKind, DpTable, PrivacyUnit};

/// A supported aggregate, with the column it reads.
#[derive(Clone, Debug, PartialEq)]
pub enum Aggregate {
    /// `COUNT(*)`: rows per group.
    CountAll,
    /// `COUNT(col)`: non-null values per group.
    Count(String),
    /// `SUM(col)`: sum of values clipped to the declared bounds.
    Sum(String),
    /// `AVG(col)`: noisy clipped sum divided by noisy row count.
    Avg(String),
    /// `QUANTILE(col, p)` (`MEDIAN(col)` is `p = 0.5`): chosen among public candidates.
    Quantile(String, f64),
}

impl Aggregate {
    /// The column read, if any.
    pub fn column(&self) -> Option<&str> {
        match self {
            Aggregate::CountAll => None,
            Aggregate::Count(c) | Aggregate::Sum(c) | Aggregate::Avg(c) => Some(c),
            Aggregate::Quantile(c, _) => Some(c),
        }
    }

    fn default_name(&self) -> String {
        match self {
            Aggregate::CountAll => "count".into(),
            Aggregate::Count(c) => format!("count_{c}"),
            Aggregate::Sum(c) => format!("sum_{c}"),
            Aggregate::Avg(c) => format!("avg_{c}"),
            Aggregate::Quantile(c, p) => format!("quantile_{c}_{p}"),
        }
    }
}

/// One item of the SELECT list.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Item {
    /// A GROUP BY key, released under `output`.
    Key { column: String, output: String },
    /// An aggregate, released under `output`.
    Agg { agg: Aggregate, output: String },
}

/// A literal in a predicate.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Lit {
    Int(i64),
    Float(f64),
    Str(String),
}

/// A comparison operator, oriented as `column op literal`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl CmpOp {
    /// The operator with its operands swapped (`5 < x` is `x > 5`).
    fn flipped(self) -> Self {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::LtEq => CmpOp::GtEq,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::GtEq => CmpOp::LtEq,
            other => other,
        }
    }
}

/// A row predicate from WHERE.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Pred {
    Cmp {
        column: String,
        op: CmpOp,
        value: Lit,
    },
    And(Box<Pred>, Box<Pred>),
    Or(Box<Pred>, Box<Pred>),
    Not(Box<Pred>),
    IsNull {
        column: String,
        negated: bool,
    },
}

/// A validated query against one declared table.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Query {
    pub items: Vec<Item>,
    pub group_by: Vec<String>,
    pub filter: Option<Pred>,
}

impl Query {
    /// The aggregates in SELECT order.
    pub fn aggregates(&self) -> impl Iterator<Item = &Aggregate> {
        self.items.iter().filter_map(|i| match i {
            Item::Agg { agg, .. } => Some(agg),
            Item::Key { .. } => None,
        })
    }
}

fn unsupported(construct: &'static str) -> DpError {
    DpError::Unsupported { construct }
}

/// Parses `sql` and checks it against `table`.
pub(crate) fn parse(sql: &str, table: &DpTable) -> Result<Query, DpError> {
    let statements = Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| DpError::Parse {
        message: e.to_string(),
    })?;
    let [statement] = statements.as_slice() else {
        return Err(DpError::NotOneStatement {
            found: statements.len(),
        });
    };
    let Statement::Query(query) = statement else {
        return Err(unsupported("a statement other than SELECT"));
    };
    let select = query_select(query)?;
    Resolver { table }.select(select)
}

/// The single SELECT of a query with no WITH/ORDER BY/LIMIT/set operations.
fn query_select(query: &SqlQuery) -> Result<&Select, DpError> {
    let SqlQuery {
        with,
        body,
        order_by,
        limit_clause,
        fetch,
        locks,
        for_clause,
        settings,
        format_clause,
        pipe_operators,
    } = query;
    if with.is_some() {
        return Err(unsupported("WITH (common table expressions)"));
    }
    if order_by.is_some() {
        return Err(unsupported("ORDER BY (DP releases are unordered)"));
    }
    if limit_clause.is_some() || fetch.is_some() {
        return Err(unsupported("LIMIT/OFFSET/FETCH"));
    }
    if !locks.is_empty()
        || for_clause.is_some()
        || settings.is_some()
        || format_clause.is_some()
        || !pipe_operators.is_empty()
    {
        return Err(unsupported(
            "a query clause outside SELECT ... FROM ... WHERE ... GROUP BY",
        ));
    }
    match body.as_ref() {
        SetExpr::Select(select) => Ok(select),
        SetExpr::Query(_) => Err(unsupported("a subquery")),
        SetExpr::SetOperation { .. } => Err(unsupported("UNION/INTERSECT/EXCEPT")),
        _ => Err(unsupported("a statement other than SELECT")),
    }
}

struct Resolver<'a> {
    table: &'a DpTable,
}

impl Resolver<'_> {
    fn select(&self, select: &Select) -> Result<Query, DpError> {
        let Select {
            select_token: _,
            distinct,
            top,
            top_before_distinct: _,
            projection,
            exclude,
            into,
            from,
            lateral_views,
            prewhere,
            selection,
            group_by,
            cluster_by,
            distribute_by,
            sort_by,
            having,
            named_window,
            qualify,
            window_before_qualify: _,
            value_table_mode,
            connect_by,
            flavor,
        } = select;
        if distinct.is_some() {
            return Err(unsupported("DISTINCT"));
        }
        if top.is_some() {
            return Err(unsupported("TOP"));
        }
        if having.is_some() {
            return Err(unsupported("HAVING"));
        }
        if exclude.is_some()
            || into.is_some()
            || !lateral_views.is_empty()
            || prewhere.is_some()
            || !cluster_by.is_empty()
            || !distribute_by.is_empty()
            || !sort_by.is_empty()
            || !named_window.is_empty()
            || qualify.is_some()
            || value_table_mode.is_some()
            || connect_by.is_some()
            || !matches!(flavor, ast::SelectFlavor::Standard)
        {
            return Err(unsupported("a dialect-specific SELECT clause"));
        }

        self.from(from)?;

        let group_by = match group_by {
            GroupByExpr::Expressions(exprs, modifiers) => {
                if !modifiers.is_empty() {
                    return Err(unsupported("GROUP BY modifiers (ROLLUP/CUBE/TOTALS)"));
                }
                let mut keys = Vec::with_capacity(exprs.len());
                for e in exprs {
                    let key = self.column_ref(e, "GROUP BY")?;
                    if !keys.contains(&key) {
                        keys.push(key);
                    }
                }
                keys
            }
            GroupByExpr::All(_) => return Err(unsupported("GROUP BY ALL")),
        };
        for key in &group_by {
            self.check_not_identifier(key)?;
        }

        let mut items = Vec::with_capacity(projection.len());
        for item in projection {
            let (expr, alias) = match item {
                SelectItem::UnnamedExpr(e) => (e, None),
                SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.value.clone())),
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                    return Err(unsupported("SELECT * (select keys and aggregates by name)"));
                }
            };
            items.push(self.item(expr, alias, &group_by)?);
        }
        if !items.iter().any(|i| matches!(i, Item::Agg { .. })) {
            return Err(DpError::NoAggregate);
        }
        for (i, item) in items.iter().enumerate() {
            let name = output_name(item);
            if name.is_empty() {
                return Err(DpError::Parse {
                    message: "an output column has an empty name".into(),
                });
            }
            if items[..i].iter().any(|o| output_name(o) == name) {
                return Err(DpError::DuplicateOutput {
                    name: name.to_owned(),
                });
            }
        }

        let filter = selection.as_ref().map(|e| self.pred(e)).transpose()?;
        Ok(Query {
            items,
            group_by,
            filter,
        })
    }

    fn from(&self, from: &[ast::TableWithJoins]) -> Result<(), DpError> {
        let [twj] = from else {
            return Err(if from.is_empty() {
                DpError::NoTable
            } else {
                DpError::MultipleTables
            });
        };
        if !twj.joins.is_empty() {
            return Err(unsupported("JOIN"));
        }
        match &twj.relation {
            TableFactor::Table {
                name,
                alias,
                args,
                with_hints,
                version,
                with_ordinality,
                partitions,
                json_path,
                sample,
                index_hints,
            } => {
                if args.is_some() {
                    return Err(unsupported("a table function"));
                }
                if !with_hints.is_empty()
                    || version.is_some()
                    || *with_ordinality
                    || !partitions.is_empty()
                    || json_path.is_some()
                    || sample.is_some()
                    || !index_hints.is_empty()
                {
                    return Err(unsupported("a dialect-specific table modifier"));
                }
                if alias.is_some() {
                    return Err(unsupported("a table alias"));
                }
                let [ObjectNamePart::Identifier(ident)] = name.0.as_slice() else {
                    return Err(DpError::UnknownTable {
                        table: name.to_string(),
                    });
                };
                if !ident_matches(ident, &self.table.name) {
                    return Err(DpError::UnknownTable {
                        table: ident.value.clone(),
                    });
                }
                Ok(())
            }
            TableFactor::Derived { .. } => Err(unsupported("a subquery")),
            TableFactor::NestedJoin { .. } => Err(unsupported("JOIN")),
            _ => Err(unsupported("a FROM item other than one table name")),
        }
    }

    /// Resolves a column reference (`col` or `table.col`) to a declared column name.
    fn column_ref(&self, expr: &SqlExpr, context: &'static str) -> Result<String, DpError> {
        let ident = match expr {
            SqlExpr::Identifier(ident) => ident,
            SqlExpr::CompoundIdentifier(parts) => match parts.as_slice() {
                [table, column] if ident_matches(table, &self.table.name) => column,
                [table, _] => {
                    return Err(DpError::UnknownTable {
                        table: table.value.clone(),
                    });
                }
                _ => {
                    return Err(DpError::UnknownColumn {
                        column: expr.to_string(),
                    });
                }
            },
            SqlExpr::Nested(inner) => return self.column_ref(inner, context),
            _ => return Err(DpError::ExpectedColumn { context }),
        };
        self.resolve(ident)
    }

    fn resolve(&self, ident: &Ident) -> Result<String, DpError> {
        if let Some(c) = self.table.column(&ident.value) {
            return Ok(c.name.clone());
        }
        if ident.quote_style.is_none() {
            let mut found = self
                .table
                .columns
                .iter()
                .filter(|c| c.name.eq_ignore_ascii_case(&ident.value));
            if let (Some(c), None) = (found.next(), found.next()) {
                return Ok(c.name.clone());
            }
        }
        Err(DpError::UnknownColumn {
            column: ident.value.clone(),
        })
    }

    fn check_not_identifier(&self, column: &str) -> Result<(), DpError> {
        match &self.table.unit {
            PrivacyUnit::User { identifier, .. } if identifier == column => {
                Err(DpError::IdentifierUsed {
                    column: column.to_owned(),
                })
            }
            _ => Ok(()),
        }
    }

    fn kind(&self, column: &str) -> Result<&ColumnKind, DpError> {
        self.table
            .column(column)
            .map(|c| &c.kind)
            .ok_or_else(|| DpError::UnknownColumn {
                column: column.to_owned(),
            })
    }

    fn item(
        &self,
        expr: &SqlExpr,
        alias: Option<String>,
        group_by: &[String],
    ) -> Result<Item, DpError> {
        match expr {
            SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_) => {
                let column = self.column_ref(expr, "SELECT")?;
                if !group_by.contains(&column) {
                    return Err(DpError::NonGroupedColumn { column });
                }
                let output = alias.unwrap_or_else(|| column.clone());
                Ok(Item::Key { column, output })
            }
            SqlExpr::Nested(inner) => self.item(inner, alias, group_by),
            SqlExpr::Function(f) => {
                let agg = self.aggregate(f)?;
                let output = alias.unwrap_or_else(|| agg.default_name());
                Ok(Item::Agg { agg, output })
            }
            SqlExpr::Subquery(_) | SqlExpr::Exists { .. } | SqlExpr::InSubquery { .. } => {
                Err(unsupported("a subquery"))
            }
            _ => Err(unsupported(
                "a SELECT expression other than a GROUP BY key or an aggregate",
            )),
        }
    }

    fn aggregate(&self, f: &ast::Function) -> Result<Aggregate, DpError> {
        let ast::Function {
            name,
            uses_odbc_syntax: _,
            parameters,
            args,
            filter,
            null_treatment,
            over,
            within_group,
        } = f;
        let fname = match name.0.as_slice() {
            [ObjectNamePart::Identifier(ident)] => ident.value.to_ascii_uppercase(),
            _ => {
                return Err(DpError::UnsupportedAggregate {
                    function: name.to_string(),
                });
            }
        };
        if over.is_some() {
            return Err(unsupported("a window function (OVER)"));
        }
        if filter.is_some() || null_treatment.is_some() || !within_group.is_empty() {
            return Err(unsupported(
                "an aggregate modifier (FILTER/WITHIN GROUP/NULLS)",
            ));
        }
        if !matches!(parameters, FunctionArguments::None) {
            return Err(unsupported("function parameters"));
        }
        let args = match args {
            FunctionArguments::List(list) => {
                if list.duplicate_treatment.is_some() {
                    return Err(unsupported("DISTINCT/ALL inside an aggregate"));
                }
                if !list.clauses.is_empty() {
                    return Err(unsupported("a clause inside an aggregate's arguments"));
                }
                list.args
                    .iter()
                    .map(|a| match a {
                        FunctionArg::Unnamed(arg) => Ok(arg),
                        _ => Err(unsupported("named function arguments")),
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
            FunctionArguments::Subquery(_) => return Err(unsupported("a subquery")),
            FunctionArguments::None => Vec::new(),
        };

        let column_arg = |arg: &FunctionArgExpr| -> Result<String, DpError> {
            match arg {
                FunctionArgExpr::Expr(e) => {
                    let column = self.column_ref(e, "an aggregate's argument")?;
                    self.check_not_identifier(&column)?;
                    Ok(column)
                }
                _ => Err(DpError::ExpectedColumn {
                    context: "an aggregate's argument",
                }),
            }
        };
        let numeric = |column: String, function: &'static str| -> Result<String, DpError> {
            match self.kind(&column)? {
                ColumnKind::Integer { bounds: Some(_) } | ColumnKind::Float { bounds: Some(_) } => {
                    Ok(column)
                }
                ColumnKind::Integer { bounds: None } | ColumnKind::Float { bounds: None } => {
                    Err(DpError::NoBounds { column, function })
                }
                ColumnKind::Text { .. } => Err(DpError::NotNumeric { column, function }),
            }
        };

        match (fname.as_str(), args.as_slice()) {
            ("COUNT", [FunctionArgExpr::Wildcard]) => Ok(Aggregate::CountAll),
            ("COUNT", [arg]) => Ok(Aggregate::Count(column_arg(arg)?)),
            ("SUM", [arg]) => Ok(Aggregate::Sum(numeric(column_arg(arg)?, "SUM")?)),
            ("AVG" | "MEAN", [arg]) => Ok(Aggregate::Avg(numeric(column_arg(arg)?, "AVG")?)),
            ("MEDIAN", [arg]) => Ok(Aggregate::Quantile(
                numeric(column_arg(arg)?, "MEDIAN")?,
                0.5,
            )),
            ("QUANTILE", [arg, FunctionArgExpr::Expr(p)]) => {
                let column = numeric(column_arg(arg)?, "QUANTILE")?;
                let p = match literal(p)? {
                    Lit::Int(v) => v as f64,
                    Lit::Float(v) => v,
                    Lit::Str(_) => return Err(DpError::InvalidQuantile),
                };
                if !(0.0..=1.0).contains(&p) {
                    return Err(DpError::InvalidQuantile);
                }
                Ok(Aggregate::Quantile(column, p))
            }
            ("COUNT" | "SUM" | "AVG" | "MEAN" | "MEDIAN" | "QUANTILE", _) => {
                Err(DpError::WrongArguments { function: fname })
            }
            _ => Err(DpError::UnsupportedAggregate { function: fname }),
        }
    }

    fn pred(&self, expr: &SqlExpr) -> Result<Pred, DpError> {
        match expr {
            SqlExpr::Nested(inner) => self.pred(inner),
            SqlExpr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right,
            } => Ok(Pred::And(
                Box::new(self.pred(left)?),
                Box::new(self.pred(right)?),
            )),
            SqlExpr::BinaryOp {
                left,
                op: BinaryOperator::Or,
                right,
            } => Ok(Pred::Or(
                Box::new(self.pred(left)?),
                Box::new(self.pred(right)?),
            )),
            SqlExpr::UnaryOp {
                op: UnaryOperator::Not,
                expr,
            } => Ok(Pred::Not(Box::new(self.pred(expr)?))),
            SqlExpr::BinaryOp { left, op, right } => {
                let op = match op {
                    BinaryOperator::Eq => CmpOp::Eq,
                    BinaryOperator::NotEq => CmpOp::NotEq,
                    BinaryOperator::Lt => CmpOp::Lt,
                    BinaryOperator::LtEq => CmpOp::LtEq,
                    BinaryOperator::Gt => CmpOp::Gt,
                    BinaryOperator::GtEq => CmpOp::GtEq,
                    _ => {
                        return Err(unsupported(
                            "a WHERE operator other than comparisons, AND, OR, NOT, IN, BETWEEN, IS NULL",
                        ));
                    }
                };
                let (column, op, value) = if is_column(left) {
                    (self.column_ref(left, "WHERE")?, op, right)
                } else if is_column(right) {
                    (self.column_ref(right, "WHERE")?, op.flipped(), left)
                } else {
                    return Err(unsupported("a comparison that is not `column op literal`"));
                };
                let value = self.typed_literal(&column, value)?;
                Ok(Pred::Cmp { column, op, value })
            }
            SqlExpr::InList {
                expr,
                list,
                negated,
            } => {
                let column = self.column_ref(expr, "WHERE")?;
                let mut any: Option<Pred> = None;
                for item in list {
                    let value = self.typed_literal(&column, item)?;
                    let eq = Pred::Cmp {
                        column: column.clone(),
                        op: CmpOp::Eq,
                        value,
                    };
                    any = Some(match any {
                        None => eq,
                        Some(prev) => Pred::Or(Box::new(prev), Box::new(eq)),
                    });
                }
                let any = any.ok_or_else(|| unsupported("an empty IN list"))?;
                Ok(if *negated {
                    Pred::Not(Box::new(any))
                } else {
                    any
                })
            }
            SqlExpr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let column = self.column_ref(expr, "WHERE")?;
                let low = self.typed_literal(&column, low)?;
                let high = self.typed_literal(&column, high)?;
                let both = Pred::And(
                    Box::new(Pred::Cmp {
                        column: column.clone(),
                        op: CmpOp::GtEq,
                        value: low,
                    }),
                    Box::new(Pred::Cmp {
                        column,
                        op: CmpOp::LtEq,
                        value: high,
                    }),
                );
                Ok(if *negated {
                    Pred::Not(Box::new(both))
                } else {
                    both
                })
            }
            SqlExpr::IsNull(e) => Ok(Pred::IsNull {
                column: self.column_ref(e, "WHERE")?,
                negated: false,
            }),
            SqlExpr::IsNotNull(e) => Ok(Pred::IsNull {
                column: self.column_ref(e, "WHERE")?,
                negated: true,
            }),
            SqlExpr::Subquery(_) | SqlExpr::Exists { .. } | SqlExpr::InSubquery { .. } => {
                Err(unsupported("a subquery"))
            }
            SqlExpr::Function(_) => Err(unsupported("a function call in WHERE")),
            _ => Err(unsupported(
                "a WHERE expression other than comparisons, AND, OR, NOT, IN, BETWEEN, IS NULL",
            )),
        }
    }

    /// A literal compared with `column`, checked against the column's type.
    fn typed_literal(&self, column: &str, expr: &SqlExpr) -> Result<Lit, DpError> {
        let value = literal(expr)?;
        let ok = matches!(
            (self.kind(column)?, &value),
            (ColumnKind::Text { .. }, Lit::Str(_))
                | (
                    ColumnKind::Integer { .. } | ColumnKind::Float { .. },
                    Lit::Int(_) | Lit::Float(_)
                )
        );
        if ok {
            Ok(value)
        } else {
            Err(DpError::LiteralType {
                column: column.to_owned(),
            })
        }
    }
}

fn output_name(item: &Item) -> &str {
    match item {
        Item::Key { output, .. } | Item::Agg { output, .. } => output,
    }
}

fn is_column(e: &SqlExpr) -> bool {
    match e {
        SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_) => true,
        SqlExpr::Nested(inner) => is_column(inner),
        _ => false,
    }
}

fn ident_matches(ident: &Ident, name: &str) -> bool {
    if ident.quote_style.is_some() {
        ident.value == name
    } else {
        ident.value.eq_ignore_ascii_case(name)
    }
}

/// A number or string literal, optionally negated.
fn literal(expr: &SqlExpr) -> Result<Lit, DpError> {
    match expr {
        SqlExpr::Nested(inner) => literal(inner),
        SqlExpr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match literal(expr)? {
            Lit::Int(v) => v.checked_neg().map(Lit::Int).ok_or(DpError::InvalidLiteral),
            Lit::Float(v) => Ok(Lit::Float(-v)),
            Lit::Str(_) => Err(DpError::InvalidLiteral),
        },
        SqlExpr::UnaryOp {
            op: UnaryOperator::Plus,
            expr,
        } => literal(expr),
        SqlExpr::Value(v) => match &v.value {
            Value::Number(n, _) => {
                let text = n.to_string();
                if let Ok(i) = text.parse::<i64>() {
                    Ok(Lit::Int(i))
                } else {
                    text.parse::<f64>()
                        .ok()
                        .filter(|f| f.is_finite())
                        .map(Lit::Float)
                        .ok_or(DpError::InvalidLiteral)
                }
            }
            Value::SingleQuotedString(s) => Ok(Lit::Str(s.clone())),
            _ => Err(DpError::InvalidLiteral),
        },
        _ => Err(unsupported("an expression where a literal is expected")),
    }
}
