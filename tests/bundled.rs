//! The bundled migration sets: each goes from its initial schema up to the latest version and back
//! down to 1.0 through the real binary, and finds the same schema and the same rows.

mod common;

use common::*;

#[test]
fn every_bundled_set_goes_up_to_its_latest_and_back_down_to_the_same_schema() {
    let env = Env::new();
    env.init_all();
    let conn = rusqlite::Connection::open(env.db("project")).unwrap();
    conn.execute_batch(
        "INSERT INTO project (name, purpose, goals_json) VALUES ('p', 'x', '[]');
         INSERT INTO notes (content, note_type) VALUES ('n', 'info');",
    )
    .unwrap();
    drop(conn);
    let names = [
        "aifp_core",
        "project",
        "user_preferences",
        "user_directives",
    ];
    let before: Vec<_> = names.iter().map(|n| schema(&env.db(n))).collect();
    let rows_before = contents(&env.db("project"));

    env.run(&["--all"]).expect(0);
    let latest = ["1.1", "1.2", "1.0", "1.0"];
    for (name, want) in names.iter().zip(latest) {
        assert_eq!(version(&env.db(name)), want, "{name}");
    }
    for name in names {
        env.run(&["--db", name, "--target", "1.0", "--allow-data-loss"])
            .expect(0);
        assert_eq!(version(&env.db(name)), "1.0", "{name}");
    }
    let after: Vec<_> = names.iter().map(|n| schema(&env.db(n))).collect();
    for ((name, b), a) in names.iter().zip(&before).zip(&after) {
        assert_eq!(a, b, "{name}: the schema after the round trip differs");
    }
    assert_eq!(
        without_version_row(contents(&env.db("project"))),
        without_version_row(rows_before)
    );
}

#[test]
fn the_binary_carries_the_bundled_sets_when_no_folder_is_given() {
    let env = Env::new();
    env.init_db("project");
    let run = Run(env
        .cmd()
        .env_remove("AIFP_MIGRATIONS")
        .args(["--check", "--format", "json"])
        .output()
        .unwrap());
    let json = run.expect(3).json();
    assert_eq!(json["databases"][1]["latest"], "1.2");
    Run(env
        .cmd()
        .env_remove("AIFP_MIGRATIONS")
        .args(["--db", "project"])
        .output()
        .unwrap())
    .expect(0);
    assert_eq!(version(&env.db("project")), "1.2");
    // Same scripts as the folder: the built-in and folder runs reach the same schema.
    let other = Env::new();
    other.init_db("project");
    other.run(&["--db", "project"]).expect(0);
    assert_eq!(schema(&env.db("project")), schema(&other.db("project")));
}
