//! Reply templates: `templates/replies/*.toml`, minijinja with strict undefined.
//!
//! Loading validates everything before anything is used: every step the case logic needs
//! exists, every variant renders with a fixture context, every rendered variant passes the
//! guard with zero findings, and a step for a non-ordering recipient that references order data
//! is refused. Rendering picks a variant stably per conversation and converts to traditional
//! characters when the buyer writes them.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
};

use ferrous_opencc::{OpenCC, config::BuiltinConfig};
use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Deserialize;

use super::{
    catalog::{INTENT_IDS, LoadError},
    guard::{Guard, GuardContext},
    normalize::Normalizer,
};

/// Who a step may be sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recipient {
    /// Only the ordering account: order data allowed.
    Orderer,
    /// Anyone: no order data.
    Anyone,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplyFile {
    steps: BTreeMap<String, StepFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    recipient: Recipient,
    variants: Vec<String>,
    #[serde(default)]
    variants_hant: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallsFile {
    script: ScriptFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptFile {
    steps: Vec<String>,
}

struct Step {
    recipient: Recipient,
    hans: usize,
    hant: usize,
}

/// Variables that only ordering-account steps may use.
const ORDER_VARS: [&str; 2] = ["order", "new_address"];

/// The loaded templates.
pub struct Templates {
    env: Environment<'static>,
    steps: HashMap<String, Step>,
    call_steps: usize,
    s2t: OpenCC,
}

/// A rendering failure (a template that passed loading cannot normally fail).
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// No such step.
    #[error("no template step `{0}`")]
    Unknown(String),
    /// minijinja failed.
    #[error("template `{key}` failed to render: {source}")]
    Render { key: String, source: minijinja::Error },
}

impl Templates {
    /// Loads `dir/replies/*.toml` and `dir/calls.toml` and validates them.
    ///
    /// `required` lists the `intent.step` keys the case logic can ask for; `fixtures` are the
    /// contexts every variant is rendered with (the first is the full one; the others lack the
    /// optional facts, so the branches for a missing fact are rendered too); `guard` checks each
    /// rendering.
    ///
    /// # Errors
    /// Unknown keys, an unknown file name, a missing step, a variant that does not parse or
    /// render, order data in an `anyone` step, a rendering the guard blocks.
    pub fn load(
        dir: &Path,
        required: &[&str],
        fixtures: &[Value],
        guard: &Guard,
        normalizer: &Normalizer,
    ) -> Result<Self, LoadError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .build()
                .map_err(|e| err(dir, "-", format!("template syntax: {e}")))?,
        );
        let mut steps = HashMap::new();
        let replies = dir.join("replies");
        let mut files: Vec<_> = std::fs::read_dir(&replies)
            .map_err(|e| err(&replies, "-", format!("cannot read the replies directory: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for path in &files {
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
            if stem != "common" && !INTENT_IDS.contains(&stem.as_str()) {
                return Err(err(path, "-", format!("unknown file name `{stem}`: use an intent id or `common`")));
            }
            let raw = std::fs::read_to_string(path).map_err(|e| err(path, "-", format!("cannot read: {e}")))?;
            let file: ReplyFile = toml::from_str(&raw).map_err(|e| {
                let at =
                    e.span().map(|s| format!(" (line {})", raw[..s.start].lines().count().max(1))).unwrap_or_default();
                err(path, "-", format!("{}{at}", e.message()))
            })?;
            for (name, step) in file.steps {
                let key = format!("{stem}.{name}");
                if step.variants.is_empty() {
                    return Err(err(path, &format!("steps.{name}.variants"), "needs at least one variant".into()));
                }
                for (script, list) in [("variants", &step.variants), ("variants_hant", &step.variants_hant)] {
                    for (i, src) in list.iter().enumerate() {
                        let tkey = format!("steps.{name}.{script}[{i}]");
                        let tname = template_name(&key, script == "variants_hant", i);
                        env.add_template_owned(tname.clone(), src.clone())
                            .map_err(|e| err(path, &tkey, format!("template does not parse: {e}")))?;
                        let tmpl = env.get_template(&tname).expect("just added");
                        if step.recipient == Recipient::Anyone {
                            let used = tmpl.undeclared_variables(false);
                            if let Some(v) = ORDER_VARS.iter().find(|v| used.contains(**v)) {
                                return Err(err(
                                    path,
                                    &tkey,
                                    format!(
                                        "uses `{v}`, but this step may go to an account that did not place the order"
                                    ),
                                ));
                            }
                        }
                        for (fi, fixture) in fixtures.iter().enumerate() {
                            let rendered = match tmpl.render(fixture) {
                                Ok(r) => r,
                                // A sparse context may lack what a variant needs; the full one may not.
                                Err(_) if fi > 0 => continue,
                                Err(e) => {
                                    return Err(err(
                                        path,
                                        &tkey,
                                        format!("does not render with the fixture context: {e:#}"),
                                    ));
                                }
                            };
                            let ctx = GuardContext {
                                recipient_is_orderer: step.recipient == Recipient::Orderer,
                                return_qualifies: name != "excluded",
                                ..GuardContext::default()
                            };
                            let verdict = guard.check(&rendered, &ctx, normalizer);
                            if !verdict.passed() {
                                let f = &verdict.findings[0];
                                let snippet: String =
                                    rendered.chars().skip(f.span[0]).take(f.span[1] - f.span[0]).collect();
                                return Err(err(
                                    path,
                                    &tkey,
                                    format!("the guard blocks it: {} ({}) at \"{snippet}\"", f.rule, f.message),
                                ));
                            }
                        }
                    }
                }
                steps.insert(
                    key,
                    Step { recipient: step.recipient, hans: step.variants.len(), hant: step.variants_hant.len() },
                );
            }
        }
        for key in required {
            if !steps.contains_key(*key) {
                let (file, step) = key.split_once('.').unwrap_or((key, ""));
                return Err(err(
                    &replies.join(format!("{file}.toml")),
                    &format!("steps.{step}"),
                    "missing: the case logic needs this step".into(),
                ));
            }
        }
        let calls_path = dir.join("calls.toml");
        let raw =
            std::fs::read_to_string(&calls_path).map_err(|e| err(&calls_path, "-", format!("cannot read: {e}")))?;
        let calls: CallsFile = toml::from_str(&raw).map_err(|e| err(&calls_path, "-", e.message().to_owned()))?;
        if calls.script.steps.is_empty() {
            return Err(err(&calls_path, "script.steps", "needs the call script's steps".into()));
        }
        for (i, src) in calls.script.steps.iter().enumerate() {
            let name = format!("calls.script#{i}");
            env.add_template_owned(name.clone(), src.clone()).map_err(|e| {
                err(&calls_path, &format!("script.steps[{i}]"), format!("template does not parse: {e}"))
            })?;
            env.get_template(&name)
                .expect("just added")
                .render(&fixtures[0])
                .map_err(|e| err(&calls_path, &format!("script.steps[{i}]"), format!("does not render: {e:#}")))?;
        }
        let s2t = OpenCC::from_config(BuiltinConfig::S2t)
            .map_err(|e| err(dir, "-", format!("simplified-to-traditional dictionaries failed to load: {e}")))?;
        Ok(Self { env, steps, call_steps: calls.script.steps.len(), s2t })
    }

    /// Who a step may go to.
    #[must_use]
    pub fn recipient(&self, key: &str) -> Option<Recipient> {
        self.steps.get(key).map(|s| s.recipient)
    }

    /// Renders step `key` with `ctx`. `seed` picks the variant (stable per conversation);
    /// `traditional` gives the buyer's script. When the picked variant needs something the
    /// context lacks (order data for a sender who is not known to be the orderer), the next
    /// variant that renders is used, so whether a buyer gets an answer never depends on which
    /// variant their conversation happens to pick.
    ///
    /// # Errors
    /// An unknown step, or no variant renders with this context (the first failure is reported).
    pub fn render(&self, key: &str, ctx: &Value, seed: u64, traditional: bool) -> Result<String, RenderError> {
        let step = self.steps.get(key).ok_or_else(|| RenderError::Unknown(key.to_owned()))?;
        let salted = seed ^ fnv1a(key.as_bytes());
        let (hant, count, convert) =
            if traditional && step.hant > 0 { (true, step.hant, false) } else { (false, step.hans, traditional) };
        let first = (salted % count as u64) as usize;
        let mut failure = None;
        for i in 0..count {
            let name = template_name(key, hant, (first + i) % count);
            let rendered = self.env.get_template(&name).and_then(|t| t.render(ctx));
            match rendered {
                Ok(text) => {
                    let text = text.trim().to_owned();
                    return Ok(if convert { self.s2t.convert(&text) } else { text });
                }
                Err(e) => {
                    failure.get_or_insert(RenderError::Render { key: key.to_owned(), source: e });
                }
            }
        }
        Err(failure.unwrap_or_else(|| RenderError::Unknown(key.to_owned())))
    }

    /// The call script, one rendered line per step.
    ///
    /// # Errors
    /// As [`Templates::render`].
    pub fn call_script(&self, ctx: &Value) -> Result<Vec<String>, RenderError> {
        (0..self.call_steps)
            .map(|i| {
                let name = format!("calls.script#{i}");
                let t =
                    self.env.get_template(&name).map_err(|e| RenderError::Render { key: name.clone(), source: e })?;
                t.render(ctx).map(|s| s.trim().to_owned()).map_err(|e| RenderError::Render { key: name, source: e })
            })
            .collect()
    }
}

fn template_name(key: &str, hant: bool, i: usize) -> String {
    if hant { format!("{key}#hant#{i}") } else { format!("{key}#{i}") }
}

fn err(path: &Path, key: &str, problem: String) -> LoadError {
    LoadError { file: path.to_owned(), key: key.to_owned(), problem }
}

/// FNV-1a: a stable hash (std's hasher is randomly seeded per process).
#[must_use]
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
