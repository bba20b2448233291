//! The two migration folders stay in step: the same files, and after each file the same tables
//! with the same columns (name, type, constraints) and the same indexes. The one allowed
//! difference is the spelling of an auto-numbered key: `INTEGER PRIMARY KEY AUTOINCREMENT` on
//! SQLite, `BIGSERIAL PRIMARY KEY` on PostgreSQL.

use std::collections::BTreeMap;

use crate::support::root;

/// Table to its columns (name to definition, in order), plus the indexes by name.
#[derive(Debug, Default, PartialEq)]
struct Schema {
    tables: BTreeMap<String, Vec<(String, String)>>,
    indexes: BTreeMap<String, String>,
}

/// Upper-cased, single-spaced, comments dropped; the auto-numbered key spelled one way.
fn normalize(sql: &str) -> String {
    let no_comments: String = sql.lines().map(|l| l.split("--").next().unwrap_or("")).collect::<Vec<_>>().join(" ");
    let spaced = no_comments.split_whitespace().collect::<Vec<_>>().join(" ").to_uppercase();
    spaced.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "AUTO_KEY").replace("BIGSERIAL PRIMARY KEY", "AUTO_KEY")
}

/// Splits at top-level commas (not inside parentheses).
fn split_top(s: &str) -> Vec<String> {
    let (mut out, mut depth, mut cur) = (Vec::new(), 0, String::new());
    for ch in s.chars() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(cur.trim().to_owned());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_owned());
    }
    out
}

fn apply(schema: &mut Schema, file: &str, sql: &str) {
    for stmt in normalize(sql).split(';').map(str::trim).filter(|s| !s.is_empty()) {
        if let Some(rest) = stmt.strip_prefix("CREATE TABLE ") {
            let open = rest.find('(').unwrap_or_else(|| panic!("{file}: {stmt}"));
            let name = rest[..open].trim().trim_start_matches("IF NOT EXISTS ").to_owned();
            let body = &rest[open + 1..rest.rfind(')').unwrap()];
            let cols = split_top(body)
                .into_iter()
                .map(|c| match c.split_once(' ') {
                    Some((n, def)) => (n.to_owned(), def.to_owned()),
                    None => (c.clone(), String::new()),
                })
                .collect();
            assert!(schema.tables.insert(name.clone(), cols).is_none(), "{file}: table {name} created twice");
        } else if let Some(rest) = stmt.strip_prefix("ALTER TABLE ") {
            let (table, change) = rest.split_once(' ').unwrap();
            let col = change.strip_prefix("ADD COLUMN ").unwrap_or_else(|| panic!("{file}: unexpected {stmt}"));
            let (n, def) = col.split_once(' ').unwrap_or((col, ""));
            schema
                .tables
                .get_mut(table)
                .unwrap_or_else(|| panic!("{file}: {table} altered before it exists"))
                .push((n.to_owned(), def.to_owned()));
        } else if stmt.starts_with("CREATE INDEX ") || stmt.starts_with("CREATE UNIQUE INDEX ") {
            let name = stmt.split(' ').nth(if stmt.starts_with("CREATE UNIQUE") { 3 } else { 2 }).unwrap().to_owned();
            schema.indexes.insert(name, stmt.to_owned());
        } else {
            panic!("{file}: a statement this check does not know: {stmt}");
        }
    }
}

fn files(backend: &str) -> Vec<(String, String)> {
    let dir = root().join("migrations").join(backend);
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    out.sort();
    out
}

#[test]
fn sqlite_and_postgres_migrations_agree_table_by_table() {
    let (lite, pg) = (files("sqlite"), files("postgres"));
    let names = |f: &[(String, String)]| f.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&lite), names(&pg), "the two folders hold different migrations");
    let (mut a, mut b) = (Schema::default(), Schema::default());
    for ((file, l), (_, p)) in lite.iter().zip(&pg) {
        apply(&mut a, file, l);
        apply(&mut b, file, p);
        assert_eq!(
            a.tables.keys().collect::<Vec<_>>(),
            b.tables.keys().collect::<Vec<_>>(),
            "after {file}: different tables"
        );
        for (table, cols) in &a.tables {
            let other = &b.tables[table];
            for (i, (x, y)) in cols.iter().zip(other).enumerate() {
                assert_eq!(x, y, "after {file}: table {table}, column {}", i + 1);
            }
            assert_eq!(cols.len(), other.len(), "after {file}: table {table} has different columns");
        }
        assert_eq!(a.indexes, b.indexes, "after {file}: different indexes");
    }
    assert!(a.tables.len() >= 10, "the parser found too few tables: {:?}", a.tables.keys());
}

/// The comparison notices a column that is missing, spelled differently or typed differently.
#[test]
fn a_drifted_column_is_noticed() {
    let base = "CREATE TABLE t (\n id INTEGER PRIMARY KEY AUTOINCREMENT, -- key\n a TEXT NOT NULL\n);";
    let mut reference = Schema::default();
    apply(&mut reference, "a", base);
    let mut same = Schema::default();
    apply(&mut same, "b", "create table t (id BIGSERIAL PRIMARY KEY, a text not null);");
    assert_eq!(reference, same);
    for drifted in [
        "CREATE TABLE t (id BIGSERIAL PRIMARY KEY, a TEXT);",
        "CREATE TABLE t (id BIGSERIAL PRIMARY KEY, b TEXT NOT NULL);",
        "CREATE TABLE t (id BIGSERIAL PRIMARY KEY, a BIGINT NOT NULL);",
        "CREATE TABLE t (id BIGSERIAL PRIMARY KEY);",
    ] {
        let mut other = Schema::default();
        apply(&mut other, "c", drifted);
        assert_ne!(reference, other, "{drifted}");
    }
}
