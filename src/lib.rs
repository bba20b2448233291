//! shouhou ("after-sales"): an after-sales assistant for Chinese e-commerce shops.
//!
//! Module map:
//! - [`domain`]: the pure core: normalizer, intent catalog, classifier, entities;
//! - [`eval`]: scoring the classifier against a labelled corpus (`shouhou eval`);
//! - [`cli`]: the command line (`shouhou classify`, `eval`, `demo`);
//! - [`wecom`]: the WeChat customer-service channel's crypto, API types and client.
//!
//! Domain text (phrases, cue words, replies) lives in `intents/` and `templates/`, never here.

pub mod cli;
pub mod config;
pub mod domain;
pub mod eval;
pub mod service;
pub mod wecom;

pub use domain::{Analysis, Understanding};
