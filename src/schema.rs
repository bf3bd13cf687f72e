//! What a schema is, in a form that compares by meaning, and the schema each version should have.
//!
//! A schema is read from SQLite's own catalogue: per table its columns, CHECKs, foreign keys,
//! UNIQUE constraints and options; every index, trigger and view by its normalised SQL. Quoting,
//! case and whitespace that do not change meaning are ignored; `sqlite_*`, `aifp_migrate_*` and
//! `schema_version` are left out. The expected schema of a version is built by replaying the
//! initial schema and the chain in a scratch in-memory database.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use rusqlite::Connection;

use crate::catalog::Set;
use crate::error::Error;
use crate::plan;
use crate::sql;
use crate::version::Version;

/// How messages name the in-memory databases that expected schemas are built in.
pub const SCRATCH: &str = "(scratch database)";

/// A database's schema, normalised.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    tables: BTreeMap<String, Table>,
    /// Indexes, triggers and views: kind and name to normalised SQL.
    others: BTreeMap<(String, String), String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Table {
    /// Column name to its declaration: type, NOT NULL, DEFAULT, PRIMARY KEY.
    columns: BTreeMap<String, String>,
    /// CHECKs, foreign keys, UNIQUE constraints, AUTOINCREMENT, WITHOUT ROWID, STRICT.
    constraints: BTreeSet<String>,
}

impl Schema {
    /// The names of its tables.
    pub fn tables(&self) -> impl Iterator<Item = &str> {
        self.tables.keys().map(String::as_str)
    }
}

/// Tables that belong to SQLite or to the tool, not to the schema a version describes.
fn left_out(table: &str) -> bool {
    let t = table.to_ascii_lowercase();
    t.starts_with("sqlite_") || t.starts_with("aifp_migrate_") || t == "schema_version"
}

/// Reads the schema of the database `conn` has open.
pub fn read(conn: &Connection) -> rusqlite::Result<Schema> {
    let mut schema = Schema::default();
    let mut stmt = conn.prepare(
        "SELECT type, name, tbl_name, sql FROM sqlite_master
         WHERE sql IS NOT NULL ORDER BY type, name",
    )?;
    let objects: Vec<(String, String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    for (kind, name, table, text) in objects {
        if left_out(&table) {
            continue;
        }
        if kind == "table" {
            schema
                .tables
                .insert(name.to_lowercase(), read_table(conn, &name, &text)?);
        } else {
            schema
                .others
                .insert((kind, name.to_lowercase()), sql::normalize(&text));
        }
    }
    Ok(schema)
}

fn read_table(conn: &Connection, name: &str, text: &str) -> rusqlite::Result<Table> {
    let mut table = Table::default();
    let mut stmt = conn.prepare(
        "SELECT name, type, \"notnull\", dflt_value, pk, hidden FROM pragma_table_xinfo(?1)",
    )?;
    let mut rows = stmt.query([name])?;
    while let Some(r) = rows.next()? {
        let col: String = r.get(0)?;
        let ty: String = r.get(1)?;
        let mut decl = ty
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_uppercase();
        if r.get::<_, bool>(2)? {
            decl.push_str(" NOT NULL");
        }
        if let Some(default) = r.get::<_, Option<String>>(3)? {
            let _ = write!(decl, " DEFAULT {}", sql::normalize(&default));
        }
        match r.get::<_, i64>(4)? {
            0 => {}
            1 => decl.push_str(" PRIMARY KEY"),
            n => {
                let _ = write!(decl, " PRIMARY KEY (part {n})");
            }
        }
        if r.get::<_, i64>(5)? != 0 {
            decl.push_str(" GENERATED");
        }
        let decl = decl.trim();
        let decl = if decl.is_empty() { "untyped" } else { decl };
        table.columns.insert(col.to_lowercase(), decl.to_string());
    }

    let mut stmt = conn.prepare(
        "SELECT id, \"table\", \"from\", \"to\", on_update, on_delete
         FROM pragma_foreign_key_list(?1) ORDER BY id, seq",
    )?;
    let mut fks: BTreeMap<i64, (String, Vec<String>, Vec<String>, String)> = BTreeMap::new();
    let mut rows = stmt.query([name])?;
    while let Some(r) = rows.next()? {
        let entry = fks.entry(r.get(0)?).or_default();
        entry.0 = r.get::<_, String>(1)?.to_lowercase();
        entry.1.push(r.get::<_, String>(2)?.to_lowercase());
        entry.2.push(
            r.get::<_, Option<String>>(3)?
                .unwrap_or_default()
                .to_lowercase(),
        );
        let actions: Vec<String> = [
            ("ON UPDATE", r.get::<_, String>(4)?),
            ("ON DELETE", r.get(5)?),
        ]
        .into_iter()
        .filter(|(_, action)| action != "NO ACTION")
        .map(|(on, action)| format!(" {on} {action}"))
        .collect();
        entry.3 = actions.concat();
    }
    for (_, (parent, from, to, actions)) in fks {
        table.constraints.insert(format!(
            "FOREIGN KEY ({}) REFERENCES {parent}({}){actions}",
            from.join(", "),
            to.join(", ")
        ));
    }

    // UNIQUE constraints live in automatic indexes, whose names mean nothing.
    let mut stmt = conn.prepare("SELECT name FROM pragma_index_list(?1) WHERE origin = 'u'")?;
    let uniques: Vec<String> = stmt
        .query_map([name], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for index in uniques {
        let mut stmt = conn.prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")?;
        let cols: Vec<String> = stmt
            .query_map([&index], |r| r.get::<_, Option<String>>(0))?
            .map(|c| c.map(|c| c.unwrap_or_default().to_lowercase()))
            .collect::<Result<_, _>>()?;
        table
            .constraints
            .insert(format!("UNIQUE ({})", cols.join(", ")));
    }

    let tokens = sql::tokens(text);
    table.constraints.extend(checks(&tokens));
    for (word, constraint) in [("autoincrement", "AUTOINCREMENT"), ("strict", "STRICT")] {
        if tokens.iter().any(|t| t == word) {
            table.constraints.insert(constraint.to_string());
        }
    }
    if tokens.windows(2).any(|w| w == ["without", "rowid"]) {
        table.constraints.insert("WITHOUT ROWID".to_string());
    }
    Ok(table)
}

/// Every `CHECK (…)` in a table's normalised tokens.
fn checks(tokens: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if t != "check" || tokens.get(i + 1).map(String::as_str) != Some("(") {
            continue;
        }
        let mut depth = 0;
        for (j, t) in tokens.iter().enumerate().skip(i + 1) {
            match t.as_str() {
                "(" => depth += 1,
                ")" => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                out.push(format!("CHECK {}", tokens[i + 1..=j].join(" ")));
                break;
            }
        }
    }
    out
}

/// The differences between `expected` and `actual`, one readable line each; empty when they match.
pub fn diff(expected: &Schema, actual: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    for (name, want) in &expected.tables {
        let Some(have) = actual.tables.get(name) else {
            out.push(format!("table {name}: missing"));
            continue;
        };
        for (col, decl) in &want.columns {
            match have.columns.get(col) {
                None => out.push(format!("table {name}: column {col} missing ({decl})")),
                Some(found) if found != decl => out.push(format!(
                    "table {name}: column {col} is {found}, expected {decl}"
                )),
                Some(_) => {}
            }
        }
        for (col, decl) in &have.columns {
            if !want.columns.contains_key(col) {
                out.push(format!("table {name}: column {col} not expected ({decl})"));
            }
        }
        for c in want.constraints.difference(&have.constraints) {
            out.push(format!("table {name}: {c} missing"));
        }
        for c in have.constraints.difference(&want.constraints) {
            out.push(format!("table {name}: {c} not expected"));
        }
    }
    for name in actual.tables.keys() {
        if !expected.tables.contains_key(name) {
            out.push(format!("table {name}: not expected"));
        }
    }
    for ((kind, name), want) in &expected.others {
        match actual.others.get(&(kind.clone(), name.clone())) {
            None => out.push(format!("{kind} {name}: missing")),
            Some(have) if have != want => out.push(format!(
                "{kind} {name}: differs (expected `{want}`, found `{have}`)"
            )),
            Some(_) => {}
        }
    }
    for (kind, name) in actual.others.keys() {
        if !expected.others.contains_key(&(kind.clone(), name.clone())) {
            out.push(format!("{kind} {name}: not expected"));
        }
    }
    out
}

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
    conn.execute_batch("PRAGMA foreign_keys = OFF; PRAGMA legacy_alter_table = ON; BEGIN;")
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
        crate::apply::run_step(&conn, scratch, script)?;
    }
    Ok(conn)
}

/// The schema `set` says a database at `version` has.
pub fn expected(set: &Set, version: &Version) -> Result<Schema, Error> {
    let conn = replay(set, version)?;
    read(&conn).map_err(|e| Error::sqlite(Path::new(SCRATCH), e))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(sql: &str) -> Schema {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(sql).unwrap();
        read(&conn).unwrap()
    }

    const PROJECT: &str = "CREATE TABLE project (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        status TEXT DEFAULT 'active' CHECK (status IN ('active', 'done')),
        parent INTEGER REFERENCES project(id) ON DELETE CASCADE
    );
    CREATE INDEX idx_project_status ON project (status);
    CREATE VIEW active AS SELECT * FROM project WHERE status = 'active';";

    #[test]
    fn quoting_case_and_whitespace_do_not_count() {
        let other = "create table \"PROJECT\" (\"id\" integer primary key autoincrement,
            [name] text not null unique, status text default 'active'
            check (status in ('active','done')), parent integer references PROJECT (id) on delete cascade);
            create index IDX_project_status on project(status);
            create view active as select * from project where status='active';";
        assert_eq!(diff(&schema(PROJECT), &schema(other)), Vec::<String>::new());
    }

    #[test]
    fn create_table_as_select_loses_everything_and_each_loss_is_named() {
        let copied = "CREATE TABLE old AS SELECT 1 AS id, 'x' AS name, 'a' AS status, 1 AS parent;
            CREATE TABLE project AS SELECT * FROM old; DROP TABLE old;
            CREATE INDEX idx_project_status ON project (status);
            CREATE VIEW active AS SELECT * FROM project WHERE status = 'active';";
        let d = diff(&schema(PROJECT), &schema(copied));
        let text = d.join("\n");
        for lost in [
            "column id is untyped, expected INTEGER PRIMARY KEY",
            "column name is untyped, expected TEXT NOT NULL",
            "column status is untyped, expected TEXT DEFAULT 'active'",
            "UNIQUE (name) missing",
            "CHECK ( status in ( 'active' , 'done' ) ) missing",
            "FOREIGN KEY (parent) REFERENCES project(id) ON DELETE CASCADE missing",
            "AUTOINCREMENT missing",
        ] {
            assert!(text.contains(lost), "{lost:?} not in:\n{text}");
        }
    }

    #[test]
    fn leftover_and_missing_objects_are_named_by_kind() {
        let more =
            format!("{PROJECT} CREATE INDEX idx_extra ON project (name); CREATE TABLE t (x);");
        let d = diff(&schema(PROJECT), &schema(&more));
        assert_eq!(
            d,
            ["table t: not expected", "index idx_extra: not expected"]
        );
        let d = diff(&schema(&more), &schema(PROJECT));
        assert_eq!(d, ["table t: missing", "index idx_extra: missing"]);
    }

    #[test]
    fn each_bundled_version_has_a_schema_of_its_own() {
        for name in crate::discovery::DbName::ALL {
            let set = crate::catalog::load(&crate::catalog::Root::BuiltIn, name.as_str()).unwrap();
            for v in set.versions().collect::<BTreeSet<_>>() {
                let s = expected(&set, v).unwrap();
                assert_eq!(
                    matching_versions(&set, &s),
                    std::slice::from_ref(v),
                    "{name:?} v{v}"
                );
            }
        }
    }

    #[test]
    fn the_tools_own_tables_and_the_version_table_are_left_out() {
        let with = format!(
            "{PROJECT} CREATE TABLE schema_version (id INTEGER PRIMARY KEY, version TEXT);
             CREATE TABLE aifp_migrate_history (id INTEGER);"
        );
        assert!(diff(&schema(PROJECT), &schema(&with)).is_empty());
    }
}
