//! The core behaviour, run through the real binary and checked on disk: discovery, check, dry run,
//! migrating up and down, all-or-nothing failures, table rebuilds, backups.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use rusqlite::Connection;

/// Adds a project row, a file, a task with items, and a note, so migrations run on data.
fn seed_project(path: &Path) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "INSERT INTO project (name, purpose, goals_json) VALUES ('demo', 'test', '[]');
         INSERT INTO files (path, project_id) VALUES ('src/main.rs', 1);
         INSERT INTO completion_path (name, order_index, project_id) VALUES ('first', 1, 1);
         INSERT INTO milestones (completion_path_id, name) VALUES (1, 'm1');
         INSERT INTO tasks (milestone_id, name) VALUES (1, 't1');
         INSERT INTO items (reference_table, reference_id, name) VALUES ('tasks', 1, 'i1');
         INSERT INTO notes (content, note_type) VALUES ('remember this', 'decision');",
    )
    .unwrap();
}

fn add_step(env: &Env, fixture_file: &str) {
    let from = fixture("steps").join(fixture_file);
    std::fs::copy(from, env.migrations.join("project").join(fixture_file)).unwrap();
}

#[test]
fn check_walks_up_from_a_deep_folder_to_the_project() {
    let env = Env::new();
    env.init_all();
    let deep = env.project.join("src/a/b/c");
    std::fs::create_dir_all(&deep).unwrap();
    let run = Run(env
        .cmd_in(&deep)
        .args(["--check", "--format", "json"])
        .output()
        .unwrap())
    .expect(3);
    let json = run.json();
    let dbs = json["databases"].as_array().unwrap();
    let names: Vec<&str> = dbs.iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "aifp_core",
            "project",
            "user_preferences",
            "user_directives"
        ]
    );
    assert_eq!(
        dbs[1]["path"],
        env.db("project")
            .canonicalize()
            .unwrap()
            .display()
            .to_string()
    );
    assert_eq!(dbs[1]["status"], "pending");
    assert_eq!(dbs[1]["current"], "1.0");
    assert_eq!(dbs[1]["latest"], "1.2");
    assert_eq!(
        dbs[1]["pending"][0]["script"],
        "v1.0_to_v1.1_git_integration.sql"
    );
    assert_eq!(dbs[1]["pending"][1]["from"], "1.1");
    assert_eq!(dbs[2]["status"], "current");
    assert_eq!(dbs[0]["path"], env.db("aifp_core").display().to_string());
}

#[test]
fn the_nearest_project_folder_wins() {
    let env = Env::new();
    env.init_db("project");
    let inner = env.project.join("packages/inner");
    std::fs::create_dir_all(inner.join(".aifp-project")).unwrap();
    let inner_db = inner.join(".aifp-project/project.db");
    std::fs::copy(env.db("project"), &inner_db).unwrap();
    let below = inner.join("src");
    std::fs::create_dir_all(&below).unwrap();

    Run(env
        .cmd_in(&below)
        .args(["--db", "project"])
        .output()
        .unwrap())
    .expect(0);
    assert_eq!(version(&inner_db), "1.2");
    assert_eq!(
        version(&env.db("project")),
        "1.0",
        "the outer project was touched"
    );

    // --project-dir starts the search elsewhere.
    let outer = env.project.display().to_string();
    Run(env
        .cmd_in(&below)
        .args(["--db", "project", "--project-dir", &outer])
        .output()
        .unwrap())
    .expect(0);
    assert_eq!(version(&env.db("project")), "1.2");
}

#[test]
fn check_and_dry_run_write_nothing() {
    let env = Env::new();
    env.init_all();
    let before = env.files();
    let check = env.run(&["--check"]).expect(3);
    assert!(check.stdout().contains("pending"), "{}", check.stdout());
    env.run(&["--check", "--format", "json"]).expect(3);
    let dry = env.run(&["--all", "--dry-run", "-v"]).expect(0);
    // The plan names the scripts and shows their SQL.
    assert!(
        dry.stdout().contains("v1.1_to_v1.2_notes_enhancement.sql"),
        "{}",
        dry.stdout()
    );
    assert!(
        dry.stdout().contains("ALTER TABLE notes ADD COLUMN"),
        "{}",
        dry.stdout()
    );
    let json = env
        .run(&["--db", "project", "--dry-run", "--format", "json"])
        .expect(0)
        .json();
    assert_eq!(json["databases"][0]["status"], "planned");
    let sql = json["databases"][0]["steps"][0]["sql"]
        .as_str()
        .unwrap_or_default();
    assert!(
        sql.contains("ALTER TABLE project ADD COLUMN"),
        "the plan lacks its scripts"
    );
    assert_eq!(json["databases"][0]["backup"], serde_json::Value::Null);
    assert_eq!(
        env.files(),
        before,
        "a read-only mode changed or created a file"
    );
}

#[test]
fn all_migrates_everything_once_and_a_second_run_changes_nothing() {
    let env = Env::new();
    env.init_all();
    seed_project(&env.db("project"));
    let rows_before = count(&env.db("project"), "notes");

    let run = env.run(&["--all", "--format", "json"]).expect(0);
    let json = run.json();
    let project = &json["databases"][1];
    assert_eq!(project["status"], "migrated");
    assert_eq!(project["from"], "1.0");
    assert_eq!(project["to"], "1.2");
    assert_eq!(project["steps"].as_array().unwrap().len(), 2);
    assert_eq!(json["databases"][2]["status"], "current");
    assert_eq!(json["databases"][2]["backup"], serde_json::Value::Null);

    let db = env.db("project");
    assert_eq!(version(&db), "1.2");
    assert_eq!(version(&env.db("aifp_core")), "1.1");
    assert_eq!(count(&db, "notes"), rows_before);
    let severity: String = open(&db)
        .query_row("SELECT severity FROM notes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(severity, "info");
    let backup_list = backups(&db);
    assert_eq!(backup_list.len(), 1);
    assert_eq!(project["backup"], backup_list[0].display().to_string());
    assert_eq!(version(&backup_list[0]), "1.0");
    assert!(
        backups(&env.db("user_preferences")).is_empty(),
        "backup made with nothing pending"
    );

    let after_first = env.files();
    let second = env.run(&["--all"]).expect(0);
    assert!(
        second.stdout().contains("current 1.2"),
        "{}",
        second.stdout()
    );
    assert_eq!(
        env.files(),
        after_first,
        "the second --all changed something"
    );
    env.run(&["--check"]).expect(0);
}

#[test]
fn going_down_to_1_0_restores_the_original_schema_and_keeps_the_rows() {
    let env = Env::new();
    let db = env.init_db("project");
    seed_project(&db);
    let original = schema(&db);
    let rows = contents(&db);

    env.run(&["--db", "project"]).expect(0);
    assert_ne!(schema(&db), original);
    // The rollback drops columns that hold values (their defaults): refused, nothing changed.
    let at_1_2 = contents(&db);
    let err = env
        .run(&["--db", "project", "--rollback"])
        .expect(1)
        .stderr();
    assert!(
        err.contains("would lose data: column notes.source"),
        "{err}"
    );
    assert_eq!(contents(&db), at_1_2);
    assert_eq!(backups(&db).len(), 1, "a refused run keeps no backup");
    let json = env
        .run(&[
            "--db",
            "project",
            "--rollback",
            "--allow-data-loss",
            "--format",
            "json",
        ])
        .expect(0)
        .json();
    let lost = &json["databases"][0]["account"]["lost"];
    assert_eq!(lost[0]["what"], "column", "{json}");
    assert_eq!(lost[0]["table"], "notes");
    assert!(json["databases"][0]["account"]["kept_in"].is_string());
    assert_eq!(version(&db), "1.1");
    env.run(&["--db", "project", "--target", "1.0", "--allow-data-loss"])
        .expect(0);
    assert_eq!(version(&db), "1.0");
    assert_eq!(schema(&db), original);
    // Every row is back, except the version row's timestamp, which records the change.
    assert_eq!(
        without_version_row(contents(&db)),
        without_version_row(rows)
    );
    assert_eq!(backups(&db).len(), 3);
    let updated: String = open(&db)
        .query_row("SELECT updated_at FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert!(updated.starts_with("20"), "updated_at not set: {updated}");
}

/// A row that breaks a CHECK constraint (written while an application had them switched off) is
/// data, not damage: the database is migrated, not refused with "restore a backup", the row is
/// kept as it was, and the backup holding it restores without being called damaged.
#[test]
fn a_row_that_breaks_a_check_constraint_is_not_taken_for_damage() {
    let env = Env::new();
    let db = env.init_db("project");
    seed_project(&db);
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "PRAGMA ignore_check_constraints = ON;
         UPDATE project SET user_directives_status = 'paused' WHERE id = 1;
         PRAGMA ignore_check_constraints = OFF;",
    )
    .unwrap();
    let found: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .unwrap();
    assert!(found.contains("CHECK constraint failed"), "{found}");
    drop(conn);

    let run = env.run(&["--db", "project"]).expect(0);
    assert_eq!(version(&db), "1.2", "{}", run.stdout());
    assert_eq!(backups(&db).len(), 1);
    let conn = Connection::open(&db).unwrap();
    let status: String = conn
        .query_row("SELECT user_directives_status FROM project", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(status, "paused");
    let columns: i64 = conn
        .query_row(
            "SELECT count(*) FROM pragma_table_info('notes') WHERE name = 'severity'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(columns, 1);
    drop(conn);

    env.run(&["--db", "project", "--restore"]).expect(0);
    assert_eq!(version(&db), "1.0");
    let status: String = Connection::open(&db)
        .unwrap()
        .query_row("SELECT user_directives_status FROM project", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(status, "paused");
}

#[test]
fn a_step_failing_mid_chain_leaves_the_database_as_it_was() {
    let env = Env::new();
    add_step(&env, "v1.2_to_v1.3_fails_midway.sql");
    let db = env.init_db("project");
    seed_project(&db);
    let (schema_before, rows_before) = (schema(&db), contents(&db));

    let run = env.run(&["--all"]).expect(1);
    let err = run.stderr();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&db.display().to_string()), "{err}");
    assert!(
        err.contains("v1.2_to_v1.3_fails_midway.sql line 6"),
        "{err}"
    );
    assert!(err.contains("no such table: no_such_table"), "{err}");
    assert_eq!(version(&db), "1.0");
    assert_eq!(schema(&db), schema_before);
    assert_eq!(contents(&db), rows_before);
    assert!(backups(&db).is_empty(), "a failed run left its backup");
    let check: String = open(&db)
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn a_failure_anywhere_in_a_project_leaves_every_database_of_the_run_as_it_was() {
    let env = Env::new();
    add_step(&env, "v1.2_to_v1.3_fails_midway.sql");
    env.init_all();
    // user_directives comes after project: make it pending too with an extra step of its own.
    std::fs::write(
        env.migrations
            .join("user_directives/v1.0_to_v1.1_extra.sql"),
        "-- Adds a column.\nALTER TABLE source_files ADD COLUMN extra TEXT;\n",
    )
    .unwrap();
    let before: Vec<_> = ["aifp_core", "project", "user_directives"]
        .iter()
        .map(|n| (schema(&env.db(n)), contents(&env.db(n))))
        .collect();
    let json = env.run(&["--all", "--format", "json"]).expect(1).json();
    let status: Vec<&str> = json["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap())
        .collect();
    // The core's step succeeded, then the project's failed: the core is rolled back with it.
    assert_eq!(status, ["skipped", "failed", "current", "skipped"]);
    assert!(json["databases"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("rolled back, unchanged: project failed"));
    let after: Vec<_> = ["aifp_core", "project", "user_directives"]
        .iter()
        .map(|n| (schema(&env.db(n)), contents(&env.db(n))))
        .collect();
    assert!(before == after, "a database of the failed run was changed");
    assert_eq!(version(&env.db("aifp_core")), "1.0");
    for name in ["aifp_core", "project", "user_directives"] {
        assert!(backups(&env.db(name)).is_empty(), "{name} kept a backup");
    }
}

#[test]
fn a_script_that_writes_another_version_fails_the_step() {
    let env = Env::new();
    add_step(&env, "v1.2_to_v1.3_sets_version.sql");
    let db = env.init_db("project");
    let before = schema(&db);
    let err = env.run(&["--db", "project"]).expect(1).stderr();
    assert!(err.contains("set schema_version to 9.9"), "{err}");
    assert_eq!(version(&db), "1.0");
    assert_eq!(schema(&db), before);
}

#[test]
fn a_step_that_breaks_a_foreign_key_fails_before_commit() {
    let env = Env::new();
    add_step(&env, "v1.2_to_v1.3_breaks_foreign_keys.sql");
    let db = env.init_db("project");
    seed_project(&db);
    let rows = contents(&db);
    let err = env.run(&["--db", "project"]).expect(1).stderr();
    assert!(
        err.contains("break a foreign key (first: table files"),
        "{err}"
    );
    assert!(
        err.contains("v1.2_to_v1.3_breaks_foreign_keys.sql"),
        "{err}"
    );
    assert_eq!(version(&db), "1.0");
    assert_eq!(contents(&db), rows);
}

/// Seeds the rebuild fixture: 3 tasks, each with 2 subtasks (ON DELETE CASCADE) and an item.
fn seed_rebuild(path: &Path) {
    let conn = Connection::open(path).unwrap();
    for t in 1..=3 {
        conn.execute("INSERT INTO tasks (id, name) VALUES (?1, 'task')", [t])
            .unwrap();
        for _ in 0..2 {
            conn.execute(
                "INSERT INTO subtasks (parent_task_id, name) VALUES (?1, 'sub')",
                [t],
            )
            .unwrap();
        }
        conn.execute(
            "INSERT INTO items (reference_table, reference_id, name) VALUES ('tasks', ?1, 'item')",
            [t],
        )
        .unwrap();
    }
}

#[test]
fn rebuilding_a_parent_table_keeps_its_cascading_children_and_works_past_views_and_triggers() {
    let env = Env::with_sets(&fixture("rebuild"));
    let db = env.init_db("project");
    seed_rebuild(&db);
    assert_eq!(count(&db, "subtasks"), 6);

    env.run(&["--db", "project"]).expect(0);
    assert_eq!(version(&db), "1.2");
    assert_eq!(
        count(&db, "subtasks"),
        6,
        "the rebuild of tasks cascaded into subtasks"
    );
    assert_eq!(count(&db, "items"), 3);
    assert_eq!(count(&db, "task_items"), 3, "the view no longer works");

    // The rebuilt tables have their new shape, and the trigger and foreign keys still act.
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    assert!(conn
        .execute("UPDATE tasks SET status = 'bogus' WHERE id = 1", [])
        .is_err());
    conn.execute("DELETE FROM tasks WHERE id = 1", []).unwrap();
    assert_eq!(count(&db, "subtasks"), 4);
    assert_eq!(count(&db, "items"), 2);
    let fk: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(fk, 0);
}

#[test]
fn the_same_rebuild_without_the_tools_precautions_loses_rows_or_fails() {
    // Proof that the test above can fail: run the fixture's scripts the naive way.
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("p.db");
    let dir = fixture("rebuild").join("project");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(&read("v1.0_initial_schema.sql"))
        .unwrap();
    seed_rebuild(&db);
    conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    let first = conn.execute_batch(&format!(
        "BEGIN; {} COMMIT;",
        read("v1.0_to_v1.1_rebuild_tasks.sql")
    ));
    let _ = conn.execute_batch("ROLLBACK");
    assert!(first.is_err() || count(&db, "subtasks") < 6);
}

#[test]
fn backups_keep_the_database_mode_and_never_overwrite_each_other() {
    let env = Env::new();
    let db = env.init_db("project");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o640)).unwrap();
    // Three migrations within a second or two: names must stay distinct.
    env.run(&["--db", "project"]).expect(0);
    env.run(&["--db", "project", "--target", "1.0"]).expect(0);
    env.run(&["--db", "project"]).expect(0);
    let list = backups(&db);
    assert_eq!(list.len(), 3, "{list:?}");
    let versions: Vec<String> = list.iter().map(|b| version(b)).collect();
    let mut sorted = versions.clone();
    sorted.sort();
    assert_eq!(sorted, ["1.0", "1.0", "1.2"]);
    for b in &list {
        let mode = std::fs::metadata(b).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "{}", b.display());
        let name = b.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!name.contains(".tmp"), "a temporary file was left: {name}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("aifp-migrate-backup"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary backup files left: {leftovers:?}"
    );
}

#[test]
fn quiet_prints_only_what_changed_and_text_output_names_the_backup() {
    let env = Env::new();
    env.init_all();
    // A quiet check is one line per database to migrate (tests/hook.rs has the details).
    let out = env.run(&["--check", "-q"]).expect(3).stdout();
    assert_eq!(out.lines().count(), 2, "{out}");
    let out = env.run(&["--all", "-q"]).expect(0).stdout();
    let db = env.db("project");
    assert!(
        out.contains(&format!("backup {}", backups(&db)[0].display())),
        "{out}"
    );
    assert!(!out.contains("user_preferences"), "{out}");
}

#[test]
fn missing_databases_are_reported_not_errors_for_check_and_all() {
    let env = Env::new();
    env.init_db("project");
    let json = env.run(&["--check", "--format", "json"]).expect(3).json();
    assert_eq!(json["databases"][0]["status"], "missing");
    assert_eq!(json["databases"][3]["status"], "missing");
    let json = env.run(&["--all", "--format", "json"]).expect(0).json();
    assert_eq!(json["databases"][0]["status"], "missing");
    assert_eq!(json["databases"][1]["status"], "migrated");
    assert!(
        !env.db("aifp_core").exists(),
        "a missing database was created"
    );

    // Outside any project: everything per-project is missing, and nothing is created.
    let elsewhere = env.tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let run = Run(env
        .cmd_in(&elsewhere)
        .args(["--check", "--format", "json"])
        .output()
        .unwrap());
    let json = run.expect(0).json();
    assert_eq!(json["databases"][1]["path"], serde_json::Value::Null);
    assert_eq!(json["databases"][1]["status"], "missing");
    assert!(!elsewhere.join(".aifp-project").exists());
}

#[test]
fn the_rendered_check_and_plan_read_as_reviewed() {
    let env = Env::new();
    env.init_all();
    let tmp = env.tmp.path().canonicalize().unwrap().display().to_string();
    let tidy = |s: String| s.replace(&tmp, "[TMP]");
    insta::assert_snapshot!("check_text", tidy(env.run(&["--check"]).expect(3).stdout()));
    insta::assert_snapshot!(
        "dry_run_text",
        tidy(env.run(&["--all", "--dry-run", "-v"]).expect(0).stdout())
    );
    insta::assert_snapshot!(
        "check_json",
        tidy(env.run(&["--check", "--format", "json"]).expect(3).stdout())
    );
}

#[test]
fn a_damaged_drift_cache_costs_time_not_correctness() {
    let env = Env::new();
    env.init_all();
    env.run(&["--all"]).expect(0);
    env.run(&["--check"]).expect(0);
    let folder = env.cache.path().join("aifp-migrate");
    let files: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 4, "one cache file per set: {files:?}");
    for f in &files {
        std::fs::write(f, b"{ not json").unwrap();
    }
    Connection::open(env.db("project"))
        .unwrap()
        .execute_batch("ALTER TABLE notes ADD COLUMN by_hand TEXT")
        .unwrap();
    let json = env.run(&["--check", "--format", "json"]).expect(0).json();
    assert_eq!(
        json["databases"][1]["drift"][0],
        "table notes: column by_hand not expected (TEXT)"
    );
    assert_eq!(json["databases"][0]["drift"].as_array().unwrap().len(), 0);
    // The rewritten cache answers the same.
    let again = env.run(&["--check", "--format", "json"]).expect(0).json();
    assert_eq!(again, json);
}
