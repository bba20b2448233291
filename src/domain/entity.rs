//! Entities in a buyer message: order and tracking numbers, phone numbers (masked), amounts,
//! colours / sizes / flavours with their role (ordered or received), durations and a new
//! address.
//!
//! Pure. The vocabulary (colour names, cue words, numerals, units) is data, loaded from
//! `intents/entities.toml`; this module only holds the procedure.

use std::{collections::BTreeMap, path::Path};

use aho_corasick::{AhoCorasick, MatchKind};
use serde::{Deserialize, Serialize};

use super::{catalog::LoadError, normalize::Normalized};

/// Everything extracted from one message.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Entities {
    /// Order numbers, as written (digits only).
    pub order_ids: Vec<String>,
    /// Courier tracking numbers.
    pub tracking_numbers: Vec<String>,
    /// Phone numbers, always masked (`138****1234`).
    pub phones: Vec<String>,
    /// Money amounts.
    pub amounts: Vec<Amount>,
    /// Colours, sizes, flavours and styles, with the role the text gives them.
    pub attributes: Vec<Attribute>,
    /// How long something has taken ("three days now", "a week since signing").
    pub durations: Vec<Duration>,
    /// A new address the buyer gives.
    pub new_address: Option<Address>,
}

/// A money amount.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Amount {
    /// Decimal value in yuan, as a string ("39.9").
    pub value: String,
    /// The buyer's words.
    pub text: String,
    /// `[start, end)` in original characters.
    pub span: [usize; 2],
}

/// A product attribute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attribute {
    /// `colour`, `size`, `flavour` or `style`.
    pub kind: String,
    /// The value as listed in the vocabulary (normalized).
    pub value: String,
    /// `ordered`, `received`, or absent when the text does not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// `[start, end)` in original characters.
    pub span: [usize; 2],
}

/// A duration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Duration {
    /// Length in days (hours are fractions).
    pub days: f32,
    /// What it counts from (`signed`, `shipped`, `ordered`, …) when the text says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// The buyer's words.
    pub text: String,
    /// `[start, end)` in original characters.
    pub span: [usize; 2],
}

/// An address the buyer wants an order sent to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Address {
    /// The buyer's words.
    pub text: String,
    /// `[start, end)` in original characters.
    pub span: [usize; 2],
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntityFile {
    numerals: Numerals,
    amount: AmountFile,
    numbers: NumbersFile,
    attributes: AttributesFile,
    duration: DurationFile,
    address: AddressFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Numerals {
    digits: BTreeMap<String, u32>,
    units: BTreeMap<String, u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AmountFile {
    suffixes: Vec<String>,
    prefixes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NumbersFile {
    tracking_cues: Vec<String>,
    min_order_digits: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttributesFile {
    colours: Vec<String>,
    sizes: Vec<String>,
    flavours: Vec<String>,
    styles: Vec<String>,
    size_suffixes: Vec<String>,
    ordered_cues: Vec<String>,
    received_cues: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DurationFile {
    units: BTreeMap<String, f32>,
    since: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddressFile {
    cues: Vec<String>,
    markers: Vec<String>,
    trailing: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Word {
    Colour,
    Size,
    Flavour,
    Style,
    Ordered,
    Received,
}

/// The compiled entity vocabulary.
pub struct Extractor {
    digits: BTreeMap<char, u32>,
    units: BTreeMap<char, u32>,
    amount_suffixes: Vec<String>,
    amount_prefixes: Vec<String>,
    tracking_cues: Vec<String>,
    min_order_digits: usize,
    words: AhoCorasick,
    word_kinds: Vec<(Word, String)>,
    size_suffixes: Vec<String>,
    duration_units: Vec<(String, f32)>,
    since: AhoCorasick,
    since_names: Vec<String>,
    address_cues: AhoCorasick,
    address_markers: Vec<String>,
    address_trailing: Vec<String>,
}

impl Extractor {
    /// Loads `entities.toml`.
    ///
    /// # Errors
    /// The file is missing, not TOML, has unknown keys, or a numeral key is not one character.
    pub fn load(path: &Path, norm: &dyn Fn(&str) -> String) -> Result<Self, LoadError> {
        let err = |key: &str, problem: String| LoadError { file: path.to_owned(), key: key.to_owned(), problem };
        let raw = std::fs::read_to_string(path).map_err(|e| err("-", format!("cannot read: {e}")))?;
        let file: EntityFile = toml::from_str(&raw).map_err(|e| {
            let line = e.span().map(|s| raw[..s.start].lines().count().max(1));
            let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
            err("-", format!("{}{at}", e.message()))
        })?;
        let one_char = |key: &str, map: &BTreeMap<String, u32>| -> Result<BTreeMap<char, u32>, LoadError> {
            map.iter()
                .map(|(k, v)| {
                    let mut cs = k.chars();
                    match (cs.next(), cs.next()) {
                        (Some(c), None) => Ok((c, *v)),
                        _ => Err(err(&format!("numerals.{key}.{k}"), "must be a single character".into())),
                    }
                })
                .collect()
        };
        let digits = one_char("digits", &file.numerals.digits)?;
        let units = one_char("units", &file.numerals.units)?;

        let a = &file.attributes;
        let mut word_kinds = Vec::new();
        for (kind, list, key) in [
            (Word::Colour, &a.colours, "attributes.colours"),
            (Word::Size, &a.sizes, "attributes.sizes"),
            (Word::Flavour, &a.flavours, "attributes.flavours"),
            (Word::Style, &a.styles, "attributes.styles"),
            (Word::Ordered, &a.ordered_cues, "attributes.ordered_cues"),
            (Word::Received, &a.received_cues, "attributes.received_cues"),
        ] {
            for (i, w) in list.iter().enumerate() {
                let n = norm(w);
                if n.is_empty() {
                    return Err(err(&format!("{key}[{i}]"), "empty word".into()));
                }
                word_kinds.push((kind, n));
            }
        }
        let words = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(word_kinds.iter().map(|(_, w)| w.as_str()))
            .map_err(|e| err("attributes", e.to_string()))?;
        let since_names: Vec<String> = file.duration.since.values().cloned().collect();
        let since = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(file.duration.since.keys().map(|k| norm(k)))
            .map_err(|e| err("duration.since", e.to_string()))?;
        let address_cues = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(file.address.cues.iter().map(|k| norm(k)))
            .map_err(|e| err("address.cues", e.to_string()))?;
        let mut duration_units: Vec<(String, f32)> = file.duration.units.iter().map(|(k, v)| (norm(k), *v)).collect();
        // Longest unit first so a unit with its measure word wins over the bare unit.
        duration_units.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
        let mut amount_suffixes: Vec<String> = file.amount.suffixes.iter().map(|s| norm(s)).collect();
        amount_suffixes.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Ok(Self {
            digits,
            units,
            amount_suffixes,
            amount_prefixes: file.amount.prefixes.iter().map(|s| norm(s)).collect(),
            tracking_cues: file.numbers.tracking_cues.iter().map(|s| norm(s)).collect(),
            min_order_digits: file.numbers.min_order_digits,
            words,
            word_kinds,
            size_suffixes: a.size_suffixes.iter().map(|s| norm(s)).collect(),
            duration_units,
            since,
            since_names,
            address_cues,
            address_markers: file.address.markers.iter().map(|s| norm(s)).collect(),
            address_trailing: file.address.trailing.iter().map(|s| norm(s)).collect(),
        })
    }

    /// Extracts the entities of a normalized message.
    #[must_use]
    pub fn extract(&self, norm: &Normalized, original: &str) -> Entities {
        let text = norm.text.as_str();
        let span_text = |s: usize, e: usize| -> ([usize; 2], String) {
            let (a, b) = norm.original_span(s, e);
            ([a, b], original.chars().skip(a).take(b - a).collect())
        };
        let mut out = Entities::default();
        self.numbers(text, &mut out);
        self.quantities(text, &span_text, &mut out);
        self.attributes(text, norm, &mut out);
        self.address(text, &span_text, &mut out);
        out
    }

    fn numbers(&self, text: &str, out: &mut Entities) {
        let b = text.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if !b[i].is_ascii_digit() {
                i += 1;
                continue;
            }
            if i > 0 && b[i - 1].is_ascii_alphabetic() {
                // Glued to letters ("sf1234", "xl2"): not a bare number.
                while i < b.len() && b[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                continue;
            }
            let start = i;
            let mut digits = String::new();
            let mut end = i;
            while i < b.len() {
                if b[i].is_ascii_digit() {
                    digits.push(b[i] as char);
                    i += 1;
                    end = i;
                } else if (b[i] == b'-' || b[i] == b' ') && i + 1 < b.len() && b[i + 1].is_ascii_digit() {
                    i += 1;
                } else {
                    break;
                }
            }
            // A decimal part makes it an amount, not a number.
            if end + 1 < b.len() && b[end] == b'.' && b[end + 1].is_ascii_digit() {
                continue;
            }
            let db = digits.as_bytes();
            if db.len() == 11 && db[0] == b'1' && (b'3'..=b'9').contains(&db[1]) {
                out.phones.push(mask_phone(&digits));
            } else if db.len() >= self.min_order_digits {
                let before = &text[..start];
                let tracking = self
                    .tracking_cues
                    .iter()
                    .any(|c| before.rfind(c.as_str()).is_some_and(|p| before[p + c.len()..].chars().count() <= 3));
                if tracking {
                    out.tracking_numbers.push(digits);
                } else {
                    out.order_ids.push(digits);
                }
            }
        }
    }

    /// Amounts and durations: a number (Arabic or Chinese) followed by a unit word.
    fn quantities(&self, text: &str, span_text: &dyn Fn(usize, usize) -> ([usize; 2], String), out: &mut Entities) {
        let mut i = 0;
        while i < text.len() {
            let rest = &text[i..];
            if let Some(p) = self.amount_prefixes.iter().find(|p| rest.starts_with(p.as_str()))
                && let Some((value, len)) = arabic(&rest[p.len()..])
            {
                let (span, t) = span_text(i, i + p.len() + len);
                out.amounts.push(Amount { value, text: t, span });
                i += p.len() + len;
                continue;
            }
            let Some((value, len)) = arabic(rest).or_else(|| self.chinese(rest)) else {
                i += rest.chars().next().map_or(1, char::len_utf8);
                continue;
            };
            let after = &rest[len..];
            if let Some(s) = self.amount_suffixes.iter().find(|s| after.starts_with(s.as_str())) {
                let (span, t) = span_text(i, i + len + s.len());
                out.amounts.push(Amount { value, text: t, span });
                i += len + s.len();
                continue;
            }
            if let Some((unit, factor)) = self.duration_units.iter().find(|(u, _)| after.starts_with(u.as_str())) {
                let end = i + len + unit.len();
                let clause = clause_start(text, i);
                let since = self
                    .since
                    .find_iter(&text[clause..i])
                    .last()
                    .map(|m| self.since_names[m.pattern().as_usize()].clone());
                let days = value.parse::<f32>().unwrap_or(0.0) * factor;
                let (span, t) = span_text(i, end);
                out.durations.push(Duration { days, since, text: t, span });
                i = end;
                continue;
            }
            i += len;
        }
    }

    fn attributes(&self, text: &str, norm: &Normalized, out: &mut Entities) {
        let mut last_role: Option<(usize, &'static str)> = None;
        for m in self.words.find_iter(text) {
            let (kind, word) = &self.word_kinds[m.pattern().as_usize()];
            let (s, e) = (m.start(), m.end());
            // ASCII size letters ("l", "xl") must stand alone, not inside a word ("ml").
            let ascii_word = word.bytes().all(|c| c.is_ascii_alphanumeric());
            if ascii_word {
                let bytes = text.as_bytes();
                let glued = (s > 0 && bytes[s - 1].is_ascii_alphanumeric())
                    || (e < bytes.len() && bytes[e].is_ascii_alphabetic());
                if glued {
                    continue;
                }
            }
            let kind = match kind {
                Word::Ordered => {
                    last_role = Some((s, "ordered"));
                    continue;
                }
                Word::Received => {
                    last_role = Some((s, "received"));
                    continue;
                }
                Word::Colour => "colour",
                Word::Size => "size",
                Word::Flavour => "flavour",
                Word::Style => "style",
            };
            let clause = clause_start(text, s);
            let role = last_role.filter(|(at, _)| *at >= clause).map(|(_, r)| r);
            let (a, b) = norm.original_span(s, e);
            out.attributes.push(Attribute { kind: kind.to_owned(), value: word.clone(), role, span: [a, b] });
        }
        // Numeric sizes: a number followed by a size suffix (shoe size 38, height 170).
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if !bytes[i].is_ascii_digit() {
                i += 1;
                continue;
            }
            let s = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i - s > 3 {
                continue;
            }
            if let Some(suf) = self.size_suffixes.iter().find(|x| text[i..].starts_with(x.as_str())) {
                let e = i + suf.len();
                let clause = clause_start(text, s);
                let role = self.role_before(text, clause, s);
                let (a, b) = norm.original_span(s, e);
                out.attributes.push(Attribute {
                    kind: "size".into(),
                    value: text[s..e].to_owned(),
                    role,
                    span: [a, b],
                });
                i = e;
            }
        }
        out.attributes.sort_by_key(|a| a.span);
    }

    fn role_before(&self, text: &str, from: usize, to: usize) -> Option<&'static str> {
        self.words
            .find_iter(&text[from..to])
            .filter_map(|m| match self.word_kinds[m.pattern().as_usize()].0 {
                Word::Ordered => Some("ordered"),
                Word::Received => Some("received"),
                _ => None,
            })
            .last()
    }

    fn address(&self, text: &str, span_text: &dyn Fn(usize, usize) -> ([usize; 2], String), out: &mut Entities) {
        for m in self.address_cues.find_iter(text) {
            let start = m.end();
            let rest = &text[start..];
            let len = rest.find(['.', '!', '?', '~']).unwrap_or(rest.len());
            let mut candidate = &rest[..len];
            candidate = candidate.trim_end_matches(',');
            loop {
                let before = candidate.len();
                for t in &self.address_trailing {
                    candidate = candidate.strip_suffix(t.as_str()).unwrap_or(candidate);
                }
                candidate = candidate.trim_end_matches(',');
                if candidate.len() == before {
                    break;
                }
            }
            let markers = self.address_markers.iter().filter(|mk| candidate.contains(mk.as_str())).count();
            if markers >= 2 && candidate.chars().count() >= 4 {
                let (span, t) = span_text(start, start + candidate.len());
                out.new_address = Some(Address { text: t, span });
                return;
            }
        }
    }

    /// A Chinese numeral at the start of `s`: value and byte length.
    fn chinese(&self, s: &str) -> Option<(String, usize)> {
        let mut total = 0u32;
        let mut cur = 0u32;
        let mut len = 0;
        let mut any = false;
        for c in s.chars() {
            if let Some(d) = self.digits.get(&c) {
                cur = *d;
            } else if let Some(u) = self.units.get(&c) {
                total += if cur == 0 { 1 } else { cur } * u;
                cur = 0;
            } else {
                break;
            }
            any = true;
            len += c.len_utf8();
        }
        any.then(|| ((total + cur).to_string(), len))
    }
}

/// An Arabic number at the start of `s` (digits, optional decimal part): value and byte length.
fn arabic(s: &str) -> Option<(String, usize)> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i == 0 {
        return None;
    }
    if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    Some((s[..i].to_owned(), i))
}

/// Byte offset where the clause containing `at` starts.
fn clause_start(text: &str, at: usize) -> usize {
    text[..at].rfind([',', '.', '!', '?', '~']).map_or(0, |p| p + 1)
}

/// `13800001234` → `138****1234`.
#[must_use]
pub fn mask_phone(digits: &str) -> String {
    if digits.len() < 7 {
        return "*".repeat(digits.len());
    }
    format!("{}****{}", &digits[..3], &digits[digits.len() - 4..])
}
