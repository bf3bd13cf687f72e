//! The command line: clap's flags become a validated `Options`, and the outcome is printed.
//!
//! This is the only module that knows clap, reads the environment, or prints.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use clap::{Parser, ValueEnum};

use crate::catalog::Root;
use crate::discovery::DbName;
use crate::error::Error;
use crate::options::{Format, Goal, Mode, Options, RunKind, Verbosity};
use crate::plan::Target;
use crate::progress::{Progress, Reporter, Unit};
use crate::run::Outcome;

const DB_NAMES: [&str; 4] = [
    "aifp_core",
    "project",
    "user_preferences",
    "user_directives",
];

/// Keeps the SQLite databases of an AIFP installation at the schema version AIFP expects.
#[derive(Debug, Parser)]
#[command(name = "aifp-migrate", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// Report every database: path, current and latest version, status, pending steps (read-only)
    #[arg(long, help_heading = CHECKING)]
    check: bool,
    /// Migrate every database found to its latest version
    #[arg(long, help_heading = MIGRATING)]
    all: bool,
    /// Migrate (or, with --check, report) only this database
    #[arg(long, value_name = "NAME", value_parser = DB_NAMES, help_heading = MIGRATING)]
    db: Option<String>,
    /// With --db: migrate up or down to this version instead of the latest
    #[arg(long, value_name = "V", help_heading = MIGRATING)]
    target: Option<String>,
    /// With --db: go one step down along the rollback scripts
    #[arg(long, help_heading = UNDOING)]
    rollback: bool,
    /// With --all or --db: print the plan and its scripts, change nothing
    #[arg(long, help_heading = MIGRATING)]
    dry_run: bool,
    /// With --db NAME: put back its newest backup (or --from FILE); with --all: every database
    /// the most recent migrating run changed, from that run's backups
    #[arg(long, help_heading = UNDOING)]
    restore: bool,
    /// With --db NAME --restore: the backup file to put back
    #[arg(long, value_name = "FILE", help_heading = UNDOING)]
    from: Option<PathBuf>,
    /// List backups (file, time, version, size), of every database or of --db NAME
    #[arg(long, help_heading = UNDOING)]
    list_backups: bool,
    /// Delete all but the newest --keep N backups of each database (or of --db NAME)
    #[arg(long, help_heading = UNDOING)]
    prune_backups: bool,
    /// With --prune-backups: how many backups of each database to keep
    #[arg(long, value_name = "N", help_heading = UNDOING)]
    keep: Option<usize>,
    /// Check on scratch databases that every step's rollback restores the schema before it
    #[arg(long, help_heading = TRUSTING)]
    verify: bool,
    /// With --all or --db: run the whole plan on a temporary copy of each database, change nothing
    #[arg(long, help_heading = TRUSTING)]
    rehearse: bool,
    /// With --db NAME: record version V without running scripts (backs up first)
    #[arg(long, value_name = "V", help_heading = TRUSTING)]
    stamp: Option<String>,
    /// With --stamp: record the version even though the schema does not match it
    #[arg(long, help_heading = TRUSTING)]
    force: bool,
    /// Create the missing per-project databases at their latest version (--db aifp_core for the core)
    #[arg(long, help_heading = MIGRATING)]
    init: bool,
    /// With --db NAME: bring it to the schema FILE builds from nothing (FILE writes its version
    /// into schema_version); scripts first where the set has them, the rest generated
    #[arg(long, value_name = "FILE", help_heading = MIGRATING)]
    to_schema: Option<PathBuf>,
    /// With --all or --db NAME: bring each drifted database back to the exact schema of the
    /// version it records, keeping its data
    #[arg(long, help_heading = MIGRATING)]
    repair: bool,
    /// Let a plan drop rows, tables or column values (listed in the report; the backup keeps them)
    #[arg(long, help_heading = MIGRATING)]
    allow_data_loss: bool,
    /// The installed AIFP package folder (default: $AIFP_PACKAGE, else the aimfp or aifp package
    /// the project's .mcp.json Python or python3 on PATH imports); `none` to use none
    #[arg(long, value_name = "DIR", help_heading = WHERE)]
    aifp_package: Option<PathBuf>,
    /// With --all: of a project's two state folders, the one to keep (the other is renamed aside)
    #[arg(long, value_name = "FOLDER", value_parser = [".aifp-project", ".aimfp-project"], help_heading = MIGRATING)]
    adopt: Option<String>,
    /// With --check or --all: every .aimfp-project or .aifp-project under DIR (not .git, node_modules, target)
    #[arg(long, value_name = "DIR", help_heading = CHECKING)]
    scan: Option<PathBuf>,
    /// Folder of migration sets (default: $AIFP_MIGRATIONS, else the set built into this binary)
    #[arg(long, value_name = "DIR", help_heading = WHERE)]
    migrations: Option<PathBuf>,
    /// Where to start looking for .aimfp-project or .aifp-project (default: the current folder)
    #[arg(long, value_name = "DIR", help_heading = WHERE)]
    project_dir: Option<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value_t = FormatArg::Text, help_heading = OUTPUT)]
    format: FormatArg,
    /// Print only errors and what changed; with --check, one line per database to migrate
    #[arg(short, long, conflicts_with = "verbose", help_heading = OUTPUT)]
    quiet: bool,
    /// Print more: the SQL of each step in a dry run
    #[arg(short, long, help_heading = OUTPUT)]
    verbose: bool,
    /// Print a completion script for SHELL (bash, zsh or fish) and exit
    #[arg(long, value_name = "SHELL", exclusive = true, help_heading = OUTPUT)]
    completions: Option<ShellArg>,
    /// Print the man page (roff) and exit
    #[arg(long, exclusive = true, help_heading = OUTPUT)]
    man: bool,
}

const CHECKING: &str = "Checking";
const MIGRATING: &str = "Migrating";
const UNDOING: &str = "Undoing";
const TRUSTING: &str = "Trusting";
const WHERE: &str = "Where to look";
const OUTPUT: &str = "Output";

const AFTER_HELP: &str = "\
Environment:
  AIFP_HOME         the folder of aifp_core.db (default: ~/.aifp)
  AIFP_MIGRATIONS   the folder of migration sets (--migrations wins; default: the sets built in)
  AIFP_PACKAGE      the installed AIFP package folder, or none (--aifp-package wins; default:
                    the aimfp or aifp package that the Python of the project's .mcp.json, else
                    python3 on PATH, imports)
  PATH, PYTHONPATH  where python3 is and what it imports (with VIRTUAL_ENV, PYTHONHOME, ...)
  XDG_CACHE_HOME    where the drift and package caches are kept (default: ~/.cache)
  HOME              your home folder, for ~/.aifp and ~/.cache
  NO_COLOR          set to anything: no colour

Folders:
  ~/.aifp (or $AIFP_HOME)         aifp_core.db
  <package>/database              the installed AIFP's schemas and core database (read, never written)
  .aimfp-project, .aifp-project   the nearest at or above the start folder (--project-dir, else the
                                  current one): project.db, user_preferences.db,
                                  user_directives.db, and their backups
  $XDG_CACHE_HOME/aifp-migrate    the drift and package caches (safe to delete)

Exit codes: 0 done (for --check: nothing pending), 1 failure (for --check: a database is ahead,
unversioned or in error), 2 usage error, 3 --check found pending migrations and nothing worse;
130 or 143 stopped by SIGINT or SIGTERM (rolled back).";

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ShellArg {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Text,
    Json,
}

impl Cli {
    /// The completion script or man page asked for with --completions or --man, generated from
    /// this very definition, so it never falls behind the flags.
    pub fn generated(&self) -> Option<Vec<u8>> {
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        let mut out = Vec::new();
        if let Some(shell) = self.completions {
            let shell = match shell {
                ShellArg::Bash => clap_complete::Shell::Bash,
                ShellArg::Zsh => clap_complete::Shell::Zsh,
                ShellArg::Fish => clap_complete::Shell::Fish,
            };
            clap_complete::generate(shell, &mut cmd, "aifp-migrate", &mut out);
            return Some(out);
        }
        if self.man {
            clap_mangen::Man::new(cmd).render(&mut out).ok()?;
            return Some(out);
        }
        None
    }

    /// The one mode the flags ask for, with every flag that needs another checked.
    fn mode(&self, cwd: &Path) -> Result<Mode, Error> {
        let usage = |m: &str| Err(Error::Usage(format!("{m}; see aifp-migrate --help")));
        let only = self.db.as_deref().and_then(DbName::parse);
        let modes: Vec<&str> = [
            ("--check", self.check),
            ("--restore", self.restore),
            ("--list-backups", self.list_backups),
            ("--prune-backups", self.prune_backups),
            ("--verify", self.verify),
            ("--stamp", self.stamp.is_some()),
            ("--init", self.init),
        ]
        .into_iter()
        .filter_map(|(flag, given)| given.then_some(flag))
        .collect();
        if let [a, b, ..] = modes[..] {
            return usage(&format!("{a} and {b} exclude each other"));
        }
        let special = modes.first().copied();
        if self.check && self.all {
            return usage("--check and --all exclude each other");
        }
        if self.all && only.is_some() {
            return usage("--all and --db exclude each other");
        }
        if let (true, Some(m @ ("--list-backups" | "--prune-backups" | "--verify" | "--init"))) =
            (self.all, special)
        {
            return usage(&format!("{m} takes --db NAME or nothing, not --all"));
        }
        if self.target.is_some() && self.rollback {
            return usage("--target and --rollback exclude each other");
        }
        for (flag, given) in [
            ("--target", self.target.is_some()),
            ("--rollback", self.rollback),
        ] {
            if given && (only.is_none() || special.is_some()) {
                return usage(&format!(
                    "{flag} works only with --db NAME when migrating (not with --all, --check or the backup modes)"
                ));
            }
        }
        let goals = [
            ("--target", self.target.is_some()),
            ("--rollback", self.rollback),
            ("--to-schema", self.to_schema.is_some()),
            ("--repair", self.repair),
        ];
        if let [a, b, ..] = goals
            .iter()
            .filter(|g| g.1)
            .map(|g| g.0)
            .collect::<Vec<_>>()[..]
        {
            return usage(&format!("{a} and {b} exclude each other"));
        }
        if self.to_schema.is_some() && (only.is_none() || special.is_some()) {
            return usage("--to-schema FILE works only with --db NAME when migrating");
        }
        if self.repair && (special.is_some() || (!self.all && only.is_none())) {
            return usage("--repair goes with --all or --db NAME");
        }
        if self.dry_run && self.rehearse {
            return usage("--dry-run and --rehearse exclude each other");
        }
        for (flag, given) in [("--dry-run", self.dry_run), ("--rehearse", self.rehearse)] {
            match special {
                Some("--check") if given => {
                    return usage(&format!(
                        "{flag} does not go with --check, which changes nothing anyway"
                    ))
                }
                Some(m) if given => return usage(&format!("{flag} does not go with {m}")),
                None if given && !self.all && only.is_none() => {
                    return usage(&format!("{flag} needs --all or --db NAME"))
                }
                _ => {}
            }
        }
        if self.from.is_some() && (special != Some("--restore") || only.is_none()) {
            return usage("--from works only with --db NAME --restore");
        }
        if self.keep.is_some() != (special == Some("--prune-backups")) {
            return usage("--prune-backups and --keep N go together");
        }
        if self.force && special != Some("--stamp") {
            return usage("--force works only with --stamp");
        }
        if self.adopt.is_some() && (special.is_some() || !self.all || self.scan.is_some()) {
            return usage("--adopt FOLDER goes with --all (and no --scan)");
        }
        let scan_fits = special == Some("--check") || (special.is_none() && self.all);
        if self.scan.is_some() && (!scan_fits || only.is_some()) {
            return usage("--scan DIR goes with --check or --all (and no --db)");
        }
        Ok(match special {
            Some("--check") => Mode::Check { only },
            Some("--restore") if !self.all && only.is_none() => {
                return usage("--restore needs --db NAME or --all")
            }
            Some("--restore") => Mode::Restore {
                only,
                from: self.from.as_deref().map(|f| cwd.join(f)),
            },
            Some("--list-backups") => Mode::ListBackups { only },
            Some("--prune-backups") => Mode::PruneBackups {
                only,
                keep: self.keep.unwrap_or(0),
            },
            Some("--verify") => Mode::Verify { only },
            Some("--init") => Mode::Init { only },
            Some(_) => {
                let (Some(db), Some(v)) = (only, &self.stamp) else {
                    return usage("--stamp V needs --db NAME");
                };
                Mode::Stamp {
                    db,
                    version: parse_version("--stamp", v)?,
                    force: self.force,
                }
            }
            None if self.all || only.is_some() => Mode::Migrate {
                only,
                goal: match (&self.to_schema, self.repair) {
                    (Some(file), _) => Goal::Schema(cwd.join(file)),
                    (None, true) => Goal::Repair,
                    (None, false) => Goal::Version(self.target()?),
                },
                kind: match (self.dry_run, self.rehearse) {
                    (true, _) => RunKind::DryRun,
                    (_, true) => RunKind::Rehearse,
                    _ => RunKind::Real,
                },
            },
            None => return usage("nothing to do: pass --check, --all or --db NAME"),
        })
    }

    fn target(&self) -> Result<Target, Error> {
        Ok(match (&self.target, self.rollback) {
            (Some(v), _) => Target::Version(parse_version("--target", v)?),
            (None, true) => Target::Rollback,
            (None, false) => Target::Latest,
        })
    }

    /// Checks that the flags make one valid request and resolves the environment's defaults.
    pub fn into_options(self) -> Result<Options, Error> {
        let cwd = std::env::current_dir()
            .map_err(|e| Error::Environment(format!("cannot read the current folder: {e}")))?;
        let mode = self.mode(&cwd)?;
        let env_dir = |var: &str| {
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let root = match self
            .migrations
            .clone()
            .or_else(|| env_dir("AIFP_MIGRATIONS"))
        {
            Some(dir) => Root::Dir(cwd.join(dir)),
            None => Root::BuiltIn,
        };
        let core_dir = match env_dir("AIFP_HOME") {
            Some(dir) => cwd.join(dir),
            None => directories::BaseDirs::new()
                .map(|b| b.home_dir().join(".aifp"))
                .ok_or_else(|| {
                    Error::Environment("cannot find your home folder: set HOME or AIFP_HOME".into())
                })?,
        };
        let mut context_flags = Vec::new();
        for (flag, dir) in [
            ("--project-dir", &self.project_dir),
            ("--migrations", &self.migrations),
        ] {
            if let Some(dir) = dir {
                context_flags.push(format!(
                    "{flag} {}",
                    crate::report::shell_quote(&cwd.join(dir))
                ));
            }
        }
        let start = absolute(&cwd, self.project_dir.as_deref().unwrap_or(Path::new(".")));
        let scan = self.scan.as_deref().map(|d| absolute(&cwd, d));
        let cache_dir = env_dir("XDG_CACHE_HOME")
            .or_else(|| env_dir("HOME").map(|h| h.join(".cache")))
            .map(|d| cwd.join(d).join("aifp-migrate"));
        let package = match self.aifp_package.or_else(|| env_dir("AIFP_PACKAGE")) {
            Some(dir) if dir == Path::new("none") => crate::package::Source::None,
            Some(dir) => crate::package::Source::Folder(cwd.join(dir)),
            None => crate::package::Source::Python {
                interpreter: on_path("python3"),
                env_key: crate::package::python_env_key(|v| std::env::var_os(v)),
            },
        };
        Ok(Options {
            package,
            adopt: self.adopt,
            allow_data_loss: self.allow_data_loss,
            scan,
            cache_dir,
            mode,
            root,
            core_dir,
            start_given: self.project_dir.is_some(),
            start,
            format: match self.format {
                FormatArg::Text => Format::Text,
                FormatArg::Json => Format::Json,
            },
            verbosity: match (self.quiet, self.verbose) {
                (true, _) => Verbosity::Quiet,
                (_, true) => Verbosity::Verbose,
                _ => Verbosity::Normal,
            },
            context_flags,
        })
    }
}

/// The first executable `name` in a folder of PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// A version given on the command line.
fn parse_version(flag: &str, v: &str) -> Result<crate::version::Version, Error> {
    v.parse().map_err(|e: crate::version::BadVersion| {
        let hint = if v.starts_with('v') {
            "; write it without the v"
        } else {
            ""
        };
        Error::Usage(format!("{flag}: {e}{hint}"))
    })
}

/// `dir` made absolute against `cwd`, with symlinks resolved when it exists.
fn absolute(cwd: &Path, dir: &Path) -> PathBuf {
    let joined = cwd.join(dir);
    std::fs::canonicalize(&joined).unwrap_or(joined)
}

/// Prints the outcome (stdout) and its error lines (stderr); returns the exit code.
pub fn print(outcome: &Outcome, opts: &Options) -> u8 {
    let text = match opts.format {
        Format::Json => outcome.report.to_json(),
        Format::Text => outcome.report.to_text(opts.verbosity, colour()),
    };
    write_out(&text);
    for e in &outcome.errors {
        print_error(e);
    }
    for n in &outcome.notes {
        let _ = writeln!(std::io::stderr().lock(), "note: {n}");
    }
    let code = outcome.report.exit_code();
    // Any error is a failure (1) even beside a report that found nothing worse than pending
    // (3); an interruption keeps its own code.
    match outcome.errors.iter().map(Error::exit_code).max() {
        Some(e) if e > 3 => e,
        Some(_) if code == 0 || code == 3 => 1,
        _ => code,
    }
}

/// Whether a run in this mode writes, and so should stop cleanly on SIGINT and SIGTERM rather
/// than be killed by them (a read-only one can just end).
pub fn stops_cleanly(opts: &Options) -> bool {
    !matches!(
        opts.mode,
        Mode::Check { .. }
            | Mode::ListBackups { .. }
            | Mode::Verify { .. }
            | Mode::Migrate {
                kind: RunKind::DryRun,
                ..
            }
    )
}

/// Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org).
fn colour() -> bool {
    std::io::stdout().is_terminal() && colour_allowed()
}

fn colour_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// One line per error on stderr.
///
/// An error's text quotes paths, scripts and SQLite's messages, which may hold control
/// characters: each line is printed with them escaped, so it stays one line that forges nothing.
pub fn print_error(e: &Error) {
    if let Error::Many(errors) = e {
        errors.iter().for_each(print_error);
        return;
    }
    let _ = writeln!(
        std::io::stderr().lock(),
        "error: {}",
        crate::report::printable(&e.to_string())
    );
}

/// Writes to stdout; a closed pipe (`aifp-migrate --check | head`) is not an error.
fn write_out(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// How a run shows progress: bars on stderr when it is a terminal, never in JSON or with -q.
pub fn progress(opts: &Options) -> Reporter {
    let wanted = std::io::stderr().is_terminal()
        && opts.format == Format::Text
        && opts.verbosity != Verbosity::Quiet;
    if wanted {
        Arc::new(Bars::default())
    } else {
        crate::progress::silent()
    }
}

/// Work shorter than this never shows a bar.
const SHOW_AFTER: Duration = Duration::from_millis(500);

/// indicatif bars, drawn only once a phase has run for half a second.
#[derive(Default)]
struct Bars {
    current: Mutex<Option<Phase>>,
}

struct Phase {
    bar: ProgressBar,
    started: Instant,
    shown: bool,
}

impl Bars {
    fn with_phase(&self, f: impl FnOnce(&mut Phase)) {
        if let Ok(mut guard) = self.current.lock() {
            if let Some(phase) = guard.as_mut() {
                if !phase.shown && phase.started.elapsed() >= SHOW_AFTER {
                    phase.bar.set_draw_target(ProgressDrawTarget::stderr());
                    phase.shown = true;
                }
                f(phase);
            }
        }
    }
}

impl Progress for Bars {
    fn begin(&self, label: &str, total: u64, unit: Unit) {
        let bar_style = if colour_allowed() {
            "{bar:30.cyan/blue}"
        } else {
            "{bar:30}"
        };
        let counts = match unit {
            Unit::Bytes => "{bytes}/{total_bytes}",
            Unit::Steps => "step {pos}/{len}",
        };
        let template = format!("{{msg}} {bar_style} {counts} {{elapsed}}");
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_string());
        if let Ok(mut guard) = self.current.lock() {
            *guard = Some(Phase {
                bar,
                started: Instant::now(),
                shown: false,
            });
        }
    }

    fn set(&self, done: u64) {
        self.with_phase(|p| p.bar.set_position(done));
    }

    fn tick(&self) {
        self.with_phase(|p| p.bar.tick());
    }

    fn end(&self) {
        if let Ok(mut guard) = self.current.lock() {
            if let Some(phase) = guard.take() {
                phase.bar.finish_and_clear();
            }
        }
    }
}
