//! What a database holds, read without changing or creating anything: is the file there, is it
//! an SQLite database, and which version does its `schema_version` row record.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension};

use crate::error::Error;
use crate::version::Version;

/// How long to wait for another process's lock before giving up.
pub const LOCK_WAIT: Duration = Duration::from_secs(5);

/// A database file's state, as far as versions go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Missing,
    /// There is a database but no version: no `schema_version` table (`what` = "table") or row.
    Unversioned {
        what: &'static str,
    },
    Versioned(Version),
}

/// Looks at the file at `path` and reads its version, read-only.
pub fn inspect(path: &Path) -> Result<State, Error> {
    match open_existing(path)? {
        None => Ok(State::Missing),
        Some(conn) => read_version(&conn, path),
    }
}

/// Opens the database at `path` read-only if there is one (`None` when the file is absent),
/// refusing what is not a database file.
pub fn open_existing(path: &Path) -> Result<Option<Connection>, Error> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Sqlite {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
        }
        Ok(m) if !m.is_file() => {
            return Err(Error::NotAFile {
                path: path.to_path_buf(),
            })
        }
        // SQLite takes a 0-byte file for a valid empty database; for AIFP it is a broken one.
        Ok(m) if m.len() == 0 => {
            return Err(Error::EmptyFile {
                path: path.to_path_buf(),
            })
        }
        Ok(_) => {}
    }
    open_for_reading(path).map(Some)
}

/// Opens read-only without leaving anything behind.
///
/// A read-only connection to a WAL database creates `-wal` and `-shm` files and cannot remove
/// them. When a WAL database has no `-wal` file no process has it open, so it is read as
/// immutable, which creates nothing; otherwise the existing files are used.
pub fn open_for_reading(path: &Path) -> Result<Connection, Error> {
    check_side_files(path)?;
    let wal = suffixed(path, "-wal");
    let journal = suffixed(path, "-journal");
    if journal.metadata().is_ok_and(|m| m.len() > 0) {
        // A hot journal left by a killed writer: a read-only connection can neither read past it
        // nor roll it back, so open read-write and let SQLite restore the last committed state.
        // Rolling back writes the file and removes the journal from the folder.
        use rustix::fs::{access, Access};
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
        let folder = folder.unwrap_or(Path::new("."));
        let blocked = if access(path, Access::WRITE_OK).is_err() {
            path
        } else if access(folder, Access::WRITE_OK | Access::EXEC_OK).is_err() {
            folder
        } else {
            return open(path, OpenFlags::SQLITE_OPEN_READ_WRITE);
        };
        // It may not be hot (a live writer's, or one kept by journal_mode=PERSIST): only when
        // the database cannot be read past it is it the reason.
        let conn = open(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let readable = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        });
        return match readable {
            Ok(_) => Ok(conn),
            Err(_) => Err(Error::HotJournal {
                path: path.to_path_buf(),
                journal,
                blocked: blocked.to_path_buf(),
                what: if blocked == path { "file" } else { "folder" },
            }),
        };
    }
    if is_wal_mode(path) && !wal.exists() {
        let uri = format!("file:{}?immutable=1", uri_escape(path));
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI;
        return open_as(Path::new(&uri), path, flags);
    }
    open(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
}

/// The files SQLite keeps beside a database: its write-ahead log, its shared-memory index and its
/// rollback journal.
pub const SIDE_FILES: [&str; 3] = ["-wal", "-shm", "-journal"];

/// `<db><suffix>` (e.g. `project.db-wal`), built on the path's bytes, never on a lossy copy.
pub fn suffixed(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Refuses a `-wal`, `-shm` or `-journal` that is not a regular file: SQLite would open a FIFO
/// and wait on it for ever, or fail on a folder with a message that names neither.
pub fn check_side_files(db: &Path) -> Result<(), Error> {
    for suffix in SIDE_FILES {
        let side = suffixed(db, suffix);
        let Ok(link) = std::fs::symlink_metadata(&side) else {
            continue;
        };
        let kind = match std::fs::metadata(&side) {
            Ok(m) if m.is_file() => continue,
            Ok(m) => file_kind(&m.file_type()),
            Err(_) if link.is_symlink() => "a symbolic link to nothing",
            Err(_) => "unreadable",
        };
        return Err(Error::SideFileNotAFile {
            path: side,
            db: db.to_path_buf(),
            kind,
            role: match suffix {
                "-wal" => "write-ahead log",
                "-shm" => "shared-memory index",
                _ => "rollback journal",
            },
        });
    }
    Ok(())
}

/// What a file that is not a regular file is, in words.
fn file_kind(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "a special file"
    }
}

/// Bytes 18 and 19 of the header are 2 in a WAL-mode database.
fn is_wal_mode(path: &Path) -> bool {
    let mut header = [0u8; 20];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header))
        .is_ok_and(|()| header[18] == 2 && header[19] == 2)
}

/// Percent-encodes a path for an SQLite `file:` URI.
pub fn uri_escape(path: &Path) -> String {
    path.as_os_str()
        .as_encoded_bytes()
        .iter()
        .map(|&b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Opens an existing database (never creating one) and sets the lock wait.
pub fn open(path: &Path, flags: OpenFlags) -> Result<Connection, Error> {
    open_as(path, path, flags)
}

/// Opens `target` (a path or a `file:` URI); errors name `shown`.
fn open_as(target: &Path, shown: &Path, flags: OpenFlags) -> Result<Connection, Error> {
    check_side_files(shown)?;
    let flags = flags | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(target, flags).map_err(|e| classify(shown, e))?;
    conn.busy_timeout(LOCK_WAIT)
        .map_err(|e| classify(shown, e))?;
    Ok(conn)
}

/// Reads the version row through `conn`, which may be inside a transaction.
pub fn read_version(conn: &Connection, path: &Path) -> Result<State, Error> {
    let has_table: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
            [],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        )
        .map_err(|e| classify(path, e))?;
    if !has_table {
        return Ok(State::Unversioned { what: "table" });
    }
    let shape = |problem: String| Error::VersionTableShape {
        path: path.to_path_buf(),
        problem,
    };
    // Said in words here, before the queries below would fail with the tool's own SQL.
    let columns: Vec<String> = conn
        .prepare("SELECT lower(name) FROM pragma_table_info('schema_version')")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| classify(path, e))?;
    if let Some(missing) = ["id", "version"]
        .into_iter()
        .find(|c| !columns.iter().any(|have| have == c))
    {
        return Err(shape(format!("schema_version has no column {missing}")));
    }
    let mut stmt = conn
        .prepare("SELECT version FROM schema_version WHERE id = 1")
        .map_err(|e| classify(path, e))?;
    let mut rows = stmt.query([]).map_err(|e| classify(path, e))?;
    let Some(row) = rows.next().map_err(|e| classify(path, e))? else {
        let other: Option<String> = conn
            .query_row(
                "SELECT quote(id) FROM schema_version ORDER BY rowid LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| classify(path, e))?;
        return match other {
            Some(id) => Err(shape(format!(
                "schema_version has no row with id 1 (its first row has id {})",
                crate::error::one_line(&id)
            ))),
            None => Ok(State::Unversioned { what: "row" }),
        };
    };
    let (text, shown) = match row.get_ref(0).map_err(|e| classify(path, e))? {
        ValueRef::Text(t) => {
            let t = String::from_utf8_lossy(t).into_owned();
            let shown = format!("{t:?}");
            (t, shown)
        }
        ValueRef::Integer(i) => (i.to_string(), format!("\"{i}\"")),
        ValueRef::Real(f) => (f.to_string(), format!("\"{f}\"")),
        ValueRef::Null => (String::new(), "NULL".to_string()),
        ValueRef::Blob(_) => (String::new(), "(a blob)".to_string()),
    };
    text.parse()
        .map(State::Versioned)
        .map_err(|_| Error::BadVersion {
            path: path.to_path_buf(),
            value: shown,
        })
}

/// The version row's version; no table or row is an error.
pub fn require_version(conn: &Connection, path: &Path) -> Result<Version, Error> {
    match read_version(conn, path)? {
        State::Versioned(v) => Ok(v),
        State::Unversioned { what } => Err(Error::Unversioned {
            path: path.to_path_buf(),
            what,
        }),
        // `read_version` reads an open database, which is never missing.
        State::Missing => Err(Error::Unversioned {
            path: path.to_path_buf(),
            what: "row",
        }),
    }
}

/// Turns an SQLite error into the error a user can act on.
pub fn classify(path: &Path, e: rusqlite::Error) -> Error {
    let path = path.to_path_buf();
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => Error::NotADatabase { path },
        Some(ErrorCode::DatabaseCorrupt) => Error::Damaged {
            path,
            message: e.to_string(),
        },
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => Error::Locked {
            path,
            seconds: LOCK_WAIT.as_secs(),
        },
        Some(ErrorCode::ReadOnly) => Error::WriteRefused {
            path,
            message: e.to_string(),
        },
        Some(ErrorCode::CannotOpen) => Error::Sqlite {
            path,
            message: format!("{e} (check the permissions of the file and its folder)"),
        },
        _ => Error::Sqlite {
            path,
            message: e.to_string(),
        },
    }
}
