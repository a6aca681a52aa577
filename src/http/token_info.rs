//! `GET /v1/token` (any valid token): the presented token's name and scopes, so that a client
//! such as the admin page knows what it may offer (a token without `admin` gets a read-only
//! page). It says nothing a holder of the token could not learn by trying; never the token.

use actix_web::HttpResponse;
use serde::Serialize;

use super::auth::Identified;
use crate::config::Scope;

#[derive(Serialize)]
struct TokenInfo<'a> {
    name: &'a str,
    scopes: &'a [Scope],
}

pub async fn describe(token: Identified) -> HttpResponse {
    HttpResponse::Ok().json(TokenInfo {
        name: &token.name,
        scopes: &token.scopes,
    })
}
