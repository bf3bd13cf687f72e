//! Putting a backup back: the way out of an upgrade that went wrong.
//!
//! A restore refuses a backup that fails `integrity_check`, first backs up the state it replaces
//! (so it can be undone), and writes through SQLite's online backup API into the live database,
//! never by copying a file over it, so no stale `-wal` or `-journal` can mix in. It holds the write
//! lock from saving that state to the end of the copy, so an application committing meanwhile
//! loses no row: each is in the saved state or in the restored database.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use crate::backup;
use crate::catalog::Set;
use crate::error::Error;
use crate::history;
use crate::inspect::{self, State, LOCK_WAIT};
use crate::schema;
use crate::scratch;

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The version the database had before, if it had a readable one.
    pub before: Option<String>,
    /// The version it has now, as read back.
    pub after: Option<String>,
    /// Where the replaced state was saved (none when there was no database file).
    pub saved_as: Option<PathBuf>,
}

/// What the tool wrote down about the backup files beside a database, gathered from the history
/// of the database and of every one of its backups: a restore writes the backup's own history
/// into the database, so what earlier restores recorded lives on in the states they saved.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// File names of backups taken before a change (a migrating run or a stamp).
    taken: BTreeSet<String>,
    /// File names of the states restores replaced.
    replaced: BTreeSet<String>,
}

impl Recorded {
    /// Reads the histories of the database at `db_path` and of its backups; a file that cannot
    /// be read has nothing to say.
    pub fn read(db_path: &Path) -> Recorded {
        let mut files = vec![db_path.to_path_buf()];
        files.extend(
            backup::list(db_path)
                .unwrap_or_default()
                .into_iter()
                .map(|b| b.path),
        );
        let mut recorded = Recorded::default();
        for file in files {
            let Ok(Some(conn)) = inspect::open_existing(&file) else {
                continue;
            };
            for (direction, path) in history::recorded_backups(&conn).unwrap_or_default() {
                let Some(name) = Path::new(&path).file_name() else {
                    continue;
                };
                let name = name.to_string_lossy().into_owned();
                if direction == "restore" {
                    recorded.replaced.insert(name);
                } else {
                    recorded.taken.insert(name);
                }
            }
        }
        recorded
    }

    /// Whether `file` holds a state a restore replaced (and no change was recorded as taking it).
    fn is_replaced_state(&self, file: &Path) -> bool {
        let name = file_name(file);
        self.replaced.contains(&name) && !self.taken.contains(&name)
    }

    /// Whether the tool made `file` as a backup of the database at `db_path`: it sits beside the
    /// database under a backup's exact name, and a history row names it.
    pub fn made_by_tool(&self, db_path: &Path, file: &Path) -> bool {
        let beside = backup::list(db_path)
            .unwrap_or_default()
            .iter()
            .any(|b| same_file(&b.path, file));
        let name = file_name(file);
        beside && (self.taken.contains(&name) || self.replaced.contains(&name))
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// The backup `--restore` puts back without `--from`: the newest file named as a backup of the
/// database that is not a state a restore replaced (putting one back would undo that restore, and
/// the next restore would undo this one). A backup no history names counts as a change's backup.
pub fn newest(db_path: &Path, recorded: &Recorded) -> Result<PathBuf, Error> {
    backup::list(db_path)
        .map_err(|e| Error::io(db_path, &e))?
        .into_iter()
        .rev()
        .find(|b| !recorded.is_replaced_state(&b.path))
        .map(|b| b.path)
        .ok_or_else(|| Error::NoBackup {
            path: db_path.to_path_buf(),
        })
}

/// Checks that `source` is a whole database fit to restore from, and, when the tool did not make
/// it, one of this database's: at a version of its migration set, with every table that version
/// has. A backup the tool made is always restorable, whatever its schema had drifted to.
/// Returns its version, if any.
pub fn check_source(
    db_path: &Path,
    source: &Path,
    set: Option<&Set>,
    recorded: &Recorded,
) -> Result<Option<String>, Error> {
    let bad = |why: String| Error::BadBackup {
        path: db_path.to_path_buf(),
        backup: source.to_path_buf(),
        why,
    };
    let conn = match inspect::open_existing(source) {
        Ok(Some(conn)) => conn,
        Ok(None) => return Err(bad("it does not exist".into())),
        Err(e) => return Err(bad(e.to_string())),
    };
    let found: Vec<String> = conn
        .prepare("PRAGMA integrity_check(5)")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| bad(e.to_string()))?;
    if found != ["ok"] {
        return Err(bad(format!(
            "it fails integrity_check ({})",
            found.join("; ")
        )));
    }
    let version = match inspect::read_version(&conn, source) {
        Ok(State::Versioned(v)) => Some(v),
        _ => None,
    };
    let foreign = set.filter(|_| !recorded.made_by_tool(db_path, source));
    if let (Some(set), Some(v)) = (foreign, &version) {
        if !set.versions().any(|known| known == v) {
            return Err(bad(format!(
                "its version v{v} is not a version of {}",
                set.name
            )));
        }
        let have = schema::read(&conn).map_err(|e| bad(e.to_string()))?;
        if let Ok(want) = scratch::expected(set, v) {
            let missing: Vec<&str> = want
                .tables()
                .filter(|t| !have.tables().any(|h| h == *t))
                .collect();
            if !missing.is_empty() {
                return Err(bad(format!(
                    "it is not a {} database: it lacks table(s) {}",
                    set.name,
                    missing.join(", ")
                )));
            }
        }
    }
    Ok(version.map(|v| v.to_string()))
}

/// Restores `source` into the database at `db_path` (which may be missing, damaged or fine).
pub fn restore(
    db_path: &Path,
    source: &Path,
    set: Option<&Set>,
    recorded: &Recorded,
    run_id: &str,
) -> Result<Restored, Error> {
    let after = check_source(db_path, source, set, recorded)?;
    let src = inspect::open_for_reading(source)?;
    let (live, before, saved_as) = match readable(db_path)? {
        // A database SQLite reads, perhaps with an application writing to it: its state is saved
        // and replaced under one write lock, so every row committed meanwhile is in one of them.
        Ok(true) => {
            let mut live = inspect::open(db_path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
            let saved = save_and_replace(&src, &mut live, db_path)?;
            let before = match inspect::inspect(&saved) {
                Ok(State::Versioned(v)) => Some(v.to_string()),
                _ => None,
            };
            (live, before, Some(saved))
        }
        unreadable => {
            let saved = match unreadable {
                // No file yet: one with the backup's mode for SQLite to fill.
                Ok(_) => {
                    backup::create_like(source, db_path).map_err(|message| Error::Sqlite {
                        path: db_path.to_path_buf(),
                        message,
                    })?;
                    None
                }
                // Damaged, empty or not a database, so nothing writes to it: keep its bytes,
                // then give SQLite an empty file (a valid empty database) to restore into.
                Err(_) => {
                    let saved = backup::take_raw(db_path)?;
                    std::fs::OpenOptions::new()
                        .write(true)
                        .truncate(true)
                        .open(db_path)
                        .map_err(|e| Error::io(db_path, &e))?;
                    Some(saved)
                }
            };
            let mut live = inspect::open(db_path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
            let backup = Backup::new(&src, &mut live).map_err(|e| inspect::classify(db_path, e))?;
            copy(&backup, db_path, -1)?;
            drop(backup);
            (live, None, saved)
        }
    };
    drop(src);

    let entry = history::Entry {
        run_id,
        direction: "restore",
        from: before.clone(),
        to: after.clone(),
        script: None,
        sha256: None,
        duration_ms: 0,
        backup: saved_as.as_deref(),
    };
    history::record(&live, &entry).map_err(|e| Error::sqlite(db_path, e))?;
    crate::apply::integrity(&live, db_path, "after the restore")?;
    Ok(Restored {
        before,
        after,
        saved_as,
    })
}

/// Whether the file at `db_path` is a database SQLite reads whole (`Ok(false)`: there is none;
/// `Err`: it is damaged, empty or not a database at all). Anything else (a lock held elsewhere,
/// a side file in the way, no permission) is no damage: the restore fails on it, without
/// touching the file.
fn readable(db_path: &Path) -> Result<Result<bool, Error>, Error> {
    let checked = inspect::open_existing(db_path).and_then(|conn| match conn {
        None => Ok(false),
        Some(conn) => crate::apply::integrity(&conn, db_path, "before the restore").map(|()| true),
    });
    match checked {
        Err(
            e @ (Error::Damaged { .. }
            | Error::EmptyFile { .. }
            | Error::NotADatabase { .. }
            | Error::IntegrityFailed { .. }),
        ) => Ok(Err(e)),
        Err(e) => Err(e),
        other => Ok(other),
    }
}

/// Takes the write lock on the live database, saves its state as a new backup and copies every
/// page of `src` into it, releasing the lock only once the copy is committed; returns the saved
/// state's path. Should the copy fail, the database is as it was and the saved state is removed.
///
/// SQLite's backup API cannot write into a connection with a transaction open, so the lock is
/// held by the copy itself: in WAL mode, a first step that copies nothing already holds the WAL
/// write lock, while readers (the save among them) go on; in rollback-journal mode that step
/// would take the EXCLUSIVE lock, which shuts readers out too, so the connection is put in
/// exclusive locking mode instead, where the RESERVED lock of a `BEGIN IMMEDIATE` outlives it.
fn save_and_replace(
    src: &Connection,
    live: &mut Connection,
    db_path: &Path,
) -> Result<PathBuf, Error> {
    let classify = |e| inspect::classify(db_path, e);
    let journal: String = live
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(classify)?;
    let wal = journal.eq_ignore_ascii_case("wal");
    if !wal {
        // The lock first, in normal mode, whose retries let go of the read lock in between (in
        // exclusive mode they would not, and a writer waiting to commit would wait on us).
        live.execute_batch("BEGIN IMMEDIATE; PRAGMA locking_mode = EXCLUSIVE; ROLLBACK;")
            .map_err(classify)?;
    }
    let saved = {
        let backup = Backup::new(src, live).map_err(classify)?;
        if wal {
            copy(&backup, db_path, 0)?;
        }
        let saved = backup::take(db_path, &crate::progress::silent())?;
        if let Err(e) = copy(&backup, db_path, -1) {
            let _ = std::fs::remove_file(&saved);
            return Err(e);
        }
        saved
    };
    if !wal {
        // Back to normal locking: the next transaction (the history row) releases the lock,
        // and its COMMIT deletes the journal as usual.
        live.execute_batch("PRAGMA locking_mode = NORMAL")
            .map_err(classify)?;
    }
    Ok(saved)
}

/// Steps `backup` (`pages` at a time: -1 for all, 0 to take the destination's lock only) until
/// it is done or, for 0, has the lock; waits for other processes' locks up to `LOCK_WAIT`.
fn copy(backup: &Backup<'_, '_>, db_path: &Path, pages: i32) -> Result<(), Error> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match backup
            .step(pages)
            .map_err(|e| inspect::classify(db_path, e))?
        {
            StepResult::Done => return Ok(()),
            StepResult::More if pages == 0 => return Ok(()),
            StepResult::More => {}
            StepResult::Busy | StepResult::Locked if Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            _ => {
                return Err(Error::Locked {
                    path: db_path.to_path_buf(),
                    seconds: LOCK_WAIT.as_secs(),
                })
            }
        }
    }
}
