//! Black-box tests: the real application on a random port, spoken to over HTTP.

mod chaos;
mod cli;
mod cookies;
mod decide_fuzz;
mod errors;
mod evaluation;
mod geoip;
mod guard;
mod helpers;
mod http_edges;
mod metrics;
mod middleware_example;
mod ofrep;
mod persistence;
mod prometheus;
mod redis_server;
mod replicas;
mod rollouts;
mod rules;
mod safe_defaults;
mod schedule;
mod sessions;
mod smoke;
mod store_contract;
mod tally;
mod tally_contract;
