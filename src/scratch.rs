//! Schemas built by running SQL in scratch in-memory databases: a set's chain replayed to the
//! schema a version should have, or a target file that builds a database from nothing.
//!
//! Both run through `apply`'s executor with the same pragmas and checks as a real migration, so
//! what a plan is compared against was made the way a plan is run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::Connection;

use crate::catalog::Set;
use crate::error::Error;
use crate::plan::{self, Step};
use crate::schema::{self, Schema};
use crate::sql::{self, quote};
use crate::version::Version;

/// How messages name the in-memory databases that expected schemas are built in.
pub const SCRATCH: &str = "(scratch database)";

/// Runs `set`'s initial schema and its chain up to `version` in a scratch in-memory database,
/// with the same pragmas and per-step checks as a real migration, and returns that connection.
pub fn replay(set: &Set, version: &Version) -> Result<Connection, Error> {
    let scratch = Path::new(SCRATCH);
    let initial = set
        .initials
        .iter()
        .filter(|i| &i.to <= version)
        .max_by(|a, b| a.to.cmp(&b.to))
        .ok_or_else(|| Error::NoInitialSchema {
            set: set.name.clone(),
            version: version.to_string(),
        })?;
    let steps =
        plan::chain(set, &initial.to, version).map_err(|e| Error::plan(Path::new(&set.name), e))?;
    let conn = Connection::open_in_memory().map_err(|e| Error::sqlite(scratch, e))?;
    // As in a real run: pragmas first, then one transaction (never committed: it is scratch).
    conn.execute_batch("PRAGMA foreign_keys = OFF; BEGIN;")
        .map_err(|e| Error::sqlite(scratch, e))?;
    for stmt in crate::sql::statements(&initial.sql) {
        conn.execute_batch(stmt.text).map_err(|e| {
            let (line, message) = crate::error::statement_failure(&e, stmt.text, stmt.line);
            Error::StepFailed {
                path: scratch.to_path_buf(),
                script: initial.file.clone(),
                line,
                message,
            }
        })?;
    }
    // The tool owns the version row: an initial schema that does not write it still gets it.
    crate::apply::set_version(&conn, &initial.to).map_err(|e| Error::StepFailed {
        path: scratch.to_path_buf(),
        script: initial.file.clone(),
        line: 0,
        message: format!("writing the version row: {e}"),
    })?;
    for script in steps {
        crate::apply::run_step(&conn, scratch, &Step::script(script))?;
    }
    Ok(conn)
}

/// The schema `set` says a database at `version` has.
pub fn expected(set: &Set, version: &Version) -> Result<Schema, Error> {
    let conn = replay(set, version)?;
    schema::read(&conn).map_err(|e| Error::sqlite(Path::new(SCRATCH), e))
}

/// The versions of `set` whose expected schema is exactly `actual`.
pub fn matching_versions(set: &Set, actual: &Schema) -> Vec<Version> {
    let versions: BTreeSet<&Version> = set.versions().collect();
    versions
        .into_iter()
        .filter(|v| expected(set, v).is_ok_and(|s| &s == actual))
        .cloned()
        .collect()
}

/// A schema to converge to, built from SQL that creates a database from nothing.
#[derive(Debug, Clone)]
pub struct Target {
    /// The file it was built from, as messages name it.
    pub origin: String,
    /// The version the file writes into `schema_version`.
    pub version: Version,
    pub schema: Schema,
    /// Per table, the rows the file inserts into it, as `INSERT` statements.
    pub seeds: BTreeMap<String, Vec<String>>,
}

/// The schema `set` says a database at `version` has, as a target to converge to (a repair),
/// with the rows the replay put into each table.
pub fn version_target(set: &Set, version: &Version) -> Result<Target, Error> {
    let conn = replay(set, version)?;
    let scratch = Path::new(SCRATCH);
    let schema = schema::read(&conn).map_err(|e| Error::sqlite(scratch, e))?;
    let seeds = seeds(&conn, &schema).map_err(|e| Error::sqlite(scratch, e))?;
    Ok(Target {
        origin: format!("the schema of {} v{version}", set.name),
        version: version.clone(),
        schema,
        seeds,
    })
}

/// Per table, the rows it holds as `INSERT` statements.
fn seeds(conn: &Connection, schema: &Schema) -> rusqlite::Result<BTreeMap<String, Vec<String>>> {
    let mut seeds = BTreeMap::new();
    for (name, table) in &schema.tables {
        let rows = inserts(conn, &table.name, &table.order)?;
        if !rows.is_empty() {
            seeds.insert(name.clone(), rows);
        }
    }
    Ok(seeds)
}

/// Builds the target schema the file at `path` describes.
pub fn target_file(path: &Path) -> Result<Target, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, &e))?;
    let text = String::from_utf8(bytes).map_err(|_| Error::NotUtf8 {
        file: path.display().to_string(),
    })?;
    target_sql(&path.display().to_string(), &text)
}

/// Builds the target schema `text` describes; errors name `origin`.
pub fn target_sql(origin: &str, text: &str) -> Result<Target, Error> {
    let broken = |line: usize, message: String| Error::TargetSchema {
        file: origin.to_string(),
        line,
        message,
    };
    let conn = build(origin, text)?;
    let version = match crate::inspect::read_version(&conn, Path::new(origin)) {
        Ok(crate::inspect::State::Versioned(v)) => v,
        _ => {
            return Err(broken(
                0,
                "it writes no version into schema_version (end it with INSERT OR REPLACE INTO schema_version (id, version) VALUES (1, '<version>'))".into(),
            ))
        }
    };
    let schema = schema::read(&conn).map_err(|e| broken(0, e.to_string()))?;
    let seeds = seeds(&conn, &schema).map_err(|e| broken(0, e.to_string()))?;
    Ok(Target {
        origin: origin.to_string(),
        version,
        schema,
        seeds,
    })
}

/// Runs `text` (a file that builds a database from nothing) in a scratch in-memory database;
/// errors name `origin` and the line.
pub fn build(origin: &str, text: &str) -> Result<Connection, Error> {
    let broken = |line: usize, message: String| Error::TargetSchema {
        file: origin.to_string(),
        line,
        message,
    };
    if let Some(at) = text.find('\0') {
        let line = text[..at].matches('\n').count() + 1;
        return Err(broken(
            line,
            "it holds a NUL byte, where SQLite would stop reading".into(),
        ));
    }
    let conn = Connection::open_in_memory().map_err(|e| broken(0, e.to_string()))?;
    conn.execute_batch("PRAGMA foreign_keys = OFF")
        .map_err(|e| broken(0, e.to_string()))?;
    for stmt in sql::statements(text) {
        conn.execute_batch(stmt.text).map_err(|e| {
            let (line, message) = crate::error::statement_failure(&e, stmt.text, stmt.line);
            broken(line, message)
        })?;
    }
    Ok(conn)
}

/// The rows of `table` as `INSERT` statements with literal values.
fn inserts(conn: &Connection, table: &str, columns: &[String]) -> rusqlite::Result<Vec<String>> {
    let list = columns
        .iter()
        .map(|c| quote(c))
        .collect::<Vec<_>>()
        .join(", ");
    let mut stmt = conn.prepare(&format!("SELECT {list} FROM {}", quote(table)))?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let values = (0..columns.len())
            .map(|i| row.get_ref(i).map(literal))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        out.push(format!(
            "INSERT INTO {} ({list}) VALUES ({})",
            quote(table),
            values.join(", ")
        ));
    }
    Ok(out)
}

/// A value as an SQL literal that reads back as the same value.
pub fn literal(v: ValueRef<'_>) -> String {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02X}")).collect::<String>();
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) if f.is_nan() => "NULL".into(),
        ValueRef::Real(f) if f.is_infinite() => if f > 0.0 { "9e999" } else { "-9e999" }.into(),
        ValueRef::Real(f) => format!("{f:?}"),
        // Text with a NUL byte would cut a statement short: spell it as bytes.
        ValueRef::Text(t) if t.contains(&0) => format!("CAST(X'{}' AS TEXT)", hex(t)),
        ValueRef::Text(t) => format!("'{}'", String::from_utf8_lossy(t).replace('\'', "''")),
        ValueRef::Blob(b) => format!("X'{}'", hex(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_file_gives_its_version_schema_and_seed_rows() {
        let t = target_sql(
            "t.sql",
            "CREATE TABLE IF NOT EXISTS schema_version (id INTEGER PRIMARY KEY CHECK (id = 1), version TEXT NOT NULL, updated_at DATETIME DEFAULT CURRENT_TIMESTAMP);
             CREATE TABLE cfg (id INTEGER PRIMARY KEY CHECK (id = 1), path TEXT, ratio REAL, raw BLOB);
             INSERT INTO cfg VALUES (1, 'it''s', 0.1, X'00FF');
             INSERT OR REPLACE INTO schema_version (id, version) VALUES (1, '1.9');",
        )
        .unwrap();
        assert_eq!(t.version.to_string(), "1.9");
        assert_eq!(t.schema.tables().collect::<Vec<_>>(), ["cfg"]);
        assert_eq!(
            t.seeds["cfg"],
            ["INSERT INTO \"cfg\" (\"id\", \"path\", \"ratio\", \"raw\") VALUES (1, 'it''s', 0.1, X'00FF')"]
        );
    }

    #[test]
    fn a_target_file_that_does_not_build_or_has_no_version_is_named() {
        let e = target_sql("t.sql", "CREATE TABLE a (x);\nCREATE TABLE a (y);").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.sql does not build a database: line 2: table a already exists: fix the file, or point to another"
        );
        let e = target_sql("t.sql", "CREATE TABLE a (x);").unwrap_err();
        assert!(e.to_string().contains("writes no version"), "{e}");
    }
}
