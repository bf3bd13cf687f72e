//! A rehearsal: the whole pending plan run on a temporary copy of a database, data included, in
//! the same transaction and with the same checks as the real run; then the copy is thrown away.
//!
//! The copy lives in a temporary folder of its own, so its `-wal`, `-shm` and journal files go with
//! it. How much disk the copy needs is known, and checked, before it is made.

use std::path::{Path, PathBuf};

use rusqlite::OpenFlags;

use crate::apply::{self, Applied};
use crate::backup;
use crate::catalog::Set;
use crate::error::Error;
use crate::inspect;
use crate::progress::Reporter;
use crate::schema;
use crate::scratch;

/// What a rehearsal found.
#[derive(Debug)]
pub struct Rehearsal {
    /// Bytes the copy needs, and where it was made.
    pub needed: u64,
    pub folder: PathBuf,
    /// The migration's result on the copy; an error names the real database, not the copy.
    pub result: Result<Applied, String>,
    /// The schema the copy ended with: every object's SQL.
    pub schema: Vec<String>,
    /// How that schema differs from the expected schema of the version reached.
    pub drift: Vec<String>,
}

/// Rehearses the plan `plan` makes for the database at `path` (asked, as in a real run, under
/// the copy's write lock); `set` gives the expected schema of the version reached, if any.
pub fn rehearse(
    path: &Path,
    set: Option<&Set>,
    request: apply::Request<'_>,
    plan: impl FnOnce(
        &rusqlite::Connection,
        &crate::version::Version,
    ) -> Result<Vec<crate::plan::Step>, Error>,
    progress: &Reporter,
) -> Result<Rehearsal, Error> {
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let needed = size(path) + size(&inspect::suffixed(path, "-wal"));
    let dir = tempfile::Builder::new()
        .prefix("aifp-migrate-rehearsal-")
        .tempdir()
        .map_err(|e| Error::io(&std::env::temp_dir(), &e))?;
    let folder = dir.path().to_path_buf();
    if let Ok(fs) = rustix::fs::statvfs(&folder) {
        let free = fs.f_bavail.saturating_mul(fs.f_frsize);
        if free < needed + (1 << 20) {
            return Err(Error::NoSpace {
                path: path.to_path_buf(),
                folder,
                needed: needed + (1 << 20),
                free,
            });
        }
    }
    let copy = folder.join(path.file_name().unwrap_or_default());
    let copy_err = |message: String| Error::Backup {
        path: path.to_path_buf(),
        backup: copy.clone(),
        message,
    };
    backup::create_like(path, &copy).map_err(copy_err)?;
    // Read as the checks read: nothing may appear beside the real database.
    let src = inspect::open_for_reading(path)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    backup::copy_into(
        &src,
        &copy,
        progress,
        &format!("copying {name} for the rehearsal"),
    )
    .map_err(copy_err)?;
    drop(src);

    let real = path.display().to_string();
    let request = apply::Request {
        take_backup: false,
        before: Some(path),
        ..request
    };
    let result = apply::migrate(&copy, request, plan, progress).map_err(|e| {
        let message = e.to_string().replace(&copy.display().to_string(), &real);
        let message = message.replace("; the database was left as it was", "");
        format!("{message} (in a rehearsal on a copy: the database itself was not touched)")
    });
    let after = inspect::open(&copy, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let objects: Vec<String> = after
        .prepare(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'
             AND tbl_name NOT LIKE 'aifp_migrate_%' ORDER BY type DESC, name",
        )
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| Error::sqlite(&copy, e))?;
    let drift = match (&result, schema::read(&after)) {
        (Ok(done), Ok(actual)) => set
            .and_then(|set| scratch::expected(set, &done.to).ok())
            .map(|expected| schema::diff(&expected, &actual))
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    drop(after);
    // The folder, the copy and whatever SQLite left beside it go here.
    drop(dir);
    Ok(Rehearsal {
        needed,
        folder,
        result,
        schema: objects,
        drift,
    })
}
