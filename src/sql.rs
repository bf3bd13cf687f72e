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
    let mut lexer = Lexer::new(sql);
    let mut out: Vec<String> = Vec::new();
    while let Some((token, start, _)) = lexer.next_token() {
        let text = &sql[start..lexer.pos];
        out.push(match token {
            Token::Word(w) => w.to_lowercase(),
            Token::Name if text.len() >= 2 => {
                let inner = &text[1..text.len() - 1];
                let close = &text[text.len() - 1..];
                inner.replace(&close.repeat(2), close).to_lowercase()
            }
            _ => text.to_string(),
        });
        if out.len() >= 3 && out[out.len() - 3..] == ["if", "not", "exists"] {
            out.truncate(out.len() - 3);
        }
    }
    out
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
}
