//! A cache of drift results, so that `--check` after every pull stays instant.
//!
//! Finding drift means replaying a set's scripts in memory and reading two schemas; the answer
//! only changes when the scripts or the database's schema do. So it is kept per migration set
//! (keyed by this tool's version and every script's name and text) and per database state (its
//! recorded version and a hash of its raw `sqlite_master`), in the folder the CLI names
//! (`$XDG_CACHE_HOME/aifp-migrate`, else `~/.cache/aifp-migrate`). A missing, stale or
//! unreadable cache only costs time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::catalog::Set;
use crate::history::sha256;

/// What was found for one database state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Found {
    pub drift: Vec<String>,
    pub matches: Option<String>,
}

/// The cached results for one migration set.
#[derive(Debug, Default)]
pub struct DriftCache {
    file: Option<PathBuf>,
    entries: BTreeMap<String, Found>,
    changed: bool,
}

/// At most this many database states are kept per set; beyond it the cache starts afresh.
const MAX_ENTRIES: usize = 256;

impl DriftCache {
    /// The cache for `set` in `folder` (none: a cache that keeps nothing), read if there is one.
    pub fn open(set: &Set, folder: Option<&Path>) -> Self {
        let mut key = format!("{}\n{}\n", env!("CARGO_PKG_VERSION"), set.name);
        for s in set
            .initials
            .iter()
            .chain(&set.upgrades)
            .chain(&set.rollbacks)
        {
            key.push_str(&format!("{}\n{}\n{}\n", s.file, s.from, s.sql));
        }
        let file =
            folder.map(|d| d.join(format!("drift-{}-{}.json", set.name, &sha256(&key)[..16])));
        let entries = file
            .as_ref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        DriftCache {
            file,
            entries,
            changed: false,
        }
    }

    pub fn get(&self, state: &str) -> Option<&Found> {
        self.entries.get(state)
    }

    pub fn put(&mut self, state: String, found: Found) {
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.clear();
        }
        self.entries.insert(state, found);
        self.changed = true;
    }

    /// Writes the cache back if it changed: to a temporary file, then renamed over the old one.
    pub fn save(&self) {
        let Some(file) = self.file.as_ref().filter(|_| self.changed) else {
            return;
        };
        write_atomically(file, &self.entries);
    }
}

/// The key of a database's state: its recorded version (or none) and a hash of its schema as
/// SQLite stores it, the tool's own tables left out. One query, no parsing.
pub fn state(conn: &Connection, version: Option<&str>) -> rusqlite::Result<String> {
    let mut stmt = conn.prepare(
        "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master
         WHERE tbl_name NOT LIKE 'aifp_migrate_%' ORDER BY type, name",
    )?;
    let mut rows = stmt.query([])?;
    let mut text = String::new();
    while let Some(r) = rows.next()? {
        for i in 0..4 {
            text.push_str(r.get_ref(i)?.as_str().unwrap_or(""));
            text.push('\u{1}');
        }
        text.push('\n');
    }
    Ok(format!("{}|{}", version.unwrap_or("-"), sha256(&text)))
}

/// What `--check` found for one database against the installed package's schema: kept so that
/// a check after every pull need not build the package's schemas again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Planned {
    /// The package's version of this database.
    pub latest: String,
    /// The steps pending: from, to, the step's name, its kind, and what it changes.
    pub steps: Vec<(String, String, String, String, Vec<String>)>,
}

/// `--check`'s answers against an installed package, keyed by the package's schema file and the
/// database's state (and whether its folder is to be renamed).
#[derive(Debug, Default)]
pub struct PlanCache {
    file: Option<PathBuf>,
    entries: BTreeMap<String, Planned>,
    changed: bool,
}

impl PlanCache {
    /// The cache in `folder` (none: a cache that keeps nothing), read if there is one.
    pub fn open(folder: Option<&Path>) -> Self {
        let file = folder.map(|d| d.join(format!("plans-{}.json", env!("CARGO_PKG_VERSION"))));
        let entries = file
            .as_ref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        PlanCache {
            file,
            entries,
            changed: false,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Planned> {
        self.entries.get(key)
    }

    pub fn put(&mut self, key: String, planned: Planned) {
        if self.entries.len() >= MAX_ENTRIES * 4 {
            self.entries.clear();
        }
        self.entries.insert(key, planned);
        self.changed = true;
    }

    /// Writes the cache back if it changed, as `DriftCache::save` does.
    pub fn save(&self) {
        let Some(file) = self.file.as_ref().filter(|_| self.changed) else {
            return;
        };
        write_atomically(file, &self.entries);
    }
}

/// Writes `value` as JSON to a temporary file beside `file`, then renames it over `file`.
fn write_atomically(file: &Path, value: &impl Serialize) {
    let Some(dir) = file.parent() else { return };
    let Ok(text) = serde_json::to_vec(value) else {
        return;
    };
    let tmp = dir.join(format!(
        ".{}.{}",
        std::process::id(),
        crate::history::new_run_id()
    ));
    let written = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&tmp, text))
        .and_then(|()| std::fs::rename(&tmp, file));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}
