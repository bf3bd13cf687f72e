//! Hostile files and paths, through the real binary: side files that are FIFOs or folders, paths
//! that are not UTF-8, symbolic links, unreadable scripts, control characters in what scripts and
//! databases say, signals mid-run, and projects owned by someone else.

mod common;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rusqlite::{Connection, OpenFlags};

const BIN: &str = env!("CARGO_BIN_EXE_aifp-migrate");

/// The real binary with this world's environment, run from `dir`.
fn command_in(env: &Env, dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env("HOME", &env.home)
        .env("AIFP_HOME", &env.core_dir)
        .env("AIFP_MIGRATIONS", &env.migrations)
        .env("XDG_CACHE_HOME", env.cache.path())
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs with `args` from the project folder; a run still going after 10 s is killed, so a hang
/// fails the test instead of blocking it. Returns what it printed and how long it took.
fn run_bounded(env: &Env, args: &[&str]) -> (Run, Duration) {
    let started = Instant::now();
    let mut child = command_in(env, &env.project).args(args).spawn().unwrap();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{args:?} still running after 10 s (killed); stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed();
    (Run(child.wait_with_output().unwrap()), took)
}

/// `<path><suffix>`, built on the bytes of the path.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Opens a closed database as immutable (nothing created beside it); any path, UTF-8 or not.
fn open_immutable(path: &Path) -> Connection {
    let escaped: String = path
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .map(|&b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    Connection::open_with_flags(
        format!("file:{escaped}?immutable=1"),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
    )
    .unwrap()
}

fn scalar(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn text(conn: &Connection, sql: &str) -> String {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// The names in a folder, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// The JSON entry of database `name`.
fn entry<'a>(json: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    json["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {json}"))
}

/// Adds notes to a bundled project database at 1.0, so that a migration has rows to keep.
fn seed(db: &Path, n: usize) {
    let conn = Connection::open(db).unwrap();
    conn.execute_batch("BEGIN").unwrap();
    for i in 0..n {
        conn.execute(
            "INSERT INTO notes (content, note_type) VALUES (?1, 'clarification')",
            [format!("note {i}")],
        )
        .unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
}

/// Every regular file under `dir` with its bytes (a FIFO is never opened: reading one blocks).
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            out.extend(files_under(&path));
        } else if meta.is_file() {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        } else {
            out.push((path, Vec::new()));
        }
    }
    out.sort();
    out
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(ok.success(), "mkfifo {}", path.display());
}

// ---------------------------------------------------------------------------------------------
// 2. A -wal, -shm or -journal that is not a regular file: an error naming it, at once.

#[test]
fn a_side_file_that_is_a_fifo_or_a_folder_is_named_at_once_in_every_mode() {
    for suffix in ["-wal", "-shm", "-journal"] {
        for kind in ["fifo", "folder"] {
            let env = Env::new();
            let db = env.init_db("project");
            env.run(&["--all"]).expect(0); // a backup to list and restore
            env.run(&["--db", "project", "--target", "1.0"]).expect(0);
            let side = sibling(&db, suffix);
            match kind {
                "fifo" => mkfifo(&side),
                _ => std::fs::create_dir(&side).unwrap(),
            }
            let before = files_under(env.tmp.path());
            let version_before = text(&open_immutable(&db), "SELECT version FROM schema_version");
            for args in [
                &["--check"][..],
                &["--check", "--format", "json"],
                &["--all"],
                &["--all", "--dry-run"],
                &["--all", "--rehearse"],
                &["--db", "project", "--restore"],
            ] {
                let (run, took) = run_bounded(&env, args);
                let what = format!("{kind} {suffix} {args:?}");
                assert!(took < Duration::from_secs(2), "{what} took {took:?}");
                assert_eq!(run.code(), 1, "{what}\n{}\n{}", run.stdout(), run.stderr());
                let err = run.stderr();
                assert!(
                    err.contains(&side.display().to_string()) && err.contains("not a regular file"),
                    "{what}: {err}"
                );
                assert!(!run.stdout().contains("panicked") && !err.contains("panicked"));
            }
            let after = files_under(env.tmp.path());
            let changed: Vec<&PathBuf> = after
                .iter()
                .filter(|f| !before.contains(f))
                .chain(before.iter().filter(|f| !after.contains(f)))
                .map(|(p, _)| p)
                .collect();
            assert!(changed.is_empty(), "{kind} {suffix}: changed {changed:?}");
            assert_eq!(
                text(&open_immutable(&db), "SELECT version FROM schema_version"),
                version_before
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Paths that are not UTF-8.

#[test]
fn a_project_under_a_folder_whose_name_is_not_utf8_works_end_to_end() {
    let env = Env::new();
    let odd = env
        .tmp
        .path()
        .join(OsString::from_vec(b"proj\xff\xfe".to_vec()));
    std::fs::create_dir_all(odd.join(".aifp-project")).unwrap();
    let db = odd.join(".aifp-project/project.db");
    std::fs::copy(env.init_db("project"), &db).unwrap();
    std::fs::remove_file(env.db("project")).unwrap();
    seed(&db, 5);
    let run = |args: &[&str]| {
        let out = command_in(&env, &odd).args(args).output().unwrap();
        Run(out)
    };

    let json = run(&["--check", "--format", "json"]).expect(3).json();
    assert_eq!(entry(&json, "project")["current"], "1.0", "{json}");

    run(&["--all"]).expect(0);
    assert_eq!(
        text(&open_immutable(&db), "SELECT version FROM schema_version"),
        "1.2"
    );
    assert_eq!(
        scalar(&open_immutable(&db), "SELECT count(*) FROM notes"),
        5
    );
    let backups: Vec<PathBuf> = std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .contains(".backup_")
        })
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert!(backups[0].starts_with(&odd), "{:?}", backups[0]);
    let b = open_immutable(&backups[0]);
    assert_eq!(text(&b, "SELECT version FROM schema_version"), "1.0");
    assert_eq!(scalar(&b, "SELECT count(*) FROM notes"), 5);
    drop(b);

    let json = run(&["--list-backups", "--db", "project", "--format", "json"])
        .expect(0)
        .json();
    assert_eq!(json["backups"].as_array().unwrap().len(), 1, "{json}");
    assert_eq!(json["backups"][0]["version"], "1.0", "{json}");

    run(&["--db", "project", "--restore"]).expect(0);
    assert_eq!(
        text(&open_immutable(&db), "SELECT version FROM schema_version"),
        "1.0"
    );
    assert_eq!(
        scalar(&open_immutable(&db), "SELECT count(*) FROM notes"),
        5
    );

    // --all --restore finds that run's backup through the history, byte for byte.
    run(&["--all"]).expect(0);
    run(&["--all", "--restore"]).expect(0);
    assert_eq!(
        text(&open_immutable(&db), "SELECT version FROM schema_version"),
        "1.0"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Backup names in UTC; newest and prune by the time a backup was made.

/// SQLite's clock as `YYYYmmdd_HHMMSS` in UTC, moved by `modifier` (e.g. `+8 hours`).
fn utc_stamp(modifier: &str) -> String {
    Connection::open_in_memory()
        .unwrap()
        .query_row(
            "SELECT strftime('%Y%m%d_%H%M%S', 'now', ?1)",
            [modifier],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn a_backup_is_named_in_utc_whatever_the_time_zone() {
    for tz in ["XYZ-14", "America/New_York", "ABC+11"] {
        let env = Env::new();
        let db = env.init_db("project");
        let before = utc_stamp("+0 seconds");
        let out = command_in(&env, &env.project)
            .env("TZ", tz)
            .arg("--all")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let after = utc_stamp("+0 seconds");
        let found = backups(&db);
        assert_eq!(found.len(), 1, "{found:?}");
        let name = found[0].file_name().unwrap().to_string_lossy().into_owned();
        let stamp = name.strip_prefix("project.db.backup_").unwrap();
        assert!(
            before.as_str() <= stamp && stamp <= after.as_str(),
            "TZ={tz}: {stamp} is not UTC now ({before} .. {after})"
        );
        // --list-backups shows that time, in UTC.
        let json = command_in(&env, &env.project)
            .env("TZ", tz)
            .args(["--list-backups", "--db", "project", "--format", "json"])
            .output()
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        let shown = json["backups"][0]["time"].as_str().unwrap().to_string();
        let expected = format!(
            "{}-{}-{} {}:{}:{}",
            &stamp[0..4],
            &stamp[4..6],
            &stamp[6..8],
            &stamp[9..11],
            &stamp[11..13],
            &stamp[13..15]
        );
        assert_eq!(shown, expected, "TZ={tz}");
    }
}

#[test]
fn newest_and_prune_go_by_when_a_backup_was_made_even_for_an_old_local_time_name() {
    let env = Env::new();
    let db = env.init_db("project");
    env.run(&["--all"]).expect(0);
    let real = backups(&db);
    assert_eq!(real.len(), 1);
    // A backup an older version named in local time ten hours east of UTC, two hours ago: its
    // name sorts after the real, newer backup's.
    let old = db
        .parent()
        .unwrap()
        .join(format!("project.db.backup_{}", utc_stamp("+8 hours")));
    std::fs::copy(&db, &old).unwrap(); // a database at 1.2
    let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    assert!(old > real[0], "the test needs the old name to sort last");

    let json = env
        .run(&["--list-backups", "--db", "project", "--format", "json"])
        .expect(0)
        .json();
    let files: Vec<&str> = json["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["file"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        [old.to_str().unwrap(), real[0].to_str().unwrap()],
        "oldest first"
    );

    // The newest is the real backup, at 1.0.
    env.run(&["--db", "project", "--restore"]).expect(0);
    assert_eq!(version(&db), "1.0");

    // Keep one (plus the state the restore saved): the old one goes.
    env.run(&["--prune-backups", "--keep", "2", "--db", "project"])
        .expect(0);
    let left = backups(&db);
    assert!(!left.contains(&old), "{left:?}");
    assert!(left.contains(&real[0]), "{left:?}");
}

// ---------------------------------------------------------------------------------------------
// 8. A script that cannot be read, or that sits where it would never run, is an error naming it.

/// Runs `--check` and `--all` against a set with a broken file; both fail naming `file` and
/// change nothing.
fn refused_naming(env: &Env, file: &Path, words: &[&str]) {
    let before = files_under(env.tmp.path());
    for args in [&["--check"][..], &["--all"], &["--all", "--dry-run"]] {
        let (run, took) = run_bounded(env, args);
        assert!(took < Duration::from_secs(3), "{args:?} took {took:?}");
        assert_eq!(
            run.code(),
            1,
            "{args:?}\n{}\n{}",
            run.stdout(),
            run.stderr()
        );
        let err = run.stderr();
        assert!(err.contains(&file.display().to_string()), "{args:?}: {err}");
        for w in words {
            assert!(err.contains(w), "{args:?}: no {w:?} in {err}");
        }
    }
    assert!(files_under(env.tmp.path()) == before, "a file changed");
}

#[test]
fn a_dangling_link_among_the_scripts_is_an_error_naming_it() {
    let env = Env::new();
    let db = env.init_db("project");
    let link = env.migrations.join("project/v1.2_to_v1.3_gone.sql");
    std::os::unix::fs::symlink(env.tmp.path().join("nowhere.sql"), &link).unwrap();
    refused_naming(&env, &link, &["symbolic link to nothing"]);
    assert_eq!(version(&db), "1.0");
}

#[test]
fn a_script_that_is_a_fifo_is_an_error_naming_it_not_a_hang() {
    let env = Env::new();
    env.init_db("project");
    let fifo = env
        .migrations
        .join("project/rollback/v1.2_to_v1.1_pipe.sql");
    mkfifo(&fifo);
    refused_naming(&env, &fifo, &["not a regular file"]);
}

#[test]
fn a_script_in_a_folder_under_rollback_is_an_error_naming_it() {
    for nested in ["rollback/old", "rollback/old/older", "extra/deeper"] {
        let env = Env::new();
        env.init_db("project");
        let dir = env.migrations.join("project").join(nested);
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("v1.1_to_v1.0_x.sql");
        std::fs::write(&script, "SELECT 1;").unwrap();
        refused_naming(&env, &script, &["would never run"]);
    }
}

#[test]
fn an_unreadable_script_is_an_error_naming_it_for_a_normal_user() {
    let env = Env::new();
    if !can_run_as_nobody(&env) {
        return;
    }
    env.init_db("project");
    let script = env
        .migrations
        .join("project/v1.1_to_v1.2_notes_enhancement.sql");
    open_up(env.tmp.path());
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o000)).unwrap();
    let run = run_as_nobody(&env, &["--check"]);
    assert_eq!(run.code(), 1, "{}\n{}", run.stdout(), run.stderr());
    assert!(
        run.stderr().contains(&script.display().to_string())
            && run.stderr().contains("ermission denied"),
        "{}",
        run.stderr()
    );
}

// ---------------------------------------------------------------------------------------------
// Running as another user (uid 65534), which needs root and setpriv.

const NOBODY: u32 = 65534;

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2))
                .map(|uid| uid == "0")
        })
        .unwrap_or(false)
}

/// Says why a test cannot run here; with `AIFP_FAULTS_REQUIRE_ROOT` set that is a failure.
fn skip(why: &str) {
    if std::env::var_os("AIFP_FAULTS_REQUIRE_ROOT").is_some() {
        panic!("cannot run: {why} (AIFP_FAULTS_REQUIRE_ROOT is set)");
    }
    eprintln!("skipped: {why}");
}

fn can_run_as_nobody(_env: &Env) -> bool {
    if !is_root() {
        skip("not running as root, so the tool cannot be run as uid 65534");
        return false;
    }
    if !Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        skip("setpriv is not installed");
        return false;
    }
    true
}

/// Every folder under `dir` 0755, every file 0644: readable and traversable by anyone.
fn open_up(dir: &Path) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            open_up(&path);
        } else if meta.is_file() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
}

/// Runs the tool as uid/gid 65534 with this world's environment, from the project folder.
fn run_as_nobody(env: &Env, args: &[&str]) -> Run {
    let out = Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            BIN,
        ])
        .args(args)
        .current_dir(&env.project)
        .env("HOME", &env.home)
        .env("AIFP_HOME", &env.core_dir)
        .env("AIFP_MIGRATIONS", &env.migrations)
        .env("XDG_CACHE_HOME", env.cache.path())
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    Run(out)
}

// ---------------------------------------------------------------------------------------------
// 10. Control characters from scripts and databases are printed escaped.

#[test]
fn control_characters_in_a_scripts_comment_and_a_version_row_are_printed_escaped() {
    let env = Env::new();
    let db = env.init_db("project");
    std::fs::write(
        env.migrations.join("project/v1.2_to_v1.3_screen.sql"),
        "-- Clears \u{1b}[2J the screen\rproject           current\u{7}\nCREATE TABLE t (x);\n",
    )
    .unwrap();
    let no_controls = |what: &str, text: &str| {
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{what}: raw control characters in {text:?}"
        );
    };
    for args in [
        &["--check"][..],
        &["--all", "--dry-run"],
        &["--all", "--dry-run", "-v"],
    ] {
        let run = env.run(args);
        let out = run.stdout();
        no_controls(&format!("{args:?}"), &out);
        assert!(
            out.contains(r"Clears \u{1b}[2J the screen\rproject"),
            "{out}"
        );
    }
    // JSON keeps the text exactly, escaped the JSON way.
    let json = env.run(&["--check", "--format", "json"]).expect(3).json();
    let pending = entry(&json, "project")["pending"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        pending.last().unwrap()["description"],
        "Clears \u{1b}[2J the screen\rproject           current\u{7}"
    );

    // A version row holding a control character: the error quotes it escaped, on one line.
    Connection::open(&db)
        .unwrap()
        .execute("UPDATE schema_version SET version = '1.0\u{1b}[2J\r'", [])
        .unwrap();
    for args in [&["--check"][..], &["--all"]] {
        let run = env.run(args).expect(1);
        no_controls(&format!("{args:?}"), &run.stdout());
        no_controls(&format!("{args:?}"), &run.stderr());
        assert_eq!(run.stderr().lines().count(), 1, "{}", run.stderr());
        assert!(run.stderr().contains(r"\u{1b}[2J\r"), "{}", run.stderr());
    }
    // A path with a newline and an escape in it.
    let odd = env.tmp.path().join("odd\u{1b}]0;title\u{7}\nerror: forged");
    std::fs::create_dir_all(odd.join(".aifp-project")).unwrap();
    std::fs::write(odd.join(".aifp-project/project.db"), "").unwrap();
    let out = command_in(&env, &odd).arg("--check").output().unwrap();
    let run = Run(out);
    assert_eq!(run.code(), 1);
    no_controls("stdout", &run.stdout());
    no_controls("stderr", &run.stderr());
    assert!(
        run.stderr().lines().all(|l| l.starts_with("error: "))
            && !run.stderr().contains("\nerror: forged"),
        "{}",
        run.stderr()
    );
}

// ---------------------------------------------------------------------------------------------
// 11. Hints follow the flags given; every status but current and missing says why.

#[test]
fn hints_name_the_command_for_the_flags_given() {
    let env = Env::new();
    env.init_db("project");
    let elsewhere = env.tmp.path();
    let proj = env.project.display().to_string();

    let run = env.run(&["--check", "--db", "project"]).expect(3);
    assert!(
        run.stdout()
            .contains("run aifp-migrate --db project (a backup"),
        "{}",
        run.stdout()
    );
    assert!(!run.stdout().contains("--all"), "{}", run.stdout());

    let out = command_in(&env, elsewhere)
        .args(["--check", "--project-dir", &proj])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "run aifp-migrate --all --project-dir {proj} (a backup"
        )),
        "{text}"
    );

    let scan = env.tmp.path().display().to_string();
    let run = env
        .run(&["--check", "--scan", &scan, "--format", "json"])
        .expect(3);
    let json = run.json();
    let reason = entry(&json, "project")["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains(&format!("run aifp-migrate --all --scan {scan}")),
        "{reason}"
    );

    // And the command it names does what it says.
    let out = command_in(&env, elsewhere)
        .args(["--db", "project", "--project-dir", &proj])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(version(&env.db("project")), "1.2");
}

#[test]
fn every_status_but_current_and_missing_carries_a_reason() {
    let env = Env::new();
    let db = env.init_db("project");
    env.init_db("user_preferences");
    let core = env.init_db("aifp_core");
    let reason_of = |json: &serde_json::Value, name: &str| -> Option<String> {
        let e = entry(json, name);
        let status = e["status"].as_str().unwrap();
        let reason = e["reason"].as_str().map(str::to_string);
        if matches!(status, "current" | "missing") {
            assert!(reason.is_none(), "{name} {status}: {e}");
        } else {
            assert!(
                reason.as_deref().is_some_and(|r| r.len() > 20),
                "{name} {status} has no reason: {e}"
            );
        }
        reason
    };
    // pending, current, missing
    let json = env.run(&["--check", "--format", "json"]).expect(3).json();
    for name in [
        "aifp_core",
        "project",
        "user_preferences",
        "user_directives",
    ] {
        reason_of(&json, name);
    }
    assert!(reason_of(&json, "project")
        .unwrap()
        .contains("run aifp-migrate --db project"));
    // planned, would_succeed
    for args in [&["--all", "--dry-run"][..], &["--all", "--rehearse"]] {
        let mut a = args.to_vec();
        a.extend(["--format", "json"]);
        let json = env.run(&a).expect(0).json();
        for name in ["aifp_core", "project", "user_preferences"] {
            reason_of(&json, name);
        }
    }
    // migrated
    let json = env.run(&["--all", "--format", "json"]).expect(0).json();
    assert!(reason_of(&json, "project").unwrap().contains("--restore"));
    // ahead, unversioned, error
    Connection::open(&db)
        .unwrap()
        .execute("UPDATE schema_version SET version = '9.0'", [])
        .unwrap();
    Connection::open(env.db("user_preferences"))
        .unwrap()
        .execute("DELETE FROM schema_version", [])
        .unwrap();
    std::fs::write(
        env.db("user_directives"),
        "not a database at all, just text",
    )
    .unwrap();
    let json = env.run(&["--check", "--format", "json"]).expect(1).json();
    for (name, status) in [
        ("project", "ahead"),
        ("user_preferences", "unversioned"),
        ("user_directives", "error"),
    ] {
        assert_eq!(entry(&json, name)["status"], status);
        reason_of(&json, name);
    }
    // failed, skipped: the core database fails its step, the project one is not reached.
    drop(core);
    Connection::open(&db)
        .unwrap()
        .execute("UPDATE schema_version SET version = '1.0'", [])
        .unwrap();
    std::fs::remove_file(env.db("user_directives")).unwrap();
    Connection::open(env.db("user_preferences"))
        .unwrap()
        .execute(
            "INSERT INTO schema_version (id, version) VALUES (1, '1.0')",
            [],
        )
        .unwrap();
    env.run(&["--db", "aifp_core", "--target", "1.0"]).expect(0);
    std::fs::write(
        env.migrations
            .join("aifp_core/v1.0_to_v1.1_move_notes_to_project.sql"),
        "DROP TABLE IF EXISTS notes;\nSELECT * FROM no_such_table;\n",
    )
    .unwrap();
    let run = env.run(&["--all", "--format", "json"]).expect(1);
    let json = run.json();
    assert_eq!(entry(&json, "aifp_core")["status"], "failed", "{json}");
    reason_of(&json, "aifp_core");
    if entry(&json, "project")["status"] == "skipped" {
        reason_of(&json, "project");
    }
}

// ---------------------------------------------------------------------------------------------
// 1. A database reached through a symbolic link is the file it points to.

#[test]
fn a_symlinked_database_with_live_wal_data_is_read_migrated_and_backed_up_whole() {
    let env = Env::new();
    let made = env.init_db("project");
    let data = env.tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let real = data.join("real.db");
    std::fs::rename(&made, &real).unwrap();
    let link = env.db("project");
    std::os::unix::fs::symlink("../../data/real.db", &link).unwrap();

    // A live application: its committed work (step 1.0 -> 1.1 and five notes) stays in the -wal.
    let app = Connection::open(&real).unwrap();
    app.execute_batch("PRAGMA wal_autocheckpoint = 0;").unwrap();
    let step = std::fs::read_to_string(
        env.migrations
            .join("project/v1.0_to_v1.1_git_integration.sql"),
    )
    .unwrap();
    app.execute_batch(&format!(
        "BEGIN; {step}; UPDATE schema_version SET version = '1.1'; COMMIT;"
    ))
    .unwrap();
    seed(&real, 5);
    assert!(sibling(&real, "-wal").metadata().unwrap().len() > 0);
    assert!(!sibling(&link, "-wal").exists());

    let json = env.run(&["--check", "--format", "json"]).expect(3).json();
    let e = entry(&json, "project");
    assert_eq!(e["current"], "1.1", "{e}");
    assert_eq!(e["pending"].as_array().unwrap().len(), 1, "{e}");
    let json = env
        .run(&["--all", "--dry-run", "--format", "json"])
        .expect(0)
        .json();
    assert_eq!(entry(&json, "project")["from"], "1.1");

    env.run(&["--all"]).expect(0);
    let v: String = app
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, "1.2");
    assert_eq!(scalar(&app, "SELECT count(*) FROM notes"), 5);
    // The backup is beside the file, and holds what the -wal held.
    assert_eq!(
        backups(&link),
        Vec::<PathBuf>::new(),
        "a backup beside the link"
    );
    let found = backups(&real);
    assert_eq!(found.len(), 1, "{found:?}");
    let b = open_immutable(&found[0]);
    assert_eq!(text(&b, "SELECT version FROM schema_version"), "1.1");
    assert_eq!(scalar(&b, "SELECT count(*) FROM notes"), 5);
    // Nothing beside the link but the link.
    let beside: Vec<String> = names_in(link.parent().unwrap())
        .into_iter()
        .filter(|n| n.starts_with("project.db"))
        .collect();
    assert_eq!(beside, ["project.db"]);
    drop(app);
}

// ---------------------------------------------------------------------------------------------
// 7. SIGINT and SIGTERM mid-run: rolled back, no backup left, the exit code says so.

/// A project set whose one step rebuilds a 200,000-row table, then computes for many seconds.
fn slow_world() -> (Env, PathBuf) {
    let env = Env::new();
    let sets = env.tmp.path().join("slow-sets");
    let project = sets.join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("v1.0_initial_schema.sql"),
        "CREATE TABLE IF NOT EXISTS schema_version (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            version TEXT NOT NULL,
            updated_at DATETIME DEFAULT CURRENT_TIMESTAMP
        );
        CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT NOT NULL);
        INSERT INTO schema_version (id, version) VALUES (1, '1.0');",
    )
    .unwrap();
    std::fs::write(
        project.join("v1.0_to_v1.1_slow.sql"),
        "-- Rebuilds items, then thinks for a long time.
        CREATE TABLE items_new (id INTEGER PRIMARY KEY, v TEXT NOT NULL, w INTEGER);
        INSERT INTO items_new (id, v) SELECT id, v FROM items;
        DROP TABLE items;
        ALTER TABLE items_new RENAME TO items;
        CREATE TABLE slow_sum AS
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000000)
            SELECT sum(i) AS total FROM n;",
    )
    .unwrap();
    let db = env.db("project");
    let conn = Connection::open(&db).unwrap();
    conn.pragma_update(None, "journal_mode", "wal").unwrap();
    conn.execute_batch(&std::fs::read_to_string(project.join("v1.0_initial_schema.sql")).unwrap())
        .unwrap();
    conn.execute_batch(
        "INSERT INTO items (id, v)
           WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)
           SELECT i, printf('item %d', i) FROM n;",
    )
    .unwrap();
    drop(conn);
    (env, sets)
}

/// Waits until the run `child` has published the backup of `db`, the run still going.
fn wait_for_backup(db: &Path, child: &mut std::process::Child) {
    let started = Instant::now();
    while backups(db).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no backup appeared"
        );
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn signal_mid_step(signal: &str, code: i32) {
    let (env, sets) = slow_world();
    let db = env.db("project");
    let rows_before = scalar(&open_immutable(&db), "SELECT count(*) FROM items");
    let schema_before = schema(&db);
    let mut child = command_in(&env, &env.project)
        .env("AIFP_MIGRATIONS", &sets)
        .args(["--db", "project"])
        .spawn()
        .unwrap();
    // The step runs once the backup is published.
    wait_for_backup(&db, &mut child);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the step was too quick"
    );
    let kill = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let sent = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if sent.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("{signal}: still running 10 s after the signal");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = sent.elapsed();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{signal}: {stderr}");
    assert!(
        took < Duration::from_secs(2),
        "{signal}: took {took:?} to stop"
    );
    assert!(
        stderr.contains("interrupted") && stderr.contains(&db.display().to_string()),
        "{stderr}"
    );
    assert_eq!(
        names_in(db.parent().unwrap()),
        ["project.db"],
        "{signal}: something was left beside the database"
    );
    assert_eq!(version(&db), "1.0");
    assert_eq!(
        scalar(&open_immutable(&db), "SELECT count(*) FROM items"),
        rows_before
    );
    assert_eq!(schema(&db), schema_before);
}

#[test]
fn sigint_during_a_step_rolls_back_removes_the_backup_and_exits_130() {
    signal_mid_step("-INT", 130);
}

#[test]
fn sigterm_during_a_step_rolls_back_removes_the_backup_and_exits_143() {
    signal_mid_step("-TERM", 143);
}

/// SIGINT while the whole-file check before migrating still runs (beside the backup, which is
/// published already) stops the run before its first statement, as it did when that check ran
/// at planning: the step is small enough that no statement runs long enough to notice it.
#[test]
fn sigint_while_the_check_before_migrating_runs_stops_the_run_before_any_write() {
    let env = Env::new();
    let sets = env.tmp.path().join("wide-sets");
    let project = sets.join("project");
    std::fs::create_dir_all(&project).unwrap();
    // Many NOT NULL columns holding 0 (no bytes in the record): a small file the check takes
    // seconds over, and a copy of it milliseconds.
    let columns: Vec<String> = (0..200)
        .map(|i| format!("c{i} INTEGER NOT NULL DEFAULT 0"))
        .collect();
    let initial = format!(
        "CREATE TABLE IF NOT EXISTS schema_version (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            version TEXT NOT NULL,
            updated_at DATETIME DEFAULT CURRENT_TIMESTAMP
        );
        CREATE TABLE wide (id INTEGER PRIMARY KEY, {});
        CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
        INSERT INTO schema_version (id, version) VALUES (1, '1.0');",
        columns.join(", ")
    );
    std::fs::write(project.join("v1.0_initial_schema.sql"), &initial).unwrap();
    std::fs::write(
        project.join("v1.0_to_v1.1_small.sql"),
        "ALTER TABLE notes ADD COLUMN w INTEGER;",
    )
    .unwrap();
    let db = env.db("project");
    let conn = Connection::open(&db).unwrap();
    conn.pragma_update(None, "journal_mode", "wal").unwrap();
    conn.execute_batch(&initial).unwrap();
    conn.execute_batch(
        "INSERT INTO wide (id)
           WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 800000)
           SELECT i FROM n;
         INSERT INTO notes (body) VALUES ('a');
         PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .unwrap();
    drop(conn);
    let schema_before = schema(&db);

    let mut child = command_in(&env, &env.project)
        .env("AIFP_MIGRATIONS", &sets)
        .args(["--db", "project"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_backup(&db, &mut child);
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted by SIGINT") && stderr.contains(&db.display().to_string()),
        "{stderr}"
    );
    assert_eq!(version(&db), "1.0");
    assert_eq!(schema(&db), schema_before);
    assert_eq!(
        names_in(db.parent().unwrap()),
        ["project.db"],
        "something was left beside the database"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Root working on another user's project leaves files that user owns.

fn chown_tree(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
    if std::fs::symlink_metadata(path).unwrap().is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid);
        }
    }
}

fn owner(path: &Path) -> (u32, u32) {
    let m = std::fs::metadata(path).unwrap();
    (m.uid(), m.gid())
}

#[test]
fn files_root_creates_in_another_users_project_belong_to_that_user() {
    if !is_root() {
        skip("not running as root: giving files away needs root");
        return;
    }
    let env = Env::new();
    let db = env.init_db("project");
    chown_tree(&env.project, NOBODY);
    let theirs = (NOBODY, NOBODY);

    env.run(&["--db", "project"]).expect(0);
    let made = backups(&db);
    assert_eq!(made.len(), 1);
    assert_eq!(owner(&made[0]), theirs, "the backup");
    assert_eq!(owner(&db), theirs, "the database");

    env.run(&["--db", "project", "--restore"]).expect(0);
    let now = backups(&db);
    assert_eq!(now.len(), 2, "{now:?}");
    for b in &now {
        assert_eq!(owner(b), theirs, "{}", b.display());
    }

    // --init in a folder of theirs with no .aifp-project yet.
    let other = env.tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    chown_tree(&other, NOBODY);
    let dir = other.display().to_string();
    env.run(&["--init", "--project-dir", &dir]).expect(0);
    let folder = other.join(".aifp-project");
    assert_eq!(owner(&folder), theirs, "the new .aifp-project");
    let mut made = 0;
    for entry in std::fs::read_dir(&folder).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(owner(&path), theirs, "{}", path.display());
        made += 1;
    }
    assert_eq!(made, 3);
}

// ---------------------------------------------------------------------------------------------
// 4. A hot journal beside a database a normal user cannot write.

/// Leaves `db` (rollback-journal mode) with a hot journal: a copy taken while a writer was
/// mid-transaction, as a killed writer leaves it. Returns the rows committed before.
fn with_hot_journal(env: &Env, db: &Path) -> i64 {
    let scratch = env.tmp.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let live = scratch.join("live.db");
    std::fs::copy(db, &live).unwrap();
    let conn = Connection::open(&live).unwrap();
    conn.execute_batch("PRAGMA journal_mode = DELETE; PRAGMA cache_size = 1;")
        .unwrap();
    let committed = scalar(&conn, "SELECT count(*) FROM notes");
    conn.execute_batch(
        "BEGIN;
         INSERT INTO notes (content, note_type)
           WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
           SELECT printf('uncommitted %d', i), 'clarification' FROM n;",
    )
    .unwrap();
    std::fs::copy(&live, db).unwrap();
    std::fs::copy(sibling(&live, "-journal"), sibling(db, "-journal")).unwrap();
    conn.execute_batch("ROLLBACK").unwrap();
    committed
}

#[test]
fn a_hot_journal_beside_a_database_a_user_cannot_write_is_named_with_what_to_do() {
    for read_only in ["file", "folder"] {
        let env = Env::new();
        if !can_run_as_nobody(&env) {
            return;
        }
        let db = env.init_db("project");
        {
            let c = Connection::open(&db).unwrap();
            c.pragma_update(None, "journal_mode", "delete").unwrap();
        }
        seed(&db, 10);
        with_hot_journal(&env, &db);
        let journal = sibling(&db, "-journal");
        assert!(journal.metadata().unwrap().len() > 0);
        open_up(env.tmp.path());
        match read_only {
            "file" => {
                std::fs::set_permissions(
                    db.parent().unwrap(),
                    std::fs::Permissions::from_mode(0o777),
                )
                .unwrap();
                std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
            }
            _ => {
                std::fs::set_permissions(
                    db.parent().unwrap(),
                    std::fs::Permissions::from_mode(0o555),
                )
                .unwrap();
                std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o666)).unwrap();
            }
        }
        let before = files_under(env.tmp.path());
        for args in [&["--check"][..], &["--all"], &["--all", "--dry-run"]] {
            let run = run_as_nobody(&env, args);
            let err = run.stderr();
            let what = format!("{read_only} {args:?}");
            assert_eq!(run.code(), 1, "{what}: {}\n{err}", run.stdout());
            assert!(
                err.contains(&journal.display().to_string()) && err.contains("hot journal"),
                "{what}: {err}"
            );
            assert!(
                err.contains("writable") && err.contains("owner"),
                "{what}: {err}"
            );
        }
        assert!(
            files_under(env.tmp.path()) == before,
            "{read_only}: a file changed"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 9. --scan: one project reached twice counts once; a folder it cannot read is reported.

/// Makes `dir/.aifp-project/project.db` at v1.0.
fn project_at(env: &Env, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join(".aifp-project")).unwrap();
    let db = dir.join(".aifp-project/project.db");
    let sql =
        std::fs::read_to_string(env.migrations.join("project/v1.0_initial_schema.sql")).unwrap();
    Connection::open(&db).unwrap().execute_batch(&sql).unwrap();
    db
}

fn project_paths(json: &serde_json::Value) -> Vec<String> {
    json["databases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["name"] == "project")
        .map(|d| d["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_project_reached_twice_by_a_scan_is_counted_and_migrated_once() {
    let env = Env::new();
    let work = env.tmp.path().join("work");
    let a = project_at(&env, &work.join("a"));
    std::fs::create_dir_all(work.join("b")).unwrap();
    std::os::unix::fs::symlink("../a/.aifp-project", work.join("b/.aifp-project")).unwrap();
    let scan = work.display().to_string();
    let json = env
        .run(&["--check", "--scan", &scan, "--format", "json"])
        .expect(3)
        .json();
    assert_eq!(project_paths(&json), [a.display().to_string()]);
    let json = env
        .run(&["--all", "--scan", &scan, "--format", "json"])
        .expect(0)
        .json();
    assert_eq!(project_paths(&json), [a.display().to_string()]);
    assert_eq!(version(&a), "1.2");
    assert_eq!(backups(&a).len(), 1, "backed up once");
}

#[test]
fn a_folder_a_scan_cannot_read_is_reported_and_the_others_go_ahead() {
    let env = Env::new();
    if !can_run_as_nobody(&env) {
        return;
    }
    let work = env.tmp.path().join("work");
    let a = project_at(&env, &work.join("a"));
    let hidden = project_at(&env, &work.join("locked/inner"));
    open_up(env.tmp.path());
    std::fs::set_permissions(
        work.join("a/.aifp-project"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(work.join("locked"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let scan = work.display().to_string();
    let locked = work.join("locked").display().to_string();

    let run = run_as_nobody(&env, &["--check", "--scan", &scan, "--format", "json"]);
    assert_eq!(run.code(), 1, "{}\n{}", run.stdout(), run.stderr());
    assert_eq!(project_paths(&run.json()), [a.display().to_string()]);
    assert!(
        run.stderr().contains(&locked) && run.stderr().contains("cannot read folder"),
        "{}",
        run.stderr()
    );

    let run = run_as_nobody(&env, &["--all", "--scan", &scan]);
    assert_eq!(run.code(), 1, "{}\n{}", run.stdout(), run.stderr());
    assert!(run.stderr().contains(&locked), "{}", run.stderr());
    assert_eq!(version(&a), "1.2", "the readable project was migrated");
    std::fs::set_permissions(work.join("locked"), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(version(&hidden), "1.0");
}

// ---------------------------------------------------------------------------------------------
// 12. --init outside a project says where, and needs --project-dir; an empty file is no database.

#[test]
fn init_outside_any_project_says_where_it_would_create_the_folder_and_needs_project_dir() {
    let env = Env::new();
    let outside = env.tmp.path().join("somewhere");
    std::fs::create_dir_all(&outside).unwrap();
    let before = files_under(env.tmp.path());
    let out = command_in(&env, &outside).arg("--init").output().unwrap();
    let run = Run(out);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let err = run.stderr();
    assert!(
        err.contains(&outside.join(".aifp-project").display().to_string())
            && err.contains("--project-dir"),
        "{err}"
    );
    assert!(
        files_under(env.tmp.path()) == before,
        "--init created something"
    );

    let dir = outside.display().to_string();
    let out = command_in(&env, &outside)
        .args(["--init", "--project-dir", &dir])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(version(&outside.join(".aifp-project/project.db")), "1.2");
}

#[test]
fn init_reports_an_empty_core_database_as_an_empty_file_and_changes_nothing() {
    let env = Env::new();
    let core = env.db("aifp_core");
    std::fs::write(&core, b"").unwrap();
    let run = env.run(&["--init", "--db", "aifp_core"]);
    assert_eq!(run.code(), 1, "{}\n{}", run.stdout(), run.stderr());
    assert!(!run.stdout().contains("left alone"), "{}", run.stdout());
    let err = run.stderr();
    assert!(
        err.contains(&core.display().to_string()) && err.contains("empty (0 bytes)"),
        "{err}"
    );
    assert_eq!(std::fs::read(&core).unwrap(), b"");
    assert_eq!(names_in(&env.core_dir), ["aifp_core.db"]);
}

// ---------------------------------------------------------------------------------------------
// 13. --help and the man page: grouped by what a user wants, with the environment and folders.

#[test]
fn help_groups_flags_by_what_a_user_wants_and_names_the_environment_and_folders() {
    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    let headings: Vec<&str> = help
        .lines()
        .filter(|l| !l.starts_with(' ') && l.ends_with(':'))
        .collect();
    assert_eq!(
        headings,
        [
            "Options:",
            "Checking:",
            "Migrating:",
            "Undoing:",
            "Trusting:",
            "Where to look:",
            "Output:",
            "Environment:",
            "Folders:"
        ],
        "{help}"
    );
    // Each flag under its heading.
    let section = |name: &str| -> String {
        let start = help.find(&format!("\n{name}:\n")).unwrap();
        let rest = &help[start + name.len() + 3..];
        rest[..rest.find("\n\n").unwrap_or(rest.len())].to_string()
    };
    for (heading, flags) in [
        ("Checking", &["--check", "--scan"][..]),
        (
            "Migrating",
            &["--all", "--db", "--target", "--dry-run", "--init"],
        ),
        (
            "Undoing",
            &[
                "--rollback",
                "--restore",
                "--from",
                "--list-backups",
                "--prune-backups",
                "--keep",
            ],
        ),
        (
            "Trusting",
            &["--verify", "--rehearse", "--stamp", "--force"],
        ),
        ("Where to look", &["--migrations", "--project-dir"]),
        (
            "Output",
            &["--format", "--quiet", "--verbose", "--completions", "--man"],
        ),
    ] {
        let text = section(heading);
        for flag in flags {
            assert!(
                text.contains(&format!("{flag} "))
                    || text.contains(&format!("{flag}\n"))
                    || text.ends_with(flag),
                "{flag} not under {heading}: {text}"
            );
        }
    }
    let man = Command::new(BIN).arg("--man").output().unwrap();
    // roff writes a hyphen as `\-`.
    let man = String::from_utf8(man.stdout).unwrap().replace("\\-", "-");
    for word in [
        "AIFP_HOME",
        "AIFP_MIGRATIONS",
        "AIFP_PACKAGE",
        "XDG_CACHE_HOME",
        "NO_COLOR",
        "HOME",
        "~/.aifp",
        ".aifp-project",
        ".aimfp-project",
        "aifp-migrate",
    ] {
        assert!(help.contains(word), "--help does not name {word}");
        assert!(man.contains(word), "the man page does not name {word}");
    }
}
