//! The pure core: everything here takes its inputs as arguments and returns data.
//! No I/O except loading the data files at start-up, no clock, no global state.
//!
//! - [`normalize`]: raw text → matching text with an offset map and tone;
//! - [`catalog`]: the `intents/` directory, validated and compiled;
//! - [`classify`]: scored intents with evidence;
//! - [`entity`]: order numbers, phones (masked), amounts, attributes, durations, addresses;
//! - [`linear`]: the learned layer's model (character n-grams, logistic regression), shared
//!   by the classifier and the guard.

pub mod case;
pub mod catalog;
pub mod classify;
pub mod draft;
pub mod entity;
pub mod event;
pub mod facts;
pub mod guard;
pub mod linear;
pub mod mask;
pub mod money;
pub mod normalize;
pub mod policy;
pub mod role;
pub mod schedule;
pub mod sign;
pub mod templates;

use std::path::Path;

use serde::Serialize;

pub use catalog::{Catalog, INTENT_IDS, LoadError};
pub use classify::{Evidence, IntentHit};
pub use entity::{Entities, Extractor};
pub use normalize::{Normalized, Normalizer, Tone};

/// The understanding of one message: the JSON object `shouhou classify` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// The normalized text, with phone numbers masked.
    pub normalized: String,
    /// Intents sorted by score; empty means `other`.
    pub intents: Vec<IntentHit>,
    /// What the message names.
    pub entities: Entities,
    /// Emphasis and emoji kept out of matching.
    pub tone: Tone,
}

/// The catalog and the entity vocabulary, loaded together from one intents directory.
pub struct Understanding {
    /// Intents and the normalizer.
    pub catalog: Catalog,
    /// Entity vocabulary.
    pub extractor: Extractor,
}

impl Understanding {
    /// Loads `dir` (normally `intents/`).
    ///
    /// # Errors
    /// Any invalid file, named with its key and problem.
    pub fn load(dir: &Path) -> Result<Self, LoadError> {
        let catalog = Catalog::load(dir)?;
        let norm = |s: &str| catalog.normalizer.normalize(s).text;
        let extractor = Extractor::load(&dir.join("entities.toml"), &norm)?;
        Ok(Self { catalog, extractor })
    }

    /// Normalizes and classifies a message, without entities.
    #[must_use]
    pub fn classify(&self, text: &str) -> Vec<IntentHit> {
        let norm = self.catalog.normalizer.normalize(text);
        self.catalog.classify_normalized(&norm, text)
    }

    /// The full analysis: intents, entities and tone.
    #[must_use]
    pub fn analyze(&self, text: &str) -> Analysis {
        let norm = self.catalog.normalizer.normalize(text);
        let intents = self.catalog.classify_normalized(&norm, text);
        let entities = self.extractor.extract(&norm, text);
        Analysis { normalized: mask_phones(&norm.text), intents, entities, tone: norm.tone }
    }
}

/// Masks every mobile number (11 digits starting 13–19, optionally split by `-` or spaces) in
/// a text: the middle four digits become `****`.
#[must_use]
pub fn mask_phones(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() && (i == 0 || !chars[i - 1].is_ascii_alphanumeric()) {
            // Collect one run of digits with separators.
            let mut j = i;
            let mut digit_pos = Vec::new();
            while j < chars.len() {
                if chars[j].is_ascii_digit() {
                    digit_pos.push(j);
                    j += 1;
                } else if matches!(chars[j], '-' | ' ') && j + 1 < chars.len() && chars[j + 1].is_ascii_digit() {
                    j += 1;
                } else {
                    break;
                }
            }
            let is_phone =
                digit_pos.len() == 11 && chars[digit_pos[0]] == '1' && ('3'..='9').contains(&chars[digit_pos[1]]);
            for (k, c) in chars[i..j].iter().enumerate() {
                let masked = is_phone && digit_pos[3..7].contains(&(i + k));
                out.push(if masked { '*' } else { *c });
            }
            i = j;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}
