//! `custos vault`: run a custodian's vault, put / list / erase / rotate as the custodian, scrub a
//! stopped vault's folder, fetch a granted record as a partner, fetch your own record as a
//! patient.
//!
//! Private keys at rest are sealed under a passphrase (`custos vault seal-key`); commands that
//! need one read it from `CUSTOS_VAULT_PASSPHRASE`. A plain key file (`custos keys generate`) is
//! accepted for clients; the vault itself runs only with a sealed one.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use custos_client::Client;
use custos_crypto::{Hash, PartyKeys};
use custos_proto::vault::v1 as pb;
use custos_types::tx::{EraseRecord, RequestAccess};
use custos_types::{AccessMode, Purpose, RecordId, RequestId, TxKind};
use custos_vault::{KdfParams, Passphrase, SealedKeyFile};
use custos_vault_service::{SledVaultStore, VaultClient, VaultConfig, attributes};
use serde_json::json;

use crate::output::Output;
use crate::parties::{decode_decision, describe_decision, party_arg};

/// The environment variable that holds the passphrase sealing private keys.
pub(crate) const PASSPHRASE_ENV: &str = "CUSTOS_VAULT_PASSPHRASE";

/// Where a vault client connects and with whose keys.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct VaultConn {
    /// gRPC endpoint of the vault.
    #[arg(long, env = "CUSTOS_VAULT", default_value = "http://127.0.0.1:7430")]
    vault: String,
    /// gRPC endpoint of a node (for the chain id and access requests).
    #[arg(long, env = "CUSTOS_NODE", default_value = "http://127.0.0.1:7420")]
    node: String,
    /// Your key file, sealed (`custos vault seal-key`) or plain.
    #[arg(long, env = "CUSTOS_KEY")]
    key: PathBuf,
}

#[derive(Subcommand, Debug)]
pub(crate) enum VaultCommand {
    /// Seals a key file under the passphrase in CUSTOS_VAULT_PASSPHRASE (Argon2id).
    SealKey {
        /// The plain key file.
        #[arg(long, env = "CUSTOS_KEY")]
        key: PathBuf,
        /// The sealed file to create (mode 0600, never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Runs the custodian's vault (key and keyring unsealed with CUSTOS_VAULT_PASSPHRASE).
    Run {
        /// gRPC listen address.
        #[arg(long, env = "CUSTOS_VAULT_LISTEN", default_value = "127.0.0.1:7430")]
        listen: std::net::SocketAddr,
        /// gRPC endpoint of a ledger node.
        #[arg(long, env = "CUSTOS_NODE", default_value = "http://127.0.0.1:7420")]
        node: String,
        /// The consortium's genesis file (the only validator set the vault trusts).
        #[arg(long, env = "CUSTOS_GENESIS")]
        genesis: PathBuf,
        /// The custodian's sealed key file.
        #[arg(long, env = "CUSTOS_KEY")]
        key: PathBuf,
        /// The predicate circuit's proving key (`custos zk setup`), to answer predicate proofs.
        #[arg(long, env = "CUSTOS_PROVING_KEY")]
        proving_key: Option<PathBuf>,
        /// The vault's folder (keyring and store).
        #[arg(long, env = "CUSTOS_VAULT_DATA")]
        data: PathBuf,
    },
    /// Re-reads every chunk of every record in a stopped vault's folder and checks it against
    /// the digest registered on the ledger (keyring unsealed with CUSTOS_VAULT_PASSPHRASE);
    /// names each damaged record and part, and exits non-zero if there is one. Opens the store
    /// as the vault does, then only reads: nothing damaged is repaired or deleted.
    Scrub {
        /// The vault's folder (keyring and store).
        #[arg(long, env = "CUSTOS_VAULT_DATA")]
        data: PathBuf,
    },
    /// Encrypts a file into the vault and registers it on the ledger (custodian).
    Put {
        #[command(flatten)]
        conn: VaultConn,
        /// The patient who owns the record (public key, hex).
        #[arg(long)]
        owner: String,
        /// Record category, e.g. `lab`.
        #[arg(long)]
        category: String,
        /// The record's content (a FHIR JSON resource or any bytes).
        #[arg(long)]
        file: PathBuf,
        /// An attribute, `name=value`; repeatable. Names and values: age (years, 0..=127),
        /// smoker (0 or 1, also no/yes), bmi_x10 (0..=1000), systolic_bp (mmHg, 0..=300),
        /// hba1c_x10 (0..=200), cholesterol (mg/dL, 0..=1000), sex (ISO/IEC 5218: 0 not_known,
        /// 1 male, 2 female, 9 not_applicable), postcode_region (0..=99999), diabetes (0 or 1,
        /// also no/yes). All but diabetes make the attribute commitment predicate proofs need;
        /// age, bmi_x10, hba1c_x10, diabetes, smoker and sex make a row of the aggregate table.
        /// Any other name or value is refused.
        #[arg(long = "attr")]
        attributes: Vec<String>,
        /// The record id (hex); random if absent.
        #[arg(long)]
        record: Option<String>,
    },
    /// Lists records: all (custodian) or your own (patient).
    List {
        #[command(flatten)]
        conn: VaultConn,
        /// Only this owner's records (custodian).
        #[arg(long)]
        owner: Option<String>,
    },
    /// Erases a record: yours (patient), or on legal grounds (custodian).
    Erase {
        #[command(flatten)]
        conn: VaultConn,
        /// The record id (hex).
        #[arg(long)]
        record: String,
        /// The custodian erases on legal grounds (flagged on the ledger).
        #[arg(long)]
        legal_grounds: bool,
    },
    /// Re-wraps every data key to a fresh custodian key (custodian).
    RotateKey {
        #[command(flatten)]
        conn: VaultConn,
    },
    /// Fetches a record a granted request released to you and decrypts it into a file.
    Fetch {
        #[command(flatten)]
        conn: VaultConn,
        /// The granted request id (from `custos partner request`).
        #[arg(long)]
        request: String,
        /// Where to write the plaintext (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Asks whether a record satisfies a predicate (partner): requests predicate-mode access,
    /// gets the vault's zero-knowledge proof and verifies it against the record's commitment on
    /// the ledger and the verifying key governance registered. Learns one bit, nothing else.
    Prove {
        #[command(flatten)]
        conn: VaultConn,
        /// The record id (hex).
        #[arg(long)]
        record: String,
        /// HL7 PurposeOfUse code.
        #[arg(long)]
        purpose: String,
        /// The predicate, e.g. `age>=18 && smoker=0 && bmi_x10<300` (attributes: age, smoker,
        /// bmi_x10, systolic_bp, hba1c_x10, cholesterol, sex, postcode_region).
        #[arg(long)]
        predicate: String,
        /// The verifying key artifact (`custos zk setup`); its hash must be the one registered.
        #[arg(long, env = "CUSTOS_VERIFYING_KEY")]
        verifying_key: PathBuf,
        /// A folder (created) to write the verified proof into in snarkjs' layout,
        /// `proof.json` and `public.json`, for `snarkjs groth16 verify`; existing files are
        /// not replaced. Nothing is written when the predicate does not hold.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also write the registered verifying key there as `verification_key.json` (as
        /// `custos zk export-vk` does).
        #[arg(long, requires = "out")]
        with_verification_key: bool,
    },
    /// Fetches one of your own records (the request is logged on the ledger).
    FetchOwn {
        #[command(flatten)]
        conn: VaultConn,
        /// The record id (hex).
        #[arg(long)]
        record: String,
        /// Where to write the plaintext (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
}

fn hash_arg(text: &str, flag: &str) -> anyhow::Result<Hash> {
    Hash::from_hex(text.trim()).map_err(|e| anyhow::anyhow!("{flag}: {e}"))
}

/// Loads a key file, unsealing it with CUSTOS_VAULT_PASSPHRASE if it is sealed.
pub(crate) fn load_keys(path: &Path) -> anyhow::Result<PartyKeys> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    if SealedKeyFile::is_sealed(&text) {
        let sealed: SealedKeyFile = serde_json::from_str(&text)
            .with_context(|| format!("invalid sealed key file {}", path.display()))?;
        let passphrase = Passphrase::from_env(PASSPHRASE_ENV)?;
        Ok(sealed
            .open(&passphrase)
            .with_context(|| format!("{}", path.display()))?)
    } else {
        custos_node::load_keys(path)
    }
}

fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!(
                "{} already exists; refusing to overwrite it",
                path.display()
            )
        } else {
            anyhow::anyhow!("cannot create {}: {e}", path.display())
        }
    })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The `--attr name=value` arguments, checked as the vault checks them (names, ranges, codes,
/// each once) before anything is read or sent.
fn attribute_args(args: &[String]) -> anyhow::Result<Vec<pb::Attribute>> {
    let parsed = args
        .iter()
        .map(|text| {
            attributes::parse_assignment(text)
                .map_err(|e| anyhow::anyhow!("--attr {}: {e}", text.escape_default()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    attributes::normalize(&parsed).map_err(|e| anyhow::anyhow!("--attr: {}", e.reason))
}

/// What a put registered beside the record: the attribute commitment (or which attributes it
/// lacks) and the aggregate row (or which attributes it lacks).
fn attributes_report(
    sent: &[pb::Attribute],
    response: &pb::PutRecordResponse,
) -> (String, serde_json::Value) {
    let coverage = attributes::coverage(sent.iter().map(|a| a.name.as_str()));
    let why = |missing: &[&str], refused: &str| {
        if missing.is_empty() {
            refused.to_string()
        } else {
            format!("missing {}", missing.join(", "))
        }
    };
    let commitment = (!response.attribute_commitment.is_empty())
        .then(|| hex::encode(&response.attribute_commitment));
    let commitment_line = match &commitment {
        Some(c) => format!("attribute commitment registered on the ledger: {c}"),
        None => format!(
            "no attribute commitment ({}): predicate proofs about this record are refused",
            why(&coverage.commitment_missing, "the vault registered none")
        ),
    };
    let row_line = if response.aggregate_row {
        "aggregate row added to the vault's encrypted table".to_string()
    } else {
        format!(
            "no aggregate row ({}): aggregates do not count this record",
            why(&coverage.aggregate_missing, "the vault added none")
        )
    };
    let values: serde_json::Map<String, serde_json::Value> = sent
        .iter()
        .filter_map(|a| match a.value {
            Some(pb::attribute::Value::Numeric(n)) => Some((a.name.clone(), json!(n))),
            _ => None,
        })
        .collect();
    (
        format!("{commitment_line}\n{row_line}"),
        json!({
            "attributes": values,
            "attribute_commitment": commitment,
            "commitment_missing": coverage.commitment_missing,
            "aggregate_row": response.aggregate_row,
            "aggregate_missing": coverage.aggregate_missing,
        }),
    )
}

async fn connect(conn: &VaultConn) -> anyhow::Result<(Client, VaultClient, PartyKeys)> {
    let keys = load_keys(&conn.key)?;
    let node = Client::connect(&conn.node).await?;
    let vault = VaultClient::connect(&conn.vault, node.chain_id().clone()).await?;
    Ok((node, vault, keys))
}

fn summary_json(r: &pb::RecordSummary) -> serde_json::Value {
    json!({
        "record_id": hex::encode(&r.record_id),
        "owner": hex::encode(&r.owner),
        "category": r.category,
        "size": r.size,
        "version": r.version,
        "ciphertext_digest": hex::encode(&r.ciphertext_digest),
        "registered_height": r.registered_height,
    })
}

pub(crate) async fn run(cmd: VaultCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        VaultCommand::SealKey { key, out: path } => {
            let keys = custos_node::load_keys(&key)?;
            let passphrase = Passphrase::from_env(PASSPHRASE_ENV)?;
            let sealed = SealedKeyFile::seal(
                &keys,
                &passphrase,
                KdfParams::RECOMMENDED,
                &mut rand::rngs::OsRng,
            )?;
            write_new(&path, &serde_json::to_string_pretty(&sealed)?)?;
            out.result(
                || {
                    format!(
                        "wrote {} (mode 0600), sealed under the passphrase in {PASSPHRASE_ENV} \
                         (Argon2id, 64 MiB, 3 passes)\nidentity: {}",
                        path.display(),
                        keys.public()
                    )
                },
                json!({ "file": path, "public_key": keys.public().to_hex() }),
            );
        }
        VaultCommand::Run {
            listen,
            node,
            genesis,
            key,
            proving_key,
            data,
        } => {
            let text = std::fs::read_to_string(&key)
                .with_context(|| format!("cannot read key file {}", key.display()))?;
            if !SealedKeyFile::is_sealed(&text) {
                bail!(
                    "{} is not sealed; the vault keeps private keys sealed at rest: run \
                     `custos vault seal-key --key {} --out <sealed file>` first",
                    key.display(),
                    key.display()
                );
            }
            let keys = load_keys(&key)?;
            let passphrase = Passphrase::from_env(PASSPHRASE_ENV)?;
            let mut config = VaultConfig::new(listen, node, genesis, data);
            config.proving_key = proving_key;
            let vault = custos_vault_service::start(&config, keys, &passphrase).await?;
            out.say(format!(
                "vault listening on {} (node {}, data {})",
                vault.addr,
                config.node,
                config.data_dir.display()
            ));
            tokio::signal::ctrl_c().await?;
            vault.stop().await?;
        }
        VaultCommand::Scrub { data } => scrub(&data, out)?,
        VaultCommand::Put {
            conn,
            owner,
            category,
            file,
            attributes,
            record,
        } => {
            let owner = party_arg(&owner, "--owner")?;
            let attributes = attribute_args(&attributes)?;
            let record_id = match record {
                Some(r) => hash_arg(&r, "--record")?.0.to_vec(),
                None => Vec::new(),
            };
            let size = std::fs::metadata(&file)
                .with_context(|| format!("cannot read {}", file.display()))?
                .len();
            let reader = std::fs::File::open(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let (_, vault, keys) = connect(&conn).await?;
            let header = pb::RecordHeader {
                record_id,
                owner: owner.to_vec(),
                category,
                attributes: attributes.clone(),
                size,
            };
            let response = vault.put(&keys, header, reader).await?;
            let id = hex::encode(&response.record_id);
            let (attributes_human, attributes_json) = attributes_report(&attributes, &response);
            let mut value = json!({
                "record_id": id,
                "size": size,
                "chunks": response.chunk_count,
                "ciphertext_digest": hex::encode(&response.ciphertext_digest),
                "register_tx_id": hex::encode(&response.register_tx_id),
                "register_height": response.register_height,
            });
            if let (Some(v), serde_json::Value::Object(extra)) =
                (value.as_object_mut(), attributes_json)
            {
                v.extend(extra);
            }
            out.result(
                || {
                    format!(
                        "record {id}: {size} bytes encrypted in {} chunk(s), registered at height \
                         {}\nciphertext digest {}\n{attributes_human}",
                        response.chunk_count,
                        response.register_height,
                        hex::encode(&response.ciphertext_digest)
                    )
                },
                value,
            );
        }
        VaultCommand::List { conn, owner } => {
            let owner = owner.map(|o| party_arg(&o, "--owner")).transpose()?;
            let (_, vault, keys) = connect(&conn).await?;
            let records = vault.list(&keys, owner).await?;
            out.result(
                || {
                    if records.is_empty() {
                        return "no records".to_string();
                    }
                    records
                        .iter()
                        .map(|r| {
                            format!(
                                "{}  owner {}  {}  {} bytes  registered at height {}",
                                hex::encode(&r.record_id),
                                hex::encode(r.owner.get(..4).unwrap_or_default()),
                                r.category,
                                r.size,
                                r.registered_height
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                },
                json!(records.iter().map(summary_json).collect::<Vec<_>>()),
            );
        }
        VaultCommand::Erase {
            conn,
            record,
            legal_grounds,
        } => {
            let record_id = RecordId(hash_arg(&record, "--record")?);
            let (node, vault, keys) = connect(&conn).await?;
            let tx = node
                .sign(
                    &keys,
                    TxKind::EraseRecord(EraseRecord {
                        record_id,
                        legal_grounds,
                    }),
                )
                .await?;
            let response = vault.erase(&tx).await?;
            out.result(
                || {
                    format!(
                        "record {} erased at height {}: its keys and ciphertext are destroyed; \
                         later requests are denied `erased`",
                        record_id.to_hex(),
                        response.erase_height
                    )
                },
                json!({
                    "record_id": record_id.to_hex(),
                    "erase_tx_id": hex::encode(&response.erase_tx_id),
                    "erase_height": response.erase_height,
                }),
            );
        }
        VaultCommand::RotateKey { conn } => {
            let (_, vault, keys) = connect(&conn).await?;
            let rotated = vault.rotate(&keys).await?;
            out.result(
                || {
                    format!(
                        "custodian key generation {}: {} data key(s) re-wrapped, no record \
                         re-encrypted; the old key is destroyed",
                        rotated.generation, rotated.rewrapped
                    )
                },
                json!({
                    "generation": rotated.generation,
                    "rewrapped": rotated.rewrapped,
                    "public_key": hex::encode(&rotated.public_key),
                }),
            );
        }
        VaultCommand::Fetch {
            conn,
            request,
            out: path,
        } => {
            let request = RequestId(hash_arg(&request, "--request")?);
            let (node, vault, keys) = connect(&conn).await?;
            let fetched = vault.fetch(&keys, request, &path, false).await?;
            check_registered_digest(&node, &keys, Some(request), &fetched).await?;
            report_fetch(out, &fetched);
        }
        VaultCommand::Prove {
            conn,
            record,
            purpose,
            predicate,
            verifying_key,
            out: folder,
            with_verification_key,
        } => {
            let export = folder.map(|dir| SnarkjsExport {
                dir,
                with_verification_key,
            });
            prove(conn, record, purpose, predicate, verifying_key, export, out).await?;
        }
        VaultCommand::FetchOwn {
            conn,
            record,
            out: path,
        } => {
            let record_id = RecordId(hash_arg(&record, "--record")?);
            let (node, vault, keys) = connect(&conn).await?;
            let response = node
                .request_access(
                    &keys,
                    RequestAccess {
                        record_id,
                        purpose: Purpose::parse("PATRQT")?,
                        mode: AccessMode::Raw,
                        justification_digest: None,
                        query: Vec::new(),
                    },
                )
                .await?;
            let decision = decode_decision(response.decision)?;
            out.say(describe_decision(&decision));
            if !decision.granted() {
                bail!("the ledger denied your request ({})", decision.reason);
            }
            let fetched = vault.fetch(&keys, decision.request_id, &path, true).await?;
            check_registered_digest(&node, &keys, None, &fetched).await?;
            report_fetch(out, &fetched);
        }
    }
    Ok(())
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// `custos vault scrub`: progress on stderr (at most once a second), the report on stdout, an
/// error (non-zero exit) when a record is damaged.
fn scrub(data: &Path, out: &Output) -> anyhow::Result<()> {
    if !data.join("keyring.json").exists() {
        bail!(
            "--data: {} holds no vault (no keyring.json)",
            data.display()
        );
    }
    let passphrase = Passphrase::from_env(PASSPHRASE_ENV)?;
    // The parameters only seal a new keyring, and the folder has one.
    let store =
        SledVaultStore::open(data, &passphrase, KdfParams::RECOMMENDED).with_context(|| {
            format!(
                "cannot open the vault in {} (stop a vault that runs on it first)",
                data.display()
            )
        })?;
    let mut shown = std::time::Instant::now();
    let report = store.scrub(|p| {
        if p.records_done == p.records_total || shown.elapsed() >= std::time::Duration::from_secs(1)
        {
            shown = std::time::Instant::now();
            eprintln!(
                "scrub: {}/{} records, {} read",
                p.records_done,
                p.records_total,
                mib(p.bytes_read)
            );
        }
    })?;
    let damaged: Vec<serde_json::Value> = report
        .damaged
        .iter()
        .map(|d| {
            let (part, chunk) = match d.part {
                custos_vault::Part::StorageKey => ("storage_key", None),
                custos_vault::Part::Metadata => ("metadata", None),
                custos_vault::Part::WrappedKey => ("wrapped_key", None),
                custos_vault::Part::Chunk(i) => ("chunk", Some(i)),
                custos_vault::Part::Stream => ("chunks", None),
            };
            json!({
                "record_id": d.record.to_hex(),
                "part": part,
                "chunk": chunk,
                "reason": d.reason,
            })
        })
        .collect();
    out.result(
        || {
            let mut text = format!(
                "scrubbed {} record(s): {} chunk(s), {} read and checked against the registered \
                 digests",
                report.records_checked,
                report.chunks_checked,
                mib(report.bytes_read)
            );
            if report.is_clean() {
                text.push_str("\nno damage found");
            } else {
                text.push_str(&format!("\ndamaged: {} record(s)", report.damaged.len()));
                for d in &report.damaged {
                    text.push_str(&format!("\n  {d}"));
                }
            }
            text
        },
        json!({
            "records_checked": report.records_checked,
            "chunks_checked": report.chunks_checked,
            "bytes_read": report.bytes_read,
            "clean": report.is_clean(),
            "damaged": damaged,
        }),
    );
    if !report.is_clean() {
        bail!(
            "{} damaged record(s) in {}; nothing was changed: restore them from a backup",
            report.damaged.len(),
            data.display()
        );
    }
    Ok(())
}

/// Compares the released ciphertext's digest with the one the ledger registered (read as
/// `keys`: the owner, or the requester of the granted request `via`).
async fn check_registered_digest(
    node: &Client,
    keys: &PartyKeys,
    via: Option<RequestId>,
    fetched: &custos_vault_service::Fetched,
) -> anyhow::Result<()> {
    let record = node.record(keys, fetched.header.record_id(), via).await?;
    if record.ciphertext_digest != fetched.header.ciphertext_digest.0.to_vec() {
        let _ = std::fs::remove_file(&fetched.path);
        bail!(
            "record {}: the released ciphertext is not the one registered on the ledger; the \
             plaintext was discarded",
            fetched.header.record_id()
        );
    }
    Ok(())
}

fn report_fetch(out: &Output, fetched: &custos_vault_service::Fetched) {
    let h = &fetched.header;
    out.result(
        || {
            format!(
                "record {} decrypted to {} ({} bytes, {} chunk(s)); release confirmed on the \
                 ledger by {}",
                h.record_id(),
                fetched.path.display(),
                h.size,
                h.chunk_count,
                h.confirm_tx.short()
            )
        },
        json!({
            "record_id": h.record_id().to_hex(),
            "request_id": h.request_id.to_hex(),
            "file": fetched.path,
            "size": h.size,
            "chunks": h.chunk_count,
            "ciphertext_digest": h.ciphertext_digest.to_hex(),
            "release_digest": h.release_digest.to_hex(),
            "confirm_tx_id": h.confirm_tx.to_hex(),
        }),
    );
}

/// Where `vault prove --out` writes the proof in snarkjs' layout.
struct SnarkjsExport {
    dir: PathBuf,
    with_verification_key: bool,
}

impl SnarkjsExport {
    /// The files to write, checked absent before any request is made.
    fn files(&self) -> anyhow::Result<Vec<PathBuf>> {
        use custos_circuits::snarkjs::{PROOF_FILE, PUBLIC_FILE, VERIFICATION_KEY_FILE};
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("--out: cannot create {}", self.dir.display()))?;
        let mut names = vec![PROOF_FILE, PUBLIC_FILE];
        if self.with_verification_key {
            names.push(VERIFICATION_KEY_FILE);
        }
        let files: Vec<PathBuf> = names.iter().map(|n| self.dir.join(n)).collect();
        for file in &files {
            anyhow::ensure!(
                !file.exists(),
                "--out: {} already exists; refusing to overwrite it",
                file.display()
            );
        }
        Ok(files)
    }
}

async fn prove(
    conn: VaultConn,
    record: String,
    purpose: String,
    predicate: String,
    verifying_key: PathBuf,
    export: Option<SnarkjsExport>,
    out: &Output,
) -> anyhow::Result<()> {
    use custos_circuits::{Predicate, snarkjs};
    use custos_vault_service::predicate::verify_answer;
    let record = RecordId(hash_arg(&record, "--record")?);
    let purpose = Purpose::parse(&purpose).map_err(|e| anyhow::anyhow!("--purpose: {e}"))?;
    let predicate: Predicate = predicate
        .parse()
        .map_err(|e| anyhow::anyhow!("--predicate: {e}"))?;
    let files = export.as_ref().map(SnarkjsExport::files).transpose()?;
    let (node, vault, keys) = connect(&conn).await?;
    // The key the consortium registered; the artifact must hash to it.
    let (registered, vk) = crate::zk::registered_verifying_key(&node, &verifying_key).await?;
    let tx = node
        .sign(
            &keys,
            TxKind::RequestAccess(RequestAccess {
                record_id: record,
                purpose,
                mode: AccessMode::Predicate,
                justification_digest: None,
                query: predicate.to_canonical_bytes().to_vec(),
            }),
        )
        .await?;
    let decision = node
        .access()
        .request_access(tx.to_wire())
        .await
        .map_err(|s| anyhow::anyhow!("the ledger: {}", s.message()))?
        .into_inner()
        .decision
        .ok_or_else(|| anyhow::anyhow!("the ledger answered no decision"))?;
    let request = RequestId(tx.id().0);
    if !decision.granted {
        let reason = custos_types::DecisionReason::from_wire(decision.reason, "reason")
            .map(|r| r.code().to_string())
            .unwrap_or_else(|_| "unknown".into());
        bail!(
            "request {} denied by the ledger ({reason}): nothing is learned about the record",
            request.to_hex()
        );
    }
    let commitment = node
        .record(&keys, record, Some(request))
        .await
        .map_err(|e| anyhow::anyhow!("the ledger: {e}"))?
        .attribute_commitment;
    let (answer, verified) = match vault.prove(&keys, &tx).await {
        Ok(answer) => {
            let verified = verify_answer(
                &answer,
                request,
                custos_types::PartyId(keys.public()),
                &predicate,
                &commitment,
                &vk,
            )
            .map_err(|e| anyhow::anyhow!("the vault's proof does not verify: {e}"))?;
            (Some(answer), Some(verified))
        }
        Err(custos_vault_service::VaultClientError::Status(s))
            if s.message().starts_with("predicate_false") =>
        {
            (None, None)
        }
        Err(e) => return Err(e.into()),
    };
    let holds = verified.is_some();
    // Only what verify_answer verified is exported: its proof, under the public inputs it built.
    let proof_json = verified.as_ref().map(|v| snarkjs::proof_json(&v.proof));
    let public_json = verified.as_ref().map(|v| snarkjs::public_json(&v.public));
    let mut written = Vec::new();
    if let (Some(files), Some(proof), Some(public)) = (&files, &proof_json, &public_json) {
        let vk_json = snarkjs::verification_key_json(&vk);
        for (file, value) in files.iter().zip([proof, public, &vk_json]) {
            crate::zk::write_new_json(file, value)?;
            written.push(file.clone());
        }
    }
    out.result(
        || {
            let how = match &answer {
                Some(a) => format!(
                    "zero-knowledge proof verified under registered key {}; release logged at \
                     height {}",
                    registered.to_hex(),
                    a.release_height
                ),
                None => "the vault released `false` (no proof exists), logged on the ledger".into(),
            };
            let files = match (&export, written.is_empty()) {
                (Some(e), true) => format!("\nno proof to write into {}", e.dir.display()),
                (Some(e), false) => format!(
                    "\nwrote {} into {}; check it there: snarkjs groth16 verify \
                     verification_key.json public.json proof.json{}",
                    written
                        .iter()
                        .filter_map(|f| f.file_name())
                        .map(|f| f.to_string_lossy())
                        .collect::<Vec<_>>()
                        .join(", "),
                    e.dir.display(),
                    if e.with_verification_key {
                        ""
                    } else {
                        " (the key from `custos zk export-vk`)"
                    }
                ),
                (None, _) => String::new(),
            };
            format!(
                "{predicate}: {holds}\n{how}\nrequest {}{files}",
                request.to_hex()
            )
        },
        json!({
            "request_id": request.to_hex(),
            "predicate": predicate.to_string(),
            "holds": holds,
            "verifying_key_id": registered.to_hex(),
            "release_height": answer.as_ref().map(|a| a.release_height),
            "proof": proof_json,
            "public_inputs": public_json,
            "files": written,
        }),
    );
    Ok(())
}
