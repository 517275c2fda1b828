//! The vault's side of aggregate queries on encrypted data (custos-fhe).
//!
//! The custodian holds one FHE client key, sealed at rest under the vault's passphrase
//! (`aggregate/client-key.sealed`, Argon2id + XChaCha20-Poly1305 like the keyring). Every record
//! put with all the attributes of the aggregate schema gets a row in its category's encrypted
//! table, appended at put time; erasing the record overwrites its row with zeros under fresh
//! ciphertexts. The table lives in sled (`aggregate/sled`) chunk by chunk, so a put rewrites
//! one chunk per column (about 14 KiB each), not the table:
//!
//! | key | value |
//! |---|---|
//! | `n/` category | rows in the category's table (u64 BE) |
//! | `c/` category `0x00` column (u32 BE) chunk (u32 BE) | the chunk (custos-fhe encoding) |
//! | `r/` category `0x00` record id | the record's row (u64 BE) |
//! | `i/` record id | the record's category |
//!
//! What leaves the vault: ciphertexts of a granted cohort's rows only, re-encrypted for the
//! request (to the requester's compute worker), and an aggregate decrypted only by
//! [`Aggregates::release`] — k-anonymity on the cohort and on
//! the rows matching the WHERE clause, and a provenance check that recomputes the result.
//!
//! Record attributes ([`crate::attributes`], checked at put) map onto the demo schema
//! ([`Schema::demo`]) as: `age` (years), `bmi_x10` (BMI × 10), `hba1c_x10` (HbA1c % × 10),
//! `diabetes` and `smoker` (0 or 1), `sex` (ISO/IEC 5218: 1 `male`, 2 `female`, 0 not known and
//! 9 not applicable both `other`). A record missing one of them is stored and registered as usual
//! but has no row (the put's answer says so): it cannot be aggregated, and the release says how
//! many of the cohort's records had a row.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};

use custos_fhe::{
    AggregateValue, ClientKey, Cohort, EncryptedTable, KeyId, Plan, Record, Schema, StoredChunk,
    Value,
};
use custos_types::{RecordId, RequestId};
use custos_vault::{AttributeName, AttributeValue, KdfParams, Passphrase, PassphraseSealed};
use rand_core::OsRng;
use tracing::{info, warn};

const KEY_LABEL: &str = "custos/vault/fhe-client-key/v1";
const KEY_FILE: &str = "client-key.sealed";

/// Why an aggregate operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    /// The sealed key file or the store is unusable.
    #[error("aggregate store: {0}")]
    Store(String),
    /// custos-fhe refused (a bad query, a result that fails its checks, a cohort below k).
    #[error(transparent)]
    Fhe(#[from] custos_fhe::Error),
    /// No table for the category.
    #[error("no record of category `{0}` has an aggregate row in this vault")]
    NoTable(String),
}

fn store_err(what: &str, e: impl std::fmt::Display) -> AggregateError {
    AggregateError::Store(format!("{what}: {e}"))
}

struct CategoryTable {
    table: EncryptedTable,
    rows: BTreeMap<RecordId, u64>,
}

/// Public FHE material, computed once.
pub struct PublicMaterial {
    /// The compact public key (custos-fhe encoding).
    pub public_key: Vec<u8>,
    /// The compressed server key (custos-fhe encoding), for bootstrapped plans.
    pub server_key: Vec<u8>,
}

/// The custodian's FHE key and encrypted tables.
pub struct Aggregates {
    key: ClientKey,
    schema: Schema,
    db: sled::Db,
    tables: RwLock<BTreeMap<String, CategoryTable>>,
    public: OnceLock<Arc<PublicMaterial>>,
    k_min: u64,
}

/// The rows of a cohort found in a category's table.
pub struct CohortRows {
    /// The rows, as a custos-fhe cohort.
    pub cohort: Cohort,
    /// Records of the cohort without a row.
    pub missing: u64,
}

fn chunk_key(category: &str, column: u32, chunk: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + category.len() + 9);
    k.extend_from_slice(b"c/");
    k.extend_from_slice(category.as_bytes());
    k.push(0);
    k.extend_from_slice(&column.to_be_bytes());
    k.extend_from_slice(&chunk.to_be_bytes());
    k
}

fn row_key(category: &str, record: &RecordId) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + category.len() + 33);
    k.extend_from_slice(b"r/");
    k.extend_from_slice(category.as_bytes());
    k.push(0);
    k.extend_from_slice(&record.0.0);
    k
}

fn u64_of(bytes: &[u8], what: &str) -> Result<u64, AggregateError> {
    let b: [u8; 8] = bytes
        .try_into()
        .map_err(|_| store_err(what, "expected 8 bytes"))?;
    Ok(u64::from_be_bytes(b))
}

/// The aggregate record of a vault record's attributes, or why it has none.
pub fn fhe_record(attributes: &BTreeMap<AttributeName, AttributeValue>) -> Result<Record, String> {
    let get = |name: &str| {
        attributes
            .iter()
            .find(|(k, _)| k.as_str() == name)
            .map(|(_, v)| v)
            .ok_or_else(|| format!("no `{name}` attribute"))
    };
    let number = |name: &str| match get(name)? {
        AttributeValue::Numeric(v) => Ok(*v),
        AttributeValue::Categorical(_) => Err(format!("`{name}` is not a number")),
    };
    let flag = |name: &str| match number(name)? {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(format!("`{name}` must be 0 or 1, got {v}")),
    };
    // ISO/IEC 5218 codes, as [`crate::attributes`] stores them.
    let sex = match get("sex")? {
        AttributeValue::Numeric(1) => "male".to_string(),
        AttributeValue::Numeric(2) => "female".to_string(),
        AttributeValue::Numeric(0 | 9) => "other".to_string(),
        AttributeValue::Numeric(v) => {
            return Err(format!("`sex` code {v} is not 0, 1, 2 or 9 (ISO/IEC 5218)"));
        }
        AttributeValue::Categorical(label) => label.clone(),
    };
    let mut r = Record::new();
    r.insert("age".into(), Value::Number(number("age")? as f64));
    r.insert(
        "bmi".into(),
        Value::Number(number("bmi_x10")? as f64 / 10.0),
    );
    r.insert(
        "hba1c".into(),
        Value::Number(number("hba1c_x10")? as f64 / 10.0),
    );
    r.insert("diabetes".into(), Value::Bool(flag("diabetes")?));
    r.insert("smoker".into(), Value::Bool(flag("smoker")?));
    r.insert("sex".into(), Value::Category(sex));
    Ok(r)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), AggregateError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| store_err("create key file", e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| store_err("write key file", e))?;
    std::fs::rename(&tmp, path).map_err(|e| store_err("rename key file", e))
}

impl Aggregates {
    /// Opens (or creates) the aggregate store under `dir`, the client key sealed under
    /// `passphrase`; `k_min` is the smallest cohort (and matching count) ever decrypted.
    pub fn open(
        dir: &Path,
        passphrase: &Passphrase,
        kdf: KdfParams,
        k_min: u64,
    ) -> Result<Self, AggregateError> {
        std::fs::create_dir_all(dir).map_err(|e| store_err("create folder", e))?;
        let key_path: PathBuf = dir.join(KEY_FILE);
        let key = if key_path.exists() {
            let text =
                std::fs::read_to_string(&key_path).map_err(|e| store_err("read key file", e))?;
            let sealed: PassphraseSealed =
                serde_json::from_str(&text).map_err(|e| store_err("key file", e))?;
            let bytes = sealed
                .open(passphrase, KEY_LABEL)
                .map_err(|e| store_err("unseal the FHE client key", e))?;
            ClientKey::from_bytes(&bytes)?
        } else {
            let key = ClientKey::generate();
            let sealed =
                PassphraseSealed::seal(passphrase, KEY_LABEL, &key.to_bytes(), kdf, &mut OsRng)
                    .map_err(|e| store_err("seal the FHE client key", e))?;
            let text =
                serde_json::to_string_pretty(&sealed).map_err(|e| store_err("key file", e))?;
            write_atomically(&key_path, text.as_bytes())?;
            info!(target: "custos::vault", key = %key.id(), "new FHE client key generated and sealed");
            key
        };
        let db = sled::open(dir.join("sled")).map_err(|e| store_err("open sled", e))?;
        let schema = Schema::demo();
        let mut tables = BTreeMap::new();
        for item in db.scan_prefix(b"n/") {
            let (k, v) = item.map_err(|e| store_err("scan", e))?;
            let category =
                String::from_utf8(k[2..].to_vec()).map_err(|e| store_err("category", e))?;
            let rows = u64_of(&v, "row count")?;
            let mut prefix = b"c/".to_vec();
            prefix.extend_from_slice(category.as_bytes());
            prefix.push(0);
            let mut chunks = Vec::new();
            for item in db.scan_prefix(&prefix) {
                let (k, v) = item.map_err(|e| store_err("scan", e))?;
                let rest = &k[prefix.len()..];
                if rest.len() != 8 {
                    return Err(store_err("chunk key", "expected column and chunk"));
                }
                chunks.push(StoredChunk {
                    column: u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]),
                    chunk: u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]),
                    bytes: v.to_vec(),
                });
            }
            let table = EncryptedTable::new(schema.clone(), &key).with_chunks(rows, chunks)?;
            let mut ids = BTreeMap::new();
            let mut prefix = b"r/".to_vec();
            prefix.extend_from_slice(category.as_bytes());
            prefix.push(0);
            for item in db.scan_prefix(&prefix) {
                let (k, v) = item.map_err(|e| store_err("scan", e))?;
                let id: [u8; 32] = k[prefix.len()..]
                    .try_into()
                    .map_err(|_| store_err("row key", "expected a 32-byte record id"))?;
                ids.insert(RecordId(custos_crypto::Hash(id)), u64_of(&v, "row")?);
            }
            tables.insert(category, CategoryTable { table, rows: ids });
        }
        Ok(Aggregates {
            key,
            schema,
            db,
            tables: RwLock::new(tables),
            public: OnceLock::new(),
            k_min,
        })
    }

    /// The aggregate schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The client key's identifier.
    pub fn key_id(&self) -> KeyId {
        self.key.id()
    }

    /// The smallest cohort, and matching count, this vault decrypts.
    pub fn k_min(&self) -> u64 {
        self.k_min
    }

    fn read(
        &self,
    ) -> Result<std::sync::RwLockReadGuard<'_, BTreeMap<String, CategoryTable>>, AggregateError>
    {
        self.tables
            .read()
            .map_err(|_| store_err("tables", "lock poisoned"))
    }

    fn write(
        &self,
    ) -> Result<std::sync::RwLockWriteGuard<'_, BTreeMap<String, CategoryTable>>, AggregateError>
    {
        self.tables
            .write()
            .map_err(|_| store_err("tables", "lock poisoned"))
    }

    fn persist(
        &self,
        category: &str,
        rows: u64,
        chunks: Vec<StoredChunk>,
        extra: impl FnOnce(&mut sled::Batch),
    ) -> Result<(), AggregateError> {
        let mut batch = sled::Batch::default();
        let mut n = b"n/".to_vec();
        n.extend_from_slice(category.as_bytes());
        batch.insert(n, &rows.to_be_bytes());
        for c in chunks {
            batch.insert(chunk_key(category, c.column, c.chunk), c.bytes);
        }
        extra(&mut batch);
        self.db
            .apply_batch(batch)
            .map_err(|e| store_err("write", e))?;
        self.db.flush().map_err(|e| store_err("flush", e))?;
        Ok(())
    }

    /// Appends a record's row to its category's table (blocking: a few ms of encryption).
    /// `Ok(None)` when the record's attributes do not fit the schema (logged, not an error).
    pub fn ingest(
        &self,
        category: &str,
        record: RecordId,
        attributes: &BTreeMap<AttributeName, AttributeValue>,
    ) -> Result<Option<u64>, AggregateError> {
        let fhe = match fhe_record(attributes) {
            Ok(r) => r,
            Err(why) => {
                info!(target: "custos::vault", record = %record.short(), why, "record has no aggregate row");
                return Ok(None);
            }
        };
        let mut tables = self.write()?;
        let entry = tables
            .entry(category.to_string())
            .or_insert_with(|| CategoryTable {
                table: EncryptedTable::new(self.schema.clone(), &self.key),
                rows: BTreeMap::new(),
            });
        if let Some(row) = entry.rows.get(&record) {
            return Ok(Some(*row));
        }
        let added = match entry.table.append(&self.key, std::slice::from_ref(&fhe)) {
            Ok(added) => added,
            Err(custos_fhe::Error::Record(why)) => {
                warn!(target: "custos::vault", record = %record.short(), why, "record attributes do not fit the aggregate schema");
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let chunks = entry.table.chunks_from(added.start)?;
        let row = added.start;
        self.persist(category, entry.table.rows(), chunks, |b| {
            b.insert(row_key(category, &record), &row.to_be_bytes());
            let mut i = b"i/".to_vec();
            i.extend_from_slice(&record.0.0);
            b.insert(i, category.as_bytes());
        })?;
        entry.rows.insert(record, row);
        Ok(Some(row))
    }

    /// Overwrites an erased record's row with zeros (fresh ciphertexts) and forgets its row.
    /// `Ok(false)` when the record had none.
    pub fn erase(&self, record: &RecordId) -> Result<bool, AggregateError> {
        let mut i = b"i/".to_vec();
        i.extend_from_slice(&record.0.0);
        let Some(category) = self.db.get(&i).map_err(|e| store_err("read", e))? else {
            return Ok(false);
        };
        let category =
            String::from_utf8(category.to_vec()).map_err(|e| store_err("category", e))?;
        let mut tables = self.write()?;
        let Some(entry) = tables.get_mut(&category) else {
            return Ok(false);
        };
        let Some(row) = entry.rows.get(record).copied() else {
            return Ok(false);
        };
        let chunks = entry.table.clear_row(&self.key, row)?;
        self.persist(&category, entry.table.rows(), chunks, |b| {
            b.remove(row_key(&category, record));
            b.remove(i);
        })?;
        entry.rows.remove(record);
        Ok(true)
    }

    /// The rows of the cohort `ids` (the ledger's, already verified) in `category`'s table.
    pub fn cohort(&self, category: &str, ids: &[RecordId]) -> Result<CohortRows, AggregateError> {
        let tables = self.read()?;
        let entry = tables
            .get(category)
            .ok_or_else(|| AggregateError::NoTable(category.to_string()))?;
        let mut rows: Vec<u64> = ids
            .iter()
            .filter_map(|id| entry.rows.get(id).copied())
            .collect();
        rows.sort_unstable();
        let missing = (ids.len() - rows.len()) as u64;
        Ok(CohortRows {
            cohort: Cohort::from_sorted_rows(&rows)?,
            missing,
        })
    }

    /// The repacking seed of `request`: a PRF of the client key, so only the custodian can
    /// rebuild the same ciphertexts, and every request gets fresh ones.
    fn repack_seed(&self, request: &RequestId) -> [u8; 32] {
        let key = self.key.to_bytes();
        custos_crypto::sha256_parts(&[b"custos/vault/repack/v1", &key, &request.0.0]).0
    }

    /// What the worker evaluates for `request`: only the cohort's rows of only the columns
    /// `plan` reads, re-encrypted for this request ([`EncryptedTable::repack`]), and the cohort
    /// over them (every row). A row outside the cohort never leaves the vault, not even as a
    /// ciphertext, and the table's size stays here.
    fn repacked(
        &self,
        category: &str,
        plan: &Plan,
        cohort: &Cohort,
        request: &RequestId,
    ) -> Result<(EncryptedTable, Cohort), AggregateError> {
        let tables = self.read()?;
        let entry = tables
            .get(category)
            .ok_or_else(|| AggregateError::NoTable(category.to_string()))?;
        let packed = entry
            .table
            .repack(&self.key, plan, cohort, &self.repack_seed(request))?;
        let all = Cohort::all(packed.rows())?;
        Ok((packed, all))
    }

    /// The payload a compute worker evaluates `plan` over for `request` (blocking: decrypts
    /// and re-encrypts the plan's columns).
    pub fn payload(
        &self,
        category: &str,
        plan: &Plan,
        cohort: &Cohort,
        request: &RequestId,
    ) -> Result<Vec<u8>, AggregateError> {
        let (packed, all) = self.repacked(category, plan, cohort, request)?;
        Ok(custos_fhe::encode_payload(&all, &packed)?)
    }

    /// Rows in `category`'s table.
    pub fn rows(&self, category: &str) -> Result<u64, AggregateError> {
        Ok(self.read()?.get(category).map_or(0, |t| t.table.rows()))
    }

    /// Checks and decrypts a worker's result for `request` ([`custos_fhe::decrypt_checked`]
    /// with this vault's k, against the same repacked table): blocking, it recomputes the
    /// aggregate.
    pub fn release(
        &self,
        category: &str,
        plan: &Plan,
        cohort: &Cohort,
        request: &RequestId,
        result: &custos_fhe::EncryptedResult,
    ) -> Result<AggregateValue, AggregateError> {
        let (packed, all) = self.repacked(category, plan, cohort, request)?;
        Ok(custos_fhe::decrypt_checked(
            &self.key, plan, &packed, &all, result, self.k_min,
        )?)
    }

    /// The compact public key and compressed server key (computed on first use, about a
    /// second; blocking).
    pub fn public_material(&self) -> Result<Arc<PublicMaterial>, AggregateError> {
        if let Some(p) = self.public.get() {
            return Ok(p.clone());
        }
        let started = std::time::Instant::now();
        let material = Arc::new(PublicMaterial {
            public_key: self.key.compact_public_key()?.to_bytes()?,
            server_key: self.key.compressed_server_key().to_bytes()?,
        });
        info!(
            target: "custos::vault",
            public_key_bytes = material.public_key.len(),
            server_key_bytes = material.server_key.len(),
            ms = started.elapsed().as_millis() as u64,
            "FHE public material computed"
        );
        Ok(self.public.get_or_init(|| material).clone())
    }
}
