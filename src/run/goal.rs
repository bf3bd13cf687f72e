//! Where each database is taken, and the planner that writes the steps there: the migration
//! set's scripts, a converge to a schema (scripts first where they go part of the way), a
//! repair, or the installed package's schema with the renamed folder's paths carried over.
//!
//! `--check`, the dry run, the rehearsal and the real run (under the write lock) all ask
//! `steps` the same question, so they cannot disagree.

use std::sync::Arc;

use rusqlite::Connection;

use super::*;
use crate::converge::{self, Converge};
use crate::plan::Step;
use crate::sql::quote;

/// What a database is taken toward.
#[derive(Debug, Clone)]
pub(super) enum Aim {
    /// Along the set's scripts.
    Version(Target),
    /// To a schema file (`--to-schema`), in either direction.
    Schema(Arc<scratch::Target>),
    /// To the installed package's schema; never down.
    Package(Arc<scratch::Target>, PackageAim),
    /// Back to the exact schema of the version the database records.
    Repair,
}

/// What a package aim needs beyond its target: how to name the package, and its state folder.
#[derive(Debug, Clone)]
pub(super) struct PackageAim {
    /// `aimfp 1.35.0 in /…/site-packages/aimfp`.
    pub shown: String,
    pub name: String,
    pub schema: PathBuf,
    /// The state folder name this package uses.
    pub folder: &'static str,
}

impl Aim {
    /// The aim of the database at `loc` in a run whose goal is `base`: the installed package's
    /// schema replaces "the latest script" for a per-project database when there is a package.
    pub fn for_location(base: &Aim, ctx: &Ctx, loc: &Location) -> Result<Aim, Error> {
        let (Aim::Version(Target::Latest), Some(package)) = (base, &ctx.package) else {
            return Ok(base.clone());
        };
        let Some(target) = ctx.target(loc.name)? else {
            return Ok(base.clone());
        };
        Ok(Aim::Package(
            target,
            PackageAim {
                shown: format!(
                    "{} {} in {}",
                    package.name,
                    package.version,
                    package.folder.display()
                ),
                name: package.name.clone(),
                schema: package.schema_file(loc.name),
                folder: package.project_folder(),
            },
        ))
    }
}

/// The old folder name whose paths a database's values hold, when the installed package keeps
/// its state under the other name and this database is still in the old folder.
const OLD_FOLDER: &str = ".aifp-project";
const NEW_FOLDER: &str = ".aimfp-project";

/// Whether the database at `path` moves from `.aifp-project` to the package's `.aimfp-project`.
pub(super) fn moves_folder(aim: &Aim, path: &Path) -> bool {
    matches!(aim, Aim::Package(_, p) if folder_moves_for(p.folder, path))
}

/// Whether a database at `path` moves when the installed package keeps its state in `folder`.
pub(super) fn folder_moves_for(folder: &str, path: &Path) -> bool {
    folder == NEW_FOLDER
        && path
            .parent()
            .and_then(|f| f.file_name())
            .is_some_and(|n| n == OLD_FOLDER)
}

/// The steps from `from` toward `aim` for the database `conn` has open: asked while planning
/// and again under the write lock.
pub(super) fn steps(
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
        (Aim::Schema(target), set) => toward(set, target, conn, path, from, false),
        (Aim::Package(target, p), set) => {
            if *from > target.version {
                let db = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                return Err(Error::AheadOfPackage {
                    path: path.to_path_buf(),
                    what: format!(
                        "v{from}, newer than the installed {} expects (v{}): update it (pip install -U {}), or, to really go back to the older schema, converge down with aifp-migrate --db {db} --to-schema {} --allow-data-loss",
                        p.shown,
                        target.version,
                        p.name,
                        p.schema.display()
                    ),
                });
            }
            toward(set, target, conn, path, from, moves_folder(aim, path))
        }
        (Aim::Version(_) | Aim::Repair, None) => Err(Error::NoSet {
            root: "<migrations>".into(),
            db: path.display().to_string(),
        }),
    }
}

/// Scripts first, as far as they go toward `target`, on a database whose schema is the one its
/// version should have (they may move data no comparison can guess); the rest converged. With
/// `rewrite`, values that hold a path under `.aifp-project/` follow the folder's new name.
fn toward(
    set: Option<&Set>,
    target: &scratch::Target,
    conn: &Connection,
    path: &Path,
    from: &Version,
    rewrite: bool,
) -> Result<Vec<Step>, Error> {
    let actual = schema::read(conn).map_err(|e| inspect::classify(path, e))?;
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
    let mut plan = converge::plan(&schema, &target.schema, &target.seeds);
    if rewrite {
        let found =
            paths_to_rewrite(conn, &target.schema).map_err(|e| inspect::classify(path, e))?;
        // The rewrite is the tool's, not the user's: the table's triggers (an `updated_at`
        // touch, say) are set aside while it runs, and a full-text index over it is rebuilt.
        let tables: std::collections::BTreeSet<String> =
            found.iter().map(|(t, _, _)| t.clone()).collect();
        let triggers: Vec<(&String, &str)> = target
            .schema
            .others
            .iter()
            .filter(|((kind, _), o)| kind == "trigger" && tables.contains(&o.table))
            .map(|((_, name), o)| (name, o.sql.as_str()))
            .collect();
        for (name, _) in &triggers {
            plan.statements
                .push(format!("DROP TRIGGER {}", quote(name)));
        }
        for (table, column, values) in found {
            plan.statements.push(rewrite_statement(&table, &column));
            plan.summary.push(format!(
                "{table}.{column}: {values} path(s) under {OLD_FOLDER}/ now under {NEW_FOLDER}/"
            ));
            plan.rewrites.push((table, column, values));
        }
        for (_, sql) in &triggers {
            plan.statements.push(sql.to_string());
        }
        for (name, fts) in &target.schema.virtuals {
            if converge::external_content(&fts.sql).is_some_and(|t| tables.contains(&t)) {
                plan.statements.push(format!(
                    "INSERT INTO {q}({q}) VALUES ('rebuild')",
                    q = quote(name)
                ));
            }
        }
    }
    let mut rest = generated(conn, &at, &target.version, &target.origin, plan);
    if rest.is_empty() && at != target.version {
        // The schema is the target's already: only the version row moves.
        rest = generated(
            conn,
            &at,
            &target.version,
            &target.origin,
            Converge {
                summary: vec!["no schema change: the version row only".into()],
                target: target.schema.clone(),
                ..Converge::default()
            },
        );
    }
    scripts.extend(rest);
    Ok(scripts)
}

/// Every text column (of the tables both the database and the target have) holding values
/// that name the old folder as a path component, with how many.
fn paths_to_rewrite(
    conn: &Connection,
    target: &crate::schema::Schema,
) -> rusqlite::Result<Vec<(String, String, i64)>> {
    let mut out = Vec::new();
    for table in target.tables() {
        let exists: bool = conn.query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND lower(name) = ?1",
            [table],
            |r| r.get(0),
        )?;
        if !exists {
            continue;
        }
        let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?1)")?;
        let columns: Vec<String> = stmt
            .query_map([table], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for column in columns {
            let values: i64 = conn.query_row(
                &format!(
                    "SELECT count(*) FROM {} WHERE {}",
                    quote(table),
                    holds_old_path(&column)
                ),
                [],
                |r| r.get(0),
            )?;
            if values > 0 {
                out.push((table.to_string(), column.to_lowercase(), values));
            }
        }
    }
    Ok(out)
}

/// A text value that names `.aifp-project` as a whole path component.
fn holds_old_path(column: &str) -> String {
    let c = quote(column);
    format!("typeof({c}) = 'text' AND ('/' || {c} || '/') GLOB '*/{OLD_FOLDER}/*'")
}

/// The UPDATE that renames the folder component in every such value of `table.column`.
fn rewrite_statement(table: &str, column: &str) -> String {
    let c = quote(column);
    format!(
        "UPDATE {t} SET {c} = (SELECT substr(r, 2, length(r) - 2) FROM (SELECT replace('/' || {c} || '/', '/{OLD_FOLDER}/', '/{NEW_FOLDER}/') AS r)) WHERE {w}",
        t = quote(table),
        w = holds_old_path(column)
    )
}

/// The generated step for `plan`, with its summary's full-text lines counted; none when the
/// plan changes nothing.
fn generated(
    conn: &Connection,
    from: &Version,
    to: &Version,
    origin: &str,
    mut plan: Converge,
) -> Vec<Step> {
    if plan.statements.is_empty() && from == to {
        return Vec::new();
    }
    if plan.statements.is_empty() && plan.summary.is_empty() {
        return Vec::new();
    }
    for (index, table) in &plan.fts_built {
        // A content table the plan creates is empty until the index is built from it.
        let rows: Option<i64> = conn
            .query_row(&format!("SELECT count(*) FROM {}", quote(table)), [], |r| {
                r.get(0)
            })
            .ok()
            .or(Some(0));
        let from_table = format!("(built from {table})");
        for line in plan
            .summary
            .iter_mut()
            .filter(|l| l.contains(index.as_str()))
        {
            if let Some(rows) = rows {
                *line = line.replace(
                    &from_table,
                    &format!("(built from {rows} row(s) of {table})"),
                );
            }
        }
    }
    vec![Step::generated(from, to, origin, plan)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_path_components_of_the_old_folder_are_rewritten() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (p TEXT);
             INSERT INTO t VALUES ('.aifp-project'), ('.aifp-project/logs/x'), ('a/.aifp-project'),
                ('/home/me/proj/.aifp-project/project.db'), ('my.aifp-project/x'), ('.aifp-projects'), (7);",
        )
        .unwrap();
        conn.execute_batch(&rewrite_statement("t", "p")).unwrap();
        let got: Vec<String> = conn
            .prepare("SELECT CAST(p AS TEXT) FROM t ORDER BY rowid")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            got,
            [
                ".aimfp-project",
                ".aimfp-project/logs/x",
                "a/.aimfp-project",
                "/home/me/proj/.aimfp-project/project.db",
                "my.aifp-project/x",
                ".aifp-projects",
                "7"
            ]
        );
    }
}
