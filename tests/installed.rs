//! The installed AIFP: real users' databases at each released version, brought to the installed
//! package's schemas (SPEC "The installed AIFP"), with fixtures written from shared/AIFP-RELEASED.md.

mod common;

use std::path::{Path, PathBuf};

use common::released::{self, Flavour};
use common::*;

/// A project made by AIFP `release`, in its own folder, and an installed package of `installed`.
struct World {
    env: Env,
    root: PathBuf,
    package: PathBuf,
}

impl World {
    fn new(release: &str, installed: &str) -> World {
        let env = Env::new();
        let root = env.tmp.path().join("work");
        std::fs::create_dir_all(&root).unwrap();
        released::project(&root, release);
        let site = env.tmp.path().join("site-packages");
        std::fs::create_dir_all(&site).unwrap();
        let package = released::package(&site, Flavour::of(installed), installed);
        World { env, root, package }
    }

    fn run(&self, args: &[&str]) -> Run {
        Run(self
            .env
            .cmd_in(&self.root)
            .env("AIFP_PACKAGE", &self.package)
            .args(args)
            .output()
            .unwrap())
    }

    /// The database at `db` has exactly the schema and version of the package's `name`.sql.
    fn assert_package_schema(&self, db: &Path, name: &str, what: &str) {
        let want = aifp_migrate::scratch::target_file(
            &self
                .package
                .join("database/schemas")
                .join(format!("{name}.sql")),
        )
        .unwrap();
        let have = aifp_migrate::schema::read(&open(db)).unwrap();
        assert_eq!(
            aifp_migrate::schema::diff(&want.schema, &have),
            Vec::<String>::new(),
            "{what}"
        );
        assert_eq!(version(db), want.version.to_string(), "{what}");
    }

    fn db(&self, folder: &str, name: &str) -> PathBuf {
        self.root.join(folder).join(format!("{name}.db"))
    }
}

/// Every file under `dir` with its bytes.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn scalar(db: &Path, sql: &str) -> i64 {
    open(db).query_row(sql, [], |r| r.get(0)).unwrap()
}

/// The rows of every table but the version row and full-text tables, by table, in rowid order:
/// what a user wrote.
fn rows_by_table(db: &Path) -> Vec<String> {
    let conn = open(db);
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table'
             AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'aifp_migrate_%'
             AND name != 'schema_version' ORDER BY name",
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
        let names: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            // Column by column, by name: a rebuilt table may order its columns otherwise.
            let mut cells: Vec<String> = names
                .iter()
                .enumerate()
                .map(|(i, n)| match row.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Text(t) => {
                        format!("{n}='{}'", String::from_utf8_lossy(t))
                    }
                    v => format!("{n}={v:?}"),
                })
                .collect();
            cells.sort();
            out.push(format!("{t}: {}", cells.join(" | ")));
        }
    }
    out
}

#[test]
fn each_released_project_is_brought_to_the_installed_aimfp_with_every_row_and_its_folder_renamed() {
    for (release, project_version) in [("1.9.1", "1.6"), ("1.15.0", "1.7"), ("1.23.0", "1.8")] {
        let w = World::new(release, "1.35.0");
        let old = ".aifp-project";
        let before: Vec<(String, Vec<String>, i64)> = released::DATABASES
            .iter()
            .map(|n| {
                let db = w.db(old, n);
                (n.to_string(), rows_by_table(&db), count_all(&db))
            })
            .collect();
        let notes_seq = scalar(
            &w.db(old, "project"),
            "SELECT seq FROM sqlite_sequence WHERE name = 'notes'",
        );
        let package_before = tree(&w.package);

        // --check names the package, says what is pending and that the folder will be renamed.
        let check = w.run(&["--check"]).expect(3).stdout();
        assert!(
            check.contains("installed AIFP: aimfp 1.35.0"),
            "{release}: {check}"
        );
        assert!(
            check.contains(&format!("{project_version} -> 1.9")),
            "{release}: {check}"
        );
        assert!(check.contains("will become"), "{release}: {check}");
        assert!(check.contains("installed"), "{release}: {check}");

        let json = w.run(&["--all", "--format", "json"]).expect(0).json();
        let new = ".aimfp-project";
        assert!(
            !w.root.join(old).exists(),
            "{release}: the old folder is still there"
        );
        assert_eq!(json["folders"][0]["status"], "moved", "{release}: {json}");

        for (name, rows, total) in &before {
            let db = w.db(new, name);
            // The package's schema exactly.
            w.assert_package_schema(&db, name, &format!("{release} {name}"));
            // Every row kept: same number in every table (values compared below where they change).
            assert_eq!(count_all(&db), *total, "{release} {name}: rows");
            let after = rows_by_table(&db);
            let rewritten = |r: &String| r.replace(".aifp-project", ".aimfp-project");
            assert_eq!(
                after.len(),
                rows.len(),
                "{release} {name}: the number of rows changed"
            );
            for r in rows {
                assert!(
                    after.contains(r) || after.contains(&rewritten(r)),
                    "{release} {name}: row lost: {r}"
                );
            }
            let stale = after.iter().filter(|r| r.contains(".aifp-project")).count();
            assert_eq!(stale, 0, "{release} {name}: paths not rewritten");
        }
        let project = w.db(new, "project");
        assert!(
            scalar(
                &project,
                "SELECT count(*) FROM notes_fts WHERE notes_fts MATCH 'apportionment'"
            ) > 0,
            "{release}: the full-text index finds no note"
        );
        assert_eq!(
            scalar(&project, "SELECT count(*) FROM notes_fts"),
            scalar(&project, "SELECT count(*) FROM notes"),
            "{release}: the index does not cover every note"
        );
        assert!(
            scalar(
                &project,
                "SELECT seq FROM sqlite_sequence WHERE name = 'notes'"
            ) >= notes_seq,
            "{release}: the notes sequence went down"
        );
        // The rows that broke a foreign key before are still there, and counted.
        for (db, table, rowid, _) in released::BROKEN {
            assert_eq!(
                scalar(
                    &w.db(new, db),
                    &format!("SELECT count(*) FROM {table} WHERE rowid = {rowid}")
                ),
                1,
                "{release}: {db}.{table} row {rowid} was deleted"
            );
        }
        assert!(
            json.to_string().contains("broken_before"),
            "{release}: broken rows not counted"
        );
        // The package is untouched: no file written, no -wal beside its core.
        assert!(
            tree(&w.package) == package_before,
            "{release}: the package changed"
        );

        // Converged: nothing to do, and --check is clean.
        let again = w.run(&["--all", "--format", "json"]).expect(0).json();
        let statuses: Vec<&str> = again["databases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["status"].as_str().unwrap())
            .collect();
        assert_eq!(
            statuses,
            ["installed", "current", "current", "current"],
            "{release}: {again}"
        );
        w.run(&["--check"]).expect(0);
    }
}

/// Rows in every table of the user's (full-text tables and the tool's own left out).
fn count_all(db: &Path) -> i64 {
    let conn = open(db);
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND sql NOT LIKE 'CREATE VIRTUAL%'
             AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'aifp_migrate_%'
             AND name NOT IN (SELECT name FROM pragma_table_list WHERE type = 'shadow')",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    tables
        .iter()
        .map(|t| {
            conn.query_row(&format!("SELECT count(*) FROM \"{t}\""), [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap()
        })
        .sum()
}

#[test]
fn a_project_newer_than_the_installed_package_is_ahead_and_says_to_update() {
    let w = World::new("1.35.0", "1.23.0");
    let before = tree(&w.root);
    let out = w.run(&["--check"]).expect(1);
    assert!(out.stdout().contains("ahead"), "{}", out.stdout());
    let err = out.stderr();
    assert!(
        err.contains("newer than the installed aifp 1.23.0"),
        "{err}"
    );
    assert!(err.contains("pip install -U aifp"), "{err}");
    w.run(&["--all"]).expect(1);
    assert!(tree(&w.root) == before, "a refused run changed the project");
}

#[test]
fn the_package_is_found_through_python3_and_its_answer_is_cached() {
    let w = World::new("1.23.0", "1.35.0");
    let site = w.package.parent().unwrap().to_path_buf();
    let check = |extra: &[(&str, &Path)]| {
        let mut cmd = w.env.cmd_in(&w.root);
        cmd.env_remove("AIFP_PACKAGE").env("PYTHONPATH", &site);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        Run(cmd.arg("--check").output().unwrap())
    };
    let first = check(&[]).expect(3).stdout();
    assert!(first.contains("installed AIFP: aimfp 1.35.0"), "{first}");
    assert!(first.contains("python3 on PATH"), "{first}");
    let cached: Vec<_> = std::fs::read_dir(w.env.cache.path().join("aifp-migrate"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("package-"))
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    // Answered from the cache: a python3 that would fail is never asked.
    let bin = w.env.tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("python3");
    std::fs::write(&fake, "#!/bin/sh\necho broken >&2\nexit 1\n").unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&fake).unwrap().permissions(),
        0o755,
    );
    let mut perms = std::fs::metadata(&fake).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&fake, perms).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let broken = Run(w
        .env
        .cmd_in(&w.root)
        .env_remove("AIFP_PACKAGE")
        .env("PYTHONPATH", &site)
        .env("PATH", &path)
        .arg("--check")
        .output()
        .unwrap());
    // Another interpreter: not the cached one, asked, fails: a note, and the bundled sets apply.
    let err = broken.stderr();
    assert!(err.contains("note:") && err.contains("failed"), "{err}");
    assert!(
        !broken.stdout().contains("installed AIFP"),
        "{}",
        broken.stdout()
    );
}

#[test]
fn both_folders_are_refused_until_one_is_adopted_and_the_other_is_set_aside() {
    let w = World::new("1.23.0", "1.35.0");
    // AIMFP offered a fresh, empty state folder beside the old one.
    released::project(&w.root, "1.35.0");
    let before = tree(&w.root);
    let err = w.run(&["--all"]).expect(1).stderr();
    assert!(
        err.contains(".aifp-project") && err.contains(".aimfp-project"),
        "{err}"
    );
    assert!(err.contains("--adopt"), "{err}");
    assert!(err.contains("project v1.8"), "{err}");
    assert!(tree(&w.root) == before, "a refused run changed the project");
    let check = w.run(&["--check"]).stdout();
    assert!(check.contains("are both here"), "{check}");

    let old_rows = count_all(&w.db(".aifp-project", "project"));
    w.run(&["--all", "--adopt", ".aifp-project"]).expect(0);
    assert_eq!(count_all(&w.db(".aimfp-project", "project")), old_rows);
    assert_eq!(version(&w.db(".aimfp-project", "project")), "1.9");
    let aside: Vec<String> = std::fs::read_dir(&w.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".aimfp-project.replaced_"))
        .collect();
    assert_eq!(
        aside.len(),
        1,
        "the fresh folder is set aside, never deleted"
    );
    assert!(!w.root.join(".aifp-project").exists());
}

#[test]
fn a_broken_package_is_named_and_nothing_is_changed() {
    let w = World::new("1.23.0", "1.35.0");
    let before = tree(&w.root);
    // A schema file that does not build.
    let schema = w.package.join("database/schemas/project.sql");
    std::fs::write(&schema, "CREATE TABLE broken (;\n").unwrap();
    let err = w.run(&["--all"]).expect(1).stderr();
    assert!(err.contains(&schema.display().to_string()), "{err}");
    assert!(err.contains("does not build"), "{err}");
    // No database/schemas at all.
    std::fs::remove_dir_all(w.package.join("database/schemas")).unwrap();
    let err = w.run(&["--check"]).expect(1).stderr();
    assert!(err.contains("has no database/schemas folder"), "{err}");
    assert!(err.contains(&w.package.display().to_string()), "{err}");
    assert!(tree(&w.root) == before);
}

#[test]
fn a_package_whose_only_core_is_empty_is_refused_naming_it() {
    let w = World::new("1.23.0", "1.35.0");
    let core = w.package.join("database/aimfp_core.db");
    std::fs::write(&core, b"").unwrap();
    let err = w.run(&["--check"]).expect(1).stderr();
    assert!(err.contains("0 bytes"), "{err}");
    assert!(
        err.contains("aifp_core.db") || err.contains("aimfp_core.db"),
        "{err}"
    );
}

#[test]
fn an_aifp_package_converges_in_place_and_keeps_the_folder_its_release_uses() {
    let w = World::new("1.9.1", "1.23.0");
    let json = w.run(&["--all", "--format", "json"]).expect(0).json();
    assert!(json.get("folders").is_none(), "{json}");
    assert_eq!(version(&w.db(".aifp-project", "project")), "1.8");
    assert_eq!(version(&w.db(".aifp-project", "user_directives")), "1.2");
    let rows = rows_by_table(&w.db(".aifp-project", "user_directives"));
    assert!(
        rows.iter().any(|r| r.contains(".aifp-project/")),
        "paths rewritten for aifp"
    );
    w.run(&["--check"]).expect(0);
}

#[test]
fn after_the_folder_is_renamed_the_last_run_is_undone_from_the_backups_that_moved_with_it() {
    let w = World::new("1.23.0", "1.35.0");
    let before = rows_by_table(&w.db(".aifp-project", "user_directives"));
    w.run(&["--all"]).expect(0);
    let moved = w.db(".aimfp-project", "user_directives");
    assert_eq!(backups(&moved).len(), 1, "the backup moved with its folder");
    w.run(&["--all", "--restore"]).expect(0);
    assert_eq!(version(&w.db(".aimfp-project", "project")), "1.8");
    assert_eq!(
        rows_by_table(&moved),
        before,
        "the paths are back as they were"
    );
}

#[test]
fn a_cached_check_answers_the_same_and_a_changed_schema_file_is_noticed() {
    let w = World::new("1.23.0", "1.35.0");
    let first = w.run(&["--check"]).expect(3).stdout();
    let plans = w.env.cache.path().join("aifp-migrate");
    assert!(
        std::fs::read_dir(&plans).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("plans-")),
        "no plan cache written"
    );
    assert_eq!(w.run(&["--check"]).expect(3).stdout(), first);
    // An update of the package changes its schema file: the answer follows it.
    let schema = w.package.join("database/schemas/project.sql");
    let text = std::fs::read_to_string(&schema).unwrap();
    std::fs::write(
        &schema,
        text.replace(
            "INSERT OR REPLACE INTO schema_version",
            "CREATE TABLE IF NOT EXISTS extra_table (id INTEGER PRIMARY KEY);\nINSERT OR REPLACE INTO schema_version",
        ),
    )
    .unwrap();
    let after = w.run(&["--check"]).expect(3).stdout();
    assert!(after.contains("+ table extra_table"), "{after}");
}

#[test]
fn a_folder_still_to_be_renamed_is_pending_even_when_every_database_is_current() {
    let w = World::new("1.35.0", "1.35.0");
    // A 1.35 project whose folder was renamed back by hand: the databases need nothing.
    std::fs::rename(w.root.join(".aimfp-project"), w.root.join(".aifp-project")).unwrap();
    let quiet = w.run(&["--check", "-q"]).expect(3).stdout();
    assert!(quiet.contains(".aifp-project -> "), "{quiet}");
    assert!(quiet.contains("run aifp-migrate --all"), "{quiet}");
    w.run(&["--all"]).expect(0);
    assert!(w.root.join(".aimfp-project/project.db").exists());
    w.run(&["--check", "-q"]).expect(0);
}

#[test]
fn init_with_an_installed_aimfp_creates_its_folder_from_the_packages_schemas() {
    let w = World::new("1.35.0", "1.35.0");
    let fresh = w.env.tmp.path().join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    let out = Run(w
        .env
        .cmd_in(&fresh)
        .env("AIFP_PACKAGE", &w.package)
        .args(["--init", "--project-dir", ".", "--format", "json"])
        .output()
        .unwrap())
    .expect(0)
    .json();
    assert!(
        out["databases"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("from the installed aimfp 1.35.0's schema"),
        "{out}"
    );
    for name in released::DATABASES {
        let db = fresh.join(".aimfp-project").join(format!("{name}.db"));
        w.assert_package_schema(&db, name, name);
    }
    assert!(!fresh.join(".aifp-project").exists());
}

#[test]
fn the_python_of_the_projects_mcp_json_is_asked_first() {
    let w = World::new("1.23.0", "1.35.0");
    let site = w.package.parent().unwrap().to_path_buf();
    // A Python that finds the package only through its own wrapper, named by .mcp.json.
    let real = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v python3"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let bin = w.env.tmp.path().join("venv/bin");
    std::fs::create_dir_all(&bin).unwrap();
    let wrapper = bin.join("python3");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nPYTHONPATH='{}' exec {} \"$@\"\n",
            site.display(),
            real.trim()
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&wrapper).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&wrapper, perms).unwrap();
    std::fs::write(
        w.root.join(".mcp.json"),
        format!(
            r#"{{"mcpServers": {{"aimfp": {{"command": "{}", "args": ["-m", "aimfp"]}}}}}}"#,
            wrapper.display()
        ),
    )
    .unwrap();
    let out = Run(w
        .env
        .cmd_in(&w.root)
        .env_remove("AIFP_PACKAGE")
        .env_remove("PYTHONPATH")
        .arg("--check")
        .output()
        .unwrap())
    .expect(3)
    .stdout();
    assert!(out.contains("installed AIFP: aimfp 1.35.0"), "{out}");
    assert!(out.contains(".mcp.json"), "{out}");
}

#[test]
fn a_core_that_expects_another_version_than_the_schema_file_writes_is_noted() {
    let w = World::new("1.23.0", "1.35.0");
    let core = w.package.join("database/aimfp_core.db");
    // Edit a copy out of WAL mode, then put it back: the package's core as another release shipped it.
    let conn = rusqlite::Connection::open(&core).unwrap();
    conn.execute_batch(
        "UPDATE expected_schema_versions SET expected_version = '1.10' WHERE db_name = 'project';
         PRAGMA journal_mode = DELETE;",
    )
    .unwrap();
    drop(conn);
    let err = w.run(&["--check"]).expect(3).stderr();
    assert!(
        err.contains("note: aimfp's core expects project v1.10")
            && err.contains("the schema file wins"),
        "{err}"
    );
}

#[test]
fn an_unreadable_package_core_is_an_error_naming_it() {
    let w = World::new("1.23.0", "1.35.0");
    let core = w.package.join("database/aimfp_core.db");
    std::fs::write(
        &core,
        b"not a database at all, just text that is long enough to be a header",
    )
    .unwrap();
    let err = w.run(&["--check"]).expect(1).stderr();
    assert!(err.contains(&core.display().to_string()), "{err}");
}

#[test]
fn a_pending_converge_says_so_in_the_json_with_its_summary() {
    let w = World::new("1.23.0", "1.35.0");
    let json = w.run(&["--check", "--format", "json"]).expect(3).json();
    let project = &json["databases"][1];
    assert_eq!(project["kind"], "converge", "{json}");
    assert!(
        project["summary"].to_string().contains("+ table modules"),
        "{json}"
    );
    assert_eq!(json["package"]["name"], "aimfp");
    assert_eq!(json["package"]["version"], "1.35.0");
    assert_eq!(json["folders"][0]["status"], "planned");
}
