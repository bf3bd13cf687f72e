//! Locks, concurrent runs, backups of WAL databases and read-only files (SPEC "Guarantees" 2, 3, 5
//! and 6), with real separate processes.
//!
//! Lock holders are this very test binary run again as a child: `child_lock_holder` does nothing in
//! a normal test run, but when `AIFP_TEST_HOLD_LOCK=<db>` is set it opens that database, takes the
//! lock (or commits into the WAL) the way `AIFP_TEST_HOLD_MODE` says, prints a marker line, and
//! waits until its stdin is closed. Every test looks at what is on disk afterwards.

mod common;
use common::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// The database the child holds.
const HOLD_DB: &str = "AIFP_TEST_HOLD_LOCK";
/// What the child does: see `child_lock_holder`.
const HOLD_MODE: &str = "AIFP_TEST_HOLD_MODE";
/// The line the child prints once it holds what it was asked to hold.
const HELD: &str = "<<aifp-test-child-held>>";
/// How long a child lives at most if nobody closes its stdin.
const CHILD_SAFETY_NET: Duration = Duration::from_secs(20);

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_aifp-migrate");

/// Not a test of its own: the body of the child processes the other tests start.
///
/// Modes (`AIFP_TEST_HOLD_MODE`):
/// - `write`: `BEGIN IMMEDIATE` and an uncommitted INSERT into `notes`, held.
/// - `read`: `BEGIN` and a SELECT, so an open read transaction (a SHARED lock in rollback-journal
///   mode) is held.
/// - `set-version-1.0-later`: `BEGIN IMMEDIATE`, the version row set to 1.0, and after 1.5 s a
///   COMMIT: another run that changes the database while this one plans.
/// - `wal-commit`: `wal_autocheckpoint=0`, distinctive rows inserted and COMMITTED, the
///   connection kept open so the rows stay in `-wal` and out of the main file.
#[test]
fn child_lock_holder() {
    let Some(path) = std::env::var_os(HOLD_DB) else {
        return;
    };
    let mode = std::env::var(HOLD_MODE).unwrap_or_default();
    let conn = Connection::open(&path).unwrap();
    match mode.as_str() {
        "write" => conn
            .execute_batch(
                "BEGIN IMMEDIATE;
                 INSERT INTO notes (content, note_type) VALUES ('uncommitted', 'child');",
            )
            .unwrap(),
        "read" => {
            conn.execute_batch("BEGIN").unwrap();
            let _: i64 = conn
                .query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
                .unwrap();
        }
        "wal-commit" => {
            conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
            conn.execute_batch(
                "BEGIN;
                 INSERT INTO notes (content, note_type) VALUES ('only-in-wal', 'child');
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
                 INSERT INTO notes (content, note_type)
                     SELECT 'wal-' || i || '-' || hex(zeroblob(40)), 'child' FROM n;
                 INSERT INTO project (name, purpose, goals_json)
                     VALUES ('wal-project', 'only in the wal', '[]');
                 COMMIT;",
            )
            .unwrap();
        }
        "wal-commit-behind-a-reader" => {
            // A reader whose snapshot predates the commit: no checkpoint can copy the
            // committed frames into the main file while it is open.
            let reader = Connection::open(&path).unwrap();
            reader.execute_batch("BEGIN").unwrap();
            let _: i64 = reader
                .query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
                .unwrap();
            conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
            conn.execute_batch(
                "INSERT INTO notes (content, note_type) VALUES ('only-in-wal', 'child');",
            )
            .unwrap();
            println!("\n{HELD}");
            std::io::stdout().flush().unwrap();
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            drop(reader);
            drop(conn);
            return;
        }
        "set-version-1.0-later" => conn
            .execute_batch("BEGIN IMMEDIATE; UPDATE schema_version SET version = '1.0';")
            .unwrap(),
        other => panic!("unknown {HOLD_MODE} {other:?}"),
    }
    println!("\n{HELD}");
    std::io::stdout().flush().unwrap();
    if mode == "set-version-1.0-later" {
        // Another run that finishes while this one plans: commit, let go of the lock, end.
        std::thread::sleep(Duration::from_millis(1500));
        conn.execute_batch("COMMIT").unwrap();
    }

    // Hold until the parent closes our stdin (or dies), with a safety net.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        let _ = tx.send(());
    });
    let _ = rx.recv_timeout(CHILD_SAFETY_NET);
    drop(conn);
}

/// A running `child_lock_holder`; killed on drop, so a failing test never leaves it behind.
struct Holder {
    child: Child,
    stdin: Option<ChildStdin>,
    done: bool,
}

impl Holder {
    /// Starts a child holding `db` in `mode` and returns once it says it holds it.
    fn start(db: &Path, mode: &str) -> Holder {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_lock_holder",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(HOLD_DB, db)
            .env(HOLD_MODE, mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let mut holder = Holder {
            child,
            stdin,
            done: false,
        };

        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut seen = String::new();
            let mut held = false;
            // Keep draining after the marker so the child never blocks on a full pipe.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !held && line.contains(HELD) {
                    held = true;
                    let _ = tx.send(Ok(()));
                }
                seen.push_str(&line);
                seen.push('\n');
            }
            if !held {
                let _ = tx.send(Err(seen));
            }
        });
        match rx.recv_timeout(CHILD_SAFETY_NET) {
            Ok(Ok(())) => holder,
            Ok(Err(out)) => {
                let status = holder.child.wait().unwrap();
                panic!("the lock holder ({mode}) ended ({status}) without holding:\n{out}")
            }
            Err(_) => panic!("the lock holder ({mode}) did not report within {CHILD_SAFETY_NET:?}"),
        }
    }

    /// Closes the child's stdin, waits for it to end, and asserts it ended well.
    fn release(&mut self) {
        self.stdin.take();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.done = true;
                assert!(status.success(), "the lock holder ended with {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the lock holder did not end after its stdin was closed"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.stdin.take();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary as a plain `std::process::Command`, with the environment `Env::cmd` gives it.
fn tool(env: &Env, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(&env.project)
        .env("HOME", &env.home)
        .env("AIFP_HOME", &env.core_dir)
        .env("AIFP_MIGRATIONS", &env.migrations)
        .env_remove("NO_COLOR");
    cmd
}

/// The `only-in-wal` notes that the main file of `db` holds on its own, read from a copy of it
/// without its `-wal`.
fn only_in_wal_rows_in_the_main_file(db: &Path) -> i64 {
    let alone = tempfile::tempdir().unwrap();
    let main_copy = alone.path().join("main.db");
    std::fs::copy(db, &main_copy).unwrap();
    Connection::open(&main_copy)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM notes WHERE content = 'only-in-wal'",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// Puts the database at `db` in `journal_mode` (`wal`, `delete`).
fn set_journal_mode(db: &Path, journal_mode: &str) {
    Connection::open(db)
        .unwrap()
        .pragma_update(None, "journal_mode", journal_mode)
        .unwrap();
}

/// A new project.db at 1.0 in `journal_mode`.
fn project_in(env: &Env, journal_mode: &str) -> PathBuf {
    let db = env.init_db("project");
    set_journal_mode(&db, journal_mode);
    db
}

/// A project row and a few notes, committed, so "nothing changed" has data to compare.
fn seed(db: &Path) {
    Connection::open(db)
        .unwrap()
        .execute_batch(
            "INSERT INTO project (name, purpose, goals_json) VALUES ('demo', 'testing', '[\"a\"]');
             INSERT INTO notes (content, note_type) VALUES ('first', 'user'), ('second', 'user');",
        )
        .unwrap();
}

/// `n` notes in one transaction, so a migration (three indexes on notes, the backup) takes a while.
fn bulk(db: &Path, n: u32) {
    Connection::open(db)
        .unwrap()
        .execute(
            "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?1)
             INSERT INTO notes (content, note_type, reference_table, reference_id)
                 SELECT 'note ' || i || ' ' || hex(randomblob(8)), 'bulk', 'tasks', i FROM k",
            [n],
        )
        .unwrap();
}

/// The notes as (count, sum of ids, a checksum of id and content): equal means no row lost or changed.
fn notes_fingerprint(db: &Path) -> (i64, i64, i64) {
    open(db)
        .query_row(
            "SELECT count(*), total(id), total((id * 31 + length(content) * 7 + unicode(substr(content, -1))) % 1000003)
             FROM notes",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get::<_, f64>(1)? as i64,
                    r.get::<_, f64>(2)? as i64,
                ))
            },
        )
        .unwrap()
}

/// The names of the columns of `table`.
fn columns(db: &Path, table: &str) -> Vec<String> {
    let conn = open(db);
    let mut stmt = conn
        .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
        .unwrap();
    let names = stmt.query_map([], |r| r.get(0)).unwrap();
    names.map(Result::unwrap).collect()
}

/// The names in the folder of `db`, sorted.
fn folder(db: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Asserts that the folder of `db` holds nothing but the database, its `-wal`/`-shm` and `backups`
/// (no backup temporaries, no journal left behind).
fn assert_folder_holds_only(db: &Path, backups: &[PathBuf]) {
    let name = db.file_name().unwrap().to_string_lossy().into_owned();
    let mut allowed = vec![name.clone(), format!("{name}-wal"), format!("{name}-shm")];
    allowed.extend(
        backups
            .iter()
            .map(|b| b.file_name().unwrap().to_string_lossy().into_owned()),
    );
    let names = folder(db);
    for n in &names {
        assert!(
            allowed.contains(n) || !n.starts_with(&name),
            "unexpected file {n} beside the database: {names:?}"
        );
    }
}

/// The one stderr line, which must name `db` and contain every word of `words`.
fn assert_one_error_line(run: &Run, db: &Path, words: &[&str]) {
    let stderr = run.stderr();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one stderr line, got:\n{stderr}");
    let line = lines[0];
    assert!(
        line.contains(&db.display().to_string()),
        "the error does not name {}: {line}",
        db.display()
    );
    for w in words {
        assert!(line.contains(w), "the error does not say {w:?}: {line}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The JSON entry for `name` in a report.
fn entry(report: &serde_json::Value, name: &str) -> serde_json::Value {
    report["databases"]
        .as_array()
        .unwrap_or_else(|| panic!("no databases in {report}"))
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report}"))
        .clone()
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

// ---------------------------------------------------------------------------------------------
// 1. A held write lock.

/// A child holds `BEGIN IMMEDIATE` with an uncommitted insert; `--all` waits, fails, changes nothing.
fn held_write_lock_case(journal_mode: &str) {
    let env = Env::new();
    let db = project_in(&env, journal_mode);
    seed(&db);
    let schema_before = schema(&db);
    let contents_before = contents(&db);

    let mut holder = Holder::start(&db, "write");
    let started = Instant::now();
    let run = env.run(&["--all"]).expect(1);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(10),
        "expected a wait of about 5 s, took {took:?}"
    );
    assert_one_error_line(&run, &db, &["locked", "nothing was changed"]);
    holder.release();

    assert_eq!(version(&db), "1.0");
    assert_eq!(schema(&db), schema_before);
    assert_eq!(contents(&db), contents_before);
    assert_eq!(backups(&db), Vec::<PathBuf>::new());
    assert_folder_holds_only(&db, &[]);

    // Once the lock is gone, the same command works.
    env.run(&["--all"]).expect(0);
    assert_eq!(version(&db), "1.2");
    assert_eq!(backups(&db).len(), 1);
    assert_eq!(count(&db, "notes"), 2);
}

#[test]
fn a_held_write_lock_fails_cleanly_and_changes_nothing() {
    held_write_lock_case("wal");
}

#[test]
fn a_held_write_lock_on_a_rollback_journal_database_fails_cleanly_and_changes_nothing() {
    held_write_lock_case("delete");
}

/// In rollback-journal mode a reader's SHARED lock does not stop `BEGIN IMMEDIATE` but keeps the
/// COMMIT from taking its EXCLUSIVE lock: the tool waits, fails, and the database is as it was.
#[test]
fn a_reader_blocking_the_commit_of_a_rollback_journal_database_leaves_it_unchanged() {
    let env = Env::new();
    let db = project_in(&env, "delete");
    seed(&db);
    let schema_before = schema(&db);
    let contents_before = contents(&db);

    let mut holder = Holder::start(&db, "read");
    let started = Instant::now();
    let run = env.run(&["--db", "project"]).expect(1);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert_one_error_line(&run, &db, &["locked"]);
    holder.release();

    assert_eq!(version(&db), "1.0");
    assert_eq!(schema(&db), schema_before);
    assert_eq!(contents(&db), contents_before);
    // The commit failed and rolled back, so the backup it had taken is gone: nothing changed.
    let left = backups(&db);
    assert!(left.is_empty(), "a failed run left a backup: {left:?}");
    assert_folder_holds_only(&db, &left);
    assert!(
        !folder(&db).contains(&"project.db-journal".to_string()),
        "a journal was left behind"
    );

    env.run(&["--db", "project"]).expect(0);
    assert_eq!(version(&db), "1.2");
    assert_eq!(backups(&db).len(), 1);
}

/// Closing any descriptor of a file drops every POSIX lock the process holds on it, SQLite's
/// write lock included: from its backup to its COMMIT a run must keep the lock, so no other
/// process may begin a write in between.
#[test]
fn no_other_process_can_take_the_write_lock_between_the_backup_and_the_commit() {
    for journal_mode in ["delete", "wal"] {
        let env = Env::new();
        let db = project_in(&env, journal_mode);
        bulk(&db, 200_000);
        let before = notes_fingerprint(&db);
        let mut child = tool(&env, &["--db", "project"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (mut refused, mut taken) = (0, 0);
        while child.try_wait().unwrap().is_none() {
            if !backups(&db).is_empty() {
                let other =
                    Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
                        .unwrap();
                other.busy_timeout(Duration::ZERO).unwrap();
                match other.execute_batch("BEGIN IMMEDIATE") {
                    Ok(()) => {
                        // After the run's COMMIT the lock is free again, and the version new.
                        let v: String = other
                            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
                            .unwrap();
                        if v == "1.0" {
                            taken += 1;
                        }
                        other.execute_batch("ROLLBACK").unwrap();
                    }
                    Err(_) => refused += 1,
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{journal_mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("{journal_mode}: after the backup, {refused} attempt(s) refused, {taken} taken");
        assert_eq!(
            taken, 0,
            "{journal_mode}: another process took the write lock mid-run"
        );
        assert!(
            refused >= 3,
            "{journal_mode}: only {refused} attempt(s): the test proved little"
        );
        assert_eq!(version(&db), "1.2");
        assert_eq!(notes_fingerprint(&db), before);
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Two runs at once.

#[test]
fn two_runs_at_once_apply_each_step_once_and_lose_no_row() {
    let env = Env::new();
    let db = env.init_db("project");
    seed(&db);
    bulk(&db, 200_000);
    let notes_before = notes_fingerprint(&db);
    let project_before = count(&db, "project");

    let barrier = Arc::new(Barrier::new(2));
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let mut cmd = tool(&env, &["--db", "project", "--format", "json"]);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                let started = Instant::now();
                let out = cmd.output().unwrap();
                (out, started.elapsed())
            })
        })
        .collect();
    let runs: Vec<(Output, Duration)> = runs.into_iter().map(|h| h.join().unwrap()).collect();

    let mut statuses = Vec::new();
    for (out, took) in runs {
        let run = Run(out);
        eprintln!("run: exit {} in {took:?}", run.code());
        match run.code() {
            0 => {
                let e = entry(&run.json(), "project");
                assert_eq!(e["to"], "1.2", "{e}");
                statuses.push(e["status"].as_str().unwrap_or_default().to_string());
            }
            1 => {
                assert_one_error_line(&run, &db, &["locked", "nothing was changed"]);
                statuses.push("locked".to_string());
            }
            _ => panic!(
                "unexpected exit {}\n--- stdout\n{}\n--- stderr\n{}",
                run.code(),
                run.stdout(),
                run.stderr()
            ),
        }
    }
    statuses.sort();
    eprintln!("statuses: {statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| *s == "migrated").count(),
        1,
        "exactly one run migrates: {statuses:?}"
    );
    assert!(
        statuses.contains(&"current".to_string()) || statuses.contains(&"locked".to_string()),
        "{statuses:?}"
    );

    // On disk: migrated once, one backup, no row lost.
    assert_eq!(version(&db), "1.2");
    let backups = backups(&db);
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert_folder_holds_only(&db, &backups);
    assert!(
        !columns(&db, "work_branches").is_empty(),
        "work_branches is missing"
    );
    let notes = columns(&db, "notes");
    for col in ["source", "directive_name", "severity"] {
        assert_eq!(
            notes.iter().filter(|c| *c == col).count(),
            1,
            "notes.{col}: {notes:?}"
        );
    }
    let project = columns(&db, "project");
    for col in ["last_known_git_hash", "last_git_sync"] {
        assert_eq!(
            project.iter().filter(|c| *c == col).count(),
            1,
            "{project:?}"
        );
    }
    assert_eq!(notes_fingerprint(&db), notes_before);
    assert_eq!(count(&db, "project"), project_before);
    let defaulted: i64 = open(&db)
        .query_row(
            "SELECT count(*) FROM notes WHERE source = 'user' AND severity = 'info'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(defaulted, notes_before.0);

    // The one backup is the database as it was before.
    assert_eq!(version(&backups[0]), "1.0");
    assert_eq!(notes_fingerprint(&backups[0]), notes_before);
    assert!(columns(&backups[0], "work_branches").is_empty());
}

// ---------------------------------------------------------------------------------------------
// 3. The backup of a WAL database with committed data not yet checkpointed.

#[test]
fn the_backup_holds_committed_data_still_in_the_wal_and_the_database_permissions() {
    let env = Env::new();
    let db = env.init_db("project");
    seed(&db);
    set_mode(&db, 0o640);

    let mut holder = Holder::start(&db, "wal-commit");
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert!(wal_len > 0, "the -wal file is empty or absent");

    // The main file alone does not hold the rows yet: they are only in the -wal.
    assert_eq!(
        only_in_wal_rows_in_the_main_file(&db),
        0,
        "the row was checkpointed already; the test proves nothing"
    );

    // A connection with no open transaction does not block the migration.
    let run = env.run(&["--db", "project"]).expect(0);
    let backups = backups(&db);
    assert_eq!(backups.len(), 1, "{backups:?}");
    let backup = &backups[0];
    assert!(
        run.stdout().contains(&backup.display().to_string()),
        "the backup path is not printed:\n{}",
        run.stdout()
    );
    assert_eq!(version(&db), "1.2");
    assert_eq!(mode_of(backup), 0o640, "the backup's mode");
    assert_eq!(mode_of(&db), 0o640, "the database's mode");
    assert_folder_holds_only(&db, &backups);

    // The backup file alone, in a folder of its own, without any -wal.
    let fresh = tempfile::tempdir().unwrap();
    let copy = fresh.path().join("restored.db");
    std::fs::copy(backup, &copy).unwrap();
    assert_eq!(
        std::fs::read_dir(fresh.path()).unwrap().count(),
        1,
        "only the backup was copied"
    );
    let conn = Connection::open(&copy).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let v: String = conn
        .query_row("SELECT version FROM schema_version WHERE id = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(v, "1.0");
    let row = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        row("SELECT count(*) FROM notes WHERE content = 'only-in-wal'"),
        1
    );
    assert_eq!(
        row("SELECT count(*) FROM notes WHERE content LIKE 'wal-%'"),
        500
    );
    assert_eq!(
        row("SELECT count(*) FROM project WHERE name = 'wal-project'"),
        1
    );
    assert_eq!(row("SELECT count(*) FROM notes"), 2 + 1 + 500);
    drop(conn);

    // And the migrated database kept them too.
    holder.release();
    assert_eq!(count(&db, "notes"), 2 + 1 + 500);
    let kept: i64 = open(&db)
        .query_row(
            "SELECT count(*) FROM notes WHERE content = 'only-in-wal' AND source = 'user'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kept, 1);
}

/// The backup is a byte copy of the file only when the file holds every committed page; a reader
/// at an older snapshot keeps committed frames in the `-wal` (no checkpoint can copy them), and
/// the backup must still hold them.
#[test]
fn the_backup_holds_the_wal_data_a_reader_keeps_from_being_checkpointed() {
    let env = Env::new();
    let db = env.init_db("project");
    seed(&db);
    let mut holder = Holder::start(&db, "wal-commit-behind-a-reader");

    // The main file alone does not hold the row: it is only in the -wal.
    assert_eq!(
        only_in_wal_rows_in_the_main_file(&db),
        0,
        "the row was checkpointed already; the test proves nothing"
    );

    env.run(&["--db", "project"]).expect(0);
    holder.release();
    let backups = backups(&db);
    assert_eq!(backups.len(), 1, "{backups:?}");
    let fresh = tempfile::tempdir().unwrap();
    let copy = fresh.path().join("restored.db");
    std::fs::copy(&backups[0], &copy).unwrap();
    let conn = Connection::open(&copy).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let row: i64 = conn
        .query_row(
            "SELECT count(*) FROM notes WHERE content = 'only-in-wal'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        row, 1,
        "the backup lost committed data that was in the -wal"
    );
    assert_eq!(version(&backups[0]), "1.0");
    assert_eq!(version(&db), "1.2");
}

// ---------------------------------------------------------------------------------------------
// 4. A read-only file or folder, for a normal user.

const NOBODY: &str = "65534";

/// Whether this test can run the tool as uid 65534 (it needs root and `setpriv`); says why not.
fn can_run_as_nobody(env: &Env) -> bool {
    if std::fs::metadata(env.tmp.path()).unwrap().uid() != 0 {
        eprintln!("skipped: not running as root, so the tool cannot be run as uid {NOBODY}");
        return false;
    }
    let setpriv = Command::new("setpriv").arg("--version").output();
    if !setpriv.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: setpriv is not installed, so the tool cannot be run as uid {NOBODY}");
        return false;
    }
    true
}

/// Every folder under the temp dir 0755, every file 0644: readable and traversable by anyone.
fn open_up(dir: &Path) {
    set_mode(dir, 0o755);
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            open_up(&path);
        } else {
            set_mode(&path, 0o644);
        }
    }
}

/// Runs the tool as uid/gid 65534 with this world's environment.
fn run_as_nobody(env: &Env, args: &[&str]) -> Run {
    let out = Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            BIN,
        ])
        .args(args)
        .current_dir(&env.project)
        .env("HOME", &env.home)
        .env("AIFP_HOME", &env.core_dir)
        .env("AIFP_MIGRATIONS", &env.migrations)
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    Run(out)
}

/// `--check` as that user: it reads, reports 1.0 pending, and writes nothing.
fn check_as_nobody_writes_nothing(env: &Env, db: &Path) {
    let before = env.files();
    let run = run_as_nobody(env, &["--check", "--format", "json"]).expect(3);
    let e = entry(&run.json(), "project");
    assert_eq!(e["status"], "pending", "{e}");
    assert_eq!(e["current"], "1.0", "{e}");
    assert_eq!(e["latest"], "1.2", "{e}");
    assert_eq!(env.files(), before, "--check wrote something");
    assert_eq!(folder(db), vec!["project.db".to_string()]);
}

#[test]
fn a_read_only_database_file_fails_cleanly_for_a_normal_user() {
    let env = Env::new();
    if !can_run_as_nobody(&env) {
        return;
    }
    let db = env.init_db("project");
    seed(&db);
    open_up(env.tmp.path());
    set_mode(db.parent().unwrap(), 0o777);
    set_mode(&db, 0o444);
    assert_eq!(folder(&db), vec!["project.db".to_string()]);

    let before = env.files();
    let run = run_as_nobody(&env, &["--all"]).expect(1);
    assert_one_error_line(&run, &db, &["read-only"]);
    assert_eq!(env.files(), before, "a file was changed or created");
    assert_eq!(backups(&db), Vec::<PathBuf>::new());
    assert_eq!(folder(&db), vec!["project.db".to_string()]);

    check_as_nobody_writes_nothing(&env, &db);
    // Last: reading as root through a read-only connection leaves -wal/-shm behind.
    assert_eq!(version(&db), "1.0");
}

#[test]
fn a_read_only_database_folder_fails_cleanly_for_a_normal_user() {
    let env = Env::new();
    if !can_run_as_nobody(&env) {
        return;
    }
    let db = env.init_db("project");
    seed(&db);
    open_up(env.tmp.path());
    set_mode(&db, 0o666);
    set_mode(db.parent().unwrap(), 0o555);
    assert_eq!(folder(&db), vec!["project.db".to_string()]);

    let before = env.files();
    let run = run_as_nobody(&env, &["--all"]).expect(1);
    assert_one_error_line(&run, &db, &["folder", "is not writable"]);
    assert_eq!(env.files(), before, "a file was changed or created");
    assert_eq!(backups(&db), Vec::<PathBuf>::new());
    assert_eq!(folder(&db), vec!["project.db".to_string()]);

    check_as_nobody_writes_nothing(&env, &db);
    // Last: reading as root through a read-only connection leaves -wal/-shm behind.
    assert_eq!(version(&db), "1.0");
}

// ---------------------------------------------------------------------------------------------
// 5. `--check` while another process holds the write lock.

#[test]
fn check_answers_at_once_while_another_process_holds_the_write_lock() {
    let env = Env::new();
    let db = env.init_db("project");
    seed(&db);
    let contents_before = contents(&db);

    let mut holder = Holder::start(&db, "write");
    let started = Instant::now();
    let run = env.run(&["--check", "--format", "json"]).expect(3);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "--check took {took:?}");
    let e = entry(&run.json(), "project");
    assert_eq!(e["status"], "pending", "{e}");
    assert_eq!(e["current"], "1.0", "{e}");
    assert_eq!(e["latest"], "1.2", "{e}");
    assert!(run.stderr().trim().is_empty(), "{}", run.stderr());

    // The text report says the same.
    let text = env.run(&["--check"]).expect(3);
    assert!(text.stdout().contains("1.0"), "{}", text.stdout());

    holder.release();
    assert_eq!(version(&db), "1.0");
    assert_eq!(contents(&db), contents_before);
    assert_eq!(backups(&db), Vec::<PathBuf>::new());
}

#[test]
fn a_commit_that_fails_after_another_database_committed_puts_that_one_back() {
    let env = Env::new();
    env.init_all();
    let core = env.db("aifp_core");
    let db = env.db("project");
    set_journal_mode(&db, "delete");
    seed(&db);
    let before: Vec<_> = [&core, &db]
        .iter()
        .map(|p| (schema(p), contents(p)))
        .collect();

    // A reader keeps the project's COMMIT from happening; the core commits before it.
    let mut holder = Holder::start(&db, "read");
    let run = env.run(&["--all", "--format", "json"]).expect(1);
    holder.release();
    let json = run.json();
    assert_eq!(json["databases"][0]["status"], "put_back", "{json}");
    assert!(json["databases"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("because project failed to commit"));
    assert_eq!(json["databases"][1]["status"], "failed");
    let after: Vec<_> = [&core, &db]
        .iter()
        .map(|p| (schema(p), contents(p)))
        .collect();
    assert!(before[1] == after[1], "the project changed");
    assert_eq!(
        before[0].0, after[0].0,
        "the core's schema was not put back"
    );
    assert_eq!(
        without_version_row(before[0].1.clone()),
        without_version_row(after[0].1.clone()),
        "the core's rows were not put back"
    );
    assert_eq!(version(&core), "1.0");
    assert_eq!(
        backups(&core).len(),
        1,
        "the backup it was put back from is kept"
    );
}

#[test]
fn a_database_another_run_changed_while_planning_is_refused_not_taken_down_a_stale_path() {
    let env = Env::new();
    let db = env.init_db("project");
    seed(&db);
    env.run(&["--db", "project"]).expect(0);
    assert_eq!(version(&db), "1.2");
    let schema_before = schema(&db);

    // Planned 1.2 -> 1.1 (one rollback); meanwhile another run sets 1.0 and lets go.
    let mut holder = Holder::start(&db, "set-version-1.0-later");
    let run = env
        .run(&["--db", "project", "--rollback", "--allow-data-loss"])
        .expect(1);
    holder.release();
    assert_one_error_line(
        &run,
        &db,
        &["went from v1.2 to v1.0", "nothing was changed"],
    );
    assert_eq!(version(&db), "1.0", "the other run's version");
    assert_eq!(
        schema(&db),
        schema_before,
        "a step ran on the changed database"
    );
    assert_eq!(backups(&db).len(), 1, "only the first run's backup");
}
