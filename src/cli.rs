//! The command line: argument parsing and the commands that only need the pure core.
//!
//! Output contract (docs/design.md): JSON on stdout, one object per message; diagnostics on
//! stderr; exit code 0 on success, 1 when a check fails (eval below `--min-macro-f1`, a bad
//! input line in batch mode), 2 on usage or load errors.

use std::{
    io::{self, BufRead, Read, Write},
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::{
    domain::{
        Understanding,
        case::Case,
        draft::Assistant,
        event::InboundEvent,
        guard::{GuardContext, Protected},
    },
    eval,
};

/// shouhou: after-sales assistant for Chinese e-commerce shops.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    /// The intents directory (intent files, entities.toml, normalize/). Defaults to ./intents,
    /// or the one shipped with the source tree when ./intents does not exist.
    #[arg(long, global = true, env = "SHOUHOU_INTENTS", value_name = "DIR")]
    pub intents: Option<PathBuf>,

    /// The templates directory (reply templates, guard.toml). Defaults to ./templates, or the
    /// one shipped with the source tree when ./templates does not exist.
    #[arg(long, global = true, env = "SHOUHOU_TEMPLATES", value_name = "DIR")]
    pub templates: Option<PathBuf>,

    /// The shop's configuration file. Defaults to ./shouhou.toml, or the example shipped with
    /// the source tree when ./shouhou.toml does not exist.
    #[arg(long, global = true, env = "SHOUHOU_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Classify a message and print {"normalized", "intents", "entities", "tone"} as JSON.
    /// With `-`, read one message per line from stdin and write one JSON object per line.
    Classify {
        /// The message, or `-` for one message per line on stdin.
        text: String,
    },
    /// Score the classifier on a labelled file of `intent<TAB>text` lines.
    Eval {
        /// The labelled file (`a|b` for several intents, `other` for none, `#` comments).
        file: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Exit with status 1 when macro-F1 is below this.
        #[arg(long, value_name = "F1")]
        min_macro_f1: Option<f64>,
        /// How many confusions to list in the text report.
        #[arg(long, default_value_t = 15)]
        top: usize,
    },
    /// Score the guard on a labelled file of `argue|ok<TAB>reply` lines: recall on arguing
    /// replies, false positives on acceptable ones.
    EvalGuard {
        /// The labelled replies file.
        file: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Draft the answer to one inbound event (JSON on stdin): intents, route, reply, actions
    /// and the guard's verdict.
    Draft {
        /// The case state so far (the `case` of the previous draft), as a JSON file.
        #[arg(long, value_name = "FILE")]
        case: Option<PathBuf>,
        /// The time to draft at (RFC 3339); defaults to the event's `sent_at`, else now.
        #[arg(long)]
        at: Option<jiff::Timestamp>,
    },
    /// Run the guard on an outgoing reply; prints {"verdict", "findings"} and exits 1 when
    /// blocked. Without `--event` or `--to-orderer` the recipient is treated as unverified.
    Check {
        /// The reply text.
        text: String,
        /// An inbound event (JSON file) giving the recipient and the order data to protect.
        #[arg(long, value_name = "FILE")]
        event: Option<PathBuf>,
        /// The recipient is the ordering account.
        #[arg(long)]
        to_orderer: bool,
        /// A receiver name to protect (repeatable).
        #[arg(long = "protect-name", value_name = "NAME")]
        protect_name: Vec<String>,
        /// A phone number to protect (repeatable).
        #[arg(long = "protect-phone", value_name = "PHONE")]
        protect_phone: Vec<String>,
        /// An address to protect (repeatable).
        #[arg(long = "protect-address", value_name = "ADDRESS")]
        protect_address: Vec<String>,
        /// The order's items are excluded from 7-day no-reason returns (a refusal is allowed).
        #[arg(long)]
        return_excluded: bool,
    },
    /// Run a whole conversation offline: a JSONL file of inbound events (each with `sent_at`,
    /// each with the order as it stands at that turn), drafted in order with the case carried
    /// along. Prints a transcript, or JSON per turn, or (`--auto`) only what would have gone out
    /// automatically with the share of automatic answers per intent.
    Replay {
        /// The conversation file(s).
        #[arg(required = true)]
        file: Vec<PathBuf>,
        /// One JSON object per turn instead of the transcript.
        #[arg(long, conflicts_with = "auto")]
        json: bool,
        /// Only the replies that would have been sent without a person, then the share of
        /// messages answered automatically per intent found.
        #[arg(long)]
        auto: bool,
    },
    /// Load and validate every data file (intents, templates, guard, config) and report.
    Validate,
    /// Run the service: signed intake on /v1/events, the pipeline, the platform sender, the
    /// REST API and the agent console at /console. Secrets come from the environment: SHOUHOU_SHOP_SECRETS
    /// (`shop-1=whsec_…|whsec_…,shop-2=whsec_…`) and SHOUHOU_API_TOKENS (`token=role,…`).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "SHOUHOU_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// sqlite://FILE (default, created and migrated on start) or postgres://…
        #[arg(long, env = "SHOUHOU_DATABASE_URL", default_value = "sqlite://shouhou.db")]
        database_url: String,
        /// Where replies are POSTed (JSON with an Idempotency-Key header).
        #[arg(long, env = "SHOUHOU_PLATFORM_URL", default_value = "http://127.0.0.1:9090/send")]
        platform_url: String,
        /// Processor tasks.
        #[arg(long, default_value_t = 2)]
        processors: usize,
        /// Replies per second per shop to the platform.
        #[arg(long, default_value_t = 20)]
        rate_per_shop: u32,
        /// Name of this instance in claims (defaults to host and pid).
        #[arg(long, env = "SHOUHOU_INSTANCE")]
        instance: Option<String>,
        /// Run the built-in demo: a fake platform and the demo conversations, on a temporary
        /// SQLite database; prints a line per event and exits (see --keep-running).
        #[arg(long)]
        demo: bool,
        /// With --demo: keep serving after the conversations are played.
        #[arg(long)]
        keep_running: bool,
        /// Log as JSON lines.
        #[arg(long)]
        log_json: bool,
    },
    /// Call policy: may the buyer be phoned now?
    Calls {
        #[command(subcommand)]
        command: CallsCommand,
    },
    /// Console users: `shouhou user add NAME --role agent` (the password is read from
    /// SHOUHOU_USER_PASSWORD, or else from the first line of stdin).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Classify the demo messages and show what shouhou understands of each.
    Demo {
        /// A file with one message per line (defaults to demo/messages.txt beside the intents).
        file: Option<PathBuf>,
    },
}

/// `shouhou user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a console user, or set an existing user's password and role (ending their
    /// sessions). Prints {"user", "role", "created"}.
    Add {
        /// Login name (letters, digits, `_`, `.`, `-`).
        name: String,
        /// part_time, agent, supervisor or admin.
        #[arg(long)]
        role: String,
        /// The service's database (the same as `serve --database-url`).
        #[arg(long, env = "SHOUHOU_DATABASE_URL", default_value = "sqlite://shouhou.db")]
        database_url: String,
    },
}

/// `shouhou calls …`
#[derive(Debug, Subcommand)]
pub enum CallsCommand {
    /// Check a proposed call time; prints {"allowed", "reason", "next_allowed_at"} and exits 1
    /// when the call is not allowed.
    Check {
        /// The proposed call time, RFC 3339 with an offset (2026-11-22T10:15:00+08:00).
        #[arg(long)]
        at: jiff::Timestamp,
        /// The buyer's time zone (IANA name).
        #[arg(long, default_value = "Asia/Shanghai")]
        tz: String,
        /// Attempts already made for the case.
        #[arg(long, default_value_t = 0)]
        attempts: u32,
        /// When the latest attempt was (RFC 3339).
        #[arg(long)]
        last: Option<jiff::Timestamp>,
        /// Every earlier attempt time, when known (repeatable); counts toward the daily limit.
        #[arg(long = "history", value_name = "RFC3339")]
        history: Vec<jiff::Timestamp>,
        /// The shop's most attempts per case (2 or 3; never more than 3).
        #[arg(long, default_value_t = 3)]
        max_attempts: u32,
        /// The shop's window, buyer-local; may narrow 10:00-18:00, never widen it.
        #[arg(long, default_value = "10:00-18:00")]
        window: String,
        /// Minimum minutes between two attempts.
        #[arg(long, default_value_t = 120)]
        min_gap_minutes: i64,
        /// Most attempts on one day (1 or 2).
        #[arg(long, default_value_t = 2)]
        per_day: u32,
    },
}

/// Where the intents live when `--intents` is not given.
#[must_use]
pub fn default_intents_dir() -> PathBuf {
    default_dir("intents", "catalog.toml")
}

/// Where the templates live when `--templates` is not given.
#[must_use]
pub fn default_templates_dir() -> PathBuf {
    default_dir("templates", "guard.toml")
}

/// Where the config lives when `--config` is not given.
#[must_use]
pub fn default_config() -> PathBuf {
    let local = PathBuf::from("shouhou.toml");
    if local.exists() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("shouhou.toml")
}

fn default_dir(name: &str, marker: &str) -> PathBuf {
    let local = PathBuf::from(name);
    if local.join(marker).exists() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

fn load(dir: &Path) -> Result<Understanding> {
    Understanding::load(dir).with_context(|| format!("cannot load the intent catalog from {}", dir.display()))
}

/// Runs a parsed command line; returns the process exit code.
///
/// # Errors
/// Load and I/O failures (usage errors are clap's).
pub fn run(cli: Cli) -> Result<u8> {
    let dir = cli.intents.clone().unwrap_or_else(default_intents_dir);
    let templates = cli.templates.clone().unwrap_or_else(default_templates_dir);
    let config = cli.config.clone().unwrap_or_else(default_config);
    let assistant = || Assistant::load(&dir, &templates, &config).context("cannot load the assistant's data files");
    match cli.command {
        Command::Classify { text } => {
            let u = load(&dir)?;
            if text == "-" {
                return batch(&u, io::stdin(), io::stdout().lock());
            }
            let mut out = io::stdout().lock();
            serde_json::to_writer(&mut out, &u.analyze(&text))?;
            writeln!(out)?;
            Ok(0)
        }
        Command::Eval { file, json, min_macro_f1, top } => {
            let u = load(&dir)?;
            let src = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let samples =
                eval::parse_corpus(&src).with_context(|| format!("{} is not a valid corpus", file.display()))?;
            let report = eval::evaluate(&u, &samples);
            let mut out = io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut out, &report)?;
                writeln!(out)?;
            } else {
                write!(out, "{}", report.to_text(top))?;
            }
            if let Some(min) = min_macro_f1
                && report.macro_f1 < min
            {
                eprintln!("macro-F1 {:.4} is below the required {min}", report.macro_f1);
                return Ok(1);
            }
            Ok(0)
        }
        Command::Calls { command } => calls(command),
        Command::Draft { case, at } => {
            let a = assistant()?;
            let mut raw = String::new();
            io::stdin().read_to_string(&mut raw).context("cannot read the event from stdin")?;
            let event = InboundEvent::parse(&raw).context("the event on stdin is invalid")?;
            let case: Case = match case {
                Some(p) => serde_json::from_str(
                    &std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?,
                )
                .with_context(|| format!("{} is not a case state", p.display()))?,
                None => Case::default(),
            };
            let now = at.or(event.sent_at).unwrap_or_else(jiff::Timestamp::now);
            let d = a.draft(&case, &event, now);
            let mut out = io::stdout().lock();
            serde_json::to_writer(&mut out, &d)?;
            writeln!(out)?;
            Ok(0)
        }
        Command::Check { text, event, to_orderer, protect_name, protect_phone, protect_address, return_excluded } => {
            let a = assistant()?;
            let verdict = match event {
                Some(p) => {
                    let raw = std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
                    let ev =
                        InboundEvent::parse(&raw).with_context(|| format!("{} is not a valid event", p.display()))?;
                    a.check(&text, Some(&ev))
                }
                None => {
                    let ctx = GuardContext {
                        recipient_is_orderer: to_orderer,
                        protected: Protected { names: protect_name, phones: protect_phone, addresses: protect_address },
                        return_qualifies: !return_excluded,
                        ..GuardContext::default()
                    };
                    a.guard.check(&text, &ctx, &a.understanding.catalog.normalizer)
                }
            };
            let mut out = io::stdout().lock();
            serde_json::to_writer(&mut out, &verdict)?;
            writeln!(out)?;
            Ok(u8::from(!verdict.passed()))
        }
        Command::Replay { file, json, auto } => {
            let a = assistant()?;
            let mut out = io::stdout().lock();
            let mut tally = AutoTally::default();
            for file in &file {
                let src = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
                let res = if auto {
                    writeln!(out, "## {}", file.file_name().unwrap_or_default().to_string_lossy())?;
                    replay_auto(&a, &src, &mut out, &mut tally)
                } else {
                    replay(&a, &src, json, &mut out)
                };
                res.with_context(|| format!("{} is not a valid conversation", file.display()))?;
            }
            if auto {
                write!(out, "{tally}")?;
            }
            Ok(0)
        }
        Command::Serve {
            listen,
            database_url,
            platform_url,
            processors,
            rate_per_shop,
            instance,
            demo,
            keep_running,
            log_json,
        } => {
            init_logging(log_json);
            let a = std::sync::Arc::new(assistant()?);
            // The service's own sections (webhooks, adapters); the shop's policy is in the assistant.
            let settings = crate::config::Settings::load(&config)?;
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime")?;
            rt.block_on(async move {
                if demo {
                    let convs = templates.parent().unwrap_or(Path::new(".")).join("demo").join("conversations");
                    return crate::demo::demo(a, &convs, keep_running, &listen).await.map(|()| 0);
                }
                let flags = crate::config::runtime::ServeFlags {
                    database_url,
                    platform_url,
                    instance: instance.unwrap_or_else(|| format!("pid{}", std::process::id())),
                    processors,
                    rate_per_shop,
                };
                let cfg = crate::config::ServiceConfig::from_env(&settings, flags)?;
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .with_context(|| format!("cannot listen on {listen}"))?;
                let running = crate::app::start(listener, a, cfg).await?;
                tracing::info!(addr = %running.addr, "shouhou serving");
                eprintln!("shouhou serving on http://{}", running.addr);
                crate::app::shutdown_signal().await;
                tracing::info!("shutting down: finishing work in flight");
                running.stop().await;
                Ok(0)
            })
        }
        Command::User { command: UserCommand::Add { name, role, database_url } } => {
            let role = crate::domain::role::Role::parse(&role)
                .with_context(|| format!("unknown role `{role}` (part_time, agent, supervisor, admin)"))?;
            let password = match std::env::var("SHOUHOU_USER_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    let mut line = String::new();
                    io::stdin().lock().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime")?;
            let existed = rt.block_on(async {
                let store = crate::store::Store::connect(&database_url)
                    .await
                    .with_context(|| format!("cannot open the database {}", crate::app::redact_url(&database_url)))?;
                crate::accounts::upsert_user(&store, &name, &password, role).await
            })?;
            let mut out = io::stdout().lock();
            serde_json::to_writer(
                &mut out,
                &serde_json::json!({"user": name, "role": role.name(), "created": !existed}),
            )?;
            writeln!(out)?;
            Ok(0)
        }
        Command::Validate => {
            let a = assistant()?;
            let pages = crate::console::check_templates(&templates.join("console"))
                .map_err(|e| anyhow::anyhow!("console templates: {e}"))?;
            let mut out = io::stdout().lock();
            writeln!(
                out,
                "ok: {} intents ({} phrases), {} template steps, guard, {pages} console templates and {} loaded",
                a.understanding.catalog.intents.len(),
                a.understanding.catalog.cue_phrases().len(),
                crate::domain::case::STEPS.len(),
                config.display()
            )?;
            Ok(0)
        }
        Command::EvalGuard { file, json } => {
            let normalizer = crate::domain::Normalizer::load(&dir.join("normalize").join("t2s_overrides.toml"))?;
            let guard = crate::domain::guard::Guard::load(&templates.join("guard.toml"), &normalizer)
                .context("cannot load the guard rules")?;
            let src = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let samples =
                eval::parse_replies(&src).with_context(|| format!("{} is not a valid replies file", file.display()))?;
            let report = eval::evaluate_guard(&guard, &normalizer, &samples);
            let mut out = io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut out, &report)?;
                writeln!(out)?;
            } else {
                write!(out, "{}", report.to_text())?;
            }
            Ok(0)
        }
        Command::Demo { file } => {
            let started = Instant::now();
            let u = load(&dir)?;
            let loaded = started.elapsed();
            let file = file.unwrap_or_else(|| dir.parent().unwrap_or(Path::new(".")).join("demo").join("messages.txt"));
            let src = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let mut out = io::stdout().lock();
            writeln!(out, "intent catalog loaded from {} in {:.1} ms\n", dir.display(), loaded.as_secs_f64() * 1e3)?;
            for line in src.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
                demo_line(&mut out, &u, line)?;
            }
            Ok(0)
        }
    }
}

fn init_logging(json: bool) {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("shouhou=info"));
    let _ = if json {
        fmt().json().with_env_filter(filter).with_writer(io::stderr).try_init()
    } else {
        fmt().with_env_filter(filter).with_writer(io::stderr).try_init()
    };
}

/// Replays a JSONL conversation through the drafting pipeline, carrying the case.
///
/// # Errors
/// A line that is not a valid event or lacks `sent_at`; write failures.
pub fn replay(a: &Assistant, src: &str, json: bool, out: &mut impl Write) -> Result<()> {
    replay_turns(a, src, |i, ev, now, d| {
        if json {
            serde_json::to_writer(
                &mut *out,
                &serde_json::json!({"turn": i + 1, "message_id": ev.message_id, "draft": d}),
            )?;
            writeln!(out)?;
        } else {
            let who = if ev.from_orderer() {
                "buyer"
            } else if ev.order.is_some() {
                "other account"
            } else {
                "buyer (order unknown)"
            };
            let attach = if ev.attachments.is_empty() {
                String::new()
            } else {
                format!(" [+{} attachment(s)]", ev.attachments.len())
            };
            let local = now.to_zoned(a.settings.timezone.clone()).strftime("%Y-%m-%d %H:%M %Z");
            writeln!(out, "[{local}] {who}: {}{attach}", crate::domain::mask_phones(&ev.text))?;
            let ids: Vec<String> = d.intents.iter().map(|h| format!("{}:{:.2}", h.id, h.score)).collect();
            let ids = if ids.is_empty() { "other".to_owned() } else { ids.join(" ") };
            writeln!(
                out,
                "    intents {ids} | route {:?} | group {:?} | stage {:?} | guard {}",
                d.route, d.group, d.stage, d.guard.verdict
            )?;
            match &d.reply {
                Some(r) => writeln!(out, "    bot: {r}")?,
                None => writeln!(out, "    bot: (no draft: a person answers)")?,
            }
            if !d.needs.is_empty() {
                writeln!(out, "    needs: {}", d.needs.join(", "))?;
            }
            for act in &d.actions {
                writeln!(out, "    action: {}", serde_json::to_string(act)?)?;
            }
            writeln!(out)?;
        }
        Ok(())
    })
}

/// Drafts each event line of a JSONL conversation in turn, carrying the case from one turn to the
/// next, and hands `turn` the line number (from 0), the event, its time and the draft. Blank and
/// `#` lines are skipped.
fn replay_turns(
    a: &Assistant,
    src: &str,
    mut turn: impl FnMut(usize, &InboundEvent, jiff::Timestamp, &crate::domain::draft::Draft) -> Result<()>,
) -> Result<()> {
    let mut case = Case::default();
    for (i, line) in src.lines().enumerate() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let ev = InboundEvent::parse(line).with_context(|| format!("line {}", i + 1))?;
        let now = ev.sent_at.with_context(|| format!("line {}: sent_at is required in a replay", i + 1))?;
        let d = a.draft(&case, &ev, now);
        turn(i, &ev, now, &d)?;
        case = d.case;
    }
    Ok(())
}

/// Messages and automatic answers, per intent found (a message counts for each of its intents;
/// `other` when none was found).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AutoTally {
    /// Intent id → (messages, answered automatically).
    pub by_intent: std::collections::BTreeMap<String, (u32, u32)>,
    /// All messages and all automatic answers.
    pub total: (u32, u32),
}

impl AutoTally {
    fn add(&mut self, d: &crate::domain::draft::Draft) {
        let auto = u32::from(d.route == crate::domain::case::Route::Auto);
        let ids: Vec<String> = if d.intents.is_empty() {
            vec!["other".to_owned()]
        } else {
            d.intents.iter().map(|h| h.id.to_owned()).collect()
        };
        for id in ids {
            let e = self.by_intent.entry(id).or_default();
            e.0 += 1;
            e.1 += auto;
        }
        self.total.0 += 1;
        self.total.1 += auto;
    }
}

impl std::fmt::Display for AutoTally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = |(n, a): (u32, u32)| if n == 0 { 0.0 } else { 100.0 * f64::from(a) / f64::from(n) };
        writeln!(f, "answered automatically: {} of {} messages ({:.0}%)", self.total.1, self.total.0, pct(self.total))?;
        for (id, &(n, a)) in &self.by_intent {
            writeln!(f, "  {id:<17} {a:>3} of {n:>3} ({:.0}%)", pct((n, a)))?;
        }
        Ok(())
    }
}

/// Replays a conversation and prints only what would have gone out without a person: each
/// buyer turn, then the automatic reply, or why it was held (the route and what it needs).
///
/// # Errors
/// As [`replay`].
pub fn replay_auto(a: &Assistant, src: &str, out: &mut impl Write, tally: &mut AutoTally) -> Result<()> {
    replay_turns(a, src, |_, ev, now, d| {
        tally.add(d);
        let local = now.to_zoned(a.settings.timezone.clone()).strftime("%m-%d %H:%M");
        writeln!(out, "[{local}] buyer: {}", crate::domain::mask_phones(&ev.text))?;
        match (&d.route, &d.reply) {
            (crate::domain::case::Route::Auto, Some(r)) => writeln!(out, "    sent: {r}")?,
            (route, _) => {
                let route = serde_json::to_value(route)?;
                let needs = if d.needs.is_empty() { String::new() } else { format!("; needs {}", d.needs.join(", ")) };
                writeln!(out, "    held: {}{needs}", route.as_str().unwrap_or_default())?;
            }
        }
        Ok(())
    })
}

fn calls(cmd: CallsCommand) -> Result<u8> {
    use crate::domain::schedule::{CallPolicy, History};
    let CallsCommand::Check { at, tz, attempts, last, history, max_attempts, window, min_gap_minutes, per_day } = cmd;
    let zone = jiff::tz::TimeZone::get(&tz).with_context(|| format!("--tz: unknown time zone `{tz}`"))?;
    let (start, end) = window
        .split_once('-')
        .and_then(|(a, b)| {
            Some((a.trim().parse::<jiff::civil::Time>().ok()?, b.trim().parse::<jiff::civil::Time>().ok()?))
        })
        .with_context(|| format!("--window: expected HH:MM-HH:MM, got `{window}`"))?;
    let policy = CallPolicy::new(start, end, max_attempts, per_day, jiff::SignedDuration::from_mins(min_gap_minutes))
        .context("invalid call policy")?;
    let mut h = History::from_times(history);
    if let Some(l) = last {
        h.last = Some(h.last.map_or(l, |x| x.max(l)));
    }
    h.count = h.count.max(attempts);
    if h.count == 0 && h.last.is_some() {
        h.count = 1;
    }
    let decision = policy.check(at, &zone, &h);
    let mut out = io::stdout().lock();
    serde_json::to_writer(&mut out, &decision)?;
    writeln!(out)?;
    Ok(u8::from(!decision.allowed))
}

fn demo_line(out: &mut impl Write, u: &Understanding, text: &str) -> Result<()> {
    let a = u.analyze(text);
    writeln!(out, "> {}", crate::domain::mask_phones(text))?;
    if a.intents.is_empty() {
        writeln!(out, "  other (no after-sales intent: a person looks at it)")?;
    }
    for hit in &a.intents {
        let words: Vec<String> =
            hit.evidence.iter().map(|e| format!("\"{}\"@{}..{}", e.text, e.span[0], e.span[1])).collect();
        writeln!(out, "  {:<17} {:.2}  {}", hit.id, hit.score, words.join(" "))?;
    }
    let e = serde_json::to_value(&a.entities)?;
    if let Some(map) = e.as_object() {
        let parts: Vec<String> = map
            .iter()
            .filter(|(_, v)| !(v.is_null() || v.as_array().is_some_and(Vec::is_empty)))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !parts.is_empty() {
            writeln!(out, "  entities: {}", parts.join(" "))?;
        }
    }
    writeln!(out)?;
    Ok(())
}

/// Batch mode: one message per input line, one JSON object per output line, in order.
/// Output is flushed whenever the input has nothing more buffered, so an interactive pipe
/// gets each answer at once while a file streams at full speed.
///
/// # Errors
/// Failure to read stdin or write stdout (a closed pipe ends quietly).
pub fn batch(u: &Understanding, input: impl Read, output: impl Write) -> Result<u8> {
    let mut input = io::BufReader::with_capacity(64 * 1024, input);
    let mut out = io::BufWriter::with_capacity(64 * 1024, output);
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    let mut failed = 0usize;
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        line_no += 1;
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        let res = match std::str::from_utf8(&buf) {
            Ok(text) => serde_json::to_writer(&mut out, &u.analyze(text)),
            Err(_) => {
                failed += 1;
                eprintln!("line {line_no}: not valid UTF-8; wrote an error object");
                serde_json::to_writer(&mut out, &serde_json::json!({"line": line_no, "error": "not valid UTF-8"}))
            }
        };
        if let Err(e) = res.map_err(io::Error::from).and_then(|()| out.write_all(b"\n")) {
            if e.kind() == io::ErrorKind::BrokenPipe {
                return Ok(0);
            }
            return Err(e.into());
        }
        // Nothing more read ahead: the writer may be waiting for this answer.
        if input.buffer().is_empty()
            && let Err(e) = out.flush()
        {
            if e.kind() == io::ErrorKind::BrokenPipe {
                return Ok(0);
            }
            return Err(e.into());
        }
    }
    match out.flush() {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(e.into()),
        _ => {}
    }
    Ok(u8::from(failed > 0))
}
