//! The migrating modes: plan every selected database read-only, then act on each project as one
//! run (for real, as a dry run, or as a rehearsal on a copy).
//!
//! The databases of one project (and the `$AIFP_HOME` core beside it) commit together: each
//! plan runs in its own open transaction, and only when every one of them got to COMMIT is any
//! committed. With `--scan` each project is a run of its own, and one that fails leaves the
//! others to go ahead.

use rusqlite::Connection;

use super::*;
use crate::apply::{Applied, Pending, Request};
use crate::converge;
use crate::options::Goal;
use crate::plan::Step;
use crate::report::{AccountEntry, RunStatus};
use crate::scratch;

/// One selected database after planning: absent, or with a resolved plan.
enum Selected<'s> {
    Missing(DbName, Option<PathBuf>),
    Planned(Planned<'s>),
    /// Planning failed (in a `--scan`, where the other projects go ahead).
    Unplanned(DbName, PathBuf, Error),
}

/// One database's resolved plan, made before anything is written.
struct Planned<'s> {
    name: DbName,
    path: PathBuf,
    set: Option<&'s Set>,
    from: Version,
    steps: Vec<Step>,
}

/// What each database is taken toward, with the target schema built once for the run.
pub(super) enum Aim {
    Version(Target),
    Schema(scratch::Target),
    Repair,
}

pub(super) fn migrate(
    opts: &Options,
    start: &Path,
    selected: Vec<&Location>,
    only: Option<DbName>,
    goal: &Goal,
    kind: RunKind,
    progress: &Reporter,
) -> Result<Outcome, Error> {
    let aim = match goal {
        Goal::Version(t) => Aim::Version(t.clone()),
        Goal::Schema(file) => Aim::Schema(scratch::target_file(file)?),
        Goal::Repair => Aim::Repair,
    };
    // Phase 1, read-only: every selected database, every rule, before any write anywhere.
    let sets = load_sets(&opts.root, &selected);
    let mut planned = Vec::new();
    let mut errors = Vec::new();
    for loc in selected {
        match plan_one(&sets[&loc.name], loc, start, only.is_some(), &aim, kind) {
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
        0 => Ok(act(planned, &aim, opts, kind, progress)),
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
    aim: &Aim,
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
    // Converging to a file needs no set; following scripts does.
    let set = match (set, aim) {
        (Ok(set), _) => Some(set),
        (Err(Error::NoSet { .. }), Aim::Schema(_)) => None,
        (Err(e), _) => return Err(e.clone()),
    };
    let steps = steps(set, aim, &conn, path, &from)?;
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
        steps,
    }))
}

/// The steps from `from` toward `aim` for the database `conn` has open: the planner asked both
/// while planning and again under the write lock.
fn steps(
    set: Option<&Set>,
    aim: &Aim,
    conn: &Connection,
    path: &Path,
    from: &Version,
) -> Result<Vec<Step>, Error> {
    let read = |conn: &Connection| schema::read(conn).map_err(|e| inspect::classify(path, e));
    match (aim, set) {
        (Aim::Version(target), Some(set)) => {
            let to = plan::resolve(set, from, target).map_err(|e| Error::plan(path, e))?;
            Ok(plan::chain(set, from, &to)
                .map_err(|e| Error::plan(path, e))?
                .into_iter()
                .map(Step::script)
                .collect())
        }
        (Aim::Repair, Some(set)) => {
            let target = scratch::version_target(set, from)?;
            let plan = converge::plan(&read(conn)?, &target.schema, &target.seeds);
            Ok(generated(conn, from, from, &target.origin, plan))
        }
        (Aim::Schema(target), set) => {
            let actual = read(conn)?;
            // Scripts first, as far as they go toward the target, on a database whose schema is
            // the one its version should have: they may move data no comparison can guess.
            let mut scripts = Vec::new();
            let mut at = from.clone();
            let mut schema = actual;
            if let Some(set) = set {
                if scratch::expected(set, from).is_ok_and(|e| e == schema) {
                    let down = target.version < *from;
                    while let Some(s) = set.step_from(&at, down).filter(|s| {
                        if down {
                            s.to >= target.version
                        } else {
                            s.to <= target.version
                        }
                    }) {
                        scripts.push(Step::script(s));
                        at = s.to.clone();
                    }
                    if at != *from {
                        schema = scratch::expected(set, &at)?;
                    }
                }
            }
            let plan = converge::plan(&schema, &target.schema, &target.seeds);
            let rest = generated(conn, &at, &target.version, &target.origin, plan);
            if rest.is_empty() && at == target.version {
                return Ok(scripts);
            }
            // The version row still moves when the schema already matches.
            let rest = if rest.is_empty() {
                generated_empty(&at, &target.version, &target.origin)
            } else {
                rest
            };
            scripts.extend(rest);
            Ok(scripts)
        }
        (_, None) => Err(Error::NoSet {
            root: "<migrations>".into(),
            db: path.display().to_string(),
        }),
    }
}

/// The generated step for `plan`, with its summary's full-text lines counted; none when the
/// plan changes nothing.
fn generated(
    conn: &Connection,
    from: &Version,
    to: &Version,
    origin: &str,
    mut plan: converge::Converge,
) -> Vec<Step> {
    if plan.statements.is_empty() {
        return Vec::new();
    }
    for (index, table) in &plan.fts_built {
        let rows: Option<i64> = conn
            .query_row(&format!("SELECT count(*) FROM {}", crate::sql::quote(table)), [], |r| {
                r.get(0)
            })
            .ok();
        let from_table = format!("(built from {table})");
        for line in plan.summary.iter_mut().filter(|l| l.contains(index.as_str())) {
            if let Some(rows) = rows {
                *line = line.replace(&from_table, &format!("(built from {rows} row(s) of {table})"));
            }
        }
    }
    vec![Step::generated(from, to, origin, plan)]
}

/// A generated step that only moves the version row: the schema is the target's already.
fn generated_empty(from: &Version, to: &Version, origin: &str) -> Vec<Step> {
    let plan = converge::Converge {
        summary: vec!["no schema change: the version row only".into()],
        ..converge::Converge::default()
    };
    let mut step = Step::generated(from, to, origin, plan);
    step.converge = None;
    step.file = format!("record v{to}");
    vec![step]
}

/// One project's databases (with the core beside them): they commit together.
fn groups<'s>(selected: Vec<Selected<'s>>, scan: bool) -> Vec<Vec<Selected<'s>>> {
    let mut out: Vec<(Option<PathBuf>, Vec<Selected<'s>>)> = Vec::new();
    for sel in selected {
        let (name, path) = match &sel {
            Selected::Missing(n, p) => (*n, p.clone()),
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
    aim: &Aim,
    opts: &Options,
    kind: RunKind,
    progress: &Reporter,
) -> Outcome {
    let run_id = history::new_run_id();
    let mut errors = Vec::new();
    let mut databases = Vec::new();
    for group in groups(selected, opts.scan.is_some()) {
        databases.extend(act_on_project(group, aim, opts, kind, &run_id, &mut errors, progress));
    }
    Outcome {
        report: Report::Run { databases },
        errors,
    }
}

fn act_on_project(
    group: Vec<Selected<'_>>,
    aim: &Aim,
    opts: &Options,
    kind: RunKind,
    run_id: &str,
    errors: &mut Vec<Error>,
    progress: &Reporter,
) -> Vec<RunEntry> {
    let mut entries = Vec::new();
    let mut planned = Vec::new();
    for sel in group {
        match sel {
            Selected::Missing(name, path) => {
                let mut entry = RunEntry::new(name, path.as_deref().map(display));
                entry.status = RunStatus::Missing;
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
                let mut entry = RunEntry::new(p.name, Some(display(&p.path)));
                entry.from = Some(p.from.to_string());
                entry.to = Some(p.steps.last().map_or(p.from.to_string(), |s| s.to.to_string()));
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
        return entries;
    }
    match kind {
        RunKind::DryRun => {}
        RunKind::Rehearse => {
            for (i, p) in planned.iter().filter(|(_, p)| !p.steps.is_empty()) {
                rehearse_one(&mut entries[*i], p, aim, opts, run_id, errors, progress);
            }
        }
        RunKind::Real => run_for_real(&mut entries, planned, aim, opts, run_id, errors, progress),
    }
    entries
}

fn rehearse_one(
    entry: &mut RunEntry,
    p: &Planned<'_>,
    aim: &Aim,
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
    };
    let planner = |conn: &Connection, from: &Version| under_lock(p, aim, conn, from);
    match rehearse::rehearse(&p.path, p.set, request, planner, progress) {
        Ok(r) => {
            entry.status = if r.result.is_ok() {
                RunStatus::WouldSucceed
            } else {
                RunStatus::WouldFail
            };
            match &r.result {
                Err(e) => {
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
            entry.error = Some(e.to_string());
        }
    }
}

/// The plan made again under the write lock: a database another run changed meanwhile gets the
/// plan its version now calls for when the goal is the latest (or a schema); for a version
/// resolved while planning (a rollback, a --target), one that moved is refused, never taken
/// down a stale path.
fn under_lock(
    p: &Planned<'_>,
    aim: &Aim,
    conn: &Connection,
    from: &Version,
) -> Result<Vec<Step>, Error> {
    if let Aim::Version(Target::Version(_) | Target::Rollback) = aim {
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
    steps(p.set, aim, conn, &p.path, from)
}

/// Runs every planned database of one project in its own open transaction, then commits them
/// all; a failure anywhere leaves every one of them as it was.
fn run_for_real(
    entries: &mut [RunEntry],
    planned: Vec<(usize, Planned<'_>)>,
    aim: &Aim,
    opts: &Options,
    run_id: &str,
    errors: &mut Vec<Error>,
    progress: &Reporter,
) {
    let mut pending: Vec<(usize, Pending)> = Vec::new();
    let mut failed: Option<(usize, String)> = None;
    for (i, p) in planned.iter().filter(|(_, p)| !p.steps.is_empty()) {
        if failed.is_some() {
            entries[*i].status = RunStatus::Skipped;
            continue;
        }
        let request = Request {
            run_id,
            take_backup: true,
            allow_data_loss: opts.allow_data_loss,
            before: None,
        };
        let planner = |conn: &Connection, from: &Version| under_lock(p, aim, conn, from);
        match apply::begin(&p.path, request, planner, progress) {
            Ok(ready) => pending.push((*i, ready)),
            Err(e) => {
                entries[*i].status = RunStatus::Failed;
                entries[*i].error = Some(drift_hint(p, e.to_string()));
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
        entries[i].reason = Some("rolled back, unchanged: another database failed to commit".into());
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
fn drift_hint(p: &Planned<'_>, message: String) -> String {
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
        format!(
            "{message} (its schema has drifted from v{}'s, the likely cause: run aifp-migrate --db {} --repair first)",
            p.from,
            p.name.as_str()
        )
    } else {
        message
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
