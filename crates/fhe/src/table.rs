//! The encrypted column store: one seeded GLWE ciphertext per column per 2048 rows.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keys::{ClientKey, KeyId, decode};
use crate::math;
use crate::params::{BODY_BYTES, CHUNK_ROWS, DROPPED_BODY_BITS, LOG_DELTA, MAX_ROWS};
use crate::schema::{AttributeKind, ColumnKey, Record, Schema};

const TABLE_MAGIC: &[u8; 8] = b"CFHE-TB1";

/// A seeded GLWE ciphertext (k=1, N=2048) packing 2048 rows of one column: the mask is
/// AES-128-CTR(seed), the body is stored as its top 56 bits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PackedChunk {
    pub(crate) seed: u128,
    pub(crate) body: Vec<u8>,
}

impl PackedChunk {
    /// Body coefficient i restored to 64 bits.
    #[inline]
    pub(crate) fn body_at(&self, i: usize) -> u64 {
        let b = &self.body[i * BODY_BYTES..(i + 1) * BODY_BYTES];
        let mut le = [0u8; 8];
        le[..BODY_BYTES].copy_from_slice(b);
        u64::from_le_bytes(le) << DROPPED_BODY_BITS
    }

    fn encrypt(key: &ClientKey, values: &[u64], rng: &mut impl Rng) -> Result<Self> {
        let seed: u128 = rng.r#gen();
        let mut mask = vec![0u64; CHUNK_ROWS];
        math::expand_mask(seed, &mut mask);
        let mut body = vec![0u64; CHUNK_ROWS];
        math::mul_by_small(&mask, key.glwe_fourier(), &mut body)?;
        let mut bytes = Vec::with_capacity(CHUNK_ROWS * BODY_BYTES);
        for (i, b) in body.iter_mut().enumerate() {
            let m = values.get(i).copied().unwrap_or(0);
            // TUniform(2^17): uniform u in [0, 2^18) plus a bit, centred.
            let r: u32 = rng.r#gen();
            let noise = i64::from((r >> 1) & 0x3_ffff) + i64::from(r & 1) - (1 << 17);
            *b = b
                .wrapping_add(m << LOG_DELTA)
                .wrapping_add(noise as u64)
                .wrapping_add(1 << (DROPPED_BODY_BITS - 1));
            bytes.extend_from_slice(&(*b >> DROPPED_BODY_BITS).to_le_bytes()[..BODY_BYTES]);
        }
        Ok(Self { seed, body: bytes })
    }

    fn decrypt(&self, key: &ClientKey) -> Result<Vec<u64>> {
        let mut mask = vec![0u64; CHUNK_ROWS];
        math::expand_mask(self.seed, &mut mask);
        let mut prod = vec![0u64; CHUNK_ROWS];
        math::mul_by_small(&mask, key.glwe_fourier(), &mut prod)?;
        Ok((0..CHUNK_ROWS)
            .map(|i| decode(self.body_at(i).wrapping_sub(prod[i])))
            .collect())
    }
}

/// One stored chunk of one column (see [`EncryptedTable::chunks_from`]): `column` is the
/// column's position in the schema's layout, `chunk` the index of its 2048 rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredChunk {
    /// Position of the column in [`Schema::columns`].
    pub column: u32,
    /// Index of the chunk (rows `chunk * 2048 ..`).
    pub chunk: u32,
    /// The chunk's encoding (seed and 56-bit bodies).
    pub bytes: Vec<u8>,
}

impl StoredChunk {
    /// Chunk `index` of column `column`, encoded for storage.
    fn of(column: usize, index: usize, chunk: &PackedChunk) -> Result<Self> {
        Ok(StoredChunk {
            column: column as u32,
            chunk: index as u32,
            bytes: postcard::to_allocvec(chunk).map_err(|e| Error::Decode {
                what: "chunk",
                reason: e.to_string(),
            })?,
        })
    }
}

/// The encrypted table: a versioned, deterministic column store the vault keeps and the compute
/// worker loads (whole, or projected to a plan's columns).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedTable {
    schema: Schema,
    key_id: KeyId,
    rows: u64,
    columns: BTreeMap<ColumnKey, Vec<PackedChunk>>,
}

impl EncryptedTable {
    /// An empty table for `schema` under `key`.
    pub fn new(schema: Schema, key: &ClientKey) -> Self {
        let columns = schema
            .columns()
            .iter()
            .map(|c| (c.clone(), Vec::new()))
            .collect();
        Self {
            schema,
            key_id: key.id(),
            rows: 0,
            columns,
        }
    }

    /// The schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Number of rows.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Identifier of the key the table is encrypted under.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// Names of the stored columns.
    pub fn column_names(&self) -> Vec<String> {
        self.columns
            .keys()
            .map(|k| self.schema.column_name(k))
            .collect()
    }

    pub(crate) fn column(&self, key: &ColumnKey) -> Result<&[PackedChunk]> {
        self.columns.get(key).map(Vec::as_slice).ok_or_else(|| {
            Error::Unsupported(format!(
                "column {} is not in this table (projected away?)",
                self.schema.column_name(key)
            ))
        })
    }

    /// Appends records (rows get consecutive indices, returned as a range). The partially filled
    /// last chunk of every column is decrypted and re-encrypted under a fresh seed.
    pub fn append(&mut self, key: &ClientKey, records: &[Record]) -> Result<std::ops::Range<u64>> {
        let units: Vec<Vec<u64>> = records
            .iter()
            .map(|r| self.schema.encode(r))
            .collect::<Result<_>>()?;
        self.append_units(key, &units)
    }

    /// Appends rows already encoded by [`Schema::encode`] (bulk ingestion).
    pub fn append_units(
        &mut self,
        key: &ClientKey,
        units: &[Vec<u64>],
    ) -> Result<std::ops::Range<u64>> {
        if key.id() != self.key_id {
            return Err(Error::KeyMismatch(format!(
                "table is under key {}, got key {}",
                self.key_id,
                key.id()
            )));
        }
        let total = self.rows as usize + units.len();
        if total > MAX_ROWS {
            return Err(Error::Capacity {
                max: MAX_ROWS,
                got: total,
            });
        }
        let n_attrs = self.schema.attributes().len();
        for u in units {
            if u.len() != n_attrs {
                return Err(Error::Record(format!(
                    "expected {n_attrs} encoded attributes, got {}",
                    u.len()
                )));
            }
            for (a, v) in self.schema.attributes().iter().zip(u) {
                let max = match &a.kind {
                    AttributeKind::Numeric { max_units, .. } => *max_units,
                    AttributeKind::Boolean => 1,
                    AttributeKind::Categorical { values } => values.len() as u64 - 1,
                };
                if *v > max {
                    return Err(Error::Record(format!(
                        "{}: expected encoded value 0..={max}, got {v}",
                        a.name
                    )));
                }
            }
        }
        if self.columns.len() != self.schema.columns().len() {
            return Err(Error::Unsupported(
                "cannot append to a projected table".into(),
            ));
        }
        let start = self.rows as usize;
        let schema = &self.schema;
        self.columns
            .par_iter_mut()
            .try_for_each(|(col, chunks)| -> Result<()> {
                let mut rng = rand::rngs::StdRng::from_entropy();
                let mut values: Vec<u64> = Vec::new();
                let first_chunk = start / CHUNK_ROWS;
                if !start.is_multiple_of(CHUNK_ROWS)
                    && let Some(tail) = chunks.pop()
                {
                    values = tail.decrypt(key)?;
                    values.truncate(start % CHUNK_ROWS);
                }
                values.extend(units.iter().map(|u| schema.column_value(col, u)));
                for (i, part) in values.chunks(CHUNK_ROWS).enumerate() {
                    debug_assert_eq!(chunks.len(), first_chunk + i);
                    chunks.push(PackedChunk::encrypt(key, part, &mut rng)?);
                }
                Ok(())
            })?;
        self.rows = total as u64;
        Ok(start as u64..total as u64)
    }

    /// Every chunk holding a row at or after `from_row`, in every column: what an append from
    /// `from_row` (or [`EncryptedTable::clear_row`]) changed, for stores that keep the table
    /// chunk by chunk instead of rewriting it whole.
    pub fn chunks_from(&self, from_row: u64) -> Result<Vec<StoredChunk>> {
        let first = (from_row as usize) / CHUNK_ROWS;
        let mut out = Vec::new();
        for (column, key) in self.schema.columns().iter().enumerate() {
            let chunks = self.column(key)?;
            for (index, chunk) in chunks.iter().enumerate().skip(first) {
                out.push(StoredChunk::of(column, index, chunk)?);
            }
        }
        Ok(out)
    }

    /// Fills an empty table (from [`EncryptedTable::new`]) with `rows` rows from its stored
    /// chunks (every chunk of every column, as [`EncryptedTable::chunks_from`] wrote them).
    pub fn with_chunks(
        mut self,
        rows: u64,
        chunks: impl IntoIterator<Item = StoredChunk>,
    ) -> Result<Self> {
        let bad = |reason: String| Error::Decode {
            what: "stored table",
            reason,
        };
        if self.rows != 0 || self.columns.values().any(|c| !c.is_empty()) {
            return Err(bad("expected an empty table to fill".into()));
        }
        if rows as usize > MAX_ROWS {
            return Err(bad(format!("expected at most {MAX_ROWS} rows, got {rows}")));
        }
        let expected = (rows as usize).div_ceil(CHUNK_ROWS);
        let keys = self.schema.columns().to_vec();
        let mut slots: Vec<Vec<Option<PackedChunk>>> = vec![vec![None; expected]; keys.len()];
        for c in chunks {
            let slot = slots
                .get_mut(c.column as usize)
                .and_then(|col| col.get_mut(c.chunk as usize))
                .ok_or_else(|| {
                    bad(format!(
                        "chunk {} of column {} is outside the table's {} columns × {expected} chunks",
                        c.chunk,
                        c.column,
                        keys.len()
                    ))
                })?;
            let chunk: PackedChunk =
                postcard::from_bytes(&c.bytes).map_err(|e| bad(format!("chunk: {e}")))?;
            if chunk.body.len() != CHUNK_ROWS * BODY_BYTES {
                return Err(bad(format!(
                    "chunk {} of column {}: expected a {}-byte body, got {}",
                    c.chunk,
                    c.column,
                    CHUNK_ROWS * BODY_BYTES,
                    chunk.body.len()
                )));
            }
            *slot = Some(chunk);
        }
        for (key, col) in keys.iter().zip(slots) {
            let filled: Option<Vec<PackedChunk>> = col.into_iter().collect();
            let filled = filled.ok_or_else(|| {
                bad(format!(
                    "column {} is missing a chunk",
                    self.schema.column_name(key)
                ))
            })?;
            self.columns.insert(key.clone(), filled);
        }
        self.rows = rows;
        Ok(self)
    }

    /// Overwrites `row` with zeros in every column (a record erased from the vault), each of
    /// its chunks re-encrypted under a fresh seed, so the erased values exist nowhere. Returns
    /// the changed chunks.
    pub fn clear_row(&mut self, key: &ClientKey, row: u64) -> Result<Vec<StoredChunk>> {
        if key.id() != self.key_id {
            return Err(Error::KeyMismatch(format!(
                "table is under key {}, got key {}",
                self.key_id,
                key.id()
            )));
        }
        if row >= self.rows {
            return Err(Error::Cohort(format!(
                "expected a row below the table's {}, got {row}",
                self.rows
            )));
        }
        if self.columns.len() != self.schema.columns().len() {
            return Err(Error::Unsupported("cannot clear a projected table".into()));
        }
        let (index, local) = (row as usize / CHUNK_ROWS, row as usize % CHUNK_ROWS);
        let live = (self.rows as usize - index * CHUNK_ROWS).min(CHUNK_ROWS);
        self.columns
            .par_iter_mut()
            .try_for_each(|(_, chunks)| -> Result<()> {
                let mut rng = rand::rngs::StdRng::from_entropy();
                let mut values = chunks[index].decrypt(key)?;
                values.truncate(live);
                values[local] = 0;
                chunks[index] = PackedChunk::encrypt(key, &values, &mut rng)?;
                Ok(())
            })?;
        self.schema
            .columns()
            .iter()
            .enumerate()
            .map(|(column, k)| StoredChunk::of(column, index, &self.column(k)?[index]))
            .collect()
    }

    /// A fresh table of only `cohort`'s rows (in cohort order, rows 0..len) and only the columns
    /// `plan` reads, re-encrypted with randomness derived from `seed`: the same seed gives the
    /// same bytes, so the custodian can rebuild it to check a result. What a worker gets: no
    /// ciphertext of a row outside the cohort, nor the table's size. Evaluate it with
    /// [`Cohort::all`] of its row count.
    pub fn repack(
        &self,
        key: &ClientKey,
        plan: &crate::Plan,
        cohort: &crate::Cohort,
        seed: &[u8; 32],
    ) -> Result<EncryptedTable> {
        if key.id() != self.key_id {
            return Err(Error::KeyMismatch(format!(
                "table is under key {}, got key {}",
                self.key_id,
                key.id()
            )));
        }
        if let Some(last) = cohort.rows().last()
            && last >= self.rows
        {
            return Err(Error::Cohort(format!(
                "expected rows below the table's {}, got {last}",
                self.rows
            )));
        }
        let keys = plan.columns();
        let columns = keys
            .par_iter()
            .map(|col| -> Result<(ColumnKey, Vec<PackedChunk>)> {
                let values = self.decrypt_column(key, col)?;
                let selected: Vec<u64> = cohort.rows().map(|r| values[r as usize]).collect();
                let name = self.schema.column_name(col);
                let chunks = selected
                    .chunks(CHUNK_ROWS)
                    .enumerate()
                    .map(|(i, part)| {
                        let derived = crate::keys::sha256(&[
                            b"custos-fhe repack v1",
                            seed,
                            name.as_bytes(),
                            &(i as u64).to_le_bytes(),
                        ]);
                        let mut rng = rand::rngs::StdRng::from_seed(derived);
                        PackedChunk::encrypt(key, part, &mut rng)
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok((col.clone(), chunks))
            })
            .collect::<Result<BTreeMap<_, _>>>()?;
        Ok(EncryptedTable {
            schema: self.schema.clone(),
            key_id: self.key_id,
            rows: cohort.len() as u64,
            columns,
        })
    }

    /// Decrypts one column's rows (custodian side: provenance recomputation, tests).
    pub(crate) fn decrypt_column(&self, key: &ClientKey, col: &ColumnKey) -> Result<Vec<u64>> {
        let chunks = self.column(col)?;
        let mut out: Vec<u64> = Vec::with_capacity(self.rows as usize);
        for c in chunks {
            out.extend(c.decrypt(key)?);
        }
        out.truncate(self.rows as usize);
        Ok(out)
    }

    /// A copy holding only the given columns (what a worker needs for one plan).
    pub fn project(&self, plan: &crate::Plan) -> Result<EncryptedTable> {
        let mut columns = BTreeMap::new();
        for key in plan.columns() {
            columns.insert(key.clone(), self.column(&key)?.to_vec());
        }
        Ok(Self {
            schema: self.schema.clone(),
            key_id: self.key_id,
            rows: self.rows,
            columns,
        })
    }

    /// Number of stored columns.
    pub fn column_count(&self) -> usize {
        self.columns.len()
    }

    /// Ciphertext bytes stored per record per column (seed and 56-bit bodies).
    pub fn bytes_per_record_per_column(&self) -> f64 {
        let chunks = (self.rows as usize).div_ceil(CHUNK_ROWS).max(1);
        let per_chunk = 16 + CHUNK_ROWS * BODY_BYTES;
        (chunks * per_chunk) as f64 / (self.rows.max(1) as f64)
    }

    /// Versioned, deterministic encoding: magic, then postcard of the table.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        postcard::to_extend(self, TABLE_MAGIC.to_vec()).map_err(|e| Error::Decode {
            what: "table",
            reason: e.to_string(),
        })
    }

    /// Loads a table written by [`EncryptedTable::to_bytes`], validating its shape.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bad = |reason: String| Error::Decode {
            what: "table",
            reason,
        };
        if bytes.len() < 8 || &bytes[..8] != TABLE_MAGIC {
            return Err(bad(format!(
                "expected magic {:?}",
                String::from_utf8_lossy(TABLE_MAGIC)
            )));
        }
        let mut t: EncryptedTable =
            postcard::from_bytes(&bytes[8..]).map_err(|e| bad(e.to_string()))?;
        t.schema = t.schema.rebuild()?;
        if t.rows as usize > MAX_ROWS {
            return Err(bad(format!(
                "expected at most {MAX_ROWS} rows, got {}",
                t.rows
            )));
        }
        let chunks = (t.rows as usize).div_ceil(CHUNK_ROWS);
        for (k, v) in &t.columns {
            if !t.schema.columns().contains(k) {
                return Err(bad("a column not derived from the schema".into()));
            }
            if v.len() != chunks || v.iter().any(|c| c.body.len() != CHUNK_ROWS * BODY_BYTES) {
                return Err(bad(format!(
                    "column {}: expected {chunks} chunks of {} bytes",
                    t.schema.column_name(k),
                    CHUNK_ROWS * BODY_BYTES
                )));
            }
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::NOISE_BOUND_LOG2;

    /// Fresh noise plus body rounding: bounded by 2^17 + 2^7 and with TUniform's variance
    /// (≈ 2^34/3, plus ≈ 2^14/3 from rounding).
    #[test]
    fn fresh_noise_stays_within_the_tuniform_bound_and_matches_its_variance() {
        let key = ClientKey::generate();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut sq = 0f64;
        let mut n = 0f64;
        let bound = (1i64 << NOISE_BOUND_LOG2) + (1 << (DROPPED_BODY_BITS - 1));
        for _ in 0..16 {
            let values: Vec<u64> = (0..CHUNK_ROWS).map(|_| rng.gen_range(0..=1023)).collect();
            let chunk = PackedChunk::encrypt(&key, &values, &mut rng).expect("encrypts");
            let mut mask = vec![0u64; CHUNK_ROWS];
            math::expand_mask(chunk.seed, &mut mask);
            let mut prod = vec![0u64; CHUNK_ROWS];
            math::mul_by_small(&mask, key.glwe_fourier(), &mut prod).expect("exact");
            for i in 0..CHUNK_ROWS {
                let phase = chunk.body_at(i).wrapping_sub(prod[i]);
                let e = phase.wrapping_sub(values[i] << LOG_DELTA) as i64;
                assert!(e.abs() <= bound, "noise {e} above {bound}");
                sq += (e as f64).powi(2);
                n += 1.0;
            }
            assert_eq!(chunk.decrypt(&key).expect("decrypts"), values);
        }
        let var = sq / n;
        let expected = 2f64.powi(34) / 3.0 + 2f64.powi(14) / 3.0;
        assert!(
            (var / expected - 1.0).abs() < 0.05,
            "variance {var:e} vs {expected:e}"
        );
    }

    /// The aggregate of 16 full chunks: measured noise against the Hoeffding bound, and the
    /// variance extrapolated to 2^20 rows stays far below Δ/2.
    #[test]
    fn aggregate_noise_grows_as_the_square_root_of_the_cohort() {
        use crate::eval::{Cohort, NoProgress, column_sums};
        use crate::schema::{Attribute, AttributeKind};
        use tfhe::core_crypto::prelude::{CiphertextModulus, LweCiphertextOwned};
        let key = ClientKey::generate();
        let schema = Schema::new(
            vec![Attribute {
                name: "v".into(),
                kind: AttributeKind::Numeric {
                    scale: 1,
                    max_units: 1023,
                    edges: vec![],
                    sum: true,
                    radix: false,
                },
            }],
            vec![],
        )
        .expect("valid");
        let rows = 16 * CHUNK_ROWS;
        let mut table = EncryptedTable::new(schema, &key);
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let units: Vec<Vec<u64>> = (0..rows).map(|_| vec![rng.gen_range(0..=1023)]).collect();
        table.append_units(&key, &units).expect("fits");
        let col = table.schema().columns()[0].clone();
        let mut noises = Vec::new();
        for density in [0.25, 0.5, 0.75, 1.0] {
            let bits: Vec<bool> = (0..rows).map(|_| rng.gen_bool(density)).collect();
            let cohort = Cohort::from_bitmap(&bits).expect("valid");
            let expected: u64 = cohort.rows().map(|r| units[r as usize][0]).sum();
            let lwe = column_sums(&table, std::slice::from_ref(&col), &cohort, &NoProgress)
                .expect("sums");
            let ct =
                LweCiphertextOwned::from_container(lwe[0].clone(), CiphertextModulus::new_native());
            assert_eq!(key.decrypt_lwe(&ct), expected);
            let noise = key.lwe_noise(&ct, expected);
            let sigma = (cohort.len() as f64 * 2f64.powi(34) / 3.0).sqrt();
            // 8σ: probability below 2^-40 for a sum of bounded independent terms.
            assert!(
                (noise as f64).abs() < 8.0 * sigma,
                "noise {noise} vs σ {sigma}"
            );
            noises.push(noise);
        }
        let sigma_max = ((crate::params::MAX_ROWS as f64) * 2f64.powi(34) / 3.0).sqrt();
        assert!(
            20.0 * sigma_max < 2f64.powi(LOG_DELTA as i32 - 1),
            "extrapolated σ at 2^20 rows: {sigma_max:e}"
        );
    }
}
