//! `--scan DIR`: every project below a folder in one report, through the real binary.

mod common;

use std::path::Path;

use common::*;

/// Makes `dir/.aifp-project/project.db` at v1.0 from the bundled initial schema.
fn project_at(env: &Env, dir: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join(".aifp-project")).unwrap();
    let db = dir.join(".aifp-project/project.db");
    let sql =
        std::fs::read_to_string(env.migrations.join("project/v1.0_initial_schema.sql")).unwrap();
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(&sql)
        .unwrap();
    db
}

#[test]
fn scan_finds_nested_projects_and_skips_the_folders_above_and_dependency_folders() {
    let env = Env::new();
    env.init_db("project"); // the project around the scanned folder: above it, not scanned
    let work = env.project.join("work");
    let a = project_at(&env, &work.join("a"));
    let nested = project_at(&env, &work.join("a/packages/inner"));
    let b = project_at(&env, &work.join("b"));
    let hidden = project_at(&env, &work.join("b/node_modules/dep"));
    std::fs::create_dir_all(work.join("c")).unwrap();
    std::os::unix::fs::symlink(&work, work.join("c/loop")).unwrap();

    let scan = work.display().to_string();
    let before = env.files();
    let json = env
        .run(&["--check", "--scan", &scan, "--format", "json"])
        .expect(3)
        .json();
    assert!(env.files() == before, "--check --scan changed a file");
    let paths: Vec<String> = json["databases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["name"] == "project")
        .map(|d| d["path"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = [&a, &nested, &b]
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(paths, expected);
    assert_eq!(json["databases"][0]["name"], "aifp_core");

    env.run(&["--all", "--scan", &scan]).expect(0);
    for db in [&a, &nested, &b] {
        assert_eq!(version(db), "1.2", "{}", db.display());
    }
    assert_eq!(
        version(&hidden),
        "1.0",
        "a project inside node_modules was migrated"
    );
    assert_eq!(
        version(&env.db("project")),
        "1.0",
        "the project above the scan was migrated"
    );
    env.run(&["--check", "--scan", &scan]).expect(0);
}

#[test]
fn scan_needs_check_or_all_and_an_existing_folder() {
    let env = Env::new();
    for args in [
        &["--scan", "."][..],
        &["--db", "project", "--scan", "."],
        &["--verify", "--scan", "."],
    ] {
        assert_eq!(env.run(args).code(), 2, "{args:?}");
    }
    let run = env
        .run(&["--check", "--scan", "/nonexistent/folder"])
        .expect(1);
    assert!(
        run.stderr().contains("/nonexistent/folder"),
        "{}",
        run.stderr()
    );
}

#[test]
fn with_scan_a_project_that_cannot_be_planned_or_fails_is_reported_and_the_others_go_ahead() {
    let env = Env::new();
    let work = env.project.join("work");
    let good = project_at(&env, &work.join("good"));
    let junk = project_at(&env, &work.join("junk"));
    std::fs::write(&junk, b"this is not a database").unwrap();
    let failing = project_at(&env, &work.join("failing"));
    // A step that fails on one project only: its notes hold a row the step cannot take.
    std::fs::write(
        env.migrations.join("project/v1.2_to_v1.3_unique.sql"),
        "-- One note per content.\nCREATE UNIQUE INDEX notes_unique ON notes (content);\n",
    )
    .unwrap();
    rusqlite::Connection::open(&failing)
        .unwrap()
        .execute_batch("INSERT INTO notes (content, note_type) VALUES ('x', 'a'), ('x', 'b');")
        .unwrap();
    let failing_before = std::fs::read(&failing).unwrap();

    let scan = work.display().to_string();
    let run = env
        .run(&["--all", "--scan", &scan, "--format", "json"])
        .expect(1);
    let json = run.json();
    let status = |db: &Path| {
        json["databases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["path"] == db.display().to_string())
            .map(|d| {
                (
                    d["status"].as_str().unwrap().to_string(),
                    d["error"].clone(),
                )
            })
            .unwrap()
    };
    assert_eq!(status(&good).0, "migrated", "{json}");
    assert_eq!(status(&junk).0, "error");
    assert!(status(&junk)
        .1
        .as_str()
        .unwrap()
        .contains("not an SQLite database"));
    assert_eq!(status(&failing).0, "failed");
    assert!(status(&failing).1.as_str().unwrap().contains("UNIQUE"));
    assert_eq!(version(&good), "1.3");
    assert_eq!(std::fs::read(&failing).unwrap(), failing_before);
    assert_eq!(std::fs::read(&junk).unwrap(), b"this is not a database");
    // Each error is on stderr too, one line each.
    assert_eq!(run.stderr().lines().count(), 2, "{}", run.stderr());
}
