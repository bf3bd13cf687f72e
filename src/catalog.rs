//! What scripts exist: one migration set per database, read from a folder or built into the binary.
//!
//! A set is read whole and checked before any database is touched: every `.sql` name must parse,
//! every script must be UTF-8 without transaction control of its own (nor anything else that could
//! undo what that transaction relies on), and no two scripts may start at the same version in the
//! same direction.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use include_dir::{include_dir, Dir};

use crate::error::Error;
use crate::sql::{self, Refusal};
use crate::version::Version;

static BUILT_IN: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/migrations");

/// Where the migration sets come from.
#[derive(Debug, Clone)]
pub enum Root {
    Dir(PathBuf),
    BuiltIn,
}

impl Root {
    /// How the root is named in messages.
    pub fn display(&self) -> String {
        match self {
            Root::Dir(p) => p.display().to_string(),
            Root::BuiltIn => "<built-in>".to_string(),
        }
    }
}

/// One script of a set. An initial schema has `from == to`.
#[derive(Debug, Clone)]
pub struct Script {
    pub from: Version,
    pub to: Version,
    /// The file name alone, e.g. `v1.0_to_v1.1_git_integration.sql`.
    pub file: String,
    /// The file as messages show it: a path, or `<built-in>/project/…`.
    pub origin: String,
    pub sql: String,
}

impl Script {
    /// What the step does, in the words of its first comment line (the bundled scripts open
    /// with one written for users reading what an update brings).
    pub fn description(&self) -> Option<&str> {
        description(&self.sql)
    }

    /// The label of the file name (`git_integration`), if it has one.
    pub fn label(&self) -> Option<&str> {
        label(&self.file)
    }
}

/// A script's first comment line, if it opens with one.
pub fn description(sql: &str) -> Option<&str> {
    sql.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .and_then(|l| l.strip_prefix("--"))
        .map(str::trim)
        .filter(|d| !d.is_empty())
}

/// The label of a script's file name (`v1.0_to_v1.1_git_integration.sql` -> `git_integration`).
pub fn label(file: &str) -> Option<&str> {
    let stem = file.strip_suffix(".sql")?;
    let after = stem.split_once("_to_v")?.1;
    after.split_once('_').map(|(_, label)| label)
}

/// The scripts for one database.
#[derive(Debug, Clone, Default)]
pub struct Set {
    pub name: String,
    pub upgrades: Vec<Script>,
    pub rollbacks: Vec<Script>,
    pub initials: Vec<Script>,
}

impl Set {
    /// The highest version an upgrade script or initial schema reaches.
    pub fn latest(&self) -> Option<&Version> {
        self.upgrades
            .iter()
            .chain(&self.initials)
            .map(|s| &s.to)
            .max()
    }

    /// Every version a script or initial schema of the set starts or ends at.
    pub fn versions(&self) -> impl Iterator<Item = &Version> {
        self.upgrades
            .iter()
            .chain(&self.rollbacks)
            .chain(&self.initials)
            .flat_map(|s| [&s.from, &s.to])
    }

    /// The upgrade (`down == false`) or rollback script that starts at `from`.
    pub fn step_from(&self, from: &Version, down: bool) -> Option<&Script> {
        let scripts = if down {
            &self.rollbacks
        } else {
            &self.upgrades
        };
        scripts.iter().find(|s| &s.from == from)
    }
}

/// A file of a set before its name and text are checked.
#[derive(Debug, Clone)]
pub struct RawFile {
    /// Whether it sits in the set's `rollback/` folder.
    pub rollback: bool,
    pub name: String,
    pub origin: String,
    pub bytes: Vec<u8>,
}

/// Reads and checks the set for database `name`.
pub fn load(root: &Root, name: &str) -> Result<Set, Error> {
    let files = match root {
        Root::Dir(dir) => read_dir_set(dir, name)?,
        Root::BuiltIn => read_built_in_set(name)?,
    };
    parse_set(name, files)
}

fn read_dir_set(root: &Path, name: &str) -> Result<Vec<RawFile>, Error> {
    let dir = root.join(name);
    if !dir.is_dir() {
        return Err(Error::NoSet {
            root: root.display().to_string(),
            db: name.to_string(),
        });
    }
    let mut files = Vec::new();
    for (folder, rollback) in [(dir.clone(), false), (dir.join("rollback"), true)] {
        if rollback && !folder.is_dir() {
            continue;
        }
        let read_err = |e: std::io::Error| Error::ReadScripts {
            path: folder.display().to_string(),
            message: e.to_string(),
        };
        for entry in std::fs::read_dir(&folder).map_err(read_err)? {
            let path = entry.map_err(read_err)?.path();
            let file_name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let unreadable = |message: String| Error::ReadScripts {
                path: path.display().to_string(),
                message,
            };
            // Following links: a script may be a link to a file kept elsewhere.
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => {
                    if rollback || !path.ends_with("rollback") {
                        refuse_scripts_in(&path)?;
                    }
                    continue;
                }
                Ok(m) if m.is_file() && is_script(&file_name) => {}
                _ if !is_script(&file_name) => continue,
                // A script that cannot be read is never skipped: the chain would miss a step.
                Ok(_) => return Err(unreadable("not a regular file".into())),
                Err(e) if path.is_symlink() => {
                    return Err(unreadable(format!("a symbolic link to nothing ({e})")))
                }
                Err(e) => return Err(unreadable(e.to_string())),
            }
            let bytes = std::fs::read(&path).map_err(|e| Error::ReadScripts {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            files.push(RawFile {
                rollback,
                name: file_name,
                origin: path.display().to_string(),
                bytes,
            });
        }
    }
    Ok(files)
}

/// A script in any other subfolder (`rollbacks/`, `Rollback/`) would be skipped: a typo that
/// must be named, not ignored.
/// Folders inside those are searched too (links to folders are not followed, so a loop ends).
fn refuse_scripts_in(folder: &Path) -> Result<(), Error> {
    let read_err = |e: std::io::Error| Error::ReadScripts {
        path: folder.display().to_string(),
        message: e.to_string(),
    };
    for entry in std::fs::read_dir(folder).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let path = entry.path();
        if is_script(&entry.file_name().to_string_lossy()) {
            return Err(Error::MisplacedScript {
                file: path.display().to_string(),
            });
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            refuse_scripts_in(&path)?;
        }
    }
    Ok(())
}

fn read_built_in_set(name: &str) -> Result<Vec<RawFile>, Error> {
    let dir = BUILT_IN.get_dir(name).ok_or_else(|| Error::NoSet {
        root: Root::BuiltIn.display(),
        db: name.to_string(),
    })?;
    let rollback_dir = BUILT_IN.get_dir(format!("{name}/rollback"));
    let folders = [(Some(dir), false), (rollback_dir, true)];
    Ok(folders
        .into_iter()
        .filter_map(|(d, rollback)| d.map(|d| (d, rollback)))
        .flat_map(|(d, rollback)| d.files().map(move |f| (f, rollback)))
        .filter_map(|(f, rollback)| {
            let file_name = f.path().file_name()?.to_string_lossy().into_owned();
            is_script(&file_name).then(|| RawFile {
                rollback,
                origin: format!("<built-in>/{}", f.path().display()),
                name: file_name,
                bytes: f.contents().to_vec(),
            })
        })
        .collect())
}

/// Any `.sql` file, whatever the case of its extension, is a script: `.SQL` must be named as a
/// bad name, not skipped silently.
fn is_script(file_name: &str) -> bool {
    file_name.to_ascii_lowercase().ends_with(".sql")
}

/// What a script's file name says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Name {
    Step { from: Version, to: Version },
    Initial(Version),
}

/// Parses `v<A>_to_v<B>[_label].sql` or `v<V>_initial_schema.sql`.
fn parse_name(file: &str) -> Option<Name> {
    let stem = file.strip_suffix(".sql")?.strip_prefix('v')?;
    if let Some(v) = stem.strip_suffix("_initial_schema") {
        return v.parse().ok().map(Name::Initial);
    }
    let (from, rest) = stem.split_once("_to_v")?;
    let (to, label) = match rest.split_once('_') {
        Some((to, label)) => (to, Some(label)),
        None => (rest, None),
    };
    if label.is_some_and(|l| l.is_empty() || l.contains('/')) {
        return None;
    }
    Some(Name::Step {
        from: from.parse().ok()?,
        to: to.parse().ok()?,
    })
}

/// Refuses a script that could switch off what the tool's transaction relies on, or that SQLite
/// would read only in part: the first such statement, by its line.
fn refuse_unsafe(file: &str, sql: &str) -> Result<(), Error> {
    let file = file.to_string();
    if let Some(line) = sql::nul_line(sql) {
        return Err(Error::NulByte { file, line });
    }
    let Some((line, refusal)) = sql::statements(sql)
        .iter()
        .find_map(|s| s.refusal().map(|r| (s.line, r)))
    else {
        return Ok(());
    };
    Err(match refusal {
        Refusal::TransactionControl(keyword) => Error::TransactionControl {
            file,
            line,
            keyword,
        },
        Refusal::Pragma(pragma) => Error::ForbiddenPragma { file, line, pragma },
        Refusal::Attach(keyword) => Error::Attach {
            file,
            line,
            keyword,
        },
        Refusal::DotCommand(command) => Error::DotCommand {
            file,
            line,
            command,
        },
    })
}

/// Checks the names and texts of a set's files and sorts them into a `Set`.
pub fn parse_set(name: &str, mut files: Vec<RawFile>) -> Result<Set, Error> {
    files.sort_by(|a, b| (a.rollback, &a.name).cmp(&(b.rollback, &b.name)));
    let mut set = Set {
        name: name.to_string(),
        ..Set::default()
    };
    for f in files {
        let parsed = parse_name(&f.name).ok_or_else(|| Error::BadScriptName {
            file: f.origin.clone(),
        })?;
        let sql = String::from_utf8(f.bytes).map_err(|_| Error::NotUtf8 {
            file: f.origin.clone(),
        })?;
        refuse_unsafe(&f.origin, &sql)?;
        let wrong = |problem: &str| Error::WrongDirection {
            file: f.origin.clone(),
            problem: problem.to_string(),
        };
        let (from, to, list) = match (parsed, f.rollback) {
            (Name::Initial(_), true) => {
                return Err(wrong("an initial schema does not belong in rollback/"))
            }
            (Name::Initial(v), false) => (v.clone(), v, &mut set.initials),
            (Name::Step { from, to }, false) if from < to => (from, to, &mut set.upgrades),
            (Name::Step { .. }, false) => {
                return Err(wrong(
                    "an upgrade must go to a higher version (downgrades belong in rollback/)",
                ))
            }
            (Name::Step { from, to }, true) if from > to => (from, to, &mut set.rollbacks),
            (Name::Step { .. }, true) => {
                return Err(wrong("a rollback must go to a lower version"))
            }
        };
        list.push(Script {
            from,
            to,
            file: f.name,
            origin: f.origin,
            sql,
        });
    }
    let shared = [
        (&set.upgrades, "both start at v{} going up"),
        (&set.rollbacks, "both start at v{} going down"),
        (&set.initials, "are both initial schemas for v{}"),
    ];
    for (scripts, what) in shared {
        let mut seen: BTreeMap<&Version, &Script> = BTreeMap::new();
        for s in scripts {
            if let Some(first) = seen.insert(&s.from, s) {
                return Err(Error::Ambiguous {
                    first: first.origin.clone(),
                    second: s.origin.clone(),
                    what: what.replace("{}", &first.from.to_string()),
                });
            }
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(rollback: bool, name: &str, sql: &str) -> RawFile {
        RawFile {
            rollback,
            name: name.to_string(),
            origin: format!("set/{}{name}", if rollback { "rollback/" } else { "" }),
            bytes: sql.as_bytes().to_vec(),
        }
    }

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn script_names_parse_with_and_without_labels() {
        assert_eq!(
            parse_name("v1.0_to_v1.1_git_integration.sql"),
            Some(Name::Step {
                from: v("1.0"),
                to: v("1.1")
            })
        );
        assert_eq!(
            parse_name("v1_to_v1.10.sql"),
            Some(Name::Step {
                from: v("1"),
                to: v("1.10")
            })
        );
        assert_eq!(
            parse_name("v1.0_initial_schema.sql"),
            Some(Name::Initial(v("1.0")))
        );
        for bad in [
            "1.0_to_v1.1.sql",
            "v1.0_to_1.1.sql",
            "v1.0-to-v1.1.sql",
            "v1.0_to_v1.1_.sql",
            "v1.0_to_v.sql",
            "v1.x_to_v1.1.sql",
            "v1.0_initial.sql",
            "v1.0_initial_schema_extra.sql",
            "v1.0_to_v1.1.SQL",
            "notes.sql",
        ] {
            assert_eq!(parse_name(bad), None, "{bad} parsed");
        }
    }

    #[test]
    fn a_misnamed_sql_file_is_an_error_that_names_it() {
        let err = parse_set(
            "p",
            vec![
                raw(false, "v1.0_to_v1.1.sql", ""),
                raw(false, "v1.1-to-v1.2.sql", ""),
            ],
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("set/v1.1-to-v1.2.sql: not a migration script name"),
            "{err}"
        );
    }

    #[test]
    fn upgrades_must_go_up_and_rollbacks_down() {
        let err = parse_set("p", vec![raw(false, "v1.1_to_v1.0.sql", "")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("an upgrade must go to a higher version"),
            "{err}"
        );
        let err = parse_set("p", vec![raw(true, "v1.0_to_v1.1.sql", "")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("a rollback must go to a lower version"),
            "{err}"
        );
        let err = parse_set("p", vec![raw(true, "v1.0_initial_schema.sql", "")]).unwrap_err();
        assert!(
            err.to_string().contains("does not belong in rollback/"),
            "{err}"
        );
    }

    #[test]
    fn two_scripts_from_the_same_version_and_direction_are_named_both() {
        let err = parse_set(
            "p",
            vec![
                raw(false, "v1.0_to_v1.1_a.sql", ""),
                raw(false, "v1.0_to_v1.2_b.sql", ""),
            ],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "set/v1.0_to_v1.1_a.sql and set/v1.0_to_v1.2_b.sql both start at v1.0 going up: keep only one"
        );
        // `1` and `1.0` are the same version, so these collide too.
        assert!(parse_set(
            "p",
            vec![
                raw(true, "v2_to_v1.sql", ""),
                raw(true, "v2.0_to_v1.5.sql", "")
            ]
        )
        .is_err());
        // Same start, different direction: fine.
        assert!(parse_set(
            "p",
            vec![
                raw(false, "v1.0_to_v1.1.sql", ""),
                raw(true, "v1.1_to_v1.0.sql", "")
            ]
        )
        .is_ok());
    }

    #[test]
    fn scripts_with_transaction_control_or_bad_bytes_are_refused() {
        let err = parse_set(
            "p",
            vec![raw(false, "v1_to_v2.sql", "CREATE TABLE a(x);\nCOMMIT;\n")],
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("set/v1_to_v2.sql line 2: the script holds its own COMMIT"),
            "{err}"
        );
        let mut f = raw(false, "v1_to_v2.sql", "");
        f.bytes = vec![b'S', 0xff, 0xfe];
        assert!(matches!(
            parse_set("p", vec![f]).unwrap_err(),
            Error::NotUtf8 { .. }
        ));
        let trigger = "CREATE TRIGGER t AFTER DELETE ON a BEGIN DELETE FROM b; END;";
        assert!(parse_set("p", vec![raw(false, "v1_to_v2.sql", trigger)]).is_ok());
    }

    #[test]
    fn latest_is_the_highest_version_reached() {
        let set = parse_set(
            "p",
            vec![
                raw(false, "v1.0_initial_schema.sql", ""),
                raw(false, "v1.0_to_v1.9.sql", ""),
                raw(false, "v1.9_to_v1.10.sql", ""),
                raw(true, "v1.10_to_v1.9.sql", ""),
            ],
        )
        .unwrap();
        assert_eq!(
            set.latest().map(ToString::to_string).as_deref(),
            Some("1.10")
        );
        assert_eq!(set.upgrades[0].label(), None);
    }

    #[test]
    fn the_built_in_sets_load_cleanly() {
        for name in crate::discovery::DbName::ALL {
            let set = load(&Root::BuiltIn, name.as_str()).unwrap();
            assert!(set.latest().is_some(), "{name:?} has no latest version");
        }
    }
}
