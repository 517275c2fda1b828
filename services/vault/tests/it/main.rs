//! custos-vault-service scenarios: a real node (`custos_tests::TestNet`), a real vault on sled in
//! a temporary folder, real gRPC on 127.0.0.1:0, and a ledger gateway that can be told to lie
//! the way a compromised node would.
// Test helpers: failing loudly is their job.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod aggregate;
mod bad_input;
mod damage;
mod denied;
mod erasure;
mod lifecycle;
mod predicate;
mod release;
mod store;
mod tamper;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use custos_crypto::{PartyKeys, SigningKeyPair};
use custos_ledger::{BlockHeader, CommitCertificate, Validator, ValidatorSet};
use custos_proto::access::v1 as access_pb;
use custos_proto::audit::v1 as audit_pb;
use custos_proto::consent::v1 as consent_pb;
use custos_proto::ledger::v1 as ledger_pb;
use custos_tests::{TestNet, bounded};
use custos_types::tx::RequestAccess;
use custos_types::{
    AccessMode, DecisionReason, EntryKind, LedgerEntry, PartyId, Purpose, RecordId, RequestId,
    SignedTransaction, TxKind,
};
use custos_vault::{KdfParams, Passphrase};
use custos_vault_service::{
    Fetched, GatewayError, LedgerGateway, NodeGateway, RunningVault, SledVaultStore, VaultClient,
    VaultClientError, VaultConfig, start_with,
};
use rand_core::{OsRng, RngCore};
use tempfile::TempDir;

/// The passphrase every test vault's keyring is sealed under.
pub const PASSPHRASE: &str = "correct horse battery staple";

/// How a compromised node lies to the vault.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Tamper {
    /// It does not.
    #[default]
    Honest,
    /// It strips the commit certificate's signatures (a header that is not final).
    DropSignatures,
    /// It alters one hash of the inclusion proof.
    ForgeProofPath,
    /// It signs the header with its own key and sends a validator set naming that key.
    ForgeCertificate,
    /// It turns a denied decision into a granted one (entry bytes and the plain field).
    GrantDeniedDecision,
    /// It reports this X25519 key as every party's registered encryption key.
    LieAboutKey([u8; 32]),
}

/// A gateway to the real node that applies the current [`Tamper`].
pub struct Tampering {
    inner: NodeGateway,
    tamper: Arc<Mutex<Tamper>>,
}

fn forge(answer: &mut access_pb::DecisionResponse, tamper: &Tamper) {
    let Some(proven) = answer.proven.as_mut() else {
        return;
    };
    match tamper {
        Tamper::Honest | Tamper::LieAboutKey(_) => {}
        Tamper::DropSignatures => {
            if let Some(cert) = proven.header.as_mut().and_then(|h| h.certificate.as_mut()) {
                cert.signatures.clear();
            }
        }
        Tamper::ForgeProofPath => {
            let proof = proven.proof.as_mut().unwrap();
            match proof.path.first_mut() {
                Some(hash) => hash[0] ^= 1,
                None => proven.entry.push(0),
            }
        }
        Tamper::ForgeCertificate => {
            let signed = proven.header.as_mut().unwrap();
            let header = BlockHeader::try_from(signed.header.as_ref().unwrap()).unwrap();
            let rogue = SigningKeyPair::generate(&mut OsRng);
            signed.certificate = Some(CommitCertificate::sign(&header, 0, &[&rogue]).to_wire());
            signed.validator_set = Some(
                ValidatorSet::new(vec![Validator {
                    key: rogue.public(),
                    power: 1,
                }])
                .unwrap()
                .to_wire(),
            );
        }
        Tamper::GrantDeniedDecision => {
            let mut entry = LedgerEntry::from_bytes(&proven.entry).unwrap();
            if let EntryKind::Decision(d) = &mut entry.kind {
                d.reason = DecisionReason::Consent;
                answer.decision = Some((&*d).into());
            }
            proven.entry = entry.to_bytes();
        }
    }
}

impl LedgerGateway for Tampering {
    async fn decision(
        &self,
        keys: &PartyKeys,
        request: RequestId,
    ) -> Result<Option<access_pb::DecisionResponse>, GatewayError> {
        let tamper = self.tamper.lock().unwrap().clone();
        let mut answer = self.inner.decision(keys, request).await?;
        if let Some(answer) = answer.as_mut() {
            forge(answer, &tamper);
        }
        Ok(answer)
    }

    async fn cohort(
        &self,
        keys: &PartyKeys,
        request: RequestId,
    ) -> Result<(access_pb::CohortResponse, Vec<RecordId>), GatewayError> {
        self.inner.cohort(keys, request).await
    }

    async fn party(&self, party: PartyId) -> Result<Option<consent_pb::Party>, GatewayError> {
        let tamper = self.tamper.lock().unwrap().clone();
        let mut answer = self.inner.party(party).await?;
        if let (Tamper::LieAboutKey(key), Some(p)) = (tamper, answer.as_mut()) {
            p.encryption_key = key.to_vec();
        }
        Ok(answer)
    }

    async fn submit(
        &self,
        keys: &PartyKeys,
        kind: TxKind,
    ) -> Result<ledger_pb::SubmitResponse, GatewayError> {
        self.inner.submit(keys, kind).await
    }

    async fn submit_signed(
        &self,
        tx: &SignedTransaction,
    ) -> Result<ledger_pb::SubmitResponse, GatewayError> {
        self.inner.submit_signed(tx).await
    }
}

/// A test net with the hospital's vault in front of it.
pub struct VaultNet {
    pub net: TestNet,
    pub vault: Option<RunningVault<SledVaultStore, Tampering>>,
    pub client: VaultClient,
    pub tamper: Arc<Mutex<Tamper>>,
    pub config: VaultConfig,
    pub dir: TempDir,
}

pub fn random32() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

pub fn party(keys: &PartyKeys) -> PartyId {
    PartyId(keys.public())
}

impl VaultNet {
    /// A test net with `patients` patients and the hospital's vault.
    pub async fn start(patients: usize) -> anyhow::Result<Self> {
        let net = TestNet::start(patients).await?;
        let dir = tempfile::tempdir()?;
        let mut config = VaultConfig::new(
            "127.0.0.1:0".parse()?,
            net.endpoint(),
            dir.path().join("genesis.json"),
            dir.path().join("vault"),
        );
        config.kdf = KdfParams::INSECURE_FOR_TESTS;
        let tamper = Arc::new(Mutex::new(Tamper::Honest));
        let vault = Self::launch(&net, &config, tamper.clone(), PASSPHRASE).await?;
        let client = bounded(
            "connecting to the vault",
            VaultClient::connect(&vault.endpoint(), net.genesis.chain_id.clone()),
        )
        .await??;
        Ok(VaultNet {
            net,
            vault: Some(vault),
            client,
            tamper,
            config,
            dir,
        })
    }

    /// Starts the hospital's vault over `net` with `passphrase`.
    pub async fn launch(
        net: &TestNet,
        config: &VaultConfig,
        tamper: Arc<Mutex<Tamper>>,
        passphrase: &str,
    ) -> anyhow::Result<RunningVault<SledVaultStore, Tampering>> {
        let gateway = Tampering {
            inner: bounded(
                "connecting to the node",
                NodeGateway::connect(&net.endpoint()),
            )
            .await??,
            tamper,
        };
        let passphrase = Passphrase::new(passphrase.to_string())?;
        let mut running = bounded(
            "starting the vault",
            start_with(
                config,
                net.hospital.clone(),
                &passphrase,
                net.genesis.clone(),
                gateway,
            ),
        )
        .await??;
        running.follow_erasures(config, net.genesis.clone())?;
        Ok(running)
    }

    /// The running vault.
    pub fn running(&self) -> &RunningVault<SledVaultStore, Tampering> {
        self.vault.as_ref().expect("the vault is running")
    }

    /// Stops the vault and starts it again on the same folder.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop_vault().await?;
        let vault = Self::launch(&self.net, &self.config, self.tamper.clone(), PASSPHRASE).await?;
        self.client = bounded(
            "reconnecting to the vault",
            VaultClient::connect(&vault.endpoint(), self.net.genesis.chain_id.clone()),
        )
        .await??;
        self.vault = Some(vault);
        Ok(())
    }

    /// Stops the vault (its store is closed when this returns).
    pub async fn stop_vault(&mut self) -> anyhow::Result<()> {
        if let Some(vault) = self.vault.take() {
            bounded("stopping the vault", vault.stop()).await??;
        }
        Ok(())
    }

    pub fn set_tamper(&self, tamper: Tamper) {
        *self.tamper.lock().unwrap() = tamper;
    }

    /// The hospital puts `plaintext` as a `lab` record of `patient`.
    pub async fn put(&self, patient: &PartyKeys, plaintext: Vec<u8>) -> anyhow::Result<RecordId> {
        self.put_with(patient, plaintext, Vec::new()).await
    }

    /// [`VaultNet::put`] with attributes.
    pub async fn put_with(
        &self,
        patient: &PartyKeys,
        plaintext: Vec<u8>,
        attributes: Vec<custos_proto::vault::v1::Attribute>,
    ) -> anyhow::Result<RecordId> {
        let header = custos_proto::vault::v1::RecordHeader {
            record_id: Vec::new(),
            owner: party(patient).to_vec(),
            category: "lab".into(),
            attributes,
            size: plaintext.len() as u64,
        };
        let response = bounded(
            "putting a record",
            self.client
                .put(&self.net.hospital, header, std::io::Cursor::new(plaintext)),
        )
        .await??;
        Ok(RecordId::from_field(&response.record_id, "record_id")?)
    }

    /// `who` asks for raw access to `record` for `purpose`; the finalized decision.
    pub async fn request(
        &self,
        who: &PartyKeys,
        record: RecordId,
        purpose: &str,
    ) -> anyhow::Result<access_pb::DecisionResponse> {
        let request = RequestAccess {
            record_id: record,
            purpose: Purpose::parse(purpose)?,
            mode: AccessMode::Raw,
            justification_digest: None,
            query: Vec::new(),
        };
        Ok(bounded(
            "requesting access",
            self.net.client.request_access(who, request),
        )
        .await??)
    }

    /// The request id of a decision.
    pub fn request_id(decision: &access_pb::DecisionResponse) -> RequestId {
        RequestId::from_field(
            &decision.decision.as_ref().unwrap().request_id,
            "request_id",
        )
        .unwrap()
    }

    /// `who` fetches under `request` into a fresh file; the file's path and the outcome.
    pub async fn fetch(
        &self,
        who: &PartyKeys,
        request: RequestId,
        own: bool,
    ) -> (PathBuf, Result<Fetched, VaultClientError>) {
        let out = self
            .dir
            .path()
            .join(format!("out-{}", hex::encode(random32())));
        let result = bounded("fetching", self.client.fetch(who, request, &out, own))
            .await
            .unwrap_or_else(|e| Err(VaultClientError::Malformed(format!("timed out: {e}"))));
        (out, result)
    }

    /// Requests raw access for `purpose` as `who` (which must be granted) and fetches.
    pub async fn request_and_fetch(
        &self,
        who: &PartyKeys,
        record: RecordId,
        purpose: &str,
        own: bool,
    ) -> anyhow::Result<(PathBuf, Result<Fetched, VaultClientError>)> {
        let decision = self.request(who, record, purpose).await?;
        if !decision.decision.as_ref().is_some_and(|d| d.granted) {
            bail!("expected a grant, got {:?}", decision.decision);
        }
        Ok(self.fetch(who, Self::request_id(&decision), own).await)
    }

    /// The auditor's log entry for `request`, with its release confirmations.
    pub async fn audit_entry(&self, request: RequestId) -> anyhow::Result<audit_pb::AuditEntry> {
        let entries = bounded(
            "reading the access log",
            self.net
                .client
                .access_log_all(&self.net.auditor, &audit_pb::AccessLogQuery::default()),
        )
        .await??;
        entries
            .into_iter()
            .find(|e| {
                e.decision
                    .as_ref()
                    .is_some_and(|d| d.request_id == request.to_vec())
            })
            .context("the request is not in the access log")
    }

    /// The reason codes of the vault refusals the access log holds for `requester`'s fetches,
    /// in log order, each checked to name `record`.
    pub async fn vault_refusals(
        &self,
        requester: &PartyKeys,
        record: RecordId,
    ) -> anyhow::Result<Vec<String>> {
        let entries = bounded(
            "reading the access log",
            self.net
                .client
                .access_log_all(&self.net.auditor, &audit_pb::AccessLogQuery::default()),
        )
        .await??;
        let mut codes = Vec::new();
        for entry in entries {
            let Some(wire) = entry.decision else { continue };
            let decision = custos_types::Decision::try_from(wire)?;
            if decision.reason.is_vault_refusal() && decision.requester == party(requester) {
                anyhow::ensure!(!decision.granted(), "a refusal is a denial");
                anyhow::ensure!(decision.record_id == record, "the refusal names the record");
                anyhow::ensure!(entry.proven.is_some(), "the refusal is proven");
                codes.push(decision.reason.code().to_string());
            }
        }
        Ok(codes)
    }

    /// Files in the vault's folder, recursively.
    pub fn vault_files(&self) -> Vec<PathBuf> {
        fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.config.data_dir, &mut out);
        out
    }

    /// Files in the test folder whose names mark a partial plaintext.
    pub fn partial_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains(".partial-"))
            .collect()
    }
}

/// Asserts a fetch was refused with PERMISSION_DENIED and a message starting with `code`.
pub fn assert_denied(result: &Result<Fetched, VaultClientError>, code: &str) {
    match result {
        Err(VaultClientError::Status(s)) => {
            assert_eq!(s.code(), tonic::Code::PermissionDenied, "{s:?}");
            assert!(
                s.message().starts_with(&format!("{code}:")),
                "expected `{code}`, got: {}",
                s.message()
            );
        }
        other => panic!("expected a `{code}` refusal, got {other:?}"),
    }
}

/// Whether `needle` occurs anywhere in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
