//! `--check -q` as a session-start hook: silent when nothing needs attention, else one line per
//! database to migrate, naming the command that does it; that command, run by a shell from
//! anywhere, really migrates them.

mod common;

use std::path::Path;

use common::*;

/// The command at the end of one hook line (`... pending (PATH): run COMMAND`).
fn command_of(line: &str) -> &str {
    line.split_once("): run ")
        .map(|(_, cmd)| cmd)
        .unwrap_or_else(|| panic!("no command in {line:?}"))
}

/// Runs `command` as a shell would, from `dir`, with this world's environment and the binary
/// under test first on PATH.
fn shell(env: &Env, dir: &Path, command: &str) -> Run {
    let bin = Path::new(env!("CARGO_BIN_EXE_aifp-migrate"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Run(std::process::Command::new("sh")
        .args(["-c", command])
        .current_dir(dir)
        .env("PATH", path)
        .env("HOME", &env.home)
        .env("AIFP_HOME", &env.core_dir)
        .env("AIFP_MIGRATIONS", &env.migrations)
        .env("XDG_CACHE_HOME", env.cache.path())
        .output()
        .unwrap())
}

#[test]
fn nothing_to_do_is_silent_with_exit_0() {
    // No database at all: every one is missing, which needs no attention.
    let env = Env::new();
    let run = env.run(&["--check", "-q"]).expect(0);
    assert_eq!((run.stdout().as_str(), run.stderr().as_str()), ("", ""));

    // All four at their latest version.
    env.init_all();
    env.run(&["--all"]).expect(0);
    assert_eq!(version(&env.db("project")), "1.2");
    assert_eq!(version(&env.db("aifp_core")), "1.1");
    let before = env.files();
    let run = env.run(&["--check", "-q"]).expect(0);
    assert_eq!((run.stdout().as_str(), run.stderr().as_str()), ("", ""));
    assert!(env.files() == before, "--check -q changed a file");
}

#[test]
fn one_line_per_pending_database_and_its_command_migrates_them() {
    let env = Env::new();
    env.init_all(); // aifp_core (1.0 -> 1.1) and project (1.0 -> 1.2) pending, the others current
    let before = env.files();
    let run = env.run(&["--check", "-q"]).expect(3);
    assert!(env.files() == before, "--check -q changed a file");
    assert_eq!(run.stderr(), "");
    let (core, project) = (env.db("aifp_core"), env.db("project"));
    assert_eq!(
        run.stdout(),
        format!(
            "aifp_core 1.0 -> 1.1 pending ({}): run aifp-migrate --all\n\
             project 1.0 -> 1.2 pending ({}): run aifp-migrate --all\n",
            core.display(),
            project.display()
        )
    );

    // The command the lines name does what they promise, and the hook falls silent.
    let out = run.stdout();
    let command = command_of(out.lines().next().unwrap());
    shell(&env, &env.project, command).expect(0);
    assert_eq!(version(&core), "1.1");
    assert_eq!(version(&project), "1.2");
    assert_eq!(version(&env.db("user_preferences")), "1.0");
    assert_eq!(backups(&project).len(), 1);
    let run = env.run(&["--check", "-q"]).expect(0);
    assert_eq!((run.stdout().as_str(), run.stderr().as_str()), ("", ""));
}

#[test]
fn a_broken_database_is_one_error_line_on_stderr_and_pending_ones_still_get_theirs() {
    let env = Env::new();
    env.init_all();
    let prefs = env.db("user_preferences");
    rusqlite::Connection::open(&prefs)
        .unwrap()
        .execute_batch("DELETE FROM schema_version")
        .unwrap();
    let run = env.run(&["--check", "-q"]).expect(1);
    let stdout = run.stdout();
    let names: Vec<&str> = stdout
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(names, ["aifp_core", "project"], "{stdout}");
    let stderr = run.stderr();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains(&prefs.display().to_string()),
        "{stderr}"
    );
    assert_eq!(version(&env.db("project")), "1.0");
}

#[test]
fn the_command_names_the_project_checked_from_elsewhere_quoted_for_the_shell() {
    let env = Env::with_sets(&bundled());
    // A project folder whose name a shell would split.
    let project = env.tmp.path().join("my 'odd' project");
    std::fs::create_dir_all(project.join(".aifp-project")).unwrap();
    let db = project.join(".aifp-project/project.db");
    let sql =
        std::fs::read_to_string(env.migrations.join("project/v1.0_initial_schema.sql")).unwrap();
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(&sql)
        .unwrap();

    let elsewhere = env.tmp.path();
    let dir = project.display().to_string();
    let run = Run(env
        .cmd_in(elsewhere)
        .args(["--check", "-q", "--project-dir", &dir])
        .output()
        .unwrap())
    .expect(3);
    let out = run.stdout();
    assert_eq!(out.lines().count(), 1, "{out}");
    let command = command_of(out.trim_end());
    assert_eq!(
        command,
        format!(
            "aifp-migrate --all --project-dir '{}'",
            dir.replace('\'', "'\\''")
        )
    );
    shell(&env, elsewhere, command).expect(0);
    assert_eq!(version(&db), "1.2");
}

#[test]
fn with_scan_the_command_scans_the_same_folder() {
    let env = Env::new();
    env.init_db("project");
    let scan = env.project.display().to_string();
    let run = Run(env
        .cmd_in(env.tmp.path())
        .args(["--check", "-q", "--scan", &scan])
        .output()
        .unwrap())
    .expect(3);
    let out = run.stdout();
    assert_eq!(
        out,
        format!(
            "project 1.0 -> 1.2 pending ({}): run aifp-migrate --all --scan {scan}\n",
            env.db("project").display()
        )
    );
}

#[test]
fn quiet_leaves_the_json_document_as_it_is() {
    let env = Env::new();
    env.init_all();
    let quiet = env.run(&["--check", "-q", "--format", "json"]).expect(3);
    let normal = env.run(&["--check", "--format", "json"]).expect(3);
    assert_eq!(quiet.stdout(), normal.stdout());
    assert_eq!(quiet.json()["databases"][1]["status"], "pending");
}

#[test]
fn a_check_of_one_database_names_the_command_for_that_one() {
    let env = Env::new();
    env.init_all();
    let run = env.run(&["--check", "--db", "project", "-q"]).expect(3);
    let out = run.stdout();
    assert_eq!(out.lines().count(), 1, "{out}");
    let command = command_of(out.trim_end());
    assert_eq!(command, "aifp-migrate --db project");
    shell(&env, &env.project, command).expect(0);
    assert_eq!(version(&env.db("project")), "1.2");
    assert_eq!(
        version(&env.db("aifp_core")),
        "1.0",
        "--db project migrated the core"
    );
}

#[test]
fn a_drifted_database_gets_a_line_whose_command_repairs_it() {
    let env = Env::new();
    env.init_all();
    env.run(&["--all"]).expect(0);
    let project = env.db("project");
    rusqlite::Connection::open(&project)
        .unwrap()
        .execute_batch(
            "INSERT INTO project (name, purpose, goals_json) VALUES ('demo', 'p', '[]');
             ALTER TABLE project ADD COLUMN hand_made TEXT;",
        )
        .unwrap();
    let before = env.files();
    // Current, so exit 0, but not silent: the schema is not its version's.
    let run = env.run(&["--check", "-q"]).expect(0);
    assert!(env.files() == before, "--check -q changed a file");
    assert_eq!(run.stderr(), "");
    assert_eq!(
        run.stdout(),
        format!(
            "project 1.2 drifted from its schema ({}): run aifp-migrate --db project --repair\n",
            project.display()
        )
    );

    // Run by a shell from the project, the command repairs it, keeping the row, and the hook
    // falls silent.
    let out = run.stdout();
    shell(&env, &env.project, command_of(out.trim_end())).expect(0);
    assert_eq!(version(&project), "1.2");
    assert_eq!(count(&project, "project"), 1);
    let run = env.run(&["--check", "-q"]).expect(0);
    assert_eq!((run.stdout().as_str(), run.stderr().as_str()), ("", ""));

    // In a scan the command names the project folder, so it works from anywhere.
    rusqlite::Connection::open(&project)
        .unwrap()
        .execute_batch("ALTER TABLE project ADD COLUMN hand_made TEXT;")
        .unwrap();
    let home = env.home.clone();
    let scan = env.tmp.path().display().to_string();
    let run = env.run(&["--check", "-q", "--scan", &scan]).expect(0);
    let out = run.stdout();
    let line = out
        .lines()
        .find(|l| l.starts_with("project "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("--project-dir"), "{line}");
    shell(&env, &home, command_of(line)).expect(0);
    let run = env.run(&["--check", "-q"]).expect(0);
    assert_eq!((run.stdout().as_str(), run.stderr().as_str()), ("", ""));
}
