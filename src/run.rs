//! One run of the tool: discover, inspect, plan every selected database, then act (or only report).
//!
//! Decide first, then act: every database is opened read-only and its whole plan resolved before
//! the first write anywhere, so a plan error in any of them writes nothing at all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::apply;
use crate::backup;
use crate::cache;
use crate::catalog::{self, Script, Set};
use crate::discovery::{self, DbName, Location};
use crate::error::Error;
use crate::history;
use crate::inspect::{self, State};
use crate::options::{Mode, Options, RunKind};
use crate::plan::{self, Target};
use crate::progress::Reporter;
use crate::rehearse;
use crate::report::{
    BackupEntry, CheckEntry, CheckStatus, RehearsalEntry, Report, RestoreEntry, RunEntry,
    RunStatus, StepEntry, VerifyEntry,
};
use crate::restore;
use crate::schema;
use crate::verify;
use crate::version::Version;

/// The report of a run, and the error lines that go to stderr beside it.
#[derive(Debug)]
pub struct Outcome {
    pub report: Report,
    pub errors: Vec<Error>,
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

    let mut found = discovery::discover(&opts.core_dir, &opts.start);
    if let Some(dir) = &opts.scan {
        if !dir.is_dir() {
            return Err(Error::ScanDirMissing(dir.clone()));
        }
        found.locations = discovery::scan(&opts.core_dir, dir);
    }
    match &opts.mode {
        Mode::Check { only } => Ok(check(opts, select(&found.locations, *only))),
        Mode::Migrate { only, target, kind } => migrate(
            opts,
            &found.start,
            select(&found.locations, *only),
            *only,
            target,
            *kind,
            progress,
        ),
        Mode::Restore {
            only: Some(name),
            from,
        } => restore_one(&found, *name, from.as_deref()),
        Mode::Restore { only: None, .. } => restore_last_run(&found),
        Mode::ListBackups { only } => list_backups(select(&found.locations, *only)),
        Mode::PruneBackups { only, keep } => prune_backups(select(&found.locations, *only), *keep),
        Mode::Verify { only } => verify_sets(&opts.root, *only),
        Mode::Stamp { db, version, force } => stamp(&opts.root, &found, *db, version, *force),
        Mode::Init { only } => init(opts, &found, *only),
    }
}

fn select(locations: &[Location], only: Option<DbName>) -> Vec<&Location> {
    locations
        .iter()
        .filter(|l| only.is_none_or(|n| n == l.name))
        .collect()
}

fn step_entry(s: &Script) -> StepEntry {
    StepEntry {
        from: s.from.to_string(),
        to: s.to.to_string(),
        script: s.file.clone(),
        label: s.label().map(str::to_string),
        description: s.description().map(str::to_string),
        origin: s.origin.clone(),
        sql: s.sql.clone(),
        ms: None,
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

/// The migration set of each database name the selected locations need, loaded once per run
/// (a scan may select thousands of databases of the same four kinds).
fn load_sets(root: &catalog::Root, selected: &[&Location]) -> BTreeMap<DbName, Result<Set, Error>> {
    let mut sets = BTreeMap::new();
    for loc in selected {
        sets.entry(loc.name)
            .or_insert_with(|| catalog::load(root, loc.name.as_str()));
    }
    sets
}

fn check(opts: &Options, selected: Vec<&Location>) -> Outcome {
    let sets = load_sets(&opts.root, &selected);
    let mut caches: BTreeMap<DbName, cache::DriftCache> = sets
        .iter()
        .map(|(name, set)| {
            let cache = set
                .as_ref()
                .map(cache::DriftCache::open)
                .unwrap_or_default();
            (*name, cache)
        })
        .collect();
    let (databases, errors): (Vec<_>, Vec<_>) = selected
        .into_iter()
        .map(|loc| {
            let cache = caches.entry(loc.name).or_default();
            check_one(loc, &sets[&loc.name], cache)
        })
        .unzip();
    caches.values().for_each(cache::DriftCache::save);
    Outcome {
        report: Report::Check { databases },
        errors: errors.into_iter().flatten().collect(),
    }
}

/// One database's report entry, and the error line to print for it, if any.
fn check_one(
    loc: &Location,
    set: &Result<Set, Error>,
    cache: &mut cache::DriftCache,
) -> (CheckEntry, Option<Error>) {
    let mut entry = CheckEntry {
        name: loc.name.as_str(),
        path: loc.path.as_deref().map(display),
        status: CheckStatus::Missing,
        current: None,
        latest: set
            .as_ref()
            .ok()
            .and_then(Set::latest)
            .map(ToString::to_string),
        pending: Vec::new(),
        drift: Vec::new(),
        matches: None,
        changed_scripts: Vec::new(),
        error: None,
    };
    let Some(path) = &loc.path else {
        return (entry, None);
    };
    let failed = |mut entry: CheckEntry, status, e: Error| {
        entry.status = status;
        if status == CheckStatus::Error {
            entry.error = Some(e.to_string());
        }
        (entry, Some(e))
    };
    let conn = match in_folder(loc.name, path).and_then(|()| inspect::open_existing(path)) {
        Err(e) => return failed(entry, CheckStatus::Error, e),
        Ok(None) => return (entry, None),
        Ok(Some(conn)) => conn,
    };
    let current = match inspect::read_version(&conn, path) {
        Err(e) => return failed(entry, CheckStatus::Error, e),
        Ok(State::Missing) => return (entry, None),
        Ok(State::Unversioned { what }) => {
            // Which version it is, if its schema says so exactly: the one to --stamp.
            if let Ok(set) = set {
                entry.matches = drift_of(set, &conn, None, cache).matches;
            }
            let e = Error::Unversioned {
                path: path.clone(),
                what,
            };
            return failed(entry, CheckStatus::Unversioned, e);
        }
        Ok(State::Versioned(v)) => v,
    };
    entry.current = Some(current.to_string());
    let set = match set {
        Ok(set) => set,
        Err(e) => return failed(entry, CheckStatus::Error, e.clone()),
    };
    let found = drift_of(set, &conn, Some(&current), cache);
    (entry.drift, entry.matches) = (found.drift, found.matches);
    // A history that cannot be read is no reason to fail a check.
    entry.changed_scripts = history::changed_scripts(&conn, set).unwrap_or_default();
    let steps = plan::resolve(set, &current, &Target::Latest)
        .and_then(|latest| plan::chain(set, &current, &latest));
    match steps {
        Err(source) => {
            let status = match source {
                plan::PlanError::Ahead { .. } => CheckStatus::Ahead,
                _ => CheckStatus::Error,
            };
            let e = Error::plan(path, source);
            failed(entry, status, e)
        }
        Ok(steps) => {
            entry.pending = steps.into_iter().map(step_entry).collect();
            entry.status = if entry.pending.is_empty() {
                CheckStatus::Current
            } else {
                CheckStatus::Pending
            };
            (entry, None)
        }
    }
}

/// How the schema of the database `conn` has open differs from the one its recorded `version`
/// should have, and which version's it has exactly when it is not its own (or there is none).
/// Answered from the cache when the set and the schema are as they were last time.
fn drift_of(
    set: &Set,
    conn: &rusqlite::Connection,
    version: Option<&Version>,
    cache: &mut cache::DriftCache,
) -> cache::Found {
    let state = cache::state(conn, version.map(ToString::to_string).as_deref());
    if let Some(found) = state.as_ref().ok().and_then(|s| cache.get(s)) {
        return found.clone();
    }
    let Ok(actual) = schema::read(conn) else {
        return cache::Found::default();
    };
    let mut found = cache::Found::default();
    if let Some(expected) = version.and_then(|v| schema::expected(set, v).ok()) {
        found.drift = schema::diff(&expected, &actual);
    }
    if version.is_none() || !found.drift.is_empty() {
        found.matches = schema::matching_versions(set, &actual)
            .first()
            .map(ToString::to_string);
    }
    if let Ok(state) = state {
        cache.put(state, found.clone());
    }
    found
}

/// One selected database after planning: absent, or with a resolved plan.
enum Selected<'s> {
    Missing(DbName, Option<PathBuf>),
    Planned(Planned<'s>),
}

/// One database's resolved plan, made before anything is written.
struct Planned<'s> {
    name: DbName,
    path: PathBuf,
    set: &'s Set,
    from: Version,
    to: Version,
    steps: Vec<StepEntry>,
}

fn migrate(
    opts: &Options,
    start: &Path,
    selected: Vec<&Location>,
    only: Option<DbName>,
    target: &Target,
    kind: RunKind,
    progress: &Reporter,
) -> Result<Outcome, Error> {
    // Phase 1, read-only: every selected database, every rule, before any write anywhere.
    let sets = load_sets(&opts.root, &selected);
    let mut planned = Vec::new();
    let mut errors = Vec::new();
    for loc in selected {
        match plan_one(&sets[&loc.name], loc, start, only.is_some(), target, kind) {
            Ok(p) => planned.push(p),
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok(act(planned, target, kind, progress)),
        1 => Err(errors.remove(0)),
        _ => Err(Error::Many(errors)),
    }
}

/// Resolves one database's plan; `named` is true when the user asked for this database by name,
/// which makes its absence an error.
fn plan_one<'s>(
    set: &'s Result<Set, Error>,
    loc: &Location,
    start: &Path,
    named: bool,
    target: &Target,
    kind: RunKind,
) -> Result<Selected<'s>, Error> {
    let Some(path) = &loc.path else {
        if named {
            return Err(Error::NoProject {
                db: loc.name.as_str().to_string(),
                start: display(start),
            });
        }
        return Ok(Selected::Missing(loc.name, None));
    };
    in_folder(loc.name, path)?;
    let Some(conn) = inspect::open_existing(path)? else {
        if named {
            return Err(Error::Missing {
                db: loc.name.file_name(),
                path: display(path),
                hint: match loc.name {
                    DbName::AifpCore => {
                        "install AIFP, or set AIFP_HOME to the folder that holds it"
                    }
                    _ => "run AIFP in this project first, or pass --project-dir",
                },
            });
        }
        return Ok(Selected::Missing(loc.name, Some(path.clone())));
    };
    let from = inspect::require_version(&conn, path)?;
    let set = set.as_ref().map_err(Clone::clone)?;
    let to = plan::resolve(set, &from, target).map_err(|e| Error::plan(path, e))?;
    let steps: Vec<StepEntry> = plan::chain(set, &from, &to)
        .map_err(|e| Error::plan(path, e))?
        .into_iter()
        .map(step_entry)
        .collect();
    if !steps.is_empty() {
        apply::integrity(&conn, path, "before migrating")?;
        drop(conn);
        // Only a real run may open the database for writing to probe its lock.
        apply::preflight(path, kind == RunKind::Real)?;
    }
    Ok(Selected::Planned(Planned {
        name: loc.name,
        path: path.clone(),
        set,
        from,
        to,
        steps,
    }))
}

/// Phase 2: act on each planned database in the fixed order, stopping at the first failure.
fn act(
    selected: Vec<Selected<'_>>,
    target: &Target,
    kind: RunKind,
    progress: &Reporter,
) -> Outcome {
    let run_id = history::new_run_id();
    let mut failed = false;
    let mut errors = Vec::new();
    let databases = selected
        .into_iter()
        .map(|sel| {
            let p = match sel {
                Selected::Missing(name, path) => {
                    let mut entry = RunEntry::new(name, path.as_deref().map(display));
                    entry.status = RunStatus::Missing;
                    return entry;
                }
                Selected::Planned(p) => p,
            };
            let mut entry = RunEntry::new(p.name, Some(display(&p.path)));
            entry.from = Some(p.from.to_string());
            entry.to = Some(p.to.to_string());
            // A rollback was resolved to a version while planning, so a second run racing
            // this one finds the database there already and steps no further.
            let target = match target {
                Target::Latest => Target::Latest,
                _ => Target::Version(p.to.clone()),
            };
            if p.steps.is_empty() {
                entry.status = RunStatus::Current;
                return entry;
            }
            match kind {
                RunKind::DryRun => {
                    entry.status = RunStatus::Planned;
                    entry.steps = p.steps;
                }
                RunKind::Rehearse => {
                    entry.steps = p.steps;
                    match rehearse::rehearse(&p.path, p.set, &target, &run_id, progress) {
                        Ok(r) => {
                            entry.status = if r.result.is_ok() {
                                RunStatus::WouldSucceed
                            } else {
                                RunStatus::WouldFail
                            };
                            if let Err(e) = &r.result {
                                entry.error = Some(e.clone());
                            }
                            entry.rehearsal = Some(RehearsalEntry {
                                copy_needs_bytes: r.needed,
                                copied_into: display(&r.folder),
                                schema: r.schema,
                                drift: r.drift,
                            });
                        }
                        Err(e) => {
                            entry.status = RunStatus::WouldFail;
                            entry.error = Some(e.to_string());
                        }
                    }
                }
                RunKind::Real if failed => {
                    entry.status = RunStatus::Skipped;
                    entry.to = entry.from.clone();
                }
                RunKind::Real => {
                    match apply::migrate(&p.path, p.set, &target, &run_id, true, progress) {
                        Ok(done) => {
                            entry.status = if done.steps.is_empty() {
                                RunStatus::Current
                            } else {
                                RunStatus::Migrated
                            };
                            entry.from = Some(done.from.to_string());
                            entry.to = Some(done.to.to_string());
                            entry.backup = done.backup.as_deref().map(display);
                            entry.steps = done.steps.iter().map(done_entry).collect();
                        }
                        Err(e) => {
                            failed = true;
                            entry.status = RunStatus::Failed;
                            entry.error = Some(e.to_string());
                            errors.push(e);
                        }
                    }
                }
            }
            entry
        })
        .collect();
    Outcome {
        report: Report::Run { databases },
        errors,
    }
}

fn done_entry(s: &apply::StepDone) -> StepEntry {
    StepEntry {
        from: s.from.to_string(),
        to: s.to.to_string(),
        script: s.file.clone(),
        label: None,
        description: None,
        origin: String::new(),
        sql: String::new(),
        ms: Some(u64::try_from(s.took.as_millis()).unwrap_or(u64::MAX)),
    }
}

/// The core database's folder comes from AIFP_HOME, which may name a file by mistake (the
/// project folder is found as a directory, so only the core one can be wrong this way).
fn in_folder(name: DbName, path: &Path) -> Result<(), Error> {
    match path.parent() {
        Some(dir) if name == DbName::AifpCore && dir.exists() && !dir.is_dir() => {
            Err(Error::CoreDirNotAFolder(dir.to_path_buf()))
        }
        _ => Ok(()),
    }
}

/// The path of a database asked for by name; outside a project the per-project ones have none.
fn named_path(found: &discovery::Found, name: DbName) -> Result<PathBuf, Error> {
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

fn restore_entry(
    name: DbName,
    path: &Path,
    source: &Path,
    done: restore::Restored,
) -> RestoreEntry {
    RestoreEntry {
        name: name.as_str(),
        path: display(path),
        from: done.before,
        to: done.after,
        restored_from: display(source),
        backup: done.saved_as.as_deref().map(display),
    }
}

/// `--db NAME --restore [--from FILE]`: the newest backup of that database, or FILE.
fn restore_one(
    found: &discovery::Found,
    name: DbName,
    from: Option<&Path>,
) -> Result<Outcome, Error> {
    let path = named_path(found, name)?;
    let source = match from {
        Some(file) => file.to_path_buf(),
        None => backup::list(&path)
            .map_err(|e| Error::io(&path, &e))?
            .pop()
            .map(|b| b.path)
            .ok_or_else(|| Error::NoBackup { path: path.clone() })?,
    };
    let done = restore::restore(&path, &source, &history::new_run_id())?;
    Ok(Outcome {
        report: Report::Restore {
            restored: vec![restore_entry(name, &path, &source, done)],
        },
        errors: Vec::new(),
    })
}

/// `--all --restore`: every database the most recent migrating run changed, from its backups.
fn restore_last_run(found: &discovery::Found) -> Result<Outcome, Error> {
    // What each database recorded last; a database that cannot be read has nothing to say.
    let mut last: Vec<(DbName, PathBuf, String, String)> = Vec::new();
    for loc in &found.locations {
        let Some(path) = &loc.path else { continue };
        let Ok(Some(conn)) = inspect::open_existing(path) else {
            continue;
        };
        if let Ok(Some((run_id, direction))) = history::last_run(&conn) {
            last.push((loc.name, path.clone(), run_id, direction));
        }
    }
    let Some((_, _, latest, direction)) = last.iter().max_by(|a, b| a.2.cmp(&b.2)).cloned() else {
        return Err(Error::NothingToRestore(
            "no migrating run is recorded in any database found: nothing to put back (use --db NAME --restore to restore one database from its newest backup)".into(),
        ));
    };
    if direction == "restore" {
        return Err(Error::NothingToRestore(
            "the most recent run was itself a restore: nothing more to put back (use --db NAME --restore --from FILE to go further back)".into(),
        ));
    }
    // Decide first: every database that run changed, with a backup that passes its check.
    let mut plan = Vec::new();
    let mut errors = Vec::new();
    for (name, path, run_id, _) in last.into_iter().filter(|l| l.2 == latest) {
        let Ok(Some(conn)) = inspect::open_existing(&path) else {
            continue;
        };
        match history::backup_of_run(&conn, &run_id) {
            Ok(Some(source)) => {
                let source = PathBuf::from(source);
                match restore::check_source(&path, &source) {
                    Ok(_) => plan.push((name, path, source)),
                    Err(e) => errors.push(e),
                }
            }
            Ok(None) => {}
            Err(e) => errors.push(Error::sqlite(&path, e)),
        }
    }
    match errors.len() {
        0 => {}
        1 => return Err(errors.remove(0)),
        _ => return Err(Error::Many(errors)),
    }
    let run_id = history::new_run_id();
    let mut restored = Vec::new();
    for (name, path, source) in plan {
        let done = restore::restore(&path, &source, &run_id)?;
        restored.push(restore_entry(name, &path, &source, done));
    }
    Ok(Outcome {
        report: Report::Restore { restored },
        errors: Vec::new(),
    })
}

/// Every backup of the selected databases, oldest first within each.
fn backups_of(selected: &[&Location]) -> Result<Vec<(DbName, backup::BackupFile)>, Error> {
    let mut out = Vec::new();
    for loc in selected {
        let Some(path) = &loc.path else { continue };
        let list = backup::list(path).map_err(|e| Error::io(path, &e))?;
        out.extend(list.into_iter().map(|b| (loc.name, b)));
    }
    Ok(out)
}

fn backup_entry(name: DbName, b: &backup::BackupFile) -> BackupEntry {
    BackupEntry {
        name: name.as_str(),
        file: display(&b.path),
        time: b.time(),
        version: match inspect::inspect(&b.path) {
            Ok(State::Versioned(v)) => Some(v.to_string()),
            _ => None,
        },
        size: b.size,
    }
}

/// `--list-backups [--db NAME]`.
fn list_backups(selected: Vec<&Location>) -> Result<Outcome, Error> {
    let backups = backups_of(&selected)?
        .iter()
        .map(|(name, b)| backup_entry(*name, b))
        .collect();
    Ok(Outcome {
        report: Report::Backups { backups },
        errors: Vec::new(),
    })
}

/// `--prune-backups --keep N [--db NAME]`: only files named as backups are ever deleted.
fn prune_backups(selected: Vec<&Location>, keep: usize) -> Result<Outcome, Error> {
    let all = backups_of(&selected)?;
    let (mut deleted, mut kept) = (Vec::new(), Vec::new());
    for name in DbName::ALL {
        let mine: Vec<&backup::BackupFile> = all
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, b)| b)
            .collect();
        let cut = mine.len().saturating_sub(keep);
        for (i, b) in mine.into_iter().enumerate() {
            let entry = backup_entry(name, b);
            if i < cut {
                std::fs::remove_file(&b.path).map_err(|e| Error::io(&b.path, &e))?;
                deleted.push(entry);
            } else {
                kept.push(entry);
            }
        }
    }
    Ok(Outcome {
        report: Report::Pruned { deleted, kept },
        errors: Vec::new(),
    })
}

/// `--verify [--db NAME]`: every set (that exists) or the one named, on scratch databases.
fn verify_sets(root: &catalog::Root, only: Option<DbName>) -> Result<Outcome, Error> {
    let mut sets = Vec::new();
    for name in DbName::ALL
        .into_iter()
        .filter(|n| only.is_none_or(|o| o == *n))
    {
        match catalog::load(root, name.as_str()) {
            Ok(set) => sets.push(VerifyEntry {
                name: name.as_str(),
                steps: verify::verify_set(&set),
            }),
            Err(Error::NoSet { .. }) if only.is_none() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Outcome {
        report: Report::Verify { sets },
        errors: Vec::new(),
    })
}

/// `--db NAME --stamp V [--force]`: record V without running scripts.
fn stamp(
    root: &catalog::Root,
    found: &discovery::Found,
    name: DbName,
    version: &Version,
    force: bool,
) -> Result<Outcome, Error> {
    let path = named_path(found, name)?;
    let Some(conn) = inspect::open_existing(&path)? else {
        return Err(Error::Missing {
            db: name.file_name(),
            path: display(&path),
            hint: "there is nothing to stamp",
        });
    };
    let set = catalog::load(root, name.as_str())?;
    let expected = schema::expected(&set, version)?;
    let actual = schema::read(&conn).map_err(|e| inspect::classify(&path, e))?;
    let differences = schema::diff(&expected, &actual);
    let before = match inspect::read_version(&conn, &path) {
        Ok(State::Versioned(v)) => Some(v),
        _ => None,
    };
    let mut entry = RunEntry::new(name, Some(display(&path)));
    entry.from = before.as_ref().map(ToString::to_string);
    entry.to = Some(version.to_string());
    if before.as_ref() == Some(version) && differences.is_empty() {
        entry.status = RunStatus::Current;
    } else if !differences.is_empty() && !force {
        let matches = schema::matching_versions(&set, &actual);
        return Err(Error::StampMismatch {
            path,
            version: version.to_string(),
            count: differences.len(),
            first: differences[0].clone(),
            hint: match matches.first() {
                Some(v) => {
                    format!("its schema is that of v{v}; stamp that instead, or pass --force")
                }
                None => "fix the schema, or pass --force to record the version anyway".into(),
            },
        });
    } else {
        drop(conn);
        apply::preflight(&path, true)?;
        let backup = apply::stamp(&path, version, &history::new_run_id())?;
        entry.status = RunStatus::Stamped;
        entry.backup = Some(display(&backup));
    }
    entry.drift = differences;
    Ok(Outcome {
        report: Report::Run {
            databases: vec![entry],
        },
        errors: Vec::new(),
    })
}

/// `--init [--db NAME]`: create the missing databases at their latest version, never overwriting.
fn init(opts: &Options, found: &discovery::Found, only: Option<DbName>) -> Result<Outcome, Error> {
    let names: Vec<DbName> = match only {
        Some(name) => vec![name],
        None => DbName::ALL[1..].to_vec(),
    };
    let project = found
        .project_folder
        .clone()
        .unwrap_or_else(|| found.start.join(discovery::PROJECT_FOLDER));
    // Decide first: every set loads and builds before the first file is written.
    let mut planned = Vec::new();
    for name in names {
        let dir = match name {
            DbName::AifpCore => opts.core_dir.clone(),
            _ => project.clone(),
        };
        let path = dir.join(name.file_name());
        let set = catalog::load(&opts.root, name.as_str())?;
        let latest = set.latest().cloned().ok_or_else(|| {
            Error::plan(
                &path,
                plan::PlanError::EmptySet {
                    set: set.name.clone(),
                },
            )
        })?;
        let built = if path.exists() {
            None
        } else {
            Some(schema::replay(&set, &latest)?)
        };
        planned.push((name, path, latest, built));
    }
    let mut databases = Vec::new();
    for (name, path, latest, built) in planned {
        let mut entry = RunEntry::new(name, Some(display(&path)));
        entry.to = Some(latest.to_string());
        let created = match built {
            Some(conn) => apply::create(&path, conn)?,
            None => false,
        };
        entry.status = if created {
            RunStatus::Created
        } else {
            RunStatus::Exists
        };
        databases.push(entry);
    }
    Ok(Outcome {
        report: Report::Run { databases },
        errors: Vec::new(),
    })
}
