//! Finding damage in a store without repairing or deleting anything: what is damaged (a
//! record's storage key, metadata, wrapped keys or chunks), and the scrub that re-reads every
//! chunk of every record and checks it against the digest registered on the ledger.
//!
//! A store's own start-up check finds what is missing or the wrong length (cheap: presence and
//! lengths, see `custos-vault-service`'s sled store); [`scrub`] finds what is altered (every
//! chunk authenticated under its data key and the stream's digest compared with the registered
//! one). Neither changes the store: a damaged record stays as it is, to be restored from a
//! backup.

use std::collections::BTreeSet;
use std::fmt;

use custos_types::RecordId;

use crate::store::{StoreError, VaultStore};
use crate::stream::StreamError;
use crate::vault::{VaultError, verify_stored};

/// Which part of a record is damaged.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Part {
    /// Its storage key (in the keyring): without it nothing else of the record opens.
    StorageKey,
    /// Its metadata.
    Metadata,
    /// A wrapped copy of its data key.
    WrappedKey,
    /// Ciphertext chunk `index`.
    Chunk(u32),
    /// Its chunks as a whole (the stream ends early, or is not the registered one).
    Stream,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::StorageKey => f.write_str("storage key"),
            Part::Metadata => f.write_str("metadata"),
            Part::WrappedKey => f.write_str("wrapped key"),
            Part::Chunk(index) => write!(f, "chunk {index}"),
            Part::Stream => f.write_str("chunks"),
        }
    }
}

/// One damaged part of one record.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Damage {
    /// The record.
    pub record: RecordId,
    /// What is damaged.
    pub part: Part,
    /// How.
    pub reason: String,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "record {}: {}: {}", self.record, self.part, self.reason)
    }
}

impl Damage {
    /// The damage `error` reports about `record`, or `None` if it reports none (a failing
    /// backend, a refused call).
    pub fn from_error(record: RecordId, error: &VaultError) -> Option<Self> {
        if !error.is_damage() {
            return None;
        }
        let part = match error {
            VaultError::Store(StoreError::Corrupt { what, .. }) => {
                // Stores name the item first: `chunk 3 of record …`, `wrapped of record …`.
                let chunk = what
                    .strip_prefix("chunk ")
                    .and_then(|rest| rest.split(' ').next())
                    .and_then(|n| n.parse::<u32>().ok());
                if let Some(index) = chunk {
                    Part::Chunk(index)
                } else if what.starts_with("chunk") {
                    Part::Stream
                } else if what.starts_with("wrapped") {
                    Part::WrappedKey
                } else if what.starts_with("storage key") {
                    Part::StorageKey
                } else {
                    Part::Metadata
                }
            }
            VaultError::Wrap(_)
            | VaultError::NoWrappedKey { .. }
            | VaultError::UnknownCustodianKey { .. } => Part::WrappedKey,
            VaultError::MissingChunk { index, .. } => Part::Chunk(*index),
            VaultError::Stream(
                StreamError::Integrity { index, .. }
                | StreamError::AfterFinal { index, .. }
                | StreamError::ChunkLength { index, .. },
            ) => Part::Chunk(*index),
            _ => Part::Stream,
        };
        Some(Damage {
            record,
            part,
            reason: error.to_string(),
        })
    }
}

/// Where a scrub is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ScrubProgress {
    /// Records checked so far.
    pub records_done: u64,
    /// Records to check.
    pub records_total: u64,
    /// Ciphertext bytes read so far.
    pub bytes_read: u64,
}

/// What a scrub found.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ScrubReport {
    /// Records checked (damaged ones included).
    pub records_checked: u64,
    /// Chunks read and authenticated.
    pub chunks_checked: u64,
    /// Ciphertext bytes read.
    pub bytes_read: u64,
    /// Every damaged record, once, in id order.
    pub damaged: Vec<Damage>,
}

impl ScrubReport {
    /// Whether no damage was found.
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty()
    }
}

/// Re-verifies every record of `store` with [`verify_stored`]: each chunk read, authenticated
/// under the record's data key and hashed, and the stream's size, chunk count and digest
/// compared with the registered ones. `known` is damage found before (by the store's start-up
/// check): those records are reported as found and not read again. Changes nothing; a failing
/// backend (not damage) stops the scrub with its error. `progress` is called after each record.
pub fn scrub<S: VaultStore>(
    store: &S,
    known: &[Damage],
    mut progress: impl FnMut(ScrubProgress),
) -> Result<ScrubReport, StoreError> {
    let records = store.records()?;
    let mut report = ScrubReport::default();
    let mut damaged: Vec<Damage> = Vec::new();
    let skip: BTreeSet<RecordId> = known.iter().map(|d| d.record).collect();
    let mut reported = BTreeSet::new();
    for d in known {
        if reported.insert(d.record) {
            damaged.push(d.clone());
        }
    }
    let total = records.len() as u64;
    for record in records {
        report.records_checked += 1;
        if !skip.contains(&record) {
            let checked = store
                .meta(&record)
                .map_err(VaultError::from)
                .and_then(|meta| meta.ok_or(VaultError::UnknownRecord(record)))
                .and_then(|meta| {
                    let custodian = meta.stream.custodian;
                    verify_stored(store, custodian, &meta, |bytes| {
                        report.chunks_checked += 1;
                        report.bytes_read += bytes;
                    })
                });
            match checked {
                Ok(_) => {}
                // Erased while the scrub ran.
                Err(VaultError::UnknownRecord(_)) => {}
                Err(e) => match Damage::from_error(record, &e) {
                    Some(d) => {
                        if reported.insert(record) {
                            damaged.push(d);
                        }
                    }
                    None => {
                        return Err(match e {
                            VaultError::Store(s) => s,
                            other => StoreError::Backend(other.to_string()),
                        });
                    }
                },
            }
        }
        progress(ScrubProgress {
            records_done: report.records_checked,
            records_total: total,
            bytes_read: report.bytes_read,
        });
    }
    damaged.sort_by_key(|d| (d.record, d.part));
    report.damaged = damaged;
    Ok(report)
}
