//! Converging to a schema (`--to-schema`, `--repair`, scripts first) and the data-loss guard, on
//! real files with the real binary: the schema equals the target built fresh, every row is kept.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use rusqlite::Connection;

fn converge_fixture(name: &str) -> PathBuf {
    fixture("converge").join(name)
}

/// A project.db built from `from.sql` and `rows.sql`, in WAL mode, foreign keys on as AIFP has them.
fn old_project(env: &Env) -> PathBuf {
    let db = env.db("project");
    let conn = Connection::open(&db).unwrap();
    conn.pragma_update(None, "journal_mode", "wal").unwrap();
    conn.execute_batch(&std::fs::read_to_string(converge_fixture("from.sql")).unwrap())
        .unwrap();
    conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    conn.execute_batch(&std::fs::read_to_string(converge_fixture("rows.sql")).unwrap())
        .unwrap();
    db
}

/// The differences between the schema `target` builds fresh and the one at `db`.
fn differences(target: &Path, db: &Path) -> Vec<String> {
    let want = aifp_migrate::scratch::target_file(target).unwrap().schema;
    let have = aifp_migrate::schema::read(&open(db)).unwrap();
    aifp_migrate::schema::diff(&want, &have)
}

fn rows(db: &Path, sql: &str) -> Vec<String> {
    let conn = open(db);
    let mut stmt = conn.prepare(sql).unwrap();
    let n = stmt.column_count();
    let mut out = Vec::new();
    let mut rows = stmt.query([]).unwrap();
    while let Some(r) = rows.next().unwrap() {
        let cells: Vec<String> = (0..n)
            .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
            .collect();
        out.push(cells.join("|"));
    }
    out
}

fn scalar(db: &Path, sql: &str) -> i64 {
    open(db).query_row(sql, [], |r| r.get(0)).unwrap()
}

fn target_arg() -> String {
    converge_fixture("to.sql").display().to_string()
}

#[test]
fn every_kind_of_change_reaches_the_target_exactly_and_keeps_every_row() {
    let env = Env::new();
    let db = old_project(&env);
    let notes = rows(
        &db,
        "SELECT id, content, note_type, project_id FROM notes ORDER BY id",
    );
    let tasks = rows(&db, "SELECT id, title, legacy_flag FROM tasks ORDER BY id");
    let before = env.files();

    let json = env
        .run(&[
            "--db",
            "project",
            "--to-schema",
            &target_arg(),
            "--format",
            "json",
        ])
        .expect(0)
        .json();
    let entry = &json["databases"][0];
    assert_eq!(entry["status"], "migrated", "{json}");
    assert_eq!(entry["from"], "1.6");
    assert_eq!(entry["to"], "1.9");
    assert_eq!(entry["steps"][0]["kind"], "converge");

    assert_eq!(
        differences(&converge_fixture("to.sql"), &db),
        Vec::<String>::new()
    );
    assert_eq!(version(&db), "1.9");
    // Every row of every kept table, every value of every kept column.
    assert_eq!(
        rows(
            &db,
            "SELECT id, content, note_type, project_id FROM notes ORDER BY id"
        ),
        notes
    );
    assert_eq!(
        rows(&db, "SELECT id, title, legacy_flag FROM tasks ORDER BY id"),
        tasks
    );
    assert_eq!(
        rows(
            &db,
            "SELECT typeof(priority) || ' ' || priority FROM tasks ORDER BY id"
        ),
        rows(&db, "SELECT 'text 2' UNION ALL SELECT 'text 1'"),
        "INTEGER priorities are kept as TEXT"
    );
    // The new table the target seeds gets its row; existing tables get none.
    assert_eq!(
        rows(&db, "SELECT id, log_path FROM logging_config"),
        rows(&db, "SELECT 1, '.aimfp-project/logs'")
    );
    // The new index finds the notes that were there before.
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM notes_fts WHERE notes_fts MATCH 'parser'"
        ),
        1
    );
    assert_eq!(
        entry["account"]["fts_built"][0]["rows"], 3,
        "{}",
        entry["account"]
    );
    // The id of the deleted note is never handed out again.
    assert_eq!(
        scalar(&db, "SELECT seq FROM sqlite_sequence WHERE name = 'notes'"),
        4
    );
    // The orphan note that broke its foreign key before is kept, and counted.
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM notes WHERE project_id = 99"),
        1
    );
    assert_eq!(entry["account"]["broken_before"][0]["table"], "notes");
    // The trigger works on the rebuilt table; the view reads the new column.
    let logged = scalar(&db, "SELECT count(*) FROM note_log");
    Connection::open(&db)
        .unwrap()
        .execute_batch("INSERT INTO notes (content, note_type) VALUES ('new one', 'deferred')")
        .unwrap();
    assert_eq!(scalar(&db, "SELECT count(*) FROM note_log"), logged + 1);
    assert_eq!(scalar(&db, "SELECT max(id) FROM notes"), 5);
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM notes_fts WHERE notes_fts MATCH 'new'"
        ),
        1
    );
    assert_eq!(scalar(&db, "SELECT count(*) FROM open_notes"), 3);

    // The backup holds the database as it was.
    let kept = backups(&db);
    assert_eq!(kept.len(), 1);
    assert_eq!(version(&kept[0]), "1.6");
    assert_eq!(count(&kept[0], "notes"), 3);
    drop(before);

    // Converged: a second run has nothing to do.
    let again = env
        .run(&["--db", "project", "--to-schema", &target_arg()])
        .expect(0)
        .stdout();
    assert!(again.contains("current 1.9"), "{again}");
    assert_eq!(backups(&db).len(), 1);
}

#[test]
fn a_dry_run_prints_the_generated_sql_and_changes_nothing() {
    let env = Env::new();
    old_project(&env);
    let before = env.files();
    let out = env
        .run(&["--db", "project", "--to-schema", &target_arg(), "--dry-run"])
        .expect(0)
        .stdout();
    for expected in [
        "would migrate 1.6 -> 1.9",
        "converge to v1.9",
        "notes rebuilt (CHECK changed)",
        "tasks rebuilt (column priority changed)",
        "project: + column goal",
        "+ table modules",
        "- table scratchpad (dropped)",
        "+ FTS notes_fts (built from 3 row(s) of notes)",
        "ALTER TABLE \"aifp_migrate_new_notes\" RENAME TO \"notes\"",
        "INSERT INTO \"notes_fts\"(\"notes_fts\") VALUES ('rebuild')",
    ] {
        assert!(out.contains(expected), "{expected:?} not in:\n{out}");
    }
    assert!(env.files() == before, "a dry run changed a file");
}

#[test]
fn a_plan_that_drops_data_is_refused_whole_and_runs_with_allow_data_loss() {
    let env = Env::new();
    let db = old_project(&env);
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "INSERT INTO scratchpad (body) VALUES ('keep me'), ('me too');
         UPDATE tasks SET legacy_flag = 'x' WHERE id = 1;",
    )
    .unwrap();
    drop(conn);
    // The target without `legacy_flag` (values) and without `scratchpad` (rows).
    let target = env.tmp.path().join("smaller.sql");
    let text = std::fs::read_to_string(converge_fixture("to.sql"))
        .unwrap()
        .replace(",\n    legacy_flag TEXT\n", "\n");
    std::fs::write(&target, text).unwrap();
    let target = target.display().to_string();
    let before = env.files();

    let err = env
        .run(&["--db", "project", "--to-schema", &target])
        .expect(1)
        .stderr();
    assert_eq!(err.lines().count(), 1, "{err}");
    for expected in [
        "table scratchpad (2 row(s)) dropped",
        "column tasks.legacy_flag (1 value(s)) dropped",
        "nothing was changed",
        "--allow-data-loss",
    ] {
        assert!(err.contains(expected), "{expected:?} not in {err}");
    }
    assert!(env.files() == before, "a refused plan changed a file");
    assert!(backups(&db).is_empty());

    let json = env
        .run(&[
            "--db",
            "project",
            "--to-schema",
            &target,
            "--allow-data-loss",
            "--format",
            "json",
        ])
        .expect(0)
        .json();
    let account = &json["databases"][0]["account"];
    assert_eq!(account["lost"].as_array().unwrap().len(), 2, "{account}");
    let backup = PathBuf::from(account["kept_in"].as_str().unwrap());
    assert_eq!(
        count(&backup, "scratchpad"),
        2,
        "the backup keeps what was dropped"
    );
    assert_eq!(
        scalar(
            &backup,
            "SELECT count(*) FROM tasks WHERE id = 1 AND legacy_flag = 'x'"
        ),
        1
    );
    assert_eq!(differences(Path::new(&target), &db), Vec::<String>::new());
}

#[test]
fn rows_a_tighter_constraint_rejects_are_named_and_nothing_is_written() {
    let env = Env::new();
    let db = old_project(&env);
    Connection::open(&db)
        .unwrap()
        .execute_batch("INSERT INTO tasks (id, title) VALUES (3, 'a'), (4, 'b')")
        .unwrap();
    let target = env.tmp.path().join("strict.sql");
    let text = std::fs::read_to_string(converge_fixture("to.sql"))
        .unwrap()
        .replace(
            "    legacy_flag TEXT\n",
            "    legacy_flag TEXT NOT NULL DEFAULT ''\n",
        );
    std::fs::write(&target, text).unwrap();
    let before = env.files();
    let err = env
        .run(&[
            "--db",
            "project",
            "--to-schema",
            &target.display().to_string(),
        ])
        .expect(1)
        .stderr();
    assert!(
        err.contains(
            "4 row(s) of table tasks break the target's NOT NULL on legacy_flag (rowid 1, 2, 3, 4)"
        ),
        "{err}"
    );
    assert!(env.files() == before, "a refused plan changed a file");
    assert!(backups(&db).is_empty());
}

#[test]
fn repair_brings_a_drifted_database_back_to_its_versions_schema() {
    let env = Env::new();
    let db = env.init_db("project");
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "INSERT INTO project (name, purpose, goals_json) VALUES ('demo', 'p', '[]');
             ALTER TABLE project ADD COLUMN hand_made TEXT;
             DROP INDEX IF EXISTS idx_files_path;",
        )
        .unwrap();
    let check = env.run(&["--check", "--db", "project"]).expect(3).stdout();
    assert!(
        check.contains("drift: table project: column hand_made not expected"),
        "{check}"
    );
    assert!(
        check.contains("aifp-migrate --db project --repair"),
        "{check}"
    );

    env.run(&["--db", "project", "--repair"]).expect(0);
    assert_eq!(version(&db), "1.0");
    let json = env
        .run(&["--check", "--db", "project", "--format", "json"])
        .json();
    assert_eq!(
        json["databases"][0]["drift"],
        serde_json::json!([]),
        "{json}"
    );
    assert_eq!(count(&db, "project"), 1);
}

#[test]
fn scripts_run_first_and_the_rest_of_the_way_is_converged() {
    let env = Env::new();
    let db = env.init_db("project");
    Connection::open(&db)
        .unwrap()
        .execute_batch("INSERT INTO project (name, purpose, goals_json) VALUES ('demo', 'p', '[]')")
        .unwrap();
    // The target: the set's 1.2 schema plus a table, at 1.3.
    let at_1_2 = aifp_migrate::scratch::replay(
        &aifp_migrate::catalog::load(
            &aifp_migrate::catalog::Root::Dir(env.migrations.clone()),
            "project",
        )
        .unwrap(),
        &"1.2".parse().unwrap(),
    )
    .unwrap();
    let mut text = String::new();
    let mut stmt = at_1_2
        .prepare("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'")
        .unwrap();
    for sql in stmt.query_map([], |r| r.get::<_, String>(0)).unwrap() {
        text.push_str(&sql.unwrap());
        text.push_str(";\n");
    }
    text.push_str("CREATE TABLE modules (id INTEGER PRIMARY KEY, name TEXT);\n");
    text.push_str("INSERT INTO schema_version (id, version) VALUES (1, '1.3');\n");
    let target = env.tmp.path().join("v13.sql");
    std::fs::write(&target, text).unwrap();

    let json = env
        .run(&[
            "--db",
            "project",
            "--to-schema",
            &target.display().to_string(),
            "--format",
            "json",
        ])
        .expect(0)
        .json();
    let kinds: Vec<&str> = json["databases"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["script", "script", "converge"], "{json}");
    assert_eq!(version(&db), "1.3");
    assert_eq!(differences(&target, &db), Vec::<String>::new());
    assert_eq!(count(&db, "project"), 1);
}

#[test]
fn the_core_step_that_drops_notes_is_refused_while_notes_has_rows() {
    let env = Env::new();
    env.init_all();
    Connection::open(env.db("aifp_core"))
        .unwrap()
        .execute_batch("INSERT INTO notes (content) VALUES ('a note the user wrote'), ('another');")
        .unwrap();
    let before = env.files();
    let err = env.run(&["--all"]).expect(1).stderr();
    let core = env.db("aifp_core").display().to_string();
    assert!(err.contains("table notes (2 row(s)) dropped"), "{err}");
    assert!(
        err.contains(&format!("the data is still in {core}")),
        "where the notes are kept: {err}"
    );
    assert!(
        env.files() == before,
        "the project was migrated without the core"
    );

    let out = env.run(&["--all", "--allow-data-loss"]).expect(0).stdout();
    let backup = backups(&env.db("aifp_core"));
    assert_eq!(count(&backup[0], "notes"), 2, "the backup keeps the notes");
    assert!(
        out.contains(&format!(
            "table notes (2 row(s)) dropped; kept in {}",
            backup[0].display()
        )),
        "{out}"
    );
}

#[test]
fn a_script_that_renames_keeps_its_data_and_its_views_follow() {
    let env = Env::new();
    let db = env.init_db("project");
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "INSERT INTO project (name, purpose, goals_json) VALUES ('demo', 'p', '[]');
             CREATE VIEW project_names AS SELECT name FROM project;",
        )
        .unwrap();
    std::fs::write(
        env.migrations.join("project/v1.2_to_v1.3_rename.sql"),
        "-- Renames.\nALTER TABLE project RENAME COLUMN name TO title;\nALTER TABLE project RENAME TO projects;\n",
    )
    .unwrap();
    env.run(&["--db", "project"]).expect(0);
    assert_eq!(version(&db), "1.3");
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM project_names WHERE title = 'demo'"
        ),
        1,
        "the view follows the renamed table and column"
    );
}

#[test]
fn a_step_that_leaves_a_view_naming_a_dropped_table_fails_and_names_it() {
    let env = Env::new();
    let db = env.init_db("project");
    Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE VIEW every_project AS SELECT * FROM project;")
        .unwrap();
    std::fs::write(
        env.migrations.join("project/v1.2_to_v1.3_dangling.sql"),
        "-- Drops the table the view reads.\nPRAGMA legacy_alter_table = ON;\nALTER TABLE project RENAME TO gone;\nDROP TABLE gone;\n",
    )
    .unwrap();
    let before = env.files();
    let err = env.run(&["--db", "project"]).expect(1).stderr();
    assert!(err.contains("error in view every_project"), "{err}");
    assert!(err.contains("v1.2_to_v1.3_dangling.sql"), "{err}");
    assert!(env.files() == before, "a failed run changed a file");
}

#[test]
fn a_scripted_rebuild_never_lowers_the_autoincrement_high_water_mark() {
    let env = Env::new();
    let db = env.init_db("project");
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE counters (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT);
         INSERT INTO counters (v) VALUES ('a'), ('b'), ('c');
         DELETE FROM counters WHERE id = 3;",
    )
    .unwrap();
    drop(conn);
    // Steps 3 to 10 of the 12-step rebuild, as a script writes them.
    std::fs::write(
        env.migrations.join("project/v1.2_to_v1.3_rebuild.sql"),
        "-- Rebuilds counters.\nCREATE TABLE new_counters (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT NOT NULL DEFAULT '');\nINSERT INTO new_counters (id, v) SELECT id, v FROM counters;\nDROP TABLE counters;\nALTER TABLE new_counters RENAME TO counters;\n",
    )
    .unwrap();
    env.run(&["--db", "project"]).expect(0);
    assert_eq!(
        scalar(
            &db,
            "SELECT seq FROM sqlite_sequence WHERE name = 'counters'"
        ),
        3
    );
    Connection::open(&db)
        .unwrap()
        .execute_batch("INSERT INTO counters (v) VALUES ('d')")
        .unwrap();
    assert_eq!(
        scalar(&db, "SELECT max(id) FROM counters"),
        4,
        "id 3 was handed out again"
    );
}

#[test]
fn a_script_that_fails_on_a_drifted_database_names_the_drift_and_repair() {
    let env = Env::new();
    let db = env.init_db("project");
    // Drift: a hand-made table in the way of the next script's.
    Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE work_branches (x);")
        .unwrap();
    let before = env.files();
    let err = env.run(&["--db", "project"]).expect(1).stderr();
    assert!(err.contains("work_branches"), "{err}");
    assert!(err.contains("drifted"), "{err}");
    assert!(err.contains("aifp-migrate --db project --repair"), "{err}");
    assert!(env.files() == before);
}
