//! Switchyard: decides, per request, whether a user logs in through Stytch or the legacy system.

pub mod admin;
pub mod background;
pub mod catalog;
pub mod config;
pub mod cookies;
pub mod decider;
pub mod geo;
pub mod guard;
pub mod http;
pub mod metrics;
pub mod rules;
pub mod schedule_runner;
pub mod sessions;
pub mod startup;
pub mod store;
pub mod tally;
pub mod text;
