//! What goes out: the platform port and its generic HTTP implementation ([`platform`]), the
//! shared HTTP-outcome, `Retry-After` and backoff helpers ([`http`]), per-shop pacing
//! ([`pacer`]), the sender and handoff workers, and consumer webhooks (the outbox rows in
//! [`webhooks`], their delivery in [`deliverer`]).

pub mod deliverer;
pub mod handoff;
pub mod http;
pub mod pacer;
pub mod platform;
pub mod sender;
pub mod webhooks;
