//! The command line: clap's flags become a validated `Options`, and the outcome is printed.
//!
//! This is the only module that knows clap, reads the environment, or prints.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Parser, ValueEnum};

use crate::catalog::Root;
use crate::discovery::DbName;
use crate::error::Error;
use crate::options::{Format, Mode, Options, Verbosity};
use crate::plan::Target;
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
    #[arg(long)]
    check: bool,
    /// Migrate every database found to its latest version
    #[arg(long)]
    all: bool,
    /// Migrate (or, with --check, report) only this database
    #[arg(long, value_name = "NAME", value_parser = DB_NAMES)]
    db: Option<String>,
    /// With --db: migrate up or down to this version instead of the latest
    #[arg(long, value_name = "V")]
    target: Option<String>,
    /// With --db: go one step down along the rollback scripts
    #[arg(long)]
    rollback: bool,
    /// With --all or --db: print the plan and its scripts, change nothing
    #[arg(long)]
    dry_run: bool,
    /// Folder of migration sets (default: $AIFP_MIGRATIONS, else the set built into this binary)
    #[arg(long, value_name = "DIR")]
    migrations: Option<PathBuf>,
    /// Where to start looking for .aifp-project (default: the current folder)
    #[arg(long, value_name = "DIR")]
    project_dir: Option<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value_t = FormatArg::Text)]
    format: FormatArg,
    /// Print only errors and what changed
    #[arg(short, long, conflicts_with = "verbose")]
    quiet: bool,
    /// Print more: the SQL of each step in a dry run
    #[arg(short, long)]
    verbose: bool,
}

const AFTER_HELP: &str = "\
Exit codes: 0 done (for --check: nothing pending), 1 failure (for --check: a database is ahead,
unversioned or in error), 2 usage error, 3 --check found pending migrations and nothing worse.";

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Text,
    Json,
}

impl Cli {
    /// Checks that the flags make one valid request and resolves the environment's defaults.
    pub fn into_options(self) -> Result<Options, Error> {
        let usage = |m: &str| Err(Error::Usage(format!("{m}; see aifp-migrate --help")));
        let only = self.db.as_deref().and_then(DbName::parse);
        if self.check && self.all {
            return usage("--check and --all exclude each other");
        }
        if self.target.is_some() && self.rollback {
            return usage("--target and --rollback exclude each other");
        }
        for (flag, given) in [
            ("--target", self.target.is_some()),
            ("--rollback", self.rollback),
        ] {
            if given && (only.is_none() || self.check) {
                return usage(&format!(
                    "{flag} works only with --db NAME (not with --all or --check)"
                ));
            }
        }
        if self.dry_run && self.check {
            return usage("--dry-run does not go with --check, which changes nothing anyway");
        }
        if self.dry_run && !self.all && only.is_none() {
            return usage("--dry-run needs --all or --db NAME");
        }
        let target = match (&self.target, self.rollback) {
            (Some(v), _) => {
                Target::Version(v.parse().map_err(|e: crate::version::BadVersion| {
                    let hint = if v.starts_with('v') {
                        "; write it without the v"
                    } else {
                        ""
                    };
                    Error::Usage(format!("--target: {e}{hint}"))
                })?)
            }
            (None, true) => Target::Rollback,
            (None, false) => Target::Latest,
        };
        let mode = if self.check {
            Mode::Check { only }
        } else if self.all && only.is_some() {
            return usage("--all and --db exclude each other");
        } else if self.all || only.is_some() {
            Mode::Migrate {
                only,
                target,
                dry_run: self.dry_run,
            }
        } else {
            return usage("nothing to do: pass --check, --all or --db NAME");
        };

        let cwd = std::env::current_dir()
            .map_err(|e| Error::Usage(format!("cannot read the current folder: {e}")))?;
        let env_dir = |var: &str| {
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let root = match self.migrations.or_else(|| env_dir("AIFP_MIGRATIONS")) {
            Some(dir) => Root::Dir(cwd.join(dir)),
            None => Root::BuiltIn,
        };
        let core_dir = match env_dir("AIFP_HOME") {
            Some(dir) => cwd.join(dir),
            None => directories::BaseDirs::new()
                .map(|b| b.home_dir().join(".aifp"))
                .ok_or_else(|| {
                    Error::Usage("cannot find your home folder: set HOME or AIFP_HOME".into())
                })?,
        };
        let start = absolute(&cwd, self.project_dir.as_deref().unwrap_or(Path::new(".")));
        Ok(Options {
            mode,
            root,
            core_dir,
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
        })
    }
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
        Format::Text => outcome.report.to_text(opts.verbosity),
    };
    write_out(&text);
    for e in &outcome.errors {
        print_error(e);
    }
    outcome.report.exit_code()
}

/// One line per error on stderr.
pub fn print_error(e: &Error) {
    let mut err = std::io::stderr().lock();
    for line in e.to_string().lines() {
        let _ = writeln!(err, "error: {line}");
    }
}

/// Writes to stdout; a closed pipe (`aifp-migrate --check | head`) is not an error.
fn write_out(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}
