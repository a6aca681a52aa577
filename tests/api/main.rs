//! Black-box tests: the real application on a random port, spoken to over HTTP.

mod helpers;
mod smoke;
