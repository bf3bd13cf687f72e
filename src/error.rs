//! Every failure the tool reports, each with the context a user needs and its exit code.
//!
//! Messages are one line, lowercase, name the database or file, and say what to do next.

use std::path::PathBuf;

use crate::plan::PlanError;

/// The library's error. `Display` is the line printed on stderr.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),

    #[error("migrations folder {0} does not exist or is not a folder: pass an existing folder with --migrations or AIFP_MIGRATIONS")]
    MigrationsRootMissing(PathBuf),

    #[error("AIFP_HOME {0} is not a folder: set AIFP_HOME to the folder that holds aifp_core.db")]
    CoreDirNotAFolder(PathBuf),

    #[error("project folder {0} does not exist or is not a folder: pass an existing folder with --project-dir")]
    ProjectDirMissing(PathBuf),

    #[error("folder {0} does not exist: pass an existing folder to --scan")]
    ScanDirMissing(PathBuf),

    #[error("cannot read folder {folder} while scanning ({message}), so any project in it was left out: make it readable, or scan as its owner")]
    ScanUnreadable { folder: PathBuf, message: String },

    #[error("{root}: no migration set for {db} (expected a folder {db}/ there): add it, or point --migrations at a complete set")]
    NoSet { root: String, db: String },

    #[error("cannot read {path}: {message}; a migration set is read whole: fix or remove it")]
    ReadScripts { path: String, message: String },

    #[error("{file}: not a migration script name (expected v<A>_to_v<B>[_label].sql, v<V>_initial_schema.sql, or rollback/v<B>_to_v<A>[_label].sql): rename or remove it")]
    BadScriptName { file: String },

    #[error("{file}: scripts belong in the set's folder or its rollback/ folder, so this one would never run: move it")]
    MisplacedScript { file: String },

    #[error("{file}: {problem}: rename it so the versions run the right way")]
    WrongDirection { file: String, problem: String },

    /// `what` says what they share: "both start at v1.0 going up", "are both initial schemas…".
    #[error("{first} and {second} {what}: keep only one")]
    Ambiguous {
        first: String,
        second: String,
        what: String,
    },

    #[error("{file} is not valid UTF-8 text: save it as UTF-8")]
    NotUtf8 { file: String },

    #[error("{file} line {line}: the script holds its own {keyword}; remove it (aifp-migrate runs each database's migration in one transaction of its own)")]
    TransactionControl {
        file: String,
        line: usize,
        keyword: String,
    },

    #[error("{file} line {line}: the script holds PRAGMA {pragma}, which changes how aifp-migrate keeps its transaction; remove it (aifp-migrate sets the journal, locking and sync itself, and a schema changes through CREATE, ALTER and DROP)")]
    ForbiddenPragma {
        file: String,
        line: usize,
        pragma: &'static str,
    },

    #[error("{file} line {line}: the script holds {keyword}; remove it (a migration changes its own database only, in aifp-migrate's transaction)")]
    Attach {
        file: String,
        line: usize,
        keyword: String,
    },

    #[error("{file} line {line}: the script holds a NUL byte, where SQLite would stop reading it and skip the rest without a word; remove it")]
    NulByte { file: String, line: usize },

    #[error("{file} line {line}: `{command}` is a sqlite3 shell command, not SQL: put the SQL it stands for in the script itself")]
    DotCommand {
        file: String,
        line: usize,
        command: String,
    },

    #[error("{db} not found at {path}: nothing to migrate ({hint})")]
    Missing {
        db: String,
        path: String,
        hint: &'static str,
    },

    #[error("no .aimfp-project or .aifp-project folder at or above {start}: --init would create {folder}; to create it there, pass --project-dir {start} (or run it from the project's own folder)")]
    InitWhere { start: PathBuf, folder: PathBuf },

    #[error("no {db} database: no .aimfp-project or .aifp-project folder at or above {start} (pass --project-dir)")]
    NoProject { db: String, start: String },

    #[error("{path} is not a regular file: move it away")]
    NotAFile { path: PathBuf },

    #[error("{path} is {kind}, not a regular file, where SQLite keeps the {role} of {db}: move it away, then try again")]
    SideFileNotAFile {
        path: PathBuf,
        db: PathBuf,
        kind: &'static str,
        role: &'static str,
    },

    #[error(
        "{path} is empty (0 bytes), not an AIFP database: restore it from a backup or delete it"
    )]
    EmptyFile { path: PathBuf },

    #[error("{path} is not an SQLite database: restore it from a backup, or move it away")]
    NotADatabase { path: PathBuf },

    #[error("{path} is damaged ({message}): restore a backup (aifp-migrate --list-backups, then --restore)")]
    Damaged { path: PathBuf, message: String },

    #[error("{path} has no schema_version {what}, so its version is unknown: if AIFP made it, restore a backup; otherwise move it away")]
    Unversioned { path: PathBuf, what: &'static str },

    /// `problem` says what is wrong in words: "schema_version has no column version".
    #[error("{path}: {problem}, so its version is unknown: give schema_version the shape the AIFP plan defines (id INTEGER PRIMARY KEY CHECK (id = 1), version TEXT NOT NULL, updated_at DATETIME) with its row at id 1, or restore a backup")]
    VersionTableShape { path: PathBuf, problem: String },

    /// `value` as it should be shown: quoted text, or NULL.
    #[error("{path} has a malformed version {value} in schema_version: correct it by hand or restore a backup")]
    BadVersion { path: PathBuf, value: String },

    #[error("{path} has a hot journal {journal} left by a writer that stopped mid-transaction, and SQLite must roll it back before the database can be read, but the {what} {blocked} is not writable: make it writable, or run aifp-migrate (or AIFP) once as its owner, so that SQLite can roll the journal back")]
    HotJournal {
        path: PathBuf,
        journal: PathBuf,
        blocked: PathBuf,
        what: &'static str,
    },

    #[error("{path} is read-only: make it writable, or run as its owner")]
    ReadOnlyFile { path: PathBuf },

    #[error("folder {folder} is not writable, so {file} cannot be backed up or migrated there: make the folder writable, or run as its owner")]
    ReadOnlyFolder { folder: PathBuf, file: PathBuf },

    #[error("{path} failed its integrity check {when} ({found}); nothing was changed: restore a backup (aifp-migrate --list-backups, then --restore)")]
    IntegrityFailed {
        path: PathBuf,
        when: &'static str,
        found: String,
    },

    #[error("not enough free space in {folder} to back up {path}: {needed} bytes needed, {free} free; free some space and try again")]
    NoSpace {
        path: PathBuf,
        folder: PathBuf,
        needed: u64,
        free: u64,
    },

    #[error("{path} could not be written ({message}): check the permissions of the file, its folder and its -wal and -shm files")]
    WriteRefused { path: PathBuf, message: String },

    #[error("{path}: {source}")]
    Plan {
        path: PathBuf,
        #[source]
        source: Box<PlanError>,
    },

    #[error("{path} is locked by another process (waited {seconds} s): close AIFP or the other aifp-migrate and try again; nothing was changed")]
    Locked { path: PathBuf, seconds: u64 },

    #[error("{path}: {script}{} ended aifp-migrate's transaction, so what ran before it may be committed; the backup made first is kept: remove the statement from the script, and check the database (restore the backup if needed)", at_line(*.line))]
    TransactionEnded {
        path: PathBuf,
        script: String,
        line: usize,
    },

    #[error("{path}: {script}{} failed: {message}; the database was left as it was", at_line(*.line))]
    StepFailed {
        path: PathBuf,
        script: String,
        line: usize,
        message: String,
    },

    #[error("{path}: {script} set schema_version to {found}, neither the step's source v{from} nor its target v{to}; the database was left as it was")]
    VersionTampered {
        path: PathBuf,
        script: String,
        found: String,
        from: String,
        to: String,
    },

    #[error("{path}: after {script}, {count} row(s) break a foreign key (first: {first}); the database was left as it was")]
    ForeignKeys {
        path: PathBuf,
        script: String,
        count: usize,
        /// The first violation, e.g. `table files, row 3, referring to project`.
        first: String,
    },

    #[error("{file} does not build a database: {}{message}: fix the file, or point to another", at_line_colon(*.line))]
    TargetSchema {
        file: String,
        line: usize,
        message: String,
    },

    /// `account` lists every loss: `table notes (3 rows) dropped; column tasks.priority (2 values) dropped`.
    #[error("{path}: {step} would lose data: {account}; nothing was changed, the data is still in {path}: move it first with a script, or run again with --allow-data-loss (the backup made first keeps it)")]
    DataLoss {
        path: PathBuf,
        step: String,
        account: String,
    },

    #[error("{path}: {count} row(s) of table {table} break the target's {constraint} (rowid {rowids}); nothing was changed: fix or delete those rows, then run again")]
    Tighter {
        path: PathBuf,
        table: String,
        constraint: String,
        count: usize,
        rowids: String,
    },

    #[error("{path}: after {step} the schema still differs from the target ({count} difference(s), first: {first}); the database was left as it was")]
    NotConverged {
        path: PathBuf,
        step: String,
        count: usize,
        first: String,
    },

    #[error("{folder} is not an installed AIFP package ({why}): pass the package folder (the one holding __init__.py and database/schemas) with --aifp-package, or unset AIFP_PACKAGE")]
    BadPackage { folder: PathBuf, why: String },

    /// `what` says the versions and what to do (see `goal::steps`).
    #[error("{path} is at {what}")]
    AheadOfPackage { path: PathBuf, what: String },

    /// `what` names both folders with their versions and rows, and says what to do.
    #[error("{root} holds both {what}")]
    BothFolders { root: PathBuf, what: String },

    #[error("{path} went from v{planned} to v{found} while this run was planning (another aifp-migrate or AIFP changed it); nothing was changed: check it again (aifp-migrate --check) and run again")]
    ChangedMeanwhile {
        path: PathBuf,
        planned: String,
        found: String,
    },

    #[error("{path}: after {step}, {message}: a view or trigger names something that no longer exists; the database was left as it was")]
    Dangling {
        path: PathBuf,
        step: String,
        message: String,
    },

    #[error("{path}: backup to {backup} failed: {message}; nothing was changed")]
    Backup {
        path: PathBuf,
        backup: PathBuf,
        message: String,
    },

    #[error("{path}: cannot restore from {backup}: {why}; nothing was changed: pick another backup with --from (aifp-migrate --list-backups)")]
    BadBackup {
        path: PathBuf,
        backup: PathBuf,
        why: String,
    },

    #[error("no backup of {path} found beside it: nothing to restore (pass one with --from FILE)")]
    NoBackup { path: PathBuf },

    #[error("{0}")]
    NothingToRestore(String),

    /// A rehearsal's failure, already phrased for the real database.
    #[error("{0}")]
    Rehearsal(String),

    /// The environment the tool runs in is unusable (no current folder, no home folder).
    #[error("{0}")]
    Environment(String),

    #[error("the migration set {set} has no initial schema at or below v{version}, so the schema of v{version} cannot be built: add v<V>_initial_schema.sql")]
    NoInitialSchema { set: String, version: String },

    #[error("{path} does not have the schema of v{version} ({count} difference(s), first: {first}); nothing was changed: {hint}")]
    StampMismatch {
        path: PathBuf,
        version: String,
        count: usize,
        first: String,
        hint: String,
    },

    #[error("{path}: interrupted by {}; the transaction was rolled back and nothing was changed", crate::interrupt::name(*.signal))]
    Interrupted { path: PathBuf, signal: i32 },

    #[error("{path}: COMMIT failed ({message}); it was rolled back, and the database reads as before{}", kept(.backup))]
    CommitFailed {
        path: PathBuf,
        message: String,
        backup: Option<PathBuf>,
    },

    #[error("{path}: {message}")]
    Sqlite { path: PathBuf, message: String },

    /// An error, with what most likely caused it and what to do.
    #[error("{error} ({hint})")]
    Hinted { error: Box<Error>, hint: String },

    /// Several errors found while planning; each is printed on a line of its own.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Many(Vec<Error>),
}

/// " line N", or nothing for a failure that belongs to the script as a whole (line 0).
fn at_line(line: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(" line {line}")
    }
}

/// Where the backup of a failed COMMIT is kept, since what such a COMMIT left cannot be proven.
fn kept(backup: &Option<PathBuf>) -> String {
    backup.as_ref().map_or(String::new(), |b| {
        format!(" (its backup is kept at {}, in case)", b.display())
    })
}

/// "line N: ", or nothing for a failure of the file as a whole (line 0).
fn at_line_colon(line: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!("line {line}: ")
    }
}

/// Where a statement of a script failed and why, on one line: SQLite's message (never the
/// statement itself), at the line of the token SQLite points to when it names one, else at the
/// statement's first line. `text` is the statement and `line` the line of the script it starts on.
pub fn statement_failure(e: &rusqlite::Error, text: &str, line: usize) -> (usize, String) {
    let (line, message) = match e {
        rusqlite::Error::SqlInputError {
            msg, sql, offset, ..
        } => {
            // `sql` is the part of `text` SQLite was reading, and `offset` a byte offset into it.
            let base = text.len().saturating_sub(sql.len());
            let at = usize::try_from(*offset).map_or(base, |o| base + o);
            let before = text.get(..at).unwrap_or_default();
            (line + before.matches('\n').count(), msg.clone())
        }
        other => (line, sqlite_message(other)),
    };
    (line, one_line(&message))
}

/// SQLite's own message for `e`, without the SQL text rusqlite adds to some.
pub fn sqlite_message(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqlInputError { msg, .. }
        | rusqlite::Error::SqliteFailure(_, Some(msg)) => one_line(msg),
        other => one_line(&other.to_string()),
    }
}

/// `text` with its control characters escaped, so that it prints on one line.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().collect()
            } else {
                c.to_string()
            }
        })
        .collect()
}

impl Error {
    /// The process exit code this error maps to (SPEC: 1 failure, 2 usage error).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            // The shell's convention: 128 + the signal (130 for SIGINT, 143 for SIGTERM).
            Error::Interrupted { signal, .. } => u8::try_from(128 + signal).unwrap_or(1),
            _ => 1,
        }
    }

    /// A plan error for the database at `path`.
    pub fn plan(path: &std::path::Path, source: PlanError) -> Self {
        Error::Plan {
            path: path.to_path_buf(),
            source: Box::new(source),
        }
    }

    /// Wraps a file-system error with the file it happened on.
    pub fn io(path: &std::path::Path, e: &std::io::Error) -> Self {
        Error::Sqlite {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }

    /// Wraps an SQLite error with the database it happened on.
    pub fn sqlite(path: &std::path::Path, e: rusqlite::Error) -> Self {
        Error::Sqlite {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_statement_is_placed_at_the_line_sqlite_points_to_with_its_message_alone() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let text = "CREATE TABLE a (\n  x TEXT,\n  y TEXT DEFAULT,\n  z TEXT\n);";
        let e = conn.execute_batch(text).unwrap_err();
        assert_eq!(
            statement_failure(&e, text, 10),
            (12, "near \",\": syntax error".to_string())
        );
        // An error while running: the statement's first line.
        let text = "INSERT INTO\n  missing VALUES (1);";
        let e = conn.execute_batch(text).unwrap_err();
        let (line, message) = statement_failure(&e, text, 4);
        assert!((4..=5).contains(&line), "{line}");
        assert_eq!(message, "no such table: missing");
        assert_eq!(one_line("a\nb\tc"), "a\\nb\\tc");
    }
}
