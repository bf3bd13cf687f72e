//! The migrating modes: plan every selected database read-only, then act on each project as one
//! run (for real, as a dry run, or as a rehearsal on a copy).
//!
//! The databases of one project (and the `$AIFP_HOME` core beside it) commit together: each
//! plan runs in its own open transaction, and only when every one of them got to COMMIT is any
//! committed. With `--scan` each project is a run of its own, and one that fails leaves the
//! others to go ahead.

use rusqlite::Connection;

use std::sync::Arc;

use super::goal::{moves_folder, steps, Aim};
use super::*;
use crate::apply::{Applied, Pending, Request};
use crate::plan::Step;
use crate::report::{AccountEntry, FolderEntry, RunStatus};

/// One selected database after planning: absent, or with a resolved plan.
enum Selected<'s> {
    Missing(DbName, Option<PathBuf>),
    /// The installed package's core: reported, never touched.
    Installed(DbName, PathBuf),
    Planned(Planned<'s>),
    /// Planning failed (in a `--scan`, where the other projects go ahead).
    Unplanned(DbName, PathBuf, Error),
}

/// One database's resolved plan, made before anything is written.
struct Planned<'s> {
    name: DbName,
    path: PathBuf,
    set: Option<&'s Set>,
    aim: Aim,
    from: Version,
    steps: Vec<Step>,
    /// A real run's whole-file check, still running (see `apply::Checking`).
    check: Option<apply::Checking>,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn migrate(
    opts: &Options,
    ctx: &Ctx,
    found: &discovery::Found,
    selected: Vec<&Location>,
    only: Option<DbName>,
    goal: &Goal,
    kind: RunKind,
    progress: &Reporter,
) -> Result<Outcome, Error> {
    let base = match goal {
        Goal::Version(t) => Aim::Version(t.clone()),
        Goal::Schema(file) => Aim::Schema(Arc::new(scratch::target_file(file)?)),
        Goal::Repair => Aim::Repair,
    };
    // A project with both state folders: which to keep is the user's call.
    if let (Some([a, b]), None, None) = (&found.both, &opts.adopt, &opts.scan) {
        return Err(both_folders(a, b));
    }
    // Phase 1, read-only: every selected database, every rule, before any write anywhere.
    let sets = load_sets(&opts.root, &selected);
    let mut planned = Vec::new();
    let mut errors = Vec::new();
    for loc in selected {
        let planned_one = Aim::for_location(&base, ctx, loc).and_then(|aim| {
            plan_one(
                &sets[&loc.name],
                loc,
                &found.start,
                only.is_some(),
                aim,
                kind,
                // In a scan the checks of every project would all run at once: one at a time.
                kind == RunKind::Real && opts.scan.is_none(),
            )
        });
        match planned_one {
            Ok(p) => planned.push(p),
            // With --scan a project that cannot be planned is reported, and the rest go ahead.
            Err(e) if opts.scan.is_some() && loc.path.is_some() => {
                let path = loc.path.clone().unwrap_or_default();
                planned.push(Selected::Unplanned(loc.name, path, e));
            }
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok(act(
            planned,
            found,
            opts,
            kind,
            progress,
            &migrate_command(opts, only),
        )),
        1 => Err(errors.remove(0)),
        _ => Err(Error::Many(errors)),
    }
}

/// The refusal for a project with both state folders, naming each with its versions and rows.
fn both_folders(a: &Path, b: &Path) -> Error {
    let holds = |folder: &Path| {
        let parts: Vec<String> = DbName::ALL[1..]
            .iter()
            .map(|name| {
                let path = folder.join(name.file_name());
                match inspect::open_existing(&path) {
                    Ok(Some(conn)) => {
                        let version = inspect::read_version(&conn, &path)
                            .ok()
                            .and_then(|s| match s {
                                State::Versioned(v) => Some(format!("v{v}")),
                                _ => None,
                            })
                            .unwrap_or_else(|| "unversioned".into());
                        let rows = apply::rows_held(&conn).map_or("?".into(), |n| n.to_string());
                        format!("{} {version}, {rows} rows", name.as_str())
                    }
                    Ok(None) => format!("no {}", name.as_str()),
                    Err(_) => format!("{} unreadable", name.as_str()),
                }
            })
            .collect();
        parts.join("; ")
    };
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    Error::BothFolders {
        root: a.parent().map(Path::to_path_buf).unwrap_or_default(),
        what: format!(
            "{} ({}) and {} ({}): keep one with aifp-migrate --all --adopt {} (or --adopt {}); the other is renamed aside, never deleted",
            a.display(),
            holds(a),
            b.display(),
            holds(b),
            name(a),
            name(b)
        ),
    }
}

/// Resolves one database's plan; `named` is true when the user asked for this database by name,
/// which makes its absence an error. With `defer_check`, the whole-file check goes on in a thread
/// of its own (`apply::Checking`), waited for before the first write.
fn plan_one<'s>(
    set: &'s Result<Set, Error>,
    loc: &Location,
    start: &Path,
    named: bool,
    aim: Aim,
    kind: RunKind,
    defer_check: bool,
) -> Result<Selected<'s>, Error> {
    if let (true, Some(path)) = (loc.installed, &loc.path) {
        return Ok(Selected::Installed(loc.name, path.clone()));
    }
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
    // Converging to a file needs no set; following scripts does.
    let set = match (set, &aim) {
        (Ok(set), _) => Some(set),
        (Err(Error::NoSet { .. }), Aim::Schema(_) | Aim::Package(..)) => None,
        (Err(e), _) => return Err(e.clone()),
    };
    let steps = steps(set, &aim, &conn, path, &from)?;
    let mut check = None;
    if !steps.is_empty() {
        if defer_check {
            // Waited for before the first write: the run meanwhile locks, backs up and counts.
            check = Some(apply::Checking::start(conn, path));
        } else {
            apply::integrity(&conn, path, "before migrating")?;
            drop(conn);
        }
        // Only a real run may open the database for writing to probe its lock.
        apply::preflight(path, kind == RunKind::Real)?;
    }
    Ok(Selected::Planned(Planned {
        name: loc.name,
        path: path.clone(),
        set,
        aim,
        from,
        steps,
        check,
    }))
}

/// One project's databases (with the core beside them): they commit together.
fn groups<'s>(selected: Vec<Selected<'s>>, scan: bool) -> Vec<Vec<Selected<'s>>> {
    let mut out: Vec<(Option<PathBuf>, Vec<Selected<'s>>)> = Vec::new();
    for sel in selected {
        let (name, path) = match &sel {
            Selected::Missing(n, p) => (*n, p.clone()),
            Selected::Installed(n, p) => (*n, Some(p.clone())),
            Selected::Planned(p) => (p.name, Some(p.path.clone())),
            Selected::Unplanned(n, p, _) => (*n, Some(p.clone())),
        };
        // Outside a scan the whole run is one project; in a scan the core is a run of its own.
        let key = match (scan, name) {
            (false, _) => None,
            (true, DbName::AifpCore) => Some(PathBuf::new()),
            (true, _) => path.and_then(|p| p.parent().map(Path::to_path_buf)),
        };
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, group)) => group.push(sel),
            None => out.push((key, vec![sel])),
        }
    }
    out.into_iter().map(|(_, g)| g).collect()
}

/// Phase 2: act on each project's planned databases, in the fixed order.
fn act(
    selected: Vec<Selected<'_>>,
    found: &discovery::Found,
    opts: &Options,
    kind: RunKind,
    progress: &Reporter,
    command: &str,
) -> Outcome {
    let run_id = history::new_run_id();
    let mut errors = Vec::new();
    let mut databases = Vec::new();
    let mut folders = Vec::new();
    for group in groups(selected, opts.scan.is_some()) {
        let (entries, moves) = act_on_project(
            group,
            found,
            opts,
            kind,
            &run_id,
            &mut errors,
            progress,
            command,
        );
        databases.extend(entries);
        folders.extend(moves);
    }
    Outcome {
        report: Report::Run { databases, folders },
        errors,
        notes: Vec::new(),
    }
}

#[allow(clippy::too_many_arguments)]
fn act_on_project(
    group: Vec<Selected<'_>>,
    found: &discovery::Found,
    opts: &Options,
    kind: RunKind,
    run_id: &str,
    errors: &mut Vec<Error>,
    progress: &Reporter,
    command: &str,
) -> (Vec<RunEntry>, Vec<FolderEntry>) {
    let mut entries = Vec::new();
    let mut planned = Vec::new();
    let mut moves = Vec::new();
    for sel in group {
        match sel {
            Selected::Missing(name, path) => {
                let mut entry = RunEntry::new(name, path.as_deref().map(display));
                entry.status = RunStatus::Missing;
                entries.push(entry);
            }
            Selected::Installed(name, path) => {
                let mut entry = RunEntry::new(name, Some(display(&path)));
                entry.status = RunStatus::Installed;
                entry.reason = Some(
                    "the installed AIFP's own core database: read for its versions, never migrated or written".into(),
                );
                entries.push(entry);
            }
            Selected::Unplanned(name, path, e) => {
                let mut entry = RunEntry::new(name, Some(display(&path)));
                entry.status = RunStatus::Error;
                entry.error = Some(e.to_string());
                errors.push(e);
                entries.push(entry);
            }
            Selected::Planned(p) => {
                if moves.is_empty() {
                    moves = folder_moves(&p, found, opts);
                }
                let mut entry = RunEntry::new(p.name, Some(display(&p.path)));
                entry.from = Some(p.from.to_string());
                entry.to = Some(
                    p.steps
                        .last()
                        .map_or(p.from.to_string(), |s| s.to.to_string()),
                );
                entry.steps = p.steps.iter().map(step_entry).collect();
                entry.status = if p.steps.is_empty() {
                    RunStatus::Current
                } else {
                    RunStatus::Planned
                };
                entries.push(entry);
                planned.push((entries.len() - 1, p));
            }
        }
    }
    // In a scan, a project with a database that could not be planned is left alone whole.
    if entries.iter().any(|e| e.status == RunStatus::Error) {
        for (i, _) in &planned {
            if entries[*i].status == RunStatus::Planned {
                entries[*i].status = RunStatus::Skipped;
            }
        }
        return (entries, Vec::new());
    }
    match kind {
        RunKind::DryRun => {
            for (i, _) in &planned {
                if entries[*i].status == RunStatus::Planned {
                    entries[*i].reason = Some(format!(
                        "a dry run changes nothing: run {command} to migrate (a backup is made first)"
                    ));
                }
            }
        }
        RunKind::Rehearse => {
            for (i, p) in planned.iter().filter(|(_, p)| !p.steps.is_empty()) {
                rehearse_one(&mut entries[*i], p, opts, run_id, errors, progress);
                if entries[*i].status == RunStatus::WouldSucceed {
                    entries[*i].reason = Some(format!(
                        "the plan succeeded on a copy: run {command} to migrate for real"
                    ));
                }
            }
            moves.clear();
        }
        RunKind::Real => {
            run_for_real(&mut entries, planned, opts, run_id, errors, progress);
            let failed = entries
                .iter()
                .any(|e| matches!(e.status, RunStatus::Failed | RunStatus::PutBack));
            for m in &mut moves {
                if failed {
                    m.status = "not moved".into();
                    m.reason = Some(
                        "a database of the project failed, so its folders stay as they were".into(),
                    );
                } else {
                    move_folder(m, errors);
                }
            }
        }
    }
    (entries, moves)
}

/// What happens to the project's state folders after its databases commit: the one not adopted
/// is set aside, and a `.aifp-project` the installed AIMFP no longer reads becomes `.aimfp-project`.
fn folder_moves(p: &Planned<'_>, found: &discovery::Found, opts: &Options) -> Vec<FolderEntry> {
    let Some(folder) = p.path.parent().filter(|_| p.name != DbName::AifpCore) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let (Some(both), Some(_)) = (&found.both, &opts.adopt) {
        if let Some(other) = both.iter().find(|f| f.as_path() != folder) {
            let mut aside = other.clone().into_os_string();
            aside.push(format!(".replaced_{}", backup::utc_stamp()));
            out.push(FolderEntry {
                from: display(other),
                to: display(Path::new(&aside)),
                status: "planned".into(),
                reason: Some(format!(
                    "--adopt {}: the other folder is set aside, never deleted",
                    folder
                        .file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default()
                )),
            });
        }
    }
    if moves_folder(&p.aim, &p.path) {
        let to = folder.with_file_name(".aimfp-project");
        out.push(FolderEntry {
            from: display(folder),
            to: display(&to),
            status: "planned".into(),
            reason: Some(
                "the installed AIMFP keeps project state in .aimfp-project; paths in the databases follow".into(),
            ),
        });
    }
    out
}

/// Renames a folder in one step, never over an existing one.
fn move_folder(m: &mut FolderEntry, errors: &mut Vec<Error>) {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(
        CWD,
        m.from.as_str(),
        CWD,
        m.to.as_str(),
        RenameFlags::NOREPLACE,
    ) {
        Ok(()) => m.status = "moved".into(),
        Err(e) => {
            m.status = "failed".into();
            let message = format!(
                "{} could not be renamed to {} ({e}); its databases are migrated where they are: rename the folder yourself",
                m.from, m.to
            );
            m.reason = Some(message.clone());
            errors.push(Error::Environment(message));
        }
    }
}

fn rehearse_one(
    entry: &mut RunEntry,
    p: &Planned<'_>,
    opts: &Options,
    run_id: &str,
    errors: &mut Vec<Error>,
    progress: &Reporter,
) {
    for s in &mut entry.steps {
        s.sql.clear();
    }
    let request = Request {
        run_id,
        take_backup: false,
        allow_data_loss: opts.allow_data_loss,
        before: Some(&p.path),
        check: None,
    };
    let planner = |conn: &Connection, from: &Version| under_lock(p, conn, from);
    match rehearse::rehearse(&p.path, p.set, request, planner, progress) {
        Ok(r) => {
            entry.status = if r.result.is_ok() {
                RunStatus::WouldSucceed
            } else {
                RunStatus::WouldFail
            };
            match &r.result {
                Err(e) => {
                    entry.reason = Some(e.clone());
                    entry.error = Some(e.clone());
                    errors.push(Error::Rehearsal(e.clone()));
                }
                Ok(done) => entry.account = account_entry(done),
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

/// The plan made again under the write lock: a database another run changed meanwhile gets the
/// plan its version now calls for when the goal is the latest (or a schema); for a version
/// resolved while planning (a rollback, a --target), one that moved is refused, never taken
/// down a stale path.
fn under_lock(p: &Planned<'_>, conn: &Connection, from: &Version) -> Result<Vec<Step>, Error> {
    if let Aim::Version(Target::Version(_) | Target::Rollback) = &p.aim {
        let planned_to = p.steps.last().map(|s| &s.to);
        if from != &p.from {
            if Some(from) == planned_to {
                return Ok(Vec::new());
            }
            return Err(Error::ChangedMeanwhile {
                path: p.path.clone(),
                planned: p.from.to_string(),
                found: from.to_string(),
            });
        }
        let to = planned_to.cloned().unwrap_or_else(|| from.clone());
        let aim = Aim::Version(Target::Version(to));
        return steps(p.set, &aim, conn, &p.path, from);
    }
    steps(p.set, &p.aim, conn, &p.path, from)
}

/// Runs every planned database of one project in its own open transaction, then commits them
/// all; a failure anywhere leaves every one of them as it was.
fn run_for_real(
    entries: &mut [RunEntry],
    planned: Vec<(usize, Planned<'_>)>,
    opts: &Options,
    run_id: &str,
    errors: &mut Vec<Error>,
    progress: &Reporter,
) {
    let mut pending: Vec<(usize, Pending)> = Vec::new();
    let mut failed: Option<(usize, String)> = None;
    // Every database is checked before the first write to any of them: the first one's check
    // is waited for inside its run (after its backup), the others' here.
    let mut to_run = planned.iter().filter(|(_, p)| !p.steps.is_empty());
    for (i, p) in to_run.clone().skip(1) {
        if let Some(Err(e)) = p.check.as_ref().map(apply::Checking::wait) {
            entries[*i].status = RunStatus::Error;
            entries[*i].error = Some(e.to_string());
            errors.push(e);
            for (j, _) in to_run.by_ref().filter(|(j, _)| j != i) {
                entries[*j].status = RunStatus::Skipped;
                entries[*j].reason = Some(
                    "not run, because another database of this project failed its check; nothing was changed here".into(),
                );
            }
            return;
        }
    }
    for (i, p) in to_run {
        if failed.is_some() {
            entries[*i].status = RunStatus::Skipped;
            entries[*i].reason = Some(
                "not run, because another database of this project failed; nothing was changed here: fix that error, then run again".into(),
            );
            continue;
        }
        let request = Request {
            run_id,
            take_backup: true,
            allow_data_loss: opts.allow_data_loss,
            before: None,
            check: p.check.as_ref(),
        };
        let planner = |conn: &Connection, from: &Version| under_lock(p, conn, from);
        let begun = crate::interrupt::check(&p.path)
            .and_then(|()| apply::begin(&p.path, request, planner, progress))
            .map_err(|e| crate::interrupt::explain(&p.path, e));
        match begun {
            Ok(ready) => pending.push((*i, ready)),
            Err(e) => {
                let e = drift_hint(p, e);
                // Found damaged before its first write: refused, as at planning.
                let refused = matches!(
                    e,
                    Error::Damaged { .. }
                        | Error::IntegrityFailed {
                            when: "before migrating",
                            ..
                        }
                );
                entries[*i].status = if refused {
                    RunStatus::Error
                } else {
                    RunStatus::Failed
                };
                entries[*i].error = Some(e.to_string());
                entries[*i].reason = entries[*i].error.clone();
                failed = Some((*i, entries[*i].name.to_string()));
                errors.push(e);
            }
        }
    }
    if let Some((_, who)) = &failed {
        for (i, ready) in pending {
            ready.abandon();
            entries[i].status = RunStatus::Skipped;
            entries[i].reason = Some(format!(
                "rolled back, unchanged: {who} failed, and a project's databases migrate together"
            ));
        }
        return;
    }
    let mut committed: Vec<(usize, Applied)> = Vec::new();
    let mut queue = pending.into_iter();
    for (i, ready) in queue.by_ref() {
        match ready.commit() {
            Ok(done) => {
                fill(&mut entries[i], &done);
                committed.push((i, done));
            }
            Err(e) => {
                entries[i].status = RunStatus::Failed;
                entries[i].error = Some(e.to_string());
                entries[i].reason = Some(e.to_string());
                let who = entries[i].name;
                errors.push(e);
                // Those committed already go back to where they were, from this run's backups.
                for (j, done) in &committed {
                    put_back(&mut entries[*j], done, who, errors);
                }
                break;
            }
        }
    }
    for (i, ready) in queue {
        ready.abandon();
        entries[i].status = RunStatus::Skipped;
        entries[i].reason =
            Some("rolled back, unchanged: another database failed to commit".into());
    }
}

fn put_back(entry: &mut RunEntry, done: &Applied, who: &str, errors: &mut Vec<Error>) {
    let Some(backup) = &done.backup else { return };
    let path = PathBuf::from(entry.path.clone().unwrap_or_default());
    match apply::put_back(&path, backup) {
        Ok(()) => {
            entry.status = RunStatus::PutBack;
            entry.to = entry.from.clone();
            entry.reason = Some(format!(
                "committed, then put back from {} because {who} failed to commit",
                backup.display()
            ));
        }
        Err(e) => {
            entry.status = RunStatus::Failed;
            entry.error = Some(format!(
                "committed, but putting it back from {} failed: {e}; restore it with aifp-migrate --db {} --restore --from {}",
                backup.display(),
                entry.name,
                backup.display()
            ));
            errors.push(e);
        }
    }
}

/// A script that fails on a drifted database: the drift is the likely cause.
fn drift_hint(p: &Planned<'_>, e: Error) -> Error {
    if !matches!(e, Error::StepFailed { .. }) {
        return e;
    }
    let drifted = p.set.is_some_and(|set| {
        let actual = inspect::open_existing(&p.path)
            .ok()
            .flatten()
            .and_then(|c| schema::read(&c).ok());
        match (actual, scratch::expected(set, &p.from)) {
            (Some(a), Ok(e)) => a != e,
            _ => false,
        }
    });
    if drifted && p.steps.iter().any(|s| s.converge.is_none()) {
        Error::Hinted {
            error: Box::new(e),
            hint: format!(
                "its schema has drifted from v{}'s, the likely cause: run aifp-migrate --db {} --repair first",
                p.from,
                p.name.as_str()
            ),
        }
    } else {
        e
    }
}

fn fill(entry: &mut RunEntry, done: &Applied) {
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
            entry.name
        ));
    }
    let planned = std::mem::take(&mut entry.steps);
    entry.steps = done
        .steps
        .iter()
        .map(|s| {
            let mut e = planned
                .iter()
                .find(|p| p.script == s.file)
                .cloned()
                .unwrap_or_else(|| done_entry(s));
            e.sql.clear();
            e.ms = Some(u64::try_from(s.took.as_millis()).unwrap_or(u64::MAX));
            e
        })
        .collect();
    entry.account = account_entry(done);
}

fn account_entry(done: &Applied) -> Option<AccountEntry> {
    let a = &done.account;
    let empty = a.lost.is_empty()
        && a.broken_before.is_empty()
        && a.sequences.is_empty()
        && a.fts_built.is_empty();
    (!empty).then(|| AccountEntry {
        account: a.clone(),
        kept_in: done.backup.as_deref().map(display),
    })
}

fn done_entry(s: &apply::StepDone) -> StepEntry {
    StepEntry {
        from: s.from.to_string(),
        to: s.to.to_string(),
        script: s.file.clone(),
        kind: s.kind,
        summary: Vec::new(),
        label: None,
        description: None,
        origin: String::new(),
        sql: String::new(),
        ms: Some(u64::try_from(s.took.as_millis()).unwrap_or(u64::MAX)),
    }
}
