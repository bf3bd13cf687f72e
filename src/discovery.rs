//! Where the databases are: the core one in `$AIFP_HOME` (else `~/.aifp`) or inside the installed
//! AIFP package, the three per-project ones in the nearest `.aimfp-project/` or `.aifp-project/`
//! folder at or above the start folder.
//!
//! Which folders, files and core locations exist is one value, the `Layout`, built once from
//! what was found (the plan's layout, an installed `aifp`, an installed `aimfp`). Discovery only
//! finds paths; whether a file is there and what it holds is `inspect`'s business.

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

/// The names of the per-project folder: AIMFP's (its release 1.24 on) and AIFP's before it.
pub const PROJECT_FOLDERS: [&str; 2] = [".aimfp-project", ".aifp-project"];

/// The folder name of the plan's layout (and of AIFP up to 1.23).
pub const PROJECT_FOLDER: &str = ".aifp-project";

/// Whether a folder of this name holds a project's databases: the one place discovery and
/// `--scan` decide that.
pub fn is_project_folder_name(name: &std::ffi::OsStr) -> bool {
    PROJECT_FOLDERS.iter().any(|f| name == *f)
}

/// Which folders, database files and core locations exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The folder of the plan's core database (`$AIFP_HOME`, else `~/.aifp`).
    pub home: PathBuf,
    /// The installed package's core database, read and never written.
    pub installed_core: Option<PathBuf>,
    /// The per-project folder the installed AIFP keeps its state in.
    pub project_folder: &'static str,
}

impl Layout {
    /// The plan's layout: the core in `home`, the project state in `.aifp-project`.
    pub fn plan(home: &Path) -> Layout {
        Layout {
            home: home.to_path_buf(),
            installed_core: None,
            project_folder: PROJECT_FOLDER,
        }
    }

    /// An installed package's layout: its core, and the folder its release uses.
    pub fn installed(home: &Path, package: &crate::package::Package) -> Layout {
        Layout {
            home: home.to_path_buf(),
            installed_core: Some(package.core.clone()),
            project_folder: package.project_folder(),
        }
    }

    /// The per-project folder names to look for, this layout's own first.
    pub fn folder_names(&self) -> [&'static str; 2] {
        let other = PROJECT_FOLDERS
            .into_iter()
            .find(|f| *f != self.project_folder)
            .unwrap_or(PROJECT_FOLDER);
        [self.project_folder, other]
    }

    /// The core databases: the installed one (when there is a package), then the plan's one
    /// (always without a package; with one, only when its file is there).
    fn cores(&self) -> Vec<Location> {
        let home = database_path(&self.home, DbName::AifpCore);
        let mut out = Vec::new();
        if let Some(core) = &self.installed_core {
            out.push(Location {
                name: DbName::AifpCore,
                path: Some(core.clone()),
                installed: true,
            });
            if !home.exists() {
                return out;
            }
        }
        out.push(Location {
            name: DbName::AifpCore,
            path: Some(home),
            installed: false,
        });
        out
    }

    /// The three per-project databases of the state folder `folder`.
    fn in_folder(folder: Option<&Path>) -> impl Iterator<Item = Location> + '_ {
        DbName::ALL[1..].iter().map(move |&name| Location {
            name,
            path: folder.map(|f| database_path(f, name)),
            installed: false,
        })
    }
}

/// Where one database is (or would be).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub name: DbName,
    /// `None` for a per-project database when no project folder was found.
    pub path: Option<PathBuf>,
    /// The installed package's core: reported, never migrated, backed up or written.
    pub installed: bool,
}

/// The databases' locations, and the start folder the project search began from.
#[derive(Debug, Clone)]
pub struct Found {
    pub start: PathBuf,
    pub layout: Layout,
    /// The state folder the per-project databases are in.
    pub project_folder: Option<PathBuf>,
    /// When one project holds both `.aimfp-project` and `.aifp-project`: both (the user picks
    /// one with `--adopt`).
    pub both: Option<[PathBuf; 2]>,
    pub locations: Vec<Location>,
}

/// The nearest folder at or above `start` that holds a project state folder, with the state
/// folders found there (this layout's own name first).
pub fn project_root(start: &Path, layout: &Layout) -> Option<(PathBuf, Vec<PathBuf>)> {
    start.ancestors().find_map(|dir| {
        let found: Vec<PathBuf> = layout
            .folder_names()
            .iter()
            .map(|n| dir.join(n))
            .filter(|c| c.is_dir())
            .collect();
        (!found.is_empty()).then(|| (dir.to_path_buf(), found))
    })
}

/// The nearest state folder at or above `start`, of either name.
pub fn project_folder(start: &Path) -> Option<PathBuf> {
    project_root(start, &Layout::plan(Path::new("")))
        .and_then(|(_, folders)| folders.into_iter().next())
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

/// Finds every database of `layout`, the project search starting at `start`. `adopt` names the
/// state folder to use when a project has both.
pub fn discover(layout: &Layout, start: &Path, adopt: Option<&str>) -> Found {
    let (folder, both) = match project_root(start, layout) {
        None => (None, None),
        Some((_, folders)) => {
            let chosen = adopt
                .and_then(|a| folders.iter().find(|f| f.ends_with(a)))
                .or(folders.first())
                .cloned();
            let both = match &folders[..] {
                [a, b] => Some([a.clone(), b.clone()]),
                _ => None,
            };
            (chosen, both)
        }
    };
    let locations = layout
        .cores()
        .into_iter()
        .chain(Layout::in_folder(folder.as_deref()))
        .collect();
    Found {
        start: start.to_path_buf(),
        layout: layout.clone(),
        project_folder: folder,
        both,
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

/// `--scan DIR`: the core databases, then the three databases of every project state folder
/// found at or below `dir` (nested projects included; nothing above `dir`), in path order.
/// Symbolic links are followed, but no folder is entered or counted twice, so a link loop ends
/// the walk there and a project reached by two paths is one project. A project with both state
/// folders is scanned through the layout's own.
pub fn scan(layout: &Layout, dir: &Path) -> Scanned {
    let mut walk = Walk::default();
    walk.walk(dir);
    let Walk {
        found: mut projects,
        unreadable,
        ..
    } = walk;
    projects.sort();
    let names = layout.folder_names();
    let has_own = |f: &PathBuf| f.parent().is_some_and(|p| p.join(names[0]).is_dir());
    projects.retain(|f| !(f.ends_with(names[1]) && has_own(f)));
    let locations = layout
        .cores()
        .into_iter()
        .chain(
            projects
                .into_iter()
                .flat_map(|folder| Layout::in_folder(Some(&folder)).collect::<Vec<_>>()),
        )
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
        let found: Vec<PathBuf> = scan(&Layout::plan(Path::new("/core")), &root)
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
