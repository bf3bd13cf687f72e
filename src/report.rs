//! What a run found and did, as data, and how it reads: plain text for people, JSON for programs.
//!
//! Both renderings come from the same `Report`, so they never disagree; the exit code does too.

use serde::Serialize;

use crate::discovery::DbName;
use crate::history::Changed;
use crate::options::Verbosity;

/// The result of one run: one entry per database, in SPEC's JSON shape.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Report {
    Check {
        /// The installed AIFP package whose schemas are the targets, when one was found.
        #[serde(skip_serializing_if = "Option::is_none")]
        package: Option<PackageEntry>,
        databases: Vec<CheckEntry>,
        /// State folders a migrating run would set aside or rename.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        folders: Vec<FolderEntry>,
        /// What to run to migrate them, with the flags this run was given (for the hint).
        #[serde(skip)]
        command: String,
    },
    Run {
        databases: Vec<RunEntry>,
        /// State folders set aside or renamed after the databases committed.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        folders: Vec<FolderEntry>,
    },
    Restore {
        restored: Vec<RestoreEntry>,
    },
    Backups {
        backups: Vec<BackupEntry>,
    },
    Pruned {
        deleted: Vec<BackupEntry>,
        kept: Vec<BackupEntry>,
    },
    Verify {
        sets: Vec<VerifyEntry>,
    },
}

/// The installed AIFP package.
#[derive(Debug, Clone, Serialize)]
pub struct PackageEntry {
    pub name: String,
    pub version: String,
    pub folder: String,
    pub core: String,
    pub found_by: String,
}

/// A state folder moved (or to be moved) after the databases in it committed.
#[derive(Debug, Clone, Serialize)]
pub struct FolderEntry {
    pub from: String,
    pub to: String,
    /// `planned`, `moved`, `not moved` or `failed`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One database put back from a backup.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreEntry {
    pub name: &'static str,
    pub path: String,
    /// The version before the restore (null when the file was missing or unreadable).
    pub from: Option<String>,
    /// The version restored.
    pub to: Option<String>,
    /// The backup it was restored from.
    pub restored_from: String,
    /// Where the replaced state was saved, so the restore can be undone.
    pub backup: Option<String>,
}

/// One backup file.
#[derive(Debug, Clone, Serialize)]
pub struct BackupEntry {
    pub name: &'static str,
    pub file: String,
    pub time: String,
    pub version: Option<String>,
    pub size: u64,
}

/// One database in a `--check` report.
#[derive(Debug, Clone, Serialize)]
pub struct CheckEntry {
    pub name: &'static str,
    pub path: Option<String>,
    pub status: CheckStatus,
    pub current: Option<String>,
    pub latest: Option<String>,
    pub pending: Vec<StepEntry>,
    /// For a pending database: `script` when its steps are all scripts, else `converge`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// For a pending converge: what it changes, one line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub summary: Vec<String>,
    /// How the schema differs from the one its recorded version should have.
    pub drift: Vec<String>,
    /// The version whose expected schema it matches exactly, for a drifted or unversioned one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matches: Option<String>,
    /// Applied scripts whose file has changed since: reported, never blocking.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed_scripts: Vec<Changed>,
    /// Why the status is what it is and what to do, for every status but current and missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For a drifted database: the command that brings it back to its version's schema, with the
    /// flags this run was given (for `-q`).
    #[serde(skip)]
    pub repair: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Current,
    Pending,
    Missing,
    Ahead,
    Unversioned,
    /// The installed package's core database: read, never migrated.
    Installed,
    Error,
}

/// One database in a migrating run (or its dry run).
#[derive(Debug, Clone, Serialize)]
pub struct RunEntry {
    pub name: &'static str,
    pub path: Option<String>,
    pub status: RunStatus,
    pub from: Option<String>,
    pub to: Option<String>,
    pub backup: Option<String>,
    pub steps: Vec<StepEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rehearsal: Option<RehearsalEntry>,
    /// For a stamp: how the schema differs from the version recorded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<String>,
    /// What the plan kept and dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountEntry>,
    /// Why the status is what it is and what to do, for every status but current and missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a plan kept and dropped, and the backup that keeps what it dropped.
#[derive(Debug, Clone, Serialize)]
pub struct AccountEntry {
    #[serde(flatten)]
    pub account: crate::apply::Account,
    pub kept_in: Option<String>,
}

impl RunEntry {
    /// An entry with nothing known yet but the database.
    pub fn new(name: DbName, path: Option<String>) -> Self {
        RunEntry {
            name: name.as_str(),
            path,
            status: RunStatus::Planned,
            from: None,
            to: None,
            backup: None,
            steps: Vec::new(),
            rehearsal: None,
            drift: Vec::new(),
            account: None,
            reason: None,
            error: None,
        }
    }
}

/// What a rehearsal on a temporary copy found.
#[derive(Debug, Clone, Serialize)]
pub struct RehearsalEntry {
    pub copy_needs_bytes: u64,
    pub copied_into: String,
    /// The SQL of every object the copy ended with.
    pub schema: Vec<String>,
    /// How that schema differs from the expected schema of the version reached.
    pub drift: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Migrated,
    Current,
    Failed,
    Planned,
    Missing,
    /// Not reached, or rolled back unchanged: another database of the same project failed.
    Skipped,
    /// Committed, then put back from its backup: another database of the project failed to commit.
    PutBack,
    /// Could not be planned (in a `--scan`, where the other projects go ahead).
    Error,
    /// The installed package's core database: read, never touched.
    Installed,
    /// A rehearsal on a copy succeeded, or failed.
    WouldSucceed,
    WouldFail,
    /// A version recorded by --stamp.
    Stamped,
    /// Made by --init, or left alone by it because the file is there.
    Created,
    Exists,
}

/// The verification of one migration set.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyEntry {
    pub name: &'static str,
    pub steps: Vec<crate::verify::StepCheck>,
}

/// One script, pending, planned or applied.
#[derive(Debug, Clone, Serialize)]
pub struct StepEntry {
    pub from: String,
    pub to: String,
    pub script: String,
    /// `script`, or `converge` for a step the tool generated.
    pub kind: &'static str,
    /// For a generated step: what it changes, one line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub summary: Vec<String>,
    /// The label of the script's name (`git_integration`), if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The script's first comment line: what the step does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where the script is read from (a path, or `<built-in>/…`).
    #[serde(skip)]
    pub origin: String,
    /// The script's text: in a dry run only (and shown as text with -v).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sql: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ms: Option<u64>,
}

impl Report {
    /// SPEC's exit codes: for `--check` 1 if anything is ahead, unversioned or in error, else 3 if
    /// anything is pending, else 0; for a run 1 if a database failed, else 0.
    pub fn exit_code(&self) -> u8 {
        match self {
            Report::Check {
                databases, folders, ..
            } => {
                let has = |s: CheckStatus| databases.iter().any(|d| d.status == s);
                let folder = |s: &str| folders.iter().any(|f| f.status == s);
                if has(CheckStatus::Ahead)
                    || has(CheckStatus::Unversioned)
                    || has(CheckStatus::Error)
                    || folder("both")
                {
                    1
                } else if has(CheckStatus::Pending) || folder("planned") {
                    3
                } else {
                    0
                }
            }
            Report::Run { databases, .. } => u8::from(databases.iter().any(|d| {
                matches!(
                    d.status,
                    RunStatus::Failed
                        | RunStatus::WouldFail
                        | RunStatus::Error
                        | RunStatus::PutBack
                )
            })),
            Report::Verify { sets } => u8::from(
                sets.iter()
                    .flat_map(|s| &s.steps)
                    .any(crate::verify::StepCheck::is_problem),
            ),
            Report::Restore { .. } | Report::Backups { .. } | Report::Pruned { .. } => 0,
        }
    }

    pub fn to_json(&self) -> String {
        // Serialising plain strings and enums cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// The text report; `Quiet` leaves only what changed on disk (for `--check`: one line per
    /// database to migrate, with the command that migrates it); `colour` paints statuses.
    pub fn to_text(&self, verbosity: Verbosity, colour: bool) -> String {
        let mut out = String::new();
        match self {
            Report::Check {
                package,
                databases,
                folders,
                command,
            } => {
                if verbosity == Verbosity::Quiet {
                    // For a session-start hook: silence when all is well; an error's own line
                    // goes to stderr.
                    for d in databases
                        .iter()
                        .filter(|d| d.status == CheckStatus::Pending)
                    {
                        let unknown = || "?".to_string();
                        out.push_str(&format!(
                            "{} {} -> {} pending ({}): run {command}\n",
                            d.name,
                            d.current.clone().unwrap_or_else(unknown),
                            d.latest.clone().unwrap_or_else(unknown),
                            d.path.clone().unwrap_or_else(unknown),
                        ));
                    }
                    for d in databases {
                        if let (Some(repair), Some(current)) = (&d.repair, &d.current) {
                            out.push_str(&format!(
                                "{} {} drifted from its schema ({}): run {repair}\n",
                                d.name,
                                printable(current),
                                d.path.as_deref().map(printable).unwrap_or_default(),
                            ));
                        }
                    }
                    for f in folders {
                        match f.status.as_str() {
                            "planned" => out.push_str(&format!(
                                "folder {} -> {} pending: run {command}\n",
                                printable(&f.from),
                                printable(&f.to)
                            )),
                            "both" => out.push_str(&format!(
                                "folders {} and {}: run aifp-migrate --all --adopt <the one to keep>\n",
                                printable(&f.from),
                                printable(&f.to)
                            )),
                            _ => {}
                        }
                    }
                    return out;
                }
                if let Some(p) = package {
                    out.push_str(&format!(
                        "installed AIFP: {} {} in {} (found through {})\n",
                        p.name, p.version, p.folder, p.found_by
                    ));
                }
                for d in databases {
                    let version = match (&d.current, &d.latest) {
                        (Some(c), Some(l)) if d.status == CheckStatus::Pending => {
                            format!("{c} -> {l}")
                        }
                        (Some(c), _) => c.clone(),
                        (None, _) => "-".to_string(),
                    };
                    line(
                        &mut out,
                        d.name,
                        &version,
                        status_word(d.status),
                        d.path.as_deref(),
                        colour,
                    );
                    // An error's own line goes to stderr; here the status says enough.
                    if let (CheckStatus::Installed, Some(r)) = (d.status, &d.reason) {
                        out.push_str(&format!("    {r}\n"));
                    }
                    steps(&mut out, &d.pending, false, false);
                    for diff in &d.drift {
                        out.push_str(&format!("    drift: {}\n", printable(diff)));
                    }
                    if let (false, Some(v)) = (d.drift.is_empty(), &d.current) {
                        out.push_str(&format!(
                            "    to bring it back to the schema of v{v}, keeping its data: aifp-migrate --db {} --repair\n",
                            d.name
                        ));
                    }
                    if let Some(v) = &d.matches {
                        out.push_str(&format!(
                            "    its schema is exactly that of v{}\n",
                            printable(v)
                        ));
                    }
                    for c in &d.changed_scripts {
                        out.push_str(&format!(
                            "    note: {} has changed since it was applied ({}); the database keeps what the old text did\n",
                            printable(&c.script), printable(&c.applied_at)
                        ));
                    }
                }
                folders_text(&mut out, folders);
                let count = |s| databases.iter().filter(|d| d.status == s).count();
                let broken = count(CheckStatus::Error)
                    + count(CheckStatus::Ahead)
                    + count(CheckStatus::Unversioned);
                out.push_str(&match count(CheckStatus::Pending) {
                    _ if broken > 0 => format!(
                        "{broken} database(s) need attention (see the errors): {command} changes nothing until they are fixed\n"
                    ),
                    0 if count(CheckStatus::Missing) == databases.len() => {
                        "no AIFP database found: nothing to migrate\n".to_string()
                    }
                    0 if folders.iter().any(|f| f.status == "planned") => format!(
                        "the state folder is to be renamed: run {command}\n"
                    ),
                    0 => "nothing to migrate\n".to_string(),
                    n => format!("{n} database(s) to migrate: run {command} (a backup is made first)\n"),
                });
            }
            Report::Run { databases, folders } => {
                let dry = databases.iter().any(|d| d.status == RunStatus::Planned);
                if dry && verbosity > Verbosity::Quiet {
                    out.push_str("dry run: nothing will be changed\n");
                }
                for d in databases {
                    let changed = matches!(
                        d.status,
                        RunStatus::Migrated
                            | RunStatus::Failed
                            | RunStatus::PutBack
                            | RunStatus::Error
                            | RunStatus::Stamped
                            | RunStatus::Created
                            | RunStatus::WouldFail
                    );
                    if verbosity == Verbosity::Quiet && !changed {
                        continue;
                    }
                    let what = match (d.status, &d.from, &d.to) {
                        (RunStatus::Migrated, Some(f), Some(t)) => format!("migrated {f} -> {t}"),
                        (RunStatus::Planned, Some(f), Some(t)) => {
                            format!("would migrate {f} -> {t}")
                        }
                        (RunStatus::Failed, Some(f), Some(t)) => {
                            format!("failed {f} -> {t}, left at {f}")
                        }
                        (RunStatus::Current, Some(f), _) => format!("current {f}"),
                        (RunStatus::Skipped, Some(f), _) => format!("skipped, left at {f}"),
                        (RunStatus::PutBack, Some(f), _) => format!("put back to {f}"),
                        (RunStatus::Missing, _, _) => "missing".to_string(),
                        (RunStatus::WouldSucceed, Some(f), Some(t)) => {
                            format!("rehearsed {f} -> {t}: would succeed")
                        }
                        (RunStatus::WouldFail, Some(f), Some(t)) => {
                            format!("rehearsed {f} -> {t}: WOULD FAIL")
                        }
                        (RunStatus::Stamped, from, Some(t)) => match from {
                            Some(f) => format!("stamped {t} (was {f})"),
                            None => format!("stamped {t} (was unversioned)"),
                        },
                        (RunStatus::Created, _, Some(t)) => format!("created at {t}"),
                        (RunStatus::Exists, _, _) => "exists, left alone".to_string(),
                        (s, _, _) => format!("{s:?}").to_lowercase(),
                    };
                    line(&mut out, d.name, "", &what, d.path.as_deref(), colour);
                    if let Some(b) = &d.backup {
                        out.push_str(&format!("    backup {}\n", printable(b)));
                    } else if d.status == RunStatus::Planned {
                        out.push_str("    a backup would be made first\n");
                    }
                    // Where no other line says why (a failure's own line goes to stderr).
                    if let (
                        RunStatus::Skipped
                        | RunStatus::Exists
                        | RunStatus::WouldSucceed
                        | RunStatus::PutBack
                        | RunStatus::Installed,
                        Some(r),
                    ) = (d.status, &d.reason)
                    {
                        out.push_str(&format!("    {}\n", printable(r)));
                    }
                    steps(&mut out, &d.steps, dry, verbosity == Verbosity::Verbose);
                    if let Some(a) = &d.account {
                        account_text(&mut out, a);
                    }
                    if let Some(r) = &d.rehearsal {
                        let ok = d.status == RunStatus::WouldSucceed;
                        rehearsal_text(&mut out, r, ok, verbosity);
                    }
                    if let Some(e) = d
                        .error
                        .as_ref()
                        .filter(|_| d.status == RunStatus::WouldFail)
                    {
                        out.push_str(&format!("    {}\n", printable(e)));
                    }
                    for diff in &d.drift {
                        out.push_str(&format!("    schema differs: {}\n", printable(diff)));
                    }
                }
                folders_text(&mut out, folders);
            }
            Report::Verify { sets } => verify_text(&mut out, sets, verbosity),
            Report::Restore { restored } => restored_text(&mut out, restored),
            Report::Backups { backups } if verbosity > Verbosity::Quiet => {
                backups_text(&mut out, backups, "");
                if backups.is_empty() {
                    out.push_str("no backups found\n");
                }
            }
            Report::Backups { .. } => {}
            Report::Pruned { deleted, kept } => {
                backups_text(&mut out, deleted, "deleted ");
                if verbosity > Verbosity::Quiet {
                    out.push_str(&format!(
                        "{} backup(s) deleted, {} kept\n",
                        deleted.len(),
                        kept.len()
                    ));
                }
            }
        }
        out
    }
}

/// State folders moved (or to be moved, or in the way).
fn folders_text(out: &mut String, folders: &[FolderEntry]) {
    for f in folders {
        let what = match f.status.as_str() {
            "planned" => format!("folder {} will become {}", f.from, f.to),
            "moved" => format!("folder {} is now {}", f.from, f.to),
            "both" => format!("folders {} and {} are both here", f.from, f.to),
            other => format!("folder {} {other} (to {})", f.from, f.to),
        };
        out.push_str(&format!("{what}\n"));
        if let Some(r) = &f.reason {
            out.push_str(&format!("    {r}\n"));
        }
    }
}

fn restored_text(out: &mut String, restored: &[RestoreEntry]) {
    for r in restored {
        let versions = match (&r.from, &r.to) {
            (Some(f), Some(t)) => format!("{f} -> {t}"),
            (None, Some(t)) => format!("-> {t}"),
            _ => String::new(),
        };
        out.push_str(&format!(
            "{:<17} restored {}  {}\n",
            r.name,
            printable(&versions),
            printable(&r.path)
        ));
        out.push_str(&format!("    from   {}\n", printable(&r.restored_from)));
        if let Some(b) = &r.backup {
            out.push_str(&format!(
                "    the state it replaced is saved as {}\n",
                printable(b)
            ));
        }
    }
}

fn backups_text(out: &mut String, backups: &[BackupEntry], verb: &str) {
    for b in backups {
        let version = printable(b.version.as_deref().unwrap_or("?"));
        out.push_str(&format!(
            "{verb}{:<17} {} UTC  v{version:<6} {:>12} bytes  {}\n",
            b.name,
            b.time,
            b.size,
            printable(&b.file)
        ));
    }
}

fn rehearsal_text(out: &mut String, r: &RehearsalEntry, ok: bool, verbosity: Verbosity) {
    out.push_str(&format!(
        "    rehearsed on a copy in {} ({} bytes), since removed\n",
        printable(&r.copied_into),
        r.copy_needs_bytes
    ));
    if !ok {
        return;
    }
    let count = |prefix: &str| r.schema.iter().filter(|s| s.starts_with(prefix)).count();
    out.push_str(&format!(
        "    it would end with {} tables, {} indexes, {} triggers, {} views",
        count("CREATE TABLE"),
        count("CREATE INDEX") + count("CREATE UNIQUE INDEX"),
        count("CREATE TRIGGER"),
        count("CREATE VIEW"),
    ));
    out.push_str(if r.drift.is_empty() {
        ", exactly the expected schema\n"
    } else {
        ", which differs from the expected schema:\n"
    });
    for d in &r.drift {
        out.push_str(&format!("      {}\n", printable(d)));
    }
    if verbosity == Verbosity::Verbose {
        for s in &r.schema {
            let one_line = s.lines().map(str::trim).collect::<Vec<_>>().join(" ");
            out.push_str(&format!("      {};\n", printable(&one_line)));
        }
    }
}

fn verify_text(out: &mut String, sets: &[VerifyEntry], verbosity: Verbosity) {
    use crate::verify::StepStatus;
    let (mut problems, mut missing) = (0, 0);
    for set in sets {
        if verbosity == Verbosity::Quiet
            && !set.steps.iter().any(crate::verify::StepCheck::is_problem)
        {
            continue;
        }
        out.push_str(&format!("{}\n", set.name));
        if set.steps.is_empty() {
            out.push_str("    no upgrade steps\n");
        }
        for s in &set.steps {
            let what = match s.status {
                StepStatus::Restores => "its rollback restores the schema",
                StepStatus::Differs => "ROLLBACK DOES NOT RESTORE THE SCHEMA",
                StepStatus::NoRollback => "no rollback script",
                StepStatus::Failed => "FAILED on a scratch database",
            };
            missing += usize::from(s.status == StepStatus::NoRollback);
            if s.is_problem() {
                problems += 1;
            } else if verbosity == Verbosity::Quiet {
                continue;
            }
            out.push_str(&format!(
                "    {} -> {}  {}: {what}\n",
                s.from,
                s.to,
                printable(&s.script)
            ));
            for d in &s.differences {
                out.push_str(&format!("        {}\n", printable(d)));
            }
        }
    }
    if verbosity > Verbosity::Quiet {
        out.push_str(&match problems {
            0 => "every rollback there is restores the schema it undoes".to_string(),
            n => format!("{n} step(s) with a rollback that does not restore the schema"),
        });
        out.push_str(&match missing {
            0 => "\n".to_string(),
            n => format!("; {n} step(s) have no rollback\n"),
        });
    }
}

fn status_word(s: CheckStatus) -> &'static str {
    match s {
        CheckStatus::Current => "current",
        CheckStatus::Pending => "pending",
        CheckStatus::Missing => "missing",
        CheckStatus::Ahead => "ahead",
        CheckStatus::Unversioned => "unversioned",
        CheckStatus::Error => "error",
        CheckStatus::Installed => "installed",
    }
}

fn line(
    out: &mut String,
    name: &str,
    version: &str,
    status: &str,
    path: Option<&str>,
    colour: bool,
) {
    let path = printable(path.unwrap_or("(no .aimfp-project or .aifp-project folder found)"));
    let version = printable(version);
    // Padded first, painted after, so the colour codes do not upset the columns.
    let status = if version.is_empty() {
        format!("{status:<30}")
    } else {
        format!("{status:<16}")
    };
    let status = paint(&status, colour);
    let cells = if version.is_empty() {
        format!("{name:<17} {status} {path}")
    } else {
        format!("{name:<17} {version:<12} {status} {path}")
    };
    out.push_str(cells.trim_end());
    out.push('\n');
}

/// A status in the colour of what it means: green done, yellow to do, red wrong, dim absent.
fn paint(status: &str, colour: bool) -> String {
    let word = status.split_whitespace().next().unwrap_or("");
    let code = match word {
        _ if status.contains("WOULD FAIL") => "31",
        "current" | "migrated" | "created" | "stamped" | "rehearsed" => "32",
        "pending" | "would" => "33",
        "failed" | "error" | "ahead" | "unversioned" | "put" => "31",
        "missing" | "skipped" | "exists" => "2",
        _ => "",
    };
    if !colour || code.is_empty() {
        return status.to_string();
    }
    let trimmed = status.trim_end();
    let pad = &status[trimmed.len()..];
    format!("\u{1b}[{code}m{trimmed}\u{1b}[0m{pad}")
}

/// The steps, with what a generated one changes; the SQL with -v, and a generated step's in
/// any dry run (it is written nowhere else).
fn steps(out: &mut String, steps: &[StepEntry], dry: bool, verbose: bool) {
    for s in steps {
        let with_sql = dry && (verbose || s.kind == "converge");
        let took = s.ms.map(|ms| format!("  ({ms} ms)")).unwrap_or_default();
        let script = printable(if with_sql && s.kind == "script" {
            &s.origin
        } else {
            &s.script
        });
        out.push_str(&format!(
            "    {} -> {}  {script}{took}\n",
            printable(&s.from),
            printable(&s.to)
        ));
        if let Some(d) = &s.description {
            out.push_str(&format!("        {}\n", printable(d)));
        }
        for line in &s.summary {
            out.push_str(&format!("        {line}\n"));
        }
        if with_sql {
            for l in s.sql.lines() {
                let l = l.trim_end();
                out.push_str(&if l.is_empty() {
                    "\n".to_string()
                } else {
                    format!("        {}\n", printable(l))
                });
            }
        }
    }
}

/// What a plan dropped (and where it is kept), what it kept as it was, what it built.
fn account_text(out: &mut String, a: &AccountEntry) {
    let kept = a
        .kept_in
        .as_deref()
        .unwrap_or("nowhere: no backup was taken");
    for loss in &a.account.lost {
        out.push_str(&format!(
            "    lost (--allow-data-loss): {loss}; kept in {kept}\n"
        ));
    }
    for b in &a.account.broken_before {
        out.push_str(&format!(
            "    kept as it was: {} row(s) of {} that already broke their foreign key to {}\n",
            b.rows, b.table, b.parent
        ));
    }
    for q in &a.account.sequences {
        out.push_str(&format!(
            "    kept the AUTOINCREMENT high-water mark of {} at {}\n",
            q.table, q.seq
        ));
    }
    for f in &a.account.fts_built {
        out.push_str(&format!(
            "    built full-text index {} from {} row(s) of {}\n",
            f.index, f.rows, f.table
        ));
    }
}

/// A path as a shell word: as it is when that is safe, else in single quotes.
pub fn shell_quote(path: &std::path::Path) -> String {
    let text = path.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:,@%=".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// Text from scripts, databases and paths as it may reach a terminal: control characters (and the
/// bidirectional overrides that reorder what is shown) are written as escapes such as `\u{1b}`,
/// so that a script's comment cannot clear the screen, move the cursor or forge a line. Tabs stay.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && c != '\t')
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_plain_text_is_left_alone() {
        assert_eq!(
            printable("notes: v1.0 -> v1.1\tok"),
            "notes: v1.0 -> v1.1\tok"
        );
        assert_eq!(
            printable("a\u{1b}[2J\rb\nc\u{7}\u{202e}d"),
            "a\\u{1b}[2J\\rb\\nc\\u{7}\\u{202e}d"
        );
        assert_eq!(printable("é ü 日本"), "é ü 日本");
    }
}
