//! The migrating modes: plan every selected database read-only, then act on each in turn
//! (for real, as a dry run, or as a rehearsal on a copy).

use super::*;

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

pub(super) fn migrate(
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
        0 => Ok(act(
            planned,
            target,
            kind,
            progress,
            &migrate_command(opts, only),
        )),
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
        set_usable(set)?;
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
        set_usable(set)?;
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
        apply::require_foreign_keys_intact(&conn, path)?;
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
    command: &str,
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
                    entry.reason = Some(format!(
                        "a dry run changes nothing: run {command} to migrate (a backup is made first)"
                    ));
                    entry.steps = p.steps;
                }
                RunKind::Rehearse => {
                    entry.steps = p
                        .steps
                        .into_iter()
                        .map(|s| StepEntry {
                            sql: String::new(),
                            ..s
                        })
                        .collect();
                    match rehearse::rehearse(&p.path, p.set, &target, &run_id, progress) {
                        Ok(r) => {
                            entry.status = if r.result.is_ok() {
                                RunStatus::WouldSucceed
                            } else {
                                RunStatus::WouldFail
                            };
                            entry.reason = Some(match &r.result {
                                Ok(_) => format!("the plan succeeded on a copy: run {command} to migrate for real"),
                                Err(e) => e.clone(),
                            });
                            if let Err(e) = &r.result {
                                entry.error = Some(e.clone());
                                errors.push(Error::Rehearsal(e.clone()));
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
                            entry.reason = Some(e.to_string());
                            entry.error = Some(e.to_string());
                        }
                    }
                }
                RunKind::Real if failed => {
                    entry.status = RunStatus::Skipped;
                    entry.to = entry.from.clone();
                    entry.reason = Some(
                        "not run, because an earlier database of this run failed; nothing was changed here: fix that error, then run again".into(),
                    );
                }
                RunKind::Real => {
                    let applied = crate::interrupt::check(&p.path).and_then(|()| {
                        apply::migrate(&p.path, p.set, &target, &run_id, true, progress)
                    });
                    match applied.map_err(|e| crate::interrupt::explain(&p.path, e)) {
                        Ok(done) => {
                            entry.status = if done.steps.is_empty() {
                                RunStatus::Current
                            } else {
                                RunStatus::Migrated
                            };
                            entry.from = Some(done.from.to_string());
                            entry.to = Some(done.to.to_string());
                            entry.backup = done.backup.as_deref().map(display);
                            if let Some(b) = &entry.backup {
                                entry.reason = Some(format!(
                                    "the backup {b} keeps the state before: aifp-migrate --db {} --restore puts it back",
                                    p.name.as_str()
                                ));
                            }
                            entry.steps = done.steps.iter().map(done_entry).collect();
                        }
                        Err(e) => {
                            failed = true;
                            entry.status = RunStatus::Failed;
                            entry.reason = Some(e.to_string());
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
