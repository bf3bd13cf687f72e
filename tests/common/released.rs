//! AIFP as it was released: fake installed packages and projects made by a given release, built
//! from the SQL under `tests/fixtures/released/`. That SQL is ours, written from the facts in
//! shared/AIFP-RELEASED.md (versions, layout, what changed between versions), not copied.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

/// The name AIFP was published under: `aifp` up to 1.23.0, `aimfp` from 1.24.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Aifp,
    Aimfp,
}

impl Flavour {
    /// The package's name: its folder in site-packages and the stem of its core database.
    pub fn name(self) -> &'static str {
        match self {
            Flavour::Aifp => "aifp",
            Flavour::Aimfp => "aimfp",
        }
    }

    /// The folder a project keeps its databases in: `.aifp-project` or `.aimfp-project`.
    pub fn folder(self) -> &'static str {
        match self {
            Flavour::Aifp => ".aifp-project",
            Flavour::Aimfp => ".aimfp-project",
        }
    }

    /// The core database's file name: `aifp_core.db` or `aimfp_core.db`.
    pub fn core_db(self) -> String {
        format!("{}_core.db", self.name())
    }

    /// The flavour `release` (e.g. "1.23.0") was published as.
    pub fn of(release: &str) -> Flavour {
        if at_least(release, "1.24.0") {
            Flavour::Aimfp
        } else {
            Flavour::Aifp
        }
    }
}

/// One row of AIFP-RELEASED's "Releases" table: a range of releases and the schemas they ship.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    pub first: &'static str,
    pub last: &'static str,
    pub flavour: Flavour,
    pub core: &'static str,
    pub project: &'static str,
    pub user_preferences: &'static str,
    pub user_directives: &'static str,
}

/// The four combinations of schema versions AIFP ever released, oldest first.
pub const RELEASES: &[Release] = &[
    Release {
        first: "0.1.0",
        last: "1.9.1",
        flavour: Flavour::Aifp,
        core: "2.0",
        project: "1.6",
        user_preferences: "1.2",
        user_directives: "1.1",
    },
    Release {
        first: "1.10.0",
        last: "1.15.0",
        flavour: Flavour::Aifp,
        core: "2.1",
        project: "1.7",
        user_preferences: "1.2",
        user_directives: "1.2",
    },
    Release {
        first: "1.16.0",
        last: "1.23.0",
        flavour: Flavour::Aifp,
        core: "2.2",
        project: "1.8",
        user_preferences: "1.2",
        user_directives: "1.2",
    },
    Release {
        first: "1.24.0",
        last: "1.35.0",
        flavour: Flavour::Aimfp,
        core: "2.2",
        project: "1.9",
        user_preferences: "1.2",
        user_directives: "1.2",
    },
];

/// The per-project databases, in the order AIFP creates them.
pub const DATABASES: [&str; 3] = ["project", "user_preferences", "user_directives"];

/// The rows every built project breaks a foreign key with, on purpose: (database, table, rowid, parent).
pub const BROKEN: &[(&str, &str, i64, &str)] = &[
    ("project", "functions", 13, "files"),
    ("project", "tasks", 9, "milestones"),
    (
        "user_directives",
        "directive_executions",
        4,
        "user_directives",
    ),
];

/// The row of `RELEASES` that `release` (e.g. "1.9.1") falls in; panics outside them all.
pub fn release(release: &str) -> &'static Release {
    RELEASES
        .iter()
        .find(|r| at_least(release, r.first) && at_least(r.last, release))
        .unwrap_or_else(|| panic!("AIFP never released {release}"))
}

/// Whether databases made by `release` are in WAL mode (AIFP's connections use it since 1.21.0).
pub fn wal(release: &str) -> bool {
    at_least(release, "1.21.0")
}

/// The folder holding the fixture SQL.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/released")
}

/// The schema file building `db` (a per-project database or "core") at `version`, in `flavour`'s variant.
pub fn schema_sql(db: &str, version: &str, flavour: Flavour) -> String {
    let folder = match db {
        "aifp_core" | "aimfp_core" => "core",
        other => other,
    };
    let variant = dir()
        .join(folder)
        .join(format!("v{version}-{}.sql", flavour.name()));
    let path = if variant.exists() {
        variant
    } else {
        dir().join(folder).join(format!("v{version}.sql"))
    };
    read(&path)
}

/// Writes the installed package `<dir>/<aifp|aimfp>` of a release, as AIFP-RELEASED lays it out; returns it.
pub fn package(dir: &Path, flavour: Flavour, release_version: &str) -> PathBuf {
    let r = release(release_version);
    let pkg = dir.join(flavour.name());
    let database = pkg.join("database");
    let schemas = database.join("schemas");
    let init = database.join("initialization");
    std::fs::create_dir_all(&schemas).unwrap();
    std::fs::create_dir_all(&init).unwrap();
    std::fs::write(
        pkg.join("__init__.py"),
        format!(
            "\"\"\"{} (test fixture).\"\"\"\n\n__version__ = \"{release_version}\"\n",
            flavour.name()
        ),
    )
    .unwrap();

    for (db, version) in [
        ("project", r.project),
        ("user_preferences", r.user_preferences),
        ("user_directives", r.user_directives),
    ] {
        let sql = schema_sql(db, version, flavour);
        std::fs::write(schemas.join(format!("{db}.sql")), sql).unwrap();
    }
    let core_sql = schema_sql("core", r.core, flavour);
    std::fs::write(
        schemas.join(format!("{}_core.sql", flavour.name())),
        &core_sql,
    )
    .unwrap();
    std::fs::write(
        init.join("standard_user_settings.sql"),
        read(&standard_user_settings(flavour)),
    )
    .unwrap();
    std::fs::write(
        init.join("standard_tracking_settings.sql"),
        read(&self::dir().join("initialization/standard_tracking_settings.sql")),
    )
    .unwrap();

    let core = database.join(flavour.core_db());
    let conn = Connection::open(&core).unwrap();
    if flavour == Flavour::Aimfp {
        conn.pragma_update(None, "journal_mode", "wal").unwrap();
    }
    conn.execute_batch(&core_sql).unwrap();
    run(&conn, &self::dir().join("core/rows.sql"));
    if at_least(r.core, "2.2") {
        run(&conn, &self::dir().join("core/rows-v2.2.sql"));
    }
    if at_least(r.core, "2.1") {
        for (db, version) in [
            ("project", r.project),
            ("user_preferences", r.user_preferences),
            ("user_directives", r.user_directives),
        ] {
            conn.execute(
                "INSERT OR REPLACE INTO expected_schema_versions (db_name, expected_version, minimum_version) VALUES (?1, ?2, '1.0')",
                [db, version],
            )
            .unwrap();
        }
    }
    close(conn, &core);
    if flavour == Flavour::Aimfp {
        std::fs::write(database.join(Flavour::Aifp.core_db()), b"").unwrap();
    }

    let runtime = database.join("mcp_runtime.db");
    let conn = Connection::open(&runtime).unwrap();
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS tool_cache (key TEXT PRIMARY KEY, value TEXT, expires_at DATETIME);
         INSERT INTO tool_cache VALUES ('directives_index', '{}', '2026-05-18 00:00:00');",
    )
    .unwrap();
    close(conn, &runtime);
    pkg
}

/// Writes the project folder a release makes under `root`, its databases seeded as if used; returns it.
pub fn project(root: &Path, release_version: &str) -> PathBuf {
    let r = release(release_version);
    let flavour = Flavour::of(release_version);
    let folder = root.join(flavour.folder());
    std::fs::create_dir_all(folder.join("logs/execution")).unwrap();
    std::fs::create_dir_all(folder.join("logs/errors")).unwrap();
    std::fs::write(
        folder.join("logs/user-directives.log"),
        "2026-02-20 09:35:00 monthly_report_email activated\n2026-02-21 10:05:00 nightly_import activated\n",
    )
    .unwrap();
    let generated = folder.join("user-directives/generated");
    std::fs::create_dir_all(&generated).unwrap();
    for name in [
        "monthly_report_email",
        "nightly_import",
        "warn_on_duplicate",
    ] {
        std::fs::write(
            generated.join(format!("{name}.py")),
            format!("\"\"\"Generated for the user directive {name}.\"\"\"\n"),
        )
        .unwrap();
    }
    std::fs::write(
        folder.join("ProjectBlueprint.md"),
        "# household-ledger\n\nTrack shared household expenses and settle up monthly.\n",
    )
    .unwrap();

    let d = dir();
    let project = &d.join("project");
    let mut files = vec![project.join("rows.sql")];
    if at_least(r.project, "1.7") {
        files.push(project.join("rows-v1.7.sql"));
    }
    if at_least(r.project, "1.9") {
        files.push(project.join("rows-v1.9.sql"));
    }
    let fl = flavour;
    build(
        &folder.join("project.db"),
        &schema_sql("project", r.project, fl),
        &files,
        Some(&project.join("broken.sql")),
        &[project.join("deleted.sql")],
        wal(release_version),
    );

    build(
        &folder.join("user_preferences.db"),
        &schema_sql("user_preferences", r.user_preferences, fl),
        &[
            standard_user_settings(fl),
            d.join("initialization/standard_tracking_settings.sql"),
            d.join("user_preferences/rows.sql"),
        ],
        None,
        &[],
        wal(release_version),
    );

    let ud = &d.join("user_directives");
    let mut files = vec![ud.join("rows.sql")];
    if at_least(r.user_directives, "1.2") {
        files.push(ud.join("rows-v1.2.sql"));
    }
    files.push(ud.join(format!("paths-{}.sql", fl.name())));
    build(
        &folder.join("user_directives.db"),
        &schema_sql("user_directives", r.user_directives, fl),
        &files,
        Some(&ud.join("broken.sql")),
        &[],
        wal(release_version),
    );
    folder
}

/// The standard settings seed of `flavour`: its `backup_path` row names its project folder.
fn standard_user_settings(flavour: Flavour) -> PathBuf {
    dir().join(format!(
        "initialization/standard_user_settings-{}.sql",
        flavour.name()
    ))
}

/// Builds one database: schema and seed rows with foreign keys on, the broken rows with them off
/// (as a release before 1.21.0 ran), then the rows after; triggers fill FTS tables as AIFP's do.
fn build(
    path: &Path,
    schema: &str,
    seeds: &[PathBuf],
    broken: Option<&Path>,
    after: &[PathBuf],
    wal: bool,
) {
    let conn = Connection::open(path).unwrap();
    if wal {
        conn.pragma_update(None, "journal_mode", "wal").unwrap();
    }
    // A fixture need not survive a power cut: no fsync per statement keeps the tests quick.
    conn.execute_batch("PRAGMA synchronous = OFF; PRAGMA foreign_keys = ON; BEGIN")
        .unwrap();
    conn.execute_batch(schema).unwrap();
    for file in seeds {
        run(&conn, file);
    }
    conn.execute_batch("COMMIT").unwrap();
    if let Some(file) = broken {
        // Outside any transaction: SQLite ignores this pragma inside one.
        conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        run(&conn, file);
        conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    }
    for file in after {
        run(&conn, file);
    }
    close(conn, path);
}

/// Runs one fixture file, naming it if it fails.
fn run(conn: &Connection, file: &Path) {
    conn.execute_batch(&read(file))
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
}

/// Closes cleanly, so a WAL database is checkpointed and leaves no `-wal`/`-shm` beside it.
fn close(conn: Connection, path: &Path) {
    conn.close().map_err(|(_, e)| e).unwrap();
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", path.display()));
        assert!(!side.exists(), "{} left behind", side.display());
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Whether dotted version `a` is at least `b`, comparing numbers part by part.
fn at_least(a: &str, b: &str) -> bool {
    let parts = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap()).collect() };
    parts(a) >= parts(b)
}
