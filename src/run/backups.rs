//! Backups as a user handles them: restore (one database, or the last run's), list, prune.

use super::*;

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
pub(super) fn restore_one(
    root: &catalog::Root,
    found: &discovery::Found,
    name: DbName,
    from: Option<&Path>,
) -> Result<Outcome, Error> {
    let path = named_path(found, name)?;
    let recorded = restore::Recorded::read(&path);
    let source = match from {
        Some(file) => file.to_path_buf(),
        None => restore::newest(&path, &recorded)?,
    };
    let set = catalog::load(root, name.as_str()).ok();
    let done = restore::restore(
        &path,
        &source,
        set.as_ref(),
        &recorded,
        &history::new_run_id(),
    )?;
    Ok(Outcome {
        report: Report::Restore {
            restored: vec![restore_entry(name, &path, &source, done)],
        },
        errors: Vec::new(),
        notes: Vec::new(),
    })
}

/// `--all --restore`: every database the most recent migrating run changed, from its backups.
pub(super) fn restore_last_run(
    root: &catalog::Root,
    found: &discovery::Found,
) -> Result<Outcome, Error> {
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
                // A folder renamed since (`.aifp-project` to `.aimfp-project`) moved its backups
                // with it: the recorded file is then the one of that name beside the database.
                let beside = source
                    .file_name()
                    .and_then(|f| path.parent().map(|dir| dir.join(f)));
                let source = match beside {
                    Some(b) if !source.exists() && b.exists() => b,
                    _ => source,
                };
                let set = catalog::load(root, name.as_str()).ok();
                let recorded = restore::Recorded::read(&path);
                match restore::check_source(&path, &source, set.as_ref(), &recorded) {
                    Ok(_) => plan.push((name, path, source, set, recorded)),
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
    for (name, path, source, set, recorded) in plan {
        let done = restore::restore(&path, &source, set.as_ref(), &recorded, &run_id)?;
        restored.push(restore_entry(name, &path, &source, done));
    }
    Ok(Outcome {
        report: Report::Restore { restored },
        errors: Vec::new(),
        notes: Vec::new(),
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
pub(super) fn list_backups(selected: Vec<&Location>) -> Result<Outcome, Error> {
    let backups = backups_of(&selected)?
        .iter()
        .map(|(name, b)| backup_entry(*name, b))
        .collect();
    Ok(Outcome {
        report: Report::Backups { backups },
        errors: Vec::new(),
        notes: Vec::new(),
    })
}

/// `--prune-backups --keep N [--db NAME]`: only files named as backups are ever deleted.
pub(super) fn prune_backups(selected: Vec<&Location>, keep: usize) -> Result<Outcome, Error> {
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
        notes: Vec::new(),
    })
}
