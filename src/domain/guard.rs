//! The guard: runs on every outgoing text, the bot's drafts and an agent's own edits alike.
//!
//! What it holds, all of its wording and word lists in `templates/guard.toml`:
//! - **never argue**: ten kinds of arguing (rebuttal, doubt, blame-shifting, rhetorical
//!   questions, lecturing, refusing a right, pressure, sarcasm, brush-off, deflecting to the
//!   platform), each with a Chinese explanation for agents and a softer wording. Two layers: the
//!   rules (phrases and regexes, the explanation an agent reads), then a learned linear model
//!   ([`super::linear`]) trained at load from the shop's labelled replies, which catches what
//!   the rules never saw. Either way a block names the span and the kind;
//! - **never leak**: to anyone but the verified ordering account, none of the order's phone,
//!   address or receiver name, even partially or disguised ([`super::fold`]); phone and ID
//!   numbers and address-like text in any reply to an unverified recipient; internal data
//!   (cost, supplier, other buyers) never;
//! - **never send the buyer away**: no WeChat, QQ, phone or link contact on channels where
//!   that is a platform violation;
//! - **never promise beyond authority or the calendar**: an edit offering more money than the
//!   editor's role may grant; a promise faster than the SLA; a callback the call window
//!   makes impossible.
//!
//! Pure: text and context in, verdict and findings out.

use std::{collections::BTreeMap, path::Path};

use aho_corasick::{AhoCorasick, MatchKind};
use regex::{Regex, RegexSet};
use serde::{Deserialize, Serialize};

use super::{
    catalog::LoadError,
    fold::{Folder, HitKind},
    linear,
    money::Money,
    normalize::{Normalized, Normalizer},
};

/// The kinds of arguing, in a fixed order: the labels of the reply corpora (`argue:<kind>`).
pub const KINDS: [&str; 10] = [
    "rebuttal",
    "doubt",
    "blame_shift",
    "rhetorical",
    "lecturing",
    "refuse_right",
    "pressure",
    "sarcasm",
    "brush_off",
    "deflect_platform",
];

/// The label of off-platform diversion in the reply corpora.
pub const DIVERT: &str = "divert";

/// Most findings of one rule reported for one text (a pasted wall of phone numbers must not
/// turn into a wall of findings).
const MAX_FINDINGS_PER_RULE: usize = 20;

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
    /// The rule: `argue.<kind>`, `leak.<kind>`, `divert.off_platform`, `authority.exceeded`,
    /// `rule.<kind>`.
    pub rule: String,
    /// `[start, end)` in characters of the checked text.
    pub span: [usize; 2],
    /// What is wrong (English, for logs; never contains buyer data).
    pub message: String,
    /// Why, in Chinese, for the agent (from `guard.toml`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explain: Option<String>,
    /// A softer or safe wording to use instead, when the rule has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
    /// `rules` or `model`: which layer found it.
    pub layer: &'static str,
}

/// Who receives the text, who wrote it, and what must be protected.
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
    /// The channel allows contact details off the platform (the shop's own WeChat, say).
    #[serde(default)]
    pub divert_allowed: bool,
    /// The editor's authority, for an agent's edit (none: the bot's draft, checked elsewhere).
    #[serde(skip)]
    pub authority: Option<EditorAuthority>,
    /// Minutes from now until the call window opens (0 while it is open); none: not checked.
    #[serde(default)]
    pub callback_opens_in_minutes: Option<u32>,
}

/// What the editor of a reply may grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditorAuthority {
    /// The editor's role (`agent`, `supervisor`, …).
    pub role: String,
    /// The most the role may grant.
    pub max_amount: Money,
    /// The largest share of the order total, in percent.
    pub max_percent: u32,
    /// The order total, when known.
    pub order_total: Option<Money>,
}

impl EditorAuthority {
    /// The limit on this order: the smaller of the amount and the share of the total.
    #[must_use]
    pub fn limit(&self) -> Money {
        match self.order_total {
            Some(t) => self.max_amount.min(t.percent(self.max_percent)),
            None => self.max_amount,
        }
    }
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

/// One kind of arguing, as an agent reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kind {
    /// The id (`rebuttal`, …).
    pub id: String,
    /// Its Chinese name.
    pub name: String,
    /// English, for logs.
    pub message: String,
    /// Chinese, for agents.
    pub explain: String,
    /// A softer wording.
    pub suggestion: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GuardFile {
    kinds: BTreeMap<String, KindFile>,
    argue: Vec<RuleFile>,
    allow: AllowFile,
    #[serde(default)]
    model: Option<ModelFile>,
    divert: DivertFile,
    authority: AuthorityFile,
    fold: FoldFile,
    leak: LeakFile,
    promise: PromiseFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KindFile {
    name: String,
    message: String,
    explain: String,
    suggestion: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    kind: String,
    /// `always` (the default) or `when_return_qualifies`.
    #[serde(default)]
    applies: Option<String>,
    /// Words that, anywhere in the text, make this group's matches harmless (a refusal that
    /// names its lawful reason: a customised item, fresh food).
    #[serde(default)]
    unless: Vec<String>,
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
struct ModelFile {
    /// The training file, relative to `guard.toml`.
    data: String,
    /// Smallest probability of a kind that blocks.
    threshold: f32,
    /// Training passes (default: the linear model's).
    #[serde(default)]
    epochs: Option<u32>,
    /// L2 penalty (default: the linear model's).
    #[serde(default)]
    l2: Option<f32>,
    /// Extra weight on arguing examples (default: the linear model's).
    #[serde(default)]
    positive_weight: Option<f32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DivertFile {
    message: String,
    explain: String,
    suggestion: String,
    /// Words that, right before a contact mention, make it a refusal to divert.
    #[serde(default)]
    negators: Vec<String>,
    phrases: Vec<String>,
    regexes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthorityFile {
    message: String,
    explain: String,
    suggestion: String,
    regexes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FoldFile {
    /// Digit → the characters that stand for it.
    numerals: BTreeMap<String, String>,
    /// Address marker → its rank (province 0 … room 7).
    address_markers: BTreeMap<String, u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeakFile {
    internal: Vec<String>,
    internal_suggestion: String,
    address_suggestion: String,
    data_suggestion: String,
    min_address_part: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromiseFile {
    /// A regex whose first group is a number, and the hours one unit of it stands for.
    numeric: Vec<NumericPromise>,
    /// Fixed expressions and the hours they promise.
    fixed: BTreeMap<String, u32>,
    suggestion: String,
    /// Regexes that make a promise a callback (checked against the call window).
    callback_cues: Vec<String>,
    /// What to say instead when a callback promise falls outside the call window.
    callback_suggestion: String,
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

/// The learned layer.
struct Learned {
    model: linear::Model,
    threshold: f32,
}

/// The compiled guard.
pub struct Guard {
    kinds: Vec<Kind>,
    /// Phrase pattern → (kind index, applies, group).
    phrases: AhoCorasick,
    phrase_rule: Vec<(usize, Applies, usize)>,
    regexes: Vec<(Regex, usize, Applies, usize)>,
    /// All of `regexes` in one automaton: one scan says which of them to run for spans.
    regex_set: RegexSet,
    /// Per `[[argue]]` group, its `unless` words (normalized).
    unless: Vec<Vec<String>>,
    allow: AhoCorasick,
    learned: Option<Learned>,
    divert_phrases: AhoCorasick,
    divert_regexes: Vec<Regex>,
    /// `divert_regexes` in one automaton (one scan says which to run for spans).
    divert_set: RegexSet,
    divert_negators: Vec<String>,
    divert: KindFile,
    authority_regexes: Vec<Regex>,
    authority: AuthorityFile,
    folder: Folder,
    internal: AhoCorasick,
    leak: LeakFile,
    promise_numeric: Vec<(Regex, u32)>,
    promise_fixed: AhoCorasick,
    promise_fixed_hours: Vec<u32>,
    promise_suggestion: String,
    callback_cues: Vec<Regex>,
    callback_suggestion: String,
}

impl Guard {
    /// Loads `guard.toml` and trains the learned layer from the file its `[model]` names.
    ///
    /// # Errors
    /// Missing or invalid file, unknown keys, a kind missing or unknown, regexes that do not
    /// compile, an unknown `applies`, a bad fold table, a training file that does not parse.
    pub fn load(path: &Path, normalizer: &Normalizer) -> Result<Self, LoadError> {
        let err = |key: &str, problem: String| LoadError { file: path.to_owned(), key: key.to_owned(), problem };
        let raw = std::fs::read_to_string(path).map_err(|e| err("-", format!("cannot read: {e}")))?;
        let file: GuardFile = toml::from_str(&raw).map_err(|e| {
            let at = e.span().map(|s| format!(" (line {})", raw[..s.start].lines().count().max(1))).unwrap_or_default();
            err("-", format!("{}{at}", e.message()))
        })?;
        let norm = |s: &str| normalizer.normalize(s).text;
        let mut kinds = Vec::new();
        for id in KINDS {
            let Some(k) = file.kinds.get(id) else {
                return Err(err(&format!("kinds.{id}"), "missing: every kind of arguing needs its wording".into()));
            };
            for (field, v) in [("name", &k.name), ("explain", &k.explain), ("suggestion", &k.suggestion)] {
                if v.trim().is_empty() {
                    return Err(err(&format!("kinds.{id}.{field}"), "must not be empty".into()));
                }
            }
            kinds.push(Kind {
                id: id.to_owned(),
                name: k.name.clone(),
                message: k.message.clone(),
                explain: k.explain.clone(),
                suggestion: k.suggestion.clone(),
            });
        }
        if let Some(other) = file.kinds.keys().find(|k| !KINDS.contains(&k.as_str())) {
            return Err(err(&format!("kinds.{other}"), format!("unknown kind; the kinds are {}", KINDS.join(", "))));
        }
        let mut pats: Vec<String> = Vec::new();
        let mut phrase_rule = Vec::new();
        let mut regexes = Vec::new();
        let mut unless = Vec::new();
        for (i, r) in file.argue.iter().enumerate() {
            unless.push(r.unless.iter().map(|u| norm(u)).filter(|u| !u.is_empty()).collect());
            let key = format!("argue[{i}]");
            let Some(ki) = KINDS.iter().position(|k| *k == r.kind) else {
                return Err(err(&format!("{key}.kind"), format!("unknown kind `{}`", r.kind)));
            };
            let applies = match r.applies.as_deref().unwrap_or("always") {
                "always" => Applies::Always,
                "when_return_qualifies" => Applies::WhenReturnQualifies,
                other => {
                    return Err(err(
                        &format!("{key}.applies"),
                        format!("`{other}`: expected `always` or `when_return_qualifies`"),
                    ));
                }
            };
            for (j, p) in r.phrases.iter().enumerate() {
                let n = norm(p);
                if n.is_empty() {
                    return Err(err(&format!("{key}.phrases[{j}]"), "empty phrase".into()));
                }
                pats.push(n);
                phrase_rule.push((ki, applies, i));
            }
            for (j, re) in r.regexes.iter().enumerate() {
                let re = Regex::new(re)
                    .map_err(|e| err(&format!("{key}.regexes[{j}]"), format!("regex does not compile: {e}")))?;
                regexes.push((re, ki, applies, i));
            }
        }
        let build = |key: &str, words: Vec<String>| {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(words)
                .map_err(|e| err(key, e.to_string()))
        };
        let compile = |key: &str, res: &[String]| -> Result<Vec<Regex>, LoadError> {
            res.iter()
                .enumerate()
                .map(|(j, r)| {
                    Regex::new(r).map_err(|e| err(&format!("{key}[{j}]"), format!("regex does not compile: {e}")))
                })
                .collect()
        };
        let phrases = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&pats)
            .map_err(|e| err("argue", e.to_string()))?;
        let allow = build("allow.phrases", file.allow.phrases.iter().map(|p| norm(p)).collect())?;
        let internal = build("leak.internal", file.leak.internal.iter().map(|p| norm(p)).collect())?;
        let divert_phrases = build("divert.phrases", file.divert.phrases.iter().map(|p| norm(p)).collect())?;
        let divert_regexes = compile("divert.regexes", &file.divert.regexes)?;
        let authority_regexes = compile("authority.regexes", &file.authority.regexes)?;
        for (j, re) in authority_regexes.iter().enumerate() {
            let names: Vec<&str> = re.capture_names().flatten().collect();
            if !names.contains(&"amount") && !names.contains(&"percent") {
                return Err(err(
                    &format!("authority.regexes[{j}]"),
                    "needs a group named `amount` or `percent`".into(),
                ));
            }
        }
        let mut numerals = Vec::new();
        for (digit, chars) in &file.fold.numerals {
            let d = match digit.as_bytes() {
                [b] if b.is_ascii_digit() => *b as char,
                _ => return Err(err(&format!("fold.numerals.{digit}"), "the key must be one digit 0-9".into())),
            };
            numerals.extend(chars.chars().map(|c| (c, d)));
        }
        let mut markers = Vec::new();
        for (m, rank) in &file.fold.address_markers {
            let mut cs = m.chars();
            match (cs.next(), cs.next()) {
                (Some(c), None) => markers.push((c, *rank)),
                _ => return Err(err(&format!("fold.address_markers.{m}"), "must be a single character".into())),
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
        let callback_cues = compile("promise.callback_cues", &file.promise.callback_cues)?;
        let learned = match &file.model {
            None => None,
            Some(m) => {
                if !(0.0..=1.0).contains(&m.threshold) {
                    return Err(err("model.threshold", "must be between 0 and 1".into()));
                }
                let data = path.parent().unwrap_or(Path::new(".")).join(&m.data);
                let src = std::fs::read_to_string(&data)
                    .map_err(|e| err("model.data", format!("cannot read {}: {e}", data.display())))?;
                let rows = parse_labelled(&src).map_err(|e| LoadError {
                    file: data.clone(),
                    key: format!("line {}", e.line),
                    problem: e.problem,
                })?;
                if let Some(r) = rows.iter().find(|r| r.label == Some(KINDS.len() + 1)) {
                    return Err(LoadError {
                        file: data,
                        key: format!("line {}", r.line),
                        problem: "a training reply needs its kind: `argue:<kind>`".into(),
                    });
                }
                let d = linear::Options::default();
                let options = linear::Options {
                    epochs: m.epochs.unwrap_or(d.epochs),
                    l2: m.l2.unwrap_or(d.l2),
                    positive_weight: m.positive_weight.unwrap_or(d.positive_weight),
                    ..d
                };
                Some(train(&rows, normalizer, m.threshold, &options))
            }
        };
        let divert_negators: Vec<String> = file.divert.negators.iter().map(|n| norm(n)).collect();
        let divert = KindFile {
            name: DIVERT.to_owned(),
            message: file.divert.message,
            explain: file.divert.explain,
            suggestion: file.divert.suggestion,
        };
        Ok(Self {
            kinds,
            phrases,
            phrase_rule,
            regex_set: RegexSet::new(regexes.iter().map(|r| r.0.as_str())).map_err(|e| err("argue", e.to_string()))?,
            regexes,
            unless,
            allow,
            learned,
            divert_phrases,
            divert_set: RegexSet::new(divert_regexes.iter().map(Regex::as_str))
                .map_err(|e| err("divert.regexes", e.to_string()))?,
            divert_regexes,
            divert_negators,
            divert,
            authority_regexes,
            authority: file.authority,
            folder: Folder::new(numerals, markers),
            internal,
            leak: file.leak,
            promise_numeric,
            promise_fixed_hours: file.promise.fixed.values().copied().collect(),
            promise_fixed,
            promise_suggestion: file.promise.suggestion,
            callback_cues,
            callback_suggestion: file.promise.callback_suggestion,
        })
    }

    /// The kinds of arguing, in [`KINDS`] order.
    #[must_use]
    pub fn kinds(&self) -> &[Kind] {
        &self.kinds
    }

    /// The leak folding (for the console's masking of receiver data).
    #[must_use]
    pub fn folder(&self) -> &Folder {
        &self.folder
    }

    /// The shortest part of an address that is protected on its own.
    #[must_use]
    pub fn min_address_part(&self) -> usize {
        self.leak.min_address_part.max(2)
    }

    /// `text` with the order's receiver data (and any phone, ID number or address) masked, the
    /// same folding as the leak checks: what part-time staff see.
    #[must_use]
    pub fn mask(&self, text: &str, protected: &Protected) -> String {
        let needles =
            self.folder.needles(&protected.names, &protected.phones, &protected.addresses, self.min_address_part());
        self.folder.mask(text, &needles)
    }

    /// [`Guard::mask`] with an order's receiver (none: phones, ID numbers and addresses only).
    #[must_use]
    pub fn mask_receiver(&self, text: &str, receiver: Option<&super::event::Receiver>) -> String {
        let protected = Protected {
            names: receiver.and_then(|r| r.name.clone()).into_iter().collect(),
            phones: receiver.and_then(|r| r.phone.clone()).into_iter().collect(),
            addresses: receiver.and_then(|r| r.address.clone()).into_iter().collect(),
        };
        self.mask(text, &protected)
    }

    /// Checks an outgoing text.
    #[must_use]
    pub fn check(&self, text: &str, ctx: &GuardContext, normalizer: &Normalizer) -> Verdict {
        let norm = normalizer.normalize(text);
        let t = norm.text.as_str();
        let mut findings = Vec::new();
        self.argue(&norm, ctx, &mut findings);
        if !ctx.divert_allowed {
            self.diversion(&norm, &mut findings);
        }
        if !findings.iter().any(|f| f.rule.starts_with("argue.") || f.rule.starts_with("divert.")) {
            self.model(&norm, &mut findings);
        }
        for m in self.internal.find_iter(t) {
            let (a, b) = norm.original_span(m.start(), m.end());
            findings.push(Finding {
                rule: "leak.internal".into(),
                span: [a, b],
                message: "mentions internal data (cost, supplier, other buyers, internal notes)".into(),
                explain: None,
                suggestion: Some(self.leak.internal_suggestion.clone()),
                layer: "rules",
            });
        }
        if let Some(auth) = &ctx.authority {
            self.authority(&norm, auth, &mut findings);
        }
        if !ctx.recipient_is_orderer {
            self.leaks(text, ctx, &mut findings);
        }
        self.promises(&norm, ctx, &mut findings);
        findings.sort_by(|a, b| a.span.cmp(&b.span).then_with(|| a.rule.cmp(&b.rule)));
        findings.dedup_by(|a, b| a.span == b.span && a.rule == b.rule);
        let mut per_rule: BTreeMap<String, usize> = BTreeMap::new();
        findings.retain(|f| {
            let n = per_rule.entry(f.rule.clone()).or_default();
            *n += 1;
            *n <= MAX_FINDINGS_PER_RULE
        });
        let verdict = if findings.is_empty() { "pass" } else { "block" };
        Verdict { verdict, findings }
    }

    fn kind_finding(&self, ki: usize, span: [usize; 2], layer: &'static str) -> Finding {
        let k = &self.kinds[ki];
        Finding {
            rule: format!("argue.{}", k.id),
            span,
            message: k.message.clone(),
            explain: Some(k.explain.clone()),
            suggestion: Some(k.suggestion.clone()),
            layer,
        }
    }

    /// The rules of the kinds of arguing.
    fn argue(&self, norm: &Normalized, ctx: &GuardContext, findings: &mut Vec<Finding>) {
        let t = norm.text.as_str();
        let allowed: Vec<(usize, usize)> = self.allow.find_iter(t).map(|m| (m.start(), m.end())).collect();
        let mut push = |ki: usize, applies: Applies, group: usize, s: usize, e: usize| {
            if applies == Applies::WhenReturnQualifies && !ctx.return_qualifies {
                return;
            }
            if self.unless[group].iter().any(|u| t.contains(u.as_str())) {
                return;
            }
            // An allowed phrase that overlaps the match makes it harmless.
            if allowed.iter().any(|&(a, b)| a < e && s < b) {
                return;
            }
            let (a, b) = norm.original_span(s, e);
            findings.push(self.kind_finding(ki, [a, b], "rules"));
        };
        for m in self.phrases.find_overlapping_iter(t) {
            let (ki, applies, group) = self.phrase_rule[m.pattern().as_usize()];
            push(ki, applies, group, m.start(), m.end());
        }
        for i in &self.regex_set.matches(t) {
            let (re, ki, applies, group) = &self.regexes[i];
            for m in re.find_iter(t) {
                push(*ki, *applies, *group, m.start(), m.end());
            }
        }
    }

    /// Contact details that take the buyer off the platform.
    fn diversion(&self, norm: &Normalized, findings: &mut Vec<Finding>) {
        let t = norm.text.as_str();
        let spans = self.divert_phrases.find_iter(t).map(|m| (m.start(), m.end())).chain(
            self.divert_set
                .matches(t)
                .into_iter()
                .flat_map(|i| self.divert_regexes[i].find_iter(t).map(|m| (m.start(), m.end()))),
        );
        for (s, e) in spans {
            // A negator shortly before the mention ("no need to add WeChat") refuses to divert.
            let before: String = {
                let head = &t[..s];
                let from = head.char_indices().rev().nth(7).map_or(0, |(i, _)| i);
                head[from..].to_owned()
            };
            let clause = before.rsplit([',', '.', '!', '?', '~']).next().unwrap_or("");
            if self.divert_negators.iter().any(|n| clause.contains(n.as_str())) {
                continue;
            }
            let (a, b) = norm.original_span(s, e);
            findings.push(self.divert_finding([a, b], "rules"));
        }
    }

    fn divert_finding(&self, span: [usize; 2], layer: &'static str) -> Finding {
        Finding {
            rule: "divert.off_platform".into(),
            span,
            message: self.divert.message.clone(),
            explain: Some(self.divert.explain.clone()),
            suggestion: Some(self.divert.suggestion.clone()),
            layer,
        }
    }

    /// The learned layer: when it is sure the text argues (or diverts), a finding on the
    /// n-grams that weighed most, named with the kind it scored highest.
    fn model(&self, norm: &Normalized, findings: &mut Vec<Finding>) {
        let Some(l) = &self.learned else { return };
        let scores = l.model.scores(&norm.text);
        // The last label is "argues at all" (trained on every arguing reply): it decides; the
        // kinds' own scores name the kind.
        let any = scores[KINDS.len()];
        if any < l.threshold {
            return;
        }
        let Some((ki, _)) =
            scores[..KINDS.len()].iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
        else {
            return;
        };
        let evidence = l.model.evidence(&norm.text, ki, 2);
        // The evidence spans are in characters of the normalized text: map them to the original.
        let byte_at: Vec<usize> = norm.text.char_indices().map(|(b, _)| b).chain([norm.text.len()]).collect();
        let span = evidence
            .iter()
            .map(|g| norm.original_span(byte_at[g.span[0]], byte_at[g.span[1]]))
            .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
            .map_or([0, 0], |(a, b)| [a, b]);
        let mut f = self.kind_finding(ki, span, "model");
        f.message = format!("{} (learned layer, p = {any:.2})", f.message);
        findings.push(f);
    }

    /// Money offered beyond the editor's authority.
    fn authority(&self, norm: &Normalized, auth: &EditorAuthority, findings: &mut Vec<Finding>) {
        let t = norm.text.as_str();
        let limit = auth.limit();
        for re in &self.authority_regexes {
            for c in re.captures_iter(t) {
                let all = c.get(0).expect("group 0");
                let offered = if let Some(a) = c.name("amount") {
                    Money::parse(a.as_str()).ok()
                } else if let Some(p) = c.name("percent") {
                    let p: u32 = p.as_str().parse().unwrap_or(u32::MAX);
                    // A share of an unknown total is beyond any limit but a full one.
                    Some(auth.order_total.map_or(Money(i64::MAX), |t| t.percent(p.min(100))))
                } else {
                    None
                };
                let Some(offered) = offered else { continue };
                if offered > limit {
                    let (a, b) = norm.original_span(all.start(), all.end());
                    let total = auth.order_total.map(|t| format!(" of a {t} order total")).unwrap_or_default();
                    findings.push(Finding {
                        rule: "authority.exceeded".into(),
                        span: [a, b],
                        message: format!(
                            "{} ({}): the {} limit is {limit} yuan ({} yuan or {}%{total})",
                            self.authority.message,
                            if offered.0 == i64::MAX {
                                "a share of an unknown total".to_owned()
                            } else {
                                format!("{offered} yuan")
                            },
                            auth.role,
                            auth.max_amount,
                            auth.max_percent
                        ),
                        explain: Some(self.authority.explain.clone()),
                        suggestion: Some(self.authority.suggestion.clone()),
                        layer: "rules",
                    });
                }
            }
        }
    }

    /// Order data and personal data in a text for someone who is not the ordering account,
    /// on the folded text (disguises undone), with spans in the original.
    fn leaks(&self, text: &str, ctx: &GuardContext, findings: &mut Vec<Finding>) {
        let p = &ctx.protected;
        let needles = self.folder.needles(&p.names, &p.phones, &p.addresses, self.min_address_part());
        for hit in self.folder.find(text, &needles) {
            let (rule, message, suggestion) = match hit.kind {
                HitKind::Phone => ("leak.phone", "contains a phone number", &self.leak.data_suggestion),
                HitKind::IdNumber => ("leak.id_number", "contains an ID number", &self.leak.data_suggestion),
                HitKind::OrderPhone => {
                    ("leak.order_phone", "contains digits of the order's phone", &self.leak.data_suggestion)
                }
                HitKind::ReceiverName => {
                    ("leak.receiver_name", "contains the receiver's name", &self.leak.data_suggestion)
                }
                HitKind::OrderAddress => {
                    ("leak.order_address", "contains part of the order's address", &self.leak.data_suggestion)
                }
                HitKind::Address => ("leak.address", "contains an address", &self.leak.address_suggestion),
            };
            findings.push(Finding {
                rule: rule.into(),
                span: hit.span,
                message: message.into(),
                explain: None,
                suggestion: Some(suggestion.clone()),
                layer: "rules",
            });
        }
    }

    /// Promises faster than the SLA, and callbacks the call window makes impossible.
    fn promises(&self, norm: &Normalized, ctx: &GuardContext, findings: &mut Vec<Finding>) {
        if ctx.min_promise_hours.is_none() && ctx.callback_opens_in_minutes.is_none() {
            return;
        }
        let t = norm.text.as_str();
        let mut found: Vec<(usize, usize, u32)> = Vec::new();
        for (re, per) in &self.promise_numeric {
            for c in re.captures_iter(t) {
                let (Some(all), Some(n)) = (c.get(0), c.get(1)) else { continue };
                if let Ok(n) = n.as_str().parse::<u32>() {
                    found.push((all.start(), all.end(), n.saturating_mul(*per)));
                }
            }
        }
        for m in self.promise_fixed.find_iter(t) {
            found.push((m.start(), m.end(), self.promise_fixed_hours[m.pattern().as_usize()]));
        }
        for (s, e, hours) in found {
            let (a, b) = norm.original_span(s, e);
            if let Some(min) = ctx.min_promise_hours
                && hours < min
            {
                findings.push(Finding {
                    rule: "rule.unkeepable_promise".into(),
                    span: [a, b],
                    message: format!("promises {hours} h; the shop's SLA needs {min} h"),
                    explain: None,
                    suggestion: Some(self.promise_suggestion.clone()),
                    layer: "rules",
                });
            }
            // A callback: a cue within the clause after the promise ("within 4 hours we will call").
            let clause_end = t[e..].find([',', '.', '!', '?', '~']).map_or(t.len(), |i| e + i);
            let callback = self.callback_cues.iter().any(|re| re.is_match(&t[e..clause_end]));
            if let Some(opens) = ctx.callback_opens_in_minutes
                && callback
                && u64::from(hours) * 60 < u64::from(opens)
            {
                findings.push(Finding {
                    rule: "rule.callback_outside_window".into(),
                    span: [a, b],
                    message: format!(
                        "promises a callback within {hours} h; the call window opens in {} h {} min",
                        opens / 60,
                        opens % 60
                    ),
                    explain: None,
                    suggestion: Some(self.callback_suggestion.clone()),
                    layer: "rules",
                });
            }
        }
    }
}

/// A labelled reply: `ok`, `argue:<kind>` or `divert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labelled {
    /// 1-based line number.
    pub line: usize,
    /// `None` for `ok`; a kind index into [`KINDS`]; [`KINDS`]`.len()` for divert;
    /// [`KINDS`]`.len() + 1` for a bare `argue` (older files, no kind given).
    pub label: Option<usize>,
    /// Where the reply comes from (`seed:000`, a corpus name), when the file says.
    pub source: String,
    /// The reply.
    pub text: String,
}

impl Labelled {
    /// The label as written (`ok`, `argue:doubt`, `divert`).
    #[must_use]
    pub fn label_name(&self) -> String {
        match self.label {
            None => "ok".into(),
            Some(i) if i == KINDS.len() => DIVERT.into(),
            Some(i) if i > KINDS.len() => "argue".into(),
            Some(i) => format!("argue:{}", KINDS[i]),
        }
    }
}

/// A malformed line of a labelled replies file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct LabelError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub problem: String,
}

/// Parses `LABEL<TAB>SOURCE<TAB>TEXT` or `LABEL<TAB>TEXT` lines; `#` comments and blank lines
/// are skipped. LABEL is `ok`, `argue:<kind>` or `divert`.
///
/// # Errors
/// A line without a tab, an empty text, an unknown label or kind.
pub fn parse_labelled(src: &str) -> Result<Vec<Labelled>, LabelError> {
    let mut out = Vec::new();
    for (i, raw) in src.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim_end_matches('\r');
        if l.trim().is_empty() || l.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = l.splitn(3, '\t').collect();
        let (label, source, text) = match cols.as_slice() {
            [label, text] => (*label, "", *text),
            [label, source, text] => (*label, *source, *text),
            _ => return Err(LabelError { line, problem: "expected `LABEL<TAB>SOURCE<TAB>TEXT`: no tab found".into() }),
        };
        if text.trim().is_empty() {
            return Err(LabelError { line, problem: "empty text".into() });
        }
        let label = match label.trim() {
            "ok" => None,
            "divert" => Some(KINDS.len()),
            "argue" => Some(KINDS.len() + 1),
            l => match l.strip_prefix("argue:") {
                Some(k) => match KINDS.iter().position(|x| *x == k) {
                    Some(i) => Some(i),
                    None => {
                        return Err(LabelError {
                            line,
                            problem: format!("unknown kind `{k}`; the kinds are {}", KINDS.join(", ")),
                        });
                    }
                },
                None => {
                    return Err(LabelError {
                        line,
                        problem: format!("unknown label `{l}`; use `ok`, `argue:<kind>` or `divert`"),
                    });
                }
            },
        };
        out.push(Labelled { line, label, source: source.trim().to_owned(), text: text.to_owned() });
    }
    Ok(out)
}

/// Trains the learned layer (deterministic: same rows, same model). Diversion is left to the
/// rules (contact details are regular, and whether they may be given depends on the channel and
/// on whose number it is): its rows train the model as replies that do not argue.
fn train(rows: &[Labelled], normalizer: &Normalizer, threshold: f32, options: &linear::Options) -> Learned {
    let texts: Vec<String> = rows.iter().map(|r| normalizer.normalize(&r.text).text).collect();
    // Each arguing reply carries its kind and the last label, "argues at all".
    let any = KINDS.len();
    let label_sets: Vec<Vec<usize>> =
        rows.iter().map(|r| r.label.filter(|&k| k < KINDS.len()).map_or_else(Vec::new, |k| vec![k, any])).collect();
    let examples: Vec<linear::Example<'_>> =
        texts.iter().zip(&label_sets).map(|(t, l)| linear::Example { text: t, labels: l }).collect();
    let mut names: Vec<&str> = KINDS.to_vec();
    names.push("any");
    let model = linear::train(&examples, &names, options);
    Learned { model, threshold }
}
