//! `custos.ledger.v1.LedgerService`: submission, blocks, headers and proofs.

use std::pin::Pin;
use std::time::Duration;

use custos_crypto::Hash;
use custos_proto::ledger::v1 as pb;
use custos_proto::ledger::v1::ledger_service_server::LedgerService;
use custos_types::{FieldError, PartyId, SignedTransaction, TxId};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::{NodeContext, field_status, internal, signed_header, tx_status};
use crate::core::TxOutcome;

/// How long a `wait` submission waits for finality.
pub const SUBMIT_WAIT: Duration = Duration::from_secs(30);

/// The ledger service.
pub struct LedgerRpc {
    ctx: NodeContext,
}

impl LedgerRpc {
    /// A service over `ctx`.
    pub fn new(ctx: NodeContext) -> Self {
        LedgerRpc { ctx }
    }
}

/// Admits a wire transaction: signature first, then the state checks, then the mempool.
/// With `wait`, answers once it is finalized or refused.
pub async fn submit_transaction(
    ctx: &NodeContext,
    wire: pb::SignedTransaction,
    wait: bool,
    forward: bool,
) -> Result<pb::SubmitResponse, Status> {
    let tx = SignedTransaction::from_wire(wire).map_err(|e| field_status(e, "transaction"))?;
    let id = tx.id();
    let chain = &ctx.core.genesis().chain_id;
    if &tx.body().chain_id != chain {
        return Err(tx_status(custos_consent::TxError::WrongChain {
            expected: chain.to_string(),
            got: tx.body().chain_id.to_string(),
        }));
    }
    let committed = ctx.core.next_nonce(&tx.author());
    let nonce = tx.body().nonce.0;
    if nonce < committed {
        // A client retrying the very same transaction learns where it already is. The id binds
        // the author (it hashes a body that names it), so the entry found is this author's.
        if let Some((height, index)) = ctx.core.store().transaction(&id).map_err(internal)? {
            tracing::warn!(target: "custos::rejected", tx = %id.short(), "transaction already finalized");
            return Err(Status::already_exists(format!(
                "transaction {id} by {} is already finalized at height {height}, log index {index}",
                tx.author().short()
            )));
        }
        return Err(tx_status(custos_consent::TxError::ReplayedNonce {
            author: tx.author().short(),
            expected: committed,
            got: nonce,
        }));
    }
    // A transaction that follows pending ones of its author is checked when its block is built.
    if nonce == committed {
        ctx.core.check_tx(&tx).map_err(tx_status)?;
    }
    let forwarded = forward.then(|| tx.clone());
    let waiter = match ctx.mempool.insert_waiting(tx, committed, wait) {
        Ok(waiter) => waiter,
        // The same transaction is already pending: wait for it like its first submitter.
        Err(crate::mempool::MempoolError::Duplicate(_)) if wait => {
            let waiter = ctx.mempool.wait_for(id);
            if let Some((height, index)) = ctx.core.store().transaction(&id).map_err(internal)? {
                return Ok(finalized(id, height, index));
            }
            Some(waiter)
        }
        Err(e) => {
            tracing::warn!(target: "custos::rejected", tx = %id.short(), reason = %e, "mempool refused");
            return Err(match e {
                crate::mempool::MempoolError::Duplicate(_) => Status::already_exists(e.to_string()),
                crate::mempool::MempoolError::Full(_) => Status::resource_exhausted(e.to_string()),
                crate::mempool::MempoolError::Nonce { .. } => {
                    Status::failed_precondition(e.to_string())
                }
            });
        }
    };
    if let Some(tx) = forwarded {
        ctx.forwarder.forward(&tx);
    }
    let Some(waiter) = waiter else {
        return Ok(pb::SubmitResponse {
            tx_id: id.to_vec(),
            status: pb::TxStatus::Pending as i32,
            ..Default::default()
        });
    };
    match tokio::time::timeout(SUBMIT_WAIT, waiter).await {
        Ok(Ok(TxOutcome::Finalized { height, index })) => Ok(finalized(id, height, index)),
        Ok(Ok(TxOutcome::Rejected(reason))) => Err(Status::failed_precondition(format!(
            "transaction {} refused when its block was built: {reason}",
            id.short()
        ))),
        Ok(Err(_)) | Err(_) => Err(Status::deadline_exceeded(format!(
            "transaction {} is pending; not finalized within {} s",
            id.short(),
            SUBMIT_WAIT.as_secs()
        ))),
    }
}

fn finalized(id: TxId, height: u64, index: u64) -> pb::SubmitResponse {
    pb::SubmitResponse {
        tx_id: id.to_vec(),
        status: pb::TxStatus::Finalized as i32,
        height,
        entry_index: index,
        reason: String::new(),
    }
}

fn parse_hash(bytes: &[u8], field: &str) -> Result<Hash, Status> {
    Hash::from_slice(bytes)
        .map_err(|e| field_status(FieldError::new(field, e.to_string()), "request"))
}

/// Builds the wire block at `height`.
pub fn wire_block(ctx: &NodeContext, height: u64) -> Result<pb::Block, Status> {
    let block = ctx
        .core
        .store()
        .block(height)
        .map_err(internal)?
        .ok_or_else(|| Status::not_found(format!("height: no block at height {height}")))?;
    Ok(pb::Block {
        signed_header: Some(pb::SignedHeader {
            header: Some(block.header.to_wire()),
            certificate: Some(block.certificate.to_wire()),
            validator_set: Some(ctx.core.validators_at(height).to_wire()),
        }),
        first_entry_index: block.first_entry,
        entries: block.entries,
    })
}

type BlockStream = Pin<Box<dyn Stream<Item = Result<pb::Block, Status>> + Send>>;

#[tonic::async_trait]
impl LedgerService for LedgerRpc {
    #[instrument(name = "ledger.submit", skip_all)]
    async fn submit(
        &self,
        request: Request<pb::SubmitRequest>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        let forward = request.metadata().get(crate::forward::FORWARDED).is_none();
        let req = request.into_inner();
        let wire = req.transaction.ok_or_else(|| {
            field_status(
                FieldError::new("transaction", "required field is missing"),
                "submit",
            )
        })?;
        submit_transaction(&self.ctx, wire, req.wait, forward)
            .await
            .map(Response::new)
    }

    #[instrument(name = "ledger.tx_status", skip_all)]
    async fn get_tx_status(
        &self,
        request: Request<pb::GetTxStatusRequest>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        let id = TxId(parse_hash(&request.into_inner().tx_id, "tx_id")?);
        let located = self.ctx.core.store().transaction(&id).map_err(internal)?;
        let response = match located {
            Some((height, index)) => pb::SubmitResponse {
                tx_id: id.to_vec(),
                status: pb::TxStatus::Finalized as i32,
                height,
                entry_index: index,
                reason: String::new(),
            },
            None => pb::SubmitResponse {
                tx_id: id.to_vec(),
                status: pb::TxStatus::Unknown as i32,
                reason: "not finalized (pending, refused, or never seen)".into(),
                ..Default::default()
            },
        };
        Ok(Response::new(response))
    }

    async fn get_status(
        &self,
        _: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::ChainStatus>, Status> {
        let tip = self.ctx.core.tip();
        let params = self.ctx.core.with_state(|s| s.parameters());
        Ok(Response::new(pb::ChainStatus {
            chain_id: self.ctx.core.genesis().chain_id.to_string(),
            height: tip.as_ref().map_or(0, |t| t.height),
            log_size: tip.as_ref().map_or(0, |t| t.log_size),
            log_root: tip
                .as_ref()
                .map_or(custos_ledger::merkle::empty_root(), |t| t.log_root)
                .0
                .to_vec(),
            state_root: tip.as_ref().map_or(vec![], |t| t.state_root.0.to_vec()),
            header_hash: tip.as_ref().map_or(vec![], |t| t.hash().0.to_vec()),
            parameters: Some((&params).into()),
            mempool_size: self.ctx.mempool.len() as u32,
        }))
    }

    async fn get_nonce(
        &self,
        request: Request<pb::GetNonceRequest>,
    ) -> Result<Response<pb::GetNonceResponse>, Status> {
        let author = PartyId::from_field(&request.into_inner().author, "author")
            .map_err(|e| field_status(e, "get nonce"))?;
        let committed = self.ctx.core.next_nonce(&author);
        let next_nonce = self.ctx.mempool.expected_nonce(&author, committed);
        Ok(Response::new(pb::GetNonceResponse { next_nonce }))
    }

    async fn get_block(
        &self,
        request: Request<pb::GetBlockRequest>,
    ) -> Result<Response<pb::Block>, Status> {
        wire_block(&self.ctx, request.into_inner().height).map(Response::new)
    }

    async fn get_header(
        &self,
        request: Request<pb::GetHeaderRequest>,
    ) -> Result<Response<pb::SignedHeader>, Status> {
        signed_header(&self.ctx.core, request.into_inner().height).map(Response::new)
    }

    async fn get_entry(
        &self,
        request: Request<pb::GetEntryRequest>,
    ) -> Result<Response<pb::Entry>, Status> {
        let index = request.into_inner().index;
        let (entry, height) = self
            .ctx
            .core
            .store()
            .entry(index)
            .map_err(internal)?
            .ok_or_else(|| Status::not_found(format!("index: no log entry {index}")))?;
        Ok(Response::new(pb::Entry {
            index,
            entry,
            height,
        }))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::InclusionProofResponse>, Status> {
        let req = request.into_inner();
        let result = self.ctx.core.with_tree(|t| {
            let size = if req.tree_size == 0 {
                t.len()
            } else {
                req.tree_size
            };
            let path = t.inclusion_proof(req.leaf_index, size)?;
            let root = t.root_at(size)?;
            Ok::<_, custos_ledger::ProofError>((size, path, root))
        });
        let (size, path, root) =
            result.map_err(|e| Status::invalid_argument(format!("leaf_index/tree_size: {e}")))?;
        Ok(Response::new(pb::InclusionProofResponse {
            proof: Some(pb::InclusionProof {
                leaf_index: req.leaf_index,
                tree_size: size,
                path: path.iter().map(|h| h.0.to_vec()).collect(),
            }),
            root: root.0.to_vec(),
        }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProofResponse>, Status> {
        let req = request.into_inner();
        let result = self.ctx.core.with_tree(|t| {
            let path = t.consistency_proof(req.size1, req.size2)?;
            Ok::<_, custos_ledger::ProofError>((path, t.root_at(req.size1)?, t.root_at(req.size2)?))
        });
        let (path, root1, root2) =
            result.map_err(|e| Status::invalid_argument(format!("size1/size2: {e}")))?;
        Ok(Response::new(pb::ConsistencyProofResponse {
            proof: Some(pb::ConsistencyProof {
                size1: req.size1,
                size2: req.size2,
                path: path.iter().map(|h| h.0.to_vec()).collect(),
            }),
            root1: root1.0.to_vec(),
            root2: root2.0.to_vec(),
        }))
    }

    type StreamBlocksStream = BlockStream;

    async fn stream_blocks(
        &self,
        request: Request<pb::StreamBlocksRequest>,
    ) -> Result<Response<Self::StreamBlocksStream>, Status> {
        let from = request.into_inner().from_height.max(1);
        let ctx = self.ctx.clone();
        let mut events = ctx.core.subscribe();
        let mut shutdown = ctx.shutdown.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            let mut next = from;
            loop {
                let tip = ctx.core.tip().map_or(0, |t| t.height);
                while next <= tip {
                    let block = wire_block(&ctx, next);
                    if tx.send(block).await.is_err() {
                        return;
                    }
                    next += 1;
                }
                // Lagging behind the broadcast is fine: the loop re-reads from the store. The
                // stream ends with the node, so that stopping it does not wait on subscribers.
                tokio::select! {
                    event = events.recv() => match event {
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}
