//! The converge planner: from the schema a database has to the schema it should have, the SQL
//! that gets it there. Pure: two schemas (and the rows a target file seeds its tables with) in,
//! a plan out; reading schemas, counting rows and running the plan happen elsewhere.
//!
//! A table whose only change is new columns that `ALTER TABLE … ADD COLUMN` can express gets
//! that; any other change gets SQLite's 12-step rebuild (steps 3 to 10 here; the executor does
//! 1, 2, 11 and 12), copying the columns both sides have. Nothing is guessed: a table or column
//! that is gone from the target is dropped, and the row accounting around the plan says so.

use std::collections::{BTreeMap, BTreeSet};

use crate::schema::{Schema, Table};
use crate::sql::{self, quote};

/// A generated plan, and what it changes in words.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Converge {
    /// The statements, in an order SQLite accepts.
    pub statements: Vec<String>,
    /// One line per change: `+ table modules`, `notes rebuilt (CHECK changed)`, …
    pub summary: Vec<String>,
    /// Rows a tighter constraint would reject, looked for before the plan runs.
    pub tighter: Vec<Tightening>,
    /// External-content full-text indexes the plan builds from their content table.
    pub fts_built: Vec<(String, String)>,
    /// The schema the plan must end at.
    pub target: Schema,
    /// Text values rewritten to follow a renamed state folder: table, column, how many.
    pub rewrites: Vec<(String, String, i64)>,
}

/// A query for the rows of `table` that a constraint of the target would reject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tightening {
    pub table: String,
    /// The constraint, as a user reads it: `NOT NULL on title`, `UNIQUE (name)`, …
    pub constraint: String,
    /// `SELECT rowid FROM …` of the offending rows, against the current schema.
    pub query: String,
}

/// The name a table is rebuilt under before it takes its own back (a name the tool owns).
fn rebuild_name(table: &str) -> String {
    format!("aifp_migrate_new_{table}")
}

/// Plans the way from `current` to `target`. `seeds` holds, per new table, the `INSERT`s the
/// target file fills it with.
pub fn plan(current: &Schema, target: &Schema, seeds: &BTreeMap<String, Vec<String>>) -> Converge {
    let mut out = Converge {
        target: target.clone(),
        ..Converge::default()
    };
    let mut drop_objects = Vec::new();
    let mut create_tables = Vec::new();
    let mut rebuilds = Vec::new();
    let mut additions = Vec::new();
    let mut create_objects = Vec::new();

    // Tables: which are new, gone, rebuilt, or only grow columns.
    let mut rebuilt: BTreeSet<&str> = BTreeSet::new();
    let mut gone: BTreeSet<&str> = BTreeSet::new();
    for (name, have) in &current.tables {
        match target.tables.get(name) {
            None => {
                gone.insert(name);
                out.summary.push(format!("- table {name} (dropped)"));
            }
            Some(want) if want == have => {}
            Some(want) => match added_columns(have, want) {
                Some(added) => {
                    for (col, text) in added {
                        additions.push(format!(
                            "ALTER TABLE {} ADD COLUMN {text}",
                            quote(&want.name)
                        ));
                        out.summary.push(format!("{name}: + column {col}"));
                    }
                }
                None => {
                    rebuilt.insert(name);
                    out.summary.push(format!(
                        "{name} rebuilt ({})",
                        why_rebuilt(have, want).join(", ")
                    ));
                    out.tighter.extend(tightenings(name, have, want));
                    rebuilds.extend(rebuild(name, have, want));
                }
            },
        }
    }
    for (name, want) in &target.tables {
        if !current.tables.contains_key(name) {
            create_tables.push(want.sql.clone());
            let rows = seeds.get(name).map_or(&[][..], Vec::as_slice);
            create_tables.extend(rows.iter().cloned());
            out.summary.push(match rows.len() {
                0 => format!("+ table {name}"),
                n => format!("+ table {name} ({n} row(s) from the schema)"),
            });
        }
    }
    let touched = |table: &str| gone.contains(table) || rebuilt.contains(table);

    // Virtual tables: compared by their SQL; a changed one is dropped and created again.
    for (name, have) in &current.virtuals {
        if target.virtuals.get(name) != Some(have) {
            drop_objects.push(format!("DROP TABLE {}", quote(name)));
            if !target.virtuals.contains_key(name) {
                out.summary
                    .push(format!("- virtual table {name} (dropped)"));
            }
        }
    }
    for (name, want) in &target.virtuals {
        if current.virtuals.get(name) == Some(want) {
            continue;
        }
        create_objects.push(want.sql.clone());
        let verb = if current.virtuals.contains_key(name) {
            "~"
        } else {
            "+"
        };
        match external_content(&want.sql) {
            Some(content) => {
                create_objects.push(format!(
                    "INSERT INTO {q}({q}) VALUES ('rebuild')",
                    q = quote(name)
                ));
                out.summary
                    .push(format!("{verb} FTS {name} (built from {content})"));
                out.fts_built.push((name.clone(), content));
            }
            None => out.summary.push(format!("{verb} virtual table {name}")),
        }
    }

    // Indexes, triggers and views: those that change, and those of a rebuilt table (dropping a
    // table drops its indexes and triggers), go before the tables change and come back after.
    for ((kind, name), have) in &current.others {
        let same = target.others.get(&(kind.clone(), name.clone())) == Some(have);
        let on_touched = kind != "view" && touched(&have.table);
        if !same && !on_touched {
            drop_objects.push(format!("DROP {} {}", kind.to_uppercase(), quote(name)));
        }
        if !target.others.contains_key(&(kind.clone(), name.clone())) {
            out.summary.push(format!("- {kind} {name}"));
        }
    }
    // Views first among the drops: a view may name a table or another view that goes.
    drop_objects.sort_by_key(|s| !s.starts_with("DROP VIEW"));
    let mut creates: Vec<(&str, String)> = Vec::new();
    for ((kind, name), want) in &target.others {
        let had = current.others.get(&(kind.clone(), name.clone()));
        let same = had == Some(want);
        let on_rebuilt = kind != "view" && rebuilt.contains(want.table.as_str());
        if same && !on_rebuilt {
            continue;
        }
        creates.push((kind.as_str(), want.sql.clone()));
        if !same && kind == "index" {
            out.tighter
                .extend(unique_index_tightening(current, target, name, want));
        }
        if !same {
            let verb = if had.is_some() { "~" } else { "+" };
            out.summary.push(format!("{verb} {kind} {name}"));
        }
    }
    // Indexes, then views, then triggers (a trigger's body may name a view).
    let rank = |k: &str| match k {
        "index" => 0,
        "view" => 1,
        _ => 2,
    };
    creates.sort_by_key(|(k, _)| rank(k));
    create_objects.extend(creates.into_iter().map(|(_, sql)| sql));

    out.statements = drop_objects;
    out.statements.extend(
        gone.iter()
            .map(|t| format!("DROP TABLE {}", quote(&current.tables[*t].name))),
    );
    out.statements.extend(create_tables);
    out.statements.extend(rebuilds);
    out.statements.extend(additions);
    out.statements.extend(create_objects);
    out
}

/// The columns `want` adds to `have`, as `ADD COLUMN` text, when that is all that changed and
/// `ALTER TABLE … ADD COLUMN` can add each of them; `None` when the table needs a rebuild.
fn added_columns<'w>(have: &Table, want: &'w Table) -> Option<Vec<(&'w str, &'w str)>> {
    if have.constraints != want.constraints {
        return None;
    }
    if have
        .columns
        .iter()
        .any(|(col, decl)| want.columns.get(col) != Some(decl))
    {
        return None;
    }
    let def = sql::table_def(&want.sql)?;
    let mut added = Vec::new();
    for (col, decl) in &want.columns {
        if have.columns.contains_key(col) {
            continue;
        }
        // SQLite's rules for ADD COLUMN: no PRIMARY KEY or UNIQUE, no generated STORED column,
        // a NOT NULL column needs a default, and the default must be a constant.
        let text = def.columns.iter().find(|(n, _)| n == col)?.1;
        let words = sql::tokens(text);
        let has = |w: &str| words.iter().any(|t| t == w);
        let default = decl.split_once(" DEFAULT ").map(|(_, d)| d);
        let constant_default = default.is_none_or(|d| {
            !d.starts_with('(') && !d.starts_with("current_") && !d.starts_with("CURRENT_")
        });
        if has("primary")
            || has("unique")
            || has("stored")
            || has("references")
            || (decl.contains("NOT NULL") && default.is_none())
            || !constant_default
        {
            return None;
        }
        added.push((col.as_str(), text));
    }
    Some(added)
}

/// Why a table needs a rebuild, in words.
fn why_rebuilt(have: &Table, want: &Table) -> Vec<String> {
    let mut why = BTreeSet::new();
    for (col, decl) in &have.columns {
        match want.columns.get(col) {
            None => {
                why.insert(format!("column {col} removed"));
            }
            Some(w) if w != decl => {
                why.insert(format!("column {col} changed"));
            }
            Some(_) => {}
        }
    }
    for col in want.columns.keys() {
        if !have.columns.contains_key(col) {
            why.insert(format!("column {col} added"));
        }
    }
    for c in have.constraints.symmetric_difference(&want.constraints) {
        let kind = c.split([' ', '(']).next().unwrap_or(c);
        let kind = match kind {
            "FOREIGN" => "foreign key",
            "WITHOUT" => "WITHOUT ROWID",
            k => k,
        };
        why.insert(format!("{kind} changed"));
    }
    why.into_iter().collect()
}

/// SQLite's rebuild, steps 3 to 10 of "Making Other Kinds Of Table Schema Changes": create the
/// new table under another name, copy the columns both sides have, drop the old one, rename.
fn rebuild(name: &str, have: &Table, want: &Table) -> Vec<String> {
    let temp = rebuild_name(name);
    let create = match sql::table_def(&want.sql) {
        Some(def) => format!(
            "{}{}{}",
            &want.sql[..def.name.start],
            quote(&temp),
            &want.sql[def.name.end..]
        ),
        None => want.sql.clone(),
    };
    let common: Vec<String> = want
        .order
        .iter()
        .filter(|c| have.order.contains(c))
        .map(|c| quote(c))
        .collect();
    let mut out = vec![create];
    if !common.is_empty() {
        let cols = common.join(", ");
        out.push(format!(
            "INSERT INTO {} ({cols}) SELECT {cols} FROM {}",
            quote(&temp),
            quote(&have.name)
        ));
    }
    out.push(format!("DROP TABLE {}", quote(&have.name)));
    out.push(format!(
        "ALTER TABLE {} RENAME TO {}",
        quote(&temp),
        quote(&want.name)
    ));
    out
}

/// The queries for rows of `name` that the rebuilt table would reject: a column that becomes
/// NOT NULL, a new NOT NULL column without a default, a new UNIQUE or CHECK constraint.
fn tightenings(name: &str, have: &Table, want: &Table) -> Vec<Tightening> {
    let from = quote(&have.name);
    let rowid = if have.constraints.contains("WITHOUT ROWID") {
        "NULL"
    } else {
        "rowid"
    };
    let mut out = Vec::new();
    let mut push = |constraint: String, condition: String| {
        out.push(Tightening {
            table: name.to_string(),
            constraint,
            query: format!("SELECT {rowid} FROM {from} WHERE {condition}"),
        });
    };
    for (col, decl) in &want.columns {
        if !decl.contains("NOT NULL") || decl.contains(" GENERATED") {
            continue;
        }
        match have.columns.get(col) {
            Some(old) if !old.contains("NOT NULL") => {
                push(
                    format!("NOT NULL on {col}"),
                    format!("{} IS NULL", quote(col)),
                );
            }
            None if !decl.contains(" DEFAULT ") => {
                push(
                    format!("NOT NULL on new column {col} with no default"),
                    "1".to_string(),
                );
            }
            _ => {}
        }
    }
    for c in want.constraints.difference(&have.constraints) {
        if let Some(cols) = c.strip_prefix("UNIQUE (").and_then(|c| c.strip_suffix(')')) {
            let cols: Vec<&str> = cols.split(", ").collect();
            if let Some(condition) = duplicates(&from, have, want, &cols) {
                push(c.clone(), condition);
            }
        }
    }
    let old_checks: BTreeSet<String> = sql::checks(&have.sql).into_iter().map(|c| c.0).collect();
    for (norm, expr) in sql::checks(&want.sql) {
        if old_checks.contains(&norm) {
            continue;
        }
        // A CHECK may name a column the table does not have yet; such a query fails, and the
        // rebuild itself then reports what SQLite says.
        push(norm, format!("({expr}) = 0"));
    }
    out
}

/// The condition that picks the current rows of a table (`from`, as `have`) whose values in
/// `cols` would collide once it is `want`; `None` when none can. A column the table does not have
/// yet gets its default in every row, one constant: only the other columns tell rows apart then,
/// and a new column whose default is NULL never collides. (Found by tests/converge_props.rs: a
/// new UNIQUE column with a default used to get no check, and the rebuild then failed halfway with
/// SQLite's own message naming the tool's scratch table.)
fn duplicates(from: &str, have: &Table, want: &Table, cols: &[&str]) -> Option<String> {
    let mut old = Vec::new();
    for col in cols {
        if have.columns.contains_key(*col) {
            old.push(quote(col));
            continue;
        }
        let decl = want.columns.get(*col)?;
        let default = decl.split_once(" DEFAULT ")?.1;
        let default = default.split(" PRIMARY KEY").next().unwrap_or(default);
        if default.trim().eq_ignore_ascii_case("null") {
            return None;
        }
    }
    if old.is_empty() {
        return Some(format!("(SELECT count(*) FROM {from}) > 1"));
    }
    let list = old.join(", ");
    let not_null = old
        .iter()
        .map(|c| format!("{c} IS NOT NULL"))
        .collect::<Vec<_>>()
        .join(" AND ");
    Some(format!(
        "{not_null} AND ({list}) IN (SELECT {list} FROM {from} GROUP BY {list} HAVING count(*) > 1)"
    ))
}

/// The query for rows that a new (or changed) `CREATE UNIQUE INDEX` over plain columns would
/// reject, on the table as it is now; `None` for another index, one over an expression, or one on
/// a table that is new. (Found by tests/converge_props.rs: such an index got no check, and the
/// plan then failed on it with SQLite's own message instead of naming the rows.) Collations are
/// not taken into account: rows they alone make collide still fail, with SQLite's message.
fn unique_index_tightening(
    current: &Schema,
    target: &Schema,
    name: &str,
    index: &crate::schema::Object,
) -> Option<Tightening> {
    let toks = sql::lex(&index.sql);
    if toks.get(1)?.norm != "unique" {
        return None;
    }
    let on = toks.iter().position(|t| t.norm == "on")?;
    let mut i = on + toks[on..].iter().position(|t| t.norm == "(")? + 1;
    let mut cols = Vec::new();
    loop {
        let col = toks.get(i)?;
        i += 1;
        while let Some(t) = toks.get(i) {
            match t.norm.as_str() {
                "collate" => i += 2,
                "asc" | "desc" => i += 1,
                _ => break,
            }
        }
        cols.push(col.norm.as_str());
        match toks.get(i)?.norm.as_str() {
            "," => i += 1,
            ")" => break,
            // An expression: not looked for here.
            _ => return None,
        }
    }
    let filter = toks
        .get(i + 1)
        .filter(|t| t.norm == "where")
        .map(|w| index.sql[w.end..].trim().trim_end_matches(';').to_string());
    let have = current.tables.get(&index.table)?;
    let want = target.tables.get(&index.table)?;
    let table = quote(&have.name);
    // A partial index holds only the rows its WHERE picks.
    let (from, only) = match &filter {
        Some(f) => (
            format!("(SELECT * FROM {table} WHERE {f})"),
            format!("({f}) AND "),
        ),
        None => (table.clone(), String::new()),
    };
    let rowid = if have.constraints.contains("WITHOUT ROWID") {
        "NULL"
    } else {
        "rowid"
    };
    let condition = duplicates(&from, have, want, &cols)?;
    Some(Tightening {
        table: index.table.clone(),
        constraint: format!("UNIQUE index {name} ({})", cols.join(", ")),
        query: format!("SELECT {rowid} FROM {table} WHERE {only}{condition}"),
    })
}

/// The content table of an external-content full-text index (`content='notes'`), if it is one.
pub fn external_content(sql: &str) -> Option<String> {
    let toks = sql::lex(sql);
    let i = toks
        .windows(2)
        .position(|w| w[0].norm == "content" && w[1].norm == "=")?;
    let value = &toks.get(i + 2)?.norm;
    let value = value.trim_matches(|c| c == '\'' || c == '"');
    (!value.is_empty()).then(|| value.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn schema(sql: &str) -> Schema {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(sql).unwrap();
        crate::schema::read(&conn).unwrap()
    }

    /// Runs the plan from `from` to `to` on a database built from `from` holding `rows`, and
    /// returns the plan and the schema it ended with.
    fn run(from: &str, rows: &str, to: &str) -> (Converge, Schema, Connection) {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(from).unwrap();
        conn.execute_batch(rows).unwrap();
        let plan = plan(&schema(from), &schema(to), &BTreeMap::new());
        conn.execute_batch("PRAGMA foreign_keys = OFF; BEGIN")
            .unwrap();
        for s in &plan.statements {
            crate::apply::execute(&conn, s).unwrap_or_else(|e| panic!("{s}: {e}"));
        }
        conn.execute_batch("COMMIT").unwrap();
        let after = crate::schema::read(&conn).unwrap();
        (plan, after, conn)
    }

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn a_new_column_is_added_in_place() {
        let from = "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT);";
        let to = "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT DEFAULT 'x' -- why\n);";
        let (plan, after, conn) = run(from, "INSERT INTO t (a) VALUES ('1'), ('2');", to);
        assert_eq!(
            plan.statements,
            ["ALTER TABLE \"t\" ADD COLUMN b TEXT DEFAULT 'x'"]
        );
        assert_eq!(after, schema(to));
        assert_eq!(count(&conn, "SELECT count(*) FROM t WHERE b = 'x'"), 2);
    }

    #[test]
    fn a_changed_check_rebuilds_the_table_and_keeps_its_rows_indexes_and_triggers() {
        let from = "CREATE TABLE n (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT CHECK (kind IN ('a')), body TEXT);
            CREATE INDEX n_kind ON n (kind);
            CREATE TABLE log (x);
            CREATE TRIGGER n_ins AFTER INSERT ON n BEGIN INSERT INTO log VALUES (new.id); END;
            CREATE VIEW v AS SELECT body FROM n;";
        let to = from.replace("IN ('a')", "IN ('a', 'b')");
        let (plan, after, conn) = run(
            from,
            "INSERT INTO n (kind, body) VALUES ('a', 'x'), ('a', 'y');",
            &to,
        );
        assert_eq!(after, schema(&to), "{:#?}", plan.statements);
        assert_eq!(plan.summary, ["n rebuilt (CHECK changed)"]);
        assert_eq!(count(&conn, "SELECT count(*) FROM n"), 2);
        conn.execute_batch("INSERT INTO n (kind, body) VALUES ('b', 'z')")
            .unwrap();
        assert_eq!(
            count(&conn, "SELECT count(*) FROM log"),
            3,
            "the trigger is back"
        );
        assert_eq!(
            count(&conn, "SELECT count(*) FROM v"),
            3,
            "the view still reads"
        );
    }

    #[test]
    fn gone_tables_and_columns_are_dropped_never_guessed_as_renames() {
        let from = "CREATE TABLE a (id INTEGER PRIMARY KEY, x, y); CREATE TABLE old (z);";
        let to = "CREATE TABLE a (id INTEGER PRIMARY KEY, x); CREATE TABLE new (z);";
        let (plan, after, _) = run(from, "INSERT INTO a VALUES (1, 2, 3);", to);
        assert_eq!(after, schema(to));
        assert!(plan.summary.contains(&"- table old (dropped)".to_string()));
        assert!(plan.summary.contains(&"+ table new".to_string()));
        assert!(plan
            .summary
            .contains(&"a rebuilt (column y removed)".to_string()));
    }

    #[test]
    fn a_new_external_content_index_is_built_from_its_table() {
        let from = "CREATE TABLE notes (id INTEGER PRIMARY KEY, content TEXT);";
        let to = format!(
            "{from} CREATE VIRTUAL TABLE notes_fts USING fts5(content, content='notes', content_rowid='id');
             CREATE TRIGGER notes_ai AFTER INSERT ON notes BEGIN INSERT INTO notes_fts(rowid, content) VALUES (new.id, new.content); END;"
        );
        let (plan, after, conn) = run(
            from,
            "INSERT INTO notes (content) VALUES ('alpha beta'), ('gamma');",
            &to,
        );
        assert_eq!(after, schema(&to));
        assert_eq!(
            plan.fts_built,
            [("notes_fts".to_string(), "notes".to_string())]
        );
        assert_eq!(
            count(
                &conn,
                "SELECT count(*) FROM notes_fts WHERE notes_fts MATCH 'beta'"
            ),
            1
        );
    }

    #[test]
    fn a_column_that_becomes_not_null_is_looked_for_before_the_rebuild() {
        let from = "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT);";
        let to = "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT NOT NULL, b TEXT UNIQUE, CHECK (length(b) < 3));";
        let p = plan(&schema(from), &schema(to), &BTreeMap::new());
        let constraints: Vec<&str> = p.tighter.iter().map(|t| t.constraint.as_str()).collect();
        assert_eq!(
            constraints,
            ["NOT NULL on a", "UNIQUE (b)", "CHECK ( length ( b ) < 3 )"]
        );
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(from).unwrap();
        conn.execute_batch("INSERT INTO t VALUES (1, NULL, 'x'), (2, 'a', 'x'), (3, 'b', 'long')")
            .unwrap();
        let rows = |q: &str| -> Vec<i64> {
            let mut s = conn.prepare(q).unwrap();
            s.query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert_eq!(rows(&p.tighter[0].query), [1]);
        assert_eq!(rows(&p.tighter[1].query), [1, 2]);
        assert_eq!(rows(&p.tighter[2].query), [3]);
    }

    /// The rows of `from` holding `rows` that each of the plan's tightenings to `to` picks.
    fn tightened(from: &str, rows: &str, to: &str) -> Vec<(String, Vec<i64>)> {
        let p = plan(&schema(from), &schema(to), &BTreeMap::new());
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(from).unwrap();
        conn.execute_batch(rows).unwrap();
        p.tighter
            .iter()
            .map(|t| {
                let mut s = conn.prepare(&t.query).unwrap();
                let ids = s
                    .query_map([], |r| r.get(0))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                (t.constraint.clone(), ids)
            })
            .collect()
    }

    #[test]
    fn a_new_unique_index_is_looked_for_before_it_is_built() {
        let from = "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b INTEGER);";
        let rows = "INSERT INTO t VALUES (1, 'x', 1), (2, 'x', 2), (3, 'y', 3), (4, NULL, 4), (5, NULL, 5);";
        let to = format!("{from} CREATE UNIQUE INDEX t_a ON t (a COLLATE BINARY DESC);");
        assert_eq!(
            tightened(from, rows, &to),
            [("UNIQUE index t_a (a)".to_string(), vec![1, 2])]
        );
        // A partial index: only the rows its WHERE picks.
        let to = format!("{from} CREATE UNIQUE INDEX t_a ON t (a) WHERE b > 1;");
        assert_eq!(tightened(from, rows, &to)[0].1, Vec::<i64>::new());
        let rows = "INSERT INTO t VALUES (1, 'x', 1), (2, 'x', 2), (3, 'x', 3);";
        assert_eq!(tightened(from, rows, &to)[0].1, [2, 3]);
        // A plain index, or one over an expression, is not looked for.
        for index in [
            "CREATE INDEX t_a ON t (a)",
            "CREATE UNIQUE INDEX t_a ON t (lower(a))",
        ] {
            assert_eq!(tightened(from, rows, &format!("{from} {index};")), []);
        }
        // A table that rows fill as it is rebuilt: its new column's default collides.
        let to = "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b INTEGER, c TEXT DEFAULT 'd');
            CREATE UNIQUE INDEX t_c ON t (c);";
        let found = tightened(from, rows, to);
        assert!(
            found.contains(&("UNIQUE index t_c (c)".to_string(), vec![1, 2, 3])),
            "{found:?}"
        );
    }

    #[test]
    fn a_new_unique_column_whose_default_fills_every_row_is_looked_for() {
        let from = "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT);";
        let rows = "INSERT INTO t VALUES (1, 'x'), (2, 'x'), (3, 'y');";
        // Every row gets 'd': three rows collide.
        let to = "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT DEFAULT 'd' UNIQUE);";
        assert_eq!(
            tightened(from, rows, to),
            [("UNIQUE (b)".to_string(), vec![1, 2, 3])]
        );
        // With an old column beside it, only the old column's duplicates collide.
        let to =
            "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT DEFAULT 'd', UNIQUE (a, b));";
        assert_eq!(
            tightened(from, rows, to),
            [("UNIQUE (a, b)".to_string(), vec![1, 2])]
        );
        // No default: every row gets NULL, and NULLs never collide.
        let to = "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT UNIQUE);";
        assert_eq!(tightened(from, rows, to), []);
        // One row cannot collide with itself.
        let to = "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT DEFAULT 'd' UNIQUE);";
        assert_eq!(
            tightened(from, "INSERT INTO t VALUES (1, 'x');", to)[0].1,
            Vec::<i64>::new()
        );
    }
}
