//! Knowing what a schema should be: `--verify` (every rollback undoes its upgrade), drift in
//! `--check`, `--stamp`, `--rehearse` and `--init`, run through the real binary and checked on disk.
//!
//! Fixture sets live in `tests/fixtures/know/`; text outputs are snapshotted
//! (`tests/snapshots/know__*.snap`) with the temp dir replaced by `[TMP]`. Tests marked
//! `#[ignore = "BUG: …"]` describe what the issue asks for where the tool does otherwise today;
//! run them with `cargo test --test know -- --ignored`.

mod common;
use common::*;

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde_json::Value;

/// The version table exactly as SPEC ("schema_version") defines it.
const SPEC_SCHEMA_VERSION: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version TEXT NOT NULL,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP
);";

const PER_PROJECT: [&str; 3] = ["project", "user_preferences", "user_directives"];

// ---------------------------------------------------------------------------------------------
// Helpers

/// `text` with the temp dir (as given and canonical) replaced by `[TMP]`.
fn scrub(env: &Env, text: &str) -> String {
    let raw = env.tmp.path().to_path_buf();
    let canon = raw.canonicalize().unwrap_or_else(|_| raw.clone());
    let mut out = text.to_string();
    for p in [canon, raw] {
        out = out.replace(&*p.to_string_lossy(), "[TMP]");
    }
    out
}

/// Asserts that nothing under the temp dir was changed, created or removed, naming only the
/// paths that differ (the listing itself is far too big to print).
fn assert_unchanged(before: &[(PathBuf, Vec<u8>)], after: &[(PathBuf, Vec<u8>)], what: &str) {
    let differing: Vec<String> = before
        .iter()
        .filter(|b| !after.contains(b))
        .chain(after.iter().filter(|a| !before.contains(a)))
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(
        differing.is_empty(),
        "{what} changed, created or removed files: {differing:?}"
    );
}

/// The entry for `name` in a `{"databases": [...]}` or `{"sets": [...]}` report.
fn entry<'a>(json: &'a Value, list: &str, name: &str) -> &'a Value {
    json[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list:?} list in {json}"))
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no {name:?} in {json}"))
}

/// The steps of set `name` in a `--verify --format json` report.
fn steps<'a>(json: &'a Value, name: &str) -> &'a Vec<Value> {
    entry(json, "sets", name)["steps"].as_array().unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// A project database whose schema is that of 1.1 but whose schema_version table was dropped by
/// hand: made by the tool from 1.0 (one backup), then the table dropped.
fn unversioned_project_at_1_1(env: &Env) -> PathBuf {
    let db = env.init_db("project");
    env.run(&["--db", "project", "--target", "1.1"]).expect(0);
    Connection::open(&db)
        .unwrap()
        .execute_batch("DROP TABLE schema_version;")
        .unwrap();
    db
}

/// Adds a project row, a task and two notes, so plans run on data.
fn seed_project(path: &Path) {
    Connection::open(path)
        .unwrap()
        .execute_batch(
            "INSERT INTO project (name, purpose, goals_json) VALUES ('demo', 'test', '[]');
             INSERT INTO completion_path (name, order_index, project_id) VALUES ('first', 1, 1);
             INSERT INTO milestones (completion_path_id, name) VALUES (1, 'm1');
             INSERT INTO tasks (milestone_id, name) VALUES (1, 't1');
             INSERT INTO notes (content, note_type) VALUES ('remember this', 'decision');
             INSERT INTO notes (content, note_type) VALUES ('and this', 'decision');",
        )
        .unwrap();
}

/// A folder for the child's TMPDIR inside the temp dir, so a rehearsal copy left behind shows.
fn rehearsal_tmpdir(env: &Env) -> PathBuf {
    let dir = env.tmp.path().join("tmpdir");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rehearse(env: &Env, tmpdir: &Path, args: &[&str]) -> Run {
    Run(env.cmd().env("TMPDIR", tmpdir).args(args).output().unwrap())
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// The journal mode a database file declares, read from a copy so the file itself is not touched.
fn journal_mode(path: &Path) -> String {
    let scratch = tempfile::tempdir().unwrap();
    let copy = scratch.path().join("copy.db");
    std::fs::copy(path, &copy).unwrap();
    Connection::open(&copy)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap()
}

/// The schema a database of set `name` has at its latest version, built in memory by replaying
/// the set's SQL files (initial schema, then each upgrade script in turn).
fn replayed_schema(sets: &Path, name: &str) -> Vec<(String, String, String, Option<String>)> {
    let dir = sets.join(name);
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(&std::fs::read_to_string(dir.join("v1.0_initial_schema.sql")).unwrap())
        .unwrap();
    let mut version = "1.0".to_string();
    loop {
        let prefix = format!("v{version}_to_v");
        let next = entries(&dir)
            .into_iter()
            .find(|f| f.starts_with(&prefix) && f.ends_with(".sql"));
        let Some(file) = next else { break };
        conn.execute_batch(&std::fs::read_to_string(dir.join(&file)).unwrap())
            .unwrap();
        version = file[prefix.len()..].split('_').next().unwrap().to_string();
    }
    schema_of(&conn)
}

// ---------------------------------------------------------------------------------------------
// --verify

#[test]
fn the_bundled_sets_verify_clean_and_verifying_writes_nothing() {
    let env = Env::new();
    env.init_all();
    seed_project(&env.db("project"));
    let before = env.files();

    let json = env.run(&["--verify", "--format", "json"]).expect(0).json();
    let sets: Vec<&str> = json["sets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        sets,
        [
            "aifp_core",
            "project",
            "user_preferences",
            "user_directives"
        ]
    );
    let scripts = |name| -> Vec<(String, String)> {
        steps(&json, name)
            .iter()
            .map(|s| {
                assert_eq!(s["status"], "restores", "{s}");
                assert_eq!(s["differences"], serde_json::json!([]), "{s}");
                let rollback = s["rollback"].as_str().unwrap().to_string();
                (s["script"].as_str().unwrap().to_string(), rollback)
            })
            .collect()
    };
    assert_eq!(
        scripts("aifp_core"),
        [(
            "v1.0_to_v1.1_move_notes_to_project.sql".to_string(),
            "rollback/v1.1_to_v1.0_move_notes_to_project.sql".to_string()
        )]
    );
    assert_eq!(
        scripts("project"),
        [
            (
                "v1.0_to_v1.1_git_integration.sql".to_string(),
                "rollback/v1.1_to_v1.0_git_integration.sql".to_string()
            ),
            (
                "v1.1_to_v1.2_notes_enhancement.sql".to_string(),
                "rollback/v1.2_to_v1.1_notes_enhancement.sql".to_string()
            )
        ]
    );
    assert!(scripts("user_preferences").is_empty());
    assert!(scripts("user_directives").is_empty());

    let text = env.run(&["--verify"]).expect(0).stdout();
    insta::assert_snapshot!("verify_bundled", scrub(&env, &text));

    // The sets built into the binary, as CI runs it.
    let built_in = Run(env
        .cmd()
        .env_remove("AIFP_MIGRATIONS")
        .arg("--verify")
        .output()
        .unwrap())
    .expect(0);
    assert_eq!(built_in.stdout(), text);

    assert_unchanged(&before, &env.files(), "--verify");
    assert_eq!(version(&env.db("project")), "1.0");
}

#[test]
fn verify_with_db_checks_only_that_set() {
    let env = Env::new();
    env.init_all();
    let before = env.files();

    let json = env
        .run(&["--verify", "--db", "project", "--format", "json"])
        .expect(0)
        .json();
    assert_eq!(json["sets"].as_array().unwrap().len(), 1, "{json}");
    let found = steps(&json, "project");
    assert_eq!(found.len(), 2, "{json}");
    assert!(found.iter().all(|s| s["status"] == "restores"), "{json}");

    let text = env.run(&["--verify", "--db", "project"]).expect(0).stdout();
    assert!(text.starts_with("project\n"), "{text}");
    assert!(!text.contains("aifp_core"), "{text}");
    assert_unchanged(&before, &env.files(), "--verify --db project");
}

#[test]
fn a_create_table_as_select_rollback_is_caught_and_every_loss_is_named() {
    let env = Env::with_sets(&fixture("know/ctas_no_foreign_key"));
    let before = env.files();

    let json = env.run(&["--verify", "--format", "json"]).expect(1).json();
    let found = steps(&json, "project");
    assert_eq!(found.len(), 1, "{json}");
    let step = &found[0];
    assert_eq!(step["status"], "differs", "{step}");
    assert_eq!(step["from"], "1.0");
    assert_eq!(step["to"], "1.1");
    assert_eq!(step["script"], "v1.0_to_v1.1_git_integration.sql");
    assert_eq!(
        step["rollback"],
        "rollback/v1.1_to_v1.0_git_integration.sql"
    );
    let differences = strings(&step["differences"]).join("\n");
    for lost in [
        // PRIMARY KEY and type
        "table project: column id is INT, expected INTEGER PRIMARY KEY",
        "table project: AUTOINCREMENT missing",
        // UNIQUE
        "table project: UNIQUE (name) missing",
        // NOT NULL
        "table project: column name is TEXT, expected TEXT NOT NULL",
        "table project: column purpose is TEXT, expected TEXT NOT NULL",
        "table project: column goals_json is TEXT, expected TEXT NOT NULL",
        // CHECK
        "table project: CHECK ( user_directives_status in ( 'in_progress' , 'active' , 'disabled' ) ) missing",
        // DEFAULTs
        "table project: column status is TEXT, expected TEXT DEFAULT 'active'",
        "table project: column version is INT, expected INTEGER DEFAULT 1",
        "table project: column created_at is NUM, expected DATETIME DEFAULT current_timestamp",
        // The trigger went with the dropped table.
        "trigger update_project_timestamp: missing",
    ] {
        assert!(differences.contains(lost), "{lost:?} not in:\n{differences}");
    }
    // Only the rebuilt table and its trigger differ: files is as it was.
    assert!(!differences.contains("table files"), "{differences}");

    let run = env.run(&["--verify"]).expect(1);
    let text = scrub(&env, &run.stdout());
    assert!(
        text.contains("1.0 -> 1.1  v1.0_to_v1.1_git_integration.sql: ROLLBACK DOES NOT RESTORE"),
        "{text}"
    );
    insta::assert_snapshot!("verify_ctas", text);
    assert_unchanged(&before, &env.files(), "--verify");
}

#[test]
fn a_create_table_as_select_rollback_of_a_table_other_tables_refer_to_is_caught() {
    // As in AIFP's project database, files.project_id REFERENCES project(id).
    let env = Env::with_sets(&fixture("know/ctas"));
    let before = env.files();

    let json = env.run(&["--verify", "--format", "json"]).expect(1).json();
    let step = &steps(&json, "project")[0];
    assert_eq!(step["script"], "v1.0_to_v1.1_git_integration.sql");
    assert_ne!(step["status"], "restores", "{step}");
    assert_ne!(step["status"], "no_rollback", "{step}");
    assert!(!strings(&step["differences"]).is_empty(), "{step}");

    let text = env.run(&["--verify"]).expect(1).stdout();
    assert!(text.contains("v1.0_to_v1.1_git_integration.sql"), "{text}");
    assert_unchanged(&before, &env.files(), "--verify");
}

#[test]
fn a_create_table_as_select_rollback_of_a_table_other_tables_refer_to_names_every_loss() {
    let env = Env::with_sets(&fixture("know/ctas"));
    let json = env.run(&["--verify", "--format", "json"]).expect(1).json();
    let step = &steps(&json, "project")[0];
    assert_eq!(step["status"], "differs", "{step}");
    let differences = strings(&step["differences"]).join("\n");
    for lost in [
        "table project: column id is INT, expected INTEGER PRIMARY KEY",
        "table project: UNIQUE (name) missing",
        "table project: column name is TEXT, expected TEXT NOT NULL",
        "table project: CHECK ( user_directives_status in ( 'in_progress' , 'active' , 'disabled' ) ) missing",
        "table project: column status is TEXT, expected TEXT DEFAULT 'active'",
        "trigger update_project_timestamp: missing",
    ] {
        assert!(differences.contains(lost), "{lost:?} not in:\n{differences}");
    }
}

#[test]
fn a_real_create_table_as_select_rollback_fails_naming_the_script_and_changes_nothing() {
    let env = Env::with_sets(&fixture("know/ctas"));
    let db = env.db("project");
    Connection::open(&db)
        .unwrap()
        .execute_batch(&format!(
            "PRAGMA journal_mode = wal;
             {}
             INSERT INTO project (name, purpose, goals_json) VALUES ('demo', 'test', '[]');
             INSERT INTO files (path, project_id) VALUES ('src/main.rs', 1);",
            std::fs::read_to_string(env.migrations.join("project/v1.0_initial_schema.sql"))
                .unwrap()
        ))
        .unwrap();
    env.run(&["--db", "project"]).expect(0);
    let rows = without_version_row(contents(&db));
    let before = schema(&db);

    let run = env.run(&["--db", "project", "--rollback"]).expect(1);
    assert_eq!(version(&db), "1.1");
    assert_eq!(schema(&db), before);
    assert_eq!(without_version_row(contents(&db)), rows);
    assert!(
        run.stderr().contains("v1.1_to_v1.0_git_integration.sql"),
        "{}",
        run.stderr()
    );
}

#[test]
fn a_rollback_that_leaves_an_index_behind_is_caught() {
    let env = Env::with_sets(&fixture("know/index_left"));
    let before = env.files();

    let json = env.run(&["--verify", "--format", "json"]).expect(1).json();
    let found = steps(&json, "project");
    assert_eq!(found.len(), 1, "{json}");
    assert_eq!(found[0]["status"], "differs");
    assert_eq!(found[0]["script"], "v1.0_to_v1.1_note_severity.sql");
    assert_eq!(
        found[0]["rollback"],
        "rollback/v1.1_to_v1.0_note_severity.sql"
    );
    assert_eq!(
        strings(&found[0]["differences"]),
        ["index idx_notes_type: not expected"]
    );

    let text = scrub(&env, &env.run(&["--verify"]).expect(1).stdout());
    insta::assert_snapshot!("verify_index_left", text);
    assert_unchanged(&before, &env.files(), "--verify");
}

#[test]
fn an_upgrade_step_without_a_rollback_is_listed_and_fails_nothing() {
    let env = Env::with_sets(&fixture("know/no_rollback"));

    let json = env.run(&["--verify", "--format", "json"]).expect(0).json();
    let found = steps(&json, "project");
    let summary: Vec<(&str, &str, &Value)> = found
        .iter()
        .map(|s| {
            (
                s["script"].as_str().unwrap(),
                s["status"].as_str().unwrap(),
                &s["rollback"],
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "v1.0_to_v1.1_note_severity.sql",
                "restores",
                &Value::from("rollback/v1.1_to_v1.0_note_severity.sql")
            ),
            ("v1.1_to_v1.2_note_source.sql", "no_rollback", &Value::Null),
        ]
    );

    let text = env.run(&["--verify"]).expect(0).stdout();
    assert!(
        text.contains("1.1 -> 1.2  v1.1_to_v1.2_note_source.sql: no rollback script"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// Drift

#[test]
fn a_column_added_by_hand_shows_as_drift_and_nothing_else_does() {
    let env = Env::new();
    env.init_all();
    env.run(&["--all"]).expect(0);

    // Freshly migrated: no drift anywhere.
    let json = env.run(&["--check", "--format", "json"]).expect(0).json();
    for name in [
        "aifp_core",
        "project",
        "user_preferences",
        "user_directives",
    ] {
        assert_eq!(
            entry(&json, "databases", name)["drift"],
            serde_json::json!([])
        );
    }

    Connection::open(env.db("project"))
        .unwrap()
        .execute_batch("ALTER TABLE notes ADD COLUMN x TEXT;")
        .unwrap();
    let before = env.files();
    let json = env.run(&["--check", "--format", "json"]).expect(0).json();
    let project = entry(&json, "databases", "project");
    assert_eq!(project["status"], "current");
    assert_eq!(project["current"], "1.2");
    assert_eq!(
        strings(&project["drift"]),
        ["table notes: column x not expected (TEXT)"]
    );
    // No version has that schema.
    assert!(project.get("matches").is_none(), "{project}");
    for name in ["aifp_core", "user_preferences", "user_directives"] {
        let other = entry(&json, "databases", name);
        assert_eq!(other["drift"], serde_json::json!([]), "{other}");
    }

    let text = env.run(&["--check"]).expect(0).stdout();
    let drift: Vec<&str> = text.lines().filter(|l| l.contains("drift")).collect();
    assert_eq!(
        drift,
        ["    drift: table notes: column x not expected (TEXT)"],
        "{text}"
    );
    assert_unchanged(&before, &env.files(), "--check");
}

#[test]
fn an_unversioned_database_is_named_by_the_version_its_schema_matches() {
    let env = Env::new();
    unversioned_project_at_1_1(&env);

    let json = env.run(&["--check", "--format", "json"]).expect(1).json();
    let project = entry(&json, "databases", "project");
    assert_eq!(project["status"], "unversioned");
    assert_eq!(project["current"], Value::Null);
    assert_eq!(project["matches"], "1.1");

    let text = env.run(&["--check"]).expect(1).stdout();
    assert!(
        text.contains("    its schema is exactly that of v1.1\n"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// --stamp

#[test]
fn stamp_refuses_a_version_whose_schema_does_not_match_and_changes_nothing() {
    let env = Env::new();
    let db = unversioned_project_at_1_1(&env);
    let before = env.files();

    let run = env.run(&["--db", "project", "--stamp", "1.2"]).expect(1);
    let err = scrub(&env, &run.stderr());
    assert!(err.contains("does not have the schema of v1.2"), "{err}");
    // The first difference, and the version it does match.
    assert!(
        err.contains("first: table notes: column directive_name missing (TEXT)"),
        "{err}"
    );
    assert!(err.contains("its schema is that of v1.1"), "{err}");
    insta::assert_snapshot!("stamp_refused", err);

    assert_unchanged(&before, &env.files(), "a refused --stamp");
    assert_eq!(backups(&db).len(), 1, "only the one from the setup");
}

#[test]
fn stamp_records_the_matching_version_after_which_all_migrates() {
    let env = Env::new();
    let db = unversioned_project_at_1_1(&env);
    let rows = without_version_row(contents(&db));
    let old_backups = backups(&db);

    let json = env
        .run(&["--db", "project", "--stamp", "1.1", "--format", "json"])
        .expect(0)
        .json();
    let project = entry(&json, "databases", "project");
    assert_eq!(project["status"], "stamped");
    assert_eq!(project["from"], Value::Null);
    assert_eq!(project["to"], "1.1");

    // A backup first, holding the database as it was: no schema_version table.
    let new: Vec<PathBuf> = backups(&db)
        .into_iter()
        .filter(|b| !old_backups.contains(b))
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
    let named = PathBuf::from(project["backup"].as_str().unwrap());
    assert_eq!(named.file_name(), new[0].file_name());
    let in_backup: i64 = open(&new[0])
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(in_backup, 0);

    // The version row, in the table exactly as SPEC defines it; the data untouched.
    assert_eq!(version(&db), "1.1");
    let updated_at: Option<String> = open(&db)
        .query_row(
            "SELECT updated_at FROM schema_version WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(updated_at.is_some_and(|t| !t.is_empty()));
    let spec = Connection::open_in_memory().unwrap();
    spec.execute_batch(SPEC_SCHEMA_VERSION).unwrap();
    let table_sql = |conn: &Connection| -> String {
        conn.query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(table_sql(&open(&db)), table_sql(&spec));
    assert_eq!(without_version_row(contents(&db)), rows);

    // Versioned again: --all takes it to 1.2, and it has exactly 1.2's schema.
    env.run(&["--all"]).expect(0);
    assert_eq!(version(&db), "1.2");
    let json = env
        .run(&["--check", "--db", "project", "--format", "json"])
        .expect(0)
        .json();
    let project = entry(&json, "databases", "project");
    assert_eq!(project["status"], "current");
    assert_eq!(project["drift"], serde_json::json!([]));
}

#[test]
fn stamp_with_force_records_a_mismatched_version_and_backs_up_first() {
    let env = Env::new();
    let db = unversioned_project_at_1_1(&env);
    let old_backups = backups(&db);

    let json = env
        .run(&[
            "--db", "project", "--stamp", "1.2", "--force", "--format", "json",
        ])
        .expect(0)
        .json();
    let project = entry(&json, "databases", "project");
    assert_eq!(project["status"], "stamped");
    assert_eq!(project["to"], "1.2");
    // It says what does not match.
    let drift = strings(&project["drift"]);
    assert!(
        drift.contains(&"table notes: column directive_name missing (TEXT)".to_string()),
        "{drift:?}"
    );
    assert_eq!(version(&db), "1.2");
    assert_eq!(backups(&db).len(), old_backups.len() + 1);

    // From now on --check shows the drift, and the version the schema really is.
    let json = env
        .run(&["--check", "--db", "project", "--format", "json"])
        .expect(0)
        .json();
    let project = entry(&json, "databases", "project");
    assert_eq!(project["current"], "1.2");
    assert_eq!(strings(&project["drift"]), drift);
    assert_eq!(project["matches"], "1.1");
}

// ---------------------------------------------------------------------------------------------
// --rehearse

/// The bundled sets plus a step 1.2 -> 1.3 that makes note content unique, and a project database
/// at 1.0 where two notes say the same thing: the plan breaks on the data, not on the schema.
fn plan_that_breaks_on_the_data() -> Env {
    let env = Env::new();
    let step = "v1.2_to_v1.3_unique_note_content.sql";
    std::fs::copy(
        fixture("know/steps").join(step),
        env.migrations.join("project").join(step),
    )
    .unwrap();
    let db = env.init_db("project");
    seed_project(&db);
    Connection::open(&db)
        .unwrap()
        .execute_batch("INSERT INTO notes (content, note_type) VALUES ('remember this', 'later');")
        .unwrap();
    env
}

#[test]
fn a_rehearsal_reports_a_plan_that_breaks_on_the_data_and_leaves_no_copy_behind() {
    let env = plan_that_breaks_on_the_data();
    let db = env.db("project");
    let tmpdir = rehearsal_tmpdir(&env);
    // The schema is sound: only the data breaks the new step.
    env.run(&["--verify", "--db", "project"]).expect(0);
    let bytes = std::fs::read(&db).unwrap();
    let rows = contents(&db);

    let run = rehearse(&env, &tmpdir, &["--all", "--rehearse", "--format", "json"]).expect(1);
    let json = run.json();
    let project = entry(&json, "databases", "project");
    assert_eq!(project["status"], "would_fail", "{project}");
    assert_eq!(project["from"], "1.0");
    assert_eq!(project["to"], "1.3");
    assert_eq!(project["backup"], Value::Null);
    let error = project["error"].as_str().unwrap();
    assert!(
        error.contains("v1.2_to_v1.3_unique_note_content.sql"),
        "{error}"
    );
    assert!(
        error.contains("UNIQUE constraint failed: notes.content"),
        "{error}"
    );
    let rehearsal = &project["rehearsal"];
    assert!(
        rehearsal["copy_needs_bytes"].as_u64().unwrap() > 0,
        "{rehearsal}"
    );
    let copied_into = PathBuf::from(rehearsal["copied_into"].as_str().unwrap());
    assert!(copied_into.starts_with(&tmpdir), "{copied_into:?}");
    assert!(!copied_into.exists(), "{copied_into:?} was left behind");

    // Nothing changed: the database, its data, its version; no backup, no copy left.
    assert_eq!(std::fs::read(&db).unwrap(), bytes, "project.db changed");
    assert_eq!(contents(&db), rows);
    assert_eq!(version(&db), "1.0");
    assert!(backups(&db).is_empty());
    assert!(entries(&tmpdir).is_empty(), "{:?}", entries(&tmpdir));

    // The text says the same, and the real run then fails as the rehearsal said it would.
    let text = rehearse(&env, &tmpdir, &["--all", "--rehearse"])
        .expect(1)
        .stdout();
    assert!(text.contains("rehearsed 1.0 -> 1.3: WOULD FAIL"), "{text}");
    assert!(entries(&tmpdir).is_empty(), "{:?}", entries(&tmpdir));
    let real = env.run(&["--all"]).expect(1);
    assert!(
        real.stderr()
            .contains("v1.2_to_v1.3_unique_note_content.sql"),
        "{}",
        real.stderr()
    );
    assert_eq!(version(&db), "1.0");
    assert_eq!(contents(&db), rows);
}

#[test]
fn a_rehearsal_changes_no_file_at_all() {
    let env = plan_that_breaks_on_the_data();
    let tmpdir = rehearsal_tmpdir(&env);
    let before = env.files();
    rehearse(&env, &tmpdir, &["--all", "--rehearse"]).expect(1);
    assert_unchanged(&before, &env.files(), "a failing --rehearse");

    let env = Env::new();
    env.init_all();
    let tmpdir = rehearsal_tmpdir(&env);
    let before = env.files();
    rehearse(&env, &tmpdir, &["--all", "--rehearse"]).expect(0);
    assert_unchanged(&before, &env.files(), "a successful --rehearse");
}

#[test]
fn a_rehearsal_of_a_sound_plan_would_succeed_and_leaves_the_databases_as_they_were() {
    let env = Env::new();
    env.init_all();
    seed_project(&env.db("project"));
    let tmpdir = rehearsal_tmpdir(&env);
    let names = [
        "aifp_core",
        "project",
        "user_preferences",
        "user_directives",
    ];
    let bytes: Vec<Vec<u8>> = names
        .iter()
        .map(|n| std::fs::read(env.db(n)).unwrap())
        .collect();
    let rows = contents(&env.db("project"));

    let json = rehearse(&env, &tmpdir, &["--all", "--rehearse", "--format", "json"])
        .expect(0)
        .json();
    for (name, to) in [("aifp_core", "1.1"), ("project", "1.2")] {
        let e = entry(&json, "databases", name);
        assert_eq!(e["status"], "would_succeed", "{e}");
        assert_eq!(e["from"], "1.0");
        assert_eq!(e["to"], to);
        assert_eq!(e["backup"], Value::Null);
        assert!(e.get("error").is_none(), "{e}");
        let r = &e["rehearsal"];
        assert!(r["copy_needs_bytes"].as_u64().unwrap() > 0, "{r}");
        assert_eq!(r["drift"], serde_json::json!([]), "{r}");
    }
    // The schema it would end with is 1.2's.
    let schema = strings(&entry(&json, "databases", "project")["rehearsal"]["schema"]);
    assert!(
        schema.contains(&"CREATE INDEX idx_notes_source ON notes (source)".to_string()),
        "{schema:?}"
    );
    assert!(
        schema
            .iter()
            .any(|s| s.starts_with("CREATE TABLE work_branches")),
        "{schema:?}"
    );
    for name in ["user_preferences", "user_directives"] {
        assert_eq!(entry(&json, "databases", name)["status"], "current");
    }

    for (name, bytes) in names.iter().zip(&bytes) {
        let db = env.db(name);
        assert_eq!(&std::fs::read(&db).unwrap(), bytes, "{name} changed");
        assert_eq!(version(&db), "1.0");
        assert!(backups(&db).is_empty(), "{name}");
    }
    assert_eq!(contents(&env.db("project")), rows);
    assert!(entries(&tmpdir).is_empty(), "{:?}", entries(&tmpdir));
}

// ---------------------------------------------------------------------------------------------
// --init

/// A world whose project folder has no `.aifp-project` yet.
fn empty_project() -> Env {
    let env = Env::new();
    std::fs::remove_dir(env.project.join(".aifp-project")).unwrap();
    env
}

#[test]
fn init_creates_the_per_project_databases_at_their_latest_version_in_wal_mode() {
    let env = empty_project();

    let json = env
        .run(&["--init", "--project-dir", ".", "--format", "json"])
        .expect(0)
        .json();
    let listed: Vec<(&str, &str, &str)> = json["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap(),
                d["status"].as_str().unwrap(),
                d["to"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("project", "created", "1.2"),
            ("user_preferences", "created", "1.0"),
            ("user_directives", "created", "1.0"),
        ]
    );
    assert!(env.project.join(".aifp-project").is_dir());
    // Not the core database, and nothing else beside the three.
    assert!(!env.db("aifp_core").exists());
    let mut made = entries(&env.project.join(".aifp-project"));
    made.sort();
    assert_eq!(
        made,
        ["project.db", "user_directives.db", "user_preferences.db"]
    );

    // The same schema as the tool's own upgrade path from 1.0, and as the SQL files replayed.
    let reference = Env::new();
    reference.init_all();
    reference.run(&["--all"]).expect(0);
    for (name, latest) in [
        ("project", "1.2"),
        ("user_preferences", "1.0"),
        ("user_directives", "1.0"),
    ] {
        let db = env.db(name);
        assert_eq!(journal_mode(&db), "wal", "{name}");
        assert_eq!(version(&db), latest, "{name}");
        assert_eq!(schema(&db), schema(&reference.db(name)), "{name}");
        assert_eq!(
            schema(&db),
            replayed_schema(&env.migrations, name),
            "{name}"
        );
    }
    // Rows the initial schema inserts are there too.
    assert_eq!(count(&env.db("user_directives"), "logging_config"), 1);
}

#[test]
fn init_again_reports_exists_and_leaves_every_file_as_it_was() {
    let env = empty_project();
    env.run(&["--init", "--project-dir", "."]).expect(0);
    let before = env.files();

    let json = env.run(&["--init", "--format", "json"]).expect(0).json();
    for name in PER_PROJECT {
        assert_eq!(entry(&json, "databases", name)["status"], "exists");
    }
    let text = env.run(&["--init"]).expect(0).stdout();
    assert_eq!(text.matches("exists, left alone").count(), 3, "{text}");
    assert_unchanged(&before, &env.files(), "a second --init");
}

#[test]
fn init_never_overwrites_a_file_already_there() {
    let env = Env::new();
    env.init_db("project");
    let json = env.run(&["--init", "--format", "json"]).expect(0).json();
    assert_eq!(entry(&json, "databases", "project")["status"], "exists");
    assert_eq!(
        entry(&json, "databases", "user_directives")["status"],
        "created"
    );
    assert_eq!(version(&env.db("project")), "1.0");
    assert_eq!(version(&env.db("user_directives")), "1.0");

    // A file there that is no database is an error naming it (SPEC, bad input): nothing is
    // created, and the file is left as it was.
    let env = Env::new();
    let junk = env.db("user_preferences");
    std::fs::write(&junk, b"not a database, but mine").unwrap();
    let run = env.run(&["--init"]).expect(1);
    assert!(
        run.stderr().contains(&junk.display().to_string()),
        "{}",
        run.stderr()
    );
    assert_eq!(std::fs::read(&junk).unwrap(), b"not a database, but mine");
    // No leftover from building the new files, and nothing new.
    assert_eq!(
        entries(&env.project.join(".aifp-project")),
        ["user_preferences.db"]
    );
}

#[test]
fn init_creates_the_core_database_only_when_asked() {
    let env = empty_project();
    env.run(&["--init", "--project-dir", "."]).expect(0);
    assert!(!env.db("aifp_core").exists());

    let json = env
        .run(&["--init", "--db", "aifp_core", "--format", "json"])
        .expect(0)
        .json();
    let listed = json["databases"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{json}");
    assert_eq!(listed[0]["name"], "aifp_core");
    assert_eq!(listed[0]["status"], "created");
    let core = env.db("aifp_core");
    assert_eq!(entries(&env.core_dir), ["aifp_core.db"]);
    assert_eq!(version(&core), "1.1");
    assert_eq!(journal_mode(&core), "wal");
    assert_eq!(schema(&core), replayed_schema(&env.migrations, "aifp_core"));

    let before = env.files();
    let json = env
        .run(&["--init", "--db", "aifp_core", "--format", "json"])
        .expect(0)
        .json();
    assert_eq!(json["databases"][0]["status"], "exists");
    assert_unchanged(&before, &env.files(), "a second --init --db aifp_core");
}
