//! Where the databases are: the core one in `$AIFP_HOME` (else `~/.aifp`), the three per-project
//! ones in the nearest `.aifp-project/` folder at or above the start folder.
//!
//! Discovery only finds paths; whether a file is there and what it holds is `inspect`'s business.

use std::path::{Path, PathBuf};

/// The four AIFP databases, in the order they are reported and migrated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DbName {
    AifpCore,
    Project,
    UserPreferences,
    UserDirectives,
}

impl DbName {
    pub const ALL: [DbName; 4] = [
        DbName::AifpCore,
        DbName::Project,
        DbName::UserPreferences,
        DbName::UserDirectives,
    ];

    /// The name used on the command line, in reports, and as the migration set's folder.
    pub fn as_str(self) -> &'static str {
        match self {
            DbName::AifpCore => "aifp_core",
            DbName::Project => "project",
            DbName::UserPreferences => "user_preferences",
            DbName::UserDirectives => "user_directives",
        }
    }

    pub fn file_name(self) -> String {
        format!("{}.db", self.as_str())
    }

    pub fn parse(s: &str) -> Option<DbName> {
        DbName::ALL.into_iter().find(|n| n.as_str() == s)
    }
}

/// The name of the per-project folder.
pub const PROJECT_FOLDER: &str = ".aifp-project";

/// Where one database is (or would be).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub name: DbName,
    /// `None` for a per-project database when no `.aifp-project` folder was found.
    pub path: Option<PathBuf>,
}

/// The databases' locations, and the start folder the project search began from.
#[derive(Debug, Clone)]
pub struct Found {
    pub start: PathBuf,
    pub project_folder: Option<PathBuf>,
    pub locations: Vec<Location>,
}

/// The nearest folder at or above `start` that holds a `.aifp-project` directory.
pub fn project_folder(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join(PROJECT_FOLDER))
        .find(|candidate| candidate.is_dir())
}

/// Finds every database: `core_dir` holds the core one, the project search starts at `start`.
pub fn discover(core_dir: &Path, start: &Path) -> Found {
    let project = project_folder(start);
    let locations = DbName::ALL
        .into_iter()
        .map(|name| {
            let dir = match name {
                DbName::AifpCore => Some(core_dir),
                _ => project.as_deref(),
            };
            Location {
                name,
                path: dir.map(|d| d.join(name.file_name())),
            }
        })
        .collect();
    Found {
        start: start.to_path_buf(),
        project_folder: project,
        locations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for n in DbName::ALL {
            assert_eq!(DbName::parse(n.as_str()), Some(n));
        }
        assert_eq!(DbName::parse("projects"), None);
        assert_eq!(DbName::Project.file_name(), "project.db");
    }

    #[test]
    fn the_nearest_project_folder_wins_and_a_file_of_that_name_does_not_count() {
        let tmp = tempfile::tempdir().unwrap();
        let outer = tmp.path().join("outer");
        let inner = outer.join("a/inner");
        let deep = inner.join("b/c");
        std::fs::create_dir_all(outer.join(PROJECT_FOLDER)).unwrap();
        std::fs::create_dir_all(inner.join(PROJECT_FOLDER)).unwrap();
        std::fs::create_dir_all(deep.join(PROJECT_FOLDER).parent().unwrap()).unwrap();
        std::fs::write(deep.join(PROJECT_FOLDER), "not a folder").unwrap();
        assert_eq!(project_folder(&deep), Some(inner.join(PROJECT_FOLDER)));
        assert_eq!(
            project_folder(&outer.join("a")),
            Some(outer.join(PROJECT_FOLDER))
        );
    }
}
