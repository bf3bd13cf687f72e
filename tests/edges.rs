//! Edges of the contract that a review found: each a way a careful user could be misled.

mod common;

use common::*;
use rusqlite::Connection;

#[test]
fn rows_that_already_break_a_foreign_key_never_block_a_migration_and_are_kept_and_counted() {
    let env = Env::new();
    env.init_all();
    Connection::open(env.db("project"))
        .unwrap()
        .execute_batch(
            "PRAGMA foreign_keys = OFF; INSERT INTO files (path, project_id) VALUES ('a.py', 42);",
        )
        .unwrap();
    let json = env.run(&["--all", "--format", "json"]).expect(0).json();
    let project = &json["databases"][1];
    assert_eq!(project["status"], "migrated", "{json}");
    let broken = &project["account"]["broken_before"][0];
    assert_eq!(broken["table"], "files");
    assert_eq!(broken["parent"], "project");
    assert_eq!(broken["rows"], 1);
    assert_eq!(version(&env.db("project")), "1.2");
    let kept: i64 = Connection::open(env.db("project"))
        .unwrap()
        .query_row(
            "SELECT count(*) FROM files WHERE path = 'a.py' AND project_id = 42",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kept, 1, "the orphan row was deleted");
}

#[test]
fn a_step_that_adds_a_new_foreign_key_violation_still_fails_beside_old_ones() {
    let env = Env::new();
    env.init_all();
    Connection::open(env.db("project"))
        .unwrap()
        .execute_batch(
            "PRAGMA foreign_keys = OFF; INSERT INTO files (path, project_id) VALUES ('a.py', 42);",
        )
        .unwrap();
    std::fs::write(
        env.migrations.join("project/v1.2_to_v1.3_orphan.sql"),
        "-- Adds an orphan.\nINSERT INTO files (path, project_id) VALUES ('b.py', 43);\n",
    )
    .unwrap();
    let before = env.files();
    let err = env.run(&["--all"]).expect(1).stderr();
    assert!(err.contains("1 row(s) break a foreign key"), "{err}");
    assert!(env.files() == before, "a failed run changed a file");
}

#[test]
fn restoring_twice_does_not_undo_the_first_restore() {
    let env = Env::new();
    let db = env.init_db("project");
    env.run(&["--db", "project"]).expect(0);
    env.run(&["--db", "project", "--restore"]).expect(0);
    assert_eq!(version(&db), "1.0");
    env.run(&["--db", "project", "--restore"]).expect(0);
    assert_eq!(
        version(&db),
        "1.0",
        "the second restore put the upgrade back"
    );
}

#[test]
fn a_restore_from_another_databases_file_is_refused() {
    let env = Env::new();
    env.init_all();
    let other = env.db("user_preferences").display().to_string();
    let before = env.files();
    let run = env
        .run(&["--db", "project", "--restore", "--from", &other])
        .expect(1);
    assert!(
        run.stderr().contains("it is not a project database"),
        "{}",
        run.stderr()
    );
    assert!(env.files() == before, "a refused restore changed a file");
}

#[test]
fn restore_all_after_a_stamp_puts_back_the_last_migrating_run() {
    let env = Env::new();
    env.init_all();
    env.run(&["--all"]).expect(0);
    env.run(&["--db", "project", "--stamp", "1.2"]).expect(0); // already 1.2: nothing to do
    Connection::open(env.db("project"))
        .unwrap()
        .execute_batch("UPDATE schema_version SET version = '1.1'")
        .unwrap();
    env.run(&["--db", "project", "--stamp", "1.2"]).expect(0); // now a real stamp
    let json = env
        .run(&["--all", "--restore", "--format", "json"])
        .expect(0)
        .json();
    let names: Vec<&str> = json["restored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["aifp_core", "project"], "{json}");
    assert_eq!(version(&env.db("project")), "1.0");
    assert_eq!(version(&env.db("aifp_core")), "1.0");
}

#[test]
fn init_records_the_version_even_when_the_initial_schema_does_not() {
    let env = Env::new();
    std::fs::write(
        env.migrations
            .join("user_preferences/v1.0_initial_schema.sql"),
        "-- A schema that leaves the version row to the tool.\nCREATE TABLE a (x);\n",
    )
    .unwrap();
    env.run(&["--init", "--db", "user_preferences"]).expect(0);
    assert_eq!(version(&env.db("user_preferences")), "1.0");
    env.run(&["--check", "--db", "user_preferences"]).expect(0);
}

#[test]
fn a_typo_in_the_set_of_a_missing_database_is_not_skipped() {
    let env = Env::new();
    env.init_db("project");
    std::fs::write(
        env.migrations.join("user_directives/v1.0_to_v1.1-typo.sql"),
        "SELECT 1;\n",
    )
    .unwrap();
    let before = env.files();
    let run = env.run(&["--all"]).expect(1);
    assert!(
        run.stderr().contains("v1.0_to_v1.1-typo.sql"),
        "{}",
        run.stderr()
    );
    assert!(env.files() == before);
    let json = env.run(&["--check", "--format", "json"]).expect(1).json();
    assert_eq!(json["databases"][3]["status"], "error");
}

#[test]
fn a_failed_rehearsal_says_so_on_stderr_about_the_real_database() {
    let env = Env::new();
    std::fs::write(
        env.migrations.join("project/v1.2_to_v1.3_fails.sql"),
        "-- Fails.\nINSERT INTO no_such_table VALUES (1);\n",
    )
    .unwrap();
    let db = env.init_db("project");
    let run = env.run(&["--db", "project", "--rehearse"]).expect(1);
    let err = run.stderr();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&db.display().to_string()), "{err}");
    assert!(err.contains("the database itself was not touched"), "{err}");
    assert!(
        !err.contains("aifp-migrate-rehearsal-"),
        "names the copy: {err}"
    );
}
