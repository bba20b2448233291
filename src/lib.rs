//! shouhou ("after-sales"): an after-sales assistant for Chinese e-commerce shops.
//!
//! Module map, in the order a buyer message travels (docs/architecture.md has the picture and the
//! dependency rule; imports only point down this list, and a test keeps it so):
//! - [`adapters`]: the external systems (websocket bridge, Chatwoot, Taobao TMC, WeChat customer
//!   service), in and out;
//! - [`intake`]: the one door into the inbox (webhook, websocket and Chatwoot all call it);
//! - [`store`]: persistence, typed per table (SQLite with one writer thread, or PostgreSQL);
//! - [`pipeline`]: processors claim messages, draft them and commit every effect at once;
//! - [`domain`]: the pure core the pipeline calls: normalizer, intents, case, drafts, guard;
//! - [`outbound`]: what goes out: the platform port, sender, handoffs, consumer webhooks;
//! - [`review`]: what people do with drafts (approve, edit, reject, triage, take over);
//! - [`http`] and [`console`]: the REST API and the agent console on top of `review`;
//! - [`app`]: builds the [`state::AppState`], spawns every worker, serves the routes;
//! - [`state`]: the shared state, the clock and the claim lease, at the bottom of the service;
//! - [`config`]: `shouhou.toml` and the environment, validated;
//! - [`accounts`]: console users and their passwords;
//! - [`cli`], [`demo`], [`eval`]: the command line, `serve --demo`, scoring the classifier.
//!
//! Domain text (phrases, cue words, replies) lives in `intents/` and `templates/`, never here.

pub mod accounts;
pub mod adapters;
pub mod app;
pub mod cli;
pub mod config;
pub mod console;
pub mod demo;
pub mod domain;
pub mod eval;
pub mod http;
pub mod intake;
pub mod outbound;
pub mod pipeline;
pub mod review;
pub mod state;
pub mod store;

pub use domain::{Analysis, Understanding};
