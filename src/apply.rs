//! Running one database's plan: one `BEGIN IMMEDIATE` transaction, all or nothing.
//!
//! Foreign keys are switched off and legacy ALTER TABLE on before the transaction (SQLite ignores
//! the first inside one, and the second lets `ALTER TABLE new_X RENAME TO X` pass when a view or
//! another table's trigger names X). The version is re-read under the write lock, a backup is taken
//! before the first write, and after every step the tool checks and writes the version row and runs
//! `PRAGMA foreign_key_check`. Any failure rolls the whole transaction back.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::backup;
use crate::catalog::{Script, Set};
use crate::error::Error;
use crate::history;
use crate::inspect::{self, classify, State};
use crate::plan::{self, Target};
use crate::progress::{Reporter, Unit};
use crate::sql;
use crate::version::Version;

/// One step that ran.
#[derive(Debug, Clone)]
pub struct StepDone {
    pub from: Version,
    pub to: Version,
    pub file: String,
    pub sha256: String,
    pub took: Duration,
}

/// What a migration did to one database.
#[derive(Debug, Clone)]
pub struct Applied {
    pub from: Version,
    pub to: Version,
    pub backup: Option<PathBuf>,
    pub steps: Vec<StepDone>,
}

/// Brings the database at `path` to `target` with the scripts of `set`.
///
/// `target` is `Latest` or a resolved `Version`: it is resolved again against the version found
/// under the write lock, so a run that raced another one applies no step twice.
pub fn migrate(
    path: &Path,
    set: &Set,
    target: &Target,
    run_id: &str,
    take_backup: bool,
    progress: &Reporter,
) -> Result<Applied, Error> {
    let mut conn = inspect::open(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    // Outside the transaction: inside one SQLite silently ignores `foreign_keys`.
    conn.execute_batch("PRAGMA foreign_keys = OFF; PRAGMA legacy_alter_table = ON;")
        .map_err(|e| classify(path, e))?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| classify(path, e))?;

    let from = inspect::require_version(&tx, path)?;
    let plan_err = |source| Error::plan(path, source);
    let to = plan::resolve(set, &from, target).map_err(plan_err)?;
    let steps = plan::chain(set, &from, &to).map_err(plan_err)?;
    if steps.is_empty() {
        return Ok(Applied {
            from: from.clone(),
            to: from,
            backup: None,
            steps: Vec::new(),
        });
    }

    let backup = if take_backup {
        // We hold the write lock: any unfinished backup beside the database is a dead run's.
        backup::remove_leftovers(path);
        Some(backup::take(path, progress)?)
    } else {
        None
    };
    let outcome = run_steps(&tx, path, &steps, run_id, backup.as_deref(), progress)
        .and_then(|done| check_before_commit(&tx, path).map(|()| done));
    let outcome = match outcome {
        Ok(done) => tx
            .commit()
            .map(|()| done)
            .map_err(|e| match classify(path, e) {
                Error::Sqlite { path, message } => Error::CommitFailed { path, message },
                other => other,
            }),
        Err(e) => {
            drop(tx); // rolls the transaction back
            Err(e)
        }
    };
    match outcome {
        Ok(steps) => Ok(Applied {
            from,
            to,
            backup,
            steps,
        }),
        Err(e) => {
            // Rolled back: when the database reads back at its old version, the backup holds
            // nothing the database does not, and removing it keeps "nothing was changed" true.
            let unchanged =
                matches!(inspect::read_version(&conn, path), Ok(State::Versioned(v)) if v == from);
            if let (true, Some(backup)) = (unchanged, &backup) {
                let _ = std::fs::remove_file(backup);
            }
            Err(e)
        }
    }
}

/// Runs the steps in order, recording each in the history table inside the same transaction.
fn run_steps(
    conn: &Connection,
    path: &Path,
    steps: &[&Script],
    run_id: &str,
    backup: Option<&Path>,
    progress: &Reporter,
) -> Result<Vec<StepDone>, Error> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let (first, last) = (steps.first(), steps.last());
    let label = match (first, last) {
        (Some(a), Some(b)) => format!("migrating {name} {} -> {}", a.from, b.to),
        _ => format!("migrating {name}"),
    };
    progress.begin(&label, steps.len() as u64, Unit::Steps);
    let ticking = Ticking::start(conn, progress);
    let mut done = Vec::with_capacity(steps.len());
    for script in steps {
        let started = Instant::now();
        run_step(conn, path, script)?;
        let took = started.elapsed();
        let sha256 = history::sha256(&script.sql);
        let entry = history::Entry {
            run_id,
            direction: if script.to < script.from {
                "down"
            } else {
                "up"
            },
            from: Some(script.from.to_string()),
            to: Some(script.to.to_string()),
            script: Some(&script.file),
            sha256: Some(sha256.clone()),
            duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            backup: backup.map(|b| b.display().to_string()),
        };
        history::record(conn, &entry).map_err(|e| Error::StepFailed {
            path: path.to_path_buf(),
            script: script.file.clone(),
            line: 0,
            message: format!("recording it in {}: {e}", history::TABLE),
        })?;
        done.push(StepDone {
            from: script.from.clone(),
            to: script.to.clone(),
            file: script.file.clone(),
            sha256,
            took,
        });
        progress.set(done.len() as u64);
    }
    drop(ticking);
    Ok(done)
}

/// A phase of progress in flight: while alive, SQLite's progress handler ticks the reporter, so a
/// long statement (an index over a million rows) still gets to redraw the bar; dropping it, on any
/// return, removes the handler and ends the phase.
struct Ticking<'c>(&'c Connection, Reporter);

impl<'c> Ticking<'c> {
    fn start(conn: &'c Connection, progress: &Reporter) -> Self {
        let ticker = Arc::clone(progress);
        conn.progress_handler(
            100_000,
            Some(move || {
                ticker.tick();
                false
            }),
        );
        Ticking(conn, Arc::clone(progress))
    }
}

impl Drop for Ticking<'_> {
    fn drop(&mut self) {
        self.0.progress_handler(0, None::<fn() -> bool>);
        self.1.end();
    }
}

/// The last look before COMMIT: `quick_check` of the database as the steps left it.
///
/// Every row the steps wrote met its CHECKs as it was written (SQLite enforced them), so the
/// check skips re-evaluating them row by row: on a rebuilt table with `CHECK (x IN (…))` that is
/// most of its cost (1.8 s of 2 s on a million rows). The page-level check stays.
fn check_before_commit(conn: &Connection, path: &Path) -> Result<(), Error> {
    conn.execute_batch("PRAGMA ignore_check_constraints = ON")
        .map_err(|e| classify(path, e))?;
    let checked = integrity(conn, path, "before COMMIT");
    conn.execute_batch("PRAGMA ignore_check_constraints = OFF")
        .map_err(|e| classify(path, e))?;
    checked
}

/// `PRAGMA quick_check` through `conn`: a damaged database is never migrated or committed.
pub fn integrity(conn: &Connection, path: &Path, when: &'static str) -> Result<(), Error> {
    let found: Vec<String> = conn
        .prepare("PRAGMA quick_check(5)")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| classify(path, e))?;
    if found.len() == 1 && found[0] == "ok" {
        return Ok(());
    }
    Err(Error::IntegrityFailed {
        path: path.to_path_buf(),
        when,
        found: found.join("; "),
    })
}

/// The checks before the first write to a database that has steps pending: file, folder and
/// `-wal`/`-shm` writable, room for the backup, and (unless `probe_lock` is false, as in a
/// dry run, which must create nothing) the write lock obtainable.
pub fn preflight(path: &Path, probe_lock: bool) -> Result<(), Error> {
    use rustix::fs::{access, statvfs, Access};
    let folder = path.parent().unwrap_or(Path::new("."));
    if access(folder, Access::WRITE_OK | Access::EXEC_OK).is_err() {
        return Err(Error::ReadOnlyFolder {
            folder: folder.to_path_buf(),
            file: path.to_path_buf(),
        });
    }
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    let shm = PathBuf::from(format!("{}-shm", path.display()));
    for file in [path, &wal, &shm] {
        if file.exists() && access(file, Access::WRITE_OK).is_err() {
            return Err(Error::ReadOnlyFile {
                path: file.to_path_buf(),
            });
        }
    }
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    // The backup holds the database with its -wal folded in; a margin covers its journal.
    let needed = size(path) + size(&wal) + (1 << 20);
    if let Ok(fs) = statvfs(folder) {
        let free = fs.f_bavail.saturating_mul(fs.f_frsize);
        if free < needed {
            return Err(Error::NoSpace {
                path: path.to_path_buf(),
                folder: folder.to_path_buf(),
                needed,
                free,
            });
        }
    }
    if probe_lock {
        let conn = inspect::open(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
            .map_err(|e| classify(path, e))?;
    }
    Ok(())
}

/// Runs one script inside the open transaction, then checks and sets the version row.
pub fn run_step(conn: &Connection, path: &Path, script: &Script) -> Result<(), Error> {
    for stmt in sql::statements(&script.sql) {
        let failed = |(line, message): (usize, String)| Error::StepFailed {
            path: path.to_path_buf(),
            script: script.file.clone(),
            line,
            message,
        };
        conn.execute_batch(stmt.text)
            .map_err(|e| failed(crate::error::statement_failure(&e, stmt.text, stmt.line)))?;
        // Planning refuses transaction control, but should a statement still end the tool's
        // transaction, stop at once rather than run the rest outside one.
        if conn.is_autocommit() {
            return Err(failed((
                stmt.line,
                "the statement ended aifp-migrate's transaction; remove it from the script".into(),
            )));
        }
    }

    let found = match inspect::read_version(conn, path) {
        Ok(State::Versioned(v)) if v == script.from || v == script.to => None,
        Ok(State::Versioned(v)) => Some(v.to_string()),
        Ok(_) => Some("nothing (the row or table is gone)".to_string()),
        Err(e) => Some(e.to_string()),
    };
    if let Some(found) = found {
        return Err(Error::VersionTampered {
            path: path.to_path_buf(),
            script: script.file.clone(),
            found,
            from: script.from.to_string(),
            to: script.to.to_string(),
        });
    }
    conn.execute(
        "UPDATE schema_version SET version = ?1, updated_at = CURRENT_TIMESTAMP WHERE id = 1",
        [script.to.to_string()],
    )
    .map_err(|e| Error::StepFailed {
        path: path.to_path_buf(),
        script: script.file.clone(),
        line: 0,
        message: format!(
            "writing the version row: {}",
            crate::error::sqlite_message(&e)
        ),
    })?;

    check_foreign_keys(conn, path, script)
}

/// Step 11 of SQLite's table rebuild: no row may break a foreign key before COMMIT.
fn check_foreign_keys(conn: &Connection, path: &Path, script: &Script) -> Result<(), Error> {
    // The check itself fails when a schema the script left makes a foreign key meaningless
    // (a parent without the key it names): that is the script's failure too.
    let found = foreign_key_violations(conn).map_err(|e| Error::StepFailed {
        path: path.to_path_buf(),
        script: script.file.clone(),
        line: 0,
        message: format!("foreign key check after the script: {e}"),
    })?;
    match found {
        None => Ok(()),
        Some((count, first)) => Err(Error::ForeignKeys {
            path: path.to_path_buf(),
            script: script.file.clone(),
            count,
            first,
        }),
    }
}

/// Refuses, while planning, a database whose rows already break a foreign key: a step's check
/// would fail on them and blame the script, after other databases of the run were migrated.
pub fn require_foreign_keys_intact(conn: &Connection, path: &Path) -> Result<(), Error> {
    match foreign_key_violations(conn).map_err(|e| classify(path, e))? {
        None => Ok(()),
        Some((count, first)) => Err(Error::BrokenBefore {
            path: path.to_path_buf(),
            count,
            first,
        }),
    }
}

/// How many rows break a foreign key, and the first of them, if any do.
fn foreign_key_violations(conn: &Connection) -> rusqlite::Result<Option<(usize, String)>> {
    let mut stmt = conn.prepare("PRAGMA foreign_key_check")?;
    let mut rows = stmt.query([])?;
    let mut first: Option<String> = None;
    let mut count = 0usize;
    while let Some(row) = rows.next()? {
        count += 1;
        if first.is_none() {
            let table: String = row.get(0)?;
            let rowid: Option<i64> = row.get(1)?;
            let parent: String = row.get(2)?;
            let rowid = rowid.map_or("(without rowid)".to_string(), |r| r.to_string());
            first = Some(format!("table {table}, row {rowid}, referring to {parent}"));
        }
    }
    Ok(first.map(|f| (count, f)))
}

/// The version table, exactly as the AIFP plan defines it.
pub const SCHEMA_VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version TEXT NOT NULL,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP
)";

/// Creates the version table if it is missing and sets its row to `version`, now.
pub fn set_version(conn: &Connection, version: &Version) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA_VERSION_TABLE)?;
    conn.execute(
        "INSERT INTO schema_version (id, version, updated_at) VALUES (1, ?1, CURRENT_TIMESTAMP)
         ON CONFLICT (id) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
        [version.to_string()],
    )?;
    Ok(())
}

/// Records `version` in the database at `path` without running scripts: write lock, backup,
/// then the version row (and its table, if missing) and a history row in one transaction.
pub fn stamp(path: &Path, version: &Version, run_id: &str) -> Result<PathBuf, Error> {
    let mut conn = inspect::open(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| classify(path, e))?;
    let before = match inspect::read_version(&tx, path) {
        Ok(State::Versioned(v)) => Some(v.to_string()),
        _ => None,
    };
    let backup = backup::take(path, &crate::progress::silent())?;
    let entry = history::Entry {
        run_id,
        direction: "stamp",
        from: before,
        to: Some(version.to_string()),
        script: None,
        sha256: None,
        duration_ms: 0,
        backup: Some(backup.display().to_string()),
    };
    let written = set_version(&tx, version)
        .and_then(|()| history::record(&tx, &entry))
        .and_then(|()| tx.commit());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&backup);
        return Err(classify(path, e));
    }
    Ok(backup)
}

/// Writes the scratch database `built` (a replayed chain, its transaction still open) to a new
/// file at `path` in WAL mode, like AIFP's own. Returns false, writing nothing, when a file is
/// already there: it is never overwritten.
pub fn create(path: &Path, built: Connection) -> Result<bool, Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, &e))?;
    built
        .execute_batch("COMMIT")
        .map_err(|e| Error::sqlite(path, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.aifp-migrate-init-{}", std::process::id()));
    let result = write_new_database(&built, &tmp).and_then(|()| {
        // A hard link fails if the name is taken: an existing database is never replaced.
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(Error::io(path, &e)),
        }
    });
    let _ = std::fs::remove_file(&tmp);
    result
}

fn write_new_database(built: &Connection, tmp: &Path) -> Result<(), Error> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(|e| Error::io(tmp, &e))?;
    backup::copy_into(built, tmp, &crate::progress::silent(), "").map_err(|message| {
        Error::Sqlite {
            path: tmp.to_path_buf(),
            message,
        }
    })?;
    // Closing the only connection checkpoints the WAL into the file before it gets its name.
    let conn = inspect::open(tmp, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.pragma_update(None, "journal_mode", "wal")
        .map_err(|e| Error::sqlite(tmp, e))?;
    conn.close().map_err(|(_, e)| Error::sqlite(tmp, e))
}
