//! Restores under hostile conditions (SPEC Guarantees 2 and 5, "Modes"): which backup a restore
//! puts back when earlier restores saved states beside the database, backups of databases whose
//! schema had drifted, and a live application committing while a restore runs.

mod common;
use common::*;

use std::path::{Path, PathBuf};

use rusqlite::Connection;

/// Runs `--db NAME --restore [args…] --format json` and returns the one restored entry.
fn restore(env: &Env, name: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--db", name, "--restore", "--format", "json"];
    all.extend_from_slice(args);
    let run = env.run(&all).expect(0);
    let json = run.json();
    let restored = json["restored"].as_array().expect("restored").clone();
    assert_eq!(restored.len(), 1, "{json}");
    restored[0].clone()
}

/// The file a restore put back, and the file it saved the replaced state in.
fn from_and_saved(entry: &serde_json::Value) -> (PathBuf, PathBuf) {
    let path = |key: &str| {
        PathBuf::from(
            entry[key]
                .as_str()
                .unwrap_or_else(|| panic!("{key}: {entry}")),
        )
    };
    (path("restored_from"), path("backup"))
}

/// Copies the database at `from` to a new file `to` through SQLite (its `-wal` included).
fn copy_db(from: &Path, to: &Path) {
    let src = Connection::open(from).unwrap();
    src.backup(rusqlite::DatabaseName::Main, to, None).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Which backup `--restore` puts back (SPEC "Modes")

#[test]
fn repeated_restores_put_back_the_migrating_runs_backup_never_a_state_a_restore_saved() {
    let env = Env::new();
    let db = env.init_db("project");
    env.run(&["--db", "project"]).expect(0);
    assert_eq!(version(&db), "1.2");
    let migrated = backups(&db);
    assert_eq!(migrated.len(), 1, "{migrated:?}");
    let taken = migrated[0].clone();

    // Each restore puts back the backup the migrating run took, however many times it is asked;
    // the states the restores saved (at 1.2, then at 1.0) are never picked by themselves.
    let mut saved = Vec::new();
    for round in 1..=3 {
        let (from, state) = from_and_saved(&restore(&env, "project", &[]));
        assert_eq!(from, taken, "restore {round} put back another file");
        assert_eq!(version(&db), "1.0", "restore {round}");
        assert!(state.exists(), "restore {round} saved no state");
        saved.push(state);
    }
    assert_eq!(version(&saved[0]), "1.2");
    assert_eq!(version(&saved[1]), "1.0");
    assert_eq!(backups(&db).len(), 4, "{:?}", backups(&db));

    // A saved state goes back only when named with --from.
    let (from, _) = from_and_saved(&restore(
        &env,
        "project",
        &["--from", &saved[0].display().to_string()],
    ));
    assert_eq!(from, saved[0]);
    assert_eq!(version(&db), "1.2");
    // …and the next plain restore still means the migrating run's backup.
    let (from, _) = from_and_saved(&restore(&env, "project", &[]));
    assert_eq!(from, taken);
    assert_eq!(version(&db), "1.0");
}

#[test]
fn backups_that_no_history_names_count_and_the_newest_of_them_is_put_back() {
    let env = Env::new();
    let db = env.init_db("project");
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch("CREATE TABLE marker (what TEXT); INSERT INTO marker VALUES ('old');")
        .unwrap();
    let old = db.with_file_name("project.db.backup_20260101_000000");
    copy_db(&db, &old);
    conn.execute("UPDATE marker SET what = 'new'", []).unwrap();
    let new = db.with_file_name("project.db.backup_20260102_000000");
    copy_db(&db, &new);
    conn.execute("UPDATE marker SET what = 'live'", []).unwrap();
    drop(conn);
    let marker = |p: &Path| -> String {
        open(p)
            .query_row("SELECT what FROM marker", [], |r| r.get(0))
            .unwrap()
    };

    let (from, saved) = from_and_saved(&restore(&env, "project", &[]));
    assert_eq!(from, new);
    assert_eq!(marker(&db), "new");
    assert_eq!(marker(&saved), "live");
    // The state that restore saved is the newest file now, yet not the one meant.
    let (from, _) = from_and_saved(&restore(&env, "project", &[]));
    assert_eq!(from, new);
    assert_eq!(marker(&db), "new");
}

// ---------------------------------------------------------------------------------------------
// A backup the tool made is always restorable (SPEC Guarantee 2)

#[test]
fn the_backup_of_a_core_database_that_had_drifted_from_its_version_is_restorable() {
    let env = Env::new();
    let db = env.init_db("aifp_core");
    // A plan-era core recorded at 1.0 that never had (or lost) its notes table.
    Connection::open(&db)
        .unwrap()
        .execute_batch("DROP TABLE notes; INSERT INTO tools (name) VALUES ('kept');")
        .unwrap();
    let before = schema(&db);
    let rows = contents(&db);
    env.run(&["--db", "aifp_core"]).expect(0);
    assert_eq!(version(&db), "1.1");
    let taken = backups(&db);
    assert_eq!(taken.len(), 1);

    let (from, _) = from_and_saved(&restore(&env, "aifp_core", &[]));
    assert_eq!(from, taken[0]);
    assert_eq!(version(&db), "1.0");
    assert_eq!(schema(&db), before);
    assert_eq!(
        without_version_row(contents(&db)),
        without_version_row(rows)
    );
}

#[test]
fn a_from_file_that_is_another_database_is_still_refused_even_under_a_backup_name() {
    let env = Env::new();
    let core = env.init_db("aifp_core");
    let project = env.init_db("project");
    let outside = env.tmp.path().join("other.db");
    copy_db(&project, &outside);
    // Named exactly like a backup of the core, but no history row says the tool made it.
    let disguised = core.with_file_name("aifp_core.db.backup_20260101_000000");
    copy_db(&project, &disguised);
    let core_schema = schema(&core);

    for file in [&outside, &disguised] {
        let run = env
            .run(&[
                "--db",
                "aifp_core",
                "--restore",
                "--from",
                &file.display().to_string(),
            ])
            .expect(1);
        assert!(
            run.stderr()
                .contains("it is not a aifp_core database: it lacks table(s)"),
            "{}",
            run.stderr()
        );
        assert_eq!(run.stderr().lines().count(), 1, "{}", run.stderr());
        assert_eq!(schema(&core), core_schema);
        assert_eq!(backups(&core), [disguised.clone()], "a state was saved");
    }
}
