//! Knowing before trusting: `--verify` on scratch databases, `--stamp`, and `--init`.

use super::*;
use crate::scratch;

/// `--verify [--db NAME]`: every set (that exists) or the one named, on scratch databases.
pub(super) fn verify_sets(root: &catalog::Root, only: Option<DbName>) -> Result<Outcome, Error> {
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
        notes: Vec::new(),
    })
}

/// `--db NAME --stamp V [--force]`: record V without running scripts.
pub(super) fn stamp(
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
    let expected = scratch::expected(&set, version)?;
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
        let matches = scratch::matching_versions(&set, &actual);
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
        entry.reason = Some(format!(
            "v{version} recorded without running scripts; the backup {} keeps the state before",
            display(&backup)
        ));
    }
    entry.drift = differences;
    Ok(Outcome {
        report: Report::Run {
            databases: vec![entry],
            folders: Vec::new(),
        },
        errors: Vec::new(),
        notes: Vec::new(),
    })
}

/// `--init [--db NAME]`: create the missing databases at their latest version, never overwriting.
pub(super) fn init(
    opts: &Options,
    ctx: &Ctx,
    found: &discovery::Found,
    only: Option<DbName>,
) -> Result<Outcome, Error> {
    let names: Vec<DbName> = match only {
        Some(name) => vec![name],
        None => DbName::ALL[1..].to_vec(),
    };
    let project = found
        .project_folder
        .clone()
        .unwrap_or_else(|| found.start.join(found.layout.project_folder));
    // Outside any project a new folder appears only where the user said: the current folder may
    // be a home folder or a system one.
    let per_project = names.iter().any(|n| *n != DbName::AifpCore);
    if found.project_folder.is_none() && per_project && !opts.start_given {
        return Err(Error::InitWhere {
            start: found.start.clone(),
            folder: project,
        });
    }
    // Decide first: every set loads and builds before the first file is written.
    let mut planned = Vec::new();
    for name in names {
        let dir = match name {
            DbName::AifpCore => opts.core_dir.clone(),
            _ => project.clone(),
        };
        let path = discovery::database_path(&dir, name);
        // With an installed package, its schema file is what a new database is built from.
        if let Some(target) = ctx.target(name)? {
            let built = match inspect::inspect(&path)? {
                State::Missing => {
                    let file = std::path::Path::new(&target.origin);
                    let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, &e))?;
                    Some(scratch::build(&target.origin, &text)?)
                }
                State::Unversioned { .. } | State::Versioned(_) => None,
            };
            planned.push((name, path, target.version.clone(), built));
            continue;
        }
        let set = catalog::load(&opts.root, name.as_str())?;
        let latest = set.latest().cloned().ok_or_else(|| {
            Error::plan(
                &path,
                plan::PlanError::EmptySet {
                    set: set.name.clone(),
                },
            )
        })?;
        // A file that is there but no database (empty, text, damaged) is not "left alone":
        // it is an error naming it, before anything is created.
        let built = match inspect::inspect(&path)? {
            State::Missing => Some(scratch::replay(&set, &latest)?),
            State::Unversioned { .. } | State::Versioned(_) => None,
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
        (entry.status, entry.reason) = if created {
            let why = match &ctx.package {
                Some(p) if name != DbName::AifpCore => format!(
                    "created at v{latest} from the installed {} {}'s schema",
                    p.name, p.version
                ),
                _ => format!("created at v{latest}, the latest version of its migration set"),
            };
            (RunStatus::Created, Some(why))
        } else {
            let why = "the file is there already and was left alone (--init never overwrites)";
            (RunStatus::Exists, Some(why.to_string()))
        };
        databases.push(entry);
    }
    Ok(Outcome {
        report: Report::Run {
            databases,
            folders: Vec::new(),
        },
        errors: Vec::new(),
        notes: Vec::new(),
    })
}
