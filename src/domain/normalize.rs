//! The normalizer: turns a buyer's raw message into the text the classifier matches on.
//!
//! Pure: no I/O after construction, no clock. Steps, in order:
//! 1. full-width → half-width (U+FF01–FF5E, U+3000) and ASCII lower case;
//! 2. traditional → simplified (OpenCC `T2s`, then the project override table from
//!    `intents/normalize/t2s_overrides.toml`), repeated to a fixed point;
//! 3. whitespace dropped (one space kept between two ASCII letters or digits);
//! 4. emoji and decorative symbols dropped from the text and counted in [`Tone`];
//! 5. clause punctuation mapped to one of `, . ! ? ~` and runs collapsed to one;
//! 6. elongations (one character typed four times) collapsed to two characters.
//!
//! Every output character remembers the range of original characters it came from, so
//! evidence spans point into the buyer's own text. Normalizing twice gives the same text.

use std::path::Path;

use ferrous_opencc::{OpenCC, config::BuiltinConfig};
use serde::{Deserialize, Serialize};

/// The result of normalizing one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// The matching text.
    pub text: String,
    /// For each character of `text`, the range `[start, end)` of original characters
    /// (Unicode scalar values) it stands for.
    pub origin: Vec<(u32, u32)>,
    /// What was kept out of the text but says something about the buyer's mood.
    pub tone: Tone,
}

/// Emphasis and emoji taken out of the matching text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tone {
    /// Exclamation marks in the original, full-width ones included.
    pub exclamations: u32,
    /// Question marks in the original.
    pub questions: u32,
    /// Emoji and pictographs, in order of appearance.
    pub emoji: Vec<String>,
    /// Whether a character was repeated three times or more.
    pub elongated: bool,
    /// Whether the buyer wrote traditional characters (replies follow the buyer's script).
    pub traditional: bool,
}

/// Converts and cleans buyer text. Build once, share freely (`Sync`).
pub struct Normalizer {
    t2s: OpenCC,
    /// Characters whose presence means the text may need traditional→simplified conversion.
    trad_chars: CharSet,
    overrides: Vec<(Vec<char>, Vec<char>)>,
    /// The override keys, to find them in normalized text with one scan.
    override_keys: aho_corasick::AhoCorasick,
}

/// A failure to build the normalizer.
#[derive(Debug, thiserror::Error)]
pub enum NormalizeError {
    /// The embedded OpenCC dictionaries failed to load.
    #[error("traditional-to-simplified dictionaries failed to load: {0}")]
    OpenCc(String),
    /// The override table could not be read or is invalid.
    #[error("{file}: key `{key}`: {problem}")]
    Override { file: String, key: String, problem: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideFile {
    overrides: std::collections::BTreeMap<String, String>,
}

/// Unicode ranges converted in bulk at start-up to learn which characters `T2s` changes.
const CJK_RANGES: [(u32, u32); 3] = [(0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF)];

/// OpenCC maps a handful of characters in two steps (A→B→C); a few rounds reach the fixed point.
const MAX_T2S_ROUNDS: usize = 3;

impl Normalizer {
    /// Builds a normalizer with OpenCC `T2s` and the override table at `overrides_path`
    /// (a missing file means no overrides).
    ///
    /// # Errors
    /// The override file is unreadable, malformed, or an entry would break idempotence
    /// (different lengths, or a replacement that converts further).
    pub fn load(overrides_path: &Path) -> Result<Self, NormalizeError> {
        let overrides = if overrides_path.exists() {
            let file = overrides_path.display().to_string();
            let raw = std::fs::read_to_string(overrides_path).map_err(|e| NormalizeError::Override {
                file: file.clone(),
                key: "-".into(),
                problem: e.to_string(),
            })?;
            let parsed: OverrideFile = toml::from_str(&raw).map_err(|e| NormalizeError::Override {
                file: file.clone(),
                key: "overrides".into(),
                problem: e.message().to_owned(),
            })?;
            parsed.overrides.into_iter().collect::<Vec<_>>()
        } else {
            Vec::new()
        };
        Self::with_overrides(overrides_path, overrides)
    }

    fn with_overrides(path: &Path, pairs: Vec<(String, String)>) -> Result<Self, NormalizeError> {
        let t2s = OpenCC::from_config(BuiltinConfig::T2s).map_err(|e| NormalizeError::OpenCc(e.to_string()))?;
        // Characters that T2s changes on their own. (Converting all of them as one string
        // would let phrase rules between unrelated neighbours mark innocent characters.)
        let mut trad_chars = CharSet::default();
        let mut buf = [0u8; 4];
        for &(lo, hi) in &CJK_RANGES {
            for c in (lo..=hi).filter_map(char::from_u32) {
                let one = t2s.convert(c.encode_utf8(&mut buf));
                if one.chars().ne(std::iter::once(c)) {
                    trad_chars.insert(c);
                }
            }
        }
        let file = path.display().to_string();
        let mut overrides = Vec::with_capacity(pairs.len());
        for (from, to) in pairs {
            let bad = |problem: &str| NormalizeError::Override {
                file: file.clone(),
                key: format!("overrides.{from}"),
                problem: problem.to_owned(),
            };
            let f: Vec<char> = from.chars().collect();
            let t: Vec<char> = to.chars().collect();
            if f.is_empty() {
                return Err(bad("empty key"));
            }
            if f.len() != t.len() {
                return Err(bad("replacement must have as many characters as the key"));
            }
            overrides.push((f, t));
        }
        let override_keys = aho_corasick::AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostLongest)
            .build(overrides.iter().map(|(f, _)| f.iter().collect::<String>()))
            .map_err(|e| NormalizeError::Override {
                file: file.clone(),
                key: "overrides".into(),
                problem: e.to_string(),
            })?;
        let normalizer = Self { t2s, trad_chars, overrides, override_keys };
        for (f, t) in &normalizer.overrides {
            let mut again = t.clone();
            normalizer.simplify(&mut again);
            let value: String = t.iter().collect();
            if &again != t || normalizer.override_keys.is_match(&value) {
                let key = f.iter().collect::<String>();
                return Err(NormalizeError::Override {
                    file,
                    key: format!("overrides.{key}"),
                    problem: "replacement is not stable: it would change when normalized again (traditional characters, or another override's key)".into(),
                });
            }
        }
        Ok(normalizer)
    }

    /// Normalizes one message.
    #[must_use]
    pub fn normalize(&self, raw: &str) -> Normalized {
        let mut chars: Vec<char> = raw.chars().map(fold_char).collect();
        let traditional = self.simplify(&mut chars);

        let mut text = String::with_capacity(raw.len());
        let mut origin: Vec<(u32, u32)> = Vec::with_capacity(chars.len());
        let mut tone = Tone { traditional, ..Tone::default() };
        let mut pending_space = false;
        // Last pushed character, and how long the current run of it is.
        let mut last: Option<char> = None;
        let mut run = 0usize;
        let mut emoji = String::new();

        for (i, &c) in chars.iter().enumerate() {
            let i = i as u32;
            match c {
                '!' => tone.exclamations += 1,
                '?' => tone.questions += 1,
                _ => {}
            }
            if is_emoji(c) {
                emoji.push(c);
                continue;
            }
            if !emoji.is_empty() {
                tone.emoji.push(std::mem::take(&mut emoji));
            }
            if c.is_whitespace() {
                if last.is_some_and(|l| l.is_ascii_alphanumeric()) {
                    pending_space = true;
                }
                continue;
            }
            let c = match classify_punct(c) {
                Punct::Clause(p) => p,
                Punct::Drop => continue,
                Punct::Keep => c,
            };
            if pending_space {
                pending_space = false;
                if c.is_ascii_alphanumeric() {
                    text.push(' ');
                    origin.push((i, i));
                    last = Some(' ');
                    run = 1;
                }
            }
            if last == Some(c) {
                run += 1;
                let collapse = is_clause_punct(c) || (run > 2 && !c.is_ascii());
                if collapse {
                    if run > 2 {
                        tone.elongated = true;
                    }
                    if let Some(o) = origin.last_mut() {
                        o.1 = i + 1;
                    }
                    continue;
                }
            } else {
                last = Some(c);
                run = 1;
            }
            text.push(c);
            origin.push((i, i + 1));
        }
        if !emoji.is_empty() {
            tone.emoji.push(emoji);
        }
        self.apply_overrides(&mut text);
        Normalized { text, origin, tone }
    }

    /// Traditional → simplified in place, one character for one character. Returns whether any
    /// character changed (the buyer wrote traditional characters).
    fn simplify(&self, chars: &mut [char]) -> bool {
        if !chars.iter().any(|c| self.trad_chars.contains(c)) {
            return false;
        }
        let before: Vec<char> = chars.to_vec();
        for _ in 0..MAX_T2S_ROUNDS {
            if !chars.iter().any(|c| self.trad_chars.contains(c)) {
                break;
            }
            let s: String = chars.iter().collect();
            let converted = self.t2s.convert(&s);
            if converted.chars().count() == chars.len() {
                for (slot, c) in chars.iter_mut().zip(converted.chars()) {
                    *slot = c;
                }
            } else {
                // A phrase rule changed the length: fall back to character-wise conversion so
                // that offsets stay aligned.
                let mut buf = [0u8; 4];
                for slot in chars.iter_mut() {
                    let one = self.t2s.convert(slot.encode_utf8(&mut buf));
                    if let (Some(c), 1) = (one.chars().next(), one.chars().count()) {
                        *slot = c;
                    }
                }
            }
        }
        before != chars
    }

    /// Applies the project's override table to normalized text (same length in characters,
    /// so the offset map stays valid).
    fn apply_overrides(&self, text: &mut String) {
        if self.overrides.is_empty() || !self.override_keys.is_match(text.as_str()) {
            return;
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for m in self.override_keys.find_iter(text.as_str()) {
            out.push_str(&text[last..m.start()]);
            out.extend(self.overrides[m.pattern().as_usize()].1.iter());
            last = m.end();
        }
        out.push_str(&text[last..]);
        *text = out;
    }
}

impl Normalized {
    /// Maps a byte range of [`Normalized::text`] to the range of original characters it covers.
    #[must_use]
    pub fn original_span(&self, start: usize, end: usize) -> (usize, usize) {
        let first = self.text[..start].chars().count();
        let count = self.text[start..end].chars().count();
        if count == 0 || first >= self.origin.len() {
            return (0, 0);
        }
        let last = (first + count - 1).min(self.origin.len() - 1);
        (self.origin[first].0 as usize, self.origin[last].1 as usize)
    }
}

/// A set of characters: a bitmap over the Basic Multilingual Plane (where all of Chinese
/// script conversion happens), a list beyond it. Membership is one bit test on the hot path.
struct CharSet {
    bmp: Vec<u64>,
    astral: Vec<char>,
}

impl Default for CharSet {
    fn default() -> Self {
        Self { bmp: vec![0; 1024], astral: Vec::new() }
    }
}

impl CharSet {
    fn insert(&mut self, c: char) {
        let u = c as u32;
        if u < 0x1_0000 {
            self.bmp[(u >> 6) as usize] |= 1 << (u & 63);
        } else if !self.astral.contains(&c) {
            self.astral.push(c);
        }
    }

    fn contains(&self, c: &char) -> bool {
        let u = *c as u32;
        if u < 0x1_0000 { self.bmp[(u >> 6) as usize] & (1 << (u & 63)) != 0 } else { self.astral.contains(c) }
    }
}

/// Full-width → half-width, ideographic space → space, ASCII lower case.
fn fold_char(c: char) -> char {
    let c = match c as u32 {
        0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        0x3000 => ' ',
        _ => c,
    };
    c.to_ascii_lowercase()
}

enum Punct {
    Clause(char),
    Drop,
    Keep,
}

fn is_clause_punct(c: char) -> bool {
    matches!(c, ',' | '.' | '!' | '?' | '~')
}

fn classify_punct(c: char) -> Punct {
    match c {
        ',' | ';' | ':' | '\u{3001}' => Punct::Clause(','),
        '.' | '\u{3002}' | '\u{2026}' | '\u{00B7}' | '\u{FF61}' => Punct::Clause('.'),
        '!' => Punct::Clause('!'),
        '?' => Punct::Clause('?'),
        '~' | '\u{301C}' | '\u{223C}' => Punct::Clause('~'),
        '"' | '\'' | '`' | '(' | ')' | '[' | ']' | '{' | '}' | '<' | '>' | '^' | '|' | '\\' => Punct::Drop,
        '\u{2018}'..='\u{201F}' | '\u{3008}'..='\u{3011}' | '\u{3014}'..='\u{301B}' => Punct::Drop,
        '\u{2014}' | '\u{2013}' | '\u{2015}' => Punct::Clause(','),
        _ => Punct::Keep,
    }
}

/// Emoji, pictographs, dingbats and their modifiers.
fn is_emoji(c: char) -> bool {
    matches!(c as u32,
        0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0x2B00..=0x2BFF | 0x2190..=0x21FF | 0x2300..=0x23FF
        | 0x25A0..=0x25FF | 0xFE00..=0xFE0F | 0x200D | 0x20E3 | 0xE0020..=0xE007F | 0x3030 | 0x303D
        | 0x3297 | 0x3299 | 0x00A9 | 0x00AE | 0x2122)
}
