//! One module per external system, in and out together: each takes buyer messages into the
//! inbox through [`crate::intake`] and implements [`crate::outbound::platform::Platform`] for
//! replies (the TMC client only writes order facts). None knows anything of the pipeline.

pub mod chatwoot;
pub mod tmc;
pub mod websocket;
pub mod wecom;
