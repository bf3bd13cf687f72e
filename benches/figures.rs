//! The figures of docs/BENCHMARKS.md, side by side in one run: `cargo bench --bench figures`.
//!
//! 1. `--check` on a project with all four databases (target: median at most 5 ms);
//! 2. migrating a 1,000,000-row project.db, against the floor `cp db db.bak && sqlite3 -bail db`
//!    running the same SQL in one transaction (target: at most 1.25 times the floor's median);
//! 3. peak RSS migrating a ~100 MB and a ~1 GB database (target: at most 64 MiB, flat with size);
//! 4. `--check --scan` over 1,000 projects (target: at most 2 s);
//! 5. converging a 1,000,000-row project.db to a schema file (`--to-schema`: notes rebuilt for a
//!    new CHECK, an external-content FTS5 index built from it), against the floor running the SQL
//!    the tool's dry run prints (target: at most 1.1 times the floor; peak RSS at most 32 MiB and
//!    flat at 1M and 3M rows). `AIFP_BENCH_SKIP_3M=1` skips the 3M-row run.
//!
//! Every run is a process of the release binary in a temp dir of its own; wall time is taken
//! around the child, peak RSS by GNU time (`/usr/bin/time -f %M`). `AIFP_BENCH_SKIP_1GB=1`
//! skips the 1 GB case.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rusqlite::Connection;
use tempfile::TempDir;

#[path = "figures/peers.rs"]
mod peers;
/// The fixtures of AIFP's released versions, shared with the tests.
#[allow(dead_code)]
#[path = "../tests/common/released.rs"]
mod released;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const REPRODUCE: &str = "cargo bench --bench figures";
const GNU_TIME: &str = "/usr/bin/time";
const SKIP_1GB: &str = "AIFP_BENCH_SKIP_1GB";
const SKIP_3M: &str = "AIFP_BENCH_SKIP_3M";
/// The floor of cases 2 and 3, run in the project folder with the SQL on stdin.
const FLOOR_COMMAND: &str = "cp project.db project.db.bak && sqlite3 -bail project.db";
const FLOOR: &str = "floor: cp + sqlite3 -bail";

const CHECK_WARMUPS: usize = 3;
const CHECK_RUNS: usize = 20;
const COLD_RUNS: usize = 5;
const RSS_RUNS: usize = 3;
const CHECK_TARGET_MS: f64 = 5.0;
/// `--check` with an installed package found (and cached) against one without.
const PACKAGE_CHECK_TARGET: f64 = 1.5;

const SCAN_PROJECTS: usize = 1_000;
const SCAN_RUNS: usize = 5;
const SCAN_TARGET_S: f64 = 2.0;

const MIGRATE_ROWS: u64 = 1_000_000;
const MIGRATE_RUNS: usize = 5;
const FLOOR_TARGET: f64 = 1.25;

const RSS_TARGET_KIB: f64 = 64.0 * 1024.0;

/// Case 5: the target schema file, its version, the rows, and the targets.
const CONVERGE_TARGET: &str = "benches/fixtures/converge/project_v2.0.sql";
const CONVERGE_VERSION: &str = "2.0";
const CONVERGE_ROWS: u64 = 1_000_000;
const CONVERGE_BIG_ROWS: u64 = 3_000_000;
const CONVERGE_RUNS: usize = 5;
const CONVERGE_FLOOR_TARGET: f64 = 1.1;
const CONVERGE_RSS_KIB: f64 = 32.0 * 1024.0;
/// The 1 GB figure counts as "not growing" within this factor of the 100 MB one.
const RSS_FLAT: f64 = 1.10;
/// Only to size the disk check before a database exists; the real width is measured.
const GUESSED_ROW_BYTES: u64 = 160;
/// Working copy, backup, the `-wal` of the rebuild and the grown result, with room to spare.
const DISK_FACTOR: u64 = 8;

/// The migration set of cases 2 and 3: `v1.0_initial_schema.sql` and `v1.0_to_v1.1_bench.sql`.
const FIXTURES: &str = "benches/fixtures/migrations";
const STEP_SCRIPT: &str = "project/v1.0_to_v1.1_bench.sql";
const INITIAL_SCRIPT: &str = "project/v1.0_initial_schema.sql";

/// 60 to 100 bytes of content per note, deterministic, in one statement.
const FILL_NOTES: &str = "
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
INSERT INTO notes (content, note_type, reference_table, reference_id, created_at, updated_at)
SELECT printf('Note %07d: function f_%04d in src/module_%03d.py %.*s', i, i % 5000, i % 300,
              10 + i % 40, 'needs another look after the refactor: the caller passes an empty list'),
       CASE i % 4 WHEN 0 THEN 'clarification' WHEN 1 THEN 'research' WHEN 2 THEN 'pivot'
                  ELSE 'info' END,
       CASE i % 3 WHEN 0 THEN 'functions' WHEN 1 THEN 'files' END,
       CASE WHEN i % 3 < 2 THEN i % 5000 + 1 END,
       datetime(1767225600 + i * 7, 'unixepoch'),
       datetime(1767225600 + i * 11, 'unixepoch')
FROM n";
const FILL_TAGS: &str = "
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)
INSERT INTO tags (name) SELECT printf('tag-%02d', i) FROM n;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 9999)
INSERT OR IGNORE INTO note_tags (note_id, tag_id)
SELECT (i * 7919) % (SELECT max(id) FROM notes) + 1, i % 50 + 1 FROM n;";

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    match Bench::new(root) {
        Ok(bench) => bench.run_all(),
        Err(e) => {
            eprintln!("figures: {e}");
            std::process::exit(1);
        }
    }
}

/// What every case shares: the binary, which outside tools are there, a scratch folder.
struct Bench {
    root: PathBuf,
    bin: PathBuf,
    gnu_time: bool,
    sqlite3: Option<String>,
    scratch: TempDir,
}

impl Bench {
    fn new(root: &Path) -> Res<Self> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let built = Command::new(cargo)
            .args(["build", "--release", "--quiet", "--bin", "aifp-migrate"])
            .current_dir(root)
            .status()?;
        if !built.success() {
            return Err(format!("cargo build --release failed ({built})").into());
        }
        let target = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => root.join(dir),
            None => root.join("target"),
        };
        let bin = target.join("release").join("aifp-migrate");
        if !bin.is_file() {
            return Err(format!("{} is missing after the build", bin.display()).into());
        }
        let sqlite3 = Command::new("sqlite3")
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        Ok(Bench {
            root: root.to_path_buf(),
            bin,
            gnu_time: Path::new(GNU_TIME).is_file(),
            sqlite3,
            scratch: tempdir()?,
        })
    }

    fn run_all(&self) {
        let started = Instant::now();
        self.header();
        let mut out = Figures::default();
        // AIFP_BENCH_CASES=2,4 runs only those cases (all when unset).
        let only = std::env::var("AIFP_BENCH_CASES").unwrap_or_default();
        let wanted = |case: &str| only.is_empty() || only.split(',').any(|c| c.trim() == case);
        if wanted("1") {
            if let Err(e) = self.case_check(&mut out) {
                out.failed("1  --check, 4 databases", &*e);
            }
        }
        let mut row_bytes = None;
        if wanted("2") {
            row_bytes = match self.case_migrate(&mut out) {
                Ok(width) => width,
                Err(e) => {
                    out.failed("2  --db project, 1,000,000 rows", &*e);
                    None
                }
            };
        }
        if wanted("3") {
            if let Err(e) = self.case_rss(row_bytes, &mut out) {
                out.failed("3  peak RSS", &*e);
            }
        }
        if wanted("4") {
            if let Err(e) = self.case_scan(&mut out) {
                out.failed("4  --check --scan, 1,000 projects", &*e);
            }
        }
        if wanted("5") || wanted("converge") {
            if let Err(e) = self.case_converge(&mut out) {
                out.failed("5  --to-schema, 1,000,000 rows", &*e);
            }
        }
        if wanted("6") || wanted("package") {
            if let Err(e) = self.case_package_check(&mut out) {
                out.failed("6  --check, installed package", &*e);
            }
        }
        if wanted("7") || wanted("peers") {
            if let Err(e) = peers::case_peers(self, &mut out) {
                out.failed("7  2 steps beside dbmate and sqlx", &*e);
            }
        }
        println!(
            "\n== Figures ({:.0} s in all; reproduce: {REPRODUCE})\n",
            started.elapsed().as_secs_f64()
        );
        print_table(&out.rows);
        println!();
        for note in &out.notes {
            println!("- {note}");
        }
    }

    fn header(&self) {
        println!("aifp-migrate figures; reproduce with: {REPRODUCE}");
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        let cpu = fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let mem = fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                let kib: u64 = s.lines().next()?.split_whitespace().nth(1)?.parse().ok()?;
                Some(format!("{:.1} GiB RAM", kib as f64 / 1024.0 / 1024.0))
            })
            .unwrap_or_default();
        let load = fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        println!("machine:  nproc {cpus}, {cpu}, {mem}, Linux {kernel}, load average {load}");
        println!(
            "SQLite:   {} bundled in aifp-migrate (rusqlite); sqlite3 CLI: {}",
            rusqlite::version(),
            self.sqlite3
                .as_deref()
                .unwrap_or("not installed (apt-get install sqlite3)")
        );
        let tmp = std::env::temp_dir();
        println!(
            "binary:   {}\ntemp dir: {} ({} free)",
            self.bin.display(),
            tmp.display(),
            free_bytes(&tmp).map_or("?".into(), fmt_bytes)
        );
        if !self.gnu_time {
            println!("peak RSS: {GNU_TIME} is missing (apt-get install time): RSS figures skipped");
        }
    }

    /// The tool, run from `cwd` with HOME, AIFP_HOME and XDG_CACHE_HOME inside `dir`.
    fn tool(&self, dir: &Path, cwd: &Path) -> Proc {
        Proc::new(&self.bin, cwd)
            .env("HOME", dir.join("home"))
            .env("AIFP_HOME", dir.join("core"))
            .env("XDG_CACHE_HOME", dir.join("cache"))
    }

    fn rss_file(&self) -> PathBuf {
        self.scratch.path().join("rss")
    }

    /// Warm-ups, then `runs` timed runs straight from this process (no wrapper in the wall
    /// time), then RSS_RUNS more under GNU time for the peak RSS.
    fn sample(&self, proc: &Proc, runs: usize) -> Res<Stats> {
        for _ in 0..CHECK_WARMUPS {
            proc.run(None)?;
        }
        let mut walls = Vec::with_capacity(runs);
        for _ in 0..runs {
            walls.push(proc.run(None)?.wall);
        }
        let mut rss = Vec::new();
        if self.gnu_time {
            for _ in 0..RSS_RUNS {
                rss.extend(proc.run(Some(&self.rss_file()))?.rss_kib);
            }
        }
        Ok(Stats::of(&walls, &rss))
    }

    /// Case 1: `--check` on all four databases at their latest version, bundled sets.
    fn case_check(&self, out: &mut Figures) -> Res<()> {
        println!("\n== 1. --check on a project with all four databases (bundled sets)");
        let dir = tempdir()?;
        let d = dir.path();
        let proj = d.join("proj");
        fs::create_dir_all(proj.join(".aifp-project"))?;
        // The sets built into the binary, as after an AIFP pull.
        let tool = |args: &[&str]| {
            let mut p = self.tool(d, &proj).unset("AIFP_MIGRATIONS");
            for a in args {
                p = p.arg(a);
            }
            p
        };
        tool(&["--init"]).run(None)?;
        tool(&["--init", "--db", "aifp_core"]).run(None)?;
        let check = tool(&["--check"]);

        // Cold: an empty drift cache, so each run replays the sets in memory.
        let cache = d.join("cache");
        let mut cold = Vec::new();
        for _ in 0..COLD_RUNS {
            let _ = fs::remove_dir_all(&cache);
            cold.push(check.run(None)?.wall);
        }
        let current = check.run(None)?.stdout;
        let found = current.lines().filter(|l| l.contains(" current ")).count();
        if found != 4 {
            return Err(
                format!("expected 4 current databases, --check printed:\n{current}").into(),
            );
        }
        let warm = self.sample(&check, CHECK_RUNS)?;
        let cold = Stats::of(&cold, &[]);
        println!(
            "  tool warm: median {} (min {}, max {}) over {CHECK_RUNS} runs after {CHECK_WARMUPS} warm-ups",
            fmt_ms(warm.median), fmt_ms(warm.min), fmt_ms(warm.max)
        );
        println!(
            "  tool cold (drift cache emptied before each run): first run {}, median {} over {COLD_RUNS}",
            fmt_ms(cold.first), fmt_ms(cold.median)
        );

        // The same check with the sets read from a folder ($AIFP_MIGRATIONS) instead.
        let sets = d.join("sets");
        copy_dir(&self.root.join("migrations"), &sets)?;
        let from_folder = self
            .tool(d, &proj)
            .env("AIFP_MIGRATIONS", &sets)
            .arg("--check");
        let folder = self.sample(&from_folder, CHECK_RUNS)?;
        println!(
            "  tool warm, sets from $AIFP_MIGRATIONS: median {}",
            fmt_ms(folder.median)
        );

        let spawn = self.sample(&Proc::new("/bin/true", d), CHECK_RUNS)?;
        println!("  /bin/true: median {}", fmt_ms(spawn.median));
        let dbs = [
            d.join("core/aifp_core.db"),
            proj.join(".aifp-project/project.db"),
            proj.join(".aifp-project/user_preferences.db"),
            proj.join(".aifp-project/user_directives.db"),
        ];
        let readers = if self.sqlite3.is_some() {
            let mut p = Proc::new("sh", d).arg("-c").arg(
                "for db in \"$@\"; do sqlite3 \"$db\" 'SELECT version FROM schema_version' || exit 1; done",
            );
            p = p.arg("sh");
            for db in &dbs {
                p = p.arg(db);
            }
            let out = p.run(None)?.stdout;
            if out.lines().count() != 4 {
                return Err(format!("sqlite3 read {out:?} instead of four versions").into());
            }
            let s = self.sample(&p, CHECK_RUNS)?;
            println!("  sh + 4 sqlite3 processes: median {}", fmt_ms(s.median));
            Some(s)
        } else {
            println!("  sqlite3 is missing (apt-get install sqlite3): its baseline is skipped");
            None
        };

        out.rows.push(Row {
            case: format!("1  --check, 4 dbs, warm (n={CHECK_RUNS})"),
            tool: fmt_ms(warm.median),
            baseline: "/bin/true".into(),
            base: fmt_ms(spawn.median),
            ratio: ratio(warm.median, spawn.median),
            target: format!("<= {CHECK_TARGET_MS} ms"),
            result: verdict(warm.median * 1e3 <= CHECK_TARGET_MS),
            tool_rss: fmt_rss(warm.rss),
            base_rss: fmt_rss(spawn.rss),
        });
        if let Some(s) = &readers {
            out.rows.push(Row {
                case: format!("   --check, 4 dbs, warm (n={CHECK_RUNS})"),
                tool: fmt_ms(warm.median),
                baseline: "sh + 4 x sqlite3".into(),
                base: fmt_ms(s.median),
                ratio: ratio(warm.median, s.median),
                target: "(info)".into(),
                tool_rss: fmt_rss(warm.rss),
                base_rss: fmt_rss(s.rss),
                ..Row::default()
            });
        }
        out.rows.push(Row {
            case: format!("   --check, 4 dbs, cold (n={COLD_RUNS})"),
            tool: fmt_ms(cold.median),
            target: "(info)".into(),
            ..Row::default()
        });
        out.rows.push(Row {
            case: format!("   --check, sets from a folder, warm (n={CHECK_RUNS})"),
            tool: fmt_ms(folder.median),
            target: "(info)".into(),
            tool_rss: fmt_rss(folder.rss),
            ..Row::default()
        });
        out.notes.push(format!(
            "case 1: the median is over warm runs, the drift cache under $XDG_CACHE_HOME filled; \
             the very first (cold) run took {}, and \"cold\" is the median of {COLD_RUNS} runs \
             each with the cache emptied first. Bundled sets (AIFP_MIGRATIONS unset) except the \
             \"sets from a folder\" row. \"sh + 4 x sqlite3\" is one `sh -c` running four \
             sqlite3 processes, one `SELECT version FROM schema_version` per database.",
            fmt_ms(cold.first)
        ));
        Ok(())
    }

    /// Case 6: `--check` of a project made by AIMFP 1.35 with the package installed (found by
    /// asking `python3`, whose answer is cached), against `--check` of a plan-era project without
    /// a package, interleaved; the first, uncached run too.
    fn case_package_check(&self, out: &mut Figures) -> Res<()> {
        println!("\n== 6. --check with an installed package, against --check without one");
        let dir = tempdir()?;
        let d = dir.path();
        let site = d.join("site-packages");
        fs::create_dir_all(&site)?;
        released::package(&site, released::Flavour::Aimfp, "1.35.0");
        let real = d.join("real");
        fs::create_dir_all(&real)?;
        released::project(&real, "1.35.0");
        let with = self
            .tool(d, &real)
            .unset("AIFP_PACKAGE")
            .env("PYTHONPATH", &site)
            .arg("--check");
        // The baseline: a plan-era project, all four databases current, no package looked for.
        let plan = d.join("plan");
        fs::create_dir_all(plan.join(".aifp-project"))?;
        let tool = |args: &[&str]| {
            let mut p = self
                .tool(d, &plan)
                .unset("AIFP_MIGRATIONS")
                .env("AIFP_PACKAGE", "none");
            for a in args {
                p = p.arg(a);
            }
            p
        };
        tool(&["--init"]).run(None)?;
        tool(&["--init", "--db", "aifp_core"]).run(None)?;
        let without = tool(&["--check"]);

        let first = with.run(None)?;
        if !first.stdout.contains("installed AIFP: aimfp 1.35.0") {
            return Err(format!("the package was not found:\n{}", first.stdout).into());
        }
        for _ in 0..CHECK_WARMUPS {
            with.run(None)?;
            without.run(None)?;
        }
        let (mut a, mut b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..CHECK_RUNS {
            let x = with.run(None)?.wall;
            let y = without.run(None)?.wall;
            ratios.push(x / y);
            a.push(x);
            b.push(y);
        }
        let mut rss = (Vec::new(), Vec::new());
        if self.gnu_time {
            for _ in 0..RSS_RUNS {
                rss.0.extend(with.run(Some(&self.rss_file()))?.rss_kib);
                rss.1.extend(without.run(Some(&self.rss_file()))?.rss_kib);
            }
        }
        let with_s = Stats::of(&a, &rss.0);
        let without_s = Stats::of(&b, &rss.1);
        ratios.sort_by(f64::total_cmp);
        let r = ratios[ratios.len() / 2];
        println!(
            "  with the package (cached): median {}; without: median {}; median of pair ratios {r:.2}; first, uncached run {}",
            fmt_ms(with_s.median),
            fmt_ms(without_s.median),
            fmt_ms(first.wall)
        );
        out.rows.push(Row {
            case: format!("6  --check, installed package, cached (n={CHECK_RUNS})"),
            tool: fmt_ms(with_s.median),
            baseline: "--check, no package".into(),
            base: fmt_ms(without_s.median),
            ratio: format!("{r:.2}x"),
            target: format!("<= {PACKAGE_CHECK_TARGET}x"),
            result: verdict(r <= PACKAGE_CHECK_TARGET),
            tool_rss: fmt_rss(with_s.rss),
            base_rss: fmt_rss(without_s.rss),
        });
        out.rows.push(Row {
            case: "   --check, installed package, first run (uncached)".into(),
            tool: fmt_ms(first.wall),
            target: "(info)".into(),
            ..Row::default()
        });
        out.notes.push(
            "case 6: the package is found by asking python3 (PYTHONPATH names a folder holding a \
             fake aimfp 1.35.0 built from the test fixtures), a project made by 1.35.0 is checked; \
             the baseline is a plan-era project with all four databases current and no package \
             looked for (AIFP_PACKAGE=none). The ratio is the median of pair-by-pair ratios of \
             interleaved runs; the first run asks Python and builds the package's schemas."
                .into(),
        );
        Ok(())
    }

    /// Case 4: `--check --scan` over 1,000 small projects (three databases each, as `--init`
    /// makes them), against `find` walking the same tree.
    fn case_scan(&self, out: &mut Figures) -> Res<()> {
        println!("\n== 4. --check --scan over {SCAN_PROJECTS} small projects");
        let dir = tempdir()?;
        let d = dir.path();
        let one = d.join("one");
        fs::create_dir_all(&one)?;
        let tool = |cwd: &Path| self.tool(d, cwd).unset("AIFP_MIGRATIONS");
        tool(&one).arg("--init").run(None)?;
        let work = d.join("work");
        for i in 0..SCAN_PROJECTS {
            let project = work.join(format!("p{i:04}/.aifp-project"));
            copy_dir(&one.join(".aifp-project"), &project)?;
            fs::create_dir_all(work.join(format!("p{i:04}/src")))?;
        }
        let scan = tool(&work)
            .arg("--check")
            .arg("--scan")
            .arg(&work)
            .arg("-q");
        let first = scan.run(None)?.wall;
        let report = tool(&work)
            .arg("--check")
            .arg("--scan")
            .arg(&work)
            .arg("--format")
            .arg("json")
            .run(None)?
            .stdout;
        let entries = report.matches("\"name\": \"project\"").count();
        if entries != SCAN_PROJECTS {
            return Err(format!(
                "--scan reported {entries} project databases, not {SCAN_PROJECTS}"
            )
            .into());
        }
        let warm = self.sample(&scan, SCAN_RUNS)?;
        let walk = Proc::new("find", d)
            .arg(&work)
            .arg("-name")
            .arg(".aifp-project");
        let find = self.sample(&walk, SCAN_RUNS)?;
        println!(
            "  tool: first run {}, warm median {} over {SCAN_RUNS}; find: median {}",
            fmt_ms(first),
            fmt_ms(warm.median),
            fmt_ms(find.median)
        );
        out.rows.push(Row {
            case: format!("4  --check --scan, {SCAN_PROJECTS} projects (n={SCAN_RUNS})"),
            tool: fmt_ms(warm.median),
            baseline: "find -name .aifp-project".into(),
            base: fmt_ms(find.median),
            ratio: ratio(warm.median, find.median),
            target: format!("<= {SCAN_TARGET_S} s"),
            result: verdict(warm.median <= SCAN_TARGET_S),
            tool_rss: fmt_rss(warm.rss),
            base_rss: fmt_rss(find.rss),
        });
        out.notes.push(format!(
            "case 4: {SCAN_PROJECTS} copies of one project made by --init ({} databases in all); \
             the first run (drift cache empty) took {}.",
            3 * SCAN_PROJECTS,
            fmt_ms(first)
        ));
        Ok(())
    }

    /// Case 5: converging a 1M-row project.db to a schema file (notes rebuilt, an FTS5 index
    /// built), tool against the floor running the dry run's SQL, interleaved; then the peak RSS
    /// of both at 3M rows.
    fn case_converge(&self, out: &mut Figures) -> Res<()> {
        println!(
            "\n== 5. converging a {}-row project.db to {CONVERGE_TARGET} (notes rebuilt for a new CHECK, FTS5 index built)",
            thousands(CONVERGE_ROWS)
        );
        let name = format!("5  --to-schema, {} rows", thousands(CONVERGE_ROWS));
        let target = format!("<= {CONVERGE_FLOOR_TARGET}x floor");
        if self.sqlite3.is_none() {
            out.skipped(
                &name,
                &target,
                "no floor without sqlite3 (apt-get install sqlite3)",
            );
            return Ok(());
        }
        if !self.room_for(CONVERGE_ROWS * GUESSED_ROW_BYTES) {
            out.skipped(&name, &target, "not enough free disk in the temp dir");
            return Ok(());
        }
        let ws = ConvergeSpace::new(self, CONVERGE_ROWS)?;
        let size = fs::metadata(&ws.pristine)?.len();
        println!(
            "  database: {} ({} rows, WAL mode); 1 untimed warm-up pair, then {CONVERGE_RUNS} timed",
            fmt_bytes(size),
            thousands(CONVERGE_ROWS)
        );
        let (tool, floor) = ws.runs(self, CONVERGE_RUNS, true)?;
        let mut paired: Vec<f64> = tool
            .iter()
            .zip(&floor)
            .map(|(t, f)| t.wall / f.wall)
            .collect();
        let each: Vec<String> = paired.iter().map(|r| format!("{r:.2}")).collect();
        paired.sort_by(f64::total_cmp);
        println!(
            "  tool/floor run by run: {} (median {:.2})",
            each.join(" "),
            median(&paired)
        );
        let t = Stats::of_samples(&tool);
        let f = Stats::of_samples(&floor);
        let rss_ok = |s: &Stats| s.rss.is_none_or(|r| r <= CONVERGE_RSS_KIB);
        out.rows.push(Row {
            case: format!("{name}, {} (n={CONVERGE_RUNS})", fmt_bytes(size)),
            tool: fmt_s(t.median),
            baseline: FLOOR.into(),
            base: fmt_s(f.median),
            ratio: ratio(t.median, f.median),
            result: verdict(t.median <= CONVERGE_FLOOR_TARGET * f.median && rss_ok(&t)),
            target: format!("{target}, RSS <= 32 MiB"),
            tool_rss: fmt_rss(t.rss),
            base_rss: fmt_rss(f.rss),
        });
        drop(ws);

        let big = format!("5  --to-schema, {} rows", thousands(CONVERGE_BIG_ROWS));
        let big_target = "RSS <= 32 MiB, flat".to_string();
        if !self.gnu_time {
            out.skipped(&big, &big_target, "needs GNU time: apt-get install time");
        } else if std::env::var_os(SKIP_3M).is_some_and(|v| v == "1") {
            println!(
                "  {} rows: skipped ({SKIP_3M}=1)",
                thousands(CONVERGE_BIG_ROWS)
            );
            out.skipped(&big, &big_target, &format!("skipped because {SKIP_3M}=1"));
        } else if self.room_for(CONVERGE_BIG_ROWS * GUESSED_ROW_BYTES) {
            let started = Instant::now();
            let ws = ConvergeSpace::new(self, CONVERGE_BIG_ROWS)?;
            let size = fs::metadata(&ws.pristine)?.len();
            println!(
                "  {} rows, {} (made in {:.0} s); 1 run each, no warm-up",
                thousands(CONVERGE_BIG_ROWS),
                fmt_bytes(size),
                started.elapsed().as_secs_f64()
            );
            let (tool, floor) = ws.runs(self, 1, false)?;
            let b = Stats::of_samples(&tool);
            let bf = Stats::of_samples(&floor);
            let grows = b.rss.unwrap_or(f64::NAN) / t.rss.unwrap_or(f64::NAN);
            out.rows.push(Row {
                case: format!("{big}, {} (n=1)", fmt_bytes(size)),
                tool: fmt_s(b.median),
                baseline: FLOOR.into(),
                base: fmt_s(bf.median),
                ratio: ratio(b.median, bf.median),
                result: verdict(rss_ok(&b) && grows <= RSS_FLAT),
                target: big_target,
                tool_rss: fmt_rss(b.rss),
                base_rss: fmt_rss(bf.rss),
            });
            out.notes.push(format!(
                "case 5: the tool's peak RSS at {} rows is {grows:.2}x its peak at {} ({} vs {}; \
                 flat means within {RSS_FLAT}x); largest anonymous part {} vs {}, file-backed {} \
                 vs {}.",
                thousands(CONVERGE_BIG_ROWS),
                thousands(CONVERGE_ROWS),
                fmt_rss(b.rss),
                fmt_rss(t.rss),
                fmt_rss(b.anon),
                fmt_rss(t.anon),
                fmt_rss(b.file),
                fmt_rss(t.file),
            ));
        }
        out.notes.push(format!(
            "case 5: tool = `aifp-migrate --db project --to-schema {CONVERGE_TARGET}` (AIFP_MIGRATIONS \
             an empty folder: no scripts, the plan is generated); floor = `sh -c '{FLOOR_COMMAND}'` \
             fed `PRAGMA foreign_keys=OFF; BEGIN; <the step's sql from --dry-run --format json>; \
             UPDATE schema_version SET version='{CONVERGE_VERSION}'; COMMIT;`. Fresh synced copy \
             before each run, tool and floor alternate, both under GNU time."
        ));
        Ok(())
    }

    /// Case 2: the 1M-row migration, tool against the floor, runs interleaved.
    fn case_migrate(&self, out: &mut Figures) -> Res<Option<f64>> {
        println!(
            "\n== 2. migrating a {}-row project.db (3 ADD COLUMNs, 2 index builds, a 12-step rebuild)",
            thousands(MIGRATE_ROWS)
        );
        let name = format!("2  --db project, {} rows", thousands(MIGRATE_ROWS));
        let target = format!("<= {FLOOR_TARGET}x floor");
        if self.sqlite3.is_none() {
            println!("  sqlite3 is missing (apt-get install sqlite3): the floor cannot run");
            out.notes
                .push("case 2: no floor without sqlite3 (apt-get install sqlite3)".into());
        }
        if !self.room_for(MIGRATE_ROWS * GUESSED_ROW_BYTES) {
            out.skipped(&name, &target, "not enough free disk in the temp dir");
            return Ok(None);
        }
        let ws = Workspace::new(self, MIGRATE_ROWS)?;
        let size = fs::metadata(&ws.pristine)?.len();
        println!(
            "  database: {} ({} rows, WAL mode); 1 untimed warm-up pair, then {MIGRATE_RUNS} timed",
            fmt_bytes(size),
            thousands(MIGRATE_ROWS)
        );
        let (tool, floor) = ws.runs(self, MIGRATE_RUNS, true)?;
        if !floor.is_empty() {
            let mut paired: Vec<f64> = tool
                .iter()
                .zip(&floor)
                .map(|(t, f)| t.wall / f.wall)
                .collect();
            let each: Vec<String> = paired.iter().map(|r| format!("{r:.2}")).collect();
            paired.sort_by(f64::total_cmp);
            println!(
                "  tool/floor run by run: {} (median {:.2})",
                each.join(" "),
                median(&paired)
            );
        }
        let t = Stats::of_samples(&tool);
        let f = (!floor.is_empty()).then(|| Stats::of_samples(&floor));
        out.rows.push(Row {
            case: format!("{name}, {} (n={MIGRATE_RUNS})", fmt_bytes(size)),
            tool: fmt_s(t.median),
            baseline: FLOOR.into(),
            base: f.as_ref().map_or("-".into(), |f| fmt_s(f.median)),
            ratio: f.as_ref().map_or("-".into(), |f| ratio(t.median, f.median)),
            result: f.as_ref().map_or("n/a".into(), |f| {
                verdict(t.median <= FLOOR_TARGET * f.median)
            }),
            target,
            tool_rss: fmt_rss(t.rss),
            base_rss: f.as_ref().map_or("-".into(), |f| fmt_rss(f.rss)),
        });
        out.notes.push(format!(
            "case 2: tool = `aifp-migrate --db project` (plan, quick_check, preflight, backup \
             (a kernel copy with fsync, file and folder), the script, \
             history row, foreign_key_check, quick_check before COMMIT); floor = `sh -c \
             '{FLOOR_COMMAND}'` fed `PRAGMA foreign_keys=OFF; BEGIN; <the same script>; UPDATE \
             schema_version SET version='1.1'; COMMIT;` on stdin. Each run on a fresh, synced \
             copy of a pristine WAL database (the copy is not timed); tool and floor alternate; \
             both run under GNU time, which adds its own fork and exec (about 1 ms) to each."
        ));
        Ok(Some(size as f64 / MIGRATE_ROWS as f64))
    }

    /// Case 3: peak RSS of the same migration on a ~100 MB and a ~1 GB database.
    fn case_rss(&self, row_bytes: Option<f64>, out: &mut Figures) -> Res<()> {
        println!("\n== 3. peak RSS migrating a ~100 MB and a ~1 GB database");
        let row_bytes = row_bytes.unwrap_or(GUESSED_ROW_BYTES as f64);
        let mut small: Option<Stats> = None;
        for (label, bytes, runs) in [
            ("100 MB", 100_000_000u64, 3usize),
            ("1 GB", 1_000_000_000, 1),
        ] {
            let n = (bytes as f64 / row_bytes).round() as u64;
            let name = format!("3  peak RSS, {label} db");
            let mut target = format!("RSS <= {} MiB", RSS_TARGET_KIB / 1024.0);
            if small.is_some() {
                target.push_str(", flat");
            }
            if !self.gnu_time {
                out.skipped(&name, &target, "needs GNU time: apt-get install time");
                continue;
            }
            if label == "1 GB" && std::env::var_os(SKIP_1GB).is_some_and(|v| v == "1") {
                println!("  {label}: skipped ({SKIP_1GB}=1)");
                out.skipped(&name, &target, &format!("skipped because {SKIP_1GB}=1"));
                continue;
            }
            if !self.room_for(bytes) {
                out.skipped(&name, &target, "not enough free disk in the temp dir");
                continue;
            }
            let started = Instant::now();
            let ws = Workspace::new(self, n)?;
            let size = fs::metadata(&ws.pristine)?.len();
            println!(
                "  {label}: {} rows, {} (made in {:.0} s); {runs} run(s) each, no warm-up",
                thousands(n),
                fmt_bytes(size),
                started.elapsed().as_secs_f64()
            );
            let (tool, floor) = ws.runs(self, runs, false)?;
            drop(ws);
            let t = Stats::of_samples(&tool);
            let f = (!floor.is_empty()).then(|| Stats::of_samples(&floor));
            let rss = t.rss.unwrap_or(f64::INFINITY);
            let mut pass = rss <= RSS_TARGET_KIB;
            match &small {
                Some(small) => {
                    let grows = rss / small.rss.unwrap_or(f64::NAN);
                    pass &= grows <= RSS_FLAT;
                    out.notes.push(format!(
                        "case 3: the tool's peak RSS on the {label} database is {grows:.2}x its \
                         peak on the 100 MB one ({} vs {}): {}. Sampled every {} ms, the largest \
                         anonymous part (heap, stacks) was {} vs {} and the largest file-backed \
                         part (the binary, SQLite's mapped WAL index `-shm`) {} vs {}. Wall \
                         times and ratios in these rows are for information; the target is RSS.",
                        fmt_rss(Some(rss)),
                        fmt_rss(small.rss),
                        if grows <= RSS_FLAT {
                            format!("flat (within {RSS_FLAT}x)")
                        } else {
                            format!("it grows with size (more than {RSS_FLAT}x)")
                        },
                        POLL.as_millis(),
                        fmt_rss(t.anon),
                        fmt_rss(small.anon),
                        fmt_rss(t.file),
                        fmt_rss(small.file),
                    ));
                }
                None => small = Some(t.clone()),
            }
            out.rows.push(Row {
                case: format!(
                    "{name}: {}, {} rows (n={runs})",
                    fmt_bytes(size),
                    thousands(n)
                ),
                tool: fmt_s(t.median),
                baseline: FLOOR.into(),
                base: f.as_ref().map_or("-".into(), |f| fmt_s(f.median)),
                ratio: f.as_ref().map_or("-".into(), |f| ratio(t.median, f.median)),
                target,
                result: verdict(pass),
                tool_rss: fmt_rss(t.rss),
                base_rss: f.as_ref().map_or("-".into(), |f| fmt_rss(f.rss)),
            });
        }
        Ok(())
    }

    /// Whether the temp dir has room for a case whose database is about `db_bytes`.
    fn room_for(&self, db_bytes: u64) -> bool {
        let tmp = std::env::temp_dir();
        let needed = db_bytes * DISK_FACTOR + (512 << 20);
        match free_bytes(&tmp) {
            Some(free) if free < needed => {
                println!(
                    "  skipped: a {} database needs about {} free, {} has {}",
                    fmt_bytes(db_bytes),
                    fmt_bytes(needed),
                    tmp.display(),
                    fmt_bytes(free)
                );
                false
            }
            _ => true,
        }
    }
}

/// A project with a generated project.db at v1.0, its pristine copy and the floor's script.
struct Workspace {
    dir: TempDir,
    rows: u64,
    pristine: PathBuf,
    proj: PathBuf,
    floor_sql: PathBuf,
}

impl Workspace {
    fn new(bench: &Bench, rows: u64) -> Res<Self> {
        let dir = tempdir()?;
        let d = dir.path();
        let proj = d.join("proj");
        fs::create_dir_all(proj.join(".aifp-project"))?;
        let fixtures = bench.root.join(FIXTURES);
        let pristine = d.join("pristine.db");
        generate(
            &pristine,
            &fs::read_to_string(fixtures.join(INITIAL_SCRIPT))?,
            rows,
        )?;
        // The floor: the same SQL in one transaction, foreign keys off, the version row set.
        let floor_sql = d.join("floor.sql");
        fs::write(
            &floor_sql,
            format!(
                "PRAGMA foreign_keys=OFF;\nBEGIN;\n{}\nUPDATE schema_version SET version='1.1';\nCOMMIT;\n",
                fs::read_to_string(fixtures.join(STEP_SCRIPT))?
            ),
        )?;
        Ok(Workspace {
            dir,
            rows,
            pristine,
            proj,
            floor_sql,
        })
    }

    fn folder(&self) -> PathBuf {
        self.proj.join(".aifp-project")
    }

    /// A fresh copy of the pristine database, synced so no run pays for the copy's writeback.
    fn fresh(&self) -> Res<()> {
        fresh_copy(&self.pristine, &self.folder())
    }

    /// `runs` tool runs and as many floor runs, interleaved (alternating which goes first),
    /// each on a fresh copy, under GNU time when it is there.
    fn runs(&self, bench: &Bench, runs: usize, warm_up: bool) -> Res<(Vec<Sample>, Vec<Sample>)> {
        let tool = bench
            .tool(self.dir.path(), &self.proj)
            .env("AIFP_MIGRATIONS", bench.root.join(FIXTURES))
            .arg("--db")
            .arg("project");
        let floor = Proc::new("sh", &self.folder())
            .arg("-c")
            .arg(FLOOR_COMMAND)
            .stdin(&self.floor_sql);
        let floor = bench.sqlite3.is_some().then_some(&floor);
        interleaved(
            bench,
            runs,
            warm_up,
            (&tool, floor),
            &self.folder(),
            || self.fresh(),
            |t| self.verify(t),
        )
    }

    /// The migration really happened: version, rows, indexes, constraints, and for the tool
    /// its backup and history row.
    fn verify(&self, by_tool: bool) -> Res<()> {
        let folder = self.folder();
        let conn = Connection::open(folder.join("project.db"))?;
        let one = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0));
        let version: String =
            conn.query_row("SELECT version FROM schema_version WHERE id = 1", [], |r| {
                r.get(0)
            })?;
        let notes = one("SELECT count(*) FROM notes")?;
        let indexes = one("SELECT count(*) FROM sqlite_master WHERE type = 'index'
             AND name IN ('idx_notes_type', 'idx_notes_reference') AND tbl_name = 'notes'")?;
        let checks = one("SELECT count(*) FROM sqlite_master WHERE name = 'notes' AND sql LIKE '%CHECK (severity%'")?;
        let mut problems = Vec::new();
        if version != "1.1" {
            problems.push(format!("version {version}"));
        }
        if notes != self.rows as i64 {
            problems.push(format!("{notes} notes"));
        }
        if indexes != 2 || checks != 1 {
            problems.push("the notes schema is not the rebuilt one".into());
        }
        if by_tool {
            if one("SELECT count(*) FROM aifp_migrate_history")? != 1 {
                problems.push("no history row".into());
            }
            let backups = fs::read_dir(&folder)?
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("project.db.backup_")
                })
                .count();
            if backups != 1 {
                problems.push(format!("{backups} backups"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            let who = if by_tool { "the tool" } else { "the floor" };
            Err(format!("after {who}: {}", problems.join(", ")).into())
        }
    }
}

/// Case 5's project: a generated project.db at v1.0, its pristine copy, the target schema file
/// and the floor's script (the SQL the tool's own dry run prints).
/// A fresh copy of `pristine` as `folder`/project.db (the folder emptied first), synced with its
/// folder so no run pays for the copy's writeback.
fn fresh_copy(pristine: &Path, folder: &Path) -> Res<()> {
    fs::remove_dir_all(folder)?;
    fs::create_dir(folder)?;
    let db = folder.join("project.db");
    fs::copy(pristine, &db)?;
    fs::File::open(&db)?.sync_all()?;
    fs::File::open(folder)?.sync_all()?;
    Ok(())
}

/// `runs` tool runs and as many floor runs (none when `floor` is `None`), interleaved (alternating
/// which goes first), each on a copy `fresh` makes and `verify` checks afterwards, under GNU time
/// when it is there; an untimed warm-up pair first when `warm_up`. `folder` is removed at the end.
fn interleaved(
    bench: &Bench,
    runs: usize,
    warm_up: bool,
    (tool, floor): (&Proc, Option<&Proc>),
    folder: &Path,
    fresh: impl Fn() -> Res<()>,
    verify: impl Fn(bool) -> Res<()>,
) -> Res<(Vec<Sample>, Vec<Sample>)> {
    let rss = bench.gnu_time.then(|| bench.rss_file());
    let (mut t, mut f) = (Vec::new(), Vec::new());
    for i in usize::from(!warm_up)..=runs {
        let mut line = match i {
            0 => "  warm-up:".to_string(),
            _ => format!("  run {i}/{runs}:"),
        };
        let order = if i % 2 == 1 {
            [true, false]
        } else {
            [false, true]
        };
        for is_tool in order {
            let Some(proc) = (if is_tool { Some(tool) } else { floor }) else {
                continue;
            };
            fresh()?;
            let s = proc.run(rss.as_deref())?;
            verify(is_tool)?;
            line.push_str(&format!(
                " {} {} (peak RSS {}; anon {}, file {})",
                if is_tool { "tool" } else { "floor" },
                fmt_s(s.wall),
                fmt_rss(s.rss_kib.map(|k| k as f64)),
                fmt_rss(s.split.anon_kib.map(|k| k as f64)),
                fmt_rss(s.split.file_kib.map(|k| k as f64)),
            ));
            match (i, is_tool) {
                (0, _) => {}
                (_, true) => t.push(s),
                (_, false) => f.push(s),
            }
        }
        println!("{line}");
    }
    let _ = fs::remove_dir_all(folder);
    Ok((t, f))
}

struct ConvergeSpace {
    dir: TempDir,
    rows: u64,
    pristine: PathBuf,
    proj: PathBuf,
    target: PathBuf,
    floor_sql: PathBuf,
}

impl ConvergeSpace {
    fn new(bench: &Bench, rows: u64) -> Res<Self> {
        let dir = tempdir()?;
        let d = dir.path();
        let proj = d.join("proj");
        fs::create_dir_all(proj.join(".aifp-project"))?;
        // No migration set: the whole way is converged.
        fs::create_dir_all(d.join("no-sets"))?;
        let pristine = d.join("pristine.db");
        let initial = fs::read_to_string(bench.root.join(FIXTURES).join(INITIAL_SCRIPT))?;
        generate(&pristine, &initial, rows)?;
        let target = bench.root.join(CONVERGE_TARGET);
        let floor_sql = d.join("floor.sql");
        let ws = ConvergeSpace {
            dir,
            rows,
            pristine,
            proj,
            target,
            floor_sql,
        };
        // The floor runs exactly the SQL the tool's dry run prints for the generated step.
        ws.fresh()?;
        let report = ws
            .tool(bench)
            .arg("--dry-run")
            .arg("--format")
            .arg("json")
            .run(None)?
            .stdout;
        let json: serde_json::Value = serde_json::from_str(&report)?;
        let steps = json["databases"][0]["steps"]
            .as_array()
            .ok_or("the dry run printed no steps")?;
        let sql = match steps.as_slice() {
            [step] if step["kind"] == "converge" => step["sql"]
                .as_str()
                .ok_or("the dry run's step has no sql")?
                .to_string(),
            _ => {
                return Err(
                    format!("expected one generated step, the dry run printed {report}").into(),
                )
            }
        };
        fs::write(
            &ws.floor_sql,
            format!(
                "PRAGMA foreign_keys=OFF;\nBEGIN;\n{sql}UPDATE schema_version SET version='{CONVERGE_VERSION}';\nCOMMIT;\n"
            ),
        )?;
        Ok(ws)
    }

    fn folder(&self) -> PathBuf {
        self.proj.join(".aifp-project")
    }

    fn tool(&self, bench: &Bench) -> Proc {
        bench
            .tool(self.dir.path(), &self.proj)
            .env("AIFP_MIGRATIONS", self.dir.path().join("no-sets"))
            .arg("--db")
            .arg("project")
            .arg("--to-schema")
            .arg(&self.target)
    }

    /// A fresh copy of the pristine database, synced so no run pays for the copy's writeback.
    fn fresh(&self) -> Res<()> {
        fresh_copy(&self.pristine, &self.folder())
    }

    /// `runs` tool runs and as many floor runs, interleaved (alternating which goes first),
    /// each on a fresh copy, under GNU time when it is there.
    fn runs(&self, bench: &Bench, runs: usize, warm_up: bool) -> Res<(Vec<Sample>, Vec<Sample>)> {
        let tool = self.tool(bench);
        let floor = Proc::new("sh", &self.folder())
            .arg("-c")
            .arg(FLOOR_COMMAND)
            .stdin(&self.floor_sql);
        interleaved(
            bench,
            runs,
            warm_up,
            (&tool, Some(&floor)),
            &self.folder(),
            || self.fresh(),
            |t| self.verify(t),
        )
    }

    /// The converge really happened: version, rows, the new CHECK, the index finding a note by
    /// a word of its content, and for the tool its backup and history row.
    fn verify(&self, by_tool: bool) -> Res<()> {
        let folder = self.folder();
        let conn = Connection::open(folder.join("project.db"))?;
        let one = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0));
        let version: String =
            conn.query_row("SELECT version FROM schema_version WHERE id = 1", [], |r| {
                r.get(0)
            })?;
        let mut problems = Vec::new();
        if version != CONVERGE_VERSION {
            problems.push(format!("version {version}"));
        }
        let notes = one("SELECT count(*) FROM notes")?;
        if notes != self.rows as i64 {
            problems.push(format!("{notes} notes"));
        }
        if one("SELECT count(*) FROM sqlite_master WHERE name = 'notes' AND sql LIKE '%CHECK (note_type IN%'")? != 1 {
            problems.push("notes has not the new CHECK".into());
        }
        // "Note 0000042: …" is note 42's, and only its.
        let found = one("SELECT count(*) FROM notes_fts WHERE notes_fts MATCH '0000042'")?;
        let rowid = one("SELECT max(rowid) FROM notes_fts WHERE notes_fts MATCH '0000042'")?;
        if (found, rowid) != (1, 42) {
            problems.push(format!(
                "notes_fts MATCH '0000042' found {found} row(s) (rowid {rowid}), not note 42"
            ));
        }
        if by_tool {
            if one("SELECT count(*) FROM aifp_migrate_history")? != 1 {
                problems.push("no history row".into());
            }
            let backups = fs::read_dir(&folder)?
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("project.db.backup_")
                })
                .count();
            if backups != 1 {
                problems.push(format!("{backups} backups"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            let who = if by_tool { "the tool" } else { "the floor" };
            Err(format!("after {who}: {}", problems.join(", ")).into())
        }
    }
}

/// Builds the v1.0 database with `rows` notes, then turns it into a checkpointed WAL database.
fn generate(path: &Path, initial: &str, rows: u64) -> Res<()> {
    let conn = Connection::open(path)?;
    // Built without a journal (nothing to protect yet); the mode AIFP uses is set at the end.
    conn.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")?;
    conn.execute_batch(initial)?;
    conn.execute_batch("BEGIN")?;
    conn.execute(FILL_NOTES, [rows])?;
    conn.execute_batch(FILL_TAGS)?;
    conn.execute_batch("COMMIT")?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if mode != "wal" {
        return Err(format!("{} stayed in journal mode {mode}", path.display()).into());
    }
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    conn.close().map_err(|(_, e)| e)?;
    Ok(())
}

/// A child process to time: program, arguments, folder, environment, stdin.
#[derive(Clone)]
struct Proc {
    program: OsString,
    args: Vec<OsString>,
    cwd: PathBuf,
    env: Vec<(&'static str, OsString)>,
    unset: Vec<&'static str>,
    stdin: Option<PathBuf>,
}

struct Sample {
    wall: f64,
    rss_kib: Option<u64>,
    split: Split,
    stdout: String,
}

/// The largest anonymous (heap, stack) and file-backed resident sizes seen in any process
/// under a child, sampled every POLL: GNU time gives only their peak sum.
#[derive(Debug, Default, Clone, Copy)]
struct Split {
    anon_kib: Option<u64>,
    file_kib: Option<u64>,
}

const POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// Samples the processes under `root` (GNU time) until `done`.
fn peak_split(root: u32, done: &AtomicBool) -> Split {
    let mut peak = Split::default();
    while !done.load(Ordering::Relaxed) {
        for pid in descendants(root) {
            let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
                continue;
            };
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            };
            peak.anon_kib = peak.anon_kib.max(field("RssAnon:"));
            peak.file_kib = peak.file_kib.max(field("RssFile:"));
        }
        std::thread::sleep(POLL);
    }
    peak
}

fn descendants(pid: u32) -> Vec<u32> {
    let children =
        fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    let mut all = Vec::new();
    for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
        all.push(child);
        all.extend(descendants(child));
    }
    all
}

impl Proc {
    fn new(program: impl Into<OsString>, cwd: &Path) -> Self {
        Proc {
            program: program.into(),
            args: Vec::new(),
            cwd: cwd.to_path_buf(),
            env: Vec::new(),
            unset: Vec::new(),
            stdin: None,
        }
    }

    fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    fn env(mut self, key: &'static str, value: impl Into<OsString>) -> Self {
        self.env.push((key, value.into()));
        self
    }

    fn unset(mut self, key: &'static str) -> Self {
        self.unset.push(key);
        self
    }

    fn stdin(mut self, file: &Path) -> Self {
        self.stdin = Some(file.to_path_buf());
        self
    }

    /// Runs it to the end (exit 0 required); with `rss`, under GNU time writing max RSS there.
    fn run(&self, rss: Option<&Path>) -> Res<Sample> {
        let mut cmd = match rss {
            Some(out) => {
                let mut c = Command::new(GNU_TIME);
                c.arg("-f").arg("%M").arg("-o").arg(out).arg(&self.program);
                c
            }
            None => Command::new(&self.program),
        };
        cmd.args(&self.args).current_dir(&self.cwd);
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        for key in &self.unset {
            cmd.env_remove(key);
        }
        cmd.stdin(match &self.stdin {
            Some(file) => Stdio::from(fs::File::open(file)?),
            None => Stdio::null(),
        });
        let (out, wall, split) = if rss.is_some() {
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            let started = Instant::now();
            let child = cmd.spawn()?;
            let done = Arc::new(AtomicBool::new(false));
            let poller = {
                let (pid, done) = (child.id(), Arc::clone(&done));
                std::thread::spawn(move || peak_split(pid, &done))
            };
            let out = child.wait_with_output();
            let wall = started.elapsed().as_secs_f64();
            done.store(true, Ordering::Relaxed);
            let split = poller.join().unwrap_or_default();
            (out?, wall, split)
        } else {
            let started = Instant::now();
            let out = cmd.output()?;
            (out, started.elapsed().as_secs_f64(), Split::default())
        };
        if !out.status.success() {
            return Err(format!(
                "{} {:?} failed ({}): {}",
                self.program.to_string_lossy(),
                self.args,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )
            .into());
        }
        let rss_kib = match rss {
            // GNU time's %M is the peak RSS in KiB; the last line, after any status line.
            Some(out) => Some(
                fs::read_to_string(out)?
                    .lines()
                    .last()
                    .and_then(|l| l.trim().parse().ok())
                    .ok_or("cannot read GNU time's output")?,
            ),
            None => None,
        };
        Ok(Sample {
            wall,
            rss_kib,
            split,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        })
    }
}

/// Median, spread and first of a set of wall times (seconds), and the median peak RSS (KiB).
#[derive(Clone)]
struct Stats {
    first: f64,
    median: f64,
    min: f64,
    max: f64,
    rss: Option<f64>,
    /// Medians of the sampled peaks of anonymous and file-backed RSS (KiB).
    anon: Option<f64>,
    file: Option<f64>,
}

impl Stats {
    fn of_samples(samples: &[Sample]) -> Self {
        let walls: Vec<f64> = samples.iter().map(|s| s.wall).collect();
        let rss: Vec<u64> = samples.iter().filter_map(|s| s.rss_kib).collect();
        let mut stats = Stats::of(&walls, &rss);
        let mid = |values: Vec<f64>| {
            let mut v = values;
            v.sort_by(f64::total_cmp);
            (!v.is_empty()).then(|| median(&v))
        };
        stats.anon = mid(samples
            .iter()
            .filter_map(|s| s.split.anon_kib)
            .map(|k| k as f64)
            .collect());
        stats.file = mid(samples
            .iter()
            .filter_map(|s| s.split.file_kib)
            .map(|k| k as f64)
            .collect());
        stats
    }

    fn of(walls: &[f64], rss_kib: &[u64]) -> Self {
        let mut sorted = walls.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rss: Vec<f64> = rss_kib.iter().map(|&k| k as f64).collect();
        Stats {
            first: walls.first().copied().unwrap_or(f64::NAN),
            median: median(&sorted),
            min: sorted.first().copied().unwrap_or(f64::NAN),
            max: sorted.last().copied().unwrap_or(f64::NAN),
            rss: (!rss.is_empty()).then(|| {
                let mut r = rss;
                r.sort_by(f64::total_cmp);
                median(&r)
            }),
            anon: None,
            file: None,
        }
    }
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// One line of the figures table.
#[derive(Default)]
struct Row {
    case: String,
    tool: String,
    baseline: String,
    base: String,
    ratio: String,
    target: String,
    result: String,
    tool_rss: String,
    base_rss: String,
}

/// The table and the notes printed under it.
#[derive(Default)]
struct Figures {
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Figures {
    fn skipped(&mut self, case: &str, target: &str, why: &str) {
        self.rows.push(Row {
            case: case.into(),
            target: target.into(),
            result: "SKIP".into(),
            ..Row::default()
        });
        self.notes.push(format!("{}: {why}", case.trim()));
    }

    fn failed(&mut self, case: &str, e: &dyn std::fmt::Display) {
        println!("  error: {e}");
        self.rows.push(Row {
            case: case.into(),
            result: "ERROR".into(),
            ..Row::default()
        });
        self.notes.push(format!("{}: {e}", case.trim()));
    }
}

impl Row {
    fn cells(&self) -> [&str; 9] {
        [
            &self.case,
            &self.tool,
            &self.baseline,
            &self.base,
            &self.ratio,
            &self.target,
            &self.result,
            &self.tool_rss,
            &self.base_rss,
        ]
    }
}

fn print_table(rows: &[Row]) {
    let header = [
        "case", "tool", "baseline", "baseline", "ratio", "target", "result", "tool RSS", "base RSS",
    ];
    let mut width = header.map(str::len);
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row.cells()) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; 9]| {
        let text: Vec<String> = cells
            .iter()
            .zip(width)
            .enumerate()
            .map(|(i, (c, w))| {
                // Figures right-aligned, words left-aligned.
                if matches!(i, 1 | 3 | 4 | 7 | 8) {
                    format!("{c:>w$}")
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(header);
    line(width.map(|w| "-".repeat(w)).each_ref().map(String::as_str));
    for row in rows {
        line(row.cells());
    }
}

fn verdict(pass: bool) -> String {
    if pass { "PASS" } else { "MISS" }.into()
}

fn ratio(tool: f64, base: f64) -> String {
    format!("{:.2}x", tool / base)
}

fn fmt_ms(secs: f64) -> String {
    format!("{:.2} ms", secs * 1e3)
}

fn fmt_s(secs: f64) -> String {
    format!("{secs:.2} s")
}

fn fmt_rss(kib: Option<f64>) -> String {
    kib.map_or("-".into(), |k| format!("{:.1} MiB", k / 1024.0))
}

fn fmt_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else {
        format!("{:.0} MB", b / 1e6)
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn tempdir() -> Res<TempDir> {
    Ok(tempfile::Builder::new()
        .prefix("aifp-bench-")
        .tempdir_in(std::env::temp_dir())?)
}

fn free_bytes(dir: &Path) -> Option<u64> {
    let fs = rustix::fs::statvfs(dir).ok()?;
    Some(fs.f_bavail.saturating_mul(fs.f_frsize))
}

fn copy_dir(from: &Path, to: &Path) -> Res<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
