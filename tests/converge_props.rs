//! A property of the converge engine, tried on random cases: for random pairs of schemas A and B
//! from a small grammar (tables, columns, constraints, indexes, triggers, a view, an FTS5 index)
//! and random rows in A, converging A to B and then B back to A always reaches the target exactly,
//! and never loses a row of a table both sides keep. Where the rows break B's constraints the run
//! is refused and the file is left byte for byte as it was; where B drops data the run is refused
//! without `--allow-data-loss`, and with it the backup keeps what was dropped.
//!
//! Cases come from a small deterministic generator seeded per case, so a failure reproduces:
//! it prints the seed, both schemas and the rows. `PROPS_SEED=<n>` runs one case alone;
//! `PROPS_CASES=<n>` runs more (or fewer) cases.
//!
//! Most cases go through the library (`scratch::target_sql`, `converge::plan`, `apply::migrate`
//! on a real file); every `BIN_EVERY`th goes through the real binary with `--to-schema`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use aifp_migrate::plan::Step;
use aifp_migrate::{apply, converge, progress, schema, scratch};
use rusqlite::types::Value;
use rusqlite::Connection;

const CASES: u64 = 60;
const BIN_EVERY: u64 = 8;

// ---------------------------------------------------------------------------------------------
// A tiny deterministic PRNG (splitmix64).

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as usize) as i64
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
    fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            xs.swap(i, self.below(i + 1));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The grammar.

const TABLES: [&str; 4] = ["notes", "tasks", "files", "tags"];
const COLUMNS: [&str; 7] = ["title", "body", "kind", "size", "score", "status", "parent"];
const WORDS: [&str; 8] = [
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta",
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Ty {
    Text,
    Int,
    Real,
}

#[derive(Clone, Debug, PartialEq)]
enum Check {
    In(Vec<&'static str>),
    Shorter(i64),
    AtLeast(i64),
    Below(i64),
}

#[derive(Clone, Debug, PartialEq)]
struct Col {
    name: &'static str,
    ty: Ty,
    default: Option<Value>,
    not_null: bool,
    check: Option<Check>,
    unique: bool,
    /// For `parent`: the table it references, and whether deletes cascade.
    refs: Option<(&'static str, bool)>,
}

#[derive(Clone, Debug, PartialEq)]
struct Table {
    name: &'static str,
    autoinc: bool,
    strict: bool,
    /// A generated column `twice` (`id * 2`), and whether it is STORED.
    generated: Option<bool>,
    cols: Vec<Col>,
    unique_pair: Option<(&'static str, &'static str)>,
    /// An index on one column, and whether it is UNIQUE.
    index: Option<(&'static str, bool)>,
    /// An AFTER INSERT trigger writing into `log`.
    trigger: bool,
    /// The file inserts one row (id 100, every column its default) into it.
    seed: bool,
}

#[derive(Clone, Debug)]
struct Spec {
    tables: Vec<Table>,
    /// `CREATE VIEW recent AS SELECT id, col FROM table`.
    view: Option<(&'static str, &'static str)>,
    /// `CREATE VIRTUAL TABLE search USING fts5(col, content='table', content_rowid='id')`.
    fts: Option<(&'static str, &'static str)>,
    version: &'static str,
    /// How names are spelled in `CREATE TABLE`: plain, "quoted", or UPPER case (all the same to
    /// SQLite, and to a schema comparison).
    style: usize,
}

impl Spec {
    fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }
}

impl Table {
    fn col(&self, name: &str) -> Option<&Col> {
        self.cols.iter().find(|c| c.name == name)
    }
}

/// The type each column name has in this case (the same on both sides: a changed type changes
/// how SQLite stores a value, which is not a loss to look for here).
type Types = BTreeMap<&'static str, Ty>;

fn types(rng: &mut Rng) -> Types {
    COLUMNS
        .iter()
        .map(|&c| {
            let ty = if c == "parent" {
                Ty::Int
            } else {
                rng.pick(&[Ty::Text, Ty::Text, Ty::Int, Ty::Real])
            };
            (c, ty)
        })
        .collect()
}

fn random_value(rng: &mut Rng, ty: Ty) -> Value {
    match ty {
        Ty::Text => {
            let w = rng.pick(&WORDS);
            if rng.chance(40) {
                Value::Text(format!("{w}{}", rng.below(10)))
            } else {
                Value::Text(w.to_string())
            }
        }
        Ty::Int => Value::Integer(rng.range(0, 59)),
        Ty::Real => Value::Real(rng.range(0, 59) as f64 + 0.5),
    }
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Real(r) => Some(*r),
        _ => None,
    }
}

fn passes(check: &Option<Check>, v: &Value) -> bool {
    match (check, v) {
        (None, _) | (_, Value::Null) => true,
        (Some(Check::In(ws)), Value::Text(s)) => ws.contains(&s.as_str()),
        (Some(Check::Shorter(n)), Value::Text(s)) => (s.chars().count() as i64) < *n,
        (Some(Check::AtLeast(k)), v) => num(v).is_some_and(|x| x >= *k as f64),
        (Some(Check::Below(k)), v) => num(v).is_some_and(|x| x < *k as f64),
        _ => false,
    }
}

fn col_ok(c: &Col, v: &Value) -> bool {
    passes(&c.check, v) && !(c.not_null && *v == Value::Null)
}

fn gen_check(rng: &mut Rng, ty: Ty) -> Check {
    match ty {
        Ty::Text if rng.chance(50) => {
            let mut ws = WORDS.to_vec();
            rng.shuffle(&mut ws);
            ws.truncate(rng.range(3, 5) as usize);
            Check::In(ws)
        }
        Ty::Text => Check::Shorter(rng.range(5, 9)),
        _ if rng.chance(50) => Check::AtLeast(rng.range(0, 20)),
        _ => Check::Below(rng.range(20, 60)),
    }
}

fn gen_col(rng: &mut Rng, name: &'static str, types: &Types) -> Col {
    let ty = types[name];
    if name == "parent" {
        return Col {
            name,
            ty,
            default: None,
            not_null: false,
            check: None,
            unique: false,
            // Pointed at a table of the schema by `fix`.
            refs: Some(("", rng.chance(30))),
        };
    }
    let check = rng.chance(40).then(|| gen_check(rng, ty));
    let default = rng.chance(50).then(|| loop {
        let v = random_value(rng, ty);
        if passes(&check, &v) {
            break v;
        }
    });
    Col {
        name,
        ty,
        not_null: default.is_some() && rng.chance(40),
        default,
        check,
        unique: rng.chance(12),
        refs: None,
    }
}

fn gen_table(rng: &mut Rng, name: &'static str, types: &Types) -> Table {
    let mut names = COLUMNS.to_vec();
    rng.shuffle(&mut names);
    names.truncate(rng.range(1, 5) as usize);
    let cols: Vec<Col> = names.iter().map(|&n| gen_col(rng, n, types)).collect();
    let plain: Vec<&'static str> = names.iter().copied().filter(|&n| n != "parent").collect();
    Table {
        name,
        autoinc: rng.chance(30),
        strict: rng.chance(10),
        generated: rng.chance(10).then(|| rng.chance(50)),
        unique_pair: (plain.len() >= 2 && rng.chance(8)).then(|| (plain[0], plain[1])),
        index: rng.chance(40).then(|| (rng.pick(&names), rng.chance(30))),
        trigger: rng.chance(30),
        seed: rng.chance(15),
        cols,
    }
}

fn gen_spec(rng: &mut Rng, types: &Types, version: &'static str) -> Spec {
    let mut names = TABLES.to_vec();
    rng.shuffle(&mut names);
    names.truncate(rng.range(1, 4) as usize);
    let tables = names.iter().map(|&n| gen_table(rng, n, types)).collect();
    let mut spec = Spec {
        tables,
        view: None,
        fts: None,
        version,
        style: rng.below(3),
    };
    new_view(rng, &mut spec);
    new_fts(rng, &mut spec);
    fix(rng, &mut spec);
    spec
}

fn new_view(rng: &mut Rng, spec: &mut Spec) {
    spec.view = None;
    if rng.chance(40) {
        let t = &spec.tables[rng.below(spec.tables.len())];
        let col = t.cols[rng.below(t.cols.len())].name;
        spec.view = Some((t.name, col));
    }
}

fn new_fts(rng: &mut Rng, spec: &mut Spec) {
    spec.fts = None;
    if rng.chance(45) {
        let t = &spec.tables[rng.below(spec.tables.len())];
        let texts: Vec<&'static str> = t
            .cols
            .iter()
            .filter(|c| c.ty == Ty::Text && c.name != "parent")
            .map(|c| c.name)
            .collect();
        if !texts.is_empty() {
            spec.fts = Some((t.name, rng.pick(&texts)));
        }
    }
}

/// B from A: most often a few changes to A, sometimes a schema of its own.
fn derive(rng: &mut Rng, a: &Spec, types: &Types, version: &'static str) -> Spec {
    if rng.chance(20) {
        return gen_spec(rng, types, version);
    }
    let mut b = a.clone();
    b.version = version;
    if rng.chance(20) {
        b.style = rng.below(3);
    }
    b.tables.retain(|_| !rng.chance(15));
    for t in &mut b.tables {
        if rng.chance(45) {
            continue;
        }
        let mut cols = Vec::new();
        for c in &t.cols {
            match rng.below(100) {
                0..=14 => {}
                15..=39 => cols.push(gen_col(rng, c.name, types)),
                _ => cols.push(c.clone()),
            }
        }
        if rng.chance(35) {
            let unused: Vec<&'static str> = COLUMNS
                .iter()
                .copied()
                .filter(|n| !cols.iter().any(|c: &Col| c.name == *n))
                .collect();
            if !unused.is_empty() {
                let name = rng.pick(&unused);
                cols.push(gen_col(rng, name, types));
            }
        }
        if cols.is_empty() {
            let name = rng.pick(&COLUMNS);
            cols.push(gen_col(rng, name, types));
        }
        if rng.chance(10) {
            rng.shuffle(&mut cols);
        }
        t.cols = cols;
        if rng.chance(15) {
            t.autoinc = !t.autoinc;
        }
        if rng.chance(10) {
            t.strict = !t.strict;
        }
        if rng.chance(10) {
            t.generated = rng.chance(50).then(|| rng.chance(50));
        }
        if rng.chance(30) {
            t.index = rng.chance(60).then(|| {
                let c = t.cols[rng.below(t.cols.len())].name;
                (c, rng.chance(30))
            });
        }
        if rng.chance(30) {
            t.trigger = !t.trigger;
        }
        if rng.chance(10) {
            t.unique_pair = None;
        }
        if rng.chance(20) {
            t.seed = !t.seed;
        }
    }
    if rng.chance(30) || b.tables.is_empty() {
        let unused: Vec<&'static str> = TABLES
            .iter()
            .copied()
            .filter(|n| b.table(n).is_none())
            .collect();
        if !unused.is_empty() {
            let name = rng.pick(&unused);
            b.tables.push(gen_table(rng, name, types));
        }
    }
    if rng.chance(35) {
        new_view(rng, &mut b);
    }
    if rng.chance(35) {
        new_fts(rng, &mut b);
    }
    fix(rng, &mut b);
    b
}

/// Makes B stricter than A on one column both have (a CHECK, or a UNIQUE index), so that the
/// rows can be made to break it.
fn stricter(rng: &mut Rng, a: &Spec, b: &mut Spec) {
    let shared: Vec<(usize, &'static str)> = b
        .tables
        .iter()
        .enumerate()
        .filter_map(|(i, bt)| a.table(bt.name).map(|at| (i, at, bt)))
        .flat_map(|(i, at, bt)| {
            at.cols
                .iter()
                .filter(|c| c.refs.is_none() && bt.col(c.name).is_some())
                .map(move |c| (i, c.name))
        })
        .collect();
    if shared.is_empty() {
        return;
    }
    let (i, name) = shared[rng.below(shared.len())];
    let t = &mut b.tables[i];
    if rng.chance(50) {
        t.index = Some((name, true));
        return;
    }
    let c = t.cols.iter_mut().find(|c| c.name == name).unwrap();
    c.check = Some(gen_check(rng, c.ty));
    if c.default.as_ref().is_some_and(|d| !passes(&c.check, d)) {
        c.default = None;
        c.not_null = false;
    }
}

/// Makes every reference name something the schema has.
fn fix(rng: &mut Rng, spec: &mut Spec) {
    let names: Vec<&'static str> = spec.tables.iter().map(|t| t.name).collect();
    for t in &mut spec.tables {
        for c in &mut t.cols {
            if let Some((to, cascade)) = c.refs {
                if !names.contains(&to) {
                    c.refs = Some((rng.pick(&names), cascade));
                }
            }
        }
        let has = |t: &Table, n: &str| t.col(n).is_some();
        if t.index.is_some_and(|(c, _)| !has(t, c)) {
            t.index = None;
        }
        if t.unique_pair.is_some_and(|(x, y)| !has(t, x) || !has(t, y)) {
            t.unique_pair = None;
        }
    }
    if let Some((t, c)) = spec.view {
        if spec.table(t).is_none_or(|t| t.col(c).is_none()) {
            spec.view = None;
        }
    }
    if let Some((t, c)) = spec.fts {
        if !spec
            .table(t)
            .and_then(|t| t.col(c))
            .is_some_and(|c| c.ty == Ty::Text)
        {
            spec.fts = None;
        }
    }
}

fn literal(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(r) => format!("{r:?}"),
        Value::Text(s) => format!("'{}'", s.replace('\'', "''")),
        Value::Blob(_) => unreachable!(),
    }
}

/// `name` spelled in `style`.
fn spelled(name: &str, style: usize) -> String {
    match style {
        1 => format!("\"{name}\""),
        2 => name.to_uppercase(),
        _ => name.to_string(),
    }
}

fn col_sql(c: &Col, style: usize) -> String {
    let mut s = format!(
        "{} {}",
        spelled(c.name, style),
        match c.ty {
            Ty::Text => "TEXT",
            Ty::Int => "INTEGER",
            Ty::Real => "REAL",
        }
    );
    if c.not_null {
        s.push_str(" NOT NULL");
    }
    if let Some(d) = &c.default {
        let _ = write!(s, " DEFAULT {}", literal(d));
    }
    match &c.check {
        None => {}
        Some(Check::In(ws)) => {
            let list: Vec<String> = ws.iter().map(|w| format!("'{w}'")).collect();
            let _ = write!(s, " CHECK ({} IN ({}))", c.name, list.join(", "));
        }
        Some(Check::Shorter(n)) => {
            let _ = write!(s, " CHECK (length({}) < {n})", c.name);
        }
        Some(Check::AtLeast(k)) => {
            let _ = write!(s, " CHECK ({} >= {k})", c.name);
        }
        Some(Check::Below(k)) => {
            let _ = write!(s, " CHECK ({} < {k})", c.name);
        }
    }
    if c.unique {
        s.push_str(" UNIQUE");
    }
    if let Some((to, cascade)) = c.refs {
        let _ = write!(s, " REFERENCES {to}(id)");
        if cascade {
            s.push_str(" ON DELETE CASCADE");
        }
    }
    s
}

/// The SQL that builds `spec` from nothing, ending with its version row.
fn render(spec: &Spec) -> String {
    let mut s = String::from(
        "CREATE TABLE IF NOT EXISTS schema_version (id INTEGER PRIMARY KEY CHECK (id = 1), version TEXT NOT NULL, updated_at DATETIME DEFAULT CURRENT_TIMESTAMP);\n",
    );
    for t in &spec.tables {
        let mut parts = vec![format!(
            "id INTEGER PRIMARY KEY{}",
            if t.autoinc { " AUTOINCREMENT" } else { "" }
        )];
        parts.extend(t.cols.iter().map(|c| col_sql(c, spec.style)));
        if let Some(stored) = t.generated {
            let kind = if stored { "STORED" } else { "VIRTUAL" };
            parts.push(format!("twice INTEGER GENERATED ALWAYS AS (id * 2) {kind}"));
        }
        if let Some((x, y)) = t.unique_pair {
            parts.push(format!("UNIQUE ({x}, {y})"));
        }
        let _ = writeln!(
            s,
            "CREATE TABLE {} ({}){};",
            spelled(t.name, spec.style),
            parts.join(", "),
            if t.strict { " STRICT" } else { "" }
        );
    }
    if spec.tables.iter().any(|t| t.trigger) {
        s.push_str("CREATE TABLE log (id INTEGER PRIMARY KEY, what TEXT);\n");
    }
    for t in &spec.tables {
        if let Some((c, unique)) = t.index {
            let u = if unique { "UNIQUE " } else { "" };
            let _ = writeln!(s, "CREATE {u}INDEX {n}_idx ON {n} ({c});", n = t.name);
        }
        if t.trigger {
            let _ = writeln!(
                s,
                "CREATE TRIGGER {n}_log AFTER INSERT ON {n} BEGIN INSERT INTO log (what) VALUES ('{n} ' || new.id); END;",
                n = t.name
            );
        }
    }
    if let Some((t, c)) = spec.view {
        let _ = writeln!(s, "CREATE VIEW recent AS SELECT id, {c} FROM {t};");
    }
    if let Some((t, c)) = spec.fts {
        let _ = writeln!(
            s,
            "CREATE VIRTUAL TABLE search USING fts5({c}, content='{t}', content_rowid='id');\n\
             CREATE TRIGGER search_ai AFTER INSERT ON {t} BEGIN INSERT INTO search(rowid, {c}) VALUES (new.id, new.{c}); END;\n\
             CREATE TRIGGER search_ad AFTER DELETE ON {t} BEGIN INSERT INTO search(search, rowid, {c}) VALUES ('delete', old.id, old.{c}); END;"
        );
    }
    for t in spec.tables.iter().filter(|t| t.seed) {
        let _ = writeln!(s, "INSERT INTO {} (id) VALUES (100);", t.name);
    }
    let _ = writeln!(
        s,
        "INSERT OR REPLACE INTO schema_version (id, version) VALUES (1, '{}');",
        spec.version
    );
    s
}

/// Rows for A: each meets A's constraints and, where it can, B's too; with `violate`, one value
/// is chosen to break B on purpose. Each is one `INSERT`; a row A itself refuses is skipped.
fn gen_rows(rng: &mut Rng, a: &Spec, b: &Spec, violate: bool, first: i64) -> Vec<String> {
    let mut out = Vec::new();
    for t in &a.tables {
        let bt = b.table(t.name);
        let n = rng.range(3, 5);
        let mut used: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for id in first..first + n {
            let mut names = vec!["id".to_string()];
            let mut values = vec![id.to_string()];
            for c in &t.cols {
                let bc = bt.and_then(|bt| bt.col(c.name));
                let v = if c.refs.is_some() {
                    // An id every table of A has (each gets at least 3 rows), or NULL; NULL when
                    // B points the column at a table that starts empty, unless breaking B on
                    // purpose.
                    let b_new = bc
                        .and_then(|bc| bc.refs)
                        .is_some_and(|(to, _)| a.table(to).is_none());
                    if (b_new && !violate) || rng.chance(30) {
                        Value::Null
                    } else {
                        Value::Integer(rng.range(1, 2))
                    }
                } else {
                    let unique = c.unique || bc.is_some_and(|bc| bc.unique);
                    let seen = used.entry(c.name).or_default();
                    let mut tries = 0;
                    loop {
                        tries += 1;
                        let v = if rng.chance(15) {
                            Value::Null
                        } else {
                            random_value(rng, c.ty)
                        };
                        let fits_b = bc.is_none_or(|bc| col_ok(bc, &v));
                        let fresh = !unique || v == Value::Null || !seen.contains(&literal(&v));
                        if (col_ok(c, &v) && fits_b && fresh) || tries > 60 {
                            break v;
                        }
                    }
                };
                used.entry(c.name).or_default().insert(literal(&v));
                names.push(c.name.to_string());
                values.push(literal(&v));
            }
            out.push(format!(
                "INSERT INTO {} ({}) VALUES ({})",
                t.name,
                names.join(", "),
                values.join(", ")
            ));
        }
        if t.autoinc && rng.chance(50) {
            // A deleted last row: its id must never be handed out again.
            out.push(format!(
                "DELETE FROM {n} WHERE id = (SELECT max(id) FROM {n}) AND id > 2",
                n = t.name
            ));
        }
    }
    // Or two rows that collide in a UNIQUE index that B adds.
    let collide: Vec<(&str, &str)> = b
        .tables
        .iter()
        .filter_map(|bt| bt.index.filter(|i| i.1).map(|(c, _)| (bt.name, c)))
        .filter(|&(t, c)| {
            a.table(t).is_some_and(|at| {
                at.col(c).is_some_and(|ac| !ac.unique)
                    && at.index != Some((c, true))
                    && at.unique_pair.is_none_or(|(x, y)| x != c && y != c)
            })
        })
        .collect();
    if violate && !collide.is_empty() && rng.chance(50) {
        let (t, c) = collide[rng.below(collide.len())];
        out.push(format!(
            "UPDATE {t} SET {c} = (SELECT {c} FROM {t} WHERE id = {}) WHERE id = {first}",
            first + 1
        ));
    } else if violate {
        // One value that A accepts and B's version of the column does not.
        let shared: Vec<(&Table, &Col, &Col)> = a
            .tables
            .iter()
            .filter_map(|t| b.table(t.name).map(|bt| (t, bt)))
            .flat_map(|(t, bt)| {
                t.cols
                    .iter()
                    .filter_map(move |c| bt.col(c.name).map(|bc| (t, c, bc)))
            })
            .filter(|(_, c, bc)| c.refs.is_none() && (bc.check.is_some() || bc.not_null))
            .collect();
        if !shared.is_empty() {
            let (t, c, bc) = shared[rng.below(shared.len())];
            for _ in 0..60 {
                let v = if rng.chance(30) {
                    Value::Null
                } else {
                    random_value(rng, c.ty)
                };
                if col_ok(c, &v) && !col_ok(bc, &v) && !c.unique {
                    out.push(format!(
                        "UPDATE {} SET {} = {} WHERE id = {first}",
                        t.name,
                        c.name,
                        literal(&v)
                    ));
                    break;
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Looking at databases.

/// Tables holding rows of their own (no virtual or shadow tables, nothing the tool leaves out).
fn data_tables(conn: &Connection, db: &str) -> Vec<String> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT name FROM pragma_table_list WHERE schema = '{db}' AND type = 'table' ORDER BY name"
        ))
        .unwrap();
    stmt.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|n| n.unwrap().to_lowercase())
        .filter(|n| {
            let n = n.to_lowercase();
            !n.starts_with("sqlite_") && !n.starts_with("aifp_migrate_") && n != "schema_version"
        })
        .collect()
}

fn columns(conn: &Connection, db: &str, table: &str) -> Vec<String> {
    let mut stmt = conn
        .prepare("SELECT name FROM pragma_table_info(?1, ?2)")
        .unwrap();
    stmt.query_map([table, db], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|n| n.unwrap().to_lowercase())
        .collect()
}

fn one<T: rusqlite::types::FromSql>(conn: &Connection, sql: &str) -> T {
    conn.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Every data table's columns and rows (by rowid), and `sqlite_sequence`.
#[derive(Debug, PartialEq, Clone)]
struct Snap {
    tables: BTreeMap<String, (Vec<String>, Vec<Vec<Value>>)>,
    seqs: BTreeMap<String, i64>,
}

fn snap(path: &Path) -> Snap {
    snap_of(&Connection::open(path).unwrap())
}

fn snap_of(conn: &Connection) -> Snap {
    let mut tables = BTreeMap::new();
    for t in data_tables(conn, "main") {
        let cols = columns(conn, "main", &t);
        let list: Vec<String> = cols.iter().map(|c| format!("\"{c}\"")).collect();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {} FROM \"{t}\" ORDER BY rowid",
                list.join(", ")
            ))
            .unwrap();
        let n = cols.len();
        let rows = stmt
            .query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())
            .unwrap()
            .map(Result::unwrap)
            .collect();
        tables.insert(t, (cols, rows));
    }
    let has_seq: bool = one(
        conn,
        "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'sqlite_sequence'",
    );
    let mut seqs = BTreeMap::new();
    if has_seq {
        let mut stmt = conn
            .prepare("SELECT name, seq FROM sqlite_sequence")
            .unwrap();
        seqs = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?.to_lowercase(), r.get(1)?))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
    }
    Snap { tables, seqs }
}

/// The columns both have, and each row of `before` and `after` reduced to them.
fn common_rows(
    before: &(Vec<String>, Vec<Vec<Value>>),
    after: &(Vec<String>, Vec<Vec<Value>>),
) -> (Vec<String>, Vec<Vec<Value>>, Vec<Vec<Value>>) {
    let common: Vec<String> = before
        .0
        .iter()
        .filter(|c| after.0.contains(c))
        .cloned()
        .collect();
    let project = |(cols, rows): &(Vec<String>, Vec<Vec<Value>>)| -> Vec<Vec<Value>> {
        let idx: Vec<usize> = common
            .iter()
            .map(|c| cols.iter().position(|x| x == c).unwrap())
            .collect();
        rows.iter()
            .map(|r| idx.iter().map(|&i| r[i].clone()).collect())
            .collect()
    };
    (common.clone(), project(before), project(after))
}

/// Every file in `dir` with its bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// What running the target's SQL from nothing and copying the current rows into it says: `Err`
/// with SQLite's complaint when a row breaks one of the target's constraints.
fn oracle(db: &Path, target_sql: &str) -> Result<(), String> {
    let fresh = Connection::open_in_memory().unwrap();
    fresh.execute_batch(target_sql).unwrap();
    fresh.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    // Triggers would write rows of their own.
    let triggers: Vec<String> = {
        let mut s = fresh
            .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            .unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    for t in triggers {
        fresh
            .execute_batch(&format!("DROP TRIGGER \"{t}\""))
            .unwrap();
    }
    fresh
        .execute("ATTACH ?1 AS cur", [db.to_str().unwrap()])
        .unwrap();
    let target_tables = data_tables(&fresh, "main");
    let mut result = Ok(());
    for t in data_tables(&fresh, "cur") {
        if !target_tables.contains(&t) {
            continue;
        }
        let have = columns(&fresh, "cur", &t);
        let cols: Vec<String> = columns(&fresh, "main", &t)
            .into_iter()
            .filter(|c| have.contains(c))
            .map(|c| format!("\"{c}\""))
            .collect();
        let cols = cols.join(", ");
        // A table the database has keeps its rows and gets none of the file's.
        let copy = format!(
            "DELETE FROM main.\"{t}\"; INSERT INTO main.\"{t}\" ({cols}) SELECT {cols} FROM cur.\"{t}\""
        );
        if let Err(e) = fresh.execute_batch(&copy) {
            result = Err(e.to_string());
            break;
        }
    }
    if result.is_ok() {
        let broken: i64 = one(
            &fresh,
            "SELECT count(*) FROM pragma_foreign_key_check(NULL, 'main')",
        );
        if broken > 0 {
            result = Err(format!("{broken} row(s) break a foreign key"));
        }
    }
    fresh.execute_batch("DETACH cur").unwrap();
    result
}

/// Whether converging would drop a table with rows or a column with values.
fn loses_data(db: &Path, target_sql: &str) -> bool {
    let fresh = Connection::open_in_memory().unwrap();
    fresh.execute_batch(target_sql).unwrap();
    let cur = Connection::open(db).unwrap();
    let target = data_tables(&fresh, "main");
    data_tables(&cur, "main").iter().any(|t| {
        if !target.contains(t) {
            return one::<i64>(&cur, &format!("SELECT count(*) FROM \"{t}\"")) > 0;
        }
        let keep = columns(&fresh, "main", t);
        columns(&cur, "main", t)
            .iter()
            .filter(|c| !keep.contains(c))
            .any(|c| one::<i64>(&cur, &format!("SELECT count(\"{c}\") FROM \"{t}\"")) > 0)
    })
}

// ---------------------------------------------------------------------------------------------
// Running a converge.

#[derive(Clone, Copy, PartialEq, Debug)]
enum Via {
    Library,
    Binary,
}

/// One case's world: a home, AIFP_HOME, a project with its database, an empty migrations folder.
struct World {
    tmp: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        for d in ["home/.aifp", "proj/.aifp-project", "migrations", "cache"] {
            std::fs::create_dir_all(tmp.path().join(d)).unwrap();
        }
        World { tmp }
    }
    fn db(&self) -> PathBuf {
        self.tmp.path().join("proj/.aifp-project/project.db")
    }
    fn dir(&self) -> PathBuf {
        self.tmp.path().join("proj/.aifp-project")
    }

    /// Converges the database to `sql`; `Err` holds the error message.
    fn converge(&self, sql: &str, allow: bool, via: Via, leg: usize) -> Result<(), String> {
        let file = self.tmp.path().join(format!("target{leg}.sql"));
        std::fs::write(&file, sql).unwrap();
        match via {
            Via::Library => {
                let origin = file.display().to_string();
                let target = scratch::target_sql(&origin, sql).map_err(|e| e.to_string())?;
                let request = apply::Request {
                    run_id: "props",
                    take_backup: true,
                    allow_data_loss: allow,
                    before: None,
                    check: None,
                };
                let planner = |conn: &Connection, from: &aifp_migrate::version::Version| {
                    let current = schema::read(conn).unwrap();
                    let plan = converge::plan(&current, &target.schema, &target.seeds);
                    Ok(vec![Step::generated(from, &target.version, &origin, plan)])
                };
                let applied = apply::migrate(&self.db(), request, planner, &progress::silent())
                    .map_err(|e| e.to_string())?;
                // Each index built is counted with the rows of its table.
                let conn = Connection::open(self.db()).unwrap();
                for built in &applied.account.fts_built {
                    let rows: i64 =
                        one(&conn, &format!("SELECT count(*) FROM \"{}\"", built.table));
                    assert_eq!(built.rows, rows, "{built:?}");
                }
                Ok(())
            }
            Via::Binary => {
                let root = self.tmp.path();
                let mut cmd = Command::new(env!("CARGO_BIN_EXE_aifp-migrate"));
                cmd.current_dir(root.join("proj"))
                    .env("HOME", root.join("home"))
                    .env("AIFP_HOME", root.join("home/.aifp"))
                    .env("AIFP_MIGRATIONS", root.join("migrations"))
                    .env("XDG_CACHE_HOME", root.join("cache"))
                    .args(["--db", "project", "--to-schema"])
                    .arg(&file);
                if allow {
                    cmd.arg("--allow-data-loss");
                }
                let out = cmd.output().unwrap();
                let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
                match out.status.code() {
                    Some(0) => Ok(()),
                    Some(1) => Err(stderr),
                    other => panic!("exit code {other:?}: {stderr}"),
                }
            }
        }
    }
}

/// What the cases did, to prove each path was taken.
#[derive(Debug, Default)]
struct Tally {
    converged: usize,
    refused_tighter: usize,
    refused_foreign_key: usize,
    refused_loss_then_allowed: usize,
    fts_matched: usize,
    sequences_kept: usize,
    seeded: usize,
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(format!($($fmt)*));
        }
    };
}

/// One leg: converges the database to `to`; `Ok(false)` when the run was (rightly) refused.
fn leg(
    world: &World,
    to: &Spec,
    via: Via,
    leg_no: usize,
    rng: &mut Rng,
    tally: &mut Tally,
) -> Result<bool, String> {
    let db = world.db();
    let sql = render(to);
    let before = snap(&db);
    let files_before = files(&world.dir());
    let predicted = oracle(&db, &sql);
    let loss = loses_data(&db, &sql);
    let unchanged = |what: &str| -> Result<(), String> {
        ensure!(
            files(&world.dir()) == files_before,
            "leg {leg_no}: {what}, but the folder changed (file bytes or a backup left behind)"
        );
        Ok(())
    };

    if let Err(why) = predicted {
        // The rows break the target: refused, with or without --allow-data-loss.
        let allow = rng.chance(50);
        let got = world.converge(&sql, allow, via, leg_no);
        let Err(message) = got else {
            return Err(format!(
                "leg {leg_no}: rows break the target ({why}), but the run succeeded"
            ));
        };
        if why.contains("foreign key") {
            ensure!(
                message.contains("break a foreign key"),
                "leg {leg_no}: expected a foreign key refusal ({why}), got: {message}"
            );
            tally.refused_foreign_key += 1;
        } else {
            ensure!(
                message.contains("break the target's"),
                "leg {leg_no}: expected a refusal naming the target's constraint ({why}), got: {message}"
            );
            tally.refused_tighter += 1;
        }
        unchanged("refused")?;
        return Ok(false);
    }

    if loss {
        let got = world.converge(&sql, false, via, leg_no);
        match got {
            Ok(()) => return Err(format!("leg {leg_no}: data would be lost, but the run went ahead without --allow-data-loss")),
            Err(m) => ensure!(
                m.contains("would lose data"),
                "leg {leg_no}: expected a data loss refusal, got: {m}"
            ),
        }
        unchanged("refused for data loss")?;
        tally.refused_loss_then_allowed += 1;
    }
    world
        .converge(&sql, loss, via, leg_no)
        .map_err(|m| format!("leg {leg_no}: the run failed: {m}"))?;
    tally.converged += 1;

    // The schema is the target's, exactly.
    let conn = Connection::open(&db).unwrap();
    let target = scratch::target_sql("target", &sql).unwrap();
    let actual = schema::read(&conn).unwrap();
    let diff = schema::diff(&target.schema, &actual);
    ensure!(diff.is_empty(), "leg {leg_no}: schema differs: {diff:#?}");
    let version: String = one(&conn, "SELECT version FROM schema_version WHERE id = 1");
    ensure!(
        version == to.version,
        "leg {leg_no}: version row is {version}"
    );
    let leftovers: i64 = one(
        &conn,
        "SELECT count(*) FROM sqlite_master WHERE name LIKE 'aifp_migrate_new_%'",
    );
    ensure!(
        leftovers == 0,
        "leg {leg_no}: a rebuild table was left behind"
    );
    let check: String = one(&conn, "PRAGMA integrity_check");
    ensure!(check == "ok", "leg {leg_no}: integrity_check: {check}");
    let broken: i64 = one(&conn, "SELECT count(*) FROM pragma_foreign_key_check");
    ensure!(
        broken == 0,
        "leg {leg_no}: {broken} foreign key violation(s)"
    );

    // No row of a table both sides keep is lost, and the values of the columns both keep are
    // the same.
    let after = snap(&db);
    for (t, was) in &before.tables {
        let Some(now) = after.tables.get(t) else {
            continue;
        };
        ensure!(
            was.1.len() == now.1.len(),
            "leg {leg_no}: table {t} had {} row(s), has {}",
            was.1.len(),
            now.1.len()
        );
        let (cols, a, b) = common_rows(was, now);
        ensure!(
            a == b,
            "leg {leg_no}: table {t}, columns {cols:?}: {a:?} became {b:?}"
        );
    }

    // A table the database did not have holds the rows the file inserts, and no others.
    let fresh = Connection::open_in_memory().unwrap();
    fresh.execute_batch(&sql).unwrap();
    let seeded = snap_of(&fresh);
    for (t, rows) in &after.tables {
        if !before.tables.contains_key(t) {
            ensure!(
                Some(rows) == seeded.tables.get(t),
                "leg {leg_no}: new table {t} holds {rows:?}, the file makes {:?}",
                seeded.tables.get(t)
            );
            if !rows.1.is_empty() {
                tally.seeded += 1;
            }
        }
    }

    // Ids handed out are never handed out again.
    for (t, seq) in &before.seqs {
        if to.table(t).is_some_and(|t| t.autoinc) {
            let now = after.seqs.get(t).copied().unwrap_or(0);
            ensure!(
                now >= *seq,
                "leg {leg_no}: sqlite_sequence of {t} went from {seq} to {now}"
            );
            tally.sequences_kept += 1;
        }
    }

    // The full-text index finds a word of a row that was there before.
    if let Some((t, c)) = to.fts {
        let word = before.tables.get(t).and_then(|(cols, rows)| {
            let i = cols.iter().position(|x| x == c)?;
            rows.iter().find_map(|r| match &r[i] {
                Value::Text(s) if !s.is_empty() => Some((r[0].clone(), s.clone())),
                _ => None,
            })
        });
        if let Some((Value::Integer(id), word)) = word {
            let mut stmt = conn
                .prepare("SELECT rowid FROM search WHERE search MATCH ?1")
                .unwrap();
            let found: Vec<i64> = stmt
                .query_map([format!("\"{word}\"")], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            ensure!(
                found.contains(&id),
                "leg {leg_no}: search MATCH {word:?} finds {found:?}, not row {id} of {t}"
            );
            tally.fts_matched += 1;
        }
    }
    drop(conn);

    // A backup beside the database holds everything as it was, dropped data included.
    let new_files: Vec<String> = files(&world.dir())
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| !files_before.iter().any(|(m, _)| m == n))
        .collect();
    let backups: Vec<&String> = new_files
        .iter()
        .filter(|n| n.starts_with("project.db.backup_"))
        .collect();
    ensure!(
        backups.len() == 1,
        "leg {leg_no}: expected one new backup, found {new_files:?}"
    );
    let kept = snap(&world.dir().join(backups[0]));
    ensure!(
        kept == before,
        "leg {leg_no}: the backup does not hold the database as it was"
    );
    Ok(true)
}

/// One case: A, its rows, B, and A again (at a third version).
struct Case {
    seed: u64,
    via: Via,
    wal: bool,
    a: Spec,
    b: Spec,
    back: Spec,
    rows: Vec<String>,
    /// Rows written while the database is at B, before it goes back.
    rows_at_b: Vec<String>,
}

impl Case {
    fn new(seed: u64) -> Case {
        let mut rng = Rng::new(seed);
        let types = types(&mut rng);
        let a = gen_spec(&mut rng, &types, "1.0");
        let mut b = derive(&mut rng, &a, &types, "2.0");
        let violate = rng.chance(30);
        if violate {
            stricter(&mut rng, &a, &mut b);
        }
        let rows = gen_rows(&mut rng, &a, &b, violate, 1);
        let mut back = a.clone();
        // Back up to a higher version, or down to one between: a converge goes either way.
        back.version = if rng.chance(50) { "3.0" } else { "1.5" };
        let rows_at_b = if rng.chance(50) {
            let violate = rng.chance(10);
            gen_rows(&mut rng, &b, &back, violate, 10)
        } else {
            Vec::new()
        };
        Case {
            seed,
            via: if seed % BIN_EVERY == BIN_EVERY - 1 {
                Via::Binary
            } else {
                Via::Library
            },
            wal: rng.chance(30),
            a,
            b,
            back,
            rows,
            rows_at_b,
        }
    }

    fn repro(&self) -> String {
        format!(
            "seed {} ({:?}{}): PROPS_SEED={} cargo test --test converge_props\n--- A\n{}--- rows\n{};\n--- B\n{}--- rows at B\n{};\n--- back to A\n{}",
            self.seed,
            self.via,
            if self.wal { ", WAL" } else { "" },
            self.seed,
            render(&self.a),
            self.rows.join(";\n"),
            render(&self.b),
            self.rows_at_b.join(";\n"),
            render(&self.back)
        )
    }

    fn run(&self, tally: &mut Tally) -> Result<(), String> {
        let world = World::new();
        let db = world.db();
        {
            let conn = Connection::open(&db).unwrap();
            if self.wal {
                conn.pragma_update(None, "journal_mode", "wal").unwrap();
            }
            conn.execute_batch(&render(&self.a)).unwrap();
        }
        write_rows(&db, &self.rows);
        let mut rng = Rng::new(self.seed ^ 0x5555);
        if leg(&world, &self.b, self.via, 1, &mut rng, tally)? {
            write_rows(&db, &self.rows_at_b);
            leg(&world, &self.back, self.via, 2, &mut rng, tally)?;
        }
        Ok(())
    }
}

/// Writes `rows` (a row the schema refuses is not part of the case), then sets to NULL every
/// `parent` that breaks a foreign key: the databases a leg starts from break none.
fn write_rows(db: &Path, rows: &[String]) {
    let conn = Connection::open(db).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    for r in rows {
        let _ = conn.execute_batch(r);
    }
    {
        let mut stmt = conn
            .prepare("SELECT \"table\", rowid FROM pragma_foreign_key_check")
            .unwrap();
        let broken: Vec<(String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for (t, rowid) in broken {
            conn.execute_batch(&format!(
                "UPDATE {t} SET parent = NULL WHERE rowid = {rowid}"
            ))
            .unwrap();
        }
    }
}

#[test]
fn converging_there_and_back_reaches_each_target_and_keeps_every_row() {
    let seeds: Vec<u64> = match std::env::var("PROPS_SEED") {
        Ok(s) => vec![s.parse().expect("PROPS_SEED is a number")],
        Err(_) => {
            let n = std::env::var("PROPS_CASES")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(CASES);
            (0..n).collect()
        }
    };
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    for &seed in &seeds {
        let case = Case::new(seed);
        if std::env::var_os("PROPS_SHOW").is_some() {
            eprintln!("{}", case.repro());
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut t = Tally::default();
            case.run(&mut t).map(|()| t)
        }));
        match result {
            Ok(Ok(t)) => {
                tally.converged += t.converged;
                tally.refused_tighter += t.refused_tighter;
                tally.refused_foreign_key += t.refused_foreign_key;
                tally.refused_loss_then_allowed += t.refused_loss_then_allowed;
                tally.fts_matched += t.fts_matched;
                tally.sequences_kept += t.sequences_kept;
                tally.seeded += t.seeded;
            }
            Ok(Err(message)) => failures.push(format!("{message}\n{}", case.repro())),
            Err(_) => failures.push(format!("panicked (see above)\n{}", case.repro())),
        }
    }
    eprintln!("{} case(s): {tally:?}", seeds.len());
    assert!(
        failures.is_empty(),
        "{} of {} case(s) failed:\n\n{}",
        failures.len(),
        seeds.len(),
        failures.join("\n\n")
    );
    if seeds.len() as u64 >= CASES {
        // Every path of the contract was taken.
        assert!(tally.converged > 0, "{tally:?}");
        assert!(tally.refused_tighter > 0, "{tally:?}");
        assert!(tally.refused_loss_then_allowed > 0, "{tally:?}");
        assert!(tally.fts_matched > 0, "{tally:?}");
        assert!(tally.sequences_kept > 0, "{tally:?}");
        assert!(tally.seeded > 0, "{tally:?}");
        assert!(tally.refused_foreign_key > 0, "{tally:?}");
    }
}
