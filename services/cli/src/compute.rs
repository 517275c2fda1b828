//! `custos compute`: a partner's compute worker, EXPLAIN, and the whole aggregate query — the
//! request on the ledger, the evaluation over the encrypted cohort with progress, and the
//! vault's checked, logged release.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use custos_client::Client;
use custos_crypto::PartyKeys;
use custos_proto::compute::v1 as compute_pb;
use custos_proto::compute::v1::compute_service_client::ComputeServiceClient;
use custos_proto::vault::v1 as vault_pb;
use custos_types::tx::RequestAccess;
use custos_types::{AggregateScope, Category, DecisionReason, Purpose, RequestId};
use custos_vault_service::{VaultClient, VaultClientError};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::output::Output;
use crate::parties::{decode_decision, party_arg};

#[derive(Subcommand, Debug)]
pub(crate) enum ComputeCommand {
    /// Runs a compute worker for one custodian's vault (it holds no key, sees no plaintext).
    Run {
        /// gRPC listen address.
        #[arg(long, env = "CUSTOS_COMPUTE_LISTEN", default_value = "127.0.0.1:7440")]
        listen: std::net::SocketAddr,
        /// gRPC endpoint of the custodian's vault.
        #[arg(long, env = "CUSTOS_VAULT", default_value = "http://127.0.0.1:7430")]
        vault: String,
    },
    /// Shows how a query would be evaluated against the vault's schema (EXPLAIN).
    Explain {
        /// gRPC endpoint of the compute worker.
        #[arg(long, env = "CUSTOS_COMPUTE", default_value = "http://127.0.0.1:7440")]
        compute: String,
        /// The query, e.g. "MEAN bmi WHERE age >= 40 AND age < 60 AND hba1c >= 6.5".
        query: String,
    },
    /// Requests an aggregate on the ledger, evaluates it on the worker and has the vault
    /// release it: COUNT, SUM or MEAN over the consenting patients' encrypted records.
    Query {
        /// gRPC endpoint of a node.
        #[arg(long, env = "CUSTOS_NODE", default_value = "http://127.0.0.1:7420")]
        node: String,
        /// Your key file (sealed or plain).
        #[arg(long, env = "CUSTOS_KEY")]
        key: PathBuf,
        /// gRPC endpoint of the custodian's vault.
        #[arg(long, env = "CUSTOS_VAULT", default_value = "http://127.0.0.1:7430")]
        vault: String,
        /// gRPC endpoint of your compute worker.
        #[arg(long, env = "CUSTOS_COMPUTE", default_value = "http://127.0.0.1:7440")]
        compute: String,
        /// The custodian whose records are aggregated (public key, hex).
        #[arg(long)]
        custodian: String,
        /// The record category, e.g. `lab`.
        #[arg(long)]
        category: String,
        /// HL7 PurposeOfUse code, e.g. HRESCH or HMARKT.
        #[arg(long)]
        purpose: String,
        /// The query, e.g. "MEAN bmi WHERE age >= 40 AND age < 60 AND hba1c >= 6.5".
        query: String,
    },
}

/// How an aggregate query ended.
pub(crate) enum AggregateOutcome {
    /// The ledger denied the request (no consent, or a cohort below the consortium's k).
    Denied {
        request: RequestId,
        reason: DecisionReason,
        cohort_size: Option<u64>,
    },
    /// The vault refused to decrypt (fewer than k matching rows, a result it could not verify).
    Refused { request: RequestId, message: String },
    /// Released.
    Released {
        request: RequestId,
        evaluated: Box<compute_pb::EvaluateResult>,
        release: vault_pb::AggregateRelease,
    },
}

/// Draws one progress bar per stage on stderr (only when it is a terminal and `show`).
struct Bars {
    show: bool,
    bars: BTreeMap<String, ProgressBar>,
}

impl Bars {
    fn update(&mut self, p: &compute_pb::Progress) {
        if !self.show {
            return;
        }
        let bar = self.bars.entry(p.stage.clone()).or_insert_with(|| {
            let bar = ProgressBar::new(p.total);
            let unit = if p.stage == "evaluate" {
                "chunks"
            } else {
                "bytes"
            };
            let template = if unit == "bytes" {
                "{prefix:>9} [{bar:32}] {bytes}/{total_bytes} ({bytes_per_sec})"
            } else {
                "{prefix:>9} [{bar:32}] {pos}/{len} chunks ({per_sec})"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(p.stage.clone());
            bar
        });
        bar.set_length(p.total);
        bar.set_position(p.done);
    }

    fn finish(&mut self) {
        for bar in self.bars.values() {
            bar.finish_and_clear();
        }
    }
}

/// The whole flow: the aggregate request signed by `keys` and finalized; if granted, the
/// worker at `compute` evaluates it over the ciphertexts the vault sends for exactly that
/// grant; the vault checks, decrypts and logs the release.
pub(crate) async fn aggregate_query(
    node: &Client,
    vault: &VaultClient,
    compute: &str,
    keys: &PartyKeys,
    scope: &AggregateScope,
    purpose: Purpose,
    show_progress: bool,
) -> anyhow::Result<AggregateOutcome> {
    let response = node
        .request_access(keys, RequestAccess::aggregate(scope, purpose))
        .await?;
    let decision = decode_decision(response.decision)?;
    let request = decision.request_id;
    if !decision.granted() {
        return Ok(AggregateOutcome::Denied {
            request,
            reason: decision.reason,
            cohort_size: decision.cohort.map(|c| c.size),
        });
    }
    let mut worker = ComputeServiceClient::connect(compute.to_string())
        .await
        .with_context(|| format!("cannot reach the compute worker at {compute}"))?
        .max_decoding_message_size(8 << 20);
    let read = vault.cohort_table_read(keys, request);
    let mut events = worker
        .evaluate(compute_pb::EvaluateRequest {
            table_read: Some(read),
        })
        .await
        .map_err(|s| anyhow::anyhow!("the compute worker: {}", s.message()))?
        .into_inner();
    let mut bars = Bars {
        show: show_progress,
        bars: BTreeMap::new(),
    };
    let mut evaluated = None;
    loop {
        let event = match events.message().await {
            Ok(Some(event)) => event,
            Ok(None) => break,
            Err(s) => {
                bars.finish();
                if s.code() == tonic::Code::PermissionDenied {
                    return Ok(AggregateOutcome::Refused {
                        request,
                        message: s.message().to_string(),
                    });
                }
                bail!("the compute worker: {}", s.message());
            }
        };
        match event.event {
            Some(compute_pb::evaluate_event::Event::Progress(p)) => bars.update(&p),
            Some(compute_pb::evaluate_event::Event::Result(r)) => evaluated = Some(r),
            None => {}
        }
    }
    bars.finish();
    let evaluated = evaluated.context("the compute worker ended without a result")?;
    match vault
        .release_aggregate(keys, request, evaluated.result.clone())
        .await
    {
        Ok(release) => Ok(AggregateOutcome::Released {
            request,
            evaluated: Box::new(evaluated),
            release,
        }),
        Err(VaultClientError::Status(s)) if s.code() == tonic::Code::PermissionDenied => {
            Ok(AggregateOutcome::Refused {
                request,
                message: s.message().to_string(),
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// The released value in words, e.g. `22, mean 28.4` or `count 22`.
pub(crate) fn describe_release(release: &vault_pb::AggregateRelease) -> String {
    match (release.aggregate.as_str(), release.value) {
        ("count", _) => format!("{}", release.count),
        ("mean", Some(v)) => format!("{}, mean {v:.1}", release.count),
        ("mean", None) => format!("{}, no mean (nothing matched)", release.count),
        (_, Some(v)) => format!("{}, sum {v:.1}", release.count),
        (_, None) => format!("{}", release.count),
    }
}

pub(crate) async fn run(cmd: ComputeCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        ComputeCommand::Run { listen, vault } => {
            let running =
                custos_compute::start(custos_compute::ComputeConfig::new(listen, vault.clone()))
                    .await?;
            out.result(
                || {
                    format!(
                        "compute worker listening on {} for the vault at {vault}; Ctrl-C stops it",
                        running.endpoint()
                    )
                },
                json!({ "listen": running.addr.to_string(), "vault": vault }),
            );
            tokio::signal::ctrl_c().await?;
            running.stop().await?;
            Ok(())
        }
        ComputeCommand::Explain { compute, query } => {
            let mut worker = ComputeServiceClient::connect(compute.clone())
                .await
                .with_context(|| format!("cannot reach the compute worker at {compute}"))?;
            let plan = worker
                .explain(compute_pb::ExplainRequest { query })
                .await
                .map_err(|s| anyhow::anyhow!("{}", s.message()))?
                .into_inner();
            out.result(
                || plan.plan.clone(),
                json!({
                    "plan": plan.plan,
                    "bootstrapped": plan.bootstrapped,
                    "estimated_rows_per_second": plan.estimated_rows_per_second,
                    "plan_digest": hex::encode(&plan.plan_digest),
                }),
            );
            Ok(())
        }
        ComputeCommand::Query {
            node,
            key,
            vault,
            compute,
            custodian,
            category,
            purpose,
            query,
        } => {
            let scope = AggregateScope {
                custodian: party_arg(&custodian, "--custodian")?,
                category: Category::parse(&category, "--category")
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
                text: query,
            };
            if scope.text.trim().is_empty()
                || scope.text.len() > custos_types::aggregate::MAX_AGGREGATE_TEXT_BYTES
            {
                bail!(
                    "QUERY: expected 1 to {} bytes",
                    custos_types::aggregate::MAX_AGGREGATE_TEXT_BYTES
                );
            }
            let purpose =
                Purpose::parse(&purpose).map_err(|e| anyhow::anyhow!("--purpose: {e}"))?;
            let keys = crate::vault::load_keys(&key)?;
            let node = Client::connect(&node).await?;
            let vault = VaultClient::connect(&vault, node.chain_id().clone()).await?;
            let outcome =
                aggregate_query(&node, &vault, &compute, &keys, &scope, purpose, true).await?;
            report(out, &scope, outcome)
        }
    }
}

fn report(out: &Output, scope: &AggregateScope, outcome: AggregateOutcome) -> anyhow::Result<()> {
    match outcome {
        AggregateOutcome::Denied {
            request,
            reason,
            cohort_size,
        } => bail!(
            "request {} denied by the ledger ({}{}): nothing was computed or released",
            request.to_hex(),
            reason.code(),
            cohort_size.map_or(String::new(), |s| format!(", cohort of {s}"))
        ),
        AggregateOutcome::Refused { request, message } => bail!(
            "request {}: the vault refused to release the aggregate: {message}",
            request.to_hex()
        ),
        AggregateOutcome::Released {
            request,
            evaluated,
            release,
        } => {
            out.result(
                || {
                    format!(
                        "{}: {}\ncohort: {} consenting records ({} with an encrypted row); \
                         evaluated over {} encrypted rows in {:.1} ms ({:.0} rows/s)\n\
                         release checked by the vault and logged at height {} (tx {})\nrequest {}",
                        scope.text,
                        describe_release(&release),
                        release.cohort_size,
                        release.cohort_rows,
                        evaluated.table_rows,
                        evaluated.evaluate_seconds * 1e3,
                        evaluated.rows_per_second,
                        release.release_height,
                        hex::encode(&release.release_tx_id),
                        request.to_hex()
                    )
                },
                json!({
                    "request_id": request.to_hex(),
                    "query": scope.text,
                    "aggregate": release.aggregate,
                    "count": release.count,
                    "value": release.value,
                    "cohort_size": release.cohort_size,
                    "cohort_rows": release.cohort_rows,
                    "table_rows": evaluated.table_rows,
                    "evaluate_seconds": evaluated.evaluate_seconds,
                    "release_height": release.release_height,
                    "release_tx_id": hex::encode(&release.release_tx_id),
                    "plan": evaluated.plan,
                }),
            );
            Ok(())
        }
    }
}
