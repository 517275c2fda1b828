//! The compliance dashboard: a small HTTP listener beside the gRPC server that serves one page
//! (HTML and JavaScript embedded in the binary, no external resources) and a JSON API over the
//! auditor's view of the access log.
//!
//! The page does not take the server's word for the chain: it fetches the headers and their
//! certificates and checks them itself (SHA-256 and Ed25519 through WebCrypto) from the genesis
//! validator set, whose hash the operator pins in the page's address, and checks each entry's
//! inclusion proof against the header it sits in before it shows the entry as verified.
//!
//! The API shows the whole log, so it asks for a bearer token (`Authorization: Bearer …`), a
//! random one the node creates at start and writes, readable by its owner only, beside its store.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use custos_client::report::{self, AuditRow, FlagSettings};
use custos_proto::audit::v1 as audit_pb;
use serde_json::{Value, json};

use crate::rpc::NodeContext;
use crate::rpc::audit::{MAX_PAGE, directory, prove_page, query_filter};

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
/// Most headers one `/api/headers` call returns.
pub const MAX_HEADERS: u64 = 1000;

#[derive(Clone)]
struct Dash {
    ctx: NodeContext,
    token: String,
}

type ApiResult = Result<Json<Value>, (StatusCode, String)>;

fn bad(field: &str, reason: impl std::fmt::Display) -> (StatusCode, String) {
    (StatusCode::BAD_REQUEST, format!("{field}: {reason}"))
}

fn internal(e: impl std::fmt::Display) -> (StatusCode, String) {
    tracing::error!(target: "custos::dashboard", error = %e, "internal error");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; see the node's log".into(),
    )
}

fn authorize(dash: &Dash, headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if custos_crypto::ct_eq(given.as_bytes(), dash.token.as_bytes()) {
        Ok(())
    } else {
        Err((
            StatusCode::UNAUTHORIZED,
            "a bearer token is required (the node writes it to dashboard.token in its data dir)"
                .into(),
        ))
    }
}

/// The dashboard's router over `ctx`, guarded by `token`.
pub fn router(ctx: NodeContext, token: String) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/app.js", get(app_js))
        .route("/api/genesis", get(genesis))
        .route("/api/status", get(status))
        .route("/api/headers", get(headers))
        .route("/api/log", get(log))
        .route("/api/flags", get(flags))
        .with_state(Dash { ctx, token })
}

/// Serves the dashboard on `listener` until `stop` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ctx: NodeContext,
    token: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    axum::serve(listener, router(ctx, token))
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await?;
    Ok(())
}

/// A random bearer token (32 bytes, hex).
pub fn new_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
            ),
        ],
        INDEX_HTML,
    )
        .into_response()
}

async fn app_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        APP_JS,
    )
        .into_response()
}

async fn genesis(State(dash): State<Dash>, h: HeaderMap) -> ApiResult {
    authorize(&dash, &h)?;
    let g = dash.ctx.core.genesis();
    Ok(Json(json!({
        "chain_id": g.chain_id.as_str(),
        "validators": g.validators.iter().map(|v| json!({
            "key": v.public_key.to_hex(),
            "power": v.power,
        })).collect::<Vec<_>>(),
    })))
}

async fn status(State(dash): State<Dash>, h: HeaderMap) -> ApiResult {
    authorize(&dash, &h)?;
    let tip = dash.ctx.core.tip();
    Ok(Json(json!({
        "height": tip.as_ref().map_or(0, |t| t.height),
        "log_size": tip.as_ref().map_or(0, |t| t.log_size),
        "log_root": tip.as_ref().map(|t| t.log_root.to_hex()),
    })))
}

fn number(
    params: &BTreeMap<String, String>,
    name: &str,
) -> Result<Option<u64>, (StatusCode, String)> {
    params
        .get(name)
        .filter(|v| !v.is_empty())
        .map(|v| v.parse::<u64>().map_err(|e| bad(name, e)))
        .transpose()
}

async fn headers(
    State(dash): State<Dash>,
    h: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> ApiResult {
    authorize(&dash, &h)?;
    let tip = dash.ctx.core.tip().map_or(0, |t| t.height);
    let from = number(&params, "from")?.unwrap_or(1).max(1);
    let to = number(&params, "to")?.unwrap_or(tip).min(tip);
    if to >= from && to - from >= MAX_HEADERS {
        return Err(bad("to", format!("at most {MAX_HEADERS} headers per call")));
    }
    let mut out = Vec::new();
    for height in from..=to {
        let (header, cert) = dash
            .ctx
            .core
            .store()
            .header(height)
            .map_err(internal)?
            .ok_or_else(|| internal(format!("missing header {height}")))?;
        let set = dash.ctx.core.validators_at(height);
        out.push(json!({
            "height": height,
            "canonical": hex::encode(header.canonical_bytes()),
            "round": cert.round,
            "certified_hash": cert.header_hash.to_hex(),
            "signatures": cert.signatures.iter().map(|(k, s)| json!({
                "key": hex::encode(k.as_bytes()),
                "signature": hex::encode(s.to_bytes()),
            })).collect::<Vec<_>>(),
            "validators": set.validators().iter().map(|v| json!({
                "key": hex::encode(v.key.as_bytes()),
                "power": v.power,
            })).collect::<Vec<_>>(),
        }));
    }
    Ok(Json(json!({ "tip": tip, "headers": out })))
}

/// The query of `/api/log` as an access-log query (same fields, hex for ids).
fn log_query(
    params: &BTreeMap<String, String>,
) -> Result<audit_pb::AccessLogQuery, (StatusCode, String)> {
    let get = |name: &str| params.get(name).map(String::as_str).unwrap_or_default();
    let hex_field = |name: &str| -> Result<Vec<u8>, (StatusCode, String)> {
        hex::decode(get(name)).map_err(|e| bad(name, e))
    };
    let mode = match get("mode") {
        "" => 0,
        m => custos_types::AccessMode::parse(m)
            .ok_or_else(|| bad("mode", format!("`{m}` is not raw, predicate or aggregate")))?
            .to_wire(),
    };
    let decision = match get("decision") {
        "" | "any" => audit_pb::Decision::Any,
        "granted" => audit_pb::Decision::Granted,
        "denied" => audit_pb::Decision::Denied,
        d => {
            return Err(bad(
                "decision",
                format!("`{d}` is not any, granted or denied"),
            ));
        }
    } as i32;
    let time = |name: &str| -> Result<i64, (StatusCode, String)> {
        match get(name) {
            "" => Ok(0),
            t => t.parse().map_err(|e| bad(name, e)),
        }
    };
    Ok(audit_pb::AccessLogQuery {
        patient: hex_field("patient")?,
        requester: hex_field("requester")?,
        organisation: get("organisation").to_string(),
        record_id: hex_field("record")?,
        purpose: get("purpose").to_string(),
        mode,
        decision,
        break_glass_only: get("break_glass") == "true",
        from_ms: time("from_ms")?,
        to_ms: time("to_ms")?,
        cursor: hex_field("cursor")?,
        page_size: number(params, "page_size")?
            .unwrap_or(0)
            .min(u64::from(u32::MAX)) as u32,
    })
}

fn proven_json(p: &custos_proto::access::v1::ProvenEntry) -> Value {
    let proof = p.proof.clone().unwrap_or_default();
    json!({
        "index": p.index,
        "entry": hex::encode(&p.entry),
        "tree_size": proof.tree_size,
        "path": proof.path.iter().map(hex::encode).collect::<Vec<_>>(),
        "height": p.header.as_ref().and_then(|h| h.header.as_ref()).map_or(0, |h| h.height),
    })
}

async fn log(
    State(dash): State<Dash>,
    h: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> ApiResult {
    authorize(&dash, &h)?;
    let q = log_query(&params)?;
    // The dashboard is the auditor's view.
    let to_status = |s: tonic::Status| (StatusCode::BAD_REQUEST, s.message().to_string());
    let filter = query_filter(&dash.ctx, &q).map_err(to_status)?;
    if q.page_size > MAX_PAGE {
        return Err(bad(
            "page_size",
            format!("at most {MAX_PAGE}, got {}", q.page_size),
        ));
    }
    let limit = if q.page_size == 0 { 100 } else { q.page_size } as usize;
    let after = match q.cursor.len() {
        0 => None,
        8 => Some(u64::from_be_bytes(
            <[u8; 8]>::try_from(q.cursor.as_slice()).map_err(|e| bad("cursor", e))?,
        )),
        n => return Err(bad("cursor", format!("expected 8 bytes, got {n}"))),
    };
    let page = dash
        .ctx
        .core
        .store()
        .query_decisions(&filter, after, limit)
        .map_err(internal)?;
    let directory = directory(&dash.ctx);
    let mut entries = Vec::with_capacity(page.decisions.len());
    let proven_page =
        prove_page(&dash.ctx.core, &page.decisions).map_err(|s| internal(s.message()))?;
    for ((_, decision), entry) in page.decisions.iter().zip(proven_page) {
        let Some(proven) = &entry.proven else {
            return Err(internal("an audit entry without its proof"));
        };
        let mut item = proven_json(proven);
        item["organisation"] = json!(directory.get(&decision.requester));
        item["releases"] = entry.releases.iter().map(proven_json).collect();
        entries.push(item);
    }
    Ok(Json(json!({
        "entries": entries,
        "next_cursor": page.next.map_or(String::new(), |n| hex::encode(n.to_be_bytes())),
    })))
}

async fn flags(
    State(dash): State<Dash>,
    h: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> ApiResult {
    authorize(&dash, &h)?;
    let defaults = FlagSettings::default();
    let settings = FlagSettings {
        denial_threshold: number(&params, "denials")?
            .map_or(defaults.denial_threshold, |n| n as usize),
        window_ms: number(&params, "window_ms")?.map_or(defaults.window_ms, |n| n as i64),
    };
    let all = custos_storage::AuditFilter::default();
    let query = crate::rpc::audit::ParsedQuery {
        filter: all,
        limit: 1000,
        after: None,
    };
    let rows: Vec<AuditRow> =
        crate::rpc::audit::export_rows(&dash.ctx, &query).map_err(|s| internal(s.message()))?;
    let flags = report::flags(&rows, settings, &directory(&dash.ctx));
    Ok(Json(serde_json::to_value(flags).map_err(internal)?))
}

/// Where the dashboard listens and the token its API asks for.
#[derive(Clone, Debug)]
pub struct DashboardInfo {
    /// Its address.
    pub addr: SocketAddr,
    /// The bearer token.
    pub token: String,
}

impl DashboardInfo {
    /// The page's address with the token and the pinned genesis validator-set hash in its
    /// fragment (which the browser never sends to the server).
    pub fn url(&self, valset_hash: &str) -> String {
        format!(
            "http://{}/#token={}&valset={valset_hash}",
            self.addr, self.token
        )
    }
}
