//! Putting a backup back: the way out of an upgrade that went wrong.
//!
//! A restore refuses a backup that fails `integrity_check`, first backs up the state it replaces
//! (so it can be undone), and writes through SQLite's online backup API into the live database,
//! never by copying a file over it, so no stale `-wal` or `-journal` can mix in.

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
        if let Ok(want) = schema::expected(set, v) {
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
    let (before, saved_as) = save_current(db_path, source)?;

    let src = inspect::open_for_reading(source)?;
    let mut live = inspect::open(db_path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    copy_pages(&src, &mut live, db_path)?;
    drop(src);

    let entry = history::Entry {
        run_id,
        direction: "restore",
        from: before.clone(),
        to: after.clone(),
        script: None,
        sha256: None,
        duration_ms: 0,
        backup: saved_as.as_ref().map(|p| p.display().to_string()),
    };
    history::record(&live, &entry).map_err(|e| Error::sqlite(db_path, e))?;
    crate::apply::integrity(&live, db_path, "after the restore")?;
    Ok(Restored {
        before,
        after,
        saved_as,
    })
}

/// Saves what is at `db_path` before it is replaced, and leaves a file SQLite can write into:
/// a live database stays (the backup API overwrites it through SQLite); a file SQLite cannot read
/// is saved byte for byte and emptied; a missing one is created with the backup's mode.
fn save_current(db_path: &Path, source: &Path) -> Result<(Option<String>, Option<PathBuf>), Error> {
    let readable = match inspect::open_existing(db_path) {
        Ok(None) => {
            backup::create_like(source, db_path).map_err(|message| Error::Sqlite {
                path: db_path.to_path_buf(),
                message,
            })?;
            return Ok((None, None));
        }
        Ok(Some(conn)) => crate::apply::integrity(&conn, db_path, "before the restore")
            .map(|()| inspect::read_version(&conn, db_path)),
        Err(e) => Err(e),
    };
    match readable {
        Ok(state) => {
            let before = match state {
                Ok(State::Versioned(v)) => Some(v.to_string()),
                _ => None,
            };
            Ok((
                before,
                Some(backup::take(db_path, &crate::progress::silent())?),
            ))
        }
        Err(_) => {
            // Damaged, empty or not a database: keep its bytes, then give SQLite an empty file
            // (a valid empty database) to restore into.
            let saved = backup::take_raw(db_path)?;
            std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(db_path)
                .map_err(|e| Error::Sqlite {
                    path: db_path.to_path_buf(),
                    message: e.to_string(),
                })?;
            Ok((None, Some(saved)))
        }
    }
}

/// Copies every page of `src` into `live` in one step, waiting for other processes' locks.
fn copy_pages(src: &Connection, live: &mut Connection, db_path: &Path) -> Result<(), Error> {
    let backup = Backup::new(src, live).map_err(|e| inspect::classify(db_path, e))?;
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match backup.step(-1).map_err(|e| inspect::classify(db_path, e))? {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            StepResult::Busy | StepResult::Locked if Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
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
