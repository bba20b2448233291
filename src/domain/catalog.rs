//! The intent catalog: the `intents/` directory loaded, validated and compiled.
//!
//! Owns reading the intent files (one TOML file per intent id, `catalog.toml` for the
//! shared settings and tie rules) and turning them into one Aho-Corasick automaton and one
//! regex set over all intents. Loading either succeeds completely or fails with an error that
//! names the file, the key and the problem; nothing half-loaded is ever used.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    path::{Path, PathBuf},
};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use serde::Deserialize;

use super::normalize::{NormalizeError, Normalizer};

/// The intent ids of the contract (docs/design.md), in their canonical order.
pub const INTENT_IDS: [&str; 18] = [
    "rotten_food",
    "wrong_item",
    "address_change",
    "order_info_query",
    "no_reason_return",
    "damaged_item",
    "missing_item",
    "quality_issue",
    "not_received",
    "shipping_urge",
    "refund_progress",
    "return_howto",
    "invoice",
    "price_difference",
    "gift_missing",
    "complaint",
    "human_agent",
    "greeting",
];

/// An index into [`INTENT_IDS`].
pub type IntentIdx = u8;

/// Returns the index of an intent id of the contract.
#[must_use]
pub fn intent_index(id: &str) -> Option<IntentIdx> {
    INTENT_IDS.iter().position(|i| *i == id).map(|i| i as IntentIdx)
}

/// A problem found while loading the intent catalog: which file, which key, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The file at fault.
    pub file: PathBuf,
    /// The key path inside the file (`cues[1].phrases[3]`), or `-` for the file as a whole.
    pub key: String,
    /// What is wrong, and what to do about it.
    pub problem: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: key `{}`: {}", self.file.display(), self.key, self.problem)
    }
}

impl std::error::Error for LoadError {}

impl LoadError {
    fn new(file: &Path, key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { file: file.to_owned(), key: key.into(), problem: problem.into() }
    }
}

impl From<NormalizeError> for LoadError {
    fn from(e: NormalizeError) -> Self {
        match e {
            NormalizeError::Override { file, key, problem } => Self { file: file.into(), key, problem },
            other => Self { file: PathBuf::from("-"), key: "-".into(), problem: other.to_string() },
        }
    }
}

/// What a pattern of the automaton means for one intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Evidence for the intent, with the index of its cue group.
    Cue(u16),
    /// Voids the intent's evidence it overlaps ("not spoiled").
    Negation,
    /// Vetoes the intent for the whole message ("no need to refund").
    Exclusion,
}

/// One claim of a pattern: this intent, in this role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// The intent the pattern speaks for.
    pub intent: IntentIdx,
    /// How it speaks for it.
    pub role: Role,
}

/// A group of phrases and regexes sharing one weight.
#[derive(Debug, Clone)]
pub struct Cue {
    /// Probability-like strength in (0, 1]; several cues combine as a noisy-OR.
    pub weight: f32,
    /// A boost only counts when a non-boost cue of the same intent matched.
    pub boost: bool,
}

/// One compiled intent.
#[derive(Debug, Clone)]
pub struct Intent {
    /// The contract id.
    pub id: &'static str,
    /// Cue groups, indexed by [`Role::Cue`].
    pub cues: Vec<Cue>,
    /// Intents this one gives way to when both are found; `*` means any other.
    pub yields_to: Vec<YieldTo>,
    /// Examples that must (positive) or must not (negative) be classified as this intent.
    pub examples: Examples,
    /// Where it was loaded from.
    pub file: PathBuf,
}

/// Which intents an intent gives way to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YieldTo {
    /// Any other intent found in the message.
    Any,
    /// This one.
    Intent(IntentIdx),
}

/// Messages kept with an intent and run as tests.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Examples {
    /// Messages that must carry the intent.
    #[serde(default)]
    pub positive: Vec<String>,
    /// Messages that must not carry it.
    #[serde(default)]
    pub negative: Vec<String>,
}

/// A regex of a cue group.
#[derive(Debug, Clone)]
pub struct CueRegex {
    /// The intent it speaks for.
    pub intent: IntentIdx,
    /// Its cue group.
    pub cue: u16,
    /// The compiled regex.
    pub regex: regex_automata::meta::Regex,
    /// Its source, for evidence and errors.
    pub source: String,
}

/// The whole catalog, compiled.
pub struct Catalog {
    /// The 18 intents in [`INTENT_IDS`] order.
    pub intents: Vec<Intent>,
    /// Minimum score for an intent to be reported.
    pub threshold: f32,
    /// Every distinct pattern string, indexed like the automaton's pattern ids.
    pub patterns: Vec<String>,
    /// The claims of each pattern.
    pub claims: Vec<Vec<Claim>>,
    /// For each pattern, the regexes it triggers: a literal every match of those regexes must
    /// start with. The regexes run only where the automaton saw one of their literals.
    pub triggers: Vec<Vec<u32>>,
    /// Regexes with no literal prefix, run on every message.
    pub untriggered: Vec<u32>,
    /// One automaton over all patterns.
    pub automaton: AhoCorasick,
    /// The same regexes, one by one, for spans.
    pub regexes: Vec<CueRegex>,
    /// The normalizer (the override table lives under `intents/normalize/`).
    pub normalizer: Normalizer,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    threshold: f32,
    #[serde(default)]
    ties: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IntentFile {
    id: String,
    #[serde(default)]
    #[allow(dead_code)]
    description: String,
    #[serde(default)]
    yields_to: Vec<String>,
    #[serde(default)]
    negations: Vec<String>,
    #[serde(default)]
    exclusions: Vec<String>,
    #[serde(default)]
    cues: Vec<CueFile>,
    #[serde(default)]
    examples: Examples,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CueFile {
    weight: f32,
    #[serde(default)]
    boost: bool,
    #[serde(default)]
    phrases: Vec<String>,
    #[serde(default)]
    regexes: Vec<String>,
}

const CATALOG_KEYS: &[&str] = &["threshold", "ties"];
const INTENT_KEYS: &[&str] = &["id", "description", "yields_to", "negations", "exclusions", "cues", "examples"];
const CUE_KEYS: &[&str] = &["weight", "boost", "phrases", "regexes"];
const EXAMPLE_KEYS: &[&str] = &["positive", "negative"];

/// Files in the intents directory that are not intent files.
const NON_INTENT_FILES: &[&str] = &["catalog.toml", "entities.toml", "dialogue.toml"];

/// How a phrase claimed by several intents is settled (`[ties]` in `catalog.toml`).
enum Tie {
    Both,
    Winner(IntentIdx),
}

impl Catalog {
    /// Loads and compiles the catalog in `dir`.
    ///
    /// # Errors
    /// Any file missing, unreadable or invalid: an unknown intent id, an unknown key, an
    /// empty phrase, a regex that does not compile, a weight outside (0, 1], a phrase claimed
    /// by two intents without a tie rule. The error names the file and the key.
    pub fn load(dir: &Path) -> Result<Self, LoadError> {
        let normalizer = Normalizer::load(&dir.join("normalize").join("t2s_overrides.toml"))?;

        let catalog_path = dir.join("catalog.toml");
        let table = read_table(&catalog_path)?;
        check_keys(&catalog_path, "", &table, CATALOG_KEYS)?;
        let catalog: CatalogFile = parse(&catalog_path, table)?;
        if !(0.0..=1.0).contains(&catalog.threshold) {
            return Err(LoadError::new(&catalog_path, "threshold", "must be between 0 and 1"));
        }

        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| LoadError::new(dir, "-", format!("cannot read the intents directory: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .filter(|p| !p.file_name().is_some_and(|n| NON_INTENT_FILES.iter().any(|x| n == *x)))
            .collect();
        files.sort();

        let mut loaded: Vec<Option<(IntentFile, PathBuf)>> = (0..INTENT_IDS.len()).map(|_| None).collect();
        for path in files {
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
            let Some(idx) = intent_index(&stem) else {
                return Err(LoadError::new(
                    &path,
                    "-",
                    format!("unknown intent id `{stem}` (file name); known ids: {}", INTENT_IDS.join(", ")),
                ));
            };
            let table = read_table(&path)?;
            check_intent_keys(&path, &table)?;
            let file: IntentFile = parse(&path, table)?;
            if file.id != stem {
                return Err(LoadError::new(
                    &path,
                    "id",
                    format!("id `{}` does not match the file name `{stem}.toml`", file.id),
                ));
            }
            loaded[idx as usize] = Some((file, path));
        }
        if let Some(missing) = loaded.iter().position(Option::is_none) {
            let id = INTENT_IDS[missing];
            return Err(LoadError::new(
                &dir.join(format!("{id}.toml")),
                "-",
                "missing: every intent id needs its file",
            ));
        }

        let mut ties: HashMap<String, Tie> = HashMap::new();
        for (phrase, rule) in &catalog.ties {
            let key = format!("ties.{phrase}");
            let tie = match rule.as_str() {
                "both" => Tie::Both,
                id => Tie::Winner(intent_index(id).ok_or_else(|| {
                    LoadError::new(&catalog_path, &key, format!("`{id}` is neither `both` nor a known intent id"))
                })?),
            };
            ties.insert(normalizer.normalize(phrase).text, tie);
        }

        let mut builder = Builder::default();
        let mut intents = Vec::with_capacity(INTENT_IDS.len());
        for (idx, slot) in loaded.into_iter().enumerate() {
            let (file, path) = slot.expect("checked above");
            intents.push(builder.add_intent(idx as IntentIdx, file, path, &normalizer)?);
        }
        let (mut patterns, mut claims) = builder.settle_ties(&intents, &ties, &catalog_path)?;
        let (triggers, untriggered) = attach_triggers(&builder.regexes, &mut patterns, &mut claims);

        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&patterns)
            .map_err(|e| LoadError::new(&catalog_path, "-", format!("cannot build the phrase automaton: {e}")))?;

        Ok(Self {
            intents,
            threshold: catalog.threshold,
            patterns,
            claims,
            triggers,
            untriggered,
            automaton,
            regexes: builder.regexes,
            normalizer,
        })
    }

    /// All distinct phrases (normalized) of every intent's cues, the set a bare scan uses.
    #[must_use]
    pub fn cue_phrases(&self) -> Vec<&str> {
        self.patterns
            .iter()
            .zip(&self.claims)
            .filter(|(_, c)| c.iter().any(|c| matches!(c.role, Role::Cue(_))))
            .map(|(p, _)| p.as_str())
            .collect()
    }
}

/// Most prefix literals kept per regex before it is treated as untriggered.
const MAX_TRIGGERS: usize = 64;

/// Gives every regex the literals its matches must start with, added to the automaton's
/// patterns (without claims of their own when they are new), so the regexes run only where
/// the automaton saw one of them.
fn attach_triggers(
    regexes: &[CueRegex],
    patterns: &mut Vec<String>,
    claims: &mut Vec<Vec<Claim>>,
) -> (Vec<Vec<u32>>, Vec<u32>) {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    let mut index: HashMap<String, usize> = patterns.iter().enumerate().map(|(i, p)| (p.clone(), i)).collect();
    let mut triggers: Vec<Vec<u32>> = vec![Vec::new(); patterns.len()];
    let mut untriggered = Vec::new();
    for (ri, r) in regexes.iter().enumerate() {
        let seq = regex_syntax::Parser::new().parse(&r.source).ok().map(|h| {
            let mut x = Extractor::new();
            x.kind(ExtractKind::Prefix).limit_total(MAX_TRIGGERS);
            x.extract(&h)
        });
        let lits: Option<Vec<String>> = seq.as_ref().and_then(|s| s.literals()).and_then(|ls| {
            ls.iter().map(|l| String::from_utf8(l.as_bytes().to_vec()).ok().filter(|s| !s.is_empty())).collect()
        });
        let Some(lits) = lits.filter(|l| !l.is_empty()) else {
            untriggered.push(ri as u32);
            continue;
        };
        for lit in lits {
            let pi = *index.entry(lit.clone()).or_insert_with(|| {
                patterns.push(lit);
                claims.push(Vec::new());
                triggers.push(Vec::new());
                patterns.len() - 1
            });
            if !triggers[pi].contains(&(ri as u32)) {
                triggers[pi].push(ri as u32);
            }
        }
    }
    (triggers, untriggered)
}

#[derive(Default)]
struct Builder {
    /// pattern text → (claims, where each was declared: file and key)
    patterns: BTreeMap<String, Vec<(Claim, PathBuf, String)>>,
    regexes: Vec<CueRegex>,
}

impl Builder {
    fn add_intent(
        &mut self,
        idx: IntentIdx,
        file: IntentFile,
        path: PathBuf,
        normalizer: &Normalizer,
    ) -> Result<Intent, LoadError> {
        let mut cues = Vec::with_capacity(file.cues.len());
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut add = |this: &mut Self, raw: &str, key: String, role: Role| -> Result<(), LoadError> {
            if raw.trim().is_empty() {
                return Err(LoadError::new(&path, &key, "empty phrase"));
            }
            let norm = normalizer.normalize(raw).text;
            if norm.is_empty() {
                return Err(LoadError::new(&path, &key, format!("phrase `{raw}` is empty once normalized")));
            }
            if let Some(prev) = seen.insert(norm.clone(), key.clone()) {
                return Err(LoadError::new(
                    &path,
                    &key,
                    format!("phrase `{raw}` is already listed at `{prev}` (after normalization: `{norm}`)"),
                ));
            }
            this.patterns.entry(norm).or_default().push((Claim { intent: idx, role }, path.clone(), key));
            Ok(())
        };
        for (ci, cue) in file.cues.iter().enumerate() {
            let key = format!("cues[{ci}]");
            if !(cue.weight > 0.0 && cue.weight <= 1.0) {
                return Err(LoadError::new(&path, format!("{key}.weight"), "must be in (0, 1]"));
            }
            if cue.phrases.is_empty() && cue.regexes.is_empty() {
                return Err(LoadError::new(&path, &key, "a cue needs at least one phrase or regex"));
            }
            for (pi, phrase) in cue.phrases.iter().enumerate() {
                add(self, phrase, format!("{key}.phrases[{pi}]"), Role::Cue(ci as u16))?;
            }
            for (ri, re) in cue.regexes.iter().enumerate() {
                let rkey = format!("{key}.regexes[{ri}]");
                if re.trim().is_empty() {
                    return Err(LoadError::new(&path, &rkey, "empty regex"));
                }
                let regex = regex_automata::meta::Regex::new(re)
                    .map_err(|e| LoadError::new(&path, &rkey, format!("regex does not compile: {e}")))?;
                self.regexes.push(CueRegex { intent: idx, cue: ci as u16, regex, source: re.clone() });
            }
            cues.push(Cue { weight: cue.weight, boost: cue.boost });
        }
        if cues.iter().all(|c| c.boost) {
            return Err(LoadError::new(&path, "cues", "needs at least one cue group that is not a boost"));
        }
        for (ni, phrase) in file.negations.iter().enumerate() {
            add(self, phrase, format!("negations[{ni}]"), Role::Negation)?;
        }
        for (ei, phrase) in file.exclusions.iter().enumerate() {
            add(self, phrase, format!("exclusions[{ei}]"), Role::Exclusion)?;
        }
        let mut yields_to = Vec::with_capacity(file.yields_to.len());
        for (yi, id) in file.yields_to.iter().enumerate() {
            yields_to.push(match id.as_str() {
                "*" => YieldTo::Any,
                other => YieldTo::Intent(intent_index(other).ok_or_else(|| {
                    LoadError::new(&path, format!("yields_to[{yi}]"), format!("unknown intent id `{other}`"))
                })?),
            });
        }
        Ok(Intent { id: INTENT_IDS[idx as usize], cues, yields_to, examples: file.examples, file: path })
    }

    fn settle_ties(
        &mut self,
        intents: &[Intent],
        ties: &HashMap<String, Tie>,
        catalog_path: &Path,
    ) -> Result<(Vec<String>, Vec<Vec<Claim>>), LoadError> {
        let mut patterns = Vec::with_capacity(self.patterns.len());
        let mut claims = Vec::with_capacity(self.patterns.len());
        for (text, entries) in std::mem::take(&mut self.patterns) {
            let cue_claimers: Vec<IntentIdx> =
                entries.iter().filter(|(c, _, _)| matches!(c.role, Role::Cue(_))).map(|(c, _, _)| c.intent).collect();
            let mut kept: Vec<Claim> = entries.iter().map(|(c, _, _)| *c).collect();
            if cue_claimers.len() > 1 {
                match ties.get(&text) {
                    Some(Tie::Both) => {}
                    Some(Tie::Winner(w)) if cue_claimers.contains(w) => {
                        kept.retain(|c| !matches!(c.role, Role::Cue(_)) || c.intent == *w);
                    }
                    Some(Tie::Winner(w)) => {
                        return Err(LoadError::new(
                            catalog_path,
                            format!("ties.{text}"),
                            format!(
                                "winner `{}` does not list this phrase; it is claimed by {}",
                                INTENT_IDS[*w as usize],
                                names(intents, &cue_claimers)
                            ),
                        ));
                    }
                    None => {
                        let (_, file, key) = entries
                            .iter()
                            .rev()
                            .find(|(c, _, _)| matches!(c.role, Role::Cue(_)))
                            .expect("two claimers");
                        return Err(LoadError::new(
                            file,
                            key,
                            format!(
                                "phrase `{text}` is claimed by {}: add a tie rule in catalog.toml [ties] (`both` or the winning intent id), or remove it from one file",
                                names(intents, &cue_claimers)
                            ),
                        ));
                    }
                }
            }
            patterns.push(text);
            claims.push(kept);
        }
        Ok((patterns, claims))
    }
}

fn names(intents: &[Intent], idx: &[IntentIdx]) -> String {
    idx.iter().map(|i| intents[*i as usize].id).collect::<Vec<_>>().join(" and ")
}

fn read_table(path: &Path) -> Result<toml::Table, LoadError> {
    let raw = std::fs::read_to_string(path).map_err(|e| LoadError::new(path, "-", format!("cannot read: {e}")))?;
    raw.parse::<toml::Table>().map_err(|e| {
        let at = e.span().map(|s| line_of(&raw, s.start)).map(|l| format!(" (line {l})")).unwrap_or_default();
        LoadError::new(path, "-", format!("not valid TOML{at}: {}", e.message()))
    })
}

fn line_of(raw: &str, byte: usize) -> usize {
    raw[..byte.min(raw.len())].bytes().filter(|b| *b == b'\n').count() + 1
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path, table: toml::Table) -> Result<T, LoadError> {
    T::deserialize(table).map_err(|e| LoadError::new(path, "-", e.message().to_owned()))
}

fn check_keys(path: &Path, prefix: &str, table: &toml::Table, allowed: &[&str]) -> Result<(), LoadError> {
    for key in table.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(LoadError::new(
                path,
                format!("{prefix}{key}"),
                format!("unknown key; expected one of: {}", allowed.join(", ")),
            ));
        }
    }
    Ok(())
}

fn check_intent_keys(path: &Path, table: &toml::Table) -> Result<(), LoadError> {
    check_keys(path, "", table, INTENT_KEYS)?;
    if let Some(toml::Value::Array(cues)) = table.get("cues") {
        for (i, cue) in cues.iter().enumerate() {
            if let toml::Value::Table(t) = cue {
                check_keys(path, &format!("cues[{i}]."), t, CUE_KEYS)?;
            }
        }
    }
    if let Some(toml::Value::Table(t)) = table.get("examples") {
        check_keys(path, "examples.", t, EXAMPLE_KEYS)?;
    }
    Ok(())
}
