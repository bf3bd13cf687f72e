//! The safety net, through the real binary and checked on disk: restore (newest, --from, --all),
//! backup listing and pruning, and the history of applied scripts.

mod common;

use std::path::Path;

use common::*;
use rusqlite::Connection;

fn add_note(db: &Path, text: &str) {
    Connection::open(db)
        .unwrap()
        .execute(
            "INSERT INTO notes (content, note_type) VALUES (?1, 'info')",
            [text],
        )
        .unwrap();
}

/// One history row: run id, direction, from, to, script, backup.
type Row = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn history(db: &Path) -> Vec<Row> {
    let conn = open(db);
    let mut stmt = conn
        .prepare(
            "SELECT run_id, direction, from_version, to_version, script, backup
             FROM aifp_migrate_history ORDER BY id",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

#[test]
fn each_applied_step_is_recorded_in_the_same_database_with_its_script_hash() {
    let env = Env::new();
    let db = env.init_db("project");
    env.run(&["--db", "project"]).expect(0);
    let rows = history(&db);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let backup = backups(&db)[0].display().to_string();
    assert_eq!(rows[0].1, "up");
    assert_eq!(
        (rows[0].2.as_deref(), rows[0].3.as_deref()),
        (Some("1.0"), Some("1.1"))
    );
    assert_eq!(
        rows[0].4.as_deref(),
        Some("v1.0_to_v1.1_git_integration.sql")
    );
    assert_eq!(rows[0].5.as_deref(), Some(backup.as_str()));
    assert_eq!(rows[0].0, rows[1].0, "one run, one run id");
    let (sha, ms): (String, i64) = open(&db)
        .query_row(
            "SELECT sha256, duration_ms FROM aifp_migrate_history ORDER BY id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let script = std::fs::read_to_string(
        env.migrations
            .join("project/v1.0_to_v1.1_git_integration.sql"),
    )
    .unwrap();
    assert_eq!(sha, aifp_migrate::history::sha256(&script));
    assert!(ms >= 0);

    env.run(&["--db", "project", "--rollback"]).expect(0);
    let rows = history(&db);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2].1, "down");
    assert_ne!(rows[2].0, rows[0].0, "a new run has a new id");
}

#[test]
fn a_failed_step_records_nothing() {
    let env = Env::new();
    std::fs::write(
        env.migrations.join("project/v1.2_to_v1.3_broken.sql"),
        "-- Fails.\nINSERT INTO no_such_table VALUES (1);\n",
    )
    .unwrap();
    let db = env.init_db("project");
    env.run(&["--db", "project"]).expect(1);
    let tables: i64 = open(&db)
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'aifp_migrate_history'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0, "the history of a rolled-back run survived");
}

#[test]
fn check_reports_an_applied_script_edited_since_but_is_not_blocked_by_it() {
    let env = Env::new();
    let db = env.init_db("project");
    env.run(&["--db", "project"]).expect(0);
    let script = env
        .migrations
        .join("project/v1.1_to_v1.2_notes_enhancement.sql");
    let text = std::fs::read_to_string(&script).unwrap();
    std::fs::write(&script, format!("{text}\n-- edited after it ran\n")).unwrap();

    let run = env.run(&["--check"]).expect(0);
    assert!(
        run.stdout()
            .contains("v1.1_to_v1.2_notes_enhancement.sql has changed since it was applied"),
        "{}",
        run.stdout()
    );
    let json = env.run(&["--check", "--format", "json"]).expect(0).json();
    let changed = &json["databases"][1]["changed_scripts"];
    assert_eq!(changed.as_array().unwrap().len(), 1, "{json}");
    assert_eq!(changed[0]["script"], "v1.1_to_v1.2_notes_enhancement.sql");
    assert_eq!(changed[0]["direction"], "up");
    assert_ne!(changed[0]["recorded_sha256"], changed[0]["current_sha256"]);
    assert!(json["databases"][0].get("changed_scripts").is_none());
    // Unchanged scripts are not reported, and the database still rolls back fine.
    env.run(&["--db", "project", "--rollback"]).expect(0);
    assert_eq!(version(&db), "1.1");
}

#[test]
fn restore_puts_back_the_newest_backup_and_saves_what_it_replaced() {
    let env = Env::new();
    let db = env.init_db("project");
    add_note(&db, "before the upgrade");
    let before = contents(&db);
    let schema_before = schema(&db);
    env.run(&["--db", "project"]).expect(0);
    add_note(&db, "written after the upgrade");
    let after_upgrade = contents(&db);

    let json = env
        .run(&["--db", "project", "--restore", "--format", "json"])
        .expect(0)
        .json();
    let r = &json["restored"][0];
    assert_eq!(r["from"], "1.2");
    assert_eq!(r["to"], "1.0");
    assert_eq!(version(&db), "1.0");
    assert_eq!(schema(&db), schema_before);
    assert_eq!(
        without_version_row(contents(&db)),
        without_version_row(before)
    );
    let check: String = open(&db)
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");

    // The state it replaced is a backup of its own, so the restore can be undone.
    let saved = r["backup"].as_str().unwrap().to_string();
    assert_eq!(version(Path::new(&saved)), "1.2");
    assert_eq!(contents(Path::new(&saved)), after_upgrade);
    assert_eq!(backups(&db).len(), 2);
    let last = history(&db).pop().unwrap();
    assert_eq!(last.1, "restore");
    assert_eq!(last.5.as_deref(), Some(saved.as_str()));

    env.run(&["--db", "project", "--restore", "--from", &saved])
        .expect(0);
    assert_eq!(version(&db), "1.2");
    assert_eq!(
        without_version_row(contents(&db)),
        without_version_row(after_upgrade)
    );
}

#[test]
fn restore_refuses_a_backup_that_fails_its_integrity_check_and_changes_nothing() {
    let env = Env::new();
    let db = env.init_db("project");
    let bad = env.tmp.path().join("bad.db");
    std::fs::write(&bad, vec![b'x'; 8192]).unwrap();
    let before = env.files();
    let run = env
        .run(&[
            "--db",
            "project",
            "--restore",
            "--from",
            bad.to_str().unwrap(),
        ])
        .expect(1);
    assert!(
        run.stderr().contains("cannot restore from"),
        "{}",
        run.stderr()
    );
    assert_eq!(run.stderr().lines().count(), 1);
    assert!(env.files() == before, "a refused restore changed a file");
    assert_eq!(version(&db), "1.0");
    // No backup at all: says so and changes nothing.
    let run = env.run(&["--db", "project", "--restore"]).expect(1);
    assert!(run.stderr().contains("no backup of"), "{}", run.stderr());
    assert!(
        env.files() == before,
        "a restore without a backup changed a file"
    );
}

#[test]
fn restore_replaces_a_junk_or_missing_database_and_keeps_the_junk() {
    let env = Env::new();
    let db = env.init_db("project");
    env.run(&["--db", "project"]).expect(0);
    let backup = backups(&db)[0].clone();
    std::fs::remove_file(format!("{}-wal", db.display())).ok();
    std::fs::remove_file(format!("{}-shm", db.display())).ok();
    std::fs::write(&db, b"scribbled over by something").unwrap();
    let json = env
        .run(&["--db", "project", "--restore", "--format", "json"])
        .expect(0)
        .json();
    assert_eq!(version(&db), "1.0");
    let saved = json["restored"][0]["backup"].as_str().unwrap().to_string();
    assert_eq!(
        std::fs::read(&saved).unwrap(),
        b"scribbled over by something"
    );

    std::fs::remove_file(&db).unwrap();
    let from = backup.display().to_string();
    env.run(&["--db", "project", "--restore", "--from", &from])
        .expect(0);
    assert_eq!(version(&db), "1.0");
}

#[test]
fn restore_all_puts_back_every_database_the_last_run_changed_and_only_those() {
    let env = Env::new();
    env.init_all();
    // Only project changes in the last run: make aifp_core current first.
    env.run(&["--db", "aifp_core"]).expect(0);
    let core_after = contents(&env.db("aifp_core"));
    let prefs_before = std::fs::read(env.db("user_preferences")).unwrap();
    env.run(&["--all"]).expect(0);
    assert_eq!(version(&env.db("project")), "1.2");

    let json = env
        .run(&["--all", "--restore", "--format", "json"])
        .expect(0)
        .json();
    let restored = json["restored"].as_array().unwrap();
    assert_eq!(restored.len(), 1, "{json}");
    assert_eq!(restored[0]["name"], "project");
    assert_eq!(version(&env.db("project")), "1.0");
    assert_eq!(
        version(&env.db("aifp_core")),
        "1.1",
        "a database the last run did not change was restored"
    );
    assert_eq!(contents(&env.db("aifp_core")), core_after);
    assert_eq!(
        std::fs::read(env.db("user_preferences")).unwrap(),
        prefs_before
    );

    // Restoring is not repeated: the most recent run is now the restore itself.
    let run = env.run(&["--all", "--restore"]).expect(1);
    assert!(
        run.stderr()
            .contains("most recent run was itself a restore"),
        "{}",
        run.stderr()
    );
    assert_eq!(version(&env.db("project")), "1.0");
}

#[test]
fn list_backups_shows_file_time_version_and_size() {
    let env = Env::new();
    env.init_all();
    env.run(&["--all"]).expect(0);
    env.run(&["--db", "project", "--rollback"]).expect(0);
    let json = env
        .run(&["--list-backups", "--format", "json"])
        .expect(0)
        .json();
    let list = json["backups"].as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["aifp_core", "project", "project"]);
    assert_eq!(list[1]["version"], "1.0");
    assert_eq!(list[2]["version"], "1.2");
    for b in list {
        let file = b["file"].as_str().unwrap();
        assert_eq!(
            b["size"].as_u64().unwrap(),
            std::fs::metadata(file).unwrap().len()
        );
        let time = b["time"].as_str().unwrap();
        assert_eq!(time.len(), 19, "{time}");
    }
    let json = env
        .run(&["--list-backups", "--db", "aifp_core", "--format", "json"])
        .expect(0)
        .json();
    assert_eq!(json["backups"].as_array().unwrap().len(), 1);
    let text = env.run(&["--list-backups"]).expect(0).stdout();
    assert_eq!(text.lines().count(), 3, "{text}");
}

#[test]
fn prune_keeps_the_newest_and_never_touches_anything_else() {
    let env = Env::new();
    let db = env.init_db("project");
    env.init_db("aifp_core");
    for _ in 0..2 {
        env.run(&["--db", "project"]).expect(0);
        env.run(&["--db", "project", "--target", "1.0"]).expect(0);
    }
    env.run(&["--db", "aifp_core"]).expect(0);
    let all = backups(&db);
    assert_eq!(all.len(), 4);
    // Look-alikes that are not backups of project.db.
    let folder = db.parent().unwrap();
    let decoys = [
        "project.db.backup_notes.txt",
        "project.db.backup_20261122_013605.bak",
        "old-project.db.backup_20200101_000000",
    ];
    for d in decoys {
        std::fs::write(folder.join(d), "keep me").unwrap();
    }

    let json = env
        .run(&[
            "--prune-backups",
            "--keep",
            "1",
            "--db",
            "project",
            "--format",
            "json",
        ])
        .expect(0)
        .json();
    assert_eq!(json["deleted"].as_array().unwrap().len(), 3);
    let real: Vec<_> = backups(&db)
        .into_iter()
        .filter(|p| !decoys.iter().any(|d| p.ends_with(d)))
        .collect();
    assert_eq!(real, vec![all[3].clone()], "not the newest one kept");
    for d in decoys {
        assert!(folder.join(d).exists(), "{d} was deleted");
    }
    assert_eq!(
        backups(&env.db("aifp_core")).len(),
        1,
        "--db project pruned aifp_core"
    );
    assert_eq!(version(&db), "1.0");

    env.run(&["--prune-backups", "--keep", "0"]).expect(0);
    assert_eq!(
        backups(&db).len(),
        decoys.len() - 1,
        "only the decoys are left"
    );
    assert!(backups(&env.db("aifp_core")).is_empty());
    for d in decoys {
        assert!(folder.join(d).exists(), "{d} was deleted");
    }
}

#[test]
fn backup_mode_flags_that_need_each_other_are_usage_errors() {
    let env = Env::new();
    env.init_all();
    let before = env.files();
    for args in [
        &["--restore"][..],
        &["--from", "x.db", "--db", "project"],
        &["--db", "project", "--restore", "--from"],
        &["--all", "--restore", "--from", "x.db"],
        &["--prune-backups"],
        &["--keep", "2"],
        &["--list-backups", "--keep", "2"],
        &["--list-backups", "--all"],
        &["--restore", "--check", "--db", "project"],
        &["--list-backups", "--prune-backups", "--keep", "1"],
        &["--db", "project", "--restore", "--dry-run"],
        &["--db", "project", "--restore", "--target", "1.0"],
        &["--prune-backups", "--keep", "-1"],
    ] {
        let run = env.run(args);
        assert_eq!(run.code(), 2, "{args:?}: {}", run.stderr());
        assert!(!run.stderr().contains("panicked"));
    }
    assert_eq!(env.files(), before);
}
