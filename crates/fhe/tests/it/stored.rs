//! Chunk-by-chunk storage of a table: what a vault persists after each append or erasure.

use std::collections::BTreeMap;

use custos_fhe::{
    AggregateValue, EncryptedTable, NoProgress, Schema, StoredChunk, decrypt_checked, evaluate,
    explain,
};

use crate::common::{client_key, random_cohort, random_records};

/// A store that keeps the latest bytes of each (column, chunk).
fn persist(store: &mut BTreeMap<(u32, u32), Vec<u8>>, chunks: Vec<StoredChunk>) {
    for c in chunks {
        store.insert((c.column, c.chunk), c.bytes);
    }
}

fn reload(store: &BTreeMap<(u32, u32), Vec<u8>>, rows: u64) -> EncryptedTable {
    EncryptedTable::new(Schema::demo(), client_key())
        .with_chunks(
            rows,
            store.iter().map(|(&(column, chunk), bytes)| StoredChunk {
                column,
                chunk,
                bytes: bytes.clone(),
            }),
        )
        .expect("reloads")
}

fn count(table: &EncryptedTable, query: &str, rows: usize) -> AggregateValue {
    let plan = explain(table.schema(), query).expect("plans");
    let cohort = random_cohort(1, rows, 1.0);
    let result = evaluate(&plan, table, &cohort, None, &NoProgress).expect("evaluates");
    decrypt_checked(client_key(), &plan, table, &cohort, &result, 0).expect("checks")
}

#[test]
fn appended_chunks_persisted_one_by_one_reload_to_the_same_table() {
    let key = client_key();
    let records = random_records(7, 2500);
    let mut table = EncryptedTable::new(Schema::demo(), key);
    let mut store = BTreeMap::new();
    // Appends crossing a chunk boundary, persisting only what each one changed.
    for part in [&records[..1000], &records[1000..2100], &records[2100..]] {
        let added = table.append(key, part).expect("appends");
        persist(&mut store, table.chunks_from(added.start).expect("chunks"));
    }
    let columns = Schema::demo().columns().len() as u32;
    assert_eq!(store.len() as u32, columns * 2, "two chunks per column");
    let reloaded = reload(&store, table.rows());
    assert_eq!(reloaded, table);
    assert_eq!(
        count(&reloaded, "COUNT", 2500),
        count(&table, "COUNT", 2500)
    );
}

#[test]
fn a_cleared_row_is_zero_in_every_column_and_other_rows_are_unchanged() {
    let key = client_key();
    let records = random_records(8, 40);
    let mut table = EncryptedTable::new(Schema::demo(), key);
    table.append(key, &records).expect("appends");
    let mut store = BTreeMap::new();
    persist(&mut store, table.chunks_from(0).expect("chunks"));
    let before = count(&table, "SUM age", 40);
    let AggregateValue::Sum {
        units: sum_before, ..
    } = before
    else {
        panic!("a sum, got {before:?}");
    };
    let age = match records[5].get("age") {
        Some(custos_fhe::Value::Number(a)) => *a as u64,
        other => panic!("an age, got {other:?}"),
    };
    let changed = table.clear_row(key, 5).expect("clears");
    assert_eq!(changed.len(), Schema::demo().columns().len());
    persist(&mut store, changed);
    let reloaded = reload(&store, 40);
    let after = count(&reloaded, "SUM age", 40);
    let AggregateValue::Sum {
        units: sum_after, ..
    } = after
    else {
        panic!("a sum, got {after:?}");
    };
    assert_eq!(sum_after, sum_before - age);
    assert!(
        table.clear_row(key, 40).is_err(),
        "a row past the end is refused"
    );
}

#[test]
fn a_stored_table_with_a_missing_or_foreign_chunk_is_refused() {
    let key = client_key();
    let mut table = EncryptedTable::new(Schema::demo(), key);
    table.append(key, &random_records(9, 10)).expect("appends");
    let mut chunks = table.chunks_from(0).expect("chunks");
    let last = chunks.pop().expect("some chunk");
    let missing = EncryptedTable::new(Schema::demo(), key).with_chunks(10, chunks.clone());
    assert!(missing.is_err(), "a missing chunk is refused");
    let mut outside = chunks.clone();
    outside.push(StoredChunk {
        chunk: 1,
        ..last.clone()
    });
    let err = EncryptedTable::new(Schema::demo(), key)
        .with_chunks(10, outside)
        .expect_err("a chunk past the rows is refused");
    assert!(err.to_string().contains("outside"), "{err}");
    let mut truncated = chunks;
    truncated.push(StoredChunk {
        bytes: last.bytes[..100].to_vec(),
        ..last
    });
    assert!(
        EncryptedTable::new(Schema::demo(), key)
            .with_chunks(10, truncated)
            .is_err()
    );
}

#[test]
fn a_cohort_payload_round_trips_and_malformed_payloads_are_refused() {
    let key = client_key();
    let mut table = EncryptedTable::new(Schema::demo(), key);
    table.append(key, &random_records(10, 30)).expect("appends");
    let plan = explain(table.schema(), "COUNT WHERE diabetes = 1").expect("plans");
    let projected = table.project(&plan).expect("projects");
    let cohort = random_cohort(3, 30, 0.5);
    let bytes = custos_fhe::encode_payload(&cohort, &projected).expect("encodes");
    let (c, t) = custos_fhe::decode_payload(&bytes).expect("decodes");
    assert_eq!((c, t), (cohort.clone(), projected.clone()));
    assert!(
        custos_fhe::decode_payload(&bytes[..12]).is_err(),
        "truncated"
    );
    let mut huge = bytes.clone();
    huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(
        custos_fhe::decode_payload(&huge).is_err(),
        "row count past the end"
    );
    let mut unsorted = bytes.clone();
    if cohort.len() >= 2 {
        let (a, b) = (16..20, 20..24);
        let first = unsorted[a.clone()].to_vec();
        let second = unsorted[b.clone()].to_vec();
        unsorted[a].copy_from_slice(&second);
        unsorted[b].copy_from_slice(&first);
        assert!(
            custos_fhe::decode_payload(&unsorted).is_err(),
            "unsorted rows"
        );
    }
    let outside = custos_fhe::Cohort::from_sorted_rows(&[0, 31]).expect("valid");
    let bytes = custos_fhe::encode_payload(&outside, &projected).expect("encodes");
    assert!(
        custos_fhe::decode_payload(&bytes).is_err(),
        "row past the table"
    );
}

#[test]
fn a_repacked_cohort_holds_only_its_rows_evaluates_to_the_same_value_and_is_deterministic() {
    let key = client_key();
    let records = random_records(11, 3000);
    let mut table = EncryptedTable::new(Schema::demo(), key);
    table.append(key, &records).expect("appends");
    let cohort = random_cohort(4, 3000, 0.6);
    for query in [
        "COUNT WHERE age >= 40 AND age < 60 AND hba1c >= 6.5",
        "MEAN bmi WHERE age >= 40 AND age < 60 AND hba1c >= 6.5",
    ] {
        let plan = explain(table.schema(), query).expect("plans");
        let direct = evaluate(&plan, &table, &cohort, None, &NoProgress).expect("evaluates");
        let direct = decrypt_checked(key, &plan, &table, &cohort, &direct, 0).expect("checks");
        let seed = [7u8; 32];
        let packed = table.repack(key, &plan, &cohort, &seed).expect("repacks");
        assert_eq!(packed.rows(), cohort.len() as u64);
        assert_eq!(packed.column_count(), plan.columns().len());
        let again = table.repack(key, &plan, &cohort, &seed).expect("repacks");
        assert_eq!(packed, again, "the same seed gives the same table");
        let other = table
            .repack(key, &plan, &cohort, &[8u8; 32])
            .expect("repacks");
        assert_ne!(packed, other, "another seed gives other ciphertexts");
        let all = custos_fhe::Cohort::all(packed.rows()).expect("valid");
        let result = evaluate(&plan, &packed, &all, None, &NoProgress).expect("evaluates");
        let value = decrypt_checked(key, &plan, &again, &all, &result, 0).expect("checks");
        assert_eq!(value, direct, "{query}");
    }
}
