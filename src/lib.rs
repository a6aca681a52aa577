//! Switchyard: decides, per request, whether a user logs in through Stytch or the legacy system.

pub mod cookies;
pub mod rules;
