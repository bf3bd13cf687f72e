//! Backups taken before the first write: `<file>.backup_<YYYYmmdd_HHMMSS>` beside the database.
//!
//! The copy goes through SQLite's online backup API in one step, so committed data still in the
//! `-wal` file is included. It is written under a temporary name with the database's permission
//! bits, synced, and only then linked to its final name, which is never overwritten.

use std::fs::{self, OpenOptions, Permissions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use crate::error::Error;

/// Copies the database at `db_path` to a new backup file; returns its path.
///
/// Call it while holding the write lock and before writing: SQLite refuses to back up through a
/// connection in a write transaction, so the copy is read through a second, read-only connection,
/// which then sees exactly the last committed state (`-wal` included) and nothing can change it.
pub fn take(db_path: &Path) -> Result<PathBuf, Error> {
    let src = crate::inspect::open(db_path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let stamp: String = src
        .query_row(
            "SELECT strftime('%Y%m%d_%H%M%S', 'now', 'localtime')",
            [],
            |r| r.get(0),
        )
        .map_err(|e| Error::sqlite(db_path, e))?;
    let base = PathBuf::from(format!("{}.backup_{stamp}", db_path.display()));
    // Hidden and outside the backup name pattern, so an interrupted copy never looks like a backup.
    let tmp = match (db_path.parent(), db_path.file_name()) {
        (Some(dir), Some(name)) => dir.join(format!(
            ".{}.aifp-migrate-backup-{}",
            name.to_string_lossy(),
            std::process::id()
        )),
        _ => PathBuf::from(format!("{}.aifp-migrate-backup", db_path.display())),
    };
    let fail = |backup: &Path, message: String| Error::Backup {
        path: db_path.to_path_buf(),
        backup: backup.to_path_buf(),
        message,
    };

    let result = copy_into(&src, db_path, &tmp).and_then(|()| publish(&tmp, &base));
    // Whatever happened, the temporary file must not outlive this call.
    let _ = fs::remove_file(&tmp);
    result.map_err(|message| fail(&base, message))
}

/// Writes a complete, synced copy of the database into the new file `tmp`.
fn copy_into(src: &Connection, db_path: &Path, tmp: &Path) -> Result<(), String> {
    let mode = fs::metadata(db_path)
        .map_err(|e| e.to_string())?
        .permissions()
        .mode()
        & 0o7777;
    // Created by us, empty, with no group/other access until the mode is set exactly
    // (the umask would otherwise trim it); `create_new` refuses to reuse any existing file.
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .map_err(|e| e.to_string())?;
    file.set_permissions(Permissions::from_mode(mode))
        .map_err(|e| e.to_string())?;
    drop(file);

    {
        // A 0-byte file is a valid empty database, so it opens without CREATE.
        let mut dst = Connection::open_with_flags(tmp, OpenFlags::SQLITE_OPEN_READ_WRITE)
            .map_err(|e| e.to_string())?;
        let backup = Backup::new(src, &mut dst).map_err(|e| e.to_string())?;
        // One step of all pages: a single consistent snapshot.
        match backup.step(-1).map_err(|e| e.to_string())? {
            StepResult::Done => {}
            other => return Err(format!("the copy did not complete ({other:?})")),
        }
    }
    let file = fs::File::open(tmp).map_err(|e| e.to_string())?;
    file.sync_all().map_err(|e| e.to_string())?;
    // Only a copy that reads back whole gets a backup's name.
    // Read as immutable where it is in WAL mode, so checking it leaves no -wal/-shm behind.
    let copy = crate::inspect::open_for_reading(tmp).map_err(|e| e.to_string())?;
    let check: String = copy
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| format!("the copy does not read back: {e}"))?;
    if check != "ok" {
        return Err(format!("the copy failed its integrity check: {check}"));
    }
    Ok(())
}

/// Gives the finished copy its final name: `base`, else `base_2`, `base_3`, … whichever is free.
fn publish(tmp: &Path, base: &Path) -> Result<PathBuf, String> {
    for n in 1u32.. {
        let name = if n == 1 {
            base.to_path_buf()
        } else {
            PathBuf::from(format!("{}_{n}", base.display()))
        };
        // A hard link fails if the name exists, so an older backup is never overwritten.
        match fs::hard_link(tmp, &name) {
            Ok(()) => {
                if let Some(dir) = name.parent().and_then(|d| fs::File::open(d).ok()) {
                    let _ = dir.sync_all();
                }
                return Ok(name);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("no free backup name".to_string())
}
