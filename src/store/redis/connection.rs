//! Connecting to a single Redis or to a cluster, and using either the same way.
//!
//! This module must not know the key layout or what the store keeps.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use super::{unavailable, Inner};
use crate::store::StoreError;

/// A connection to a single Redis or to a cluster, used the same way.
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Hides the password of a Redis URL, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

impl Inner {
    /// A new connection; `response_timeout` bounds each command (longer for blocking reads).
    pub(super) async fn connect(&self, response_timeout: Duration) -> Result<Conn, StoreError> {
        let url = self.options.url.clone();
        let timeout = self.options.timeout;
        let conn = if self.options.cluster {
            let nodes: Vec<String> = url.split(',').map(|s| s.trim().to_string()).collect();
            let mut builder = ClusterClientBuilder::new(nodes);
            if let Some(ca) = &self.options.tls_ca {
                builder = builder.certs(redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca.clone()),
                });
            }
            let client = builder
                .connection_timeout(timeout)
                .response_timeout(response_timeout)
                .retries(1)
                .build()
                .map_err(unavailable)?;
            Conn::Cluster(
                tokio::time::timeout(timeout * 3, client.get_async_connection())
                    .await
                    .map_err(|_| StoreError::down("timed out connecting to the cluster"))?
                    .map_err(unavailable)?,
            )
        } else {
            let client = match &self.options.tls_ca {
                Some(ca) => redis::Client::build_with_tls(
                    url.as_str(),
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(ca.clone()),
                    },
                ),
                None => redis::Client::open(url.as_str()),
            }
            .map_err(unavailable)?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(response_timeout))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_secs(2));
            Conn::Single(
                tokio::time::timeout(
                    timeout * 3,
                    ConnectionManager::new_with_config(client, config),
                )
                .await
                .map_err(|_| StoreError::down("timed out connecting"))?
                .map_err(unavailable)?,
            )
        };
        Ok(conn)
    }

    /// A connection for commands, connecting on first use.
    pub(super) async fn conn(&self) -> Result<Conn, StoreError> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let c = self.connect(self.options.timeout).await?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// The command connection for a request (not the follower): `Unavailable` at once while
    /// Redis is known to be down and the follower has not reconnected.
    pub(super) async fn request_conn(&self) -> Result<Conn, StoreError> {
        if self.known_down.load(std::sync::atomic::Ordering::Acquire) {
            return Err(StoreError::down(
                "Redis cannot be reached; this replica is reconnecting",
            ));
        }
        self.conn().await
    }

    /// A separate connection for the blocking stream reads.
    pub(super) async fn reader(&self) -> Result<Conn, StoreError> {
        self.connect(self.options.timeout + Duration::from_secs(5))
            .await
    }
}
