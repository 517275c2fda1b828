//! `custos demo`: the whole story on a local consortium, with what each actor sees.

use std::collections::BTreeSet;

use anyhow::Context;
use clap::Args;
use custos_client::{Client, verify};
use custos_crypto::{PartyKeys, sha256};
use custos_proto::audit::v1 as audit_pb;
use custos_types::model::Organisation;
use custos_types::tx::{ConfirmRelease, RegisterParty, RegisterRecord, RequestAccess};
use custos_types::{
    AccessMode, Category, Consent, ConsentId, ConsentPeriod, Decision, PartyId, Purpose, RecordId,
    RequestId, Role, Scope, TxKind,
};
use serde_json::json;

use custos_proto::vault::v1 as vault_pb;
use custos_types::Genesis;
use custos_vault_service::{NodeGateway, VaultClient, VaultClientError, VaultConfig};

use crate::audit::verify_log;
use crate::output::Output;
use crate::parties::{decode_decision, describe_decision, random_hash};

#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    /// Keep the demo's folder (keys, genesis, sled store) instead of deleting it.
    #[arg(long, env = "CUSTOS_DEMO_KEEP")]
    keep: bool,
}

struct Cast {
    hospital: PartyKeys,
    insurer: PartyKeys,
    advertiser: PartyKeys,
    auditor: PartyKeys,
    alice: PartyKeys,
    bob: PartyKeys,
}

fn keys() -> PartyKeys {
    PartyKeys::generate(&mut rand::rngs::OsRng)
}

async fn request(
    client: &Client,
    who: &PartyKeys,
    record: RecordId,
    purpose: &str,
    justification: Option<&str>,
) -> anyhow::Result<Decision> {
    let response = client
        .request_access(
            who,
            RequestAccess {
                record_id: record,
                purpose: Purpose::parse(purpose).map_err(|e| anyhow::anyhow!("{e}"))?,
                mode: AccessMode::Raw,
                justification_digest: justification.map(|j| sha256(j.as_bytes())),
                query: vec![],
            },
        )
        .await?;
    decode_decision(response.decision)
}

fn section(out: &Output, title: &str) {
    out.say(format!("\n== {title} =="));
}

/// Validators of the demo consortium: n = 3f + 1 with f = 1.
const VALIDATORS: usize = 4;

/// Attempts at starting the consortium (see [`start_consortium`]).
const START_ATTEMPTS: usize = 3;

/// Whether `error` comes from binding an address another process holds.
fn address_in_use(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::AddrInUse)
    })
}

/// Writes the demo consortium into a new folder and starts its validators in this process.
/// `write_devnet` picks free loopback ports and releases them just before the validators bind
/// them, so another process may take one in between: then the consortium is written again, on
/// other ports, up to [`START_ATTEMPTS`] times.
async fn start_consortium() -> anyhow::Result<(
    tempfile::TempDir,
    Genesis,
    Vec<crate::devnet::DevnetNode>,
    Vec<custos_node::RunningNode>,
)> {
    let mut attempt = 1;
    loop {
        let dir = tempfile::Builder::new().prefix("custos-demo-").tempdir()?;
        let (genesis, devnet) = crate::devnet::write_devnet(dir.path(), VALIDATORS, "custos-demo")?;
        let mut nodes = Vec::new();
        let mut failed = None;
        for n in &devnet {
            let config = custos_node::NodeConfig::load(&n.config)?;
            match custos_node::start(config).await {
                Ok(node) => nodes.push(node),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        match failed {
            None => return Ok((dir, genesis, devnet, nodes)),
            Some(e) if attempt < START_ATTEMPTS && address_in_use(&e) => {
                for node in nodes {
                    node.stop().await?;
                }
                attempt += 1;
            }
            Some(e) => return Err(e.context("starting a demo validator")),
        }
    }
}

pub(crate) async fn run(args: DemoArgs, out: &Output) -> anyhow::Result<()> {
    let (dir, genesis, devnet, nodes) = start_consortium().await?;
    let org = |name: &str| custos_node::load_keys(&dir.path().join(format!("{name}.key")));
    let cast = Cast {
        hospital: org("hospital")?,
        insurer: org("insurer")?,
        advertiser: org("advertiser")?,
        auditor: org("auditor")?,
        alice: keys(),
        bob: keys(),
    };

    section(out, "consortium");
    out.say(format!(
        "{VALIDATORS} validators (Malachite BFT over libp2p on loopback, each with its own sled store under {}); gRPC at\n  {}\n\
         members: St Mary hospital (custodian), Acme insurance and AdCo marketing (partners); auditor: the health regulator\n\
         each actor below talks to a different validator: any of them takes transactions",
        dir.path().display(),
        devnet.iter().map(|n| n.endpoint.as_str()).collect::<Vec<_>>().join("\n  ")
    ));
    let mut clients = Vec::new();
    for n in &devnet {
        clients.push(Client::connect(&n.endpoint).await?);
    }
    let (patients, hospital_c, insurer_c, advertiser_c) =
        (&clients[0], &clients[1], &clients[2], &clients[3]);
    let auditor_c = advertiser_c;

    section(
        out,
        "patients register (pseudonymous: only a public key goes on the ledger)",
    );
    for (name, p) in [("alice", &cast.alice), ("bob", &cast.bob)] {
        patients
            .submit(
                p,
                TxKind::RegisterParty(RegisterParty {
                    party: PartyId(p.public()),
                    role: Role::Patient,
                    encryption_key: p.encryption_public(),
                    organisation: Organisation::default(),
                }),
            )
            .await?;
        out.say(format!(
            "{name}: registered as patient {}",
            p.public().short()
        ));
    }

    section(
        out,
        "hospital registers encrypted records (only ids and digests on chain)",
    );
    let alice_lab = RecordId(random_hash());
    let bob_imaging = RecordId(random_hash());
    for (record, owner, category) in [
        (alice_lab, &cast.alice, "lab"),
        (bob_imaging, &cast.bob, "imaging"),
    ] {
        hospital_c
            .submit(
                &cast.hospital,
                TxKind::RegisterRecord(RegisterRecord {
                    record_id: record,
                    owner: PartyId(owner.public()),
                    category: Category::parse(category, "category")
                        .map_err(|e| anyhow::anyhow!("{e}"))?,
                    ciphertext_digest: sha256(record.0.as_bytes()),
                    attribute_commitment: None,
                }),
            )
            .await?;
        out.say(format!(
            "hospital: record {} ({category}) of patient {}",
            record.short(),
            owner.public().short()
        ));
    }

    section(
        out,
        "alice consents: Acme insurance may read her lab records for payment (HPAYMT)",
    );
    let grant = patients
        .submit(
            &cast.alice,
            TxKind::GrantConsent(Consent {
                patient: PartyId(cast.alice.public()),
                grantee: PartyId(cast.insurer.public()),
                scope: Scope::Some {
                    records: BTreeSet::new(),
                    categories: BTreeSet::from([
                        Category::parse("lab", "category").map_err(|e| anyhow::anyhow!("{e}"))?
                    ]),
                },
                purposes: BTreeSet::from([Purpose::HPAYMT]),
                modes: BTreeSet::from([AccessMode::Raw]),
                period: ConsentPeriod::default(),
            }),
        )
        .await?;
    let consent_id = ConsentId(
        custos_crypto::Hash::from_slice(&grant.tx_id).map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    out.say(format!(
        "alice: consent {} finalized at height {}",
        consent_id.short(),
        grant.height
    ));

    section(out, "insurer asks for alice's lab record for payment");
    let d1 = request(insurer_c, &cast.insurer, alice_lab, "HPAYMT", None).await?;
    out.say(format!("insurer sees: {}", describe_decision(&d1)));
    let release = hospital_c
        .submit(
            &cast.hospital,
            TxKind::ConfirmRelease(ConfirmRelease {
                request_id: d1.request_id,
                release_digest: sha256(b"wrapped key and ciphertext released to the insurer"),
            }),
        )
        .await?;
    out.say(format!(
        "hospital: release confirmed on the ledger at height {}",
        release.height
    ));

    section(
        out,
        "advertiser asks for alice's lab record for marketing (HMARKT)",
    );
    let d2 = request(advertiser_c, &cast.advertiser, alice_lab, "HMARKT", None).await?;
    out.say(format!("advertiser sees: {}", describe_decision(&d2)));

    section(
        out,
        "advertiser re-signs the insurer's payment request as its own, to share its id",
    );
    // The signed body names its author, so the very same bytes signed by another party are
    // refused before any work: no second party can produce the insurer's request id.
    let insurers = insurer_c
        .sign(
            &cast.insurer,
            TxKind::RequestAccess(RequestAccess {
                record_id: alice_lab,
                purpose: Purpose::HPAYMT,
                mode: AccessMode::Raw,
                justification_digest: None,
                query: vec![],
            }),
        )
        .await?;
    let mut stolen = insurers.to_wire();
    stolen.author = cast.advertiser.public().as_bytes().to_vec();
    stolen.signature = cast
        .advertiser
        .identity
        .sign_in(custos_crypto::context::TRANSACTION, &stolen.body)
        .to_bytes()
        .to_vec();
    match advertiser_c.access().request_access(stolen).await {
        Err(status) => out.say(format!(
            "advertiser is refused: {} ({})",
            status.message(),
            status.code()
        )),
        Ok(_) => anyhow::bail!("the advertiser's copy of the insurer's request was accepted"),
    }

    section(
        out,
        "insurer tries a purpose alice did not consent to (HMARKT is not under HPAYMT)",
    );
    let d3 = request(insurer_c, &cast.insurer, alice_lab, "HMARKT", None).await?;
    out.say(format!("insurer sees: {}", describe_decision(&d3)));

    section(out, "alice revokes her consent");
    let revoke = patients
        .submit(&cast.alice, TxKind::RevokeConsent(consent_id))
        .await?;
    out.say(format!(
        "alice: consent {} revoked at height {}",
        consent_id.short(),
        revoke.height
    ));
    let d4 = request(insurer_c, &cast.insurer, alice_lab, "HPAYMT", None).await?;
    out.say(format!("insurer sees: {}", describe_decision(&d4)));

    section(
        out,
        "emergency: the hospital breaks the glass for bob's imaging (ETREAT)",
    );
    let d5 = request(
        hospital_c,
        &cast.hospital,
        bob_imaging,
        "ETREAT",
        Some("unconscious patient in ER, bed 4"),
    )
    .await?;
    out.say(format!("hospital sees: {}", describe_decision(&d5)));
    out.say(
        "(only the justification's SHA-256 is on the ledger; the access is flagged for review)",
    );

    section(out, "alice reads her own access history");
    let history = patients
        .access_log_all(
            &cast.alice,
            &audit_pb::AccessLogQuery {
                patient: cast.alice.public().as_bytes().to_vec(),
                ..Default::default()
            },
        )
        .await?;
    for e in &history {
        out.say(format!(
            "alice sees: {}",
            describe_decision(&decode_decision(e.decision.clone())?)
        ));
    }
    let snoop = patients
        .access_log(
            &cast.alice,
            &audit_pb::AccessLogQuery {
                patient: cast.bob.public().as_bytes().to_vec(),
                ..Default::default()
            },
        )
        .await;
    out.say(match snoop {
        Err(e) => format!("alice asks for bob's history: refused ({e})"),
        Ok(_) => "alice asks for bob's history: ALLOWED (this is a bug)".to_string(),
    });

    section(
        out,
        "auditor: the whole log, every proof checked against the genesis, trusting no node",
    );
    // The auditor's validator may not have applied the last decided block yet (each validator
    // applies a decision on its own): wait, with a deadline, until it holds the last decision.
    let last = [&d1, &d2, &d3, &d4, &d5]
        .iter()
        .map(|d| d.height.0)
        .max()
        .unwrap_or(0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while auditor_c.status().await?.height < last {
        if std::time::Instant::now() > deadline {
            anyhow::bail!("the auditor's validator did not reach height {last} within 30 s");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let all = auditor_c
        .access_log_all(&cast.auditor, &audit_pb::AccessLogQuery::default())
        .await?;
    let verified = verify_log(&genesis, &all)?;
    for d in &verified {
        out.say(format!("auditor sees: {}", describe_decision(d)));
    }
    let headers = auditor_c.headers().await?;
    let trusted = verify::genesis_validators(&genesis)?;
    let chain = verify::verify_header_chain(&genesis, &trusted, &headers)?;
    let (tip, _) = chain.last().context("no blocks")?;
    let granted = verified.iter().filter(|d| d.granted()).count();
    out.say(format!(
        "auditor: {} decisions ({granted} granted, {} denied, {} break-glass), each with a verified inclusion proof and commit certificate",
        verified.len(),
        verified.len() - granted,
        verified.iter().filter(|d| d.break_glass).count()
    ));
    out.say(format!(
        "auditor: header chain of {} blocks verified; log size {}, root {}",
        chain.len(),
        tip.log_size,
        tip.log_root
    ));

    section(
        out,
        "vault: the hospital's encrypted store releases a record only under a finalized grant",
    );
    let vault_ok = vault_episode(
        out,
        dir.path(),
        &genesis,
        &devnet[1].endpoint,
        &cast,
        patients,
        insurer_c,
    )
    .await?;

    section(
        out,
        "auditor: an offline bundle of the whole log, and what needs review",
    );
    let bundle = auditor_c.export_bundle(&cast.auditor, 0, 0).await?;
    let bundle_path = dir.path().join("audit-bundle.bin");
    std::fs::write(&bundle_path, prost::Message::encode_to_vec(&bundle))?;
    let checked = custos_client::bundle::verify_bundle(&genesis, &bundle)?;
    out.say(format!(
        "auditor: exported {} headers and all {} log entries to {}; verified offline: every certificate, every entry complete and in order ({} decisions)",
        checked.headers,
        checked.entries.len(),
        bundle_path.display(),
        checked.decisions()
    ));
    let everything = auditor_c
        .access_log_all(&cast.auditor, &audit_pb::AccessLogQuery::default())
        .await?;
    let rows = custos_client::report::AuditRow::from_entries(&everything)?;
    let flags = custos_client::report::flags(
        &rows,
        custos_client::report::FlagSettings::default(),
        &custos_client::report::Directory::new(),
    );
    out.say(format!(
        "auditor: {} break-glass access(es) awaiting review, {} attempt(s) after a revocation, {} release(s) confirmed",
        flags.break_glass.len(),
        flags.after_revocation.len(),
        rows.iter().map(|r| r.releases.len()).sum::<usize>()
    ));

    let expected = [
        d1.granted(),
        !d2.granted(),
        !d3.granted(),
        !d4.granted(),
        d5.granted(),
    ];
    for node in nodes {
        node.stop().await?;
    }
    if args.keep {
        let kept = dir.keep();
        out.say(format!("\nkept the demo folder: {}", kept.display()));
    }
    if expected.iter().any(|ok| !ok) || verified.len() != 5 || !vault_ok {
        anyhow::bail!("the demo's decisions were not as expected; see above");
    }
    out.result(
        || {
            "\ndemo complete: every access decided and logged before release, every proof verified"
                .to_string()
        },
        json!({
            "decisions": verified.len(),
            "granted": granted,
            "log_size": tip.log_size,
            "log_root": tip.log_root.to_hex(),
            "height": chain.len(),
        }),
    );
    Ok(())
}

/// The hospital's vault on its validator: alice's lab record and bob's imaging record are put
/// (encrypted, registered with their ciphertext digests); the insurer, granted alice's lab
/// records, decrypts that one and is refused bob's. True if everything went as it should.
async fn vault_episode(
    out: &Output,
    dir: &std::path::Path,
    genesis: &Genesis,
    hospital_node: &str,
    cast: &Cast,
    patients: &Client,
    insurer_c: &Client,
) -> anyhow::Result<bool> {
    use rand::RngCore;
    let mut secret = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let passphrase = custos_vault::Passphrase::new(hex::encode(secret))?;
    let config = VaultConfig::new(
        "127.0.0.1:0".parse()?,
        hospital_node.to_string(),
        dir.join("genesis.json"),
        dir.join("vault"),
    );
    let gateway = NodeGateway::connect(hospital_node).await?;
    let vault = custos_vault_service::start_with(
        &config,
        cast.hospital.clone(),
        &passphrase,
        genesis.clone(),
        gateway,
    )
    .await?;
    let client = VaultClient::connect(&vault.endpoint(), genesis.chain_id.clone()).await?;
    out.say(format!(
        "hospital: vault at {} (keyring sealed under a passphrase with Argon2id; records in \
         64 KiB ChaCha20-Poly1305 chunks, data keys wrapped with HPKE)",
        vault.endpoint()
    ));
    patients
        .submit(
            &cast.alice,
            TxKind::GrantConsent(Consent {
                patient: PartyId(cast.alice.public()),
                grantee: PartyId(cast.insurer.public()),
                scope: Scope::Some {
                    records: BTreeSet::new(),
                    categories: BTreeSet::from([
                        Category::parse("lab", "category").map_err(|e| anyhow::anyhow!("{e}"))?
                    ]),
                },
                purposes: BTreeSet::from([Purpose::HPAYMT]),
                modes: BTreeSet::from([AccessMode::Raw]),
                period: ConsentPeriod::default(),
            }),
        )
        .await?;
    out.say("alice: consents again to Acme reading her lab records for payment");
    let lab: &[u8] = br#"{"resourceType":"Observation","status":"final","code":{"text":"HbA1c"},"valueQuantity":{"value":6.1,"unit":"%"}}"#;
    let imaging: &[u8] =
        br#"{"resourceType":"ImagingStudy","status":"available","modality":[{"code":"MR"}]}"#;
    let mut ids = Vec::new();
    for (bytes, owner, category, name) in [
        (lab, &cast.alice, "lab", "alice"),
        (imaging, &cast.bob, "imaging", "bob"),
    ] {
        let header = vault_pb::RecordHeader {
            record_id: Vec::new(),
            owner: PartyId(owner.public()).to_vec(),
            category: category.into(),
            attributes: Vec::new(),
            size: bytes.len() as u64,
        };
        let put = client
            .put(&cast.hospital, header, std::io::Cursor::new(bytes.to_vec()))
            .await?;
        let id = RecordId::from_field(&put.record_id, "record_id")?;
        out.say(format!(
            "hospital: put {name}'s {category} record {} ({} bytes encrypted), registered with \
             its ciphertext digest at height {}",
            id.short(),
            bytes.len(),
            put.register_height
        ));
        ids.push(id);
    }
    let granted = request(insurer_c, &cast.insurer, ids[0], "HPAYMT", None).await?;
    out.say(format!("insurer sees: {}", describe_decision(&granted)));
    let file = dir.join("insurer-alice-lab.json");
    let fetched = client
        .fetch(&cast.insurer, granted.request_id, &file, false)
        .await?;
    let text = std::fs::read(&file)?;
    out.say(format!(
        "insurer decrypts: {}",
        String::from_utf8_lossy(&text)
    ));
    out.say(format!(
        "(the vault checked the grant's commit certificate and inclusion proof against the \
         genesis itself, and confirmed the release on the ledger ({}) before sending a byte)",
        fetched.header.confirm_tx.short()
    ));
    let denied = request(insurer_c, &cast.insurer, ids[1], "HPAYMT", None).await?;
    out.say(format!("insurer sees: {}", describe_decision(&denied)));
    let refused = client
        .fetch(
            &cast.insurer,
            denied.request_id,
            &dir.join("insurer-bob-imaging.json"),
            false,
        )
        .await;
    let refused_ok = matches!(
        &refused,
        Err(VaultClientError::Status(s)) if s.message().starts_with(denied.reason.code())
    );
    out.say(match &refused {
        Err(VaultClientError::Status(s)) => format!("vault refuses the insurer: {}", s.message()),
        Err(e) => format!("vault fetch failed: {e}"),
        Ok(_) => "vault released bob's record to the insurer: this is a bug".to_string(),
    });
    let predicate_ok =
        predicate_episode(out, dir, &vault, &client, cast, patients, insurer_c).await?;
    let aggregate_ok = aggregate_episode(out, &vault, &client, cast, patients).await?;
    vault.stop().await?;
    Ok(text == lab
        && granted.granted()
        && !denied.granted()
        && refused_ok
        && predicate_ok
        && aggregate_ok)
}

/// Predicate proofs: the consortium registers the circuit's verifying key through governance;
/// the hospital's vault gets the proving key and puts alice's and bob's checkup records with
/// their attributes (a Poseidon commitment goes on the ledger); the insurer, whom alice lets
/// ask predicates, learns one verified bit about her, and nothing about bob.
async fn predicate_episode(
    out: &Output,
    dir: &std::path::Path,
    vault: &custos_vault_service::RunningVault<custos_vault_service::SledVaultStore, NodeGateway>,
    client: &VaultClient,
    cast: &Cast,
    patients: &Client,
    insurer_c: &Client,
) -> anyhow::Result<bool> {
    use custos_circuits::{KeyId, Predicate, VerifyingKeyArtifact};
    use custos_vault_service::predicate::{CIRCUIT, verify_answer};
    section(
        out,
        "predicate proofs: the insurer learns `age>=18 && smoker=0 && bmi_x10<300` and nothing else",
    );
    let (pk, vk) = custos_circuits::setup(&mut rand::rngs::OsRng)?;
    let vk_path = dir.join("predicate.vk");
    vk.save(&vk_path)?;
    let mut register = insurer_c
        .sign(
            &cast.hospital,
            TxKind::Governance(custos_types::tx::Governance::RegisterVerifyingKey {
                circuit: CIRCUIT.into(),
                key_hash: Some(custos_crypto::Hash(vk.id().0)),
            }),
        )
        .await?;
    register.cosign(&cast.insurer.identity);
    let registered = insurer_c.submit_signed(&register, true).await?;
    anyhow::ensure!(
        registered.reason.is_empty(),
        "registering the verifying key: {}",
        registered.reason
    );
    out.say(format!(
        "consortium: St Mary and Acme register the Groth16 verifying key {} for `{CIRCUIT}` \
         (governance, 2 of 3 members) at height {}",
        &vk.id().to_hex()[..16],
        registered.height
    ));
    vault.set_proving_key(pk)?;
    let attributes = |values: [(&str, i64); 8]| -> Vec<vault_pb::Attribute> {
        values
            .iter()
            .map(|(name, v)| vault_pb::Attribute {
                name: (*name).into(),
                value: Some(vault_pb::attribute::Value::Numeric(*v)),
            })
            .collect()
    };
    let checkup: &[u8] =
        br#"{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Observation","code":{"text":"BMI"},"valueQuantity":{"value":24.5}}}]}"#;
    let mut ids = Vec::new();
    for (owner, name, values) in [
        (
            &cast.alice,
            "alice",
            [
                ("age", 42),
                ("smoker", 0),
                ("bmi_x10", 245),
                ("systolic_bp", 118),
                ("hba1c_x10", 54),
                ("cholesterol", 180),
                ("sex", 2),
                ("postcode_region", 1017),
            ],
        ),
        (
            &cast.bob,
            "bob",
            [
                ("age", 57),
                ("smoker", 1),
                ("bmi_x10", 312),
                ("systolic_bp", 141),
                ("hba1c_x10", 71),
                ("cholesterol", 240),
                ("sex", 1),
                ("postcode_region", 1017),
            ],
        ),
    ] {
        let header = vault_pb::RecordHeader {
            record_id: Vec::new(),
            owner: PartyId(owner.public()).to_vec(),
            category: "checkup".into(),
            attributes: attributes(values),
            size: checkup.len() as u64,
        };
        let put = client
            .put(
                &cast.hospital,
                header,
                std::io::Cursor::new(checkup.to_vec()),
            )
            .await?;
        out.say(format!(
            "hospital: put {name}'s checkup with 8 attributes; attribute commitment {} on the ledger",
            hex::encode(&put.attribute_commitment[..8.min(put.attribute_commitment.len())])
        ));
        ids.push(RecordId::from_field(&put.record_id, "record_id")?);
    }
    patients
        .submit(
            &cast.alice,
            TxKind::GrantConsent(Consent {
                patient: PartyId(cast.alice.public()),
                grantee: PartyId(cast.insurer.public()),
                scope: Scope::Some {
                    records: BTreeSet::from([ids[0]]),
                    categories: BTreeSet::new(),
                },
                purposes: BTreeSet::from([Purpose::HPAYMT]),
                modes: BTreeSet::from([AccessMode::Predicate]),
                period: ConsentPeriod::default(),
            }),
        )
        .await?;
    out.say("alice: lets Acme ask predicates (not read) about her checkup, for payment");
    let predicate: Predicate = "age>=18 && smoker=0 && bmi_x10<300".parse()?;
    let registered_id = insurer_c
        .consent()
        .get_verifying_key(custos_proto::consent::v1::GetVerifyingKeyRequest {
            circuit: CIRCUIT.into(),
        })
        .await?
        .into_inner()
        .key_hash;
    let vk = VerifyingKeyArtifact::load_file(
        &vk_path,
        &KeyId(
            registered_id
                .try_into()
                .map_err(|_| anyhow::anyhow!("malformed registered key id"))?,
        ),
    )?;
    let mut results = Vec::new();
    for (id, name) in [(ids[0], "alice"), (ids[1], "bob")] {
        let tx = insurer_c
            .sign(
                &cast.insurer,
                TxKind::RequestAccess(RequestAccess {
                    record_id: id,
                    purpose: Purpose::HPAYMT,
                    mode: AccessMode::Predicate,
                    justification_digest: None,
                    query: predicate.to_canonical_bytes().to_vec(),
                }),
            )
            .await?;
        let decision = insurer_c
            .access()
            .request_access(tx.to_wire())
            .await?
            .into_inner()
            .decision
            .context("no decision")?;
        if !decision.granted {
            out.say(format!(
                "insurer asks about {name}: denied by the ledger (no consent): learns nothing"
            ));
            results.push(None);
            continue;
        }
        let answer = client.prove(&cast.insurer, &tx).await?;
        let commitment = insurer_c
            .record(&cast.insurer, id, Some(RequestId(tx.id().0)))
            .await?
            .attribute_commitment;
        let verified = verify_answer(
            &answer,
            RequestId(tx.id().0),
            PartyId(cast.insurer.public()),
            &predicate,
            &commitment,
            &vk,
        );
        out.say(format!(
            "insurer learns about {name}: {predicate}: {} ({}-byte proof verified against the \
             on-chain commitment and the registered key; release logged at height {})",
            verified.is_ok(),
            answer.proof.len(),
            answer.release_height
        ));
        results.push(Some(verified.is_ok()));
    }
    Ok(results == [Some(true), None])
}

/// One synthetic patient of the aggregate episode: (age, bmi_x10, hba1c_x10, smoker, sex as
/// ISO/IEC 5218: 2 female, 1 male).
type Vitals = (i64, i64, i64, i64, i64);

/// Deterministic vitals: a third aged 40–59 with HbA1c ≥ 6.5 %, a third younger with normal
/// HbA1c, a third aged 60–89 with mixed values.
fn vitals(i: i64) -> Vitals {
    let (age, hba1c) = match i % 3 {
        0 => (40 + (i * 7) % 20, 65 + (i * 3) % 20),
        1 => (20 + (i * 5) % 20, 50 + (i * 3) % 15),
        _ => (60 + (i * 11) % 30, 55 + (i * 7) % 30),
    };
    (
        age,
        220 + (i * 13) % 120,
        hba1c,
        i64::from(i % 4 == 0),
        2 - i % 2,
    )
}

/// Patients in the aggregate episode, and how many of them consent.
const COHORT_PATIENTS: i64 = 48;
const COHORT_CONSENTING: i64 = 40;

/// Aggregates on encrypted data: 48 patients' lab records go into the hospital's vault (each
/// also gets a row in its encrypted table); 40 of them let AdCo compute aggregates for
/// marketing. AdCo's compute worker evaluates over ciphertexts only; the vault decrypts only the
/// aggregate, after checking it, and logs the release. A query narrowing to fewer than k
/// patients is refused by the vault, and one over a category without consenting patients by the
/// ledger; both are logged.
async fn aggregate_episode(
    out: &Output,
    vault: &custos_vault_service::RunningVault<custos_vault_service::SledVaultStore, NodeGateway>,
    client: &VaultClient,
    cast: &Cast,
    patients: &Client,
) -> anyhow::Result<bool> {
    use custos_types::AggregateScope;
    section(
        out,
        "aggregates on encrypted data: AdCo learns cohort statistics, never a record",
    );
    let people: Vec<PartyKeys> = (0..COHORT_PATIENTS).map(|_| keys()).collect();
    let mut joins = tokio::task::JoinSet::new();
    for (i, p) in people.iter().enumerate() {
        let (node, p, advertiser) = (
            patients.clone(),
            p.clone(),
            PartyId(cast.advertiser.public()),
        );
        joins.spawn(async move {
            node.submit(
                &p,
                TxKind::RegisterParty(RegisterParty {
                    party: PartyId(p.public()),
                    role: Role::Patient,
                    encryption_key: p.encryption_public(),
                    organisation: Organisation::default(),
                }),
            )
            .await?;
            if (i as i64) < COHORT_CONSENTING {
                node.submit(
                    &p,
                    TxKind::GrantConsent(Consent {
                        patient: PartyId(p.public()),
                        grantee: advertiser,
                        scope: Scope::Some {
                            records: BTreeSet::new(),
                            categories: BTreeSet::from([Category::parse("lab", "category")
                                .map_err(|e| anyhow::anyhow!("{e}"))?]),
                        },
                        purposes: BTreeSet::from([
                            Purpose::parse("HMARKT").map_err(|e| anyhow::anyhow!("{e}"))?
                        ]),
                        modes: BTreeSet::from([AccessMode::Aggregate]),
                        period: ConsentPeriod::default(),
                    }),
                )
                .await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(joined) = joins.join_next().await {
        joined??;
    }
    let mut puts = tokio::task::JoinSet::new();
    for (i, p) in people.iter().enumerate() {
        let (age, bmi, hba1c, smoker, sex) = vitals(i as i64);
        let body = format!(
            r#"{{"resourceType":"Observation","status":"final","code":{{"text":"HbA1c"}},"valueQuantity":{{"value":{:.1},"unit":"%"}}}}"#,
            hba1c as f64 / 10.0
        );
        let attr = |name: &str, v: i64| vault_pb::Attribute {
            name: name.into(),
            value: Some(vault_pb::attribute::Value::Numeric(v)),
        };
        let header = vault_pb::RecordHeader {
            record_id: Vec::new(),
            owner: PartyId(p.public()).to_vec(),
            category: "lab".into(),
            attributes: vec![
                attr("age", age),
                attr("bmi_x10", bmi),
                attr("hba1c_x10", hba1c),
                attr("diabetes", i64::from(hba1c >= 65)),
                attr("smoker", smoker),
                attr("sex", sex),
            ],
            size: body.len() as u64,
        };
        let (client, hospital) = (client.clone(), cast.hospital.clone());
        puts.spawn(async move {
            client
                .put(&hospital, header, std::io::Cursor::new(body.into_bytes()))
                .await
        });
    }
    let mut rows = 0;
    while let Some(joined) = puts.join_next().await {
        rows += usize::from(joined??.aggregate_row);
    }
    out.say(format!(
        "{COHORT_PATIENTS} patients register; {COHORT_CONSENTING} consent to AdCo computing aggregates over their lab \
         records for marketing (HMARKT); the hospital puts their {COHORT_PATIENTS} lab records, each also \
         encrypted as a row of its FHE table ({rows} rows; tfhe-rs LWE, 2048 rows per ciphertext)"
    ));
    let worker = custos_compute::start(custos_compute::ComputeConfig::new(
        "127.0.0.1:0".parse()?,
        vault.endpoint(),
    ))
    .await?;
    let query = "MEAN bmi WHERE age >= 40 AND age < 60 AND hba1c >= 6.5";
    let plan = custos_proto::compute::v1::compute_service_client::ComputeServiceClient::connect(
        worker.endpoint(),
    )
    .await?
    .explain(custos_proto::compute::v1::ExplainRequest {
        query: query.into(),
    })
    .await?
    .into_inner();
    out.say(format!(
        "AdCo: compute worker at {} (no key: it evaluates ciphertexts); EXPLAIN {query}: {}",
        worker.endpoint(),
        if plan.bootstrapped {
            "bootstrapped (tfhe integer API)"
        } else {
            "additive: plain LWE sums of pre-encoded columns, no bootstrapping"
        }
    ));
    let scope = |category: &str, text: &str| -> anyhow::Result<AggregateScope> {
        Ok(AggregateScope {
            custodian: PartyId(cast.hospital.public()),
            category: Category::parse(category, "category").map_err(|e| anyhow::anyhow!("{e}"))?,
            text: text.into(),
        })
    };
    let marketing = Purpose::parse("HMARKT").map_err(|e| anyhow::anyhow!("{e}"))?;
    let ask = |s: AggregateScope| {
        let endpoint = worker.endpoint();
        async move {
            crate::compute::aggregate_query(
                patients,
                client,
                &endpoint,
                &cast.advertiser,
                &s,
                marketing,
                false,
            )
            .await
        }
    };
    // What the answer must be: the consenting patients' plaintext, known to the demo only.
    let matching: Vec<Vitals> = (0..COHORT_CONSENTING)
        .map(vitals)
        .filter(|(age, _, hba1c, _, _)| (40..60).contains(age) && *hba1c >= 65)
        .collect();
    let expected_mean =
        matching.iter().map(|v| v.1 as f64 / 10.0).sum::<f64>() / matching.len().max(1) as f64;
    let released_ok = match ask(scope("lab", query)?).await? {
        crate::compute::AggregateOutcome::Released {
            evaluated, release, ..
        } => {
            out.say(format!(
                "AdCo learns: consenting patients 40–60 with diabetes (HbA1c ≥ 6.5 %): {}, mean BMI \
                 {:.1} (cohort of {} fixed by the ledger; the worker got only their {} rows, \
                 re-encrypted for this request, and evaluated them in {:.2} ms; the vault \
                 recomputed the result before decrypting it and logged the release at height {})",
                release.count,
                release.value.unwrap_or(f64::NAN),
                release.cohort_size,
                evaluated.table_rows,
                evaluated.evaluate_seconds * 1e3,
                release.release_height
            ));
            release.count == matching.len() as u64
                && release
                    .value
                    .is_some_and(|v| (v - expected_mean).abs() < 1e-9)
                && release.cohort_size == COHORT_CONSENTING as u64
        }
        crate::compute::AggregateOutcome::Denied { reason, .. } => {
            out.say(format!(
                "AdCo's query was denied by the ledger ({reason}): this is a bug"
            ));
            false
        }
        crate::compute::AggregateOutcome::Refused { message, .. } => {
            out.say(format!(
                "the vault refused AdCo's query ({message}): this is a bug"
            ));
            false
        }
    };
    let narrow = "COUNT WHERE age >= 80";
    let narrow_ok = match ask(scope("lab", narrow)?).await? {
        crate::compute::AggregateOutcome::Refused { message, .. } => {
            out.say(format!(
                "AdCo asks `{narrow}`: the vault refuses ({}) and the refusal is on the ledger",
                message.split(':').next().unwrap_or_default()
            ));
            message.starts_with("cohort_too_small") && message.contains("logged on the ledger")
        }
        _ => {
            out.say(format!("AdCo's `{narrow}` was released: this is a bug"));
            false
        }
    };
    let empty_ok = match ask(scope("imaging", "COUNT")?).await? {
        crate::compute::AggregateOutcome::Denied {
            reason,
            cohort_size,
            ..
        } => {
            out.say(format!(
                "AdCo asks for a COUNT over imaging records: denied by the ledger ({}, cohort of {}): \
                 nothing is computed",
                reason.code(),
                cohort_size.unwrap_or(0)
            ));
            reason == custos_types::DecisionReason::CohortTooSmall
        }
        _ => {
            out.say("AdCo's imaging query was not denied: this is a bug");
            false
        }
    };
    worker.stop().await?;
    Ok(rows == COHORT_PATIENTS as usize && released_ok && narrow_ok && empty_ok)
}
