//! `custos.audit.v1.AuditService`: the access log, with proofs, under role checks.

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;

use custos_client::report::{self, AuditRow, Directory};
use custos_crypto::Hash;
use custos_ledger::ValidatorSet;
use custos_proto::access::v1 as access_pb;
use custos_proto::audit::v1 as pb;
use custos_proto::audit::v1::audit_service_server::AuditService;
use custos_proto::ledger::v1 as ledger_pb;
use custos_storage::parallel::read_all;
use custos_storage::{AuditFilter, LedgerStore};
use custos_types::{
    AccessMode, Decision, FieldError, PartyId, Purpose, Reader, RecordId, Role, Timestamp,
};
use prost::Message;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::{NodeContext, authorize_read, field_status, internal, signed_header};
use crate::core::LedgerCore;

pub use custos_client::methods::{
    EXPORT_BUNDLE, EXPORT_CSV, EXPORT_FHIR_AUDIT_EVENTS, QUERY_ACCESS_LOG, STREAM_ACCESS_LOG,
    VERIFY_CHAIN,
};

/// Largest page.
pub const MAX_PAGE: u32 = 500;
const DEFAULT_PAGE: u32 = 50;
/// Most decisions one CSV or FHIR export renders; narrow the filter for more.
pub const MAX_EXPORT_DECISIONS: usize = 100_000;
/// Most log entries one audit bundle holds; export a long log in height ranges.
pub const MAX_BUNDLE_ENTRIES: u64 = 2_000_000;

/// The audit service.
pub struct AuditRpc {
    ctx: NodeContext,
}

impl AuditRpc {
    /// A service over `ctx`.
    pub fn new(ctx: NodeContext) -> Self {
        AuditRpc { ctx }
    }
}

fn bad(field: &str, reason: impl Into<String>) -> Status {
    field_status(FieldError::new(field, reason), "access log query")
}

/// Turns a query into a filter, confined to what the author may see: an auditor everything, a
/// patient their own history, anyone else its own requests.
pub fn filter_for(
    ctx: &NodeContext,
    author: PartyId,
    role: Role,
    q: &pb::AccessLogQuery,
) -> Result<AuditFilter, Status> {
    let mut filter = query_filter(ctx, q)?;
    confine(&mut filter, author, role)?;
    Ok(filter)
}

/// Turns a query into a filter as asked, before any role confines it (an auditor's view).
pub fn query_filter(ctx: &NodeContext, q: &pb::AccessLogQuery) -> Result<AuditFilter, Status> {
    let party = |bytes: &[u8], field: &str| -> Result<Option<PartyId>, Status> {
        if bytes.is_empty() {
            Ok(None)
        } else {
            PartyId::from_field(bytes, field)
                .map(Some)
                .map_err(|e| field_status(e, "access log query"))
        }
    };
    let mut filter = AuditFilter {
        patient: party(&q.patient, "query.patient")?,
        requesters: party(&q.requester, "query.requester")?.map(|p| BTreeSet::from([p])),
        ..Default::default()
    };
    if !q.record_id.is_empty() {
        filter.record = Some(
            RecordId::from_field(&q.record_id, "query.record_id")
                .map_err(|e| field_status(e, "access log query"))?,
        );
    }
    if !q.organisation.is_empty() {
        let members: BTreeSet<PartyId> = ctx.core.with_state(|s| {
            s.parties()
                .into_iter()
                .filter(|(_, p)| p.organisation.as_str() == q.organisation)
                .map(|(id, _)| id)
                .collect()
        });
        filter.requesters = Some(match filter.requesters.take() {
            Some(one) => one.intersection(&members).copied().collect(),
            None => members,
        });
    }
    if !q.purpose.is_empty() {
        let purpose =
            Purpose::parse(&q.purpose).map_err(|e| bad("query.purpose", e.to_string()))?;
        filter.purposes = Some(purpose.descendants().collect());
    }
    if q.mode != 0 {
        filter.mode = Some(
            AccessMode::from_wire(q.mode, "query.mode")
                .map_err(|e| field_status(e, "access log query"))?,
        );
    }
    filter.granted = match pb::Decision::try_from(q.decision) {
        Ok(pb::Decision::Any) => None,
        Ok(pb::Decision::Granted) => Some(true),
        Ok(pb::Decision::Denied) => Some(false),
        Err(_) => {
            return Err(bad(
                "query.decision",
                format!("unknown value {}", q.decision),
            ));
        }
    };
    filter.break_glass_only = q.break_glass_only;
    if q.from_ms != 0 {
        filter.from = Some(Timestamp(q.from_ms));
    }
    if q.to_ms != 0 {
        filter.to = Some(Timestamp(q.to_ms));
    }
    Ok(filter)
}

/// Confines a filter to what `author` in `role` may see: the read policy
/// ([`custos_types::policy`]) as an index query. A patient's decisions are those naming them, a
/// partner's or custodian's those it requested.
fn confine(filter: &mut AuditFilter, author: PartyId, role: Role) -> Result<(), Status> {
    if (Reader {
        party: author,
        role,
    })
    .sees_everything()
    {
        return Ok(());
    }
    match role {
        Role::Patient => match filter.patient {
            Some(p) if p != author => {
                return Err(Status::permission_denied(format!(
                    "query.patient: a patient may read only their own history, not that of {}",
                    p.short()
                )));
            }
            _ => filter.patient = Some(author),
        },
        _ => {
            if let Some(r) = &filter.requesters
                && r.iter().any(|p| *p != author)
            {
                return Err(Status::permission_denied(
                    "query.requester: a partner or custodian may read only its own requests",
                ));
            }
            filter.requesters = Some(BTreeSet::from([author]));
        }
    }
    Ok(())
}

type EntryStream = Pin<Box<dyn Stream<Item = Result<pb::AuditEntry, Status>> + Send>>;

/// A parsed access-log query: the filter the author may see, the page size and the cursor.
pub struct ParsedQuery {
    /// The role-confined filter.
    pub filter: AuditFilter,
    /// Page size.
    pub limit: usize,
    /// Continue after this log index.
    pub after: Option<u64>,
}

/// Checks a signed access-log read for `method` and parses its query.
pub fn parse_query(
    ctx: &NodeContext,
    wire: &ledger_pb::SignedRead,
    method: &str,
) -> Result<ParsedQuery, Status> {
    let (read, party) = authorize_read(ctx, wire, method)?;
    let q: pb::AccessLogQuery = read
        .query()
        .map_err(|e| field_status(e, "access log query"))?;
    let filter = filter_for(ctx, read.author, party.role, &q)?;
    let limit = match q.page_size {
        0 => DEFAULT_PAGE,
        n if n > MAX_PAGE => {
            return Err(bad(
                "query.page_size",
                format!("at most {MAX_PAGE}, got {n}"),
            ));
        }
        n => n,
    } as usize;
    let after = match q.cursor.len() {
        0 => None,
        8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&q.cursor);
            let index = u64::from_be_bytes(b);
            let count = ctx.core.store().entry_count().map_err(internal)?;
            if index >= count {
                return Err(bad(
                    "query.cursor",
                    format!("points at log index {index}, the log holds {count} entries"),
                ));
            }
            Some(index)
        }
        n => return Err(bad("query.cursor", format!("expected 8 bytes, got {n}"))),
    };
    Ok(ParsedQuery {
        filter,
        limit,
        after,
    })
}

/// Proves a page of decisions: each with its inclusion proof under the header of the block it
/// sits in, that header's certificate and the validator set that signed it, and its release
/// confirmations likewise. Each block's header is fetched once per page, and every proof is cut
/// from one look at the log tree.
pub fn prove_page(
    core: &LedgerCore,
    decisions: &[(u64, Decision)],
) -> Result<Vec<pb::AuditEntry>, Status> {
    let store = core.store();
    let entry = |index: u64| {
        store
            .entry(index)
            .map_err(internal)?
            .map(|entry| (index, entry))
            .ok_or_else(|| Status::not_found(format!("index: no log entry {index}")))
    };
    // Each decision's release confirmations, its entry and theirs, then the headers they sit
    // in: every decision's rows, then every header, read at once (random reads on a large
    // store, which the disk serves far better together than one after another).
    let rows = read_all(decisions, |(index, decision)| {
        let releases = store.releases(&decision.request_id).map_err(internal)?;
        let entries = std::iter::once(*index)
            .chain(releases.iter().copied())
            .map(entry)
            .collect::<Result<Vec<_>, Status>>()?;
        Ok::<_, Status>((releases, entries))
    })?;
    let mut releases = Vec::with_capacity(rows.len());
    let mut entries: BTreeMap<u64, (Vec<u8>, u64)> = BTreeMap::new();
    for (released, read) in rows {
        releases.push(released);
        entries.extend(read);
    }
    let heights: Vec<u64> = entries
        .values()
        .map(|(_, height)| *height)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let headers: BTreeMap<u64, ledger_pb::SignedHeader> = heights
        .iter()
        .copied()
        .zip(read_all(&heights, |height| signed_header(core, *height))?)
        .collect();
    let size = |height: &u64| {
        headers
            .get(height)
            .and_then(|h| h.header.as_ref())
            .map_or(0, |h| h.log_size)
    };
    let paths: Vec<Vec<Hash>> = core
        .with_tree(|tree| {
            entries
                .iter()
                .map(|(index, (_, height))| tree.inclusion_proof(*index, size(height)))
                .collect::<Result<_, _>>()
        })
        .map_err(internal)?;
    let mut proven: BTreeMap<u64, access_pb::ProvenEntry> = BTreeMap::new();
    for ((index, (entry, height)), path) in entries.into_iter().zip(paths) {
        let tree_size = size(&height);
        proven.insert(
            index,
            access_pb::ProvenEntry {
                index,
                entry,
                proof: Some(ledger_pb::InclusionProof {
                    leaf_index: index,
                    tree_size,
                    path: path.iter().map(|h| h.0.to_vec()).collect(),
                }),
                header: headers.get(&height).cloned(),
            },
        );
    }
    let mut take = |index: u64| {
        proven
            .remove(&index)
            .ok_or_else(|| internal(format!("log entry {index} proven twice in one page")))
    };
    decisions
        .iter()
        .zip(releases)
        .map(|((index, decision), releases)| {
            Ok(pb::AuditEntry {
                decision: Some(decision.into()),
                proven: Some(take(*index)?),
                releases: releases
                    .into_iter()
                    .map(&mut take)
                    .collect::<Result<_, _>>()?,
            })
        })
        .collect()
}

/// Every decision matching `query` (up to [`MAX_EXPORT_DECISIONS`]) as report rows.
pub fn export_rows(ctx: &NodeContext, query: &ParsedQuery) -> Result<Vec<AuditRow>, Status> {
    let store = ctx.core.store();
    let mut after = query.after;
    let mut rows = Vec::new();
    loop {
        let page = store
            .query_decisions(&query.filter, after, 1000)
            .map_err(internal)?;
        for entry in prove_page(&ctx.core, &page.decisions)? {
            rows.push(AuditRow::from_entry(rows.len(), &entry).map_err(internal)?);
            if rows.len() > MAX_EXPORT_DECISIONS {
                return Err(Status::failed_precondition(format!(
                    "more than {MAX_EXPORT_DECISIONS} decisions match; narrow the filter (e.g. \
                     query.from_ms and query.to_ms)"
                )));
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(rows),
        }
    }
}

/// Organisation names of every registered party.
pub fn directory(ctx: &NodeContext) -> Directory {
    ctx.core.with_state(|s| {
        s.parties()
            .into_iter()
            .map(|(id, p)| (id, p.organisation.as_str().to_string()))
            .filter(|(_, o)| !o.is_empty())
            .collect()
    })
}

/// Assembles an audit bundle of blocks `from..=to` from a store: headers 1..=to with their
/// certificates (the validator set on the first header and wherever it changes), the compact
/// range of the log before `from` (`frontier`, from [`custos_ledger::MerkleTree::frontier`]) and
/// every entry of the range.
pub fn build_bundle(
    store: &dyn LedgerStore,
    chain_id: &str,
    validators_at: &dyn Fn(u64) -> ValidatorSet,
    frontier: &[Hash],
    from: u64,
    to: u64,
) -> Result<pb::AuditBundle, custos_storage::StoreError> {
    let missing = |what: String| custos_storage::StoreError::Corrupt {
        key: what,
        reason: "missing".into(),
    };
    let mut headers = Vec::with_capacity(to as usize);
    let mut previous: Option<Hash> = None;
    for height in 1..=to {
        let (header, cert) = store
            .header(height)?
            .ok_or_else(|| missing(format!("header {height}")))?;
        let set = validators_at(height);
        let hash = set.hash();
        let changed = previous != Some(hash);
        previous = Some(hash);
        headers.push(ledger_pb::SignedHeader {
            header: Some(header.to_wire()),
            certificate: Some(cert.to_wire()),
            validator_set: changed.then(|| set.to_wire()),
        });
    }
    let mut blocks = Vec::with_capacity((to + 1 - from) as usize);
    for height in from..=to {
        let block = store
            .block(height)?
            .ok_or_else(|| missing(format!("block {height}")))?;
        blocks.push(pb::BundleBlock {
            height,
            entries: block.entries,
        });
    }
    Ok(pb::AuditBundle {
        version: custos_client::bundle::BUNDLE_VERSION,
        chain_id: chain_id.to_string(),
        exported_at_ms: Timestamp::now().0,
        from_height: from,
        to_height: to,
        headers,
        frontier: frontier.iter().map(|h| h.0.to_vec()).collect(),
        blocks,
    })
}

/// An export's bytes.
fn export(data: Vec<u8>) -> Response<pb::Bundle> {
    Response::new(pb::Bundle { data })
}

#[tonic::async_trait]
impl AuditService for AuditRpc {
    #[instrument(name = "audit.query", skip_all)]
    async fn query_access_log(
        &self,
        request: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<pb::AccessLogPage>, Status> {
        let query = parse_query(&self.ctx, request.get_ref(), QUERY_ACCESS_LOG)?;
        let page = self
            .ctx
            .core
            .store()
            .query_decisions(&query.filter, query.after, query.limit)
            .map_err(internal)?;
        let entries = prove_page(&self.ctx.core, &page.decisions)?;
        Ok(Response::new(pb::AccessLogPage {
            entries,
            next_cursor: page.next.map_or(vec![], |n| n.to_be_bytes().to_vec()),
        }))
    }

    type StreamAccessLogStream = EntryStream;

    #[instrument(name = "audit.stream", skip_all)]
    async fn stream_access_log(
        &self,
        request: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<Self::StreamAccessLogStream>, Status> {
        let query = parse_query(&self.ctx, request.get_ref(), STREAM_ACCESS_LOG)?;
        let ctx = self.ctx.clone();
        // Subscribed before the first read, so no block committed meanwhile is missed.
        let mut events = ctx.core.subscribe();
        let mut shutdown = ctx.shutdown.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            let mut after = query.after;
            loop {
                // Entries below `count` are all committed; the query sees every one of them.
                let count = match ctx.core.store().entry_count() {
                    Ok(count) => count,
                    Err(e) => {
                        let _ = tx.send(Err(internal(e))).await;
                        return;
                    }
                };
                let page = match ctx.core.store().query_decisions(&query.filter, after, 256) {
                    Ok(page) => page,
                    Err(e) => {
                        let _ = tx.send(Err(internal(e))).await;
                        return;
                    }
                };
                let entries = match prove_page(&ctx.core, &page.decisions) {
                    Ok(entries) => entries,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                for ((index, _), entry) in page.decisions.iter().zip(entries) {
                    if tx.send(Ok(entry)).await.is_err() {
                        return;
                    }
                    after = Some(*index);
                }
                if let Some(next) = page.next {
                    after = Some(next.max(after.unwrap_or(0)));
                    continue;
                }
                if count > 0 {
                    after = Some(after.map_or(count - 1, |a| a.max(count - 1)));
                }
                // Caught up: wait for the next block, the node's stop or the client leaving.
                tokio::select! {
                    event = events.recv() => match event {
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                    _ = shutdown.wait_for(|stop| *stop) => return,
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    #[instrument(name = "audit.export_bundle", skip_all)]
    async fn export_bundle(
        &self,
        request: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<pb::Bundle>, Status> {
        let (read, party) = authorize_read(&self.ctx, request.get_ref(), EXPORT_BUNDLE)?;
        if party.role != Role::Auditor {
            return Err(Status::permission_denied(
                "an audit bundle holds every entry of its blocks; only an auditor may export one \
                 (patients and partners verify their own entries with `custos audit log --save`)",
            ));
        }
        let q: pb::BundleQuery = read.query().map_err(|e| field_status(e, "bundle query"))?;
        let tip = self.ctx.core.tip().map_or(0, |t| t.height);
        if tip == 0 {
            return Err(Status::failed_precondition("no block finalized yet"));
        }
        let to = if q.to_height == 0 { tip } else { q.to_height };
        let from = q.from_height.max(1);
        if to > tip {
            return Err(bad(
                "query.to_height",
                format!("the chain ends at height {tip}, got {to}"),
            ));
        }
        if from > to {
            return Err(bad(
                "query.from_height",
                format!("expected at most to_height {to}, got {from}"),
            ));
        }
        let store = self.ctx.core.store();
        let size_at = |height: u64| -> Result<u64, Status> {
            if height == 0 {
                return Ok(0);
            }
            Ok(store
                .header(height)
                .map_err(internal)?
                .ok_or_else(|| internal(format!("missing header {height}")))?
                .0
                .log_size)
        };
        let start = size_at(from - 1)?;
        let entries = size_at(to)? - start;
        if entries > MAX_BUNDLE_ENTRIES {
            return Err(bad(
                "query.to_height",
                format!(
                    "blocks {from}..={to} hold {entries} entries, at most {MAX_BUNDLE_ENTRIES} per \
                     bundle; export the range in parts"
                ),
            ));
        }
        let frontier = self
            .ctx
            .core
            .with_tree(|t| t.frontier(start))
            .map_err(internal)?;
        let ctx = self.ctx.clone();
        let bundle = tokio::task::spawn_blocking(move || {
            let core = ctx.core.clone();
            build_bundle(
                ctx.core.store().as_ref(),
                core.genesis().chain_id.as_str(),
                &|h| core.validators_at(h),
                &frontier,
                from,
                to,
            )
        })
        .await
        .map_err(internal)?
        .map_err(internal)?;
        Ok(export(bundle.encode_to_vec()))
    }

    #[instrument(name = "audit.export_csv", skip_all)]
    async fn export_csv(
        &self,
        request: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<pb::Bundle>, Status> {
        let query = parse_query(&self.ctx, request.get_ref(), EXPORT_CSV)?;
        let rows = export_rows(&self.ctx, &query)?;
        Ok(export(
            report::csv(&rows, &directory(&self.ctx)).into_bytes(),
        ))
    }

    #[instrument(name = "audit.export_fhir", skip_all)]
    async fn export_fhir_audit_events(
        &self,
        request: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<pb::Bundle>, Status> {
        let query = parse_query(&self.ctx, request.get_ref(), EXPORT_FHIR_AUDIT_EVENTS)?;
        let rows = export_rows(&self.ctx, &query)?;
        let bundle = report::fhir_audit_bundle(
            &rows,
            self.ctx.core.genesis().chain_id.as_str(),
            &directory(&self.ctx),
            Timestamp::now(),
        );
        Ok(export(bundle.to_string().into_bytes()))
    }

    #[instrument(name = "audit.verify_chain", skip_all)]
    async fn verify_chain(
        &self,
        request: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<pb::VerifyChainResponse>, Status> {
        authorize_read(&self.ctx, request.get_ref(), VERIFY_CHAIN)?;
        let ctx = self.ctx.clone();
        let (prefix, checked, tip) = tokio::task::spawn_blocking(move || verify_more(&ctx))
            .await
            .map_err(internal)??;
        Ok(Response::new(pb::VerifyChainResponse {
            verified_height: prefix.height,
            log_size: prefix.log_size,
            log_root: if prefix.height == 0 {
                vec![]
            } else {
                prefix.log_root.0.to_vec()
            },
            note:
                "the server's own check; verify offline with `custos audit verify` to trust no node"
                    .into(),
            headers_verified: checked,
            chain_height: tip,
        }))
    }
}

/// Most headers one `VerifyChain` call verifies; a longer unverified stretch takes more calls.
pub const MAX_VERIFY_HEADERS: u64 = 4096;

/// Extends the node's verified prefix of its header chain by the headers finalized since (at
/// most [`MAX_VERIFY_HEADERS`]): each header is verified once, whoever calls. Returns the
/// prefix, how many headers this call verified and the chain's height. Concurrent calls wait
/// for each other rather than verify the same headers twice.
pub fn verify_more(
    ctx: &NodeContext,
) -> Result<(custos_ledger::verify::VerifiedPrefix, u64, u64), Status> {
    let mut guard = match ctx.verified.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    let mut prefix = guard.clone().unwrap_or_else(|| {
        custos_ledger::verify::VerifiedPrefix::genesis(&ctx.core.validators_at(1))
    });
    let store = ctx.core.store();
    let tip = store.tip().map_err(internal)?;
    let until = tip.min(prefix.height.saturating_add(MAX_VERIFY_HEADERS));
    let chain = ctx.core.genesis().chain_id.as_str();
    let mut checked = 0;
    for height in prefix.height + 1..=until {
        let (header, cert) = store
            .header(height)
            .map_err(internal)?
            .ok_or_else(|| internal(format!("missing header {height}")))?;
        prefix = prefix
            .extend(chain, &header, &cert, &ctx.core.validators_at(height))
            .map_err(|e| Status::data_loss(format!("chain verification failed: {e}")))?;
        checked += 1;
        *guard = Some(prefix.clone());
    }
    Ok((prefix, checked, tip))
}
