//! Progress bars: on a terminal a long step shows one (seen through tmux); in a pipe nothing of
//! it appears, on stdout or stderr.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn slow_env() -> Env {
    let env = Env::new();
    let step = "v1.2_to_v1.3_slow.sql";
    std::fs::copy(
        fixture("steps").join(step),
        env.migrations.join("project").join(step),
    )
    .unwrap();
    env.init_db("project");
    env
}

#[test]
fn a_long_step_shows_a_progress_bar_on_a_terminal() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("skipped: tmux is not installed (apt-get install tmux)");
        return;
    }
    let env = slow_env();
    let socket = format!("aifp-migrate-test-{}", std::process::id());
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .arg("-L")
            .arg(&socket)
            .args(args)
            .output()
            .unwrap()
    };
    let bin = assert_cmd::cargo::cargo_bin("aifp-migrate");
    let command = format!(
        "cd '{}' && env HOME='{}' AIFP_HOME='{}' AIFP_MIGRATIONS='{}' XDG_CACHE_HOME='{}' '{}' --db project; sleep 30",
        env.project.display(),
        env.home.display(),
        env.core_dir.display(),
        env.migrations.display(),
        env.cache.path().display(),
        bin.display()
    );
    tmux(&["new-session", "-d", "-x", "160", "-y", "20", &command]);
    let started = Instant::now();
    let (mut saw_bar, mut saw_report) = (false, false);
    while started.elapsed() < Duration::from_secs(20) && !saw_report {
        let screen = String::from_utf8_lossy(&tmux(&["capture-pane", "-p"]).stdout).into_owned();
        saw_bar |= screen.contains("migrating project.db 1.0 -> 1.3") && screen.contains("step ");
        saw_report = screen.contains("migrated 1.0 -> 1.3");
        std::thread::sleep(Duration::from_millis(100));
    }
    tmux(&["kill-server"]);
    assert!(saw_bar, "no progress bar was seen on the terminal");
    assert!(saw_report, "the run did not finish on the terminal");
    assert_eq!(version(&env.db("project")), "1.3");
}

#[test]
fn nothing_of_the_progress_bar_reaches_a_pipe() {
    let env = slow_env();
    let run = env.run(&["--db", "project"]).expect(0);
    assert_eq!(
        run.stderr(),
        "",
        "stderr is a pipe here: no bar may be drawn"
    );
    let out = run.stdout();
    assert!(out.contains("migrated 1.0 -> 1.3"), "{out}");
    assert!(
        !out.contains('\r') && !out.contains('\u{1b}'),
        "terminal control in a pipe: {out:?}"
    );
    assert!(!out.contains("step 1/"), "{out}");
}

/// What `--check` shows on a tmux terminal, escape codes included, with `extra` env settings.
fn check_on_a_terminal(env: &Env, extra: &str) -> Option<String> {
    Command::new("tmux").arg("-V").output().ok()?;
    let socket = format!("aifp-migrate-colour-{}-{}", std::process::id(), extra.len());
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .arg("-L")
            .arg(&socket)
            .args(args)
            .output()
            .unwrap()
    };
    let command = format!(
        "cd '{}' && env {extra} HOME='{}' AIFP_HOME='{}' AIFP_MIGRATIONS='{}' XDG_CACHE_HOME='{}' '{}' --check; echo DONE; sleep 30",
        env.project.display(),
        env.home.display(),
        env.core_dir.display(),
        env.migrations.display(),
        env.cache.path().display(),
        assert_cmd::cargo::cargo_bin("aifp-migrate").display()
    );
    tmux(&["new-session", "-d", "-x", "160", "-y", "20", &command]);
    let started = Instant::now();
    let mut screen = String::new();
    while started.elapsed() < Duration::from_secs(10) && !screen.contains("DONE") {
        std::thread::sleep(Duration::from_millis(100));
        screen = String::from_utf8_lossy(&tmux(&["capture-pane", "-e", "-p"]).stdout).into_owned();
    }
    tmux(&["kill-server"]);
    Some(screen)
}

#[test]
fn statuses_are_coloured_on_a_terminal_unless_no_color_is_set() {
    let env = Env::new();
    env.init_db("project");
    let Some(screen) = check_on_a_terminal(&env, "") else {
        eprintln!("skipped: tmux is not installed (apt-get install tmux)");
        return;
    };
    assert!(
        screen.contains("\u{1b}[33mpending"),
        "no colour on a terminal:\n{screen:?}"
    );
    let plain = check_on_a_terminal(&env, "NO_COLOR=1").unwrap();
    assert!(plain.contains("pending"), "{plain:?}");
    assert!(
        !plain.contains("\u{1b}[33m"),
        "colour despite NO_COLOR:\n{plain:?}"
    );
    // And never in a pipe.
    assert!(!env.run(&["--check"]).stdout().contains('\u{1b}'));
}

#[test]
fn completions_and_the_man_page_come_from_the_flags() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = env.run(&["--completions", shell]).expect(0).stdout();
        for flag in ["--rollback", "--restore", "--scan", "--rehearse"] {
            assert!(
                out.contains(flag.trim_start_matches('-')),
                "{shell}: {flag} missing"
            );
        }
    }
    let bash = env.tmp.path().join("aifp-migrate.bash");
    std::fs::write(&bash, env.run(&["--completions", "bash"]).stdout()).unwrap();
    let syntax = Command::new("bash").arg("-n").arg(&bash).output().unwrap();
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    let man = env.run(&["--man"]).expect(0).stdout();
    assert!(
        man.starts_with(".ie") || man.contains(".TH aifp-migrate 1"),
        "{man}"
    );
    assert!(man.contains("rollback"));
    assert_eq!(env.run(&["--man", "--check"]).code(), 2);
}
