//! The record of what was applied, kept in each database in a table of the tool's own.
//!
//! Every step (and every restore) adds a row in the same transaction as the change it records:
//! run id, direction, versions, script name and SHA-256, time, duration and backup path. `--check`
//! compares the recorded hashes with the scripts as they are now; `--all --restore` finds the most
//! recent run and its backups here.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::catalog::Set;

/// The history table's name: `aifp_migrate_*`, so every schema comparison leaves it out.
pub const TABLE: &str = "aifp_migrate_history";

const CREATE: &str = "CREATE TABLE IF NOT EXISTS aifp_migrate_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
        direction TEXT NOT NULL CHECK (direction IN ('up', 'down', 'restore', 'stamp')),
    from_version TEXT,
    to_version TEXT,
    script TEXT,
    sha256 TEXT,
    applied_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    duration_ms INTEGER,
    backup TEXT
)";

/// One row to record.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub run_id: &'a str,
    pub direction: &'a str,
    pub from: Option<String>,
    pub to: Option<String>,
    pub script: Option<&'a str>,
    pub sha256: Option<String>,
    pub duration_ms: u64,
    pub backup: Option<&'a Path>,
}

/// The hex SHA-256 of a script's text.
pub fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A run id that sorts by time: milliseconds since 1970, then the process id.
pub fn new_run_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{millis:013}-{}", std::process::id())
}

/// Adds a row, creating the table first if needed. Call it inside the change's transaction.
pub fn record(conn: &Connection, e: &Entry) -> rusqlite::Result<()> {
    conn.execute_batch(CREATE)?;
    conn.execute(
        "INSERT INTO aifp_migrate_history
            (run_id, direction, from_version, to_version, script, sha256, duration_ms, backup)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        rusqlite::params![
            e.run_id,
            e.direction,
            e.from,
            e.to,
            e.script,
            e.sha256,
            i64::try_from(e.duration_ms).unwrap_or(i64::MAX),
            e.backup.map(path_value)
        ],
    )?;
    Ok(())
}

fn has_table(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [TABLE],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )
}

/// An applied script whose file has changed since.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Changed {
    pub script: String,
    pub direction: String,
    pub applied_at: String,
    pub recorded_sha256: String,
    pub current_sha256: String,
}

/// The applied scripts (the latest application of each) whose text in `set` differs now.
pub fn changed_scripts(conn: &Connection, set: &Set) -> rusqlite::Result<Vec<Changed>> {
    if !has_table(conn)? {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare(
        "SELECT direction, script, sha256, applied_at FROM aifp_migrate_history
         WHERE id IN (SELECT max(id) FROM aifp_migrate_history
                      WHERE direction IN ('up', 'down') GROUP BY direction, script)
         ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, Option<String>>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (direction, script, recorded, applied_at) = row?;
        let (Some(script), Some(recorded)) = (script, recorded) else {
            continue;
        };
        let scripts = if direction == "down" {
            &set.rollbacks
        } else {
            &set.upgrades
        };
        let Some(now) = scripts.iter().find(|s| s.file == script) else {
            continue;
        };
        let current = sha256(&now.sql);
        if current != recorded {
            out.push(Changed {
                script,
                direction,
                applied_at: applied_at.unwrap_or_default(),
                recorded_sha256: recorded,
                current_sha256: current,
            });
        }
    }
    Ok(out)
}

/// Every backup this history names, with the direction of the row that names it: `up`, `down`
/// or `stamp` for a backup taken before a change, `restore` for the state a restore replaced.
pub fn recorded_backups(conn: &Connection) -> rusqlite::Result<Vec<(String, PathBuf)>> {
    if !has_table(conn)? {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare(
        "SELECT direction, backup FROM aifp_migrate_history WHERE backup IS NOT NULL ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, value_path(r.get_ref(1)?))))?;
    rows.collect()
}

/// The most recent run that migrated or restored the database (a stamp is neither): its id and
/// its direction.
pub fn last_run(conn: &Connection) -> rusqlite::Result<Option<(String, String)>> {
    if !has_table(conn)? {
        return Ok(None);
    }
    conn.query_row(
        "SELECT run_id, direction FROM aifp_migrate_history WHERE direction != 'stamp'
         ORDER BY run_id DESC, id DESC LIMIT 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

/// The backup that run `run_id` took of this database, if it recorded one.
pub fn backup_of_run(conn: &Connection, run_id: &str) -> rusqlite::Result<Option<PathBuf>> {
    if !has_table(conn)? {
        return Ok(None);
    }
    conn.query_row(
        "SELECT backup FROM aifp_migrate_history
         WHERE run_id = ?1 AND direction IN ('up', 'down') AND backup IS NOT NULL
         ORDER BY id LIMIT 1",
        [run_id],
        |r| Ok(value_path(r.get_ref(0)?)),
    )
    .optional()
}

/// A path as stored: text when it is UTF-8 (readable with `sqlite3`), else its bytes as a blob, so
/// that a path that is not UTF-8 comes back byte for byte.
fn path_value(path: &Path) -> ToSqlOutput<'_> {
    match path.to_str() {
        Some(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
        None => ToSqlOutput::Owned(Value::Blob(path.as_os_str().as_bytes().to_vec())),
    }
}

/// The path stored by `path_value`.
fn value_path(v: ValueRef<'_>) -> PathBuf {
    let bytes = match v {
        ValueRef::Text(b) | ValueRef::Blob(b) => b,
        _ => &[],
    };
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_the_hex_digest_of_the_text() {
        assert_eq!(
            sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn run_ids_sort_by_time() {
        let a = new_run_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(new_run_id() > a);
    }
}
