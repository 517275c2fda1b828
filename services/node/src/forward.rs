//! Forwards admitted transactions to the other validators, so a transaction sent to any node
//! reaches whichever validator proposes next.

use std::time::Duration;

use custos_proto::ledger::v1 as pb;
use custos_proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use custos_types::SignedTransaction;
use tonic::transport::Channel;
use tracing::debug;

/// Metadata key marking a transaction that was forwarded by a peer (it is not forwarded again).
pub const FORWARDED: &str = "x-custos-forwarded";

/// The peers a node forwards to.
#[derive(Clone, Default)]
pub struct Forwarder {
    peers: Vec<(String, Channel)>,
}

impl Forwarder {
    /// A forwarder to the gRPC `endpoints` of the other validators (connected lazily).
    pub fn new(endpoints: &[String]) -> anyhow::Result<Self> {
        let mut peers = Vec::with_capacity(endpoints.len());
        for e in endpoints {
            let channel = Channel::from_shared(e.clone())
                .map_err(|err| anyhow::anyhow!("peer endpoint `{e}`: {err}"))?
                .connect_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(5))
                .connect_lazy();
            peers.push((e.clone(), channel));
        }
        Ok(Forwarder { peers })
    }

    /// Sends `tx` to every peer in the background. Peers that are down miss it; the
    /// transaction still reaches the chain through this node's own mempool.
    pub fn forward(&self, tx: &SignedTransaction) {
        for (endpoint, channel) in &self.peers {
            let mut client = LedgerServiceClient::new(channel.clone());
            let mut request = tonic::Request::new(pb::SubmitRequest {
                transaction: Some(tx.to_wire()),
                wait: false,
            });
            request
                .metadata_mut()
                .insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
            let endpoint = endpoint.clone();
            let id = tx.id();
            tokio::spawn(async move {
                if let Err(e) = client.submit(request).await {
                    debug!(target: "custos::forward", peer = %endpoint, tx = %id.short(), error = %e.message(), "forward failed");
                }
            });
        }
    }
}
