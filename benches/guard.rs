//! Throughput of the guard's `check` with both layers (rules and the learned model) over the
//! labelled reply corpus, as for a non-ordering account with receiver data to protect (so the
//! leak folding runs too) and for the orderer; and the time of one 2,000-character edit.
//!
//! Run: `cargo bench --bench guard`. Prints replies/s per core (criterion runs on one thread)
//! and the time per 2,000-character edit at the end. Goals: ≥ 100,000 replies/s, ≤ 1 ms.

use std::{hint::black_box, path::PathBuf};

use criterion::{Criterion, Throughput};
use shouhou::{
    Understanding,
    domain::guard::{EditorAuthority, Guard, GuardContext, Protected},
    domain::money::Money,
    eval::parse_replies,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn mean_ns(group: &str, name: &str) -> Option<f64> {
    let dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    let p = dir.join("criterion").join(group).join(name).join("new").join("estimates.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()?;
    v["mean"]["point_estimate"].as_f64()
}

fn main() {
    let u = Understanding::load(&root().join("intents")).expect("intents");
    let n = &u.catalog.normalizer;
    let guard = Guard::load(&root().join("templates/guard.toml"), n).expect("guard");
    let mut replies: Vec<String> = Vec::new();
    for f in ["tests/fixtures/replies.tsv", "templates/guard/replies.tsv"] {
        let src = std::fs::read_to_string(root().join(f)).expect("corpus");
        replies.extend(parse_replies(&src).expect("parses").into_iter().map(|s| s.text));
    }
    let stranger = GuardContext {
        protected: Protected {
            names: vec!["王小明".into()],
            phones: vec!["13912345678".into()],
            addresses: vec!["浙江省杭州市西湖区文三路88号3栋201室".into()],
        },
        authority: Some(EditorAuthority {
            role: "agent".into(),
            max_amount: Money(2000),
            max_percent: 30,
            order_total: Some(Money(3990)),
        }),
        return_qualifies: true,
        ..GuardContext::default()
    };
    let orderer = GuardContext { recipient_is_orderer: true, return_qualifies: true, ..GuardContext::default() };
    // A long edit: real replies joined until 2,000 characters.
    let mut edit = String::new();
    for r in replies.iter().cycle() {
        if edit.chars().count() >= 2000 {
            break;
        }
        edit.push_str(r);
    }
    let edit: String = edit.chars().take(2000).collect();

    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("guard");
    g.throughput(Throughput::Elements(replies.len() as u64));
    g.bench_function("check_non_orderer", |b| {
        b.iter(|| {
            for r in &replies {
                black_box(guard.check(r, &stranger, n));
            }
        });
    });
    g.bench_function("check_orderer", |b| {
        b.iter(|| {
            for r in &replies {
                black_box(guard.check(r, &orderer, n));
            }
        });
    });
    g.finish();
    let mut g = c.benchmark_group("guard_edit");
    g.bench_function("edit_2000_chars", |b| b.iter(|| black_box(guard.check(&edit, &stranger, n))));
    g.finish();
    c.final_summary();

    for name in ["check_non_orderer", "check_orderer"] {
        if let Some(ns) = mean_ns("guard", name) {
            println!(
                "guard {name}: {:.0} replies/s per core ({} replies)",
                replies.len() as f64 / (ns / 1e9),
                replies.len()
            );
        }
    }
    if let Some(ns) = mean_ns("guard_edit", "edit_2000_chars") {
        println!("guard edit of 2,000 characters: {:.3} ms", ns / 1e6);
    }
}
