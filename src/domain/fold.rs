//! Leak folding: the view of a text that the leak checks and the console's masking look at.
//!
//! People hide (or, pasting from other systems, innocently disguise) phone numbers, names and
//! addresses: full-width digits, Chinese numerals, spaces or dashes between digits, zero-width
//! characters between characters, spaced-out name and address parts. Folding undoes all of
//! it, in one pass, in this order per character:
//! 1. format characters are dropped (zero-width, soft hyphen, bidi controls, variation selectors);
//! 2. NFKC compatibility folding (full-width → ASCII, circled digits, compatibility ideographs),
//!    ASCII lower case;
//! 3. Chinese numerals to digits (the table is data: `templates/guard.toml` `[fold] numerals`);
//! 4. separators (whitespace, punctuation, dashes, dots) are dropped, remembering that one was
//!    there so that a digit run can tell a real boundary from a disguise.
//!
//! Every folded character keeps the range of original characters it came from, so a finding on
//! the folded text maps back to a span of the original. Everything is linear in the input; the
//! scans below count their steps in a [`Work`] so tests can show it without timing.
//!
//! Pure, no I/O. The folded text is for finding data only: it is never shown or sent.

use std::collections::HashSet;

/// A folded text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Folded {
    /// The folded characters.
    pub chars: Vec<char>,
    /// For each folded character, the range `[start, end)` of original characters.
    pub origin: Vec<(u32, u32)>,
    /// For each folded character, whether a separator stood right before it in the original
    /// (or it starts the text).
    pub boundary: Vec<bool>,
}

/// Steps taken by the folding and scanning loops (a measure of work, for tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work(pub u64);

impl Work {
    fn step(&mut self) {
        self.0 += 1;
    }
}

/// What kind of protected data a [`Hit`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HitKind {
    /// Any mobile number.
    Phone,
    /// Any ID-card number.
    IdNumber,
    /// 4 or more consecutive digits of the order's phone.
    OrderPhone,
    /// The receiver's full or given name.
    ReceiverName,
    /// A part of the order's address.
    OrderAddress,
    /// Address-like text (a chain of address markers).
    Address,
}

/// One piece of protected data found in a text: `[start, end)` in original characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hit {
    /// Original-character span.
    pub span: [usize; 2],
    /// What was found.
    pub kind: HitKind,
}

/// Most folded characters between two markers of one address chain.
const MARKER_GAP: usize = 8;

/// The folding tables: Chinese numerals and address markers (from `templates/guard.toml`).
#[derive(Debug, Clone, Default)]
pub struct Folder {
    /// Numeral → digit, sorted by numeral.
    numerals: Vec<(char, char)>,
    /// Address marker → its rank in an address (province first, room last), sorted by marker.
    markers: Vec<(char, u8)>,
}

/// The data to look for: the order's receiver, folded once.
#[derive(Debug, Clone, Default)]
pub struct Needles {
    phone_grams: HashSet<[char; 4]>,
    names: Vec<Vec<char>>,
    address_parts: Vec<Vec<char>>,
}

impl Needles {
    /// Whether there is nothing order-specific to look for.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.phone_grams.is_empty() && self.names.is_empty() && self.address_parts.is_empty()
    }
}

type RawHit = (usize, usize, HitKind);

impl Folder {
    /// Builds the tables.
    #[must_use]
    pub fn new(mut numerals: Vec<(char, char)>, mut markers: Vec<(char, u8)>) -> Self {
        numerals.sort_unstable();
        numerals.dedup_by_key(|p| p.0);
        markers.sort_unstable();
        markers.dedup_by_key(|p| p.0);
        Self { numerals, markers }
    }

    /// The rank of an address marker.
    #[must_use]
    pub fn marker_rank(&self, c: char) -> Option<u8> {
        if c.is_ascii() {
            return None;
        }
        self.markers.binary_search_by_key(&c, |p| p.0).ok().map(|i| self.markers[i].1)
    }

    /// A numeral as its digit; anything else unchanged.
    #[must_use]
    pub fn numeral(&self, c: char) -> char {
        if c.is_ascii() {
            return c;
        }
        self.numerals.binary_search_by_key(&c, |p| p.0).map_or(c, |i| self.numerals[i].1)
    }

    /// Folds a text (see the module docs).
    #[must_use]
    pub fn fold(&self, raw: &str) -> Folded {
        self.fold_counted(raw, &mut Work::default())
    }

    /// [`Folder::fold`], counting its steps.
    pub fn fold_counted(&self, raw: &str, work: &mut Work) -> Folded {
        let mut out = Folded {
            chars: Vec::with_capacity(raw.len()),
            origin: Vec::with_capacity(raw.len()),
            boundary: Vec::with_capacity(raw.len()),
        };
        let mut sep = true;
        for (i, c) in raw.chars().enumerate() {
            work.step();
            let i = i as u32;
            if is_format(c) {
                continue;
            }
            let mut push = |d: char| {
                let d = self.numeral(d.to_ascii_lowercase());
                if is_separator(d) {
                    sep = true;
                    return;
                }
                out.chars.push(d);
                out.origin.push((i, i + 1));
                out.boundary.push(std::mem::take(&mut sep));
            };
            if c.is_ascii() {
                push(c);
            } else {
                unicode_normalization::char::decompose_compatible(c, |d| {
                    if !is_format(d) && !is_combining(d) {
                        push(d);
                    }
                });
            }
        }
        out
    }

    /// The receiver data to protect, folded. `min_address_part` is the shortest address part
    /// checked (at least 2).
    #[must_use]
    pub fn needles(
        &self,
        names: &[String],
        phones: &[String],
        addresses: &[String],
        min_address_part: usize,
    ) -> Needles {
        let mut phone_grams = HashSet::new();
        for p in phones {
            let d: Vec<char> = self.fold(p).chars.into_iter().filter(char::is_ascii_digit).collect();
            for w in d.windows(4) {
                phone_grams.insert([w[0], w[1], w[2], w[3]]);
            }
        }
        let mut probes = Vec::new();
        for n in names {
            let n = self.fold(n).chars;
            // The given name of a 3+ character name is as identifying as the full name.
            if n.len() >= 3 {
                probes.push(n[1..].to_vec());
            }
            if n.len() >= 2 {
                probes.push(n);
            }
        }
        let mut parts: Vec<Vec<char>> = Vec::new();
        for a in addresses {
            for part in self.address_parts(&self.fold(a).chars) {
                if part.len() >= min_address_part.max(2) && !parts.contains(&part) {
                    parts.push(part);
                }
            }
        }
        Needles { phone_grams, names: probes, address_parts: parts }
    }

    /// Every piece of protected data in `raw`: the order's receiver data (`needles`) and any
    /// phone, ID number or address-like text. Overlapping hits of one kind are merged; sorted.
    #[must_use]
    pub fn find(&self, raw: &str, needles: &Needles) -> Vec<Hit> {
        self.find_counted(raw, needles, &mut Work::default())
    }

    /// [`Folder::find`], counting its steps.
    pub fn find_counted(&self, raw: &str, needles: &Needles, work: &mut Work) -> Vec<Hit> {
        let (f, hits) = self.find_folded(raw, needles, work);
        let mut out: Vec<Hit> = hits
            .into_iter()
            .map(|(s, e, kind)| Hit { span: [f.origin[s].0 as usize, f.origin[e - 1].1 as usize], kind })
            .collect();
        out.sort();
        out
    }

    /// `raw` with every hit masked: each character of a hit becomes `*`, except the first
    /// character of a name or address and the first 3 and last 4 digits of a phone or ID
    /// number, so an agent still sees what kind of data it was. Separators and format
    /// characters in between stay. Same length in characters (spans stay valid).
    #[must_use]
    pub fn mask(&self, raw: &str, needles: &Needles) -> String {
        let (f, hits) = self.find_folded(raw, needles, &mut Work::default());
        if hits.is_empty() {
            return raw.to_owned();
        }
        let mut chars: Vec<char> = raw.chars().collect();
        for (s, e, kind) in hits {
            let n = e - s;
            for k in s..e {
                let keep = match kind {
                    // The whole order phone masks like any phone; a part of it (its last 4) entirely.
                    HitKind::Phone | HitKind::IdNumber | HitKind::OrderPhone => n >= 11 && (k < s + 3 || k >= e - 4),
                    HitKind::ReceiverName | HitKind::OrderAddress | HitKind::Address => k == s,
                };
                if !keep {
                    let (a, b) = f.origin[k];
                    for slot in &mut chars[a as usize..b as usize] {
                        *slot = '*';
                    }
                }
            }
        }
        chars.into_iter().collect()
    }

    /// The folded text and the hits on it, in folded indices, merged per kind.
    fn find_folded(&self, raw: &str, needles: &Needles, work: &mut Work) -> (Folded, Vec<RawHit>) {
        let f = self.fold_counted(raw, work);
        let mut hits: Vec<RawHit> = Vec::new();
        digit_runs(&f, needles, work, &mut hits);
        for probe in &needles.names {
            for s in find_all(&f.chars, probe, work) {
                hits.push((s, s + probe.len(), HitKind::ReceiverName));
            }
        }
        for part in &needles.address_parts {
            for s in find_all(&f.chars, part, work) {
                hits.push((s, s + part.len(), HitKind::OrderAddress));
            }
        }
        self.address_chains(&f, work, &mut hits);
        hits.sort_by_key(|&(s, e, k)| (k, s, e));
        let mut merged: Vec<RawHit> = Vec::with_capacity(hits.len());
        for h in hits {
            work.step();
            match merged.last_mut() {
                Some(last) if last.2 == h.2 && h.0 <= last.1 => last.1 = last.1.max(h.1),
                _ => merged.push(h),
            }
        }
        (f, merged)
    }

    /// Splits a folded address at its markers into parts (a road name, a house number).
    fn address_parts(&self, a: &[char]) -> Vec<Vec<char>> {
        let mut parts = Vec::new();
        let mut cur = Vec::new();
        for &c in a {
            cur.push(c);
            if self.marker_rank(c).is_some() {
                parts.push(std::mem::take(&mut cur));
            }
        }
        if !cur.is_empty() {
            parts.push(cur);
        }
        parts
    }

    /// Address-like text: markers in rising rank, each within [`MARKER_GAP`] of the previous;
    /// three or more, or two with a digit among them. (Two markers of one rank in a row, as in
    /// an ordinary phrase that happens to use a marker character twice, start a new chain.)
    fn address_chains(&self, f: &Folded, work: &mut Work, hits: &mut Vec<RawHit>) {
        struct Chain {
            start: usize,
            last: usize,
            rank: u8,
            markers: u32,
            digit: bool,
        }
        let flush = |ch: Option<Chain>, hits: &mut Vec<RawHit>| {
            if let Some(c) = ch
                && (c.markers >= 3 || (c.markers >= 2 && c.digit))
            {
                hits.push((c.start, c.last + 1, HitKind::Address));
            }
        };
        let mut chain: Option<Chain> = None;
        // Start of the current run of characters since the last marker or symbol.
        let mut plain_since = 0;
        for (i, &c) in f.chars.iter().enumerate() {
            work.step();
            if !(c.is_alphanumeric() || c == '*') {
                flush(chain.take(), hits);
                plain_since = i + 1;
                continue;
            }
            let Some(rank) = self.marker_rank(c) else { continue };
            let from = plain_since.max(i.saturating_sub(MARKER_GAP));
            match &mut chain {
                Some(ch) if rank > ch.rank && i - ch.last <= MARKER_GAP => {
                    ch.digit |= f.chars[ch.last + 1..i].iter().any(char::is_ascii_digit);
                    ch.last = i;
                    ch.rank = rank;
                    ch.markers += 1;
                }
                _ => {
                    flush(chain.take(), hits);
                    // The chain starts with the name before its first marker (a road's name).
                    let digit = f.chars[from..i].iter().any(char::is_ascii_digit);
                    chain = Some(Chain { start: from, last: i, rank, markers: 1, digit });
                }
            }
            plain_since = i + 1;
        }
        flush(chain, hits);
    }
}

/// Phones, ID numbers and the order's phone digits, on the maximal digit runs of the folded text.
fn digit_runs(f: &Folded, needles: &Needles, work: &mut Work, hits: &mut Vec<RawHit>) {
    let c = &f.chars;
    let mut i = 0;
    while i < c.len() {
        work.step();
        if !c[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < c.len() && c[i].is_ascii_digit() {
            work.step();
            i += 1;
        }
        let end = i;
        let run = &c[start..end];
        // Where a phone may start or end: a separator stood there in the original. The run's own
        // ends count only for a run of phone length: a long unbroken run is an order or
        // tracking number, not a phone with digits glued on.
        let phone_length = run.len() == 11 || (run.len() == 13 && run[0] == '8' && run[1] == '6');
        let bound = |p: usize| if p == start || p == end { phone_length } else { f.boundary[p] };
        for p in start..end {
            work.step();
            let mobile = p + 11 <= end && c[p] == '1' && ('3'..='9').contains(&c[p + 1]);
            let prefixed = p >= start + 2 && c[p - 2] == '8' && c[p - 1] == '6' && bound(p - 2);
            if mobile && (bound(p) || prefixed || bound(p + 11)) {
                hits.push((if prefixed && !bound(p) { p - 2 } else { p }, p + 11, HitKind::Phone));
            }
            if p + 4 <= end && needles.phone_grams.contains(&[c[p], c[p + 1], c[p + 2], c[p + 3]]) {
                hits.push((p, p + 4, HitKind::OrderPhone));
            }
        }
        let x = end < c.len() && c[end] == 'x';
        if run.len() == 18 || (run.len() == 17 && x) {
            hits.push((start, end + usize::from(x), HitKind::IdNumber));
        }
    }
}

/// Every start of `needle` in `hay` (Knuth–Morris–Pratt: linear in both, whatever they hold).
fn find_all(hay: &[char], needle: &[char], work: &mut Work) -> Vec<usize> {
    let mut out = Vec::new();
    if needle.is_empty() || needle.len() > hay.len() {
        return out;
    }
    let mut fail = vec![0usize; needle.len()];
    let mut k = 0;
    for i in 1..needle.len() {
        while k > 0 && needle[i] != needle[k] {
            work.step();
            k = fail[k - 1];
        }
        work.step();
        if needle[i] == needle[k] {
            k += 1;
        }
        fail[i] = k;
    }
    k = 0;
    for (i, &c) in hay.iter().enumerate() {
        while k > 0 && c != needle[k] {
            work.step();
            k = fail[k - 1];
        }
        work.step();
        if c == needle[k] {
            k += 1;
        }
        if k == needle.len() {
            out.push(i + 1 - k);
            k = fail[k - 1];
        }
    }
    out
}

/// Format characters and other invisibles: zero-width spaces and joiners, soft hyphen, bidi
/// controls, word joiners, BOM, variation selectors, tag characters, fillers.
#[must_use]
pub fn is_format(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
        | 0xFEFF | 0xFFA0 | 0xFFF9..=0xFFFB | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
        | 0xE0000..=0xE0FFF)
}

/// Combining marks left by compatibility decomposition (accents folded away).
fn is_combining(c: char) -> bool {
    matches!(c as u32, 0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F)
}

/// Whitespace, punctuation, dashes and dots: what people put between digits or characters.
/// `*` is not one: a masked number stays masked.
#[must_use]
pub fn is_separator(c: char) -> bool {
    if c.is_whitespace() {
        return true;
    }
    if c.is_ascii() {
        return c.is_ascii_punctuation() && c != '*';
    }
    matches!(c as u32,
        0x00A1..=0x00BF | 0x00D7 | 0x00F7 | 0x2010..=0x2027 | 0x2030..=0x205E | 0x2190..=0x21FF
        | 0x2212 | 0x2500..=0x257F | 0x25A0..=0x25FF | 0x2E00..=0x2E7F | 0x3001..=0x3003
        | 0x3008..=0x3011 | 0x3014..=0x301F | 0x30FB | 0xFE10..=0xFE6F | 0xFF61..=0xFF65)
}
