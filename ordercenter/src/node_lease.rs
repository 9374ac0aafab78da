//! The lease on this gateway's node id (`server.node_id`), held in Redis so
//! that two live instances can never mint the same order ids. The lease is
//! claimed at start — waiting out a previous holder that stopped renewing,
//! e.g. this instance before a crash — renewed every third of its length,
//! and given up on shutdown. Orders are placed only while it is held; an id
//! held by another live instance stops this gateway with an error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use stock::NodeLeases;

/// How long a lease lasts without renewal.
pub const LEASE: Duration = Duration::from_secs(15);

pub struct NodeLease {
    node_id: u8,
    token: String,
    started: Instant,
    /// Until when the lease is surely ours, ms since `started` (0: not held).
    held_until_ms: AtomicU64,
}

/// Another live gateway holds this node id.
#[derive(Debug, thiserror::Error)]
#[error("node id {0} is held by another live gateway; give each instance its own server.node_id")]
pub struct NodeIdTaken(pub u8);

impl NodeLease {
    pub fn new(node_id: u8) -> Self {
        Self {
            node_id,
            token: format!("{:032x}", rand::random::<u128>()),
            started: Instant::now(),
            held_until_ms: 0.into(),
        }
    }

    /// Whether this instance may mint ids now: the last claim or renewal
    /// succeeded less than a lease ago (less a margin for clock drift).
    pub fn held(&self) -> bool {
        self.elapsed_ms() < self.held_until_ms.load(Ordering::Acquire)
    }

    /// Claims the lease and keeps renewing it; returns only when another
    /// live instance holds the id.
    pub async fn keep(&self, leases: &NodeLeases) -> NodeIdTaken {
        // A holder that stopped renewing lets go within one lease.
        let mut others_live_since: Option<Instant> = None;
        loop {
            let attempt = self.elapsed_ms();
            match leases.lease_node(self.node_id, &self.token, LEASE.as_millis() as u64).await {
                Ok(Ok(())) => {
                    others_live_since = None;
                    let margin = LEASE.as_millis() as u64 / 5;
                    self.held_until_ms.store(attempt + LEASE.as_millis() as u64 - margin, Ordering::Release);
                    tokio::time::sleep(LEASE / 3).await;
                }
                Ok(Err(left_ms)) => {
                    self.held_until_ms.store(0, Ordering::Release);
                    let since = *others_live_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > LEASE + Duration::from_secs(2) {
                        return NodeIdTaken(self.node_id);
                    }
                    tracing::warn!(node_id = self.node_id, left_ms, "node id leased by another instance; waiting");
                    tokio::time::sleep(Duration::from_millis(left_ms.clamp(100, 1_000) as u64)).await;
                }
                Err(err) => {
                    tracing::warn!(node_id = self.node_id, error = %err, "node id lease not renewed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Gives the lease up, so a restarted instance need not wait it out.
    pub async fn release(&self, leases: &NodeLeases) {
        self.held_until_ms.store(0, Ordering::Release);
        if let Err(err) = leases.lease_node(self.node_id, &self.token, 0).await {
            tracing::warn!(node_id = self.node_id, error = %err, "node id lease not given up; it expires by itself");
        }
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}
