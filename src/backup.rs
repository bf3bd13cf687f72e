//! Backups taken before the first write: `<file>.backup_<YYYYmmdd_HHMMSS>` beside the database,
//! the time in UTC, so that names sort in the order the backups were made.
//!
//! The copy is taken under the write lock, so committed data still in the `-wal` file is included:
//! a kernel copy of the file when it holds every committed page (`take_locked`), SQLite's online
//! backup API otherwise. It is written under a temporary name with the database's permission bits,
//! synced, and only then linked to its final name, which is never overwritten.

use std::ffi::OsStr;
use std::fs::{self, OpenOptions, Permissions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use crate::error::Error;
use crate::progress::{Reporter, Unit};

/// Copies the database at `db_path` to a new backup file; returns its path.
///
/// Call it while holding the write lock and before writing: SQLite refuses to back up through a
/// connection in a write transaction, so the copy is read through a second, read-only connection,
/// which then sees exactly the last committed state (`-wal` included) and nothing can change it.
pub fn take(db_path: &Path, progress: &Reporter) -> Result<PathBuf, Error> {
    let src = crate::inspect::open(db_path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let name = db_path.file_name().unwrap_or_default().to_string_lossy();
    write_new(db_path, |tmp| {
        copy_into(&src, tmp, progress, &format!("backing up {name}"))?;
        check_copy(tmp)
    })
}

/// `take` for a caller whose connection `locked` holds the write lock (`BEGIN IMMEDIATE`) and
/// has written nothing yet. When the database file itself holds every committed page (rollback
/// journal mode, or WAL mode once a passive checkpoint has copied every frame of the `-wal` into
/// it), the backup is the file's bytes, copied by the kernel (`copy_file_range`, a reflink where
/// the filesystem can), which no one can change while the lock is held; otherwise it goes through
/// the online backup API like `take`.
///
/// `file` is the database file, opened by the caller before the lock and closed only after the
/// connection: closing any descriptor of a file drops every POSIX lock this process holds on it,
/// SQLite's write lock included, so the copy never opens (and closes) one of its own.
pub fn take_locked(
    db_path: &Path,
    locked: &Connection,
    file: &fs::File,
    progress: &Reporter,
) -> Result<PathBuf, Error> {
    if !file_holds_everything(db_path, locked) {
        return take(db_path, progress);
    }
    let name = db_path.file_name().unwrap_or_default().to_string_lossy();
    write_new(db_path, |tmp| {
        copy_file(file, tmp, progress, &format!("backing up {name}"))
    })
}

/// Whether the database file alone is the last committed state, `locked` holding the write lock.
///
/// In rollback journal mode it is: a writer writes the file only under a lock ours excludes, and
/// a hot journal was rolled back when our transaction began. In WAL mode committed frames may
/// still wait in the `-wal`; a passive checkpoint through a second connection copies them (it
/// needs no write lock, and no frame can be added while we hold it), and only when it reports
/// every frame copied (a reader at an older snapshot can hold some back) is the file complete.
fn file_holds_everything(db_path: &Path, locked: &Connection) -> bool {
    if locked.is_autocommit() {
        return false;
    }
    let mode: Result<String, _> = locked.query_row("PRAGMA journal_mode", [], |r| r.get(0));
    match mode.map(|m| m.to_ascii_lowercase()).as_deref() {
        Ok("wal") => {}
        Ok("delete" | "truncate" | "persist") => return true,
        // memory, off: no journal to speak of; let the backup API decide.
        _ => return false,
    }
    let Ok(other) = crate::inspect::open(db_path, OpenFlags::SQLITE_OPEN_READ_WRITE) else {
        return false;
    };
    let done: rusqlite::Result<(i64, i64, i64)> =
        other.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        });
    matches!(done, Ok((0, log, copied)) if log >= 0 && log == copied)
}

/// Bytes per kernel copy call: progress and interrupts are looked at in between.
const COPY_CHUNK: u64 = 32 << 20;

/// Copies the whole of `src` (from its start) into the empty file `tmp` through the kernel, then
/// syncs it.
fn copy_file(src: &fs::File, tmp: &Path, progress: &Reporter, label: &str) -> Result<(), String> {
    use std::io::{Read, Seek};
    let mut src = src;
    src.seek(std::io::SeekFrom::Start(0))
        .map_err(|e| e.to_string())?;
    let size = src.metadata().map_err(|e| e.to_string())?.len();
    let mut dst = OpenOptions::new()
        .write(true)
        .open(tmp)
        .map_err(|e| e.to_string())?;
    progress.begin(label, size, Unit::Bytes);
    let mut copied = 0u64;
    while copied < size {
        if crate::interrupt::received().is_some() {
            progress.end();
            return Err("interrupted".into());
        }
        // `io::copy` between files is `copy_file_range` on Linux (reflinks where it can), with
        // fallbacks where the kernel cannot.
        let n = std::io::copy(&mut src.take(COPY_CHUNK.min(size - copied)), &mut dst)
            .map_err(|e| e.to_string());
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                progress.end();
                return Err(e);
            }
        };
        if n == 0 {
            break;
        }
        copied += n;
        progress.set(copied);
    }
    progress.end();
    if copied != size {
        return Err(format!("the copy has {copied} of the {size} bytes"));
    }
    dst.sync_all().map_err(|e| e.to_string())
}

/// Saves the file at `db_path` byte for byte under a backup name: for a damaged database, which
/// SQLite cannot read whole, before it is replaced by a restore.
pub fn take_raw(db_path: &Path) -> Result<PathBuf, Error> {
    write_new(db_path, |tmp| {
        let mut from = fs::File::open(db_path).map_err(|e| e.to_string())?;
        let mut to = OpenOptions::new()
            .write(true)
            .open(tmp)
            .map_err(|e| e.to_string())?;
        std::io::copy(&mut from, &mut to).map_err(|e| e.to_string())?;
        to.sync_all().map_err(|e| e.to_string())
    })
}

/// Makes a new backup of `db_path`: an empty file with the database's mode under a temporary
/// name, filled by `fill`, then published under the first free backup name.
fn write_new(
    db_path: &Path,
    fill: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<PathBuf, Error> {
    let base = crate::inspect::suffixed(db_path, &format!(".backup_{}", stamp()));
    // Hidden and outside the backup name pattern, so an interrupted copy never looks like a backup.
    // Unique per run, so one a killed run left behind (perhaps by a process of the same pid)
    // is never in the way.
    let unique = format!("{}-{}", std::process::id(), crate::history::new_run_id());
    let Some(prefix) = temp_prefix(db_path) else {
        return Err(Error::Backup {
            path: db_path.to_path_buf(),
            backup: base,
            message: "the database path names no file in a folder".into(),
        });
    };
    let tmp = crate::inspect::suffixed(&prefix, &unique);
    let result = create_like(db_path, &tmp)
        .and_then(|()| fill(&tmp))
        .and_then(|()| publish(&tmp, &base));
    // Whatever happened, the temporary file must not outlive this call.
    let _ = fs::remove_file(&tmp);
    result.map_err(|message| Error::Backup {
        path: db_path.to_path_buf(),
        backup: base,
        message,
    })
}

/// Where a backup of `db_path` is written before it gets its name: a hidden file outside the
/// backup name pattern, so an interrupted copy never looks like a backup.
fn temp_prefix(db_path: &Path) -> Option<PathBuf> {
    let (dir, name) = (db_path.parent()?, db_path.file_name()?);
    let mut hidden = std::ffi::OsString::from(".");
    hidden.push(name);
    hidden.push(".aifp-migrate-backup-");
    Some(dir.join(hidden))
}

/// Removes what killed runs left of their unfinished backups of `db_path` (and their journals).
/// Call it only while holding the database's write lock: no live run is writing one then.
pub fn remove_leftovers(db_path: &Path) {
    let Some(prefix) = temp_prefix(db_path) else {
        return;
    };
    let (Some(dir), Some(start)) = (prefix.parent(), prefix.file_name()) else {
        return;
    };
    let start = start.as_encoded_bytes();
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().as_encoded_bytes().starts_with(start) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The time now in UTC as `YYYYmmdd_HHMMSS`, for names that sort in the order they were made.
pub fn utc_stamp() -> String {
    stamp()
}

/// The time now in UTC as `YYYYmmdd_HHMMSS`: never local time, whose names would sort out of
/// order across a time-zone or daylight-saving change.
fn stamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_utc(i64::try_from(now).unwrap_or(0), "", "_", "")
}

/// Seconds since 1970 as `YYYY<d>mm<d>dd<mid>HH<t>MM<t>SS`, in UTC.
fn format_utc(secs: i64, d: &str, mid: &str, t: &str) -> String {
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
    format!("{year:04}{d}{month:02}{d}{day:02}{mid}{h:02}{t}{m:02}{t}{s:02}")
}

/// `YYYYmmdd_HHMMSS` read as a UTC time, in seconds since 1970.
fn parse_utc(stamp: &str) -> Option<i64> {
    let n = |r: std::ops::Range<usize>| stamp.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (n(0..4)?, n(4..6)?, n(6..8)?);
    let (h, mi, s) = (n(9..11)?, n(11..13)?, n(13..15)?);
    // Howard Hinnant's days_from_civil.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + s)
}

/// When a backup was made, in seconds since 1970 (UTC), from its name and its file's
/// modification time (written once, when the copy was made, and never after).
///
/// Names are in UTC now, and such a name is the time: its file was written within the copy's
/// duration after it. Older versions of the tool named backups in local time; such a file's
/// modification time lies a time zone's offset (at most 14 hours) away from its name read as
/// UTC, and that time is when it was made, across any zone or daylight-saving change. A file
/// whose time agrees with neither was copied or touched since: its name is all that is left.
/// (The history table is no better witness: a restore replaces it with the backup's older one,
/// which knows nothing of the backups made after it.)
fn made_at(stamp_secs: i64, modified: Option<i64>) -> i64 {
    const COPY_TAKES_AT_MOST: i64 = 30 * 60;
    const FARTHEST_ZONE: i64 = 14 * 3600;
    match modified.map(|m| m - stamp_secs) {
        Some(d) if (-5..=COPY_TAKES_AT_MOST).contains(&d) => stamp_secs,
        Some(d) if d.abs() <= FARTHEST_ZONE + COPY_TAKES_AT_MOST => stamp_secs + d,
        _ => stamp_secs,
    }
}

/// Creates `new` empty, with the permission bits, owner and group of `like`.
pub fn create_like(like: &Path, new: &Path) -> Result<(), String> {
    let meta = fs::metadata(like).map_err(|e| e.to_string())?;
    let mode = meta.permissions().mode() & 0o7777;
    // Created by us, empty, with no group/other access until the mode is set exactly
    // (the umask would otherwise trim it); `create_new` refuses to reuse any existing file.
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(new)
        .map_err(|e| e.to_string())?;
    // Owner first: changing it may clear set-id bits, which the mode then puts back.
    own_like(&file, &meta);
    file.set_permissions(Permissions::from_mode(mode))
        .map_err(|e| e.to_string())
}

/// Gives a file this run created the owner and group of `like`, so that root working on another
/// user's project leaves files that user can read, restore and delete. Only root may give a file
/// away; anyone else keeps what they create, as before (the attempt fails harmlessly).
pub fn own_like(file: &fs::File, like: &fs::Metadata) {
    use std::os::unix::fs::MetadataExt;
    let mine = file.metadata().map(|m| (m.uid(), m.gid()));
    if mine.is_ok_and(|ids| ids != (like.uid(), like.gid())) {
        let _ = std::os::unix::fs::fchown(file, Some(like.uid()), Some(like.gid()));
    }
}

/// Pages copied per step of a backup: about 4 MiB with 4 KiB pages, between two progress reports.
const PAGES_PER_STEP: i32 = 1024;

/// Writes a complete, synced copy of the database `src` into the empty file `tmp`, reporting
/// bytes copied as `label`.
pub fn copy_into(
    src: &Connection,
    tmp: &Path,
    progress: &Reporter,
    label: &str,
) -> Result<(), String> {
    let page = |pragma: &str| -> Result<u64, String> {
        src.query_row(pragma, [], |r| r.get::<_, i64>(0))
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(|e| e.to_string())
    };
    let page_size = page("PRAGMA page_size")?;
    progress.begin(label, page("PRAGMA page_count")? * page_size, Unit::Bytes);
    {
        // A 0-byte file is a valid empty database, so it opens without CREATE.
        let mut dst = Connection::open_with_flags(tmp, OpenFlags::SQLITE_OPEN_READ_WRITE)
            .map_err(|e| e.to_string())?;
        let backup = Backup::new(src, &mut dst).map_err(|e| e.to_string())?;
        // Step by step, yet one consistent snapshot: should another connection write to the
        // source in between, SQLite restarts the copy (and while migrating we hold its lock).
        loop {
            if crate::interrupt::received().is_some() {
                progress.end();
                return Err("interrupted".into());
            }
            let step = backup.step(PAGES_PER_STEP).map_err(|e| e.to_string())?;
            let p = backup.progress();
            progress.set(u64::try_from(p.pagecount - p.remaining).unwrap_or(0) * page_size);
            match step {
                StepResult::Done => break,
                StepResult::More => {}
                other => {
                    progress.end();
                    return Err(format!("the copy did not complete ({other:?})"));
                }
            }
        }
    }
    progress.end();
    let file = fs::File::open(tmp).map_err(|e| e.to_string())?;
    file.sync_all().map_err(|e| e.to_string())
}

/// Only a copy that reads back whole gets a backup's name.
fn check_copy(tmp: &Path) -> Result<(), String> {
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
            crate::inspect::suffixed(base, &format!("_{n}"))
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

/// A backup file found beside a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupFile {
    pub path: PathBuf,
    /// `YYYYmmdd_HHMMSS` from the name.
    pub stamp: String,
    /// 1 for the plain name, then 2, 3, … for `_2`, `_3`, ….
    pub n: u32,
    pub size: u64,
    /// When it was made, in seconds since 1970 (see `made_at`).
    pub made: i64,
}

impl BackupFile {
    /// When it was made, as `YYYY-mm-dd HH:MM:SS` in UTC.
    pub fn time(&self) -> String {
        format_utc(self.made, "-", " ", ":")
    }
}

/// Reads `<db file>.backup_YYYYmmdd_HHMMSS[_N]`; anything else is not a backup of that file.
fn parse_name(db_file: &OsStr, candidate: &OsStr) -> Option<(String, u32)> {
    let rest = candidate
        .as_encoded_bytes()
        .strip_prefix(db_file.as_encoded_bytes())?;
    let rest = std::str::from_utf8(rest).ok()?.strip_prefix(".backup_")?;
    let (stamp, tail) = (rest.get(..15)?, rest.get(15..)?);
    let n = match tail.strip_prefix('_') {
        None if tail.is_empty() => 1,
        // `_2`, `_3`, …: digits only, no leading zero, never `_1`.
        Some(d) if !d.starts_with('0') && d.bytes().all(|b| b.is_ascii_digit()) => {
            d.parse().ok().filter(|&n: &u32| n >= 2)?
        }
        _ => return None,
    };
    let b = stamp.as_bytes();
    let ok = b.len() == 15
        && b[8] == b'_'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 8 || c.is_ascii_digit());
    ok.then(|| (stamp.to_string(), n))
}

/// The backups of the database at `db_path`, oldest first.
pub fn list(db_path: &Path) -> std::io::Result<Vec<BackupFile>> {
    let (Some(dir), Some(db_file)) = (db_path.parent(), db_path.file_name()) else {
        return Ok(Vec::new());
    };
    let entries = match fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other?,
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Some((stamp, n)) = parse_name(db_file, &entry.file_name()) else {
            continue;
        };
        let meta = entry.metadata()?;
        let Some(named) = parse_utc(&stamp) else {
            continue;
        };
        if meta.is_file() {
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .and_then(|d| i64::try_from(d.as_secs()).ok());
            found.push(BackupFile {
                path: entry.path(),
                made: made_at(named, modified),
                stamp,
                n,
                size: meta.len(),
            });
        }
    }
    found.sort_by(|a, b| (a.made, &a.stamp, a.n).cmp(&(b.made, &b.stamp, b.n)));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_backup_names_of_that_database_count() {
        let ok = |name: &str| parse_name(OsStr::new("project.db"), OsStr::new(name));
        assert_eq!(
            ok("project.db.backup_20261122_013605"),
            Some(("20261122_013605".into(), 1))
        );
        assert_eq!(
            ok("project.db.backup_20261122_013605_2"),
            Some(("20261122_013605".into(), 2))
        );
        assert_eq!(
            ok("project.db.backup_20261122_013605_12"),
            Some(("20261122_013605".into(), 12))
        );
        for not in [
            "project.db",
            "project.db.backup_20261122_01360",
            "project.db.backup_20261122-013605",
            "project.db.backup_20261122_013605_1",
            "project.db.backup_20261122_013605_02",
            "project.db.backup_20261122_013605.tmp",
            "project.db.backup_20261122_013605_2x",
            "project.db.backup_20261122_013605-wal",
            "xproject.db.backup_20261122_013605",
            "project.db.backup_2026112a_013605",
            ".project.db.aifp-migrate-backup-123",
        ] {
            assert_eq!(ok(not), None, "{not}");
        }
    }

    #[test]
    fn utc_names_read_back_as_the_same_second() {
        for secs in [0, 951_782_400, 1_764_633_599, 1_764_633_600, 4_102_444_800] {
            let name = format_utc(secs, "", "_", "");
            assert_eq!(parse_utc(&name), Some(secs), "{name}");
        }
        assert_eq!(
            format_utc(951_782_400, "-", " ", ":"),
            "2000-02-29 00:00:00"
        );
        assert_eq!(parse_utc("20261122_013605"), Some(1_795_311_365));
    }

    #[test]
    fn a_backup_named_in_local_time_is_dated_by_its_file() {
        let named = 1_795_311_365;
        // Named in UTC by this version: the name, whatever the copy took.
        assert_eq!(made_at(named, Some(named + 40)), named);
        assert_eq!(made_at(named, None), named);
        // Named in local time ten hours east of UTC, or five west: the file's time.
        assert_eq!(made_at(named, Some(named - 36_000 + 3)), named - 36_000 + 3);
        assert_eq!(made_at(named, Some(named + 18_000)), named + 18_000);
        // Copied a week later: only the name is left to go by.
        assert_eq!(made_at(named, Some(named + 7 * 86_400)), named);
    }

    #[test]
    fn backups_sort_by_time_then_number() {
        let tmp = tempfile::tempdir().unwrap();
        for name in [
            "project.db.backup_20261122_013605_10",
            "project.db.backup_20261122_013605_2",
            "project.db.backup_20261122_013605",
            "project.db.backup_20261121_235959",
            "user_preferences.db.backup_20261122_013605",
        ] {
            fs::write(tmp.path().join(name), "x").unwrap();
        }
        let names: Vec<String> = list(&tmp.path().join("project.db"))
            .unwrap()
            .iter()
            .map(|b| b.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "project.db.backup_20261121_235959",
                "project.db.backup_20261122_013605",
                "project.db.backup_20261122_013605_2",
                "project.db.backup_20261122_013605_10",
            ]
        );
    }
}
