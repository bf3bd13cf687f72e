//! The test bench: a temp dir with its own HOME, AIFP_HOME, project and migration sets, the real
//! binary, and readers that look at what is really on disk afterwards.
#![allow(dead_code)]

pub mod released;

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use rusqlite::{Connection, OpenFlags};
use tempfile::TempDir;

/// The repository's bundled migration sets.
pub fn bundled() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations")
}

/// A fixture folder under `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// One scenario's world.
pub struct Env {
    pub tmp: TempDir,
    /// The tool's cache folder: outside the AIFP world, so it never counts as a change there.
    pub cache: TempDir,
    pub home: PathBuf,
    pub core_dir: PathBuf,
    pub project: PathBuf,
    pub migrations: PathBuf,
}

impl Env {
    /// A home, an empty `.aifp-project` in `proj/`, and the bundled migration sets copied in.
    pub fn new() -> Env {
        Env::with_sets(&bundled())
    }

    /// Like `new`, with the migration sets copied from `sets` (a folder of set folders).
    pub fn with_sets(sets: &Path) -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let core_dir = home.join(".aifp");
        let project = tmp.path().join("proj");
        std::fs::create_dir_all(&core_dir).unwrap();
        std::fs::create_dir_all(project.join(".aifp-project")).unwrap();
        let migrations = tmp.path().join("migrations");
        copy_dir(sets, &migrations);
        Env {
            tmp,
            cache: tempfile::tempdir().unwrap(),
            home,
            core_dir,
            project,
            migrations,
        }
    }

    /// The path of database `name` (`aifp_core` lives in AIFP_HOME, the others in the project).
    pub fn db(&self, name: &str) -> PathBuf {
        match name {
            "aifp_core" => self.core_dir.join("aifp_core.db"),
            _ => self
                .project
                .join(".aifp-project")
                .join(format!("{name}.db")),
        }
    }

    /// Creates database `name` from its set's initial schema, in WAL mode like AIFP's own.
    pub fn init_db(&self, name: &str) -> PathBuf {
        let path = self.db(name);
        let sql =
            std::fs::read_to_string(self.migrations.join(name).join("v1.0_initial_schema.sql"))
                .unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "wal").unwrap();
        conn.execute_batch(&sql).unwrap();
        path
    }

    /// Creates all four databases at 1.0.
    pub fn init_all(&self) {
        for name in [
            "aifp_core",
            "project",
            "user_preferences",
            "user_directives",
        ] {
            self.init_db(name);
        }
    }

    /// The real binary, run from `dir` with this world's environment and migration sets.
    pub fn cmd_in(&self, dir: &Path) -> Command {
        let mut cmd = Command::cargo_bin("aifp-migrate").unwrap();
        cmd.current_dir(dir)
            .env("HOME", &self.home)
            .env("AIFP_HOME", &self.core_dir)
            .env("AIFP_MIGRATIONS", &self.migrations)
            .env("XDG_CACHE_HOME", self.cache.path())
            // No installed AIFP unless a test gives one: the bundled sets apply.
            .env("AIFP_PACKAGE", "none")
            .env_remove("NO_COLOR");
        cmd
    }

    /// The real binary, run from the project folder.
    pub fn cmd(&self) -> Command {
        self.cmd_in(&self.project)
    }

    /// Runs with `args` from the project folder and returns what it printed and its exit code.
    pub fn run(&self, args: &[&str]) -> Run {
        Run(self.cmd().args(args).output().unwrap())
    }

    /// Every file under the temp dir with its bytes, to prove that a command changed nothing.
    pub fn files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        walk(self.tmp.path(), &mut out);
        out.sort();
        out
    }
}

/// A finished run of the binary.
pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    /// Asserts the exit code, showing both streams when it differs.
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code(),
            code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout()).unwrap_or_else(|e| panic!("{e}: {}", self.stdout()))
    }
}

fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            let bytes = std::fs::read(&path).unwrap_or_default();
            out.push((path, bytes));
        }
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let dest = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &dest);
        } else {
            std::fs::copy(&path, &dest).unwrap();
        }
    }
}

/// Opens a database read-only for inspection, creating nothing: a read-only connection to a WAL
/// database would leave `-wal`/`-shm` files behind, so one without a `-wal` is read as immutable.
pub fn open(path: &Path) -> Connection {
    if Path::new(&format!("{}-wal", path.display())).exists() {
        return Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    }
    let uri = format!("file:{}?immutable=1", path.display());
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI;
    Connection::open_with_flags(uri, flags).unwrap()
}

/// The version row.
pub fn version(path: &Path) -> String {
    open(path)
        .query_row("SELECT version FROM schema_version WHERE id = 1", [], |r| {
            r.get(0)
        })
        .unwrap()
}

/// The schema: every object's type, name, table and SQL, sorted; `sqlite_*` and the tool's own
/// `aifp_migrate_*` bookkeeping are left out.
pub fn schema(path: &Path) -> Vec<(String, String, String, Option<String>)> {
    schema_of(&open(path))
}

pub fn schema_of(conn: &Connection) -> Vec<(String, String, String, Option<String>)> {
    let mut stmt = conn
        .prepare(
            "SELECT type, name, tbl_name, sql FROM sqlite_master
             WHERE name NOT LIKE 'sqlite_%' AND tbl_name NOT LIKE 'aifp_migrate_%'
             ORDER BY type, name",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap();
    rows.map(Result::unwrap).collect()
}

/// Every row of every table (schema_version included, the tool's `aifp_migrate_*` left out), as
/// text: "logically identical" means equal.
pub fn contents(path: &Path) -> Vec<String> {
    let conn = open(path);
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table'
             AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'aifp_migrate_%' ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut out = Vec::new();
    for t in tables {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{t}\" ORDER BY rowid"))
            .unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            let cells: Vec<String> = (0..n)
                .map(|i| format!("{:?}", row.get_ref(i).unwrap()))
                .collect();
            out.push(format!("{t}: {}", cells.join(" | ")));
        }
    }
    out
}

/// `contents` less the version row, whose `updated_at` records every change: the rows a user
/// wrote, for comparing data across a round trip.
pub fn without_version_row(rows: Vec<String>) -> Vec<String> {
    rows.into_iter()
        .filter(|r| !r.starts_with("schema_version:"))
        .collect()
}

/// Rows in `table`.
pub fn count(path: &Path, table: &str) -> i64 {
    open(path)
        .query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| {
            r.get(0)
        })
        .unwrap()
}

/// The backup files beside a database, sorted by name.
pub fn backups(path: &Path) -> Vec<PathBuf> {
    let prefix = format!("{}.backup_", path.file_name().unwrap().to_string_lossy());
    let mut out: Vec<PathBuf> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&prefix)
        })
        .collect();
    out.sort();
    out
}
