//! The fixtures of AIFP's released versions say what shared/AIFP-RELEASED.md says: every schema
//! file builds and writes its version, consecutive versions differ exactly as released, packages
//! and projects have the released layout, and the seeded projects hold what real ones hold.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use aifp_migrate::schema::diff;
use aifp_migrate::scratch::{target_sql, Target};
use common::released::{self, Flavour, BROKEN, DATABASES, RELEASES};
use common::*;
use rusqlite::Connection;

/// Every schema file: (database, version, flavour whose variant it is).
const FILES: &[(&str, &str, Flavour)] = &[
    ("project", "1.6", Flavour::Aifp),
    ("project", "1.7", Flavour::Aifp),
    ("project", "1.8", Flavour::Aifp),
    ("project", "1.9", Flavour::Aimfp),
    ("user_preferences", "1.2", Flavour::Aifp),
    ("user_directives", "1.1", Flavour::Aifp),
    ("user_directives", "1.2", Flavour::Aifp),
    ("user_directives", "1.2", Flavour::Aimfp),
    ("core", "2.0", Flavour::Aifp),
    ("core", "2.1", Flavour::Aifp),
    ("core", "2.2", Flavour::Aimfp),
];

fn target(db: &str, version: &str, flavour: Flavour) -> Target {
    let origin = format!("{db} v{version} ({})", flavour.name());
    target_sql(&origin, &released::schema_sql(db, version, flavour))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The lines `schema::diff` gives from `from` to `to`, sorted.
fn changes(db: &str, from: &str, to: &str, flavour: Flavour) -> BTreeSet<String> {
    let a = target(db, from, flavour).schema;
    let b = target(db, to, flavour).schema;
    diff(&a, &b).into_iter().collect()
}

fn set(lines: &[&str]) -> BTreeSet<String> {
    lines.iter().map(|l| l.to_string()).collect()
}

#[test]
fn every_schema_file_builds_from_nothing_and_writes_its_version() {
    for &(db, version, flavour) in FILES {
        let t = target(db, version, flavour);
        assert_eq!(t.version.to_string(), version, "{db}");
        // AIFP's style: IF NOT EXISTS everywhere, so the file can run again over itself.
        let sql = released::schema_sql(db, version, flavour);
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(&sql).unwrap();
        conn.execute_batch(&sql).unwrap();
        let sv: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            sv.contains("id INTEGER PRIMARY KEY CHECK (id = 1)"),
            "{db} {version}: {sv}"
        );
        assert!(
            sv.contains("updated_at DATETIME DEFAULT CURRENT_TIMESTAMP"),
            "{sv}"
        );
        assert!(
            sql.trim_end().ends_with(&format!(
                "INSERT OR REPLACE INTO schema_version (id, version) VALUES (1, '{version}');"
            )),
            "{db} {version} does not end with its version row"
        );
        // Comments inside statements are kept in sqlite_master, as in AIFP's own databases.
        let commented: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE sql LIKE '%--%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            commented > 0,
            "{db} {version}: no comment inside a statement"
        );
    }
}

#[test]
fn project_1_6_to_1_7_changes_only_the_notes_type_check() {
    let d: Vec<String> = changes("project", "1.6", "1.7", Flavour::Aifp)
        .into_iter()
        .collect();
    assert_eq!(d.len(), 2, "{d:#?}");
    let old = d.iter().find(|l| l.ends_with(" missing")).unwrap();
    let new = d.iter().find(|l| l.ends_with(" not expected")).unwrap();
    for line in [old, new] {
        assert!(
            line.starts_with("table notes: CHECK") && line.contains("note_type"),
            "{line}"
        );
        assert!(line.contains("'decision'"), "{line}");
    }
    for added in ["'deferred'", "'completed'", "'obsolete'"] {
        assert!(!old.contains(added) && new.contains(added), "{d:#?}");
    }
}

#[test]
fn project_1_7_to_1_8_adds_only_three_fts_tables_and_their_triggers() {
    let d = changes("project", "1.7", "1.8", Flavour::Aifp);
    let mut want = BTreeSet::new();
    for t in ["notes", "functions", "types"] {
        want.insert(format!("virtual table {t}_fts: not expected"));
        for op in ["insert", "delete", "update"] {
            want.insert(format!("trigger {t}_fts_{op}: not expected"));
        }
    }
    assert_eq!(d, want);

    // External content, keyed by id, with the columns AIFP-RELEASED names.
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(&released::schema_sql("project", "1.8", Flavour::Aifp))
        .unwrap();
    for (fts, table, cols) in [
        ("notes_fts", "notes", vec!["content"]),
        ("functions_fts", "functions", vec!["name", "purpose"]),
        ("types_fts", "types", vec!["name", "description"]),
    ] {
        let sql: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = ?1",
                [fts],
                |r| r.get(0),
            )
            .unwrap();
        assert!(sql.contains("fts5"), "{sql}");
        assert!(sql.contains(&format!("content='{table}'")), "{sql}");
        assert!(sql.contains("content_rowid='id'"), "{sql}");
        assert_eq!(columns(&conn, fts), cols);
        let update: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = ?1",
                [format!("{fts}_update")],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            update.contains(&format!("AFTER UPDATE OF {} ON {table}", cols.join(", "))),
            "{update}"
        );
        // Shadow tables appear in sqlite_master.
        for shadow in ["data", "idx", "docsize", "config"] {
            let n: i64 = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE name = ?1",
                    [format!("{fts}_{shadow}")],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 1, "{fts}_{shadow}");
        }
    }
}

#[test]
fn project_1_8_to_1_9_adds_only_modules_module_files_and_modules_fts() {
    let d = changes("project", "1.8", "1.9", Flavour::Aimfp);
    let want = set(&[
        "table modules: not expected",
        "table module_files: not expected",
        "virtual table modules_fts: not expected",
        "index idx_modules_path: not expected",
        "index idx_module_files_file_id: not expected",
        "trigger update_modules_timestamp: not expected",
        "trigger modules_fts_insert: not expected",
        "trigger modules_fts_delete: not expected",
        "trigger modules_fts_update: not expected",
    ]);
    assert_eq!(d, want);
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(&released::schema_sql("project", "1.9", Flavour::Aimfp))
        .unwrap();
    assert_eq!(
        columns(&conn, "modules"),
        [
            "id",
            "name",
            "path",
            "description",
            "purpose",
            "external_dependencies",
            "created_at",
            "updated_at"
        ]
    );
    assert_eq!(columns(&conn, "module_files"), ["module_id", "file_id"]);
    assert_eq!(
        columns(&conn, "modules_fts"),
        ["name", "purpose", "description"]
    );
    let parents: BTreeSet<String> = conn
        .prepare("SELECT \"table\" FROM pragma_foreign_key_list('module_files')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(parents, set(&["files", "modules"]));
}

#[test]
fn user_directives_1_2_adds_three_note_types_and_the_rename_changes_only_log_path_defaults() {
    let d = changes("user_directives", "1.1", "1.2", Flavour::Aifp);
    assert_eq!(d.len(), 2, "{d:#?}");
    assert!(
        d.iter().all(|l| l.starts_with("table notes: CHECK")),
        "{d:#?}"
    );
    assert!(d.iter().any(|l| l.contains("'obsolete'")), "{d:#?}");

    let aifp = target("user_directives", "1.2", Flavour::Aifp);
    let aimfp = target("user_directives", "1.2", Flavour::Aimfp);
    assert_eq!(aifp.version, aimfp.version);
    let d = diff(&aifp.schema, &aimfp.schema);
    assert_eq!(d.len(), 3, "{d:#?}");
    for col in ["execution_log_dir", "error_log_dir", "lifecycle_log_path"] {
        let line = d
            .iter()
            .find(|l| l.starts_with(&format!("table logging_config: column {col} is")))
            .unwrap_or_else(|| panic!("{col}: {d:#?}"));
        assert!(
            line.contains("'.aimfp-project/logs/") && line.contains("'.aifp-project/logs/"),
            "{line}"
        );
    }
    // The schema file inserts the one settings row, with the flavour's paths.
    for (t, folder) in [(aifp, ".aifp-project"), (aimfp, ".aimfp-project")] {
        let rows = &t.seeds["logging_config"];
        assert_eq!(rows.len(), 1);
        assert!(
            rows[0].contains(&format!("'{folder}/logs/execution/'")),
            "{}",
            rows[0]
        );
    }
}

#[test]
fn the_core_has_expected_schema_versions_from_2_1() {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(&released::schema_sql("core", "2.0", Flavour::Aifp))
        .unwrap();
    assert!(columns(&conn, "expected_schema_versions").is_empty());
    let d = changes("core", "2.0", "2.1", Flavour::Aifp);
    assert_eq!(d, set(&["table expected_schema_versions: not expected"]));
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(&released::schema_sql("core", "2.1", Flavour::Aifp))
        .unwrap();
    let decl: Vec<(String, String, bool, i64)> = conn
        .prepare(
            "SELECT name, type, \"notnull\", pk FROM pragma_table_info('expected_schema_versions')",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let s = |x: &str| x.to_string();
    assert_eq!(
        decl,
        [
            (s("db_name"), s("TEXT"), false, 1),
            (s("expected_version"), s("TEXT"), true, 0),
            (s("minimum_version"), s("TEXT"), true, 0),
            (s("updated_at"), s("DATETIME"), false, 0),
        ]
    );
}

#[test]
fn a_package_has_the_released_layout_for_each_release() {
    for r in RELEASES {
        for version in [r.first, r.last] {
            let tmp = tempfile::tempdir().unwrap();
            let pkg = released::package(tmp.path(), r.flavour, version);
            let name = r.flavour.name();
            assert_eq!(pkg, tmp.path().join(name));
            let init = std::fs::read_to_string(pkg.join("__init__.py")).unwrap();
            assert!(
                init.contains(&format!("__version__ = \"{version}\"")),
                "{init}"
            );

            let db = pkg.join("database");
            let schemas = db.join("schemas");
            for (file, dbname, v) in [
                ("project.sql", "project", r.project),
                (
                    "user_preferences.sql",
                    "user_preferences",
                    r.user_preferences,
                ),
                ("user_directives.sql", "user_directives", r.user_directives),
                (&format!("{name}_core.sql")[..], "core", r.core),
            ] {
                let text = std::fs::read_to_string(schemas.join(file)).unwrap();
                assert_eq!(text, released::schema_sql(dbname, v, r.flavour), "{file}");
                assert_eq!(
                    target_sql(file, &text).unwrap().version.to_string(),
                    v,
                    "{file}"
                );
            }
            let settings =
                std::fs::read_to_string(db.join("initialization/standard_user_settings.sql"))
                    .unwrap();
            assert!(
                settings.contains(&format!("('backup_path', '{}'", r.flavour.folder())),
                "{settings}"
            );
            assert!(db
                .join("initialization/standard_tracking_settings.sql")
                .is_file());

            let core = db.join(r.flavour.core_db());
            assert_eq!(common::version(&core), r.core);
            assert_eq!(count(&core, "directives"), 6);
            let header = std::fs::read(&core).unwrap();
            // Bytes 18 and 19 of the header are 2 in WAL mode, 1 otherwise.
            let in_wal = r.flavour == Flavour::Aimfp;
            assert_eq!(
                (header[18], header[19]),
                if in_wal { (2, 2) } else { (1, 1) },
                "{version}"
            );
            assert!(!Path::new(&format!("{}-wal", core.display())).exists());
            assert!(!Path::new(&format!("{}-shm", core.display())).exists());
            let stray = db.join("aifp_core.db");
            if r.flavour == Flavour::Aimfp {
                assert_eq!(std::fs::metadata(&stray).unwrap().len(), 0);
            }
            let expected: Vec<(String, String, String)> = if r.core == "2.0" {
                Vec::new()
            } else {
                open(&core)
                    .prepare("SELECT db_name, expected_version, minimum_version FROM expected_schema_versions ORDER BY db_name")
                    .unwrap()
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect()
            };
            if r.core != "2.0" {
                let s = |x: &str| x.to_string();
                assert_eq!(
                    expected,
                    [
                        (s("project"), s(r.project), s("1.0")),
                        (s("user_directives"), s(r.user_directives), s("1.0")),
                        (s("user_preferences"), s(r.user_preferences), s("1.0")),
                    ]
                );
            }
            assert_eq!(count(&db.join("mcp_runtime.db"), "tool_cache"), 1);
            let mut names: Vec<String> = std::fs::read_dir(&db)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            let mut want = vec!["initialization", "mcp_runtime.db", "schemas"];
            want.push(if in_wal {
                "aimfp_core.db"
            } else {
                "aifp_core.db"
            });
            if in_wal {
                want.push("aifp_core.db");
            }
            want.sort();
            assert_eq!(names, want);
        }
    }
}

#[test]
fn a_project_made_by_each_release_holds_its_versions_rows_and_old_breaks() {
    for version in [
        "0.1.0", "1.9.1", "1.10.0", "1.16.0", "1.21.0", "1.23.0", "1.24.0", "1.35.0",
    ] {
        let r = released::release(version);
        let tmp = tempfile::tempdir().unwrap();
        let folder = released::project(tmp.path(), version);
        let flavour = Flavour::of(version);
        assert_eq!(folder, tmp.path().join(flavour.folder()), "{version}");
        assert!(folder.join("logs").is_dir());
        let other = if flavour == Flavour::Aifp {
            ".aimfp-project"
        } else {
            ".aifp-project"
        };
        assert!(!tmp.path().join(other).exists());

        for (db, want) in DATABASES
            .iter()
            .zip([r.project, r.user_preferences, r.user_directives])
        {
            let path = folder.join(format!("{db}.db"));
            assert_eq!(common::version(&path), want, "{version} {db}");
            let header = std::fs::read(&path).unwrap();
            let mode = if released::wal(version) { 2 } else { 1 };
            assert_eq!(header[18], mode, "{version} {db}: journal mode");
            assert!(!Path::new(&format!("{}-wal", path.display())).exists());

            // The built database is the schema file's, nothing more.
            let built = aifp_migrate::schema::read(&open(&path)).unwrap();
            assert_eq!(
                diff(&target(db, want, flavour).schema, &built),
                Vec::<String>::new()
            );

            // Every table holds rows, as in a project that has been used.
            for table in built.tables() {
                assert!(count(&path, table) > 0, "{version} {db}.{table} is empty");
            }

            let breaks: BTreeSet<(String, i64, String)> = open(&path)
                .prepare("SELECT \"table\", rowid, parent FROM pragma_foreign_key_check")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let want_breaks: BTreeSet<(String, i64, String)> = BROKEN
                .iter()
                .filter(|b| b.0 == *db)
                .map(|b| (b.1.to_string(), b.2, b.3.to_string()))
                .collect();
            assert_eq!(breaks, want_breaks, "{version} {db}");
        }

        let project = folder.join("project.db");
        let conn = open(&project);
        let (seq, max): (i64, i64) = conn
            .query_row(
                "SELECT (SELECT seq FROM sqlite_sequence WHERE name = 'notes'), (SELECT max(id) FROM notes)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert!(seq > max, "{version}: notes sequence {seq}, max(id) {max}");
        // Only the note written and deleted in deleted.sql is gone: every seeded note stays.
        let seeded = if r.project == "1.6" { 12 } else { 15 };
        assert_eq!(
            (count(&project, "notes"), max),
            (seeded, seeded),
            "{version}"
        );
        let new_types: i64 = conn
            .query_row("SELECT count(*) FROM notes WHERE note_type IN ('deferred', 'completed', 'obsolete')", [], |r| r.get(0))
            .unwrap();
        assert_eq!(new_types > 0, r.project != "1.6", "{version}");

        // Paths under the project folder, in the flavour's name.
        let folder_name = flavour.folder();
        let ud = open(&folder.join("user_directives.db"));
        let paths: Vec<String> = ud
            .prepare("SELECT implementation_file_path FROM user_directives WHERE implementation_file_path IS NOT NULL")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(paths.len(), 3);
        for p in &paths {
            assert!(p.starts_with(&format!("{folder_name}/")), "{p}");
            assert!(tmp.path().join(p).is_file(), "{p} is not there");
        }
        let log_dir: String = ud
            .query_row(
                "SELECT execution_log_dir FROM logging_config WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(log_dir, format!("{folder_name}/logs/execution/"));
        let backup: String = open(&folder.join("user_preferences.db"))
            .query_row(
                "SELECT setting_value FROM user_settings WHERE setting_key = 'backup_path'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(backup, folder_name);
    }
}

#[test]
fn full_text_search_finds_seeded_rows_from_1_8_and_matches_its_content_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = released::project(tmp.path(), "1.16.0");
    let conn = Connection::open(folder.join("project.db")).unwrap();
    let hits: Vec<String> = conn
        .prepare("SELECT notes.content FROM notes_fts JOIN notes ON notes.id = notes_fts.rowid WHERE notes_fts MATCH 'rounding' ORDER BY notes.id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(hits.len(), 2, "{hits:#?}");
    assert!(hits[0].starts_with("Session summary"), "{hits:#?}");
    let name: String = conn
        .query_row("SELECT name FROM functions WHERE id IN (SELECT rowid FROM functions_fts WHERE functions_fts MATCH 'transfers')", [], |r| r.get(0))
        .unwrap();
    assert_eq!(name, "settle_up");
    let name: String = conn
        .query_row("SELECT name FROM types WHERE id IN (SELECT rowid FROM types_fts WHERE types_fts MATCH 'divided')", [], |r| r.get(0))
        .unwrap();
    assert_eq!(name, "SplitRule");
    // The index holds exactly the content tables' rows: the deleted note and the broken function
    // went through the triggers like every other row.
    for fts in ["notes_fts", "functions_fts", "types_fts"] {
        conn.execute_batch(&format!(
            "INSERT INTO {fts}({fts}, rank) VALUES ('integrity-check', 1)"
        ))
        .unwrap_or_else(|e| panic!("{fts}: {e}"));
    }
    let deleted: i64 = conn
        .query_row(
            "SELECT count(*) FROM notes_fts WHERE notes_fts MATCH 'scratchpad'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(deleted, 0, "the deleted note is still indexed");
    drop(conn);

    let folder = released::project(&tmp.path().join("new"), "1.35.0");
    let conn = Connection::open(folder.join("project.db")).unwrap();
    let name: String = conn
        .query_row("SELECT name FROM modules WHERE id IN (SELECT rowid FROM modules_fts WHERE modules_fts MATCH 'settling')", [], |r| r.get(0))
        .unwrap();
    assert_eq!(name, "ledger.core");
    conn.execute_batch("INSERT INTO modules_fts(modules_fts, rank) VALUES ('integrity-check', 1)")
        .unwrap();

    let old = released::project(&tmp.path().join("old"), "1.15.0");
    let n: i64 = open(&old.join("project.db"))
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name LIKE '%_fts%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 0);
}

/// The columns of `table`, in order.
fn columns(conn: &Connection, table: &str) -> Vec<String> {
    conn.prepare("SELECT name FROM pragma_table_info(?1)")
        .unwrap()
        .query_map([table], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}
