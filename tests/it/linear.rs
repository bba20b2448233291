//! The shared linear model: deterministic training, multi-label scores, evidence spans, any
//! label set, and linear cost on long inputs.

use shouhou::domain::linear::{Example, Model, Options, train};

const LABELS: [&str; 3] = ["rotten", "late", "thanks"];

fn corpus() -> Vec<(&'static str, Vec<usize>)> {
    vec![
        ("鸡腿臭了", vec![0]),
        ("打开就臭了", vec![0]),
        ("榴莲烂了", vec![0]),
        ("苹果都烂了", vec![0]),
        ("快递还没到", vec![1]),
        ("怎么还没到", vec![1]),
        ("一周了还没到货", vec![1]),
        ("物流三天没动", vec![1]),
        ("谢谢亲", vec![2]),
        ("好的谢谢", vec![2]),
        ("谢谢啦", vec![2]),
        ("有货吗", vec![]),
        ("能便宜点吗", vec![]),
        ("这个尺码怎么选", vec![]),
        ("还没到而且都臭了", vec![0, 1]),
        ("烂了还很久才到", vec![0, 1]),
        ("臭了又没到", vec![0, 1]),
        ("在吗", vec![]),
    ]
}

fn model_with(options: &Options) -> Model {
    let c = corpus();
    let ex: Vec<Example<'_>> = c.iter().map(|(t, l)| Example { text: t, labels: l }).collect();
    train(&ex, &LABELS, options)
}

fn model() -> Model {
    model_with(&Options::default())
}

/// The same examples and options give the same model, bit for bit; the fingerprint does see a
/// change (another seed shuffles differently).
#[test]
fn training_is_deterministic() {
    let a = model();
    let b = model();
    assert_eq!(a.fingerprint(), b.fingerprint());
    assert_eq!(
        a.scores("牛肉臭了还没到").iter().map(|s| s.to_bits()).collect::<Vec<_>>(),
        b.scores("牛肉臭了还没到").iter().map(|s| s.to_bits()).collect::<Vec<_>>()
    );
    let c = model_with(&Options { seed: 7, ..Options::default() });
    assert_ne!(a.fingerprint(), c.fingerprint());
}

/// Scores are per-label probabilities: one text may carry two labels, an unrelated one none.
#[test]
fn multi_label_scores() {
    let m = model();
    assert_eq!(m.labels(), LABELS);
    let s = m.scores("羊肉臭了");
    assert!(s[0] > 0.5 && s[1] < 0.5 && s[2] < 0.5, "{s:?}");
    let s = m.scores("包裹还没到");
    assert!(s[1] > 0.5 && s[0] < 0.5, "{s:?}");
    let s = m.scores("牛肉臭了还没到");
    assert!(s[0] > 0.5 && s[1] > 0.5, "{s:?}");
    let s = m.scores("请问有优惠吗");
    assert!(s.iter().all(|p| *p < 0.5), "{s:?}");
    assert!(s.iter().all(|p| (0.0..=1.0).contains(p)));
    // The empty text scores the priors.
    assert!(m.scores("").iter().all(|p| *p < 0.5));
}

/// Evidence names the n-grams that raised a label, with spans into the scored text.
#[test]
fn evidence_spans_point_into_the_text() {
    let m = model();
    let text = "我的羊肉臭了啊";
    let ev = m.evidence(text, 0, 3);
    assert!(!ev.is_empty() && ev.len() <= 3);
    let chars: Vec<char> = text.chars().collect();
    for g in &ev {
        assert!(g.weight > 0.0);
        assert_eq!(g.text, chars[g.span[0]..g.span[1]].iter().collect::<String>());
    }
    for w in ev.windows(2) {
        assert!(w[0].weight >= w[1].weight);
    }
    assert!(ev.iter().any(|g| g.text.contains('臭')), "{ev:?}");
    // Nothing supports a label the text has nothing of.
    assert!(m.evidence("有货吗", 0, 5).iter().all(|g| !g.text.contains('臭')));
}

/// An n-gram repeated counts once (features are binary): repeating the whole message adds only
/// the n-grams across the seam and the length bucket.
#[test]
fn repeated_text_counts_once() {
    let m = model();
    let once = m.scores("谢谢");
    let many = m.scores(&"谢谢".repeat(50));
    // "谢谢谢…" has the same n-grams as "谢谢谢" plus a longer length bucket: not fifty times
    // the evidence.
    let thrice = m.scores("谢谢谢谢谢谢谢谢谢谢谢谢谢谢谢谢谢谢谢谢谢谢谢谢谢谢谢谢谢谢谢谢谢谢");
    assert!((many[2] - thrice[2]).abs() < 1e-6, "{many:?} vs {thrice:?}");
    assert!(once[2] > 0.5);
}

/// Any label set works (the guard trains its own), and a label index outside it is refused.
#[test]
fn own_label_sets() {
    let ex = [Example { text: "这是您的问题", labels: &[0] }, Example { text: "马上为您处理", labels: &[] }];
    let m = train(&ex, &["blame"], &Options::default());
    assert_eq!(m.labels(), ["blame"]);
    assert!(m.scores("是您的问题")[0] > m.scores("为您处理")[0]);
    let bad =
        std::panic::catch_unwind(|| train(&[Example { text: "x", labels: &[1] }], &["only"], &Options::default()));
    assert!(bad.is_err());
}

/// Cost is linear in the text: a 100 KB text (digits, then one repeated character, then
/// varied text) produces a bounded number of distinct features and scores like its shorter
/// self; the number of n-grams visited equals three per character plus a constant.
#[test]
fn long_inputs_are_linear() {
    let m = model();
    let digits = "1".repeat(100_000);
    let s_long = m.scores(&digits);
    let s_short = m.scores(&"1".repeat(40));
    assert_eq!(s_long, s_short, "same distinct features, same length bucket");
    let ev = m.evidence(&"臭".repeat(100_000), 0, 5);
    assert!(ev.len() <= 5);
    assert_eq!(shouhou::domain::linear::feature_count(&digits), 3 * 100_000 + 2);
    assert_eq!(shouhou::domain::linear::feature_count("ab"), 3 * 2 + 2);
}
