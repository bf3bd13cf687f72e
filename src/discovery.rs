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

/// Whether a folder of this name holds a project's databases: the one place discovery and
/// `--scan` decide that.
pub fn is_project_folder_name(name: &std::ffi::OsStr) -> bool {
    name == PROJECT_FOLDER
}

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

/// Where database `name` in `dir` really is: a symbolic link is followed, since SQLite keeps a
/// database's `-wal`, `-shm` and `-journal` beside the file it points to, and so must every check,
/// read and backup of the tool. A link to nothing stays as it is (the database is missing).
pub fn database_path(dir: &Path, name: DbName) -> PathBuf {
    let path = dir.join(name.file_name());
    if path.is_symlink() {
        if let Ok(target) = std::fs::canonicalize(&path) {
            return target;
        }
    }
    path
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
                path: dir.map(|d| database_path(d, name)),
            }
        })
        .collect();
    Found {
        start: start.to_path_buf(),
        project_folder: project,
        locations,
    }
}

/// Folders a scan never enters: version control, dependencies and build output.
const SKIPPED: [&str; 3] = [".git", "node_modules", "target"];

/// What `--scan` found: the databases, and the folders it could not look into.
#[derive(Debug, Clone, Default)]
pub struct Scanned {
    pub locations: Vec<Location>,
    /// Each folder that could not be read, with the reason.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// `--scan DIR`: the core database, then the three databases of every `.aifp-project` found at or
/// below `dir` (nested projects included; nothing above `dir`), in path order. Symbolic links
/// are followed, but no folder is entered or counted twice, so a link loop ends the walk there and
/// a project reached by two paths is one project.
pub fn scan(core_dir: &Path, dir: &Path) -> Scanned {
    let mut walk = Walk::default();
    walk.walk(dir);
    let Walk {
        found: mut projects,
        unreadable,
        ..
    } = walk;
    projects.sort();
    let core = Location {
        name: DbName::AifpCore,
        path: Some(database_path(core_dir, DbName::AifpCore)),
    };
    let locations = std::iter::once(core)
        .chain(projects.into_iter().flat_map(|folder| {
            DbName::ALL[1..].iter().map(move |&name| Location {
                name,
                path: Some(database_path(&folder, name)),
            })
        }))
        .collect();
    Scanned {
        locations,
        unreadable,
    }
}

#[derive(Default)]
struct Walk {
    /// Folders entered and project folders counted, by device and inode (links followed).
    seen: std::collections::HashSet<(u64, u64)>,
    found: Vec<PathBuf>,
    unreadable: Vec<(PathBuf, String)>,
}

impl Walk {
    fn walk(&mut self, dir: &Path) {
        // Following links, so a folder reached twice (a link loop) has the same device and inode.
        let Ok(meta) = std::fs::metadata(dir) else {
            return;
        };
        if !meta.is_dir() || !self.first_time(&meta) {
            return;
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => return self.unreadable.push((dir.to_path_buf(), e.to_string())),
        };
        let mut children: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        children.sort();
        for child in children {
            let name = child.file_name().unwrap_or_default();
            if is_project_folder_name(name) {
                match std::fs::metadata(&child) {
                    Ok(m) if m.is_dir() && self.first_time(&m) => self.found.push(child),
                    _ => {}
                }
            } else if !SKIPPED.iter().any(|s| name == *s) {
                self.walk(&child);
            }
        }
    }

    fn first_time(&mut self, meta: &std::fs::Metadata) -> bool {
        use std::os::unix::fs::MetadataExt;
        self.seen.insert((meta.dev(), meta.ino()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scan_finds_nested_projects_skips_dependency_folders_and_survives_link_loops() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("work");
        for dir in [
            "a/.aifp-project",
            "a/sub/deeper/.aifp-project",
            "b/node_modules/dep/.aifp-project",
            "b/.git/x/.aifp-project",
            "c/target/.aifp-project",
            "d",
        ] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::create_dir_all(tmp.path().join(".aifp-project")).unwrap(); // above: not scanned
        std::os::unix::fs::symlink(&root, root.join("d/loop")).unwrap();
        let found: Vec<PathBuf> = scan(Path::new("/core"), &root)
            .locations
            .into_iter()
            .filter(|l| l.name == DbName::Project)
            .filter_map(|l| l.path)
            .collect();
        assert_eq!(
            found,
            [
                root.join("a/.aifp-project/project.db"),
                root.join("a/sub/deeper/.aifp-project/project.db"),
            ]
        );
    }

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
