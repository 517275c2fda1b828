//! The consortium of four validators in one process (real sled stores, real gRPC, Malachite
//! over real libp2p sockets on loopback): every node holds the same certified chain, a Byzantine
//! validator cannot make honest ones commit an invalid block, and the light client refuses
//! forged certificates built from real chain data. The process-level faults (SIGKILL, SIGSTOP)
//! are in `services/cli/tests/it/bft.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use anyhow::{Context, anyhow, bail, ensure};
use custos_client::verify::{
    genesis_validators, parse_signed_header, verify_header_chain, verify_proven_entry,
    verify_signed_header,
};
use custos_consensus::Application;
use custos_crypto::{Hash, PartyKeys, PublicKey, sha256};
use custos_ledger::{CommitCertificate, ValidatorSet, commit_message};
use custos_node::core::{Block, LedgerCore};
use custos_proto::access::v1 as access_pb;
use custos_proto::ledger::v1 as ledger_pb;
use custos_storage::KvLedgerStore;
use custos_tests::consortium::{Consortium, PATIENCE, proposers, transactions_in};
use custos_tests::{bounded, new_keys, party, random32};
use custos_types::tx::{RegisterParty, RegisterRecord, RequestAccess};
use custos_types::{
    AccessMode, Category, EntryKind, LedgerEntry, Nonce, Organisation, Purpose, RecordId, Role,
    SignedTransaction, TransactionBody, TxKind,
};

/// A patient, a record of theirs registered by the hospital, and the insurer's access request
/// (denied: there is no consent), each sent through a different validator. Returns the
/// finalized submissions and the proven decision.
async fn story(
    net: &Consortium,
) -> anyhow::Result<(Vec<ledger_pb::SubmitResponse>, access_pb::DecisionResponse)> {
    let patient = new_keys();
    let registered_patient = net
        .submit_to(
            0,
            &patient,
            TxKind::RegisterParty(RegisterParty {
                party: party(&patient),
                role: Role::Patient,
                encryption_key: patient.encryption_public(),
                organisation: Organisation::default(),
            }),
        )
        .await?;
    let record = RecordId(Hash(random32()));
    let registered_record = net
        .submit_to(
            1,
            &net.hospital,
            TxKind::RegisterRecord(RegisterRecord {
                record_id: record,
                owner: party(&patient),
                category: Category::parse("lab", "category")?,
                ciphertext_digest: Hash(random32()),
                attribute_commitment: None,
            }),
        )
        .await?;
    let decision = bounded(
        "requesting access",
        net.client(2)?.request_access(
            &net.insurer,
            RequestAccess {
                record_id: record,
                purpose: Purpose::parse("HPAYMT")?,
                mode: AccessMode::Raw,
                justification_digest: None,
                query: vec![],
            },
        ),
    )
    .await??;
    Ok((vec![registered_patient, registered_record], decision))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_validators_finalize_and_every_node_has_identical_headers_at_every_height()
-> anyhow::Result<()> {
    let net = Consortium::start(4).await?;
    let all = [0, 1, 2, 3];
    let (finalized, decision) = story(&net).await?;
    let target = net.highest(&all) + 3;
    net.wait_for_height(&all, target).await?;

    // One chain: each node's headers verify from the genesis, and agree hash for hash.
    let common = net.assert_one_chain(&all).await?;
    ensure!(common >= target, "only {common} of {target} heights agreed");

    // Every node serves each transaction at the same place, and the same proven decision,
    // which the light client verifies trusting only the genesis.
    let trusted = net.trusted()?;
    let request = custos_types::RequestId::from_field(
        &decision
            .decision
            .as_ref()
            .ok_or_else(|| anyhow!("no decision"))?
            .request_id,
        "request_id",
    )?;
    for i in all {
        let client = net.client(i)?;
        for tx in &finalized {
            let there = client
                .ledger()
                .get_tx_status(ledger_pb::GetTxStatusRequest {
                    tx_id: tx.tx_id.clone(),
                })
                .await?
                .into_inner();
            ensure!(
                there.status == ledger_pb::TxStatus::Finalized as i32
                    && (there.height, there.entry_index) == (tx.height, tx.entry_index),
                "validator {i} has transaction at {}/{}, expected {}/{}",
                there.height,
                there.entry_index,
                tx.height,
                tx.entry_index
            );
        }
        let served = client.decision(&net.auditor, request).await?;
        ensure!(served.decision == decision.decision, "validator {i}");
        let proven = served
            .proven
            .as_ref()
            .ok_or_else(|| anyhow!("validator {i} serves no proof"))?;
        let verified = verify_proven_entry(&net.genesis, &trusted, proven)
            .with_context(|| format!("validator {i}'s proof"))?;
        ensure!(matches!(verified.entry.kind, EntryKind::Decision(_)));
    }
    net.stop().await
}

/// What the Byzantine validator proposed instead of the block its ledger built.
#[derive(Clone, Debug)]
struct Lie {
    height: u64,
    round: u32,
    id: Hash,
    how: &'static str,
}

/// An honest node's application behind a lying wrapper: every block it proposes is invalid
/// (alternately a wrong state root and an unauthorized transaction, named by the forged block's
/// own header hash so that only execution tells), and it accepts every proposal it receives.
struct Liar {
    honest: Arc<dyn Application>,
    lies: Arc<Mutex<Vec<Lie>>>,
    // Registered nowhere: a record registration it signs is refused by every state.
    outsider: PartyKeys,
}

impl Liar {
    fn unauthorized_tx(&self) -> SignedTransaction {
        let body = TransactionBody {
            chain_id: custos_types::ChainId::parse(&self.honest.chain_id())
                .expect("the chain id of a running node is valid"),
            nonce: Nonce(0),
            kind: TxKind::RegisterRecord(RegisterRecord {
                record_id: RecordId(Hash(random32())),
                owner: party(&self.outsider),
                category: Category::parse("lab", "category").expect("valid category"),
                ciphertext_digest: Hash(random32()),
                attribute_commitment: None,
            }),
        };
        SignedTransaction::sign(&body, &self.outsider.identity)
    }
}

impl Application for Liar {
    fn chain_id(&self) -> String {
        self.honest.chain_id()
    }

    fn validators(&self) -> ValidatorSet {
        self.honest.validators()
    }

    fn committed_height(&self) -> u64 {
        self.honest.committed_height()
    }

    fn propose(
        &self,
        height: u64,
        round: u32,
        proposer: PublicKey,
    ) -> anyhow::Result<(Vec<u8>, Hash)> {
        let (bytes, _) = self.honest.propose(height, round, proposer)?;
        let mut block = Block::from_bytes(&bytes)?;
        let mut lies = self.lies.lock().map_err(|_| anyhow!("poisoned"))?;
        let how = if lies.len() % 2 == 0 {
            block.header.state_root = sha256(b"a state no execution yields");
            "wrong state root"
        } else {
            block.transactions.push(self.unauthorized_tx());
            block.header.tx_count += 1;
            "unauthorized transaction"
        };
        let id = block.header.hash();
        lies.push(Lie {
            height,
            round,
            id,
            how,
        });
        Ok((block.to_bytes(), id))
    }

    fn validate(&self, _height: u64, value: &[u8]) -> Result<Hash, String> {
        Block::from_bytes(value)
            .map(|b| b.header.hash())
            .map_err(|e| e.to_string())
    }

    fn commit(
        &self,
        height: u64,
        value: &[u8],
        certificate: CommitCertificate,
    ) -> anyhow::Result<()> {
        self.honest.commit(height, value, certificate)
    }

    fn decided(&self, height: u64) -> anyhow::Result<Option<(Vec<u8>, CommitCertificate)>> {
        self.honest.decided(height)
    }
}

/// What an honest validator's ledger was asked: each validation (height, value id, accepted)
/// and each commit (height, value id).
#[derive(Debug, Default)]
struct Seen {
    validated: Vec<(u64, Hash, bool)>,
    committed: Vec<(u64, Hash)>,
}

/// A transparent wrapper: the honest application, watched.
struct Watcher {
    inner: Arc<dyn Application>,
    seen: Arc<Mutex<Seen>>,
}

/// The id a value claims: its header hash (the hash of the bytes if it does not decode).
fn value_id(value: &[u8]) -> Hash {
    Block::from_bytes(value).map_or_else(|_| sha256(value), |b| b.header.hash())
}

impl Application for Watcher {
    fn chain_id(&self) -> String {
        self.inner.chain_id()
    }

    fn validators(&self) -> ValidatorSet {
        self.inner.validators()
    }

    fn committed_height(&self) -> u64 {
        self.inner.committed_height()
    }

    fn propose(
        &self,
        height: u64,
        round: u32,
        proposer: PublicKey,
    ) -> anyhow::Result<(Vec<u8>, Hash)> {
        self.inner.propose(height, round, proposer)
    }

    fn validate(&self, height: u64, value: &[u8]) -> Result<Hash, String> {
        let verdict = self.inner.validate(height, value);
        if let Ok(mut seen) = self.seen.lock() {
            seen.validated
                .push((height, value_id(value), verdict.is_ok()));
        }
        verdict
    }

    fn commit(
        &self,
        height: u64,
        value: &[u8],
        certificate: CommitCertificate,
    ) -> anyhow::Result<()> {
        if let Ok(mut seen) = self.seen.lock() {
            seen.committed.push((height, value_id(value)));
        }
        self.inner.commit(height, value, certificate)
    }

    fn decided(&self, height: u64) -> anyhow::Result<Option<(Vec<u8>, CommitCertificate)>> {
        self.inner.decided(height)
    }
}

/// Replays `blocks` on a fresh ledger from the genesis: each is executed again and committed
/// only if its header is exactly what executing its transactions yields and its certificate
/// holds more than 2/3 of the voting power.
fn replay(genesis: &custos_types::Genesis, blocks: &[ledger_pb::Block]) -> anyhow::Result<()> {
    let core = LedgerCore::open(genesis.clone(), Arc::new(KvLedgerStore::in_memory()))?;
    for block in blocks {
        let signed = block
            .signed_header
            .as_ref()
            .ok_or_else(|| anyhow!("block without header"))?;
        let (header, certificate) = parse_signed_header(signed)?;
        let mut transactions = Vec::new();
        for bytes in &block.entries {
            if let EntryKind::Transaction(tx) = LedgerEntry::from_bytes(bytes)?.kind {
                transactions.push(tx);
            }
        }
        let height = header.height;
        core.commit_block(
            &Block {
                header,
                transactions,
            },
            certificate,
        )
        .with_context(|| format!("block {height} does not replay"))?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_byzantine_proposer_cannot_make_honest_validators_commit_an_invalid_block()
-> anyhow::Result<()> {
    let mut net = Consortium::new(4).await?;
    let lies: Arc<Mutex<Vec<Lie>>> = Arc::default();
    let liar = net.validator_key(0);
    {
        let lies = lies.clone();
        net.start_wrapped(
            0,
            Box::new(move |honest| {
                Arc::new(Liar {
                    honest,
                    lies,
                    outsider: new_keys(),
                })
            }),
        )
        .await?;
    }
    // The honest validators run behind a wrapper that only watches what their ledger decides.
    let mut watched = Vec::new();
    for i in 1..4 {
        let seen: Arc<Mutex<Seen>> = Arc::default();
        watched.push(seen.clone());
        net.start_wrapped(i, Box::new(move |inner| Arc::new(Watcher { inner, seen })))
            .await?;
    }
    let all = [0, 1, 2, 3];
    let honest = [1, 2, 3];

    // Honest traffic, also through the liar's own (honest) gRPC front: forwarded, finalized.
    let mut submitted = Vec::new();
    for round in 0..2 {
        for i in all {
            let keys = new_keys();
            let response = net
                .submit_to(
                    i,
                    &keys,
                    TxKind::RegisterParty(RegisterParty {
                        party: party(&keys),
                        role: Role::Patient,
                        encryption_key: keys.encryption_public(),
                        organisation: Organisation::default(),
                    }),
                )
                .await
                .with_context(|| format!("round {round}, validator {i}"))?;
            submitted.push(response);
        }
    }
    // Until the liar has proposed both kinds of invalid block a few times.
    let deadline = std::time::Instant::now() + PATIENCE;
    while lies.lock().map_err(|_| anyhow!("poisoned"))?.len() < 4 {
        ensure!(
            std::time::Instant::now() < deadline,
            "the Byzantine validator proposed only {:?} within {} s",
            lies.lock().map_err(|_| anyhow!("poisoned"))?,
            PATIENCE.as_secs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let target = net.highest(&all) + 2;
    net.wait_for_height(&all, target).await?;
    let lies = lies.lock().map_err(|_| anyhow!("poisoned"))?.clone();

    // Every node, the liar's own ledger included, holds one chain that verifies from the genesis.
    let common = net.assert_one_chain(&all).await?;
    let headers = net.signed_headers(1).await?;
    let headers = &headers[..common as usize];
    ensure!(
        !proposers(headers)?.contains(&liar),
        "a block proposed by the Byzantine validator was committed"
    );
    let committed: BTreeMap<u64, (Hash, u32)> = headers
        .iter()
        .map(|s| {
            let (h, c) = parse_signed_header(s)?;
            Ok((h.height, (h.hash(), c.round)))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut rejected_at_height = 0;
    for lie in &lies {
        let Some((hash, round)) = committed.get(&lie.height) else {
            continue;
        };
        ensure!(*hash != lie.id, "the invalid block {lie:?} was committed");
        // The lie's round had no other proposal: its height was decided in a later round.
        ensure!(
            *round > lie.round,
            "height {} was decided in round {round}, the liar proposed in round {}",
            lie.height,
            lie.round
        );
        rejected_at_height += 1;
    }
    let kinds: BTreeSet<&str> = lies.iter().map(|l| l.how).collect();
    ensure!(
        rejected_at_height >= 2 && kinds.len() == 2,
        "too few lies reached a decided height: {lies:?}"
    );

    // Each honest validator's ledger refused every lie it was shown (its engine then prevoted
    // nil) and was never asked to commit one; each was shown some.
    let lie_ids: BTreeSet<Hash> = lies.iter().map(|l| l.id).collect();
    for (seen, i) in watched.iter().zip(honest) {
        let seen = seen.lock().map_err(|_| anyhow!("poisoned"))?;
        let shown: Vec<&(u64, Hash, bool)> = seen
            .validated
            .iter()
            .filter(|(_, id, _)| lie_ids.contains(id))
            .collect();
        ensure!(
            shown.iter().all(|(_, _, accepted)| !accepted),
            "validator {i} accepted a lie: {shown:?}"
        );
        ensure!(
            shown.len() >= 2,
            "validator {i} was shown only {} of the lies",
            shown.len()
        );
        ensure!(
            seen.committed.iter().all(|(_, id)| !lie_ids.contains(id)),
            "validator {i} was asked to commit a lie"
        );
    }

    // Executed again from the genesis, every committed block yields exactly its header.
    let blocks = net.blocks(1, common).await?;
    replay(&net.genesis, &blocks)?;

    // The honest transactions are each finalized exactly once, where they were reported.
    let located = transactions_in(&blocks)?;
    for response in &submitted {
        let places: Vec<u64> = located
            .iter()
            .filter(|(id, _)| id.to_vec() == response.tx_id)
            .map(|(_, h)| *h)
            .collect();
        ensure!(
            places == vec![response.height],
            "transaction finalized at {places:?}, reported at {}",
            response.height
        );
    }
    // And the honest validators went on finalizing without the liar's turns.
    ensure!(net.highest(&honest) >= target);
    net.stop().await
}

/// How far ahead of the validators' clocks the time-forging proposer dates its blocks.
const TEN_YEARS_MS: i64 = 10 * 365 * 24 * 3600 * 1000;

/// An honest node's application whose proposals, once armed, are correctly executed blocks of
/// the pending transactions dated ten years ahead: valid in every respect but their time.
struct TimeForger {
    honest: Arc<dyn Application>,
    core: Arc<std::sync::OnceLock<Arc<LedgerCore>>>,
    armed: Arc<std::sync::atomic::AtomicBool>,
    forged: Arc<Mutex<Vec<u64>>>,
}

impl Application for TimeForger {
    fn chain_id(&self) -> String {
        self.honest.chain_id()
    }

    fn validators(&self) -> ValidatorSet {
        self.honest.validators()
    }

    fn committed_height(&self) -> u64 {
        self.honest.committed_height()
    }

    fn propose(
        &self,
        height: u64,
        round: u32,
        proposer: PublicKey,
    ) -> anyhow::Result<(Vec<u8>, Hash)> {
        let (bytes, id) = self.honest.propose(height, round, proposer)?;
        let core = self.core.get();
        let (Some(core), true) = (core, self.armed.load(std::sync::atomic::Ordering::SeqCst))
        else {
            return Ok((bytes, id));
        };
        let pending = Block::from_bytes(&bytes)?.transactions;
        let future = custos_types::Timestamp(custos_types::Timestamp::now().0 + TEN_YEARS_MS);
        let (block, _) = core.build_block(pending, future, proposer);
        self.forged
            .lock()
            .map_err(|_| anyhow!("poisoned"))?
            .push(height);
        Ok((block.to_bytes(), block.header.hash()))
    }

    fn validate(&self, height: u64, value: &[u8]) -> Result<Hash, String> {
        self.honest.validate(height, value)
    }

    fn commit(
        &self,
        height: u64,
        value: &[u8],
        certificate: CommitCertificate,
    ) -> anyhow::Result<()> {
        self.honest.commit(height, value, certificate)
    }

    fn decided(&self, height: u64) -> anyhow::Result<Option<(Vec<u8>, CommitCertificate)>> {
        self.honest.decided(height)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_byzantine_proposer_cannot_date_blocks_years_ahead_to_open_a_consent_early()
-> anyhow::Result<()> {
    let mut net = Consortium::new(4).await?;
    let core: Arc<std::sync::OnceLock<Arc<LedgerCore>>> = Arc::default();
    let armed: Arc<std::sync::atomic::AtomicBool> = Arc::default();
    let forged: Arc<Mutex<Vec<u64>>> = Arc::default();
    {
        let (core, armed, forged) = (core.clone(), armed.clone(), forged.clone());
        net.start_wrapped(
            0,
            Box::new(move |honest| {
                Arc::new(TimeForger {
                    honest,
                    core,
                    armed,
                    forged,
                })
            }),
        )
        .await?;
    }
    let _ = core.set(net.core(0)?.clone());
    for i in 1..4 {
        net.start_node(i).await?;
    }
    let all = [0, 1, 2, 3];

    // A patient consents to the insurer for payment, from a year from now on.
    let patient = net.register_patient_at(1).await?;
    let record = RecordId(Hash(random32()));
    net.submit_to(
        2,
        &net.hospital,
        TxKind::RegisterRecord(RegisterRecord {
            record_id: record,
            owner: party(&patient),
            category: Category::parse("lab", "category")?,
            ciphertext_digest: Hash(random32()),
            attribute_commitment: None,
        }),
    )
    .await?;
    let in_a_year = custos_types::Timestamp(custos_types::Timestamp::now().0 + TEN_YEARS_MS / 10);
    net.submit_to(
        3,
        &patient,
        TxKind::GrantConsent(custos_types::Consent {
            patient: party(&patient),
            grantee: party(&net.insurer),
            scope: custos_types::Scope::AllRecords,
            purposes: [Purpose::parse("HPAYMT")?].into_iter().collect(),
            modes: [AccessMode::Raw].into_iter().collect(),
            period: custos_types::ConsentPeriod {
                not_before: Some(in_a_year),
                expires: None,
            },
        }),
    )
    .await?;

    // The Byzantine validator now dates its proposals ten years ahead, until it has had a turn.
    armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let deadline = std::time::Instant::now() + PATIENCE;
    while forged.lock().map_err(|_| anyhow!("poisoned"))?.is_empty() {
        ensure!(
            std::time::Instant::now() < deadline,
            "the Byzantine validator had no turn"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let target = net.highest(&all) + 2;
    net.wait_for_height(&all, target).await?;

    // The insurer asks today: the consent is not valid yet.
    let decision = bounded(
        "requesting access",
        net.client(1)?.request_access(
            &net.insurer,
            RequestAccess {
                record_id: record,
                purpose: Purpose::parse("HPAYMT")?,
                mode: AccessMode::Raw,
                justification_digest: None,
                query: vec![],
            },
        ),
    )
    .await??;
    let granted = decision.decision.as_ref().is_some_and(|d| d.granted);

    // No committed block is dated beyond the validators' clocks (a minute's drift allowed).
    let now = custos_types::Timestamp::now().0;
    let mut ahead = Vec::new();
    for signed in net.signed_headers(1).await? {
        let (header, _) = parse_signed_header(&signed)?;
        if header.time_ms > now + 60_000 {
            ahead.push((
                header.height,
                (header.time_ms - now) / (24 * 3600 * 1000),
                header.proposer == net.validator_key(0),
            ));
        }
    }
    ensure!(
        ahead.is_empty() && !granted,
        "honest validators committed blocks dated ahead of their clocks, (height, days ahead, \
         proposed by the Byzantine validator): {:?}; the insurer's request under a consent that \
         starts in a year was {}",
        &ahead[..ahead.len().min(3)],
        if granted { "GRANTED today" } else { "denied" }
    );
    net.stop().await
}

/// `signed` with its certificate changed by `forge`.
fn forged(
    signed: &ledger_pb::SignedHeader,
    forge: impl FnOnce(&mut ledger_pb::CommitCertificate, &mut ledger_pb::BlockHeader),
) -> ledger_pb::SignedHeader {
    let mut out = signed.clone();
    let mut certificate = out.certificate.take().unwrap_or_default();
    let mut header = out.header.take().unwrap_or_default();
    forge(&mut certificate, &mut header);
    out.certificate = Some(certificate);
    out.header = Some(header);
    out
}

/// A signature by `keys` over the commit message of `height`, `round` and `hash`.
fn commit_signature(
    keys: &PartyKeys,
    chain_id: &str,
    height: u64,
    round: u32,
    hash: &Hash,
) -> ledger_pb::CommitSignature {
    let message = commit_message(chain_id, height, round, hash);
    ledger_pb::CommitSignature {
        validator: keys.public().as_bytes().to_vec(),
        signature: keys.identity.sign(&message).to_bytes().to_vec(),
    }
}

/// Fails unless the light client refuses `signed`, naming `why`.
fn assert_refused(
    genesis: &custos_types::Genesis,
    trusted: &ValidatorSet,
    signed: &ledger_pb::SignedHeader,
    what: &str,
    why: &str,
) -> anyhow::Result<()> {
    match verify_signed_header(genesis, trusted, signed) {
        Ok(header) => bail!("{what}: the light client accepted header {}", header.height),
        Err(e) => {
            ensure!(
                e.to_string().contains(why),
                "{what}: refused for `{e}`, not `{why}`"
            );
            Ok(())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_light_client_rejects_forged_certificates_built_from_real_chain_data()
-> anyhow::Result<()> {
    let net = Consortium::start(4).await?;
    let (_, decision) = story(&net).await?;
    let proven = decision
        .proven
        .clone()
        .ok_or_else(|| anyhow!("the decision comes without its proof"))?;
    let proof_height = parse_signed_header(
        proven
            .header
            .as_ref()
            .ok_or_else(|| anyhow!("the proof has no header"))?,
    )?
    .0
    .height;
    net.wait_for_height(&[3], proof_height + 2).await?;
    let headers = net.signed_headers(3).await?;
    let (genesis, trusted) = (&net.genesis, net.trusted()?);
    let chain_id = genesis.chain_id.as_str();

    // The real thing verifies.
    verify_header_chain(genesis, &trusted, &headers)?;
    verify_proven_entry(genesis, &trusted, &proven)?;
    let at = (proof_height - 1) as usize;
    let real = &headers[at];
    let next = &headers[at + 1];
    verify_signed_header(genesis, &trusted, real)?;
    let (header, certificate) = parse_signed_header(real)?;
    ensure!(
        certificate.signatures.len() >= 3,
        "a real certificate has {} signatures",
        certificate.signatures.len()
    );
    let hash = header.hash();

    // Too little voting power: two of four validators, or two with one of them counted twice.
    let two = forged(real, |c, _| c.signatures.truncate(2));
    assert_refused(
        genesis,
        &trusted,
        &two,
        "two signatures",
        "need more than 2/3",
    )?;
    let doubled = forged(real, |c, _| {
        c.signatures.truncate(2);
        let again = c.signatures[0].clone();
        c.signatures.push(again);
    });
    assert_refused(
        genesis,
        &trusted,
        &doubled,
        "a signer twice",
        "signed twice",
    )?;

    // A signer outside the set, over exactly this header's commit message.
    let outsider = new_keys();
    let with_outsider = forged(real, |c, _| {
        c.signatures.truncate(2);
        c.signatures.push(commit_signature(
            &outsider,
            chain_id,
            header.height,
            certificate.round,
            &hash,
        ));
    });
    assert_refused(
        genesis,
        &trusted,
        &with_outsider,
        "an outsider's signature",
        "is not a validator",
    )?;
    // A whole set of outsiders, with the node claiming they are the validators.
    let outsiders: Vec<PartyKeys> = (0..4).map(|_| new_keys()).collect();
    let mut usurped = forged(real, |c, _| {
        c.signatures = outsiders
            .iter()
            .map(|k| commit_signature(k, chain_id, header.height, certificate.round, &hash))
            .collect();
    });
    usurped.validator_set = Some(ledger_pb::ValidatorSet {
        validators: outsiders
            .iter()
            .map(|k| ledger_pb::Validator {
                public_key: k.public().as_bytes().to_vec(),
                voting_power: 1,
                address: String::new(),
            })
            .collect(),
    });
    assert_refused(
        genesis,
        &trusted,
        &usurped,
        "a usurping set",
        "validator set differs",
    )?;
    let mut usurped_chain = headers.clone();
    usurped_chain[at] = usurped.clone();
    ensure!(verify_header_chain(genesis, &trusted, &usurped_chain).is_err());

    // Signatures over another header: the header changed under its certificate, or the
    // certificate re-aimed at the changed header.
    let other_root = sha256(b"another state").0.to_vec();
    let changed = forged(real, |_, h| h.state_root = other_root.clone());
    assert_refused(
        genesis,
        &trusted,
        &changed,
        "a changed header",
        "header hashes to",
    )?;
    let mut changed_header = header.clone();
    changed_header.state_root = sha256(b"another state");
    let changed_hash = changed_header.hash().0.to_vec();
    let re_aimed = forged(real, |c, h| {
        h.state_root = other_root.clone();
        c.header_hash = changed_hash.clone();
    });
    assert_refused(
        genesis,
        &trusted,
        &re_aimed,
        "signatures over another header",
        "does not verify",
    )?;
    let other_round = forged(real, |c, _| c.round += 1);
    assert_refused(
        genesis,
        &trusted,
        &other_round,
        "another round",
        "does not verify",
    )?;

    // A certificate for another height: the next height's, as it is or relabelled.
    let next_certificate = next
        .certificate
        .clone()
        .ok_or_else(|| anyhow!("no certificate"))?;
    let misplaced = forged(real, |c, _| *c = next_certificate.clone());
    assert_refused(
        genesis,
        &trusted,
        &misplaced,
        "the next height's certificate",
        "certificate is for height",
    )?;
    let relabelled = forged(real, |c, _| {
        *c = next_certificate.clone();
        c.height = header.height;
        c.header_hash = hash.0.to_vec();
    });
    assert_refused(
        genesis,
        &trusted,
        &relabelled,
        "a relabelled certificate",
        "does not verify",
    )?;

    // Each forgery also breaks the chain it is put in, and the proof of the entry under it.
    for (what, bad) in [
        ("two signatures", &two),
        ("an outsider", &with_outsider),
        ("another header", &re_aimed),
        ("another height", &relabelled),
    ] {
        let mut chain = headers.clone();
        chain[at] = bad.clone();
        ensure!(
            verify_header_chain(genesis, &trusted, &chain).is_err(),
            "a chain with {what} verified"
        );
        let mut proof = proven.clone();
        proof.header = Some(bad.clone());
        ensure!(
            verify_proven_entry(genesis, &trusted, &proof).is_err(),
            "a proof under {what} verified"
        );
    }
    // Sanity: the forgeries were built right; the same edits with real signers verify.
    let resigned: Vec<&custos_crypto::SigningKeyPair> =
        net.validators.iter().map(|k| &k.identity).collect();
    let fresh = CommitCertificate::sign(&changed_header, 0, &resigned[..3]);
    ensure!(fresh.verify(&changed_header, &trusted).is_ok());
    ensure!(genesis_validators(genesis)? == trusted);
    net.stop().await
}
