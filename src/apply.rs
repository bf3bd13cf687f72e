//! Running one database's plan: one `BEGIN IMMEDIATE` transaction, all or nothing.
//!
//! Foreign keys are switched off before the transaction (SQLite ignores the pragma inside one).
//! The version is re-read and the plan made again under the write lock, a backup is taken before
//! the first write, and every step, scripted or generated, runs through one executor: its
//! statements, the version row, `foreign_key_check` against what was already broken before, a
//! check that every view and trigger still compiles and, for a generated step, that the schema is
//! the target's. Then every row is accounted for, `sqlite_sequence` is kept from going down, and
//! the transaction waits for COMMIT until every database of the run got that far.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use serde::Serialize;

use crate::backup;
use crate::error::Error;
use crate::history;
use crate::inspect::{self, classify, State};
use crate::plan::Step;
use crate::progress::{Reporter, Unit};
use crate::schema;
use crate::sql::{self, quote};
use crate::version::Version;

/// One step that ran.
#[derive(Debug, Clone)]
pub struct StepDone {
    pub from: Version,
    pub to: Version,
    pub file: String,
    pub kind: &'static str,
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
    pub account: Account,
}

/// What a plan kept and dropped, counted inside its transaction. Text, JSON and the refusal
/// message all render this one value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Account {
    /// What the plan dropped: only ever non-empty when data loss was allowed.
    pub lost: Vec<Loss>,
    /// Rows that already broke a foreign key before the plan ran, kept as they were.
    pub broken_before: Vec<Broken>,
    /// AUTOINCREMENT high-water marks carried over a rebuild.
    pub sequences: Vec<Sequence>,
    /// Full-text indexes built from their content table.
    pub fts_built: Vec<Built>,
    /// Values that held a path under the old state folder, rewritten to the new one.
    pub paths_rewritten: Vec<Rewritten>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rewritten {
    pub table: String,
    pub column: String,
    pub values: i64,
}

/// One thing a plan would drop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum Loss {
    Table {
        table: String,
        rows: i64,
    },
    Rows {
        table: String,
        before: i64,
        after: i64,
    },
    Column {
        table: String,
        column: String,
        values: i64,
    },
}

impl std::fmt::Display for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Loss::Table { table, rows } => write!(f, "table {table} ({rows} row(s)) dropped"),
            Loss::Rows {
                table,
                before,
                after,
            } => write!(
                f,
                "table {table} loses {} of its {before} row(s)",
                before - after
            ),
            Loss::Column {
                table,
                column,
                values,
            } => write!(f, "column {table}.{column} ({values} value(s)) dropped"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Broken {
    pub table: String,
    pub parent: String,
    pub rows: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sequence {
    pub table: String,
    pub seq: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Built {
    pub index: String,
    pub table: String,
    pub rows: i64,
}

/// How one database's plan runs.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub run_id: &'a str,
    pub take_backup: bool,
    pub allow_data_loss: bool,
    /// The state before the plan, to count what dropped columns held, when no backup is taken
    /// (a rehearsal runs on a copy; the original is that state).
    pub before: Option<&'a Path>,
    /// The whole-file check started when the plan was made, if it still runs: its answer is
    /// waited for after the backup and the row counts, before the first statement.
    pub check: Option<&'a Checking>,
}

/// The whole-file `quick_check` of a database about to be migrated, on the connection its plan
/// was made with, in a thread of its own: while it runs, the run takes the write lock, makes
/// the backup and counts the rows (they only read the database), and `wait` is called before
/// the first write. Without a thread to be had, the check runs at once, as it did before.
pub struct Checking {
    path: PathBuf,
    state: Mutex<CheckState>,
}

enum CheckState {
    Running(std::thread::JoinHandle<Result<(), Error>>),
    Done(Result<(), Error>),
}

impl std::fmt::Debug for Checking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Checking({})", self.path.display())
    }
}

impl Checking {
    pub fn start(conn: Connection, path: &Path) -> Checking {
        let owned = path.to_path_buf();
        let state = match std::thread::Builder::new()
            .name("quick_check".into())
            .spawn(move || {
                // It reads each page about once: a small cache, so that its memory (in the
                // thread's own malloc arena, kept after it ends) adds little to the run's peak.
                let _ = conn.execute_batch("PRAGMA cache_size = -256");
                integrity(&conn, &owned, "before migrating")
            }) {
            Ok(thread) => CheckState::Running(thread),
            // The connection went with the closure that was never run: check on a new one.
            Err(_) => CheckState::Done(check_alone(path)),
        };
        Checking {
            path: path.to_path_buf(),
            state: Mutex::new(state),
        }
    }

    /// The check's answer, waiting for it if it still runs (again on a new connection, should
    /// its thread have ended without one).
    pub fn wait(&self) -> Result<(), Error> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let done = match std::mem::replace(&mut *state, CheckState::Done(Ok(()))) {
            CheckState::Running(thread) => {
                thread.join().unwrap_or_else(|_| check_alone(&self.path))
            }
            CheckState::Done(result) => result,
        };
        *state = CheckState::Done(done.clone());
        done
    }
}

/// The check before migrating, on a read-only connection of its own.
fn check_alone(path: &Path) -> Result<(), Error> {
    let conn = inspect::open(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    integrity(&conn, path, "before migrating")
}

/// A database whose plan ran and whose transaction waits for COMMIT (or for the run to fail).
pub struct Pending {
    /// `None` when there was nothing to do: no transaction is open.
    conn: Option<Held>,
    path: PathBuf,
    pub applied: Applied,
}

/// The write connection of one database's run, with a descriptor of the database file for the
/// kernel-copy backup and the syncs, closed only after the connection (fields drop in order):
/// closing any descriptor of a file drops every POSIX lock the process holds on it, and with
/// them SQLite's write lock.
struct Held {
    conn: Connection,
    file: std::fs::File,
}

impl Held {
    /// Opens `path` for the run: foreign keys off (outside any transaction, or SQLite ignores it).
    fn open(path: &Path) -> Result<Held, Error> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, &e))?;
        let conn = inspect::open(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        conn.execute_batch("PRAGMA foreign_keys = OFF")
            .map_err(|e| classify(path, e))?;
        // SQLite's sorter (an index built over many rows) may hand sorting to one more thread.
        conn.execute_batch("PRAGMA threads = 1")
            .map_err(|e| classify(path, e))?;
        Ok(Held { conn, file })
    }
}

impl std::ops::Deref for Held {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl Pending {
    /// Commits. After a failed COMMIT whose transaction is still open (a reader in the way:
    /// nothing was written), it is rolled back and the backup removed; when SQLite ended the
    /// transaction itself (a full disk, an I/O error), what reached the disk cannot be proven,
    /// so the backup is kept.
    pub fn commit(mut self) -> Result<Applied, Error> {
        let Some(conn) = self.conn.take() else {
            return Ok(self.applied);
        };
        match conn.execute_batch("COMMIT") {
            Ok(()) => Ok(self.applied),
            Err(e) => {
                let still_open = !conn.is_autocommit();
                if still_open {
                    undo(&conn, self.applied.backup.as_deref(), None);
                }
                let message = match classify(&self.path, e) {
                    Error::Sqlite { message, .. } => message,
                    other => other.to_string(),
                };
                Err(Error::CommitFailed {
                    path: self.path.clone(),
                    message,
                    backup: self.applied.backup.clone().filter(|_| !still_open),
                })
            }
        }
    }

    /// Rolls back, and removes the backup: nothing was committed, so it holds nothing the
    /// database does not.
    pub fn abandon(mut self) {
        if let Some(conn) = self.conn.take() {
            undo(&conn, self.applied.backup.as_deref(), None);
        }
    }
}

/// Brings the database at `path` where `plan` says: `plan` is asked, under the write lock,
/// for the steps from the version found there. Everything runs and is checked, but not
/// committed: the caller commits every database of the run together.
pub fn begin(
    path: &Path,
    request: Request<'_>,
    plan: impl FnOnce(&Connection, &Version) -> Result<Vec<Step>, Error>,
    progress: &Reporter,
) -> Result<Pending, Error> {
    let conn = Held::open(path)?;
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| classify(path, e))?;
    let planned = inspect::require_version(&conn, path).and_then(|from| {
        let steps = plan(&conn, &from)?;
        Ok((from, steps))
    });
    let (from, steps) = match planned {
        Ok(p) => p,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
    };
    let mut pending = Pending {
        conn: None,
        path: path.to_path_buf(),
        applied: Applied {
            from: from.clone(),
            to: steps.last().map_or(from, |s| s.to.clone()),
            backup: None,
            steps: Vec::new(),
            account: Account::default(),
        },
    };
    if steps.is_empty() {
        let _ = conn.execute_batch("ROLLBACK");
        return Ok(pending);
    }
    if request.take_backup {
        // We hold the write lock: any unfinished backup beside the database is a dead run's.
        backup::remove_leftovers(path);
        match backup::take_locked(path, &conn, &conn.file, progress) {
            Ok(b) => pending.applied.backup = Some(b),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
    }
    let before = pending.applied.backup.as_deref().or(request.before);
    let ran = run_plan(
        &conn,
        path,
        &steps,
        request,
        before,
        &pending.applied,
        progress,
    );
    match ran {
        Ok((done, account)) => {
            pending.applied.steps = done;
            pending.applied.account = account;
            pending.conn = Some(conn);
            Ok(pending)
        }
        Err(e) => {
            undo(&conn, pending.applied.backup.as_deref(), Some(&e));
            Err(e)
        }
    }
}

/// `begin`, then COMMIT: one database on its own.
pub fn migrate(
    path: &Path,
    request: Request<'_>,
    plan: impl FnOnce(&Connection, &Version) -> Result<Vec<Step>, Error>,
    progress: &Reporter,
) -> Result<Applied, Error> {
    begin(path, request, plan, progress)?.commit()
}

/// Rolls the open transaction back and removes `backup`: nothing was committed, so it holds
/// nothing the database does not. A transaction SQLite rolled back itself after a failed
/// statement (a full disk) is as good; one a statement ended (`failure` says so) may have
/// committed what ran before it, so then, or when the ROLLBACK fails, the backup stays.
fn undo(conn: &Connection, backup: Option<&Path>, failure: Option<&Error>) {
    let ended_by_a_statement = matches!(failure, Some(Error::TransactionEnded { .. }));
    let rolled_back = conn.is_autocommit() || conn.execute_batch("ROLLBACK").is_ok();
    if let (true, false, Some(backup)) = (rolled_back, ended_by_a_statement, backup) {
        let _ = std::fs::remove_file(backup);
    }
}

/// Puts a committed database back from the backup its run made, through SQLite's online backup
/// API into the live file (never a file copy over it).
pub fn put_back(path: &Path, backup: &Path) -> Result<(), Error> {
    let mut conn = inspect::open(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.restore(
        rusqlite::MAIN_DB,
        backup,
        None::<fn(rusqlite::backup::Progress)>,
    )
    .map_err(|e| classify(path, e))
}

/// Runs every step, then accounts for every row. The transaction is left open.
fn run_plan(
    held: &Held,
    path: &Path,
    steps: &[Step],
    request: Request<'_>,
    before: Option<&Path>,
    applied: &Applied,
    progress: &Reporter,
) -> Result<(Vec<StepDone>, Account), Error> {
    let conn: &Connection = held;
    // Damage the row counts trip over is the check's to name, as when it ran at planning.
    let baseline = Baseline::read(conn).map_err(|e| classify(path, e));
    if let Some(check) = request.check {
        check.wait()?;
    }
    let baseline = baseline?;
    // A signal that came while the check, the backup's last part or the row counts ran stops
    // the run here, before the first statement (a small step would run and commit unlooked).
    crate::interrupt::check(path)?;
    let mut renames = Renames::default();
    let written = Arc::new(Mutex::new(Written::default()));
    let done = run_steps(
        conn,
        path,
        steps,
        request.run_id,
        applied.backup.as_deref(),
        &baseline,
        (&mut renames, &written),
        progress,
    )?;
    let last = steps.last().map_or(String::new(), |s| s.file.clone());
    let (mut account, rows_after) = baseline
        .account(conn, before, &renames)
        .map_err(|e| classify(path, e))?;
    if !account.lost.is_empty() && !request.allow_data_loss {
        let lost: Vec<String> = account.lost.iter().map(ToString::to_string).collect();
        return Err(Error::DataLoss {
            path: path.to_path_buf(),
            step: if steps.len() == 1 {
                last
            } else {
                "the plan".to_string()
            },
            account: lost.join("; "),
        });
    }
    account.sequences = baseline
        .keep_sequences(conn, &renames)
        .map_err(|e| classify(path, e))?;
    for step in steps {
        for (table, column, values) in step.converge.iter().flat_map(|c| &c.rewrites) {
            account.paths_rewritten.push(Rewritten {
                table: table.clone(),
                column: column.clone(),
                values: *values,
            });
        }
        for (index, table) in step.converge.iter().flat_map(|c| &c.fts_built) {
            // The account counted the table already: no second full scan of a big table.
            let rows = match rows_after.get(table.as_str()) {
                Some(rows) => *rows,
                None => count(conn, table).map_err(|e| classify(path, e))?,
            };
            account.fts_built.push(Built {
                index: index.clone(),
                table: table.clone(),
                rows,
            });
        }
    }
    let written = written
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    check_before_commit(conn, &held.file, path, &written)?;
    Ok((done, account))
}

/// Runs the steps in order, recording each in the history table inside the same transaction.
#[allow(clippy::too_many_arguments)]
fn run_steps(
    conn: &Connection,
    path: &Path,
    steps: &[Step],
    run_id: &str,
    backup: Option<&Path>,
    baseline: &Baseline,
    (renames, written): (&mut Renames, &Arc<Mutex<Written>>),
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
    for step in steps {
        let started = Instant::now();
        if let Some(converge) = &step.converge {
            refuse_tighter(conn, path, &converge.tighter)?;
        }
        renames.extend(run_statements(conn, path, step, Some(written))?);
        finish_step(conn, path, step, baseline, renames)?;
        let took = started.elapsed();
        let sha256 = history::sha256(&step.sql);
        let entry = history::Entry {
            run_id,
            direction: if step.to < step.from { "down" } else { "up" },
            from: Some(step.from.to_string()),
            to: Some(step.to.to_string()),
            script: Some(&step.file),
            sha256: Some(sha256.clone()),
            duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            backup,
        };
        history::record(conn, &entry).map_err(|e| Error::StepFailed {
            path: path.to_path_buf(),
            script: step.file.clone(),
            line: 0,
            message: format!("recording it in {}: {e}", history::TABLE),
        })?;
        done.push(StepDone {
            from: step.from.clone(),
            to: step.to.clone(),
            file: step.file.clone(),
            kind: step.kind(),
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
                // Returning true interrupts the statement: it fails, and the step with it.
                crate::interrupt::received().is_some()
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
/// Meanwhile another thread syncs what the steps already wrote to the database file and its
/// `-wal` or `-journal` (spilled pages, frames), so that COMMIT's own sync has little left to do.
/// Syncing pages SQLite already wrote only makes them durable sooner: SQLite writes a page of the
/// file only once the journal that can undo it is synced, and a frame counts only after its
/// commit frame.
fn check_before_commit(
    conn: &Connection,
    file: &std::fs::File,
    path: &Path,
    written: &Written,
) -> Result<(), Error> {
    std::thread::scope(|scope| {
        let syncing = std::thread::Builder::new().spawn_scoped(scope, || sync_written(file, path));
        let checked = match written.tables(conn) {
            Ok(Some(tables)) => quick_check(conn, path, "before COMMIT", &tables),
            Ok(None) => integrity(conn, path, "before COMMIT"),
            Err(e) => Err(classify(path, e)),
        };
        // No thread to be had: COMMIT's own sync does it all, as it would anyway.
        drop(syncing);
        checked
    })
}

/// What a plan's statements write, as SQLite's authorizer reports it while each is prepared
/// (with the statements of the triggers it fires): the tables to check again before COMMIT, or
/// `whole` when the check cannot be narrowed to tables (a virtual table, ANALYZE, REINDEX, a
/// pragma, anything else).
#[derive(Debug, Default)]
struct Written {
    tables: BTreeSet<String>,
    whole: bool,
}

impl Written {
    /// `REINDEX` with no name (every index) and `ANALYZE` write without asking the authorizer.
    fn statement(&mut self, stmt: &sql::Statement<'_>) {
        let keyword = if stmt.keyword.is_empty() {
            sql::statements(stmt.text)
                .first()
                .map(|s| s.keyword.clone())
                .unwrap_or_default()
        } else {
            stmt.keyword.clone()
        };
        if matches!(keyword.as_str(), "REINDEX" | "ANALYZE" | "PRAGMA") {
            self.whole = true;
        }
    }

    fn note(&mut self, ctx: &AuthContext<'_>) {
        // ALTER TABLE names its database in the action (DROP COLUMN puts the column's name
        // where the database's usually is).
        let database = match ctx.action {
            AuthAction::AlterTable { database_name, .. } => Some(database_name),
            _ => ctx.database_name,
        };
        if database.is_some_and(|db| db != "main") {
            return; // temp
        }
        match ctx.action {
            AuthAction::Insert { table_name }
            | AuthAction::Update { table_name, .. }
            | AuthAction::Delete { table_name }
            | AuthAction::CreateTable { table_name }
            | AuthAction::CreateIndex { table_name, .. }
            | AuthAction::DropTable { table_name }
            | AuthAction::DropIndex { table_name, .. }
            | AuthAction::AlterTable { table_name, .. } => {
                self.tables.insert(table_name.to_lowercase());
            }
            // An index (CREATE INDEX asks for it too): its table, when the check comes.
            AuthAction::Reindex { index_name } => {
                self.tables.insert(index_name.to_lowercase());
            }
            // Reading, and what lives in the schema alone (checked anyway).
            AuthAction::Read { .. }
            | AuthAction::Select
            | AuthAction::Function { .. }
            | AuthAction::Recursive
            | AuthAction::CreateView { .. }
            | AuthAction::DropView { .. }
            | AuthAction::CreateTrigger { .. }
            | AuthAction::DropTrigger { .. } => {}
            // `execute` itself sets it around a rename; it writes nothing.
            AuthAction::Pragma { pragma_name, .. }
                if pragma_name.eq_ignore_ascii_case("legacy_alter_table") => {}
            _ => self.whole = true,
        }
    }

    /// After a statement ran: a table it renamed is checked under its new name, and a table
    /// made later under the old one under that (names are lower-cased, as in `Renames`).
    fn renamed(&mut self, r: &sql::Rename) {
        if r.column.is_none() && self.tables.remove(&r.table) {
            self.tables.insert(r.to.clone());
        }
    }

    /// The tables to check (each with its indexes), named as they are now: those written, and
    /// the schema, version row, history and sequences the run writes itself; `None` for the
    /// whole file. A table written and then dropped is gone, its pages with the free ones.
    fn tables(&self, conn: &Connection) -> rusqlite::Result<Option<Vec<String>>> {
        if self.whole {
            return Ok(None);
        }
        // In an auto-vacuum database a DROP moves the last root page into the freed one and
        // rewrites pointer-map pages: b-trees no statement named change too.
        let auto_vacuum: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
        if auto_vacuum != 0 {
            return Ok(None);
        }
        let mut names = self.tables.clone();
        names.extend(["schema_version", history::TABLE, "sqlite_sequence"].map(str::to_string));
        let mut out = vec!["sqlite_master".to_string()];
        // Tables and indexes by their lower-cased names, folded as the names written were
        // (SQLite's NOCASE folds ASCII alone).
        let schema: Vec<(String, String, Option<String>)> = conn
            .prepare(
                "SELECT s.name, s.tbl_name, t.sql FROM sqlite_master s
                   LEFT JOIN sqlite_master t ON t.type = 'table' AND t.name = s.tbl_name
                  WHERE s.type IN ('table', 'index')",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        // A name written is a table's or an index's (then its table's); one gone was dropped.
        for name in &names {
            let Some((_, table, sql)) = schema.iter().find(|(n, _, _)| n.to_lowercase() == *name)
            else {
                continue;
            };
            let table = table.clone();
            if sql.as_ref().is_some_and(|s| {
                s.trim_start()
                    .to_ascii_uppercase()
                    .starts_with("CREATE VIRTUAL")
            }) {
                return Ok(None);
            }
            if !out.contains(&table) {
                out.push(table);
            }
        }
        Ok(Some(out))
    }
}

/// Records what statements write (`Written`) while it lives: SQLite's authorizer, allowing all.
struct Recording<'c> {
    conn: &'c Connection,
    written: Arc<Mutex<Written>>,
}

impl<'c> Recording<'c> {
    fn start(conn: &'c Connection, written: &Arc<Mutex<Written>>) -> Recording<'c> {
        let noted = Arc::clone(written);
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            if let Ok(mut w) = noted.lock() {
                w.note(&ctx);
            }
            Authorization::Allow
        }));
        Recording {
            conn,
            written: Arc::clone(written),
        }
    }

    fn with(&self, f: impl FnOnce(&mut Written)) {
        if let Ok(mut w) = self.written.lock() {
            f(&mut w);
        }
    }
}

impl Drop for Recording<'_> {
    fn drop(&mut self) {
        self.conn
            .authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
    }
}

/// `fdatasync` of the database file (through `file`, never a descriptor of its own: see `Held`)
/// and of its `-wal` and `-journal` where they exist, which SQLite locks nothing in; errors are
/// left to COMMIT's own sync, which reports them.
fn sync_written(file: &std::fs::File, path: &Path) {
    let _ = file.sync_data();
    for side in [
        inspect::suffixed(path, "-wal"),
        inspect::suffixed(path, "-journal"),
    ] {
        if let Ok(f) = std::fs::File::open(&side) {
            let _ = f.sync_data();
        }
    }
}

/// Runs one step's statements inside the open transaction; returns the renames they made.
fn run_statements(
    conn: &Connection,
    path: &Path,
    step: &Step,
    written: Option<&Arc<Mutex<Written>>>,
) -> Result<Renames, Error> {
    let mut renames = Renames::default();
    let recording = written.map(|w| Recording::start(conn, w));
    let generated: Vec<sql::Statement<'_>>;
    let statements = match &step.converge {
        Some(c) => {
            generated = c
                .statements
                .iter()
                .enumerate()
                .map(|(i, text)| sql::Statement {
                    text,
                    line: i + 1,
                    keyword: String::new(),
                })
                .collect();
            &generated
        }
        None => &sql::statements(&step.sql),
    };
    for stmt in statements {
        if let Some(r) = &recording {
            r.with(|w| w.statement(stmt));
        }
        execute(conn, stmt.text).map_err(|e| {
            let (line, message) = crate::error::statement_failure(&e, stmt.text, stmt.line);
            Error::StepFailed {
                path: path.to_path_buf(),
                script: step.file.clone(),
                line,
                message,
            }
        })?;
        // Planning refuses transaction control, but should a statement still end the tool's
        // transaction, stop at once rather than run the rest outside one.
        if conn.is_autocommit() {
            return Err(Error::TransactionEnded {
                path: path.to_path_buf(),
                script: step.file.clone(),
                line: stmt.line,
            });
        }
        let rename = sql::rename(stmt.text);
        if let (Some(r), Some(rename)) = (&recording, &rename) {
            r.with(|w| w.renamed(rename));
        }
        renames.note(rename);
    }
    Ok(renames)
}

/// Runs one statement. An `ALTER TABLE … RENAME TO` runs as in `sqlite3`, updating the views,
/// triggers and foreign keys that name the table; only when SQLite refuses it because a view or
/// trigger names a table that is not there (step 10 of the 12-step rebuild: `new_X` takes the
/// name of the `X` just dropped, which they still name) is it run again with
/// `legacy_alter_table`, which leaves them as they are, now naming the rebuilt table.
pub fn execute(conn: &Connection, text: &str) -> rusqlite::Result<()> {
    match conn.execute_batch(text) {
        Err(e)
            if sql::rename(text).is_some_and(|r| r.column.is_none()) && {
                let m = crate::error::sqlite_message(&e);
                m.starts_with("error in view") || m.starts_with("error in trigger")
            } =>
        {
            conn.execute_batch("PRAGMA legacy_alter_table = ON")?;
            let retried = conn.execute_batch(text);
            conn.execute_batch("PRAGMA legacy_alter_table = OFF")?;
            retried
        }
        other => other,
    }
}

/// After a step's statements: the version row, foreign keys, views and triggers, and for a
/// generated step, the schema it had to reach.
fn finish_step(
    conn: &Connection,
    path: &Path,
    step: &Step,
    baseline: &Baseline,
    renames: &Renames,
) -> Result<(), Error> {
    set_step_version(conn, path, step)?;
    check_foreign_keys(conn, path, step, baseline, renames)?;
    check_compiles(conn, path, step)?;
    if let Some(converge) = &step.converge {
        let actual = schema::read(conn).map_err(|e| classify(path, e))?;
        let differences = schema::diff(&converge.target, &actual);
        if let Some(first) = differences.first() {
            return Err(Error::NotConverged {
                path: path.to_path_buf(),
                step: step.file.clone(),
                count: differences.len(),
                first: first.clone(),
            });
        }
    }
    Ok(())
}

/// Runs a step alone on `conn` (a scratch replay): statements, version row, checks.
pub fn run_step(conn: &Connection, path: &Path, step: &Step) -> Result<(), Error> {
    let baseline = Baseline::read(conn).map_err(|e| classify(path, e))?;
    let renames = run_statements(conn, path, step, None)?;
    finish_step(conn, path, step, &baseline, &renames)
}

/// Checks the version row a step left, then sets it to the step's target.
fn set_step_version(conn: &Connection, path: &Path, step: &Step) -> Result<(), Error> {
    let found = match inspect::read_version(conn, path) {
        Ok(State::Versioned(v)) if v == step.from || v == step.to => None,
        Ok(State::Versioned(v)) => Some(v.to_string()),
        Ok(_) => Some("nothing (the row or table is gone)".to_string()),
        Err(e) => Some(e.to_string()),
    };
    if let Some(found) = found {
        return Err(Error::VersionTampered {
            path: path.to_path_buf(),
            script: step.file.clone(),
            found,
            from: step.from.to_string(),
            to: step.to.to_string(),
        });
    }
    conn.execute(
        "UPDATE schema_version SET version = ?1, updated_at = CURRENT_TIMESTAMP WHERE id = 1",
        [step.to.to_string()],
    )
    .map_err(|e| Error::StepFailed {
        path: path.to_path_buf(),
        script: step.file.clone(),
        line: 0,
        message: format!(
            "writing the version row: {}",
            crate::error::sqlite_message(&e)
        ),
    })?;
    Ok(())
}

/// Every view and trigger must still compile: renaming a scratch table makes SQLite re-read
/// the whole schema, and it names the first view or trigger that refers to something gone.
fn check_compiles(conn: &Connection, path: &Path, step: &Step) -> Result<(), Error> {
    // A script may have switched legacy ALTER TABLE on, which skips that re-reading.
    let probe = "PRAGMA legacy_alter_table = OFF;
        CREATE TABLE aifp_migrate_probe (x);
        ALTER TABLE aifp_migrate_probe RENAME TO aifp_migrate_probe_renamed;
        DROP TABLE aifp_migrate_probe_renamed;";
    conn.execute_batch(probe).map_err(|e| {
        // Leave no probe behind whatever failed (the transaction is rolled back anyway).
        let _ = conn.execute_batch(
            "DROP TABLE IF EXISTS aifp_migrate_probe; DROP TABLE IF EXISTS aifp_migrate_probe_renamed;",
        );
        Error::Dangling {
            path: path.to_path_buf(),
            step: step.file.clone(),
            message: crate::error::sqlite_message(&e),
        }
    })
}

/// Looks for the rows a generated step's tighter constraints would reject, before it runs.
fn refuse_tighter(
    conn: &Connection,
    path: &Path,
    tighter: &[crate::converge::Tightening],
) -> Result<(), Error> {
    for t in tighter {
        // A query that cannot run (a CHECK naming a column still to come) proves nothing here;
        // the step then fails with SQLite's own message.
        let Ok(mut stmt) = conn.prepare(&t.query) else {
            continue;
        };
        let rows: Vec<Option<i64>> = match stmt.query_map([], |r| r.get(0)) {
            Ok(rows) => rows.filter_map(Result::ok).collect(),
            Err(_) => continue,
        };
        if rows.is_empty() {
            continue;
        }
        let mut shown: Vec<String> = rows
            .iter()
            .take(5)
            .map(|r| r.map_or("?".to_string(), |r| r.to_string()))
            .collect();
        if rows.len() > 5 {
            shown.push("…".to_string());
        }
        return Err(Error::Tighter {
            path: path.to_path_buf(),
            table: t.table.clone(),
            constraint: t.constraint.clone(),
            count: rows.len(),
            rowids: shown.join(", "),
        });
    }
    Ok(())
}

/// Step 11 of SQLite's table rebuild: no row may break a foreign key before COMMIT that did not
/// already break one before the plan ran.
fn check_foreign_keys(
    conn: &Connection,
    path: &Path,
    step: &Step,
    baseline: &Baseline,
    renames: &Renames,
) -> Result<(), Error> {
    // The check itself fails when a schema the step left makes a foreign key meaningless
    // (a parent without the key it names): that is the step's failure too.
    let found = foreign_key_violations(conn).map_err(|e| Error::StepFailed {
        path: path.to_path_buf(),
        script: step.file.clone(),
        line: 0,
        message: format!("foreign key check after the step: {e}"),
    })?;
    let mut new = 0;
    let mut first = None;
    for ((table, parent), v) in &found {
        let was = baseline
            .fk
            .iter()
            .find(|((t, p), _)| renames.table(t) == *table && renames.table(p) == *parent)
            .map_or(0, |(_, b)| b.rows);
        if v.rows > was {
            new += v.rows - was;
            first.get_or_insert_with(|| v.first.clone());
        }
    }
    match first {
        None => Ok(()),
        Some(first) => Err(Error::ForeignKeys {
            path: path.to_path_buf(),
            script: step.file.clone(),
            count: new,
            first,
        }),
    }
}

/// Rows that break a foreign key, per child table and parent: how many, and the first.
#[derive(Debug, Clone, Default)]
struct Violations {
    rows: usize,
    first: String,
}

fn foreign_key_violations(
    conn: &Connection,
) -> rusqlite::Result<BTreeMap<(String, String), Violations>> {
    let mut stmt = conn.prepare("PRAGMA foreign_key_check")?;
    let mut rows = stmt.query([])?;
    let mut out: BTreeMap<(String, String), Violations> = BTreeMap::new();
    while let Some(row) = rows.next()? {
        let table: String = row.get(0)?;
        let rowid: Option<i64> = row.get(1)?;
        let parent: String = row.get(2)?;
        let entry = out
            .entry((table.to_lowercase(), parent.to_lowercase()))
            .or_default();
        entry.rows += 1;
        if entry.first.is_empty() {
            let rowid = rowid.map_or("(without rowid)".to_string(), |r| r.to_string());
            entry.first = format!("table {table}, row {rowid}, referring to {parent}");
        }
    }
    Ok(out)
}

/// Tables and columns renamed by the statements that ran (`ALTER TABLE … RENAME`): a renamed
/// table or column is the same one under its new name, never a loss.
#[derive(Debug, Clone, Default)]
struct Renames {
    tables: Vec<(String, String)>,
    columns: Vec<(String, String, String)>,
}

impl Renames {
    fn note(&mut self, rename: Option<sql::Rename>) {
        if let Some(r) = rename {
            match r.column {
                None => self.tables.push((r.table, r.to)),
                Some(col) => self.columns.push((self.table(&r.table), col, r.to)),
            }
        }
    }

    fn extend(&mut self, other: Renames) {
        self.tables.extend(other.tables);
        self.columns.extend(other.columns);
    }

    /// What `table` is called now.
    fn table(&self, table: &str) -> String {
        let mut name = table.to_lowercase();
        for (from, to) in &self.tables {
            if *from == name {
                name.clone_from(to);
            }
        }
        name
    }

    /// What `column` of the table now called `table` is called now.
    fn column(&self, table: &str, column: &str) -> String {
        let mut name = column.to_lowercase();
        for (t, from, to) in &self.columns {
            if self.table(t) == table && *from == name {
                name.clone_from(to);
            }
        }
        name
    }
}

/// What a database held before its plan ran, to account for every row after.
#[derive(Debug, Default)]
struct Baseline {
    /// Per table (lower-cased): its name, rows and columns (lower-cased).
    tables: BTreeMap<String, (String, i64, Vec<String>)>,
    sequences: BTreeMap<String, i64>,
    fk: BTreeMap<(String, String), Violations>,
}

impl Baseline {
    fn read(conn: &Connection) -> rusqlite::Result<Baseline> {
        let tables = data_tables(conn)?
            .into_iter()
            .map(|(name, columns)| {
                let rows = count(conn, &name)?;
                Ok((name.to_lowercase(), (name, rows, columns)))
            })
            .collect::<rusqlite::Result<_>>()?;
        Ok(Baseline {
            tables,
            sequences: sequences(conn)?,
            fk: foreign_key_violations(conn)?,
        })
    }

    /// What the plan kept and dropped: `before` is a file holding the state before it ran, to
    /// count the values of dropped columns in. Also the rows each kept table has now (by its
    /// lower-cased name), counted on the way.
    fn account(
        &self,
        conn: &Connection,
        before: Option<&Path>,
        renames: &Renames,
    ) -> rusqlite::Result<(Account, BTreeMap<String, i64>)> {
        let now: BTreeMap<String, (String, Vec<String>)> = data_tables(conn)?
            .into_iter()
            .map(|(name, cols)| (name.to_lowercase(), (name, cols)))
            .collect();
        // Read as the checks read: nothing may appear beside the backup (or the original).
        let old = before.and_then(|p| inspect::open_for_reading(p).ok());
        let mut lost = Vec::new();
        let mut rows_after = BTreeMap::new();
        for (key, (name, rows, columns)) in &self.tables {
            let renamed = renames.table(key);
            let Some((now_name, now_cols)) = now.get(&renamed) else {
                if *rows > 0 {
                    lost.push(Loss::Table {
                        table: name.clone(),
                        rows: *rows,
                    });
                }
                continue;
            };
            let after = count(conn, now_name)?;
            rows_after.insert(now_name.to_lowercase(), after);
            if after < *rows {
                lost.push(Loss::Rows {
                    table: now_name.clone(),
                    before: *rows,
                    after,
                });
            }
            for col in columns {
                if now_cols.contains(&renames.column(&renamed, col)) {
                    continue;
                }
                let Some(old) = &old else { continue };
                let values: i64 = old.query_row(
                    &format!("SELECT count({}) FROM {}", quote(col), quote(name)),
                    [],
                    |r| r.get(0),
                )?;
                if values > 0 {
                    lost.push(Loss::Column {
                        table: now_name.clone(),
                        column: col.clone(),
                        values,
                    });
                }
            }
        }
        let broken_before = self
            .fk
            .iter()
            .map(|((table, parent), v)| Broken {
                table: table.clone(),
                parent: parent.clone(),
                rows: v.rows,
            })
            .collect();
        let account = Account {
            lost,
            broken_before,
            ..Account::default()
        };
        Ok((account, rows_after))
    }

    /// Raises each AUTOINCREMENT table's `sqlite_sequence` row back to where it was, so ids that
    /// were handed out (and deleted since) are never handed out again. Returns those it raised.
    fn keep_sequences(
        &self,
        conn: &Connection,
        renames: &Renames,
    ) -> rusqlite::Result<Vec<Sequence>> {
        let now = sequences(conn)?;
        let mut raised = Vec::new();
        for (table, seq) in &self.sequences {
            let table = renames.table(table);
            if now.get(&table).is_some_and(|s| s >= seq) || !autoincrement(conn, &table)? {
                continue;
            }
            let updated = conn.execute(
                "UPDATE sqlite_sequence SET seq = ?2 WHERE lower(name) = ?1",
                rusqlite::params![table, seq],
            )?;
            if updated == 0 {
                conn.execute(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES (?1, ?2)",
                    rusqlite::params![table, seq],
                )?;
            }
            raised.push(Sequence { table, seq: *seq });
        }
        Ok(raised)
    }
}

/// The tables that hold data of their own, with their columns: ordinary tables and virtual
/// tables that keep their own content (not an external-content index, which can be rebuilt).
fn data_tables(conn: &Connection) -> rusqlite::Result<Vec<(String, Vec<String>)>> {
    let mut stmt = conn.prepare(
        "SELECT l.name, l.type, m.sql FROM pragma_table_list l
         JOIN sqlite_master m ON m.name = l.name AND m.type = 'table'
         WHERE l.schema = 'main' AND l.type IN ('table', 'virtual')",
    )?;
    let found: Vec<(String, String, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (name, kind, text) in found {
        if schema::left_out(&name) {
            continue;
        }
        if kind == "virtual" {
            let text = text.unwrap_or_default();
            let toks = sql::lex(&text);
            if toks
                .windows(2)
                .any(|w| w[0].norm == "content" && w[1].norm == "=")
            {
                continue;
            }
        }
        let mut stmt = conn.prepare("SELECT lower(name) FROM pragma_table_info(?1)")?;
        let columns = stmt
            .query_map([&name], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        out.push((name, columns));
    }
    Ok(out)
}

/// The rows of every table that holds data of its own (what row accounting counts).
pub fn rows_held(conn: &Connection) -> rusqlite::Result<i64> {
    data_tables(conn)?
        .iter()
        .map(|(name, _)| count(conn, name))
        .sum()
}

fn count(conn: &Connection, table: &str) -> rusqlite::Result<i64> {
    conn.query_row(&format!("SELECT count(*) FROM {}", quote(table)), [], |r| {
        r.get(0)
    })
}

fn sequences(conn: &Connection) -> rusqlite::Result<BTreeMap<String, i64>> {
    let exists: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'sqlite_sequence'",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(BTreeMap::new());
    }
    let mut stmt = conn.prepare("SELECT lower(name), seq FROM sqlite_sequence")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

fn autoincrement(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    let text: Option<String> = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND lower(name) = ?1",
            [table],
            |r| r.get(0),
        )
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    Ok(text.is_some_and(|t| sql::tokens(&t).iter().any(|w| w == "autoincrement")))
}

/// `PRAGMA quick_check` through `conn`: a damaged database is never migrated or committed.
///
/// Damage is what the check finds in the file: pages, cells, records, NOT NULL and column types.
/// CHECK constraints are not evaluated, on any connection (SQLite already leaves them out on a
/// read-only one): they are rules for rows as they are written, which SQLite enforces then (a
/// step that writes a row breaking one fails on it, naming it), and a row that broke one before
/// is a fact about the data, not damage a backup would mend. On a rebuilt table with
/// `CHECK (x IN (…))` they would also be most of the check's cost (1.8 s of 2 s on a million rows).
pub fn integrity(conn: &Connection, path: &Path, when: &'static str) -> Result<(), Error> {
    quick_check(conn, path, when, &["5".to_string()])
}

/// `PRAGMA quick_check(arg)` for each of `args`: a number (errors to report) checks the whole
/// file; a table's name checks that table with its indexes. CHECK constraints are left out (see
/// `integrity`).
fn quick_check(
    conn: &Connection,
    path: &Path,
    when: &'static str,
    args: &[String],
) -> Result<(), Error> {
    conn.execute_batch("PRAGMA ignore_check_constraints = ON")
        .map_err(|e| classify(path, e))?;
    let mut found = Vec::new();
    let mut failed = None;
    for arg in args {
        // A count as it is (SQLite reads it from the token itself), a table's name quoted.
        let pragma = if !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_digit()) {
            format!("PRAGMA quick_check({arg})")
        } else {
            format!("PRAGMA quick_check('{}')", arg.replace('\'', "''"))
        };
        match conn.prepare(&pragma).and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        }) {
            Ok(lines) => found.extend(lines.into_iter().filter(|l| l != "ok")),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
        if found.len() >= 5 {
            break;
        }
    }
    conn.execute_batch("PRAGMA ignore_check_constraints = OFF")
        .map_err(|e| classify(path, e))?;
    if let Some(e) = failed {
        return Err(classify(path, e));
    }
    if found.is_empty() {
        return Ok(());
    }
    found.truncate(5);
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
    inspect::check_side_files(path)?;
    let wal = inspect::suffixed(path, "-wal");
    let shm = inspect::suffixed(path, "-shm");
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
    // Opened first so that it is closed last, after the connection (see `Held`).
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, &e))?;
    let mut conn = inspect::open(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| classify(path, e))?;
    let before = match inspect::read_version(&tx, path) {
        Ok(State::Versioned(v)) => Some(v.to_string()),
        _ => None,
    };
    let backup = backup::take_locked(path, &tx, &file, &crate::progress::silent())?;
    let entry = history::Entry {
        run_id,
        direction: "stamp",
        from: before,
        to: Some(version.to_string()),
        script: None,
        sha256: None,
        duration_ms: 0,
        backup: Some(&backup),
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
    create_folder_like_parent(dir)?;
    if !built.is_autocommit() {
        built
            .execute_batch("COMMIT")
            .map_err(|e| Error::sqlite(path, e))?;
    }
    let mut hidden = std::ffi::OsString::from(".");
    hidden.push(path.file_name().unwrap_or_default());
    hidden.push(format!(".aifp-migrate-init-{}", std::process::id()));
    let tmp = dir.join(hidden);
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

/// Creates `dir` and any missing folders above it, each owned like the nearest folder that was
/// there already (root creating a project's folder in another user's tree leaves it theirs).
fn create_folder_like_parent(dir: &Path) -> Result<(), Error> {
    let Some(existing) = dir.ancestors().find(|a| a.is_dir()) else {
        return std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, &e));
    };
    let owner = std::fs::metadata(existing).map_err(|e| Error::io(existing, &e))?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, &e))?;
    for made in dir.ancestors().take_while(|a| *a != existing) {
        if let Ok(folder) = std::fs::File::open(made) {
            backup::own_like(&folder, &owner);
        }
    }
    Ok(())
}

fn write_new_database(built: &Connection, tmp: &Path) -> Result<(), Error> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(|e| Error::io(tmp, &e))?;
    // Owned like its folder: the project's owner, also when root runs --init.
    let folder = tmp.parent().unwrap_or(Path::new("."));
    if let Ok(owner) = std::fs::metadata(folder) {
        backup::own_like(&file, &owner);
    }
    drop(file);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What `statements` write, after `setup`, as recorded and as the tables to check.
    fn written_by(setup: &str, statements: &str) -> (Vec<String>, bool, Option<Vec<String>>) {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(setup).unwrap();
        let written = Arc::new(Mutex::new(Written::default()));
        {
            let recording = Recording::start(&conn, &written);
            for stmt in sql::statements(statements) {
                recording.with(|w| w.statement(&stmt));
                execute(&conn, stmt.text).unwrap();
                if let Some(rename) = sql::rename(stmt.text) {
                    recording.with(|w| w.renamed(&rename));
                }
            }
        }
        // Stopped: what runs now is not recorded.
        conn.execute_batch("PRAGMA user_version = 7; ANALYZE")
            .unwrap();
        let w = written.lock().unwrap();
        let tables = w.tables(&conn).unwrap();
        (w.tables.iter().cloned().collect(), w.whole, tables)
    }

    const SETUP: &str = "CREATE TABLE schema_version (id INTEGER PRIMARY KEY, version TEXT);
        CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
        CREATE TABLE log (note INTEGER);
        CREATE TABLE tags (name TEXT);
        CREATE TRIGGER notes_log AFTER INSERT ON notes BEGIN INSERT INTO log VALUES (new.id); END;";

    #[test]
    fn a_statement_and_the_triggers_it_fires_name_the_tables_they_write() {
        let (written, whole, check) = written_by(SETUP, "INSERT INTO notes (body) VALUES ('a');");
        assert_eq!(written, ["log", "notes"]);
        assert!(!whole);
        assert_eq!(
            check.unwrap(),
            ["sqlite_master", "log", "notes", "schema_version"],
            "tags is not checked again"
        );
    }

    #[test]
    fn schema_changes_name_their_table_and_views_name_none() {
        let (written, whole, check) = written_by(
            SETUP,
            "ALTER TABLE tags ADD COLUMN color TEXT; CREATE INDEX tags_name ON tags (name);
             CREATE VIEW v AS SELECT * FROM notes; CREATE TEMP TABLE scratch (x); INSERT INTO scratch VALUES (1);",
        );
        assert_eq!(written, ["sqlite_master", "tags", "tags_name"]);
        assert!(!whole);
        assert_eq!(check.unwrap(), ["sqlite_master", "schema_version", "tags"]);
    }

    #[test]
    fn a_table_written_then_renamed_is_checked_under_its_new_name() {
        let (written, whole, check) = written_by(
            SETUP,
            "CREATE TABLE new_tags (name TEXT NOT NULL); INSERT INTO new_tags SELECT name FROM tags;
             DROP TABLE tags; ALTER TABLE new_tags RENAME TO tags;",
        );
        // Renamed as it happened: new_tags is recorded under the name it has now.
        assert_eq!(written, ["sqlite_master", "tags"]);
        assert!(!whole);
        assert_eq!(check.unwrap(), ["sqlite_master", "schema_version", "tags"]);
    }

    #[test]
    fn what_cannot_be_narrowed_to_tables_checks_the_whole_file() {
        for statements in [
            "CREATE VIRTUAL TABLE notes_fts USING fts5 (body);",
            "ANALYZE;",
            "REINDEX;",
            "PRAGMA user_version = 3;",
        ] {
            let (_, whole, check) = written_by(SETUP, statements);
            assert!(whole, "{statements}");
            assert_eq!(check, None, "{statements}");
        }
        // Written, and found to be a virtual table when the check comes.
        let (_, whole, check) = written_by(
            &format!("{SETUP} CREATE VIRTUAL TABLE notes_fts USING fts5 (body);"),
            "INSERT INTO notes_fts (body) VALUES ('a');",
        );
        assert_eq!(check, None, "whole {whole}");
    }

    #[test]
    fn an_auto_vacuum_database_is_checked_whole() {
        let (written, whole, check) = written_by(
            &format!("PRAGMA auto_vacuum = FULL; {SETUP}"),
            "INSERT INTO tags VALUES ('a');",
        );
        assert_eq!(written, ["tags"]);
        assert!(!whole);
        assert_eq!(check, None);
    }

    #[test]
    fn a_dropped_column_names_its_table() {
        // SQLite hands the authorizer the column's name where the database's usually is.
        let (written, whole, check) = written_by(
            &format!("{SETUP} ALTER TABLE tags ADD COLUMN color TEXT;"),
            "ALTER TABLE tags DROP COLUMN color;",
        );
        assert!(written.contains(&"tags".to_string()), "{written:?}");
        assert!(!whole);
        assert_eq!(check.unwrap(), ["sqlite_master", "schema_version", "tags"]);
    }

    #[test]
    fn a_table_made_under_a_name_renamed_away_is_checked_under_that_name() {
        let (_, whole, check) = written_by(
            SETUP,
            "ALTER TABLE notes RENAME TO notes_old;
             CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
             INSERT INTO notes SELECT id, body FROM notes_old; DROP TABLE notes_old;",
        );
        assert!(!whole);
        assert_eq!(check.unwrap(), ["sqlite_master", "notes", "schema_version"]);
    }

    #[test]
    fn names_sqlite_folds_otherwise_or_spells_as_strings_are_checked() {
        // SQLite folds ASCII case alone; a string literal names a table too.
        let (_, _, check) = written_by(
            &format!("{SETUP} CREATE TABLE \"Übersicht\" (x);"),
            "INSERT INTO \"Übersicht\" VALUES (1); INSERT INTO tags VALUES ('a');
             ALTER TABLE tags RENAME TO 'Labels';",
        );
        assert_eq!(
            check.unwrap(),
            ["sqlite_master", "Labels", "schema_version", "Übersicht"]
        );
        // A table named by the empty string is checked like any other.
        let (_, _, check) = written_by(SETUP, "CREATE TABLE \"\" (x NOT NULL);");
        let check = check.unwrap();
        assert_eq!(check, ["sqlite_master", "", "schema_version"]);
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(&format!("{SETUP} CREATE TABLE \"\" (x NOT NULL);"))
            .unwrap();
        quick_check(&conn, Path::new("x.db"), "before COMMIT", &check).unwrap();
    }

    fn one<T: rusqlite::types::FromSql>(conn: &Connection, sql: &str) -> T {
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// `result` is the refusal before COMMIT of the NULL in `small.y`, and the database at `path`
    /// is still at 1.0: its connection.
    fn refused_before_commit(path: &Path, result: Result<Applied, Error>) -> Connection {
        match result {
            Err(Error::IntegrityFailed { when, found, .. }) => {
                assert_eq!(when, "before COMMIT");
                assert_eq!(found, "NULL value in small.y");
            }
            other => panic!("{other:?}"),
        }
        let conn = Connection::open(path).unwrap();
        let version: String = one(&conn, "SELECT version FROM schema_version");
        assert_eq!(version, "1.0");
        conn
    }

    #[test]
    fn damage_in_a_table_whose_column_was_dropped_is_found_before_commit() {
        let (_dir, path, result) =
            migrate_with_damage_in("small", "ALTER TABLE small DROP COLUMN extra;");
        let conn = refused_before_commit(&path, result);
        let columns: i64 = one(&conn, "SELECT count(*) FROM pragma_table_info('small')");
        assert_eq!(columns, 2, "the column is still there");
    }

    const INSERT_B: &str = "INSERT INTO small (y) VALUES ('b');";

    /// A database of two tables with rows at 1.0; `damage` (run inside the migration's open
    /// transaction, by the plan) puts a NULL into the NOT NULL column of `table`; then the plan's
    /// one step runs `step`.
    fn migrate_with_damage_in(
        table: &str,
        step: &str,
    ) -> (tempfile::TempDir, PathBuf, Result<Applied, Error>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("project.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_version (id INTEGER PRIMARY KEY, version TEXT NOT NULL,
                 updated_at DATETIME);
             INSERT INTO schema_version (id, version) VALUES (1, '1.0');
             CREATE TABLE big (x TEXT NOT NULL); CREATE TABLE small (y TEXT NOT NULL, extra TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO big SELECT 'row ' || i FROM n;
             INSERT INTO small (y) VALUES ('a');",
        )
        .unwrap();
        drop(conn);
        let request = Request {
            run_id: "test",
            take_backup: true,
            allow_data_loss: false,
            before: None,
            check: None,
        };
        let column = if table == "big" { "x" } else { "y" };
        let plan = |conn: &Connection, from: &Version| {
            let declare = |from: &str, to: &str| {
                conn.execute_batch("PRAGMA writable_schema = ON").unwrap();
                conn.execute(
                    "UPDATE sqlite_master SET sql = replace(sql, ?1, ?2) WHERE name = ?3",
                    [from, to, table],
                )
                .unwrap();
                conn.execute_batch("PRAGMA writable_schema = RESET")
                    .unwrap();
            };
            declare(" TEXT NOT NULL", " TEXT");
            conn.execute_batch(&format!("INSERT INTO {table} ({column}) VALUES (NULL)"))
                .unwrap();
            declare(
                &format!("{column} TEXT"),
                &format!("{column} TEXT NOT NULL"),
            );
            Ok(vec![Step {
                from: from.clone(),
                to: "1.1".parse().unwrap(),
                file: "v1.0_to_v1.1_small.sql".into(),
                origin: "test".into(),
                sql: step.into(),
                converge: None,
            }])
        };
        let result = migrate(&path, request, plan, &crate::progress::silent());
        (dir, path, result)
    }

    #[test]
    fn the_check_before_commit_reads_the_tables_the_plan_wrote_and_no_others() {
        // Damage in a table the plan wrote: refused before COMMIT, nothing changed.
        let (_dir, path, result) = migrate_with_damage_in("small", INSERT_B);
        let conn = refused_before_commit(&path, result);
        let rows: i64 = one(&conn, "SELECT count(*) FROM small");
        assert_eq!(rows, 1);
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("backup"))
            .collect();
        assert!(left.is_empty(), "{left:?}");

        // The same damage in a table the plan never wrote is not read again (the whole file
        // was checked before the plan; here the plan itself put it there).
        let (_dir, path, result) = migrate_with_damage_in("big", INSERT_B);
        let applied = result.unwrap();
        assert_eq!(applied.to.to_string(), "1.1");
        let found: String = one(&Connection::open(&path).unwrap(), "PRAGMA quick_check");
        assert_eq!(found, "NULL value in big.x");
    }
}
