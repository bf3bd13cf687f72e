//! The installed AIFP: the `aimfp` (or, before its release 1.24, `aifp`) Python package whose
//! schema files say what "latest" means for each per-project database.
//!
//! It is the folder given by `--aifp-package` or `$AIFP_PACKAGE`, else the package that the
//! Python of the project's `.mcp.json` (or `python3` on PATH) imports. Asking Python costs tens
//! of milliseconds, so the answer is cached, keyed by the interpreter and every folder it
//! searches: installing or removing a package changes one of their modification times.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::OpenFlags;
use serde::{Deserialize, Serialize};

use crate::discovery::DbName;
use crate::error::Error;

/// Where the installed package may be found; the CLI builds this from the flags and environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `--aifp-package DIR` or `$AIFP_PACKAGE`.
    Folder(PathBuf),
    /// Ask Python: the interpreter on PATH (if any), and a key of the environment that decides
    /// what it imports (`PYTHONPATH`, `VIRTUAL_ENV`, …), for the cache.
    Python {
        interpreter: Option<PathBuf>,
        env_key: String,
    },
    /// Do not look (the plan's layout only).
    None,
}

/// An installed AIFP package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Package {
    /// `aimfp` or `aifp`.
    pub name: String,
    /// Its `__version__`.
    pub version: String,
    pub folder: PathBuf,
    /// Its core database, read-only.
    pub core: PathBuf,
    /// The core's own version, if it records one.
    pub core_version: Option<String>,
    /// The version each per-project database should be at, from the core's
    /// `expected_schema_versions` (empty before core 2.1).
    pub expected: BTreeMap<String, String>,
    /// How it was found: `--aifp-package`, `.mcp.json`, `python3`, …
    pub found_by: String,
}

impl Package {
    /// The folder a project's state lives in for this package.
    pub fn project_folder(&self) -> &'static str {
        if self.name == "aimfp" {
            ".aimfp-project"
        } else {
            ".aifp-project"
        }
    }

    /// The schema file of a per-project database.
    pub fn schema_file(&self, db: DbName) -> PathBuf {
        self.folder
            .join("database/schemas")
            .join(format!("{}.sql", db.as_str()))
    }
}

/// Finds the installed package, if there is one. `project_root` is the folder that holds the
/// project's state folder (its `.mcp.json` may name the interpreter AIFP runs with).
/// Python failing to answer is no error (the bundled sets apply): it comes back as a note.
pub fn find(
    source: &Source,
    project_root: Option<&Path>,
    cache_dir: Option<&Path>,
) -> Result<(Option<Package>, Option<String>), Error> {
    let (interpreter, env_key) = match source {
        Source::None => return Ok((None, None)),
        Source::Folder(dir) => {
            return open(dir, "--aifp-package or AIFP_PACKAGE").map(|p| (Some(p), None))
        }
        Source::Python {
            interpreter,
            env_key,
        } => (interpreter, env_key),
    };
    let from_mcp = project_root.and_then(mcp_interpreter);
    let (python, found_by) = match (&from_mcp, interpreter) {
        (Some(p), _) => (
            p.clone(),
            format!(
                "the Python of {}",
                project_root
                    .map(|r| r.join(".mcp.json").display().to_string())
                    .unwrap_or_default()
            ),
        ),
        (None, Some(p)) => (p.clone(), "python3 on PATH".to_string()),
        (None, None) => return Ok((None, None)),
    };
    match ask_python(&python, env_key, cache_dir) {
        Ok(Some(folder)) => open(&folder, &found_by).map(|p| (Some(p), None)),
        Ok(None) => Ok((None, None)),
        Err(note) => Ok((None, Some(note))),
    }
}

/// Reads the package in `folder`: its name, version, core database and expectations.
pub fn open(folder: &Path, found_by: &str) -> Result<Package, Error> {
    let bad = |why: String| Error::BadPackage {
        folder: folder.to_path_buf(),
        why,
    };
    if !folder.is_dir() {
        return Err(bad("it is not a folder".into()));
    }
    let schemas = folder.join("database/schemas");
    if !schemas.is_dir() {
        return Err(bad("it has no database/schemas folder".into()));
    }
    for db in &DbName::ALL[1..] {
        let file = schemas.join(format!("{}.sql", db.as_str()));
        if !file.is_file() {
            return Err(bad(format!("it has no {}", file.display())));
        }
    }
    let version = std::fs::read_to_string(folder.join("__init__.py"))
        .ok()
        .and_then(|text| dunder_version(&text))
        .unwrap_or_else(|| "unknown".into());
    // 1.24.0 on ship a stray 0-byte aifp_core.db beside the real aimfp_core.db: never pick it.
    let candidates = ["aimfp_core.db", "aifp_core.db"].map(|f| folder.join("database").join(f));
    let core = candidates
        .iter()
        .find(|c| std::fs::metadata(c).is_ok_and(|m| m.is_file() && m.len() > 0))
        .cloned();
    let Some(core) = core else {
        let empty = candidates.iter().find(|c| c.is_file());
        return Err(match empty {
            Some(c) => Error::EmptyFile { path: c.clone() },
            None => bad(format!(
                "it has no core database ({} or {})",
                candidates[0].display(),
                candidates[1].display()
            )),
        });
    };
    let name = match folder.file_name().and_then(|n| n.to_str()) {
        Some("aimfp") => "aimfp",
        Some("aifp") => "aifp",
        _ if core.ends_with("aimfp_core.db") => "aimfp",
        _ => "aifp",
    };
    let (core_version, expected) = read_core(&core)?;
    Ok(Package {
        name: name.to_string(),
        version,
        folder: folder.to_path_buf(),
        core,
        core_version,
        expected,
        found_by: found_by.to_string(),
    })
}

/// `__version__ = "1.35.0"` in a package's `__init__.py`.
fn dunder_version(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("__version__")?.trim_start();
        let rest = rest.strip_prefix('=')?.trim();
        let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
        let inner = &rest[1..];
        inner.find(quote).map(|end| inner[..end].to_string())
    })
}

/// The core's version and its `expected_schema_versions`, read without writing anything: the
/// file belongs to the package (some ship in WAL mode, in a folder that may not be writable),
/// so it is opened as immutable.
fn read_core(core: &Path) -> Result<(Option<String>, BTreeMap<String, String>), Error> {
    let unreadable = |e: rusqlite::Error| match crate::inspect::classify(core, e) {
        Error::Sqlite { path, message } => Error::Sqlite {
            path,
            message: format!(
                "{message}: the installed AIFP's core database cannot be read; reinstall AIFP"
            ),
        },
        other => other,
    };
    let uri = format!("file:{}?immutable=1", crate::inspect::uri_escape(core));
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI;
    let conn = rusqlite::Connection::open_with_flags(uri, flags).map_err(unreadable)?;
    let version = match crate::inspect::read_version(&conn, core)? {
        crate::inspect::State::Versioned(v) => Some(v.to_string()),
        _ => None,
    };
    let has: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'expected_schema_versions'",
            [],
            |r| r.get(0),
        )
        .map_err(unreadable)?;
    let mut expected = BTreeMap::new();
    if has {
        let mut stmt = conn
            .prepare("SELECT db_name, expected_version FROM expected_schema_versions")
            .map_err(unreadable)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(unreadable)?;
        for row in rows {
            let (db, v) = row.map_err(unreadable)?;
            expected.insert(db, v);
        }
    }
    Ok((version, expected))
}

/// The interpreter that the project's `.mcp.json` runs an `aimfp`/`aifp` server with, if it
/// names a Python.
fn mcp_interpreter(root: &Path) -> Option<PathBuf> {
    let text = std::fs::read(root.join(".mcp.json")).ok()?;
    let json: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let servers = json.get("mcpServers")?.as_object()?;
    servers.iter().find_map(|(name, server)| {
        let command = server.get("command")?.as_str()?;
        let args: Vec<&str> = server
            .get("args")
            .and_then(|a| a.as_array())
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        let ours = |s: &str| s.contains("aimfp") || s.contains("aifp");
        let python = Path::new(command)
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("python"));
        (python && (ours(name) || args.iter().any(|a| ours(a)))).then(|| {
            let p = PathBuf::from(command);
            if p.is_absolute() {
                p
            } else {
                root.join(p)
            }
        })
    })
}

/// What Python said, as cached: the folders it searches (with their modification times, which
/// change when a package is installed or removed) and the package folder it found.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Answer {
    key: String,
    searched: Vec<(String, Option<u128>)>,
    package: Option<String>,
}

/// How long Python may take to answer.
const PYTHON_WAIT: Duration = Duration::from_secs(10);

/// The program Python runs: never imports the package (find_spec only locates it), and leaves
/// the current folder out of the search, so a folder named `aimfp` here is not mistaken for it.
const FIND: &str = r#"
import sys, json, importlib.util
sys.path = [p for p in sys.path if p not in ("", ".")]
out = {"searched": sys.path, "package": None}
for name in ("aimfp", "aifp"):
    try:
        spec = importlib.util.find_spec(name)
    except Exception:
        spec = None
    if spec is not None and spec.submodule_search_locations:
        out["package"] = list(spec.submodule_search_locations)[0]
        break
print(json.dumps(out))
"#;

/// Asks `python` where the package is, or answers from the cache. An error is a note to show.
fn ask_python(
    python: &Path,
    env_key: &str,
    cache_dir: Option<&Path>,
) -> Result<Option<PathBuf>, String> {
    let stamp = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
    };
    let key = format!(
        "{}\n{}\n{:?}\n{env_key}",
        env!("CARGO_PKG_VERSION"),
        python.display(),
        stamp(python)
    );
    let file = cache_dir.map(|d| {
        d.join(format!(
            "package-{}.json",
            &crate::history::sha256(&key)[..16]
        ))
    });
    let cached: Option<Answer> = file
        .as_ref()
        .and_then(|f| std::fs::read(f).ok())
        .and_then(|b| serde_json::from_slice(&b).ok());
    if let Some(a) = cached.filter(|a| {
        a.key == key
            && a.searched
                .iter()
                .all(|(dir, when)| stamp(Path::new(dir)) == *when)
    }) {
        return Ok(a.package.map(PathBuf::from));
    }

    let shown = python.display();
    let mut child = match Command::new(python)
        .args(["-c", FIND])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{shown} could not be run ({e})")),
    };
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > PYTHON_WAIT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{shown} did not answer within {} s",
                    PYTHON_WAIT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("{shown} could not be waited for ({e})")),
        }
    };
    let output = child
        .wait_with_output()
        .map_err(|e| format!("{shown}: {e}"))?;
    if !status.success() {
        let why = String::from_utf8_lossy(&output.stderr);
        let why = why
            .lines()
            .last()
            .unwrap_or("no message")
            .trim()
            .to_string();
        return Err(format!("{shown} failed ({status}: {why})"));
    }
    #[derive(Deserialize)]
    struct Said {
        searched: Vec<String>,
        package: Option<String>,
    }
    let said: Said = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("{shown} gave an answer that is not JSON ({e})"))?;
    let answer = Answer {
        key,
        searched: said
            .searched
            .iter()
            .map(|d| (d.clone(), stamp(Path::new(d))))
            .collect(),
        package: said.package.clone(),
    };
    if let (Some(file), Ok(text)) = (&file, serde_json::to_vec(&answer)) {
        if let Some(dir) = file.parent() {
            let tmp = dir.join(format!(".package.{}", std::process::id()));
            let saved = std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::write(&tmp, text))
                .and_then(|()| std::fs::rename(&tmp, file));
            if saved.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
        }
    }
    Ok(said.package.map(PathBuf::from))
}

/// The environment variables that decide what a Python imports, as one cache key.
pub fn python_env_key(get: impl Fn(&str) -> Option<OsString>) -> String {
    [
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONUSERBASE",
        "PYTHONNOUSERSITE",
        "VIRTUAL_ENV",
        "CONDA_PREFIX",
        "HOME",
    ]
    .iter()
    .map(|v| format!("{v}={:?}", get(v)))
    .collect::<Vec<_>>()
    .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_read_from_the_init_file_in_either_quote() {
        assert_eq!(
            dunder_version("\"\"\"AIMFP.\"\"\"\n__version__ = \"1.35.0\"\n"),
            Some("1.35.0".into())
        );
        assert_eq!(
            dunder_version("__version__='1.23.0'"),
            Some("1.23.0".into())
        );
        assert_eq!(dunder_version("version = '1'"), None);
    }

    #[test]
    fn the_mcp_json_interpreter_is_the_python_of_an_aimfp_server() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join(".mcp.json"),
            r#"{"mcpServers": {"other": {"command": "node"},
                "aimfp": {"command": "/opt/venv/bin/python3", "args": ["-m", "aimfp"]}}}"#,
        )
        .unwrap();
        assert_eq!(
            mcp_interpreter(tmp.path()),
            Some(PathBuf::from("/opt/venv/bin/python3"))
        );
        std::fs::write(tmp.path().join(".mcp.json"), "{not json").unwrap();
        assert_eq!(mcp_interpreter(tmp.path()), None);
    }
}
