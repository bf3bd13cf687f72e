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
    src.backup(rusqlite::MAIN_DB, to, None).unwrap();
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
        assert_eq!(
            backups(&core),
            std::slice::from_ref(&disguised),
            "a state was saved"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A live application writing while a restore runs (SPEC Guarantee 5)

/// The application: when this test binary is run with `HOSTILE_WRITER_DB` set (and this test's
/// name as filter), it inserts rows with increasing ids into `live_rows` in autocommit, one about
/// every 2 ms, retrying while the database is locked, and appends each id to `HOSTILE_WRITER_LOG`
/// once its COMMIT returned, until the file `HOSTILE_WRITER_STOP` exists. Run normally, it does
/// nothing.
#[test]
fn live_writer_child() {
    use std::io::Write;
    let (Ok(db), Ok(log), Ok(stop)) = (
        std::env::var("HOSTILE_WRITER_DB"),
        std::env::var("HOSTILE_WRITER_LOG"),
        std::env::var("HOSTILE_WRITER_STOP"),
    ) else {
        return;
    };
    let conn = Connection::open(&db).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(20))
        .unwrap();
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    let mut id: i64 = 0;
    while !Path::new(&stop).exists() {
        id += 1;
        loop {
            match conn.execute("INSERT INTO live_rows (id) VALUES (?1)", [id]) {
                Ok(_) => break,
                Err(e)
                    if matches!(
                        e.sqlite_error_code(),
                        Some(
                            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                        )
                    ) =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(e) => panic!("insert {id}: {e:?}"),
            }
        }
        writeln!(log, "{id}").unwrap();
        log.flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// The ids in `live_rows` of the database at `path`.
fn live_ids(path: &Path) -> std::collections::BTreeSet<i64> {
    let conn = open(path);
    let mut stmt = conn.prepare("SELECT id FROM live_rows").unwrap();
    let ids = stmt.query_map([], |r| r.get(0)).unwrap();
    ids.map(Result::unwrap).collect()
}

/// The ids the writer logged as committed so far.
fn logged(log: &Path) -> Vec<i64> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

/// Restores project.db (journal mode `journal`) `rounds` times while the writer commits, then
/// checks that every id the writer saw committed is in the restored database or in a state one
/// of the restores saved.
fn restores_lose_no_committed_row(journal: &str, rounds: usize) {
    let env = Env::new();
    let db = env.init_db("project");
    let conn = Connection::open(&db).unwrap();
    conn.pragma_update(None, "journal_mode", journal).unwrap();
    conn.execute_batch("CREATE TABLE live_rows (id INTEGER PRIMARY KEY)")
        .unwrap();
    drop(conn);
    // The migrating run's backup is what each restore puts back: live_rows, empty.
    env.run(&["--db", "project"]).expect(0);

    let log = env.tmp.path().join("committed.log");
    let stop = env.tmp.path().join("stop");
    let mut writer = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "live_writer_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("HOSTILE_WRITER_DB", &db)
        .env("HOSTILE_WRITER_LOG", &log)
        .env("HOSTILE_WRITER_STOP", &stop)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let wait_for = |n: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while logged(&log).len() < n {
            assert!(std::time::Instant::now() < deadline, "the writer stalled");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    };
    wait_for(20);
    let mut saved = Vec::new();
    for round in 0..rounds {
        let started = std::time::Instant::now();
        let (_, state) = from_and_saved(&restore(&env, "project", &[]));
        eprintln!(
            "{journal} round {round}: {} committed, restore took {:?}",
            logged(&log).len(),
            started.elapsed()
        );
        saved.push(state);
        // Let the writer commit a few rows into the restored database before the next round.
        wait_for(logged(&log).len() + 10 + round);
    }
    std::fs::write(&stop, "").unwrap();
    let status = writer.wait().unwrap();
    assert!(status.success(), "the writer failed: {status}");

    let committed = logged(&log);
    let mut kept = live_ids(&db);
    for state in &saved {
        kept.extend(live_ids(state));
    }
    let lost: Vec<i64> = committed
        .iter()
        .copied()
        .filter(|id| !kept.contains(id))
        .collect();
    assert!(
        lost.is_empty(),
        "{journal}: {} of {} committed rows are neither in the restored database nor in a saved state: {lost:?}",
        lost.len(),
        committed.len()
    );
    assert!(
        !live_ids(&db).is_empty(),
        "no row was committed after the last restore"
    );
    assert!(
        saved.iter().all(|s| !live_ids(s).is_empty()),
        "a saved state holds no row"
    );
    assert_eq!(version(&db), "1.0");
    // Nothing of the restores' own is left beside the database: no journal, no unfinished copy.
    let folder: Vec<String> = std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("project.db.backup_") && n.as_str() != "project.db")
        .filter(|n| !(journal == "wal" && (n == "project.db-wal" || n == "project.db-shm")))
        .collect();
    assert!(folder.is_empty(), "left beside the database: {folder:?}");
}

#[test]
fn a_restore_loses_no_row_a_live_application_commits_in_wal_mode() {
    restores_lose_no_committed_row("wal", 5);
}

#[test]
fn a_restore_loses_no_row_a_live_application_commits_in_rollback_journal_mode() {
    restores_lose_no_committed_row("delete", 5);
}
