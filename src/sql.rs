//! Splits a migration script into statements without running it, the way SQLite reads it.
//!
//! Planning must refuse a script that holds its own transaction control before anything is
//! written, so scripts are read here, by a small lexer that knows strings, quoted names,
//! comments and `CREATE TRIGGER … BEGIN … END;` bodies (whose inner `;` do not end the statement).

/// One statement of a script: its text (comments included) and the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement<'a> {
    pub text: &'a str,
    pub line: usize,
    /// The first word, upper-cased (`CREATE`, `INSERT`, …).
    pub keyword: String,
}

/// The first keywords that would end or nest the tool's own transaction, or cannot run in one.
pub const FORBIDDEN: [&str; 7] = [
    "BEGIN",
    "COMMIT",
    "END",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE",
    "VACUUM",
];

/// The pragmas that change how the tool's transaction is kept (journal, locks, syncing) or let a
/// script write `sqlite_master` by hand.
pub const FORBIDDEN_PRAGMAS: [&str; 4] = [
    "journal_mode",
    "locking_mode",
    "synchronous",
    "writable_schema",
];

/// Why a statement may not run inside the tool's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `BEGIN`, `COMMIT`, … or `VACUUM` (one of `FORBIDDEN`).
    TransactionControl(String),
    /// One of `FORBIDDEN_PRAGMAS`, set or queried.
    Pragma(&'static str),
    /// `ATTACH` or `DETACH`.
    Attach(String),
    /// A sqlite3 shell command such as `.read`, named with its dot.
    DotCommand(String),
}

impl Statement<'_> {
    /// Why this statement must not run in the tool's transaction, if it must not.
    pub fn refusal(&self) -> Option<Refusal> {
        let keyword = self.keyword.as_str();
        if FORBIDDEN.contains(&keyword) {
            return Some(Refusal::TransactionControl(self.keyword.clone()));
        }
        if keyword == "ATTACH" || keyword == "DETACH" {
            return Some(Refusal::Attach(self.keyword.clone()));
        }
        if keyword == "PRAGMA" {
            // `PRAGMA name …` or `PRAGMA schema.name …`.
            let words = tokens(self.text);
            let name = match words.get(2).map(String::as_str) {
                Some(".") => words.get(3),
                _ => words.get(1),
            };
            return FORBIDDEN_PRAGMAS
                .into_iter()
                .find(|p| name.is_some_and(|n| n == p))
                .map(Refusal::Pragma);
        }
        // The sqlite3 shell reads a line that starts with `.` where a statement would begin as
        // one of its own commands; SQLite itself would fail on it, or worse, on what follows.
        let command = self.text.strip_prefix('.')?;
        let len = command
            .bytes()
            .position(|b| !(b.is_ascii_alphanumeric() || b == b'_'))
            .unwrap_or(command.len());
        (len > 0 && command.as_bytes()[0].is_ascii_alphabetic())
            .then(|| Refusal::DotCommand(format!(".{}", &command[..len])))
    }
}

/// The line of the first NUL byte in `sql`, if it holds one: SQLite stops reading a script there,
/// so whatever follows would be skipped without a word.
pub fn nul_line(sql: &str) -> Option<usize> {
    let at = sql.bytes().position(|b| b == 0)?;
    Some(1 + sql.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Word(&'a str),
    Semicolon,
    /// A '…' literal.
    Text,
    /// A "…", [ … ] or `…` name.
    Name,
    Other,
}

/// Splits `sql` into its statements; blank and comment-only tails are dropped.
pub fn statements(sql: &str) -> Vec<Statement<'_>> {
    let mut out = Vec::new();
    let mut lexer = Lexer::new(sql);
    let mut start = 0;
    let mut start_line = 1;
    // The significant tokens of the statement so far (only the first few and last two matter).
    let mut head: Vec<Token> = Vec::new();
    let mut last_two: [Option<Token>; 2] = [None, None];
    while let Some((token, token_start, line)) = lexer.next_token() {
        if head.is_empty() {
            start = token_start;
            start_line = line;
        }
        let ends = token == Token::Semicolon
            && (!is_trigger(&head)
                || (matches!(last_two[1], Some(Token::Word(w)) if w.eq_ignore_ascii_case("END"))
                    && matches!(last_two[0], Some(Token::Semicolon))));
        if head.len() < 4 {
            head.push(token);
        }
        last_two = [last_two[1], Some(token)];
        if ends {
            push(&mut out, &sql[start..lexer.pos], start_line, &head);
            head.clear();
            last_two = [None, None];
        }
    }
    if !head.is_empty() {
        push(&mut out, &sql[start..], start_line, &head);
    }
    out
}

fn push<'a>(out: &mut Vec<Statement<'a>>, text: &'a str, line: usize, head: &[Token]) {
    if head == [Token::Semicolon] {
        return; // an empty statement: a stray `;`
    }
    let keyword = match head.first() {
        Some(Token::Word(w)) => w.to_ascii_uppercase(),
        _ => String::new(),
    };
    out.push(Statement {
        text,
        line,
        keyword,
    });
}

/// `CREATE [TEMP|TEMPORARY] TRIGGER`: the one statement whose body holds `;`.
fn is_trigger(head: &[Token]) -> bool {
    let word = |i: usize, w: &str| matches!(head.get(i), Some(Token::Word(x)) if x.eq_ignore_ascii_case(w));
    word(0, "CREATE")
        && (word(1, "TRIGGER") || ((word(1, "TEMP") || word(1, "TEMPORARY")) && word(2, "TRIGGER")))
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    line: usize,
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        Lexer {
            src,
            pos: 0,
            line: 1,
        }
    }

    fn bytes(&self) -> &'a [u8] {
        self.src.as_bytes()
    }

    fn advance_to(&mut self, end: usize) {
        let end = end.min(self.src.len());
        self.line += self.bytes()[self.pos..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.pos = end;
    }

    /// Skips whitespace and comments, then returns the next significant token.
    fn next_token(&mut self) -> Option<(Token<'a>, usize, usize)> {
        let b = self.bytes();
        loop {
            let rest = &b[self.pos..];
            match rest {
                [] => return None,
                [c, ..] if c.is_ascii_whitespace() => self.advance_to(self.pos + 1),
                // A byte-order mark: SQLite skips it before a statement, so it must not hide the
                // keyword that follows.
                [0xEF, 0xBB, 0xBF, ..] => self.advance_to(self.pos + 3),
                [b'-', b'-', ..] => {
                    let end = find(rest, b"\n").map_or(b.len(), |i| self.pos + i + 1);
                    self.advance_to(end);
                }
                [b'/', b'*', ..] => {
                    let end = find(&rest[2..], b"*/").map_or(b.len(), |i| self.pos + 2 + i + 2);
                    self.advance_to(end);
                }
                _ => break,
            }
        }
        let (start, line) = (self.pos, self.line);
        let c = b[start];
        let token = match c {
            b';' => {
                self.advance_to(start + 1);
                Token::Semicolon
            }
            b'\'' => {
                self.skip_quoted(c, c);
                Token::Text
            }
            b'"' | b'`' => {
                self.skip_quoted(c, c);
                Token::Name
            }
            b'[' => {
                self.skip_quoted(b'[', b']');
                Token::Name
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                let len = b[start..]
                    .iter()
                    .position(|&x| {
                        !(x.is_ascii_alphanumeric() || x == b'_' || x == b'$' || x >= 0x80)
                    })
                    .unwrap_or(b.len() - start);
                self.advance_to(start + len);
                Token::Word(&self.src[start..start + len])
            }
            _ => {
                // One character; step over a whole UTF-8 sequence so slicing stays on boundaries.
                let len = self.src[start..].chars().next().map_or(1, char::len_utf8);
                self.advance_to(start + len);
                Token::Other
            }
        };
        Some((token, start, line))
    }

    /// Skips a quoted string or name; a doubled closing quote is an escaped one.
    fn skip_quoted(&mut self, open: u8, close: u8) {
        let b = self.bytes();
        let mut i = self.pos + 1;
        while i < b.len() {
            if b[i] == close {
                if open != b'[' && b.get(i + 1) == Some(&close) {
                    i += 2;
                    continue;
                }
                self.advance_to(i + 1);
                return;
            }
            i += 1;
        }
        self.advance_to(b.len());
    }
}

/// The tokens of `sql` in a form where spelling that does not change meaning is gone: words and
/// quoted names lower-cased and unquoted, literals kept as written, comments and whitespace
/// dropped, `IF NOT EXISTS` removed; tokens joined by single spaces.
pub fn normalize(sql: &str) -> String {
    tokens(sql).join(" ")
}

/// The normalised tokens of `sql` (see `normalize`).
pub fn tokens(sql: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in lex(sql) {
        out.push(t.norm);
        if out.len() >= 3 && out[out.len() - 3..] == ["if", "not", "exists"] {
            out.truncate(out.len() - 3);
        }
    }
    out
}

/// One significant token as written: where it is, and its normalised spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lexed {
    pub start: usize,
    pub end: usize,
    /// Words and quoted names lower-cased and unquoted; anything else as written.
    pub norm: String,
}

/// The significant tokens of `sql` with their byte ranges (comments and whitespace skipped).
pub fn lex(sql: &str) -> Vec<Lexed> {
    let mut lexer = Lexer::new(sql);
    let mut out = Vec::new();
    while let Some((token, start, _)) = lexer.next_token() {
        let text = &sql[start..lexer.pos];
        let norm = match token {
            Token::Word(w) => w.to_lowercase(),
            Token::Name if text.len() >= 2 => {
                let inner = &text[1..text.len() - 1];
                let close = &text[text.len() - 1..];
                inner.replace(&close.repeat(2), close).to_lowercase()
            }
            _ => text.to_string(),
        };
        out.push(Lexed {
            start,
            end: lexer.pos,
            norm,
        });
    }
    out
}

/// A `CREATE TABLE` statement taken apart as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDef<'a> {
    /// Where the table's name is, to write another in its place.
    pub name: std::ops::Range<usize>,
    /// Each column's name (normalised) and its definition as written, comments inside kept.
    pub columns: Vec<(String, &'a str)>,
}

/// Takes apart `CREATE TABLE [IF NOT EXISTS] [schema.]name ( … )`; `None` for anything else.
pub fn table_def(sql: &str) -> Option<TableDef<'_>> {
    let toks = lex(sql);
    let mut i = 0;
    let word = |i: usize, w: &str| toks.get(i).is_some_and(|t| t.norm == w);
    if !word(0, "create") {
        return None;
    }
    i += 1;
    if word(i, "temp") || word(i, "temporary") {
        i += 1;
    }
    if !word(i, "table") {
        return None;
    }
    i += 1;
    if word(i, "if") && word(i + 1, "not") && word(i + 2, "exists") {
        i += 3;
    }
    if toks.get(i + 1).is_some_and(|t| t.norm == ".") {
        i += 2;
    }
    let name = toks.get(i)?;
    let name = name.start..name.end;
    i += 1;
    if !word(i, "(") {
        return None;
    }
    let mut columns = Vec::new();
    let mut depth = 0usize;
    let mut part_start: Option<usize> = None;
    let mut part_end = 0;
    for t in &toks[i..] {
        match t.norm.as_str() {
            "(" => {
                depth += 1;
                if depth == 1 {
                    continue;
                }
            }
            ")" => {
                depth -= 1;
                if depth == 0 {
                    if let Some(s) = part_start.take() {
                        columns.extend(column(&sql[s..part_end]));
                    }
                    break;
                }
            }
            "," if depth == 1 => {
                if let Some(s) = part_start.take() {
                    columns.extend(column(&sql[s..part_end]));
                }
                continue;
            }
            _ => {}
        }
        part_start.get_or_insert(t.start);
        part_end = t.end;
    }
    Some(TableDef { name, columns })
}

/// A part of a table's body that defines a column (not a table constraint): its name and text.
fn column(part: &str) -> Option<(String, &str)> {
    let first = lex(part).into_iter().next()?;
    let constraint = ["constraint", "primary", "unique", "check", "foreign"];
    (!constraint.contains(&first.norm.as_str())).then_some((first.norm, part))
}

/// Every `CHECK (…)` in `sql`: its normalised text (as schemas compare it) and the expression
/// inside as written (so it can be evaluated).
pub fn checks(sql: &str) -> Vec<(String, String)> {
    let toks = lex(sql);
    let mut out = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        if t.norm != "check" || toks.get(i + 1).map(|t| t.norm.as_str()) != Some("(") {
            continue;
        }
        let mut depth = 0;
        for (j, u) in toks.iter().enumerate().skip(i + 1) {
            match u.norm.as_str() {
                "(" => depth += 1,
                ")" => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                let norm: Vec<&str> = toks[i + 1..=j].iter().map(|t| t.norm.as_str()).collect();
                let inner = &sql[toks[i + 1].end..u.start];
                out.push((
                    format!("CHECK {}", norm.join(" ")),
                    inner.trim().to_string(),
                ));
                break;
            }
        }
    }
    out
}

/// An `ALTER TABLE … RENAME`: of the table (`column == None`) or of one of its columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    pub table: String,
    pub column: Option<String>,
    pub to: String,
}

/// The rename `statement` makes, if it is `ALTER TABLE [schema.]t RENAME [COLUMN] [a] TO b`.
pub fn rename(statement: &str) -> Option<Rename> {
    let toks = tokens(statement);
    // A string literal names a table or column there too: `RENAME TO 'b'`.
    let toks: Vec<String> = toks
        .into_iter()
        .map(
            |t| match t.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
                Some(inner) => inner.replace("''", "'").to_lowercase(),
                None => t,
            },
        )
        .collect();
    let mut t: Vec<&str> = toks.iter().map(String::as_str).collect();
    if t.last() == Some(&";") {
        t.pop();
    }
    if t.get(..2)? != ["alter", "table"] {
        return None;
    }
    let mut i = 2;
    if t.get(i + 1) == Some(&".") {
        i += 2;
    }
    let table = t.get(i)?.to_string();
    if t.get(i + 1) != Some(&"rename") {
        return None;
    }
    match &t[i + 2..] {
        ["to", to] => Some(Rename {
            table,
            column: None,
            to: to.to_string(),
        }),
        ["column", from, "to", to] | [from, "to", to] => Some(Rename {
            table,
            column: Some(from.to_string()),
            to: to.to_string(),
        }),
        _ => None,
    }
}

/// `name` quoted as an SQL identifier.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keywords(sql: &str) -> Vec<String> {
        statements(sql).into_iter().map(|s| s.keyword).collect()
    }

    #[test]
    fn splits_on_semicolons_outside_strings_names_and_comments() {
        let sql = "CREATE TABLE a (x TEXT DEFAULT ';');\n-- a comment; with BEGIN\nINSERT INTO \"we;ird\" VALUES ('it''s; fine'); /* COMMIT; */ UPDATE [b;c] SET x = 1;";
        assert_eq!(keywords(sql), ["CREATE", "INSERT", "UPDATE"]);
    }

    #[test]
    fn a_trigger_body_is_one_statement_even_with_case_end_inside() {
        let sql = "CREATE TRIGGER t AFTER DELETE ON a BEGIN\n  DELETE FROM b WHERE id = OLD.id;\n  UPDATE c SET v = CASE WHEN 1 THEN 2 END;\nEND;\nCREATE TEMP TRIGGER u AFTER INSERT ON a BEGIN SELECT 1; END;\nDROP TABLE a;";
        let s = statements(sql);
        assert_eq!(
            s.iter().map(|s| s.keyword.as_str()).collect::<Vec<_>>(),
            ["CREATE", "CREATE", "DROP"]
        );
        assert!(s[0].text.ends_with("END;"));
        assert_eq!(s[1].line, 5);
        assert_eq!(s[2].line, 6);
    }

    #[test]
    fn transaction_control_is_seen_as_the_first_keyword() {
        let sql = "begin transaction;\nCREATE TABLE a(x);\n  Commit;\nsavepoint s; release s; end; rollback; vacuum;";
        assert_eq!(
            keywords(sql),
            [
                "BEGIN",
                "CREATE",
                "COMMIT",
                "SAVEPOINT",
                "RELEASE",
                "END",
                "ROLLBACK",
                "VACUUM"
            ]
        );
        assert_eq!(statements(sql)[2].line, 3);
    }

    fn refusals(sql: &str) -> Vec<Option<Refusal>> {
        statements(sql).iter().map(Statement::refusal).collect()
    }

    #[test]
    fn pragmas_that_change_how_the_transaction_is_kept_are_refused_with_or_without_a_schema() {
        use Refusal::Pragma;
        assert_eq!(
            refusals(
                "PRAGMA journal_mode = DELETE;\npragma main.LOCKING_MODE=exclusive;\n\
                 PRAGMA \"synchronous\" = OFF; PRAGMA writable_schema;\n\
                 PRAGMA foreign_keys = ON; PRAGMA user_version = 3; PRAGMA main.table_info(a);"
            ),
            [
                Some(Pragma("journal_mode")),
                Some(Pragma("locking_mode")),
                Some(Pragma("synchronous")),
                Some(Pragma("writable_schema")),
                None,
                None,
                None
            ]
        );
    }

    #[test]
    fn attach_detach_and_shell_commands_are_refused_but_a_dot_inside_a_statement_is_not() {
        let found = refusals(
            "attach 'x.db' AS x;\nDETACH x;\n.read more.sql\nCREATE TABLE a(x);\n\
             SELECT a\n.x FROM a;\nSELECT .5;",
        );
        assert_eq!(
            found,
            [
                Some(Refusal::Attach("ATTACH".into())),
                Some(Refusal::Attach("DETACH".into())),
                Some(Refusal::DotCommand(".read".into())),
                None,
                None
            ]
        );
        assert_eq!(statements("CREATE TABLE a(x);\n.import f a\n")[1].line, 2);
    }

    #[test]
    fn the_first_nul_byte_is_found_with_its_line() {
        assert_eq!(nul_line("CREATE TABLE a(x);\n\nDROP\0 TABLE a;"), Some(3));
        assert_eq!(nul_line("\0"), Some(1));
        assert_eq!(nul_line("SELECT 1;"), None);
    }

    #[test]
    fn a_byte_order_mark_does_not_hide_the_keyword() {
        assert_eq!(
            keywords("\u{feff}BEGIN;\nCREATE TABLE a(x);\n\u{feff}COMMIT;"),
            ["BEGIN", "CREATE", "COMMIT"]
        );
    }

    #[test]
    fn comment_only_tails_and_stray_semicolons_are_not_statements() {
        assert_eq!(
            keywords("CREATE TABLE a(x);;\n-- the end\n/* really */\n"),
            ["CREATE"]
        );
        assert!(statements("").is_empty());
        assert_eq!(keywords("SELECT 1"), ["SELECT"]);
    }

    #[test]
    fn normalizing_ignores_quoting_case_whitespace_and_comments_but_not_literals() {
        assert_eq!(
            normalize("CREATE TABLE IF NOT EXISTS \"Notes\" (\n  id INTEGER, -- key\n  s TEXT DEFAULT 'User'\n)"),
            normalize("create table [notes] (id integer,s text default 'User')")
        );
        assert_ne!(normalize("DEFAULT 'user'"), normalize("DEFAULT 'User'"));
        assert_eq!(normalize("\"a\"\"b\""), "a\"b");
    }

    #[test]
    fn unterminated_quotes_and_comments_do_not_panic() {
        for sql in [
            "SELECT 'abc",
            "SELECT \"abc",
            "/* open",
            "SELECT [x",
            "é;ü;",
            "--",
        ] {
            let _ = statements(sql);
        }
    }

    #[test]
    fn a_table_definition_is_taken_apart_as_written() {
        let sql = "CREATE TABLE IF NOT EXISTS \"Notes\" (\n  id INTEGER PRIMARY KEY, -- the key, (really)\n  body TEXT NOT NULL DEFAULT 'a,b',\n  kind TEXT CHECK (kind IN ('x', 'y')),\n  UNIQUE (body, kind)\n)";
        let def = table_def(sql).unwrap();
        assert_eq!(&sql[def.name.clone()], "\"Notes\"");
        let cols: Vec<(&str, &str)> = def.columns.iter().map(|(n, t)| (n.as_str(), *t)).collect();
        assert_eq!(
            cols,
            [
                ("id", "id INTEGER PRIMARY KEY"),
                ("body", "body TEXT NOT NULL DEFAULT 'a,b'"),
                ("kind", "kind TEXT CHECK (kind IN ('x', 'y'))"),
            ]
        );
        assert!(table_def("CREATE VIEW v AS SELECT 1").is_none());
    }

    #[test]
    fn checks_keep_their_expression_as_written() {
        let found =
            checks("CREATE TABLE t (a REAL CHECK (a <= 1.5), b TEXT, CHECK (b != 'x' OR a >= 0))");
        assert_eq!(found[0].1, "a <= 1.5");
        assert_eq!(found[1].1, "b != 'x' OR a >= 0");
        assert_eq!(found[0].0, "CHECK ( a < = 1 . 5 )");
    }

    #[test]
    fn renames_of_tables_and_columns_are_recognised() {
        assert_eq!(
            rename("ALTER TABLE main.\"Old\" RENAME TO [new];"),
            Some(Rename {
                table: "old".into(),
                column: None,
                to: "new".into()
            })
        );
        assert_eq!(
            rename("alter table t rename column a to b").map(|r| r.column),
            Some(Some("a".to_string()))
        );
        assert_eq!(
            rename("ALTER TABLE t RENAME a TO b").map(|r| r.to),
            Some("b".into())
        );
        assert_eq!(rename("ALTER TABLE t ADD COLUMN x"), None);
        assert_eq!(
            rename("ALTER TABLE 'It''s' RENAME TO 'Labels'").map(|r| (r.table, r.to)),
            Some(("it's".to_string(), "labels".to_string()))
        );
    }
}
