//! The shape of `src/` stays as docs/architecture.md draws it: every import (`use crate::…`,
//! `super::…`, and `crate::…` paths in code) points down the layers, and no two files import each
//! other, directly or through others.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use crate::support::root;

/// The layers, lowest first: a module may import its own layer's siblings inside its own folder,
/// and anything in a lower layer. The longest matching prefix names a module's layer.
const LAYERS: &[(&str, u32)] = &[
    ("domain", 0),
    // The TMC wire format and what Taobao's statuses mean: pure, beside the domain.
    ("adapters::tmc::codec", 1),
    ("adapters::tmc::effects", 1),
    ("eval", 1),
    ("config", 2),
    ("store", 3),
    // The outbound port, its HTTP helpers, pacing and the outbox rows: below the shared state.
    ("outbound::platform", 4),
    ("outbound::http", 4),
    ("outbound::pacer", 4),
    ("outbound::webhooks", 4),
    ("state", 5),
    ("intake", 6),
    ("pipeline", 7),
    ("outbound", 7),
    ("adapters", 7),
    ("accounts", 8),
    ("review", 8),
    ("http", 9),
    ("console", 9),
    ("app", 10),
    ("demo", 11),
    ("cli", 12),
    ("", 13),
];

fn layer(module: &[String]) -> u32 {
    let path = module.join("::");
    LAYERS
        .iter()
        .filter(|(prefix, _)| prefix.is_empty() || path == *prefix || path.starts_with(&format!("{prefix}::")))
        .max_by_key(|(prefix, _)| prefix.len())
        .map_or(13, |(_, l)| *l)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/a/b.rs` is module `a::b`; `lib.rs` and `main.rs` are the root.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel.with_extension("").iter().map(|s| s.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|l| l == "lib" || l == "main" || l == "mod") {
        parts.pop();
    }
    parts
}

/// The code without comments and string literals (which may mention paths).
fn code_only(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let b: Vec<char> = src.chars().collect();
    let mut i = 0;
    while i < b.len() {
        if b[i] == '/' && b.get(i + 1) == Some(&'/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if b[i] == '/' && b.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == '*' && b[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if b[i] == '"' && (i == 0 || b[i - 1] != '\'') {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// `a::{b, c::{d, e}}` as the paths `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<Vec<String>> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let mut out = Vec::new();
    fn walk(prefix: &[String], t: &str, out: &mut Vec<Vec<String>>) {
        let Some(open) = t.find('{') else {
            let head = t.split(" as ").next().unwrap_or(t);
            let mut p = prefix.to_vec();
            p.extend(head.split("::").filter(|s| !s.is_empty()).map(|s| s.split("as").next().unwrap_or(s).to_owned()));
            out.push(p);
            return;
        };
        let mut p = prefix.to_vec();
        p.extend(t[..open].split("::").filter(|s| !s.is_empty()).map(str::to_owned));
        let inner = &t[open + 1..t.rfind('}').unwrap_or(t.len())];
        let (mut depth, mut start) = (0, 0);
        for (i, ch) in inner.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    walk(&p, &inner[start..i], out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        if start < inner.len() {
            walk(&p, &inner[start..], out);
        }
    }
    walk(&[], &tree, &mut out);
    out
}

/// Every path of ours a file names: `use` trees expanded, then `crate::`/`super::` paths in code.
fn paths_in(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = String::with_capacity(code.len());
    let mut s = code;
    while let Some(i) = s.find("use ") {
        let before_ok = i == 0 || !s[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_');
        let after = &s[i + 4..];
        if before_ok && (after.starts_with("crate::") || after.starts_with("super::") || after.starts_with("self::")) {
            let end = after.find(';').unwrap_or(after.len());
            out.extend(expand(&after[..end]));
            rest.push_str(&s[..i]);
            s = &after[end..];
        } else {
            rest.push_str(&s[..i + 4]);
            s = after;
        }
    }
    rest.push_str(s);
    let chars: Vec<char> = rest.chars().collect();
    let text: String = chars.iter().collect();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = text[from..].find(start).map(|i| i + from) {
            from = i + start.len();
            if i > 0 && text[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$') {
                continue;
            }
            let end =
                text[i..].find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).map_or(text.len(), |e| e + i);
            out.push(text[i..end].split("::").filter(|p| !p.is_empty()).map(str::to_owned).collect());
        }
    }
    out
}

struct Graph {
    /// File (relative to `src/`) to its module path.
    modules: BTreeMap<PathBuf, Vec<String>>,
    /// File to the files it imports.
    edges: BTreeMap<PathBuf, BTreeSet<PathBuf>>,
}

fn graph() -> Graph {
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeMap<PathBuf, Vec<String>> = files
        .iter()
        .map(|f| {
            let rel = f.strip_prefix(&src).unwrap().to_owned();
            let m = module_of(&rel);
            (rel, m)
        })
        .collect();
    let by_module: BTreeMap<Vec<String>, PathBuf> = modules.iter().map(|(f, m)| (m.clone(), f.clone())).collect();
    let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for (rel, me) in &modules {
        let code = code_only(&std::fs::read_to_string(src.join(rel)).unwrap());
        // Inline test modules (`use super::*`) test their own file; they import nothing of it.
        let code = code.split("#[cfg(test)]").next().unwrap_or_default();
        for path in paths_in(code) {
            let (mut base, mut rest): (Vec<String>, &[String]) = match path.first().map(String::as_str) {
                Some("crate") => (Vec::new(), &path[1..]),
                _ => (me.clone(), &path[..]),
            };
            while let Some(first) = rest.first() {
                match first.as_str() {
                    "super" => {
                        base.pop();
                    }
                    "self" => {}
                    _ => break,
                }
                rest = &rest[1..];
            }
            base.extend(rest.iter().cloned());
            // The longest prefix of the path that is a file of ours.
            let target = (1..=base.len()).rev().find_map(|n| by_module.get(&base[..n]));
            if let Some(t) = target.filter(|t| *t != rel) {
                edges.entry(rel.clone()).or_default().insert(t.clone());
            }
        }
    }
    Graph { modules, edges }
}

/// Every import goes to a lower layer, or stays inside its folder at the same layer or below.
#[test]
fn imports_point_down() {
    let g = graph();
    let mut upward = Vec::new();
    for (from, targets) in &g.edges {
        let fm = &g.modules[from];
        for to in targets {
            let tm = &g.modules[to];
            let (lf, lt) = (layer(fm), layer(tm));
            let same_folder = !fm.is_empty() && !tm.is_empty() && fm[0] == tm[0];
            if !(lt < lf || same_folder && lt <= lf) {
                upward.push(format!("{} (layer {lf}) -> {} (layer {lt})", from.display(), to.display()));
            }
        }
    }
    assert!(upward.is_empty(), "imports that do not point down:\n{}", upward.join("\n"));
    // Nothing but the entry points imports the HTTP layer, the console or the app.
    for (from, targets) in &g.edges {
        for to in targets {
            let top = g.modules[to].first().map(String::as_str);
            if matches!(top, Some("http" | "console" | "app")) {
                let src = g.modules[from].first().map_or("", String::as_str);
                assert!(
                    matches!(src, "app" | "demo" | "cli" | "") || g.modules[from].first() == g.modules[to].first(),
                    "{} imports {}",
                    from.display(),
                    to.display()
                );
            }
        }
    }
    // The domain imports nothing of ours outside itself.
    for (from, targets) in &g.edges {
        if g.modules[from].first().is_some_and(|m| m == "domain") {
            for to in targets {
                assert!(
                    g.modules[to].first().is_some_and(|m| m == "domain") || to == Path::new("domain.rs"),
                    "{} reaches out to {}",
                    from.display(),
                    to.display()
                );
            }
        }
    }
}

/// No file imports itself through others (no circle of imports).
#[test]
fn no_import_circles() {
    let g = graph();
    // Depth-first search for a back edge; the path found is reported.
    fn visit(
        f: &PathBuf,
        g: &Graph,
        state: &mut BTreeMap<PathBuf, u8>,
        stack: &mut Vec<PathBuf>,
        found: &mut Vec<String>,
    ) {
        state.insert(f.clone(), 1);
        stack.push(f.clone());
        for t in g.edges.get(f).into_iter().flatten() {
            match state.get(t).copied().unwrap_or(0) {
                0 => visit(t, g, state, stack, found),
                1 => {
                    let at = stack.iter().position(|s| s == t).unwrap_or(0);
                    let circle: Vec<String> =
                        stack[at..].iter().chain(std::iter::once(t)).map(|p| p.display().to_string()).collect();
                    found.push(circle.join(" -> "));
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(f.clone(), 2);
    }
    let (mut state, mut found) = (BTreeMap::new(), Vec::new());
    for f in g.modules.keys() {
        if !state.contains_key(f) {
            visit(f, &g, &mut state, &mut Vec::new(), &mut found);
        }
    }
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

/// The walker itself: `use` trees, `super`, and paths in code are all seen.
#[test]
fn the_walker_sees_every_kind_of_import() {
    let code = code_only(
        "use crate::{a::{b, c::D}, e};\nuse super::f::G;\nfn x() { crate::h::i(); \"crate::not::this\"; } // crate::nor::this",
    );
    let got: Vec<String> = paths_in(&code).into_iter().map(|p| p.join("::")).collect();
    assert_eq!(got, ["crate::a::b", "crate::a::c::D", "crate::e", "super::f::G", "crate::h::i"]);
    assert_eq!(layer(&["store".to_owned(), "drafts".to_owned()]), 3);
    assert_eq!(layer(&["outbound".to_owned(), "sender".to_owned()]), 7);
    assert_eq!(layer(&["outbound".to_owned(), "platform".to_owned()]), 4);
    assert_eq!(layer(&[]), 13);
}
