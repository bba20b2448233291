//! A small linear text model: character 1–3-grams into one-vs-rest logistic regression.
//!
//! Shared by the intent classifier (18 intents) and the guard (its own label set, kinds of
//! arguing): a caller gives texts with label indices and gets back a [`Model`] that scores any
//! text per label and says which n-grams drove a score, with their character spans.
//!
//! # Why this and not a crate
//! `linfa-logistic` (the maintained Rust choice) fits dense `ndarray` matrices with L-BFGS:
//! text features are sparse (a 20-character message touches ~60 of ~30,000 n-grams), so a
//! dense design matrix would cost 30,000 columns per message to train and to score, and it
//! has no notion of the spans we need for evidence. What we need fits in a few hundred lines:
//! sparse features, AdaGrad SGD, a fixed iteration order. Written here, it is also easy to
//! show that it is deterministic.
//!
//! # Features
//! Over the text as given (callers pass normalized text), with ASCII digits folded to `0` so
//! that quantities and order numbers generalise:
//! - every character 1-, 2- and 3-gram, plus the 2- and 3-grams that touch the start or the end
//!   of the text (a message that *is* "hello" differs from one that starts with it);
//! - one length-bucket feature (1–2, 3–4, 5–8, 9–16, 17–32, 33+ characters).
//!
//! Each n-gram is packed exactly into a `u64` (three 21-bit code points), so there are no
//! hash collisions; the model keeps only n-grams seen in training with a non-negligible
//! weight, in an open-addressing table. An n-gram never seen in training has weight zero in
//! any linear model started at zero, so dropping it loses nothing. Features are binary: an
//! n-gram typed twice counts once.
//!
//! # Training
//! One binary logistic regression per label (one-vs-rest, so a text may carry several labels),
//! all trained in the same pass: AdaGrad SGD with L2 regularisation, a fixed number of epochs,
//! and an example order shuffled by a fixed-seed generator. No clock, no threads, no hash-map
//! iteration order: the same examples and options give the same model, bit for bit
//! ([`Model::fingerprint`]).
//!
//! # Cost
//! Scoring is one pass over the characters: per n-gram one table probe and, when found, one
//! add of a row of `labels` weights. Linear in the text length, whatever it contains.

use std::collections::HashMap;

/// Training settings. The defaults suit a few thousand short messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Passes over the examples.
    pub epochs: u32,
    /// AdaGrad base learning rate.
    pub learning_rate: f32,
    /// L2 penalty on each weight, applied at each update of that weight.
    pub l2: f32,
    /// Extra weight on positive examples of a label (1 = none); helps rare labels' recall.
    pub positive_weight: f32,
    /// Seed of the example-order shuffle.
    pub seed: u64,
    /// After training, an n-gram whose weights all stay below this (absolute) is dropped.
    pub prune_below: f32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            epochs: 12,
            learning_rate: 0.3,
            l2: 1e-5,
            positive_weight: 2.0,
            seed: 0x5EED_5110_0000_0001,
            prune_below: 1e-3,
        }
    }
}

/// One training example: a text and the indices of the labels it carries (none is allowed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example<'a> {
    /// The text, normalized the way texts will be at scoring time.
    pub text: &'a str,
    /// Indices into the label list given to [`train`].
    pub labels: &'a [usize],
}

/// An n-gram that pushed a label's score up, for evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Gram {
    /// The characters of the scored text at `span`.
    pub text: String,
    /// `[start, end)` in characters of the scored text.
    pub span: [usize; 2],
    /// Its weight for the label (positive).
    pub weight: f32,
}

/// A trained model.
#[derive(Debug, Clone)]
pub struct Model {
    labels: Vec<String>,
    /// Open-addressing table of n-gram keys; `0` is an empty slot.
    keys: Vec<u64>,
    /// For each slot, the row of `weights`.
    rows: Vec<u32>,
    /// `64 - log2(keys.len())`, for the multiplicative hash.
    shift: u32,
    /// Row-major, `labels.len()` weights per kept n-gram.
    weights: Vec<f32>,
    /// One intercept per label.
    bias: Vec<f32>,
}

/// Trains a model.
///
/// `labels` names the labels (the model reports scores in this order); each example's
/// `labels` are indices into it.
///
/// # Panics
/// An example names a label index outside `labels`.
#[must_use]
pub fn train(examples: &[Example<'_>], labels: &[&str], options: &Options) -> Model {
    let nl = labels.len();
    // Vocabulary in first-seen order, and each example's distinct features.
    let mut vocab: HashMap<u64, u32> = HashMap::new();
    let mut feats: Vec<Vec<u32>> = Vec::with_capacity(examples.len());
    for ex in examples {
        let mut f = Vec::new();
        for_each_gram(ex.text, |key, _, _| {
            let next = vocab.len() as u32;
            f.push(*vocab.entry(key).or_insert(next));
        });
        f.sort_unstable();
        f.dedup();
        feats.push(f);
        for &l in ex.labels {
            assert!(l < nl, "example label index {l} out of range ({nl} labels)");
        }
    }
    let nv = vocab.len();
    let mut w = vec![0f32; nv * nl];
    let mut g2 = vec![0f32; nv * nl];
    // Intercepts start at the log-odds of each label's prior.
    let mut bias: Vec<f32> = (0..nl)
        .map(|l| {
            let pos = examples.iter().filter(|e| e.labels.contains(&l)).count() as f32;
            let p = (pos + 0.5) / (examples.len() as f32 + 1.0);
            (p / (1.0 - p)).ln()
        })
        .collect();
    let mut gb = vec![0f32; nl];
    let mut order: Vec<usize> = (0..examples.len()).collect();
    let mut rng = SplitMix(options.seed);
    let mut y = vec![0f32; nl];
    let mut z = vec![0f32; nl];
    let lr = options.learning_rate;
    for _ in 0..options.epochs {
        // Fisher-Yates with the fixed-seed generator.
        for i in (1..order.len()).rev() {
            let j = (rng.next() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        for &e in &order {
            let f = &feats[e];
            y.iter_mut().for_each(|v| *v = 0.0);
            for &l in examples[e].labels {
                y[l] = 1.0;
            }
            z.copy_from_slice(&bias);
            for &r in f {
                let row = &w[r as usize * nl..][..nl];
                for (zl, wl) in z.iter_mut().zip(row) {
                    *zl += wl;
                }
            }
            for l in 0..nl {
                let p = sigmoid(z[l]);
                let mut g = p - y[l];
                if y[l] > 0.0 {
                    g *= options.positive_weight;
                }
                // Saturated labels contribute (almost) nothing: skip them.
                if g.abs() < 1e-4 {
                    z[l] = 0.0;
                    continue;
                }
                z[l] = g;
                gb[l] += g * g;
                bias[l] -= lr * g / (gb[l].sqrt() + 1e-6);
            }
            for &r in f {
                let base = r as usize * nl;
                let (wr, gr) = (&mut w[base..base + nl], &mut g2[base..base + nl]);
                for ((wi, gi), &g) in wr.iter_mut().zip(gr.iter_mut()).zip(&z) {
                    if g == 0.0 {
                        continue;
                    }
                    let grad = g + options.l2 * *wi;
                    *gi += grad * grad;
                    *wi -= lr * grad / (gi.sqrt() + 1e-6);
                }
            }
        }
    }

    // Keep the n-grams that matter, in first-seen order.
    let mut by_row: Vec<(u64, u32)> = vocab.into_iter().collect();
    by_row.sort_unstable_by_key(|&(_, r)| r);
    let kept: Vec<(u64, u32)> = by_row
        .into_iter()
        .filter(|&(_, r)| w[r as usize * nl..][..nl].iter().any(|v| v.abs() >= options.prune_below))
        .collect();
    let slots = (kept.len() * 2).next_power_of_two().max(16);
    let shift = 64 - slots.trailing_zeros();
    let mut keys = vec![0u64; slots];
    let mut rows = vec![0u32; slots];
    let mut weights = Vec::with_capacity(kept.len() * nl);
    for (new_row, &(key, old_row)) in kept.iter().enumerate() {
        weights.extend_from_slice(&w[old_row as usize * nl..][..nl]);
        let mut s = slot_of(key, shift);
        while keys[s] != 0 {
            s = (s + 1) & (slots - 1);
        }
        keys[s] = key;
        rows[s] = new_row as u32;
    }
    Model { labels: labels.iter().map(|s| (*s).to_owned()).collect(), keys, rows, shift, weights, bias }
}

impl Model {
    /// The label names, in score order.
    #[must_use]
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// How many n-grams the model kept.
    #[must_use]
    pub fn features(&self) -> usize {
        self.weights.len() / self.labels.len().max(1)
    }

    /// The probability of each label for `text`, in [`Model::labels`] order.
    #[must_use]
    pub fn scores(&self, text: &str) -> Vec<f32> {
        let mut out = vec![0f32; self.labels.len()];
        self.scores_into(text, &mut out);
        out
    }

    /// Like [`Model::scores`], into a caller's buffer of `labels().len()` slots.
    ///
    /// # Panics
    /// `out` has another length.
    pub fn scores_into(&self, text: &str, out: &mut [f32]) {
        let nl = self.labels.len();
        assert_eq!(out.len(), nl, "one slot per label");
        let mut found: Vec<u32> = Vec::with_capacity(64);
        for_each_gram(text, |key, _, _| {
            if let Some(r) = self.row(key) {
                found.push(r);
            }
        });
        found.sort_unstable();
        found.dedup();
        out.copy_from_slice(&self.bias);
        for &r in &found {
            for (o, w) in out.iter_mut().zip(&self.weights[r as usize * nl..][..nl]) {
                *o += w;
            }
        }
        for o in out.iter_mut() {
            *o = sigmoid(*o);
        }
    }

    /// The `k` n-grams of `text` that raise `label`'s score most, strongest first (ties in
    /// text order); each distinct n-gram once, at its first place. Length features are not
    /// evidence and are left out.
    ///
    /// # Panics
    /// `label` is out of range.
    #[must_use]
    pub fn evidence(&self, text: &str, label: usize, k: usize) -> Vec<Gram> {
        let nl = self.labels.len();
        assert!(label < nl, "label index {label} out of range");
        let mut cand: Vec<(u32, u32, u32, f32)> = Vec::new();
        for_each_gram(text, |key, s, e| {
            if e > s
                && let Some(r) = self.row(key)
            {
                let wt = self.weights[r as usize * nl + label];
                if wt > 0.0 {
                    cand.push((r, s, e, wt));
                }
            }
        });
        // First place of each distinct n-gram.
        cand.sort_by_key(|c| (c.0, c.1));
        cand.dedup_by_key(|c| c.0);
        cand.sort_by(|a, b| b.3.total_cmp(&a.3).then(a.1.cmp(&b.1)));
        cand.truncate(k);
        let chars: Vec<char> = if cand.is_empty() { Vec::new() } else { text.chars().collect() };
        cand.into_iter()
            .map(|(_, s, e, weight)| Gram {
                text: chars[s as usize..e as usize].iter().collect(),
                span: [s as usize, e as usize],
                weight,
            })
            .collect()
    }

    /// A hash of everything the model holds (labels, n-grams, weight bits): equal fingerprints
    /// mean the same model.
    #[must_use]
    pub fn fingerprint(&self) -> u64 {
        let mut h = Fnv::default();
        for l in &self.labels {
            h.write(l.as_bytes());
            h.write(&[0xFF]);
        }
        for (k, r) in self.keys.iter().zip(&self.rows) {
            h.write(&k.to_le_bytes());
            h.write(&r.to_le_bytes());
        }
        for v in self.weights.iter().chain(&self.bias) {
            h.write(&v.to_bits().to_le_bytes());
        }
        h.0
    }

    fn row(&self, key: u64) -> Option<u32> {
        let mask = self.keys.len() - 1;
        let mut s = slot_of(key, self.shift);
        loop {
            match self.keys[s] {
                0 => return None,
                k if k == key => return Some(self.rows[s]),
                _ => s = (s + 1) & mask,
            }
        }
    }
}

/// How many features (with repeats) `text` has: `3n + 2` for `n > 0` characters. Scoring
/// visits each once, so this is the work a text costs.
#[must_use]
pub fn feature_count(text: &str) -> usize {
    let mut n = 0;
    for_each_gram(text, |_, _, _| n += 1);
    n
}

/// Code of the virtual character before the text.
const BOS: u64 = 0x11_0001;
/// Code of the virtual character after the text.
const EOS: u64 = 0x11_0002;
/// The tag of non-n-gram features (a code no character has).
const META: u64 = 0x1F_FFFF;

/// Calls `f(key, start, end)` for every feature of `text`, `[start, end)` being the span in
/// characters of the n-gram (empty for the length feature). Keys are never zero.
fn for_each_gram(text: &str, mut f: impl FnMut(u64, u32, u32)) {
    // Codes of the last two characters (0 = none) and the position of the current one.
    let (mut a, mut b) = (0u64, BOS);
    let mut n = 0u32;
    for c in text.chars() {
        let c = if c.is_ascii_digit() { '0' } else { c };
        let code = c as u64 + 1;
        f(code, n, n + 1);
        let start1 = if b == BOS { n } else { n - 1 };
        f((b << 21) | code, start1, n + 1);
        if a != 0 {
            let start2 = if a == BOS { n - 1 } else { n - 2 };
            f((a << 42) | (b << 21) | code, start2, n + 1);
        }
        a = b;
        b = code;
        n += 1;
    }
    if n > 0 {
        f((b << 21) | EOS, n - 1, n);
        if a != 0 {
            let start = if a == BOS { n - 1 } else { n - 2 };
            f((a << 42) | (b << 21) | EOS, start, n);
        }
        let bucket = match n {
            1..=2 => 0,
            3..=4 => 1,
            5..=8 => 2,
            9..=16 => 3,
            17..=32 => 4,
            _ => 5,
        };
        f((META << 42) | (bucket + 1), 0, 0);
    }
}

fn slot_of(key: u64, shift: u32) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> shift) as usize
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// SplitMix64: a tiny, well-mixed generator, here only to shuffle deterministically.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// FNV-1a, for the fingerprint.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xCBF2_9CE4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01B3);
        }
    }
}
