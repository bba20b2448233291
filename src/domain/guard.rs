//! The guard: runs on every outgoing text, the bot's drafts and an agent's own edits alike.
//!
//! Three families of rules, all phrase lists and regexes in `templates/guard.toml`:
//! - **never argue**: rebuttal, denial, doubting or blaming the buyer, rule-lawyering, sarcasm,
//!   impatience; each finding carries a softer wording to offer instead;
//! - **never leak**: to anyone but the verified ordering account, none of the order's phone,
//!   address or receiver name, even partially; phone and ID numbers and address-like text in
//!   any reply to an unverified recipient; internal data (cost, supplier, other buyers) never;
//! - **never break the rules**: no refusal of an invoice, no refusal of a qualifying
//!   no-reason return, no promise faster than the shop's SLA can keep.
//!
//! Pure: text and context in, verdict and findings out.

use std::path::Path;

use aho_corasick::{AhoCorasick, MatchKind};
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::{catalog::LoadError, normalize::Normalizer};

/// The guard's answer: the contract of `shouhou check`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// `pass` or `block`.
    pub verdict: &'static str,
    /// Every problem found, in text order.
    pub findings: Vec<Finding>,
}

impl Verdict {
    /// Whether the text may be sent.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.verdict == "pass"
    }
}

/// One problem in an outgoing text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The rule: `argue.<kind>`, `leak.<kind>`, `rule.<kind>`.
    pub rule: String,
    /// `[start, end)` in characters of the checked text.
    pub span: [usize; 2],
    /// What is wrong (English, for agents and logs; never contains buyer data).
    pub message: String,
    /// A softer or safe wording to use instead, when the rule has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
}

/// Who receives the text and what must be protected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct GuardContext {
    /// The recipient is the account that placed the order.
    #[serde(default)]
    pub recipient_is_orderer: bool,
    /// The order's receiver name, phone and address, to protect from anyone else.
    #[serde(default)]
    pub protected: Protected,
    /// The order holds an item that qualifies for the 7-day no-reason return (or it is unknown).
    #[serde(default = "yes")]
    pub return_qualifies: bool,
    /// The fastest the shop's SLA lets a promise be kept, in hours (none: not checked).
    #[serde(default)]
    pub min_promise_hours: Option<u32>,
}

fn yes() -> bool {
    true
}

/// Order data that only the ordering account may see.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Protected {
    /// Receiver names.
    #[serde(default)]
    pub names: Vec<String>,
    /// Phone numbers.
    #[serde(default)]
    pub phones: Vec<String>,
    /// Addresses.
    #[serde(default)]
    pub addresses: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GuardFile {
    argue: Vec<RuleFile>,
    refusal: Vec<RuleFile>,
    allow: AllowFile,
    leak: LeakFile,
    promise: PromiseFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    kind: String,
    message: String,
    suggestion: String,
    /// `always` (the default for `[[argue]]`), or `when_return_qualifies`; required for
    /// `[[refusal]]`.
    #[serde(default)]
    applies: Option<String>,
    #[serde(default)]
    phrases: Vec<String>,
    #[serde(default)]
    regexes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowFile {
    phrases: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeakFile {
    internal: Vec<String>,
    internal_suggestion: String,
    address_markers: Vec<String>,
    address_suggestion: String,
    data_suggestion: String,
    /// Characters that separate parts of an address (markers are also separators).
    min_address_part: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromiseFile {
    /// A regex whose first group is a number, and the hours one unit of it stands for.
    numeric: Vec<NumericPromise>,
    /// Fixed expressions and the hours they promise.
    fixed: std::collections::BTreeMap<String, u32>,
    suggestion: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NumericPromise {
    regex: String,
    hours_per_unit: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Applies {
    Always,
    WhenReturnQualifies,
}

struct Rule {
    rule: String,
    message: String,
    suggestion: String,
    applies: Applies,
}

/// The compiled guard.
pub struct Guard {
    rules: Vec<Rule>,
    /// Phrase pattern → rule index.
    phrases: AhoCorasick,
    phrase_rule: Vec<usize>,
    regexes: Vec<(Regex, usize)>,
    allow: AhoCorasick,
    internal: AhoCorasick,
    internal_suggestion: String,
    address_markers: Vec<char>,
    address_suggestion: String,
    data_suggestion: String,
    min_address_part: usize,
    promise_numeric: Vec<(Regex, u32)>,
    promise_fixed: AhoCorasick,
    promise_fixed_hours: Vec<u32>,
    promise_suggestion: String,
    id_number: Regex,
    phone: Regex,
}

impl Guard {
    /// Loads `guard.toml`.
    ///
    /// # Errors
    /// Missing or invalid file, unknown keys, regexes that do not compile, an unknown
    /// `applies`, address markers that are not single characters.
    pub fn load(path: &Path, normalizer: &Normalizer) -> Result<Self, LoadError> {
        let err = |key: &str, problem: String| LoadError { file: path.to_owned(), key: key.to_owned(), problem };
        let raw = std::fs::read_to_string(path).map_err(|e| err("-", format!("cannot read: {e}")))?;
        let file: GuardFile = toml::from_str(&raw).map_err(|e| {
            let at = e.span().map(|s| format!(" (line {})", raw[..s.start].lines().count().max(1))).unwrap_or_default();
            err("-", format!("{}{at}", e.message()))
        })?;
        let norm = |s: &str| normalizer.normalize(s).text;
        let mut rules = Vec::new();
        let mut pats: Vec<String> = Vec::new();
        let mut phrase_rule = Vec::new();
        let mut regexes = Vec::new();
        let mut add = |rule: Rule, phrases: &[String], res: &[String], key: String| -> Result<(), LoadError> {
            let idx = rules.len();
            for (i, p) in phrases.iter().enumerate() {
                let n = norm(p);
                if n.is_empty() {
                    return Err(err(&format!("{key}.phrases[{i}]"), "empty phrase".into()));
                }
                pats.push(n);
                phrase_rule.push(idx);
            }
            for (i, r) in res.iter().enumerate() {
                let re = Regex::new(r)
                    .map_err(|e| err(&format!("{key}.regexes[{i}]"), format!("regex does not compile: {e}")))?;
                regexes.push((re, idx));
            }
            rules.push(rule);
            Ok(())
        };
        for (i, r) in file.argue.iter().enumerate() {
            if r.applies.as_deref().is_some_and(|a| a != "always") {
                return Err(err(&format!("argue[{i}].applies"), "arguing is never allowed: only `always`".into()));
            }
            let rule = Rule {
                rule: format!("argue.{}", r.kind),
                message: r.message.clone(),
                suggestion: r.suggestion.clone(),
                applies: Applies::Always,
            };
            add(rule, &r.phrases, &r.regexes, format!("argue[{i}]"))?;
        }
        for (i, r) in file.refusal.iter().enumerate() {
            let applies = match r.applies.as_deref().unwrap_or("") {
                "always" => Applies::Always,
                "when_return_qualifies" => Applies::WhenReturnQualifies,
                other => {
                    return Err(err(
                        &format!("refusal[{i}].applies"),
                        format!("`{other}`: expected `always` or `when_return_qualifies` (required for a refusal)"),
                    ));
                }
            };
            let rule = Rule {
                rule: format!("rule.{}", r.kind),
                message: r.message.clone(),
                suggestion: r.suggestion.clone(),
                applies,
            };
            add(rule, &r.phrases, &r.regexes, format!("refusal[{i}]"))?;
        }
        let build = |key: &str, words: Vec<String>| {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(words)
                .map_err(|e| err(key, e.to_string()))
        };
        let phrases = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&pats)
            .map_err(|e| err("argue", e.to_string()))?;
        let allow = build("allow.phrases", file.allow.phrases.iter().map(|p| norm(p)).collect())?;
        let internal = build("leak.internal", file.leak.internal.iter().map(|p| norm(p)).collect())?;
        let mut address_markers = Vec::new();
        for (i, m) in file.leak.address_markers.iter().enumerate() {
            let mut cs = m.chars();
            match (cs.next(), cs.next()) {
                (Some(c), None) => address_markers.push(c),
                _ => return Err(err(&format!("leak.address_markers[{i}]"), "must be a single character".into())),
            }
        }
        let mut promise_numeric = Vec::new();
        for (i, p) in file.promise.numeric.iter().enumerate() {
            let re = Regex::new(&p.regex)
                .map_err(|e| err(&format!("promise.numeric[{i}].regex"), format!("regex does not compile: {e}")))?;
            if re.captures_len() < 2 {
                return Err(err(&format!("promise.numeric[{i}].regex"), "needs a group capturing the number".into()));
            }
            promise_numeric.push((re, p.hours_per_unit));
        }
        let promise_fixed = build("promise.fixed", file.promise.fixed.keys().map(|k| norm(k)).collect())?;
        Ok(Self {
            rules,
            phrases,
            phrase_rule,
            regexes,
            allow,
            internal,
            internal_suggestion: file.leak.internal_suggestion,
            address_markers,
            address_suggestion: file.leak.address_suggestion,
            data_suggestion: file.leak.data_suggestion,
            min_address_part: file.leak.min_address_part.max(2),
            promise_numeric,
            promise_fixed_hours: file.promise.fixed.values().copied().collect(),
            promise_fixed,
            promise_suggestion: file.promise.suggestion,
            id_number: Regex::new(r"\d{17}[\dxX]").expect("static regex"),
            phone: Regex::new(r"1[3-9]\d[- ]?\d{4}[- ]?\d{4}").expect("static regex"),
        })
    }

    /// Checks an outgoing text.
    #[must_use]
    pub fn check(&self, text: &str, ctx: &GuardContext, normalizer: &Normalizer) -> Verdict {
        let norm = normalizer.normalize(text);
        let t = norm.text.as_str();
        let mut findings = Vec::new();
        let allowed: Vec<(usize, usize)> = self.allow.find_iter(t).map(|m| (m.start(), m.end())).collect();
        let is_allowed = |s: usize, e: usize| allowed.iter().any(|&(a, b)| a <= s && e <= b);
        let push = |findings: &mut Vec<Finding>, ri: usize, s: usize, e: usize| {
            let r = &self.rules[ri];
            if r.applies == Applies::WhenReturnQualifies && !ctx.return_qualifies {
                return;
            }
            if is_allowed(s, e) {
                return;
            }
            let (a, b) = norm.original_span(s, e);
            findings.push(Finding {
                rule: r.rule.clone(),
                span: [a, b],
                message: r.message.clone(),
                suggestion: Some(r.suggestion.clone()),
            });
        };
        for m in self.phrases.find_overlapping_iter(t) {
            push(&mut findings, self.phrase_rule[m.pattern().as_usize()], m.start(), m.end());
        }
        for (re, ri) in &self.regexes {
            for m in re.find_iter(t) {
                push(&mut findings, *ri, m.start(), m.end());
            }
        }
        for m in self.internal.find_iter(t) {
            let (a, b) = norm.original_span(m.start(), m.end());
            findings.push(Finding {
                rule: "leak.internal".into(),
                span: [a, b],
                message: "mentions internal data (cost, supplier, other buyers, internal notes)".into(),
                suggestion: Some(self.internal_suggestion.clone()),
            });
        }
        if !ctx.recipient_is_orderer {
            self.leaks(text, ctx, &mut findings);
        }
        if let Some(min) = ctx.min_promise_hours {
            self.promises(t, &norm, min, &mut findings);
        }
        findings.sort_by(|a, b| a.span.cmp(&b.span).then_with(|| a.rule.cmp(&b.rule)));
        findings.dedup_by(|a, b| a.span == b.span && a.rule == b.rule);
        // Of overlapping findings of the same rule, keep the widest.
        let verdict = if findings.is_empty() { "pass" } else { "block" };
        Verdict { verdict, findings }
    }

    /// Order data and personal data in a text for someone who is not the ordering account.
    /// Matches on the raw text so spans are exact; digits are compared without separators.
    fn leaks(&self, text: &str, ctx: &GuardContext, findings: &mut Vec<Finding>) {
        let chars: Vec<char> = text.chars().collect();
        let flag = |findings: &mut Vec<Finding>, rule: &str, message: &str, s: usize, e: usize, sug: &str| {
            findings.push(Finding {
                rule: rule.into(),
                span: [s, e],
                message: message.into(),
                suggestion: Some(sug.to_owned()),
            });
        };
        let char_span = |bs: usize, be: usize| (text[..bs].chars().count(), text[..be].chars().count());

        for m in self.phone.find_iter(text) {
            let (s, e) = char_span(m.start(), m.end());
            flag(findings, "leak.phone", "contains a phone number", s, e, &self.data_suggestion);
        }
        for m in self.id_number.find_iter(text) {
            let (s, e) = char_span(m.start(), m.end());
            flag(findings, "leak.id_number", "contains an ID number", s, e, &self.data_suggestion);
        }
        // The order's phone, even partially: any run of 4+ of its digits (its last 4 included).
        let digits: Vec<(usize, char)> =
            chars.iter().copied().enumerate().filter(|(_, c)| c.is_ascii_digit()).collect();
        for phone in &ctx.protected.phones {
            let p: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
            if p.len() < 4 {
                continue;
            }
            for tail in p.windows(4) {
                for w in digits.windows(4) {
                    let contiguous = w[3].0 - w[0].0 <= 5;
                    if contiguous && w.iter().map(|x| x.1).eq(tail.iter().copied()) {
                        flag(
                            findings,
                            "leak.order_phone",
                            "contains digits of the order's phone",
                            w[0].0,
                            w[3].0 + 1,
                            &self.data_suggestion,
                        );
                    }
                }
            }
        }
        for name in &ctx.protected.names {
            let n: Vec<char> = name.chars().filter(|c| !c.is_whitespace()).collect();
            // The full name, or the given name of a 3+ character name.
            let mut probes: Vec<Vec<char>> = vec![n.clone()];
            if n.len() >= 3 {
                probes.push(n[1..].to_vec());
            }
            for probe in probes.iter().filter(|p| p.len() >= 2) {
                for (i, w) in chars.windows(probe.len()).enumerate() {
                    if w == probe.as_slice() {
                        flag(
                            findings,
                            "leak.receiver_name",
                            "contains the receiver's name",
                            i,
                            i + probe.len(),
                            &self.data_suggestion,
                        );
                    }
                }
            }
        }
        for address in &ctx.protected.addresses {
            for part in self.address_parts(address) {
                if part.len() < self.min_address_part {
                    continue;
                }
                for (i, w) in chars.windows(part.len()).enumerate() {
                    if w == part.as_slice() {
                        flag(
                            findings,
                            "leak.order_address",
                            "contains part of the order's address",
                            i,
                            i + part.len(),
                            &self.data_suggestion,
                        );
                    }
                }
            }
        }
        // Address-like text: two or more address markers in one run of text.
        let mut run_start = None;
        let mut markers = 0;
        for (i, c) in chars.iter().enumerate() {
            let word = c.is_alphanumeric() || *c == '*' || *c == '-';
            if word {
                run_start.get_or_insert(i);
                if self.address_markers.contains(c) {
                    markers += 1;
                }
            }
            let end = !word || i + 1 == chars.len();
            if end {
                if let Some(s) = run_start.take() {
                    let e = if word { i + 1 } else { i };
                    let has_digit = chars[s..e].iter().any(char::is_ascii_digit);
                    if markers >= 3 || (markers >= 2 && has_digit) {
                        flag(findings, "leak.address", "contains an address", s, e, &self.address_suggestion);
                    }
                }
                markers = 0;
            }
        }
    }

    /// Splits an address at its markers into the parts worth protecting (a road name, a house number).
    fn address_parts(&self, address: &str) -> Vec<Vec<char>> {
        let mut parts = Vec::new();
        let mut cur = Vec::new();
        for c in address.chars() {
            if c.is_whitespace() || matches!(c, ',' | '\u{FF0C}') {
                if !cur.is_empty() {
                    parts.push(std::mem::take(&mut cur));
                }
                continue;
            }
            cur.push(c);
            if self.address_markers.contains(&c) {
                parts.push(std::mem::take(&mut cur));
            }
        }
        if !cur.is_empty() {
            parts.push(cur);
        }
        parts
    }

    fn promises(&self, t: &str, norm: &super::normalize::Normalized, min_hours: u32, findings: &mut Vec<Finding>) {
        let mut flag = |s: usize, e: usize, hours: u32| {
            if hours < min_hours {
                let (a, b) = norm.original_span(s, e);
                findings.push(Finding {
                    rule: "rule.unkeepable_promise".into(),
                    span: [a, b],
                    message: format!("promises {hours} h; the shop's SLA needs {min_hours} h"),
                    suggestion: Some(self.promise_suggestion.clone()),
                });
            }
        };
        for (re, per) in &self.promise_numeric {
            for c in re.captures_iter(t) {
                let (Some(all), Some(n)) = (c.get(0), c.get(1)) else { continue };
                if let Ok(n) = n.as_str().parse::<u32>() {
                    flag(all.start(), all.end(), n.saturating_mul(*per));
                }
            }
        }
        for m in self.promise_fixed.find_iter(t) {
            flag(m.start(), m.end(), self.promise_fixed_hours[m.pattern().as_usize()]);
        }
    }
}
