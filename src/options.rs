//! What the user asked for, validated: one `Mode` and the settings every mode shares.
//!
//! The CLI module builds this from flags and the environment; nothing below it reads either.

use std::path::PathBuf;

use crate::catalog::Root;
use crate::discovery::DbName;
use crate::plan::Target;
use crate::version::Version;

/// The validated request.
#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    /// Where the migration sets come from.
    pub root: Root,
    /// The folder that holds `aifp_core.db`.
    pub core_dir: PathBuf,
    /// Where the search for `.aifp-project` starts.
    pub start: PathBuf,
    /// Whether `start` was given with `--project-dir` (else it is the current folder).
    pub start_given: bool,
    /// `--scan DIR`: every `.aifp-project` under DIR instead of the nearest one.
    pub scan: Option<PathBuf>,
    /// Where the drift cache lives (`$XDG_CACHE_HOME/aifp-migrate`), if anywhere.
    pub cache_dir: Option<PathBuf>,
    /// Where to look for the installed AIFP package.
    pub package: crate::package::Source,
    /// `--adopt FOLDER`: which of a project's two state folders to keep.
    pub adopt: Option<String>,
    /// `--allow-data-loss`: a plan may drop rows, tables or values (the backup keeps them).
    pub allow_data_loss: bool,
    pub format: Format,
    pub verbosity: Verbosity,
    /// The flags given that choose where the run looks (`--project-dir DIR`, `--migrations DIR`),
    /// shell-quoted, for the commands a hint suggests.
    pub context_flags: Vec<String>,
}

/// One of the modes of SPEC's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Read-only report, of every database or of one.
    Check { only: Option<DbName> },
    /// Migrate every database found (`only == None`) or one, toward `goal`.
    Migrate {
        only: Option<DbName>,
        goal: Goal,
        kind: RunKind,
    },
    /// Put back one database's newest backup (or `from`); with `only == None`, every database
    /// the most recent migrating run changed, from that run's backups.
    Restore {
        only: Option<DbName>,
        from: Option<PathBuf>,
    },
    /// List the backups of every database or of one.
    ListBackups { only: Option<DbName> },
    /// Delete all but the newest `keep` backups of each database (or of one).
    PruneBackups { only: Option<DbName>, keep: usize },
    /// Check on scratch databases that every step's rollback restores the schema before it.
    Verify { only: Option<DbName> },
    /// Record `version` in a database without running scripts.
    Stamp {
        db: DbName,
        version: Version,
        force: bool,
    },
    /// Create the missing per-project databases (or the one named) at their latest version.
    Init { only: Option<DbName> },
}

/// Where a migrating mode takes each database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Goal {
    /// Along the migration set's scripts, to a version.
    Version(Target),
    /// To the schema the file builds (`--to-schema FILE`): scripts first where they go part of
    /// the way, the rest converged.
    Schema(PathBuf),
    /// Back to the exact schema of the version each database records (`--repair`).
    Repair,
}

/// How a migrating mode runs its plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// For real: back up, migrate, commit.
    Real,
    /// Print the plan and its scripts; open nothing for writing.
    DryRun,
    /// Run the whole plan on a temporary copy of each database, then throw the copy away.
    Rehearse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}
