//! Case 7: the same two steps (an `ADD COLUMN`, then a 12-step rebuild of `notes`) run by
//! aifp-migrate, dbmate, `sqlx migrate run` and the floor on copies of one database, interleaved
//! round by round; then the status commands of the three tools on the migrated database.
//!
//! `AIFP_BENCH_CASES=7` (or `peers`) runs only this case. `AIFP_BENCH_PEER_ROWS=1000000,3000000` (the default)
//! sets the sizes, `AIFP_BENCH_PEER_ROUNDS=3` (the default) the rounds. dbmate (npm package
//! `dbmate`) and sqlx-cli (crates.io, sqlite feature only) are installed when missing.

use super::*;

const PEER_SET: &str = "benches/fixtures/peers";
const PEER_INITIAL: &str = "project/v1.0_initial_schema.sql";
const PEER_ADD: &str = "project/v1.0_to_v1.1_add_column.sql";
const PEER_REBUILD: &str = "project/v1.1_to_v1.2_rebuild.sql";
const PEER_ROWS: &str = "1000000,3000000";
const PEER_ROUNDS: usize = 3;
const PEER_RSS_TARGET_KIB: f64 = 16.0 * 1024.0;
const STATUS_RUNS: usize = 10;
const DBMATE_INSTALL: &str = "npm install -g dbmate";
const SQLX_INSTALL: &str =
    "cargo install sqlx-cli --locked --no-default-features --features sqlite,rustls";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    Tool,
    Dbmate,
    Sqlx,
    Floor,
}

impl Who {
    fn name(self) -> &'static str {
        match self {
            Who::Tool => "aifp-migrate",
            Who::Dbmate => "dbmate",
            Who::Sqlx => "sqlx",
            Who::Floor => "floor",
        }
    }
}

/// A program on PATH (or in ~/.cargo/bin, where `cargo install` puts it).
fn which(program: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// `program`, installed with `install` (a shell command) when it is missing.
fn find_or_install(program: &str, install: &str) -> Option<PathBuf> {
    if let Some(found) = which(program) {
        return Some(found);
    }
    println!("  {program} is missing: installing it once with `{install}`");
    let ok = Command::new("sh")
        .arg("-c")
        .arg(install)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!("  installing {program} failed");
    }
    which(program)
}

fn version(program: &Path, arg: &str) -> String {
    Command::new(program)
        .arg(arg)
        .stdin(Stdio::null())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// One database size: a pristine copy and a folder per tool with its migration files.
struct PeerSpace {
    dir: TempDir,
    rows: u64,
    tags: i64,
    pristine: PathBuf,
}

impl PeerSpace {
    fn new(bench: &Bench, rows: u64) -> Res<Self> {
        let dir = tempdir()?;
        let d = dir.path();
        let set = bench.root.join(PEER_SET);
        let pristine = d.join("pristine.db");
        generate(
            &pristine,
            &fs::read_to_string(set.join(PEER_INITIAL))?,
            rows,
        )?;
        let tags =
            Connection::open(&pristine)?
                .query_row("SELECT count(*) FROM note_tags", [], |r| r.get(0))?;
        let add = fs::read_to_string(set.join(PEER_ADD))?;
        let rebuild = fs::read_to_string(set.join(PEER_REBUILD))?;
        fs::create_dir_all(d.join("proj/.aifp-project"))?;
        // dbmate: one transaction per file; its SQLite driver leaves foreign keys off.
        let dbm = d.join("dbmate/db/migrations");
        fs::create_dir_all(&dbm)?;
        for (name, sql) in [
            ("20260101000001_add_column", &add),
            ("20260101000002_rebuild", &rebuild),
        ] {
            fs::write(
                dbm.join(format!("{name}.sql")),
                format!("-- migrate:up\n{sql}\n-- migrate:down\n"),
            )?;
        }
        // sqlx turns foreign keys on, which makes `DROP TABLE notes` delete the rows of
        // note_tags that refer to it; its documented way out is a file run outside its
        // transaction that switches them off and opens its own.
        let sqlx = d.join("sqlx/migrations");
        fs::create_dir_all(&sqlx)?;
        fs::write(sqlx.join("20260101000001_add_column.sql"), &add)?;
        fs::write(
            sqlx.join("20260101000002_rebuild.sql"),
            format!(
                "-- no-transaction\nPRAGMA foreign_keys = OFF;\nBEGIN;\n{rebuild}\nCOMMIT;\nPRAGMA foreign_keys = ON;\n"
            ),
        )?;
        fs::create_dir_all(d.join("floor"))?;
        fs::write(
            d.join("floor/floor.sql"),
            format!(
                "PRAGMA foreign_keys=OFF;\nBEGIN;\n{add}\n{rebuild}\nUPDATE schema_version SET version='1.2';\nCOMMIT;\n"
            ),
        )?;
        Ok(PeerSpace {
            dir,
            rows,
            tags,
            pristine,
        })
    }

    fn folder(&self, who: Who) -> PathBuf {
        let d = self.dir.path();
        match who {
            Who::Tool => d.join("proj/.aifp-project"),
            Who::Dbmate => d.join("dbmate"),
            Who::Sqlx => d.join("sqlx"),
            Who::Floor => d.join("floor"),
        }
    }

    /// A fresh, synced copy of the pristine database in `who`'s folder, and nothing else of a
    /// run before (backups, `-wal`).
    fn fresh(&self, who: Who) -> Res<()> {
        let folder = self.folder(who);
        for entry in fs::read_dir(&folder)?.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("project.db") || name.starts_with(".project.db") {
                fs::remove_file(entry.path())?;
            }
        }
        let db = folder.join("project.db");
        fs::copy(&self.pristine, &db)?;
        fs::File::open(&db)?.sync_all()?;
        fs::File::open(&folder)?.sync_all()?;
        Ok(())
    }

    /// The two steps happened: every note and link row there, the rebuilt schema.
    fn verify(&self, who: Who) -> Res<()> {
        let conn = Connection::open(self.folder(who).join("project.db"))?;
        let one = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0));
        let mut problems = Vec::new();
        if one("SELECT count(*) FROM notes")? != self.rows as i64 {
            problems.push("notes lost rows".to_string());
        }
        if one("SELECT count(*) FROM note_tags")? != self.tags {
            problems.push("note_tags lost rows".to_string());
        }
        if one(
            "SELECT count(*) FROM pragma_table_info('notes') WHERE name IN ('source', 'severity')",
        )? != 2
            || one(
                "SELECT count(*) FROM sqlite_master WHERE tbl_name = 'notes' AND type = 'index'",
            )? != 2
        {
            problems.push("the notes schema is not the rebuilt one".to_string());
        }
        if who == Who::Tool {
            let version: String =
                conn.query_row("SELECT version FROM schema_version", [], |r| r.get(0))?;
            if version != "1.2" {
                problems.push(format!("version {version}"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("after {}: {}", who.name(), problems.join(", ")).into())
        }
    }
}

pub(super) fn case_peers(bench: &Bench, out: &mut Figures) -> Res<()> {
    println!("\n== 7. the same two steps by aifp-migrate, dbmate, sqlx and the floor");
    let rows: Vec<u64> = std::env::var("AIFP_BENCH_PEER_ROWS")
        .unwrap_or_else(|_| PEER_ROWS.into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let rounds = std::env::var("AIFP_BENCH_PEER_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(PEER_ROUNDS);
    let dbmate = find_or_install("dbmate", DBMATE_INSTALL);
    let sqlx = find_or_install("sqlx", SQLX_INSTALL);
    if bench.sqlite3.is_none() {
        println!("  sqlite3 is missing (apt-get install sqlite3): the floor cannot run");
    }
    println!(
        "  dbmate: {}; sqlx: {}; {rounds} rounds, the order rotating each round",
        dbmate
            .as_deref()
            .map_or("missing".into(), |p| version(p, "--version")),
        sqlx.as_deref()
            .map_or("missing".into(), |p| version(p, "--version")),
    );
    for n in rows {
        let name = format!("7  2 steps, {} rows", thousands(n));
        if !bench.room_for(n * GUESSED_ROW_BYTES) {
            out.skipped(&name, ">= 1.00x", "not enough free disk in the temp dir");
            continue;
        }
        if let Err(e) = peers_at(bench, out, n, rounds, dbmate.as_deref(), sqlx.as_deref()) {
            out.failed(&name, &*e);
        }
    }
    out.notes.push(format!(
        "case 7: the same files and statements: `{PEER_ADD}` then `{PEER_REBUILD}` from \
         {PEER_SET}. aifp-migrate = `--db project` (plan, quick_check, backup synced with its \
         folder, both steps and their checks, quick_check before COMMIT); dbmate = `dbmate \
         --no-dump-schema migrate` (no backup, no checks; the schema dump left out, which only \
         makes dbmate faster); sqlx = `sqlx migrate run` (no backup, no checks; the rebuild file \
         is `-- no-transaction` with foreign keys off, else dropping notes deletes note_tags' \
         rows); floor = `{FLOOR_COMMAND}` (the copy not synced) fed both steps in one \
         transaction. Each run on a fresh synced copy (not timed); peak RSS by GNU time of the \
         tool's own process (fork, exec, wait4). Ratio = the peer's time / ours, the median of \
         the round-by-round ratios: >= 1.00 means we are no slower."
    ));
    Ok(())
}

fn peers_at(
    bench: &Bench,
    out: &mut Figures,
    n: u64,
    rounds: usize,
    dbmate: Option<&Path>,
    sqlx: Option<&Path>,
) -> Res<()> {
    let started = Instant::now();
    let ws = PeerSpace::new(bench, n)?;
    let size = fs::metadata(&ws.pristine)?.len();
    println!(
        "  {} rows, {} (made in {:.0} s)",
        thousands(n),
        fmt_bytes(size),
        started.elapsed().as_secs_f64()
    );
    let mut procs: Vec<(Who, Proc)> = vec![(
        Who::Tool,
        bench
            .tool(ws.dir.path(), &ws.dir.path().join("proj"))
            .env("AIFP_MIGRATIONS", bench.root.join(PEER_SET))
            .arg("--db")
            .arg("project"),
    )];
    if let Some(dbmate) = dbmate {
        procs.push((
            Who::Dbmate,
            Proc::new(dbmate, &ws.folder(Who::Dbmate))
                .arg("--url")
                .arg("sqlite:project.db")
                .arg("--no-dump-schema")
                .arg("migrate"),
        ));
    }
    if let Some(sqlx) = sqlx {
        procs.push((
            Who::Sqlx,
            Proc::new(sqlx, &ws.folder(Who::Sqlx))
                .arg("migrate")
                .arg("run")
                .arg("--database-url")
                .arg("sqlite:project.db"),
        ));
    }
    if bench.sqlite3.is_some() {
        procs.push((
            Who::Floor,
            Proc::new("sh", &ws.folder(Who::Floor))
                .arg("-c")
                .arg(FLOOR_COMMAND)
                .stdin(&ws.folder(Who::Floor).join("floor.sql")),
        ));
    }
    let rss = bench.gnu_time.then(|| bench.rss_file());
    let mut samples: Vec<Vec<Sample>> = procs.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        let mut line = format!("  round {}/{rounds}:", round + 1);
        for k in 0..procs.len() {
            let i = (k + round) % procs.len();
            let (who, proc) = &procs[i];
            ws.fresh(*who)?;
            let s = proc.run(rss.as_deref())?;
            ws.verify(*who)?;
            line.push_str(&format!(
                " {} {} ({});",
                who.name(),
                fmt_s(s.wall),
                fmt_rss(s.rss_kib.map(|k| k as f64))
            ));
            samples[i].push(s);
        }
        println!("{line}");
    }
    let tool = Stats::of_samples(&samples[0]);
    let tool_rss = tool.rss.unwrap_or(f64::INFINITY);
    for (i, (who, _)) in procs.iter().enumerate().skip(1) {
        let mut paired: Vec<f64> = samples[i]
            .iter()
            .zip(&samples[0])
            .map(|(p, t)| p.wall / t.wall)
            .collect();
        let each: Vec<String> = paired.iter().map(|r| format!("{r:.2}")).collect();
        paired.sort_by(f64::total_cmp);
        let m = median(&paired);
        println!(
            "  {} / aifp-migrate round by round: {} (median {m:.2})",
            who.name(),
            each.join(" ")
        );
        let p = Stats::of_samples(&samples[i]);
        out.rows.push(Row {
            case: format!(
                "7  2 steps, {} rows, {} (n={rounds})",
                thousands(n),
                fmt_bytes(size)
            ),
            tool: fmt_s(tool.median),
            baseline: match who {
                Who::Floor => FLOOR.into(),
                other => other.name().into(),
            },
            base: fmt_s(p.median),
            ratio: format!("{m:.2}x"),
            target: ">= 1.00x (theirs/ours)".into(),
            result: verdict(m >= 1.0),
            tool_rss: fmt_rss(tool.rss),
            base_rss: fmt_rss(p.rss),
        });
    }
    out.rows.push(Row {
        case: format!("7  peak RSS, 2 steps, {} rows (n={rounds})", thousands(n)),
        tool: fmt_s(tool.median),
        target: format!("RSS <= {} MiB", PEER_RSS_TARGET_KIB / 1024.0),
        result: verdict(tool_rss <= PEER_RSS_TARGET_KIB),
        tool_rss: fmt_rss(tool.rss),
        ..Row::default()
    });
    // The status commands, on the databases each tool just migrated.
    let mut status: Vec<(Who, Proc)> = vec![(
        Who::Tool,
        bench
            .tool(ws.dir.path(), &ws.dir.path().join("proj"))
            .env("AIFP_MIGRATIONS", bench.root.join(PEER_SET))
            .arg("--check")
            .arg("--db")
            .arg("project"),
    )];
    if let Some(dbmate) = dbmate {
        status.push((
            Who::Dbmate,
            Proc::new(dbmate, &ws.folder(Who::Dbmate))
                .arg("--url")
                .arg("sqlite:project.db")
                .arg("status"),
        ));
    }
    if let Some(sqlx) = sqlx {
        status.push((
            Who::Sqlx,
            Proc::new(sqlx, &ws.folder(Who::Sqlx))
                .arg("migrate")
                .arg("info")
                .arg("--database-url")
                .arg("sqlite:project.db"),
        ));
    }
    {
        let mut walls: Vec<Vec<f64>> = status.iter().map(|_| Vec::new()).collect();
        for _ in 0..=STATUS_RUNS {
            for (i, (_, proc)) in status.iter().enumerate() {
                walls[i].push(proc.run(None)?.wall);
            }
        }
        let mut medians = Vec::new();
        for w in &mut walls {
            w.remove(0); // the warm-up
            w.sort_by(f64::total_cmp);
            medians.push(median(w));
        }
        for (i, (who, _)) in status.iter().enumerate().skip(1) {
            out.rows.push(Row {
                case: format!("7  status, 1 db, {} rows (n={STATUS_RUNS})", thousands(n)),
                tool: fmt_ms(medians[0]),
                baseline: format!("{} status", who.name()),
                base: fmt_ms(medians[i]),
                ratio: format!("{:.2}x", medians[i] / medians[0]),
                target: "fastest".into(),
                result: verdict(medians[0] <= medians[i]),
                ..Row::default()
            });
        }
    }
    Ok(())
}
