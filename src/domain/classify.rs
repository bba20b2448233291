//! The classifier: normalized text in, scored intents with their evidence out.
//!
//! Pure and allocation-light: one pass of the phrase automaton, then only the regexes whose
//! prefix literal the automaton saw, anchored there,
//! then per-intent scoring. Owns the meaning of negations, exclusions, boosts and
//! `yields_to`; knows nothing of files (see `catalog`) or of entities (see `entity`).

use regex_automata::{Anchored, Input};
use serde::Serialize;

use super::{
    catalog::{Catalog, INTENT_IDS, IntentIdx, Role, YieldTo},
    normalize::Normalized,
};

/// One intent found in a message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntentHit {
    /// The contract id.
    pub id: &'static str,
    /// Confidence in [0, 1].
    pub score: f32,
    /// The matches that produced the score.
    pub evidence: Vec<Evidence>,
}

/// A phrase or regex match backing an intent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    /// The catalog phrase (normalized) or the regex source that matched.
    pub phrase: String,
    /// `[start, end)` in characters (Unicode scalar values) of the original message.
    pub span: [usize; 2],
    /// The buyer's own words at `span`.
    pub text: String,
}

/// A raw match in normalized-text byte offsets.
#[derive(Debug, Clone, Copy)]
struct Hit {
    intent: IntentIdx,
    cue: u16,
    start: usize,
    end: usize,
    /// Pattern index (phrase) or regex index offset by the number of patterns.
    source: usize,
}

impl Catalog {
    /// Classifies a normalized message. `original` is the raw text, for evidence.
    #[must_use]
    pub fn classify_normalized(&self, norm: &Normalized, original: &str) -> Vec<IntentHit> {
        self.classify_at(norm, original, self.threshold)
    }

    /// Like [`Catalog::classify_normalized`] with another reporting threshold (evaluation
    /// uses a low one to see how precision varies with the score).
    #[must_use]
    pub fn classify_at(&self, norm: &Normalized, original: &str, threshold: f32) -> Vec<IntentHit> {
        let text = norm.text.as_str();
        let n = INTENT_IDS.len();
        let mut hits: Vec<Hit> = Vec::new();
        let mut negations: Vec<(IntentIdx, usize, usize)> = Vec::new();
        let mut excluded = [false; INTENT_IDS.len()];

        // (regex, start) pairs where a regex's prefix literal was seen.
        let mut cands: Vec<(u32, usize)> = Vec::new();
        for m in self.automaton.find_overlapping_iter(text) {
            let p = m.pattern().as_usize();
            for &ri in &self.triggers[p] {
                cands.push((ri, m.start()));
            }
            for claim in &self.claims[p] {
                match claim.role {
                    Role::Cue(cue) => {
                        hits.push(Hit { intent: claim.intent, cue, start: m.start(), end: m.end(), source: p })
                    }
                    Role::Negation => negations.push((claim.intent, m.start(), m.end())),
                    Role::Exclusion => excluded[claim.intent as usize] = true,
                }
            }
        }
        for (ri, start, end) in self.confirm_regexes(text, &mut cands) {
            let r = &self.regexes[ri as usize];
            hits.push(Hit { intent: r.intent, cue: r.cue, start, end, source: self.patterns.len() + ri as usize });
        }
        if hits.is_empty() {
            return Vec::new();
        }

        // Void negated and excluded evidence, and matches nested in a longer match of the same
        // intent (so a phrase inside a longer phrase counts once).
        let keep: Vec<bool> = hits
            .iter()
            .enumerate()
            .map(|(i, h)| {
                if excluded[h.intent as usize] {
                    return false;
                }
                if negations.iter().any(|&(ni, s, e)| ni == h.intent && s < h.end && h.start < e) {
                    return false;
                }
                !hits.iter().enumerate().any(|(j, o)| {
                    j != i
                        && o.intent == h.intent
                        && o.start <= h.start
                        && h.end <= o.end
                        && (o.end - o.start > h.end - h.start || j < i)
                })
            })
            .collect();

        let mut scores = vec![0f32; n];
        let mut any_main = [false; INTENT_IDS.len()];
        for (h, _) in hits.iter().zip(&keep).filter(|(_, k)| **k) {
            let cue = &self.intents[h.intent as usize].cues[h.cue as usize];
            if !cue.boost {
                any_main[h.intent as usize] = true;
            }
        }
        let mut miss = [1f32; INTENT_IDS.len()];
        // Each distinct phrase or regex counts once per intent, however often it repeats
        // (an acknowledgement typed twice is one, not two).
        let mut counted: Vec<(IntentIdx, usize)> = Vec::with_capacity(hits.len());
        for (h, _) in hits.iter().zip(&keep).filter(|(_, k)| **k) {
            if counted.contains(&(h.intent, h.source)) {
                continue;
            }
            counted.push((h.intent, h.source));
            let i = h.intent as usize;
            let cue = &self.intents[i].cues[h.cue as usize];
            if cue.boost && !any_main[i] {
                continue;
            }
            miss[i] *= 1.0 - cue.weight;
        }
        for i in 0..n {
            if any_main[i] {
                scores[i] = 1.0 - miss[i];
            }
        }

        let found: Vec<usize> = (0..n).filter(|&i| scores[i] >= threshold).collect();
        let mut out: Vec<IntentHit> = found
            .iter()
            .copied()
            .filter(|&i| {
                !self.intents[i].yields_to.iter().any(|y| match y {
                    YieldTo::Any => found.iter().any(|&j| j != i),
                    YieldTo::Intent(j) => found.contains(&(*j as usize)),
                })
            })
            .map(|i| IntentHit {
                id: INTENT_IDS[i],
                score: round3(scores[i]),
                evidence: self.evidence(norm, original, &hits, &keep, i),
            })
            .collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(b.id)));
        out
    }

    /// The first match of every regex, found the fast way: only regexes whose prefix literal
    /// the automaton saw, searched anchored at those places. Every match of a triggered regex
    /// starts at one of its prefix literals, so the leftmost candidate that matches gives what
    /// an unanchored search would.
    fn confirm_regexes(&self, text: &str, cands: &mut Vec<(u32, usize)>) -> Vec<(u32, usize, usize)> {
        cands.sort_unstable();
        cands.dedup();
        let mut out = Vec::new();
        let mut done: Option<u32> = None;
        for &(ri, start) in cands.iter() {
            if done == Some(ri) {
                continue;
            }
            let input = Input::new(text).range(start..).anchored(Anchored::Yes);
            if let Some(m) = self.regexes[ri as usize].regex.search(&input) {
                done = Some(ri);
                out.push((ri, m.start(), m.end()));
            }
        }
        for &ri in &self.untriggered {
            if let Some(m) = self.regexes[ri as usize].regex.find(text) {
                out.push((ri, m.start(), m.end()));
            }
        }
        out.sort_unstable();
        out
    }

    /// The regex matches of a normalized text as the classifier finds them (see
    /// [`Catalog::regex_matches_exhaustive`] for the reference).
    #[must_use]
    pub fn regex_matches(&self, text: &str) -> Vec<(u32, usize, usize)> {
        let mut cands = Vec::new();
        for m in self.automaton.find_overlapping_iter(text) {
            for &ri in &self.triggers[m.pattern().as_usize()] {
                cands.push((ri, m.start()));
            }
        }
        self.confirm_regexes(text, &mut cands)
    }

    /// The first match of every regex by a plain unanchored search: slow, for tests that
    /// check the trigger shortcut loses nothing.
    #[must_use]
    pub fn regex_matches_exhaustive(&self, text: &str) -> Vec<(u32, usize, usize)> {
        (0..self.regexes.len())
            .filter_map(|ri| self.regexes[ri].regex.find(text).map(|m| (ri as u32, m.start(), m.end())))
            .collect()
    }

    fn evidence(&self, norm: &Normalized, original: &str, hits: &[Hit], keep: &[bool], intent: usize) -> Vec<Evidence> {
        let mut ev: Vec<Evidence> = hits
            .iter()
            .zip(keep)
            .filter(|(h, k)| **k && h.intent as usize == intent)
            .map(|(h, _)| {
                let (s, e) = norm.original_span(h.start, h.end);
                let phrase = if h.source < self.patterns.len() {
                    self.patterns[h.source].clone()
                } else {
                    self.regexes[h.source - self.patterns.len()].source.clone()
                };
                Evidence { phrase, span: [s, e], text: original.chars().skip(s).take(e - s).collect() }
            })
            .collect();
        ev.sort_by_key(|e| e.span);
        ev.dedup_by(|a, b| a.span == b.span && a.phrase == b.phrase);
        ev
    }
}

fn round3(x: f32) -> f32 {
    (x * 1000.0).round() / 1000.0
}
