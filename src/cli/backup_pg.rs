//! PostgreSQL in `pdx backup` and `pdx restore`: a logical dump of the schema pdx uses,
//! taken in the backup's one REPEATABLE READ transaction, and its load into an empty
//! database.
//!
//! # Why a logical dump and not `pg_dump`
//!
//! pdx's database URL is a sqlx URL. It may carry parameters libpq does not know (the
//! test harness and schema-per-tenant deployments put each instance in its own schema
//! with `options[search_path]=…`), and pdx owns only that schema of a database that may
//! hold others; `pg_dump` of the URL would fail or dump the wrong thing, and needs a
//! client binary at least as new as the server. A dump through pdx's own connection reads
//! exactly the tables pdx reads, with the same URL, and needs nothing installed. And it
//! runs in the backup's own transaction: `BEGIN ISOLATION LEVEL REPEATABLE READ, READ
//! ONLY` makes every query of the backup, the dump and the facts the backup checks the
//! zone files against ([`crate::cli::backup::Facts`]), read the one snapshot taken at
//! the transaction's first query, while the server goes on writing.
//!
//! # Dump format (JSON Lines)
//!
//! ```text
//! {"table": "<name>", "columns": [{"name": "<column>", "type": "<format_type>"}, …]}
//! ["<value as text>" | null, …]            one line per row of that table
//! …                                        the next table, in foreign-key order
//! {"end": <number of tables>}
//! ```
//!
//! Values are PostgreSQL's text form (`col::text`), except `bytea`, which is hex
//! (`encode(col, 'hex')`); doubles print their shortest exact form (PostgreSQL 12+), so
//! every value reads back to the same value. Tables come parents first (by their foreign
//! keys), so the load never inserts a row before the row it references.
//!
//! # Load
//!
//! The target schema must be empty (no table, sequence, view or function; refused
//! otherwise). Restore creates the tables with this pdx's migrations, then checks that
//! the archive's migration history (the `_pdx_*_migrations` tables: versions and
//! checksums) is exactly this pdx's: a dump from another schema version is refused,
//! naming the pdx version that wrote it. It then loads every row in one transaction,
//! casting each value back to its column's type as the target's catalog names it. The
//! only rows migrations seed (the ledger's head row) are replaced by the archive's: the
//! table's append-only triggers are disabled for that delete, inside the transaction,
//! which the restoring role may do as the tables' owner. On any failure afterwards
//! [`clear`] drops what restore created, leaving the schema as empty as it was found.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use futures_util::StreamExt;
use indicatif::ProgressBar;
use pdx_ledger::db::Db;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};

/// One column of a dumped table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Column {
    name: String,
    #[serde(rename = "type")]
    ty: String,
}

/// One line of the dump. Rows are arrays, the rest objects, so the untagged forms never
/// overlap (rows are tried first: an object never reads as an array).
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Line {
    Row(Vec<Option<String>>),
    Table { table: String, columns: Vec<Column> },
    End { end: u64 },
}

/// Tables of the connection's schema (its `search_path`'s first existing schema).
const TABLES_SQL: &str = "SELECT c.relname::text AS name FROM pg_catalog.pg_class c \
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
    WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') ORDER BY 1";

/// Foreign keys between the schema's tables: (child, parent).
const FOREIGN_KEYS_SQL: &str = "SELECT ch.relname::text AS child, pa.relname::text AS parent \
    FROM pg_catalog.pg_constraint k \
    JOIN pg_catalog.pg_class ch ON ch.oid = k.conrelid \
    JOIN pg_catalog.pg_class pa ON pa.oid = k.confrelid \
    JOIN pg_catalog.pg_namespace n ON n.oid = ch.relnamespace \
    WHERE k.contype = 'f' AND n.nspname = current_schema()";

/// The columns of one table, in order, with their types as `format_type` names them.
const COLUMNS_SQL: &str = "SELECT a.attname::text AS name, \
    pg_catalog.format_type(a.atttypid, a.atttypmod) AS col_type \
    FROM pg_catalog.pg_attribute a \
    JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
    WHERE n.nspname = current_schema() AND c.relname::text = $1 \
    AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum";

/// Everything in the schema: relations (tables, sequences, views, indexes) and functions.
const OBJECTS_SQL: &str = "SELECT \
    (SELECT COUNT(*) FROM pg_catalog.pg_class c \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = current_schema()) + \
    (SELECT COUNT(*) FROM pg_catalog.pg_proc p \
     JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
     WHERE n.nspname = current_schema()) AS n";

/// The schema's functions, as `name(argument types)`.
const FUNCTIONS_SQL: &str = "SELECT p.oid::regprocedure::text AS sig FROM pg_catalog.pg_proc p \
    JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
    WHERE n.nspname = current_schema()";

/// Most bind parameters in one multi-row INSERT (PostgreSQL allows 65,535).
const MAX_PARAMS: usize = 20_000;

/// A quoted identifier.
fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// sqlx's migration history tables, which restore compares instead of loading.
fn is_migration_table(table: &str) -> bool {
    table == "_sqlx_migrations" || (table.starts_with("_pdx_") && table.ends_with("_migrations"))
}

async fn table_names(conn: &mut AnyConnection) -> anyhow::Result<Vec<String>> {
    let rows = sqlx::query(TABLES_SQL).fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|r| -> anyhow::Result<String> { Ok(r.try_get("name")?) })
        .collect()
}

async fn columns_of(conn: &mut AnyConnection, table: &str) -> anyhow::Result<Vec<Column>> {
    let rows = sqlx::query(COLUMNS_SQL)
        .bind(table.to_string())
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| -> anyhow::Result<Column> {
            Ok(Column {
                name: r.try_get("name")?,
                ty: r.try_get("col_type")?,
            })
        })
        .collect()
}

/// The tables in an order where every table comes after the tables it references (a
/// cycle, which pdx's schema has none of, is appended in name order; its load would
/// then fail on the constraint, and say so).
fn load_order(tables: &[String], edges: &[(String, String)]) -> Vec<String> {
    let mut parents: BTreeMap<&str, BTreeSet<&str>> = tables
        .iter()
        .map(|t| (t.as_str(), BTreeSet::new()))
        .collect();
    let known: BTreeSet<&str> = tables.iter().map(String::as_str).collect();
    for (child, parent) in edges {
        if child != parent
            && known.contains(parent.as_str())
            && let Some(set) = parents.get_mut(child.as_str())
        {
            set.insert(parent.as_str());
        }
    }
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut order = Vec::with_capacity(tables.len());
    while done.len() < parents.len() {
        let ready: Vec<&str> = parents
            .iter()
            .filter(|(t, ps)| !done.contains(**t) && ps.iter().all(|p| done.contains(p)))
            .map(|(t, _)| *t)
            .collect();
        if ready.is_empty() {
            for t in parents.keys() {
                if !done.contains(t) {
                    order.push((*t).to_string());
                }
            }
            break;
        }
        for t in ready {
            done.insert(t);
            order.push(t.to_string());
        }
    }
    order
}

/// `SELECT` of every column as text (bytea as hex).
fn select_sql(table: &str, columns: &[Column]) -> String {
    let exprs: Vec<String> = columns
        .iter()
        .map(|c| {
            if c.ty == "bytea" {
                format!("encode({}, 'hex')", quote(&c.name))
            } else {
                format!("{}::text", quote(&c.name))
            }
        })
        .collect();
    format!("SELECT {} FROM {}", exprs.join(", "), quote(table))
}

fn write_line<T: Serialize>(w: &mut impl Write, value: &T) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *w, value)?;
    w.write_all(b"\n")?;
    Ok(())
}

/// Dumps every table of the connection's schema into `out`, on the caller's REPEATABLE
/// READ transaction (`conn`); returns the rows written.
pub(crate) async fn dump(
    conn: &mut AnyConnection,
    out: &Path,
    bar: &ProgressBar,
) -> anyhow::Result<u64> {
    let tables = table_names(conn).await?;
    anyhow::ensure!(
        !tables.is_empty(),
        "the database has no tables in its schema: is this pdx's database URL?"
    );
    let edges: Vec<(String, String)> = sqlx::query(FOREIGN_KEYS_SQL)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| -> anyhow::Result<(String, String)> {
            Ok((r.try_get("child")?, r.try_get("parent")?))
        })
        .collect::<anyhow::Result<_>>()?;
    let order = load_order(&tables, &edges);
    let file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut rows_written = 0u64;
    for table in &order {
        let columns = columns_of(conn, table).await?;
        write_line(
            &mut w,
            &Line::Table {
                table: table.clone(),
                columns: columns.clone(),
            },
        )?;
        if columns.is_empty() {
            continue;
        }
        let sql = select_sql(table, &columns);
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&mut *conn);
        while let Some(row) = rows.next().await {
            let row = row.with_context(|| format!("reading table {table}"))?;
            let mut values: Vec<Option<String>> = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                values.push(row.try_get(i)?);
            }
            write_line(&mut w, &values)?;
            rows_written += 1;
            bar.inc(1);
        }
    }
    write_line(
        &mut w,
        &Line::End {
            end: order.len() as u64,
        },
    )?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(rows_written)
}

/// Refuses a target whose schema holds anything, or that has no schema at all.
pub(crate) async fn ensure_empty(db: &Db) -> anyhow::Result<()> {
    let row = sqlx::query("SELECT current_schema()::text AS s")
        .fetch_one(db.pool())
        .await
        .context("reading the target database's schema")?;
    let schema: Option<String> = row.try_get("s")?;
    let Some(schema) = schema else {
        anyhow::bail!(
            "the target database has no schema on its search_path: create it, or fix the URL"
        );
    };
    let n: i64 = sqlx::query(OBJECTS_SQL)
        .fetch_one(db.pool())
        .await?
        .try_get("n")?;
    anyhow::ensure!(
        n == 0,
        "refusing to restore into a database that is not empty: schema {schema} holds {n} \
         object(s); restore needs an empty database (CREATE DATABASE …)"
    );
    Ok(())
}

/// Creates pdx's tables in the (empty) target with this pdx's migrations, in the order
/// [`crate::app::App::open`] runs them.
pub(crate) async fn create_schema(db: &Db) -> anyhow::Result<()> {
    db.migrate(crate::accounts::migrations())
        .await
        .context("creating the accounts tables")?;
    pdx_ledger::Ledger::migrate(db)
        .await
        .context("creating the ledger tables")?;
    db.migrate(pdx_sandbox::migrations())
        .await
        .context("creating the sandbox tables")?;
    db.migrate(pdx_products::migrations())
        .await
        .context("creating the products tables")?;
    Ok(())
}

/// What the first reading of a dump found.
struct DumpIndex {
    /// Tables in load order, with their columns.
    tables: Vec<(String, Vec<Column>)>,
    /// Migration history per migration table: (version, checksum hex).
    migrations: BTreeMap<String, BTreeSet<(i64, String)>>,
}

fn read_index(dump: &Path) -> anyhow::Result<DumpIndex> {
    let file = File::open(dump).with_context(|| format!("opening {}", dump.display()))?;
    let mut index = DumpIndex {
        tables: Vec::new(),
        migrations: BTreeMap::new(),
    };
    let mut ended = false;
    for line in BufReader::new(file).lines() {
        let line = line?;
        anyhow::ensure!(!ended, "the database dump has lines after its end");
        match serde_json::from_str::<Line>(&line).context("the database dump is malformed")? {
            Line::Table { table, columns } => index.tables.push((table, columns)),
            Line::Row(values) => {
                let Some((table, columns)) = index.tables.last() else {
                    anyhow::bail!("the database dump is malformed: a row before any table");
                };
                anyhow::ensure!(
                    values.len() == columns.len(),
                    "the database dump is malformed: a row of {table} has {} values for {} columns",
                    values.len(),
                    columns.len()
                );
                if is_migration_table(table) {
                    let at = |name: &str| columns.iter().position(|c| c.name == name);
                    let (Some(v), Some(c)) = (at("version"), at("checksum")) else {
                        anyhow::bail!("the migration table {table} has no version or checksum");
                    };
                    let version: i64 = values[v]
                        .as_deref()
                        .and_then(|s| s.parse().ok())
                        .with_context(|| format!("a version in {table} is not a number"))?;
                    let checksum = values[c].clone().unwrap_or_default();
                    index
                        .migrations
                        .entry(table.clone())
                        .or_default()
                        .insert((version, checksum));
                }
            }
            Line::End { end } => {
                anyhow::ensure!(
                    end == index.tables.len() as u64,
                    "the database dump is malformed: it ends after {} tables, not {end}",
                    index.tables.len()
                );
                ended = true;
            }
        }
    }
    anyhow::ensure!(ended, "the database dump is incomplete");
    Ok(index)
}

/// Checks the target (just migrated) against the dump: the same migrations, the same
/// tables with the same columns.
async fn check_schema(
    conn: &mut AnyConnection,
    index: &DumpIndex,
    archive_version: &str,
) -> anyhow::Result<()> {
    let ours = env!("CARGO_PKG_VERSION");
    let differs = |what: &str| {
        anyhow::anyhow!(
            "the archive's database was written by pdx {archive_version} with another schema \
             than this pdx {ours} creates ({what}): restore it with pdx {archive_version}"
        )
    };
    let target: BTreeSet<String> = table_names(conn).await?.into_iter().collect();
    let dumped: BTreeSet<String> = index.tables.iter().map(|(t, _)| t.clone()).collect();
    if let Some(t) = dumped.symmetric_difference(&target).next() {
        return Err(differs(&format!("table {t}")));
    }
    for (table, columns) in &index.tables {
        if is_migration_table(table) {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT version, encode(checksum, 'hex') AS checksum FROM {}",
                quote(table)
            )))
            .fetch_all(&mut *conn)
            .await?;
            let mut have = BTreeSet::new();
            for r in &rows {
                have.insert((
                    r.try_get::<i64, _>("version")?,
                    r.try_get::<String, _>("checksum")?,
                ));
            }
            let want = index.migrations.get(table).cloned().unwrap_or_default();
            if have != want {
                return Err(differs(&format!("migrations in {table}")));
            }
        }
        if columns_of(conn, table).await? != *columns {
            return Err(differs(&format!("the columns of {table}")));
        }
    }
    Ok(())
}

/// `INSERT INTO table (…) VALUES (…), …` with every value cast back from text.
fn insert_sql(table: &str, columns: &[Column], rows: usize) -> String {
    let names: Vec<String> = columns.iter().map(|c| quote(&c.name)).collect();
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES ",
        quote(table),
        names.join(", ")
    );
    let mut n = 1;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for (i, c) in columns.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            // The `::text` fixes the parameter's type whatever the driver sends, so the
            // cast is always PostgreSQL's text input of the column's type.
            if c.ty == "bytea" {
                let _ = write!(sql, "decode(${n}::text, 'hex')");
            } else {
                let _ = write!(sql, "CAST(${n}::text AS {})", c.ty);
            }
            n += 1;
        }
        sql.push(')');
    }
    sql
}

async fn insert_rows(
    conn: &mut AnyConnection,
    table: &str,
    columns: &[Column],
    rows: &mut Vec<Vec<Option<String>>>,
) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut query = sqlx::query(sqlx::AssertSqlSafe(insert_sql(table, columns, rows.len())));
    for row in rows.drain(..) {
        for value in row {
            query = query.bind(value);
        }
    }
    query
        .execute(&mut *conn)
        .await
        .with_context(|| format!("loading table {table}"))?;
    Ok(())
}

/// Loads the dump into the (migrated, otherwise empty) target in one transaction; returns
/// the rows loaded. `archive_version` is the pdx that wrote the archive, for messages.
pub(crate) async fn load(
    db: &Db,
    dump: &Path,
    archive_version: &str,
    bar: &ProgressBar,
) -> anyhow::Result<u64> {
    let index = read_index(dump)?;
    let mut tx = db.begin_write().await?;
    check_schema(&mut tx, &index, archive_version).await?;
    // Rows the migrations seeded make way for the archive's, children first.
    for (table, _) in index.tables.iter().rev() {
        if is_migration_table(table) {
            continue;
        }
        let q = quote(table);
        let n: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n FROM {q}"
        )))
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if n > 0 {
            for sql in [
                format!("ALTER TABLE {q} DISABLE TRIGGER USER"),
                format!("DELETE FROM {q}"),
                format!("ALTER TABLE {q} ENABLE TRIGGER USER"),
            ] {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut *tx)
                    .await
                    .with_context(|| format!("emptying table {table}"))?;
            }
        }
    }
    let file = File::open(dump).with_context(|| format!("opening {}", dump.display()))?;
    let mut current: Option<(String, Vec<Column>)> = None;
    let mut batch: Vec<Vec<Option<String>>> = Vec::new();
    let mut loaded = 0u64;
    for line in BufReader::new(file).lines() {
        match serde_json::from_str::<Line>(&line?).context("the database dump is malformed")? {
            Line::Row(values) => {
                let Some((table, columns)) = &current else {
                    continue;
                };
                batch.push(values);
                loaded += 1;
                bar.inc(1);
                if batch.len() >= (MAX_PARAMS / columns.len().max(1)).max(1) {
                    insert_rows(&mut tx, table, columns, &mut batch).await?;
                }
            }
            next => {
                if let Some((table, columns)) = &current {
                    insert_rows(&mut tx, table, columns, &mut batch).await?;
                }
                current = match next {
                    Line::Table { table, columns } if !is_migration_table(&table) => {
                        Some((table, columns))
                    }
                    _ => None,
                };
            }
        }
    }
    if let Some((table, columns)) = &current {
        insert_rows(&mut tx, table, columns, &mut batch).await?;
    }
    tx.commit().await?;
    Ok(loaded)
}

/// Drops everything in the target's schema: what restore created there, since the
/// schema was empty before ([`ensure_empty`]).
pub(crate) async fn clear(db: &Db) -> anyhow::Result<()> {
    let mut conn = db.pool().acquire().await?;
    let tables = table_names(&mut conn).await?;
    if !tables.is_empty() {
        let list: Vec<String> = tables.iter().map(String::as_str).map(quote).collect();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS {} CASCADE",
            list.join(", ")
        )))
        .execute(&mut *conn)
        .await?;
    }
    let functions = sqlx::query(FUNCTIONS_SQL).fetch_all(&mut *conn).await?;
    for f in &functions {
        let sig: String = f.try_get("sig")?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP FUNCTION IF EXISTS {sig} CASCADE"
        )))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parents_load_before_their_children() {
        let tables = names(&["orders", "orgs", "api_keys", "products", "alone"]);
        let edges = vec![
            ("api_keys".to_string(), "orgs".to_string()),
            ("orders".to_string(), "products".to_string()),
            ("products".to_string(), "orgs".to_string()),
            ("orders".to_string(), "orders".to_string()),
        ];
        let order = load_order(&tables, &edges);
        assert_eq!(order.len(), tables.len());
        let at = |t: &str| order.iter().position(|o| o == t).unwrap();
        assert!(at("orgs") < at("api_keys"));
        assert!(at("orgs") < at("products"));
        assert!(at("products") < at("orders"));
        let cyclic = load_order(
            &names(&["a", "b"]),
            &[
                ("a".to_string(), "b".to_string()),
                ("b".to_string(), "a".to_string()),
            ],
        );
        assert_eq!(cyclic, names(&["a", "b"]));
    }

    #[test]
    fn dump_lines_read_back_as_what_was_written() {
        let table = Line::Table {
            table: "t".into(),
            columns: vec![Column {
                name: "c".into(),
                ty: "bigint".into(),
            }],
        };
        let text = serde_json::to_string(&table).unwrap();
        assert!(matches!(
            serde_json::from_str::<Line>(&text).unwrap(),
            Line::Table { .. }
        ));
        let row: Vec<Option<String>> = vec![Some("1".into()), None, Some("x\"y".into())];
        let text = serde_json::to_string(&row).unwrap();
        match serde_json::from_str::<Line>(&text).unwrap() {
            Line::Row(back) => assert_eq!(back, row),
            other => panic!("read back as {other:?}"),
        }
        assert!(matches!(
            serde_json::from_str::<Line>("{\"end\": 3}").unwrap(),
            Line::End { end: 3 }
        ));
        assert_eq!(
            insert_sql(
                "t\"x",
                &[
                    Column {
                        name: "a".into(),
                        ty: "bigint".into()
                    },
                    Column {
                        name: "b".into(),
                        ty: "bytea".into()
                    },
                ],
                2
            ),
            "INSERT INTO \"t\"\"x\" (\"a\", \"b\") VALUES (CAST($1::text AS bigint), \
             decode($2::text, 'hex')), (CAST($3::text AS bigint), decode($4::text, 'hex'))"
        );
    }
}
