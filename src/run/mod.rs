//! One run of the tool: discover, inspect, plan every selected database, then act (or only report).
//!
//! Decide first, then act: every database is opened read-only and its whole plan resolved before
//! the first write anywhere, so a plan error in any of them writes nothing at all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::apply;
use crate::backup;
use crate::cache;
use crate::catalog::{self, Set};
use crate::discovery::{self, DbName, Location};
use crate::error::Error;
use crate::history;
use crate::inspect::{self, State};
use crate::options::{Goal, Mode, Options, RunKind};
use crate::package::{self, Package};
use crate::plan::{self, Target};
use crate::progress::Reporter;
use crate::rehearse;
use crate::report::{
    self, BackupEntry, CheckEntry, CheckStatus, RehearsalEntry, Report, RestoreEntry, RunEntry,
    RunStatus, StepEntry, VerifyEntry,
};
use crate::restore;
use crate::schema;
use crate::scratch;
use crate::verify;
use crate::version::Version;

mod backups;
mod check;
mod goal;
mod know;
mod migrate;

/// The report of a run, and the error lines that go to stderr beside it.
#[derive(Debug)]
pub struct Outcome {
    pub report: Report,
    pub errors: Vec<Error>,
    /// Lines worth saying on stderr that are no error (a Python that did not answer).
    pub notes: Vec<String>,
}

/// What a run knows beyond its flags: the installed package, if any, and the target schema
/// of each per-project database it ships, built when first asked for (a cached `--check`
/// builds none).
pub(super) struct Ctx {
    pub package: Option<Package>,
    /// Per database, a hash of its schema file's text: what cached answers are keyed by.
    pub schema_keys: BTreeMap<DbName, String>,
    targets: std::cell::RefCell<BTreeMap<DbName, std::sync::Arc<scratch::Target>>>,
    /// Said about the package while building its targets (a version its core disagrees with).
    pub notes: std::cell::RefCell<Vec<String>>,
}

impl Ctx {
    fn none() -> Ctx {
        Ctx {
            package: None,
            schema_keys: BTreeMap::new(),
            targets: Default::default(),
            notes: Default::default(),
        }
    }

    /// The package's target for a per-project database, when there is a package.
    pub fn target(&self, name: DbName) -> Result<Option<std::sync::Arc<scratch::Target>>, Error> {
        let Some(p) = self.package.as_ref().filter(|_| name != DbName::AifpCore) else {
            return Ok(None);
        };
        if let Some(t) = self.targets.borrow().get(&name) {
            return Ok(Some(std::sync::Arc::clone(t)));
        }
        let target = std::sync::Arc::new(scratch::target_file(&p.schema_file(name))?);
        self.cross_check(name, &target.version.to_string());
        self.targets
            .borrow_mut()
            .insert(name, std::sync::Arc::clone(&target));
        Ok(Some(target))
    }

    /// Notes a disagreement between the package's core and its schema file (the file wins).
    pub fn cross_check(&self, name: DbName, file_version: &str) {
        let Some(p) = &self.package else { return };
        let Some(expected) = p.expected.get(name.as_str()) else {
            return;
        };
        if expected.parse::<Version>().ok() != file_version.parse::<Version>().ok() {
            let note = format!(
                "{}'s core expects {} v{expected}, but {} writes v{file_version}: the schema file wins",
                p.name,
                name.as_str(),
                p.schema_file(name).display(),
            );
            let mut notes = self.notes.borrow_mut();
            if !notes.contains(&note) {
                notes.push(note);
            }
        }
    }
}

/// Runs the mode `opts` asks for, telling `progress` how long work goes.
pub fn run(opts: &Options, progress: &Reporter) -> Result<Outcome, Error> {
    if let catalog::Root::Dir(dir) = &opts.root {
        if !dir.is_dir() {
            return Err(Error::MigrationsRootMissing(dir.clone()));
        }
    }
    if !opts.start.is_dir() {
        return Err(Error::ProjectDirMissing(opts.start.clone()));
    }

    // Only the modes that take databases to "latest" ask what the installed AIFP says it is.
    let wants_package = matches!(
        &opts.mode,
        Mode::Check { .. }
            | Mode::Init { .. }
            | Mode::Migrate {
                goal: Goal::Version(Target::Latest),
                ..
            }
    );
    let plan_layout = discovery::Layout::plan(&opts.core_dir);
    let mut notes = Vec::new();
    let ctx = if wants_package {
        let root = discovery::project_root(&opts.start, &plan_layout).map(|(root, _)| root);
        let (package, note) =
            package::find(&opts.package, root.as_deref(), opts.cache_dir.as_deref())?;
        notes.extend(note.map(|n| {
            format!("{n}; no installed AIFP found that way, so the bundled migration sets apply")
        }));
        context(package)?
    } else {
        Ctx::none()
    };
    let layout = match &ctx.package {
        Some(p) => discovery::Layout::installed(&opts.core_dir, p),
        None => plan_layout,
    };
    let mut found = discovery::discover(&layout, &opts.start, opts.adopt.as_deref());
    let mut unreadable = Vec::new();
    if let Some(dir) = &opts.scan {
        if !dir.is_dir() {
            return Err(Error::ScanDirMissing(dir.clone()));
        }
        let scanned = discovery::scan(&layout, dir);
        found.locations = scanned.locations;
        unreadable = scanned.unreadable;
    }
    // A folder the scan could not read is reported after the projects it could, which go ahead.
    let unreadable = unreadable
        .into_iter()
        .map(|(folder, message)| Error::ScanUnreadable { folder, message });
    let outcome = match &opts.mode {
        Mode::Check { only } => Ok(check::check(
            opts,
            &ctx,
            &found,
            select(&found.locations, *only),
            *only,
        )),
        Mode::Migrate { only, goal, kind } => migrate::migrate(
            opts,
            &ctx,
            &found,
            select(&found.locations, *only),
            *only,
            goal,
            *kind,
            progress,
        ),
        Mode::Restore {
            only: Some(name),
            from,
        } => backups::restore_one(&opts.root, &found, *name, from.as_deref()),
        Mode::Restore { only: None, .. } => backups::restore_last_run(&opts.root, &found),
        Mode::ListBackups { only } => backups::list_backups(select(&found.locations, *only)),
        Mode::PruneBackups { only, keep } => {
            backups::prune_backups(select(&found.locations, *only), *keep)
        }
        Mode::Verify { only } => know::verify_sets(&opts.root, *only),
        Mode::Stamp { db, version, force } => know::stamp(&opts.root, &found, *db, version, *force),
        Mode::Init { only } => know::init(opts, &ctx, &found, *only),
    };
    outcome.map(|mut o| {
        o.notes.extend(notes);
        o.notes.extend(ctx.notes.take());
        o.errors.extend(unreadable);
        o
    })
}

/// The run's context for `package`: the hash of each schema file, read now (cheap); the targets
/// they build come when asked for.
fn context(package: Option<Package>) -> Result<Ctx, Error> {
    let mut ctx = Ctx::none();
    if let Some(p) = &package {
        for name in &DbName::ALL[1..] {
            let file = p.schema_file(*name);
            let text = std::fs::read(&file).map_err(|e| Error::io(&file, &e))?;
            let key = history::sha256(&String::from_utf8_lossy(&text));
            ctx.schema_keys.insert(*name, key);
        }
    }
    ctx.package = package;
    Ok(ctx)
}

/// The command that migrates what this run looked at, with the flags that chose it: what a hint
/// tells the user to run next.
pub(super) fn migrate_command(opts: &Options, only: Option<DbName>) -> String {
    let mut words = vec!["aifp-migrate".to_string()];
    match (&opts.scan, only) {
        (Some(dir), _) => words.push(format!("--all --scan {}", report::shell_quote(dir))),
        (None, Some(name)) => words.push(format!("--db {}", name.as_str())),
        (None, None) => words.push("--all".into()),
    }
    words.extend(opts.context_flags.iter().cloned());
    words.join(" ")
}

/// The command that brings the database at `loc` back to its version's schema, runnable from
/// anywhere like `migrate_command`'s: in a scan, with the database's project folder.
pub(super) fn repair_command(opts: &Options, loc: &Location) -> String {
    let mut words = vec![format!("aifp-migrate --db {} --repair", loc.name.as_str())];
    let project = loc
        .path
        .as_deref()
        .filter(|_| opts.scan.is_some() && loc.name != DbName::AifpCore)
        .and_then(|db| db.parent()?.parent());
    if let Some(root) = project {
        words.push(format!("--project-dir {}", report::shell_quote(root)));
    }
    words.extend(opts.context_flags.iter().cloned());
    words.join(" ")
}

pub(super) fn select(locations: &[Location], only: Option<DbName>) -> Vec<&Location> {
    locations
        .iter()
        .filter(|l| only.is_none_or(|n| n == l.name))
        .collect()
}

pub(super) fn step_entry(s: &plan::Step) -> StepEntry {
    StepEntry {
        from: s.from.to_string(),
        to: s.to.to_string(),
        script: s.file.clone(),
        kind: s.kind(),
        summary: s
            .converge
            .as_ref()
            .map(|c| c.summary.clone())
            .unwrap_or_default(),
        label: s.label().map(str::to_string),
        description: s.description().map(str::to_string),
        origin: s.origin.clone(),
        sql: s.sql.clone(),
        ms: None,
    }
}

pub(super) fn display(path: &Path) -> String {
    path.display().to_string()
}

/// The migration set of each database name the selected locations need, loaded once per run
/// (a scan may select thousands of databases of the same four kinds).
pub(super) fn load_sets(
    root: &catalog::Root,
    selected: &[&Location],
) -> BTreeMap<DbName, Result<Set, Error>> {
    let mut sets = BTreeMap::new();
    for loc in selected {
        sets.entry(loc.name)
            .or_insert_with(|| catalog::load(root, loc.name.as_str()));
    }
    sets
}

/// The core database's folder comes from AIFP_HOME, which may name a file by mistake (the
/// project folder is found as a directory, so only the core one can be wrong this way).
pub(super) fn in_folder(name: DbName, path: &Path) -> Result<(), Error> {
    match path.parent() {
        Some(dir) if name == DbName::AifpCore && dir.exists() && !dir.is_dir() => {
            Err(Error::CoreDirNotAFolder(dir.to_path_buf()))
        }
        _ => Ok(()),
    }
}

/// The path of a database asked for by name; outside a project the per-project ones have none.
pub(super) fn named_path(found: &discovery::Found, name: DbName) -> Result<PathBuf, Error> {
    found
        .locations
        .iter()
        .find(|l| l.name == name)
        .and_then(|l| l.path.clone())
        .ok_or_else(|| Error::NoProject {
            db: name.as_str().to_string(),
            start: display(&found.start),
        })
}

/// A set that failed to load is an error even for a database that is missing, unless the set
/// is simply absent from the migrations folder (a folder may hold only the sets it needs).
fn set_usable(set: &Result<Set, Error>) -> Result<(), Error> {
    match set {
        Ok(_) | Err(Error::NoSet { .. }) => Ok(()),
        Err(e) => Err(e.clone()),
    }
}
