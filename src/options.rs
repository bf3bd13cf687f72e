//! What the user asked for, validated: one `Mode` and the settings every mode shares.
//!
//! The CLI module builds this from flags and the environment; nothing below it reads either.

use std::path::PathBuf;

use crate::catalog::Root;
use crate::discovery::DbName;
use crate::plan::Target;

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
    pub format: Format,
    pub verbosity: Verbosity,
}

/// One of the modes of SPEC's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Read-only report, of every database or of one.
    Check { only: Option<DbName> },
    /// Migrate every database found (`only == None`) or one, to `target`.
    Migrate {
        only: Option<DbName>,
        target: Target,
        dry_run: bool,
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
