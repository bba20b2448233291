//! Evaluation of the classifier against a labelled corpus (`intent<TAB>text` lines).
//!
//! Pure: parsing takes the file's text, scoring takes the loaded understanding. Reports
//! per-class precision / recall / F1 (the 18 intents and `other`), macro-F1 over those 19
//! classes, exact-match accuracy, the top confusions, precision by score threshold, and every
//! misclassified line.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::{INTENT_IDS, Understanding, catalog::intent_index};

/// The label for "no intent".
pub const OTHER: &str = "other";

/// One labelled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// 1-based line number in the file.
    pub line: usize,
    /// Gold intent ids, sorted; empty means `other`.
    pub gold: Vec<&'static str>,
    /// The message.
    pub text: String,
}

/// A malformed corpus line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct CorpusError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub problem: String,
}

/// The `(line number, label, text)` of every labelled line of a TSV file; `#` comments and
/// blank lines are skipped. `shape` names the expected form in errors.
fn tsv_lines<'a>(
    src: &'a str,
    shape: &'a str,
) -> impl Iterator<Item = Result<(usize, &'a str, &'a str), CorpusError>> + 'a {
    src.lines().enumerate().filter_map(move |(i, raw)| {
        let line = i + 1;
        let l = raw.trim_end_matches('\r');
        if l.trim().is_empty() || l.starts_with('#') {
            return None;
        }
        let Some((label, text)) = l.split_once('\t') else {
            return Some(Err(CorpusError { line, problem: format!("expected `{shape}`: no tab found") }));
        };
        if text.trim().is_empty() {
            return Some(Err(CorpusError { line, problem: "empty text".into() }));
        }
        Some(Ok((line, label, text)))
    })
}

/// Parses a corpus: `labels<TAB>text` per line, `a|b` for several intents, `other` for none,
/// `#` comments and blank lines ignored.
///
/// # Errors
/// A line without a tab, an empty text, or an unknown label.
pub fn parse_corpus(src: &str) -> Result<Vec<Sample>, CorpusError> {
    let mut out = Vec::new();
    for item in tsv_lines(src, "intent<TAB>text") {
        let (line, labels, text) = item?;
        let mut gold = Vec::new();
        for label in labels.split('|').map(str::trim) {
            if label == OTHER {
                continue;
            }
            let Some(idx) = intent_index(label) else {
                return Err(CorpusError {
                    line,
                    problem: format!("unknown label `{label}`; use an intent id of the contract or `other`"),
                });
            };
            gold.push(INTENT_IDS[idx as usize]);
        }
        gold.sort_unstable();
        gold.dedup();
        out.push(Sample { line, gold, text: text.to_owned() });
    }
    Ok(out)
}

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, Serialize)]
pub struct ClassScore {
    /// Intent id or `other`.
    pub id: &'static str,
    /// Lines that carry it.
    pub support: usize,
    /// True positives.
    pub tp: usize,
    /// False positives.
    pub fp: usize,
    /// False negatives.
    pub fn_: usize,
    /// tp / (tp + fp); 1 when nothing was predicted.
    pub precision: f64,
    /// tp / (tp + fn); 1 when there is no support.
    pub recall: f64,
    /// Harmonic mean.
    pub f1: f64,
}

/// How often gold `gold` was predicted as `predicted`.
#[derive(Debug, Clone, Serialize)]
pub struct Confusion {
    /// The label the line carries (or `other`).
    pub gold: &'static str,
    /// The label predicted instead (or `other`).
    pub predicted: &'static str,
    /// Lines.
    pub count: usize,
}

/// Precision and recall of all intent predictions at or above a score.
#[derive(Debug, Clone, Serialize)]
pub struct ThresholdPoint {
    /// The score threshold.
    pub threshold: f32,
    /// Predicted (line, intent) pairs at or above it.
    pub predicted: usize,
    /// Of those, correct.
    pub correct: usize,
    /// correct / predicted.
    pub precision: f64,
    /// correct / gold pairs.
    pub recall: f64,
}

/// A line whose predicted set differs from its gold set.
#[derive(Debug, Clone, Serialize)]
pub struct Miss {
    /// Line number in the file.
    pub line: usize,
    /// Gold labels.
    pub gold: Vec<&'static str>,
    /// Predicted labels with scores.
    pub predicted: Vec<(&'static str, f32)>,
    /// The message.
    pub text: String,
}

/// The whole evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Lines evaluated.
    pub lines: usize,
    /// The reporting threshold used.
    pub threshold: f32,
    /// The 18 intents, then `other`.
    pub classes: Vec<ClassScore>,
    /// Mean F1 over the classes with support or predictions.
    pub macro_f1: f64,
    /// Share of lines whose predicted set equals the gold set.
    pub exact_match: f64,
    /// Most frequent confusions first.
    pub confusions: Vec<Confusion>,
    /// Precision and recall by score threshold.
    pub thresholds: Vec<ThresholdPoint>,
    /// Every misclassified line.
    pub misclassified: Vec<Miss>,
}

/// The lowest score evaluation asks the classifier for, to chart precision by threshold.
const FLOOR: f32 = 0.2;

/// Runs the classifier over `samples` and scores it.
#[must_use]
pub fn evaluate(u: &Understanding, samples: &[Sample]) -> Report {
    let threshold = u.catalog.threshold;
    let n = INTENT_IDS.len();
    let (mut tp, mut fp, mut fneg, mut support) = (vec![0; n + 1], vec![0; n + 1], vec![0; n + 1], vec![0; n + 1]);
    let mut confusions: BTreeMap<(&'static str, &'static str), usize> = BTreeMap::new();
    let mut misclassified = Vec::new();
    let mut exact = 0;
    let steps: Vec<f32> = (0..=16).map(|k| 0.2 + 0.05 * k as f32).collect();
    let mut pts: Vec<(usize, usize)> = vec![(0, 0); steps.len()];
    let mut gold_pairs = 0;

    for s in samples {
        let norm = u.catalog.normalizer.normalize(&s.text);
        let all = u.catalog.classify_at(&norm, &s.text, FLOOR);
        for (k, t) in steps.iter().enumerate() {
            for hit in all.iter().filter(|h| h.score >= *t - 1e-6) {
                pts[k].0 += 1;
                if s.gold.contains(&hit.id) {
                    pts[k].1 += 1;
                }
            }
        }
        gold_pairs += s.gold.len();
        let hits = u.catalog.classify_at(&norm, &s.text, threshold);
        let mut pred: Vec<&'static str> = hits.iter().map(|h| h.id).collect();
        pred.sort_unstable();
        let class = |id: &str| intent_index(id).map_or(n, |i| i as usize);
        let gold_set: Vec<usize> = if s.gold.is_empty() { vec![n] } else { s.gold.iter().map(|g| class(g)).collect() };
        let pred_set: Vec<usize> = if pred.is_empty() { vec![n] } else { pred.iter().map(|p| class(p)).collect() };
        for &g in &gold_set {
            support[g] += 1;
            if pred_set.contains(&g) {
                tp[g] += 1;
            } else {
                fneg[g] += 1;
            }
        }
        for &p in &pred_set {
            if !gold_set.contains(&p) {
                fp[p] += 1;
            }
        }
        if gold_set == pred_set {
            exact += 1;
            continue;
        }
        let name = |c: usize| if c == n { OTHER } else { INTENT_IDS[c] };
        let missed: Vec<usize> = gold_set.iter().copied().filter(|g| !pred_set.contains(g)).collect();
        let extra: Vec<usize> = pred_set.iter().copied().filter(|p| !gold_set.contains(p)).collect();
        match (missed.is_empty(), extra.is_empty()) {
            (false, false) => {
                for &g in &missed {
                    for &p in &extra {
                        *confusions.entry((name(g), name(p))).or_default() += 1;
                    }
                }
            }
            (false, true) => missed.iter().for_each(|&g| *confusions.entry((name(g), OTHER)).or_default() += 1),
            (true, false) => extra.iter().for_each(|&p| *confusions.entry((OTHER, name(p))).or_default() += 1),
            (true, true) => {}
        }
        misclassified.push(Miss {
            line: s.line,
            gold: s.gold.clone(),
            predicted: hits.iter().map(|h| (h.id, h.score)).collect(),
            text: s.text.clone(),
        });
    }

    let classes: Vec<ClassScore> = (0..=n)
        .map(|c| {
            let precision = ratio(tp[c], tp[c] + fp[c]);
            let recall = ratio(tp[c], tp[c] + fneg[c]);
            let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
            ClassScore {
                id: if c == n { OTHER } else { INTENT_IDS[c] },
                support: support[c],
                tp: tp[c],
                fp: fp[c],
                fn_: fneg[c],
                precision,
                recall,
                f1,
            }
        })
        .collect();
    let counted: Vec<&ClassScore> = classes.iter().filter(|c| c.support + c.fp > 0).collect();
    let macro_f1 =
        if counted.is_empty() { 0.0 } else { counted.iter().map(|c| c.f1).sum::<f64>() / counted.len() as f64 };
    let mut confusions: Vec<Confusion> =
        confusions.into_iter().map(|((gold, predicted), count)| Confusion { gold, predicted, count }).collect();
    confusions.sort_by(|a, b| b.count.cmp(&a.count).then(a.gold.cmp(b.gold)).then(a.predicted.cmp(b.predicted)));
    let thresholds = steps
        .iter()
        .zip(pts)
        .map(|(t, (p, c))| ThresholdPoint {
            threshold: (t * 100.0).round() / 100.0,
            predicted: p,
            correct: c,
            precision: ratio(c, p),
            recall: ratio(c, gold_pairs),
        })
        .collect();
    Report {
        lines: samples.len(),
        threshold,
        classes,
        macro_f1,
        exact_match: ratio(exact, samples.len()),
        confusions,
        thresholds,
        misclassified,
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

impl Report {
    /// The human-readable report.
    #[must_use]
    pub fn to_text(&self, max_confusions: usize) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(s, "{:<18} {:>7} {:>9} {:>7} {:>7}", "class", "support", "precision", "recall", "f1");
        for c in &self.classes {
            let _ = writeln!(s, "{:<18} {:>7} {:>9.3} {:>7.3} {:>7.3}", c.id, c.support, c.precision, c.recall, c.f1);
        }
        let _ = writeln!(
            s,
            "\nlines {}  threshold {}  macro-F1 {:.4}  exact match {:.3}",
            self.lines, self.threshold, self.macro_f1, self.exact_match
        );
        let _ = writeln!(s, "\nprecision by score threshold (all intent predictions at or above it):");
        let _ = writeln!(s, "{:>9} {:>9} {:>9} {:>9}", "threshold", "predicted", "precision", "recall");
        for t in &self.thresholds {
            let _ = writeln!(s, "{:>9.2} {:>9} {:>9.3} {:>9.3}", t.threshold, t.predicted, t.precision, t.recall);
        }
        let _ = writeln!(s, "\ntop confusions (gold -> predicted):");
        for c in self.confusions.iter().take(max_confusions) {
            let _ = writeln!(s, "{:>4}  {} -> {}", c.count, c.gold, c.predicted);
        }
        let _ = writeln!(s, "\nmisclassified ({}):", self.misclassified.len());
        for m in &self.misclassified {
            let gold = if m.gold.is_empty() { OTHER.to_owned() } else { m.gold.join("|") };
            let pred = if m.predicted.is_empty() {
                OTHER.to_owned()
            } else {
                m.predicted.iter().map(|(i, sc)| format!("{i}:{sc:.2}")).collect::<Vec<_>>().join("|")
            };
            let _ = writeln!(s, "  line {:>4}  gold {gold}  got {pred}  {}", m.line, m.text);
        }
        s
    }
}

/// How the guard did on one label of a replies corpus.
#[derive(Debug, Clone, Serialize)]
pub struct KindReport {
    /// The label (`argue:rebuttal`, `divert`, `argue` when the file gives no kind).
    pub label: String,
    /// Replies with this label.
    pub replies: usize,
    /// Of them, blocked.
    pub blocked: usize,
    /// blocked / replies.
    pub recall: f64,
    /// Of the blocked, how many were named with this very kind.
    pub named_right: usize,
}

/// One reply the guard got wrong.
#[derive(Debug, Clone, Serialize)]
pub struct ReplyMiss {
    /// 1-based line number.
    pub line: usize,
    /// The gold label.
    pub label: String,
    /// The reply.
    pub text: String,
    /// The rules that fired (for a false block).
    pub rules: Vec<String>,
}

/// How the guard did on a replies corpus.
#[derive(Debug, Clone, Serialize)]
pub struct GuardReport {
    /// Replies evaluated.
    pub lines: usize,
    /// Arguing replies (every kind, diversion included).
    pub argue: usize,
    /// Acceptable replies.
    pub ok: usize,
    /// Arguing replies blocked.
    pub blocked_argue: usize,
    /// Acceptable replies blocked (false blocks).
    pub blocked_ok: usize,
    /// blocked_argue / argue.
    pub recall: f64,
    /// blocked_argue / all blocked.
    pub precision: f64,
    /// blocked_ok / ok.
    pub false_positive_rate: f64,
    /// Recall per label, in the order of the kinds.
    pub per_kind: Vec<KindReport>,
    /// Arguing replies that passed.
    pub missed: Vec<ReplyMiss>,
    /// Acceptable replies that were blocked, with the rules that fired.
    pub false_positives: Vec<ReplyMiss>,
}

/// Parses a replies file (`ok`, `argue:<kind>`, `divert`, or a bare `argue` in older files;
/// optionally a SOURCE column before the text).
///
/// # Errors
/// A line without a tab, an empty text, an unknown label or kind.
pub fn parse_replies(src: &str) -> Result<Vec<crate::domain::guard::Labelled>, CorpusError> {
    crate::domain::guard::parse_labelled(src).map_err(|e| CorpusError { line: e.line, problem: e.problem })
}

/// Runs the guard over labelled replies, as for the ordering account on a platform channel
/// (leak rules off, diversion on).
#[must_use]
pub fn evaluate_guard(
    guard: &crate::domain::guard::Guard,
    normalizer: &crate::domain::Normalizer,
    samples: &[crate::domain::guard::Labelled],
) -> GuardReport {
    use crate::domain::guard::{DIVERT, KINDS};
    let ctx =
        crate::domain::guard::GuardContext { recipient_is_orderer: true, return_qualifies: true, ..Default::default() };
    let mut names: Vec<String> = KINDS.iter().map(|k| format!("argue:{k}")).collect();
    names.push(DIVERT.to_owned());
    names.push("argue".to_owned());
    let mut per: Vec<KindReport> = names
        .iter()
        .map(|l| KindReport { label: l.clone(), replies: 0, blocked: 0, recall: 0.0, named_right: 0 })
        .collect();
    let (mut blocked_argue, mut blocked_ok) = (0, 0);
    let (mut missed, mut false_positives) = (Vec::new(), Vec::new());
    for s in samples {
        let v = guard.check(&s.text, &ctx, normalizer);
        let rules: Vec<String> = v.findings.iter().map(|f| f.rule.clone()).collect();
        let miss = || ReplyMiss { line: s.line, label: s.label_name(), text: s.text.clone(), rules: rules.clone() };
        match s.label {
            None => {
                if !v.passed() {
                    blocked_ok += 1;
                    false_positives.push(miss());
                }
            }
            Some(i) => {
                let k = &mut per[i];
                k.replies += 1;
                if v.passed() {
                    missed.push(miss());
                } else {
                    blocked_argue += 1;
                    k.blocked += 1;
                    let want =
                        if i < KINDS.len() { format!("argue.{}", KINDS[i]) } else { "divert.off_platform".into() };
                    if rules.contains(&want) {
                        k.named_right += 1;
                    }
                }
            }
        }
    }
    for k in &mut per {
        k.recall = ratio(k.blocked, k.replies);
    }
    per.retain(|k| k.replies > 0);
    let argue = samples.iter().filter(|s| s.label.is_some()).count();
    let ok = samples.len() - argue;
    GuardReport {
        lines: samples.len(),
        argue,
        ok,
        blocked_argue,
        blocked_ok,
        recall: ratio(blocked_argue, argue),
        precision: ratio(blocked_argue, blocked_argue + blocked_ok),
        false_positive_rate: if ok == 0 { 0.0 } else { blocked_ok as f64 / ok as f64 },
        per_kind: per,
        missed,
        false_positives,
    }
}

impl GuardReport {
    /// The human-readable report.
    #[must_use]
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "replies {}  argue {}  ok {}\nrecall {:.3} ({} of {} arguing replies blocked)\nfalse blocks {} of {} ok replies ({:.3})  precision {:.3}",
            self.lines,
            self.argue,
            self.ok,
            self.recall,
            self.blocked_argue,
            self.argue,
            self.blocked_ok,
            self.ok,
            self.false_positive_rate,
            self.precision
        );
        let _ = writeln!(s, "\nrecall per kind:");
        for k in &self.per_kind {
            let _ = writeln!(
                s,
                "  {:<24} {:.3}  ({} of {} blocked, {} named with this kind)",
                k.label, k.recall, k.blocked, k.replies, k.named_right
            );
        }
        let _ = writeln!(s, "\nmissed (arguing, passed) ({}):", self.missed.len());
        for m in &self.missed {
            let _ = writeln!(s, "  line {:>4}  {:<22} {}", m.line, m.label, m.text);
        }
        let _ = writeln!(s, "\nfalse blocks (ok, blocked) ({}):", self.false_positives.len());
        for m in &self.false_positives {
            let _ = writeln!(s, "  line {:>4}  [{}]  {}", m.line, m.rules.join(","), m.text);
        }
        s
    }
}
