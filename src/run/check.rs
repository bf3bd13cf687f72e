//! `--check`: a read-only report of every database, with drift answered from the cache.

use super::goal::{folder_moves_for, Aim};
use super::*;
use crate::report::{FolderEntry, PackageEntry};
use crate::scratch;

pub(super) fn check(
    opts: &Options,
    ctx: &Ctx,
    found: &discovery::Found,
    selected: Vec<&Location>,
    only: Option<DbName>,
) -> Outcome {
    let sets = load_sets(&opts.root, &selected);
    let mut caches: BTreeMap<DbName, cache::DriftCache> = sets
        .iter()
        .map(|(name, set)| {
            let folder = opts.cache_dir.as_deref();
            let cache = set
                .as_ref()
                .map(|set| cache::DriftCache::open(set, folder))
                .unwrap_or_default();
            (*name, cache)
        })
        .collect();
    let mut plans =
        cache::PlanCache::open(opts.cache_dir.as_deref().filter(|_| ctx.package.is_some()));
    let mut folders = Vec::new();
    let (databases, errors): (Vec<_>, Vec<_>) = selected
        .into_iter()
        .map(|loc| {
            let cache = caches.entry(loc.name).or_default();
            if let (Some(p), Some(path)) = (&ctx.package, loc.path.as_deref()) {
                if loc.name != DbName::AifpCore {
                    announce_move(&mut folders, p.project_folder(), path);
                }
            }
            let with = Checking {
                ctx,
                plans: &mut plans,
                command: migrate_command(opts, Some(loc.name)),
            };
            let (mut entry, error) = check_one(loc, &sets[&loc.name], cache, with);
            entry.repair = (!entry.drift.is_empty()).then(|| repair_command(opts, loc));
            (entry, error)
        })
        .unzip();
    let databases: Vec<CheckEntry> = databases.into_iter().map(with_kind).collect();
    caches.values().for_each(cache::DriftCache::save);
    plans.save();
    if let Some([a, b]) = &found.both {
        folders.push(FolderEntry {
            from: display(a),
            to: display(b),
            status: "both".into(),
            reason: Some(format!(
                "this project holds both {} and {}: a migrating run needs --adopt to know which to keep (aifp-migrate --all --adopt {})",
                display(a),
                display(b),
                found.layout.project_folder
            )),
        });
    }
    let package = ctx.package.as_ref().map(|p| PackageEntry {
        name: p.name.clone(),
        version: p.version.clone(),
        folder: display(&p.folder),
        core: display(&p.core),
        found_by: p.found_by.clone(),
    });
    Outcome {
        report: Report::Check {
            package,
            databases,
            folders,
            command: migrate_command(opts, only),
        },
        errors: errors.into_iter().flatten().collect(),
        notes: Vec::new(),
    }
}

/// A pending entry says whether its steps are scripts or generated, and what a converge changes.
fn with_kind(mut entry: CheckEntry) -> CheckEntry {
    if !entry.pending.is_empty() {
        let converge = entry.pending.iter().any(|s| s.kind == "converge");
        entry.kind = Some(if converge { "converge" } else { "script" });
        entry.summary = entry
            .pending
            .iter()
            .flat_map(|s| s.summary.iter().cloned())
            .collect();
    }
    entry
}

/// The folder move a migrating run would make for the database at `path`, said once.
fn announce_move(folders: &mut Vec<FolderEntry>, package_folder: &str, path: &Path) {
    let Some(folder) = path
        .parent()
        .filter(|_| folder_moves_for(package_folder, path))
    else {
        return;
    };
    let from = display(folder);
    if folders.iter().any(|f| f.from == from) {
        return;
    }
    folders.push(FolderEntry {
        from,
        to: display(&folder.with_file_name(".aimfp-project")),
        status: "planned".into(),
        reason: Some(
            "the installed AIMFP keeps project state in .aimfp-project: aifp-migrate --all migrates the databases, then renames the folder (paths in the databases follow)".into(),
        ),
    });
}

/// One database's report entry, and the error line to print for it, if any.
/// What checking one database needs beyond the database: the run's package, the cache of
/// answers against it, and the command that would migrate the database.
struct Checking<'a> {
    ctx: &'a Ctx,
    plans: &'a mut cache::PlanCache,
    command: String,
}

fn check_one(
    loc: &Location,
    set: &Result<Set, Error>,
    cache: &mut cache::DriftCache,
    with: Checking<'_>,
) -> (CheckEntry, Option<Error>) {
    let command = with.command.as_str();
    let packaged = with.ctx.package.is_some() && loc.name != DbName::AifpCore;
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
        kind: None,
        summary: Vec::new(),
        repair: None,
        reason: None,
        error: None,
    };
    let Some(path) = &loc.path else {
        return missing(entry, set);
    };
    if loc.installed {
        entry.status = CheckStatus::Installed;
        entry.latest = None;
        entry.current = inspect::open_existing(path).ok().flatten().and_then(|c| {
            match inspect::read_version(&c, path) {
                Ok(State::Versioned(v)) => Some(v.to_string()),
                _ => None,
            }
        });
        entry.reason = Some(
            "the installed AIFP's own core database: read for its versions, never migrated or written".into(),
        );
        return (entry, None);
    }
    let failed = |mut entry: CheckEntry, status, e: Error| {
        entry.status = status;
        entry.reason = Some(e.to_string());
        if status == CheckStatus::Error {
            entry.error = Some(e.to_string());
        }
        (entry, Some(e))
    };
    let conn = match in_folder(loc.name, path).and_then(|()| inspect::open_existing(path)) {
        Err(e) => return failed(entry, CheckStatus::Error, e),
        Ok(None) => return missing(entry, set),
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
    if packaged {
        let set = set.as_ref().ok();
        if let Some(set) = set {
            let found = drift_of(set, &conn, Some(&current), cache);
            (entry.drift, entry.matches) = (found.drift, found.matches);
        }
        return match against_package(loc, path, set, &conn, &current, with.ctx, with.plans) {
            Err(e @ Error::AheadOfPackage { .. }) => failed(entry, CheckStatus::Ahead, e),
            Err(e) => failed(entry, CheckStatus::Error, e),
            Ok(planned) => {
                entry.latest = Some(planned.latest);
                entry.pending = planned
                    .steps
                    .into_iter()
                    .map(|(from, to, script, kind, summary)| StepEntry {
                        from,
                        to,
                        script,
                        kind: if kind == "script" {
                            "script"
                        } else {
                            "converge"
                        },
                        summary,
                        label: None,
                        description: None,
                        origin: String::new(),
                        sql: String::new(),
                        ms: None,
                    })
                    .collect();
                entry.status = if entry.pending.is_empty() {
                    CheckStatus::Current
                } else {
                    entry.reason = Some(format!(
                        "its schema differs from the installed package's: run {command} (a backup is made first)"
                    ));
                    CheckStatus::Pending
                };
                (entry, None)
            }
        };
    }
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
            // A report names the scripts; their text belongs to a dry run.
            entry.pending = steps
                .into_iter()
                .map(|s| StepEntry {
                    sql: String::new(),
                    ..step_entry(&plan::Step::script(s))
                })
                .collect();
            entry.status = if entry.pending.is_empty() {
                CheckStatus::Current
            } else {
                entry.reason = Some(format!(
                    "{} step(s) to v{}: run {command} (a backup is made first)",
                    entry.pending.len(),
                    entry.pending.last().map_or("", |s| s.to.as_str())
                ));
                CheckStatus::Pending
            };
            (entry, None)
        }
    }
}

/// What bringing a database to the installed package's schema takes, answered from the cache
/// when the package's schema file and the database are as they were last time.
fn against_package(
    loc: &Location,
    path: &Path,
    set: Option<&Set>,
    conn: &rusqlite::Connection,
    current: &Version,
    ctx: &Ctx,
    plans: &mut cache::PlanCache,
) -> Result<cache::Planned, Error> {
    let package = ctx.package.as_ref();
    let moves = package.is_some_and(|p| folder_moves_for(p.project_folder(), path));
    let key = cache::state(conn, Some(&current.to_string()))
        .ok()
        .map(|state| {
            let schema = ctx.schema_keys.get(&loc.name).map_or("", String::as_str);
            format!("{schema}|{state}|{moves}")
        });
    if let Some(hit) = key.as_ref().and_then(|k| plans.get(k)) {
        ctx.cross_check(loc.name, &hit.latest);
        return Ok(hit.clone());
    }
    let aim = Aim::for_location(&Aim::Version(Target::Latest), ctx, loc)?;
    let latest = match &aim {
        Aim::Package(target, _) => target.version.to_string(),
        _ => String::new(),
    };
    let steps = super::goal::steps(set, &aim, conn, path, current)?;
    let planned = cache::Planned {
        latest,
        steps: steps
            .iter()
            .map(|s| {
                let e = step_entry(s);
                (e.from, e.to, e.script, e.kind.to_string(), e.summary)
            })
            .collect(),
    };
    if let Some(key) = key {
        plans.put(key, planned.clone());
    }
    Ok(planned)
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
    if let Some(expected) = version.and_then(|v| scratch::expected(set, v).ok()) {
        found.drift = schema::diff(&expected, &actual);
    }
    if version.is_none() || !found.drift.is_empty() {
        found.matches = scratch::matching_versions(set, &actual)
            .first()
            .map(ToString::to_string);
    }
    if let Ok(state) = state {
        cache.put(state, found.clone());
    }
    found
}

/// A missing database is no error, but a broken migration set for it is: a typo in a script's
/// name must not go unnoticed because the database happens to be absent.
fn missing(mut entry: CheckEntry, set: &Result<Set, Error>) -> (CheckEntry, Option<Error>) {
    match set_usable(set) {
        Ok(()) => (entry, None),
        Err(e) => {
            entry.status = CheckStatus::Error;
            entry.reason = Some(e.to_string());
            entry.error = Some(e.to_string());
            (entry, Some(e))
        }
    }
}
