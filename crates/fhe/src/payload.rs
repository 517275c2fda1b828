//! What a vault sends a compute worker for one granted request: the cohort's rows and the table
//! projected to the plan's columns. Ciphertexts and row numbers only.

use crate::error::{Error, Result};
use crate::eval::Cohort;
use crate::table::EncryptedTable;

const PAYLOAD_MAGIC: &[u8; 8] = b"CFHE-PL1";

/// Encodes `cohort` and `table` (magic, cohort length, cohort rows as u32 LE, table encoding).
pub fn encode_payload(cohort: &Cohort, table: &EncryptedTable) -> Result<Vec<u8>> {
    let rows: Vec<u64> = cohort.rows().collect();
    let mut out = Vec::with_capacity(16 + rows.len() * 4);
    out.extend_from_slice(PAYLOAD_MAGIC);
    out.extend_from_slice(&(rows.len() as u64).to_le_bytes());
    for r in rows {
        out.extend_from_slice(&(r as u32).to_le_bytes());
    }
    out.extend_from_slice(&table.to_bytes()?);
    Ok(out)
}

/// Decodes a payload from [`encode_payload`], validating the cohort (strictly increasing rows
/// within the table) and the table's shape.
pub fn decode_payload(bytes: &[u8]) -> Result<(Cohort, EncryptedTable)> {
    let bad = |reason: String| Error::Decode {
        what: "cohort payload",
        reason,
    };
    if bytes.len() < 16 || &bytes[..8] != PAYLOAD_MAGIC {
        return Err(bad(format!(
            "expected magic {:?}",
            String::from_utf8_lossy(PAYLOAD_MAGIC)
        )));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[8..16]);
    let n = u64::from_le_bytes(len);
    let end = n
        .checked_mul(4)
        .and_then(|b| b.checked_add(16))
        .filter(|end| *end <= bytes.len() as u64)
        .ok_or_else(|| {
            bad(format!(
                "{n} cohort rows do not fit in {} bytes",
                bytes.len()
            ))
        })? as usize;
    let rows: Vec<u64> = bytes[16..end]
        .chunks_exact(4)
        .map(|c| u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
        .collect();
    let cohort = Cohort::from_sorted_rows(&rows)?;
    let table = EncryptedTable::from_bytes(&bytes[end..])?;
    if let Some(last) = rows.last()
        && *last >= table.rows()
    {
        return Err(bad(format!(
            "cohort row {last} is outside the table's {} rows",
            table.rows()
        )));
    }
    Ok((cohort, table))
}
