//! A typed client of the vault service: puts a record from a reader, fetches a released record
//! into a file that appears only once every chunk has been authenticated, lists, erases and
//! rotates.

use std::io::Read;
use std::path::{Path, PathBuf};

use custos_crypto::PartyKeys;
use custos_proto::ledger::v1 as ledger_pb;
use custos_proto::vault::v1 as pb;
use custos_proto::vault::v1::vault_service_client::VaultServiceClient;
use custos_types::{
    ChainId, PartyId, ReadNonce, RequestId, SignedRead, SignedTransaction, Timestamp,
};
use custos_vault::{EncryptionSecret, PlaintextFile, ReleaseHeader, VaultError};
use tonic::transport::Channel;

use crate::rpc::methods;

/// Plaintext bytes per `data` message of an upload.
pub const UPLOAD_SLICE: usize = 256 * 1024;

/// Why a vault call failed.
#[derive(Debug, thiserror::Error)]
pub enum VaultClientError {
    /// The vault could not be reached.
    #[error("cannot connect to the vault at {endpoint}: {reason}")]
    Connect {
        /// Where.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// The vault answered with an error status (a refusal names its reason).
    #[error("the vault answered {:?}: {}", .0.code(), .0.message())]
    Status(tonic::Status),
    /// What arrived does not decrypt or is not what was released; nothing was written.
    #[error(transparent)]
    Integrity(#[from] VaultError),
    /// The vault's answer is malformed.
    #[error("the vault's answer is malformed: {0}")]
    Malformed(String),
    /// Reading the record or writing the plaintext failed.
    #[error("{path}: {reason}")]
    Io {
        /// Which file.
        path: String,
        /// Why.
        reason: String,
    },
}

impl From<tonic::Status> for VaultClientError {
    fn from(status: tonic::Status) -> Self {
        VaultClientError::Status(status)
    }
}

/// A `Result` with [`VaultClientError`].
pub type Result<T> = std::result::Result<T, VaultClientError>;

/// A record fetched and decrypted into a file.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The release header (record, digests, confirmation).
    pub header: ReleaseHeader,
    /// The file holding the plaintext.
    pub path: PathBuf,
}

/// A connection to one vault.
#[derive(Clone)]
pub struct VaultClient {
    grpc: VaultServiceClient<Channel>,
    chain_id: ChainId,
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> VaultClientError {
    VaultClientError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

impl VaultClient {
    /// Connects to the vault at `endpoint`; reads are signed for `chain_id`.
    pub async fn connect(endpoint: &str, chain_id: ChainId) -> Result<Self> {
        let channel = Channel::from_shared(endpoint.to_string())
            .map_err(|e| VaultClientError::Connect {
                endpoint: endpoint.to_string(),
                reason: e.to_string(),
            })?
            .connect()
            .await
            .map_err(|e| VaultClientError::Connect {
                endpoint: endpoint.to_string(),
                reason: e.to_string(),
            })?;
        Ok(VaultClient {
            grpc: VaultServiceClient::new(channel),
            chain_id,
        })
    }

    /// The generated client.
    pub fn grpc(&self) -> VaultServiceClient<Channel> {
        self.grpc.clone()
    }

    /// A read of `method` with `query`, signed by `keys` now.
    pub fn signed_read(
        &self,
        keys: &PartyKeys,
        method: &str,
        query: &impl prost::Message,
    ) -> ledger_pb::SignedRead {
        SignedRead::sign(
            &self.chain_id,
            method,
            Timestamp::now(),
            ReadNonce::random(&mut rand_core::OsRng),
            query,
            &keys.identity,
        )
    }

    /// Puts the record `header` describes, reading its plaintext from `reader` (exactly
    /// `header.size` bytes), signed by the custodian's `keys`.
    pub async fn put(
        &self,
        keys: &PartyKeys,
        header: pb::RecordHeader,
        reader: impl Read + Send + 'static,
    ) -> Result<pb::PutRecordResponse> {
        use pb::put_record_chunk::Part;
        let first = pb::PutRecordChunk {
            part: Some(Part::Header(self.signed_read(keys, methods::PUT, &header))),
        };
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let reading = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut reader = reader;
            if tx.blocking_send(first).is_err() {
                return Ok(());
            }
            loop {
                let mut slice = Vec::with_capacity(UPLOAD_SLICE);
                let n = (&mut reader)
                    .take(UPLOAD_SLICE as u64)
                    .read_to_end(&mut slice)?;
                if n == 0 {
                    return Ok(());
                }
                let message = pb::PutRecordChunk {
                    part: Some(Part::Data(slice)),
                };
                if tx.blocking_send(message).is_err() {
                    return Ok(());
                }
            }
        });
        let answer = self
            .grpc
            .clone()
            .put_record(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await;
        let read = reading
            .await
            .map_err(|e| VaultClientError::Malformed(e.to_string()))?;
        if let Err(e) = read {
            return Err(VaultClientError::Io {
                path: "record".into(),
                reason: e.to_string(),
            });
        }
        Ok(answer?.into_inner())
    }

    /// Fetches the record released under `request` (own: a patient's own record) and writes
    /// its plaintext to `out`, which must not exist. `out` appears only once every chunk has
    /// been authenticated and the stream matches its header; on any error it does not exist.
    pub async fn fetch(
        &self,
        keys: &PartyKeys,
        request: RequestId,
        out: &Path,
        own: bool,
    ) -> Result<Fetched> {
        use pb::fetch_record_chunk::Part;
        let query = pb::FetchRecordQuery {
            request_id: request.to_vec(),
            recipient_key: keys.encryption_public().to_vec(),
        };
        let mut grpc = self.grpc.clone();
        let mut stream = if own {
            grpc.fetch_own_record(self.signed_read(keys, methods::FETCH_OWN, &query))
                .await?
        } else {
            grpc.fetch_record(self.signed_read(keys, methods::FETCH, &query))
                .await?
        }
        .into_inner();
        let header = match stream.message().await? {
            Some(pb::FetchRecordChunk {
                part: Some(Part::Header(h)),
            }) => ReleaseHeader::from_wire(&h)
                .map_err(|e| VaultClientError::Malformed(format!("header.{e}")))?,
            _ => {
                return Err(VaultClientError::Malformed(
                    "the stream does not start with a release header".into(),
                ));
            }
        };
        if header.request_id != request {
            return Err(VaultClientError::Malformed(format!(
                "the header is for request {}, asked for {}",
                header.request_id, request
            )));
        }
        let secret = EncryptionSecret::of_party(keys).map_err(VaultError::from)?;
        let mut decryptor = header.open(PartyId(keys.public()), &secret)?;
        let mut file = PlaintextFile::create(out).map_err(|e| io_error(out, e))?;
        while let Some(message) = stream.message().await? {
            match message.part {
                Some(Part::Ciphertext(chunk)) => {
                    let plaintext = decryptor.open_chunk(chunk).map_err(VaultError::from)?;
                    file.write(&plaintext).map_err(|e| io_error(out, e))?;
                }
                _ => {
                    return Err(VaultClientError::Malformed(
                        "expected ciphertext after the header".into(),
                    ));
                }
            }
        }
        let summary = decryptor.finish().map_err(VaultError::from)?;
        header.check(&summary)?;
        let path = file.commit().map_err(|e| io_error(out, e))?;
        Ok(Fetched { header, path })
    }

    /// Records `keys` may list: the custodian's (all, or `owner`'s), a patient's own.
    pub async fn list(
        &self,
        keys: &PartyKeys,
        owner: Option<PartyId>,
    ) -> Result<Vec<pb::RecordSummary>> {
        let query = pb::ListRecordsQuery {
            owner: owner.map(|o| o.to_vec()).unwrap_or_default(),
        };
        Ok(self
            .grpc
            .clone()
            .list_records(self.signed_read(keys, methods::LIST, &query))
            .await?
            .into_inner()
            .records)
    }

    /// Submits a signed `EraseRecord` through the vault.
    pub async fn erase(&self, tx: &SignedTransaction) -> Result<pb::EraseRecordResponse> {
        Ok(self
            .grpc
            .clone()
            .erase_record(tx.to_wire())
            .await?
            .into_inner())
    }

    /// Rotates the vault's custodian key (custodian only).
    pub async fn rotate(&self, keys: &PartyKeys) -> Result<pb::RotateKeyResponse> {
        Ok(self
            .grpc
            .clone()
            .rotate_key(self.signed_read(keys, methods::ROTATE, &pb::RotateKeyQuery {}))
            .await?
            .into_inner())
    }

    /// Asks for the predicate proof of the granted predicate-mode request `tx` (the partner's
    /// own signed `RequestAccess`). The answer is unchecked: verify it with
    /// [`crate::predicate::verify_answer`].
    pub async fn prove(
        &self,
        keys: &PartyKeys,
        tx: &SignedTransaction,
    ) -> Result<custos_proto::access::v1::PredicateProofResponse> {
        let query = pb::ProvePredicateQuery {
            request_id: tx.id().to_vec(),
            request_body: tx.body_bytes().to_vec(),
        };
        Ok(self
            .grpc
            .clone()
            .prove_predicate(self.signed_read(keys, methods::PROVE, &query))
            .await?
            .into_inner())
    }

    /// The signed read a compute worker forwards to `GetCohortTable` for the granted aggregate
    /// request `request` (signed by its requester's `keys`, valid for the vault's freshness
    /// window).
    pub fn cohort_table_read(&self, keys: &PartyKeys, request: RequestId) -> ledger_pb::SignedRead {
        self.signed_read(
            keys,
            methods::COHORT_TABLE,
            &pb::CohortTableQuery {
                request_id: request.to_vec(),
            },
        )
    }

    /// Asks the vault to check, decrypt and release the aggregate a compute worker computed for
    /// the granted request `request`; the vault logs the release on the ledger first.
    pub async fn release_aggregate(
        &self,
        keys: &PartyKeys,
        request: RequestId,
        result: Vec<u8>,
    ) -> Result<pb::AggregateRelease> {
        let query = pb::ReleaseAggregateQuery {
            request_id: request.to_vec(),
            result_digest: custos_crypto::sha256(&result).0.to_vec(),
        };
        let read = self.signed_read(keys, methods::RELEASE_AGGREGATE, &query);
        Ok(self
            .grpc
            .clone()
            .release_aggregate(pb::ReleaseAggregateRequest {
                read: Some(read),
                result,
            })
            .await?
            .into_inner())
    }
}
