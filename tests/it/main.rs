//! The single integration-test binary (ripgrep / zero2prod style): one link, topical modules.

mod catalog;
mod chatwoot;
mod cli;
mod console;
mod corpus;
mod draft;
mod edge;
mod entity;
mod grounded;
mod guard;
mod harden;
mod layers;
mod linear;
mod migrations;
mod normalize;
mod outbox;
mod schedule;
mod service;
mod support;
mod templates;
mod tmc;
mod wecom;
mod wecom_service;

mod websocket;
