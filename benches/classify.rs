//! Throughput of the understanding core over the labelled corpus, with a bare Aho-Corasick
//! scan of the same phrase set over the same messages as the baseline in the same run, the
//! catalog load time, and the whole-process throughput of `shouhou classify -` on a
//! 100,000-line file.
//!
//! Run: `cargo bench --bench classify`. On a shared machine compare the ratios printed at the
//! end, not the absolute figures.

use std::{
    hint::black_box,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use criterion::{Criterion, Throughput};
use shouhou::{Understanding, eval::parse_corpus};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn messages() -> Vec<String> {
    let src = std::fs::read_to_string(root().join("tests/fixtures/intents.tsv")).expect("corpus");
    parse_corpus(&src).expect("corpus parses").into_iter().map(|s| s.text).collect()
}

fn bench(c: &mut Criterion, u: &Understanding, msgs: &[String]) {
    let phrases = u.catalog.cue_phrases();
    let bare = AhoCorasick::builder()
        .match_kind(MatchKind::Standard)
        .kind(Some(AhoCorasickKind::DFA))
        .build(&phrases)
        .expect("bare automaton");

    let mut g = c.benchmark_group("corpus");
    g.throughput(Throughput::Elements(msgs.len() as u64));
    g.bench_function("bare_scan", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for m in msgs {
                n += bare.find_overlapping_iter(m.as_str()).count();
            }
            black_box(n)
        });
    });
    g.bench_function("normalize", |b| {
        b.iter(|| {
            for m in msgs {
                black_box(u.catalog.normalizer.normalize(m));
            }
        });
    });
    g.bench_function("classify", |b| {
        b.iter(|| {
            for m in msgs {
                black_box(u.classify(m));
            }
        });
    });
    g.bench_function("analyze", |b| {
        b.iter(|| {
            for m in msgs {
                black_box(u.analyze(m));
            }
        });
    });
    g.finish();

    let mut g = c.benchmark_group("load");
    g.sample_size(20);
    g.bench_function("intents", |b| b.iter(|| black_box(Understanding::load(&root().join("intents")).expect("load"))));
    g.finish();
}

/// Mean time per iteration of a finished criterion benchmark, from its estimates file.
fn mean_ns(group: &str, name: &str) -> Option<f64> {
    let dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    let p = dir.join("criterion").join(group).join(name).join("new").join("estimates.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()?;
    v["mean"]["point_estimate"].as_f64()
}

fn batch_cli(msgs: &[String]) {
    const LINES: usize = 100_000;
    let mut input = String::new();
    for m in msgs.iter().cycle().take(LINES) {
        input.push_str(m);
        input.push('\n');
    }
    let path = std::env::temp_dir().join(format!("shouhou-bench-{}.txt", std::process::id()));
    std::fs::write(&path, &input).expect("write input");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_shouhou"))
        .args(["classify", "-"])
        .env("SHOUHOU_INTENTS", root().join("intents"))
        .stdin(std::fs::File::open(&path).expect("open input"))
        .stdout(Stdio::piped())
        .output()
        .expect("run shouhou");
    let took = started.elapsed();
    let _ = std::fs::remove_file(&path);
    let lines = out.stdout.iter().filter(|b| **b == b'\n').count();
    assert_eq!(lines, LINES, "one JSON line per input line");
    println!(
        "batch CLI: {LINES} lines ({:.1} MB) through `shouhou classify -` in {:.2} s: {:.0} lines/s (whole process, load and JSON included)",
        input.len() as f64 / 1e6,
        took.as_secs_f64(),
        LINES as f64 / took.as_secs_f64()
    );
}

fn main() {
    let u = Understanding::load(&root().join("intents")).expect("intents load");
    let msgs = messages();
    let mut c = Criterion::default().configure_from_args().measurement_time(Duration::from_secs(4));
    bench(&mut c, &u, &msgs);
    c.final_summary();

    let n = msgs.len() as f64;
    let per_sec = |g: &str, name: &str| mean_ns(g, name).map(|ns| n / (ns * 1e-9));
    println!("\n== summary ({} messages per iteration, one core) ==", msgs.len());
    for name in ["bare_scan", "normalize", "classify", "analyze"] {
        if let Some(r) = per_sec("corpus", name) {
            println!("{name:>10}: {r:>12.0} messages/s");
        }
    }
    if let (Some(c), Some(b)) = (mean_ns("corpus", "classify"), mean_ns("corpus", "bare_scan")) {
        println!("classify / bare scan time ratio: {:.2}x", c / b);
    }
    if let Some(l) = mean_ns("load", "intents") {
        println!("catalog load: {:.2} ms", l / 1e6);
    }
    batch_cli(&msgs);
}
