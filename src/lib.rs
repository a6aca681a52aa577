//! Switchyard: decides, per request, whether a user logs in through Stytch or the legacy system.

pub mod admin;
pub mod catalog;
pub mod config;
pub mod cookies;
pub mod decider;
pub mod geo;
pub mod http;
pub mod metrics;
pub mod minute_counts;
pub mod rules;
pub mod sessions;
pub mod startup;
pub mod store;
