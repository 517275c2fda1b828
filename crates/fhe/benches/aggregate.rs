//! Aggregate throughput: packed additive plans vs. the naive tfhe integer path.
//!
//! `cargo bench -p custos-fhe --bench aggregate` (set `CUSTOS_FHE_BENCH_MAX_ROWS` to stop earlier).

use std::time::Instant;

use custos_fhe::{
    AggregateValue, Attribute, AttributeKind, ClientKey, Cohort, Cross, EncryptedTable, Family,
    NoProgress, Schema, decrypt_checked, evaluate, explain, measure_keys,
};
use rand::{Rng, SeedableRng};
use tfhe::prelude::*;
use tfhe::{ConfigBuilder, FheBool, FheUint8, FheUint16, FheUint32, generate_keys, set_server_key};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn bench_schema() -> Schema {
    let numeric = |max_units, edges: &[u64], scale| AttributeKind::Numeric {
        scale,
        max_units,
        edges: edges.to_vec(),
        sum: true,
        radix: false,
    };
    let attrs = vec![
        Attribute {
            name: "age".into(),
            kind: numeric(127, &[18, 30, 40, 50, 60, 70, 80], 1),
        },
        Attribute {
            name: "bmi".into(),
            kind: numeric(1023, &[185, 250, 300], 10),
        },
        Attribute {
            name: "diabetes".into(),
            kind: AttributeKind::Boolean,
        },
    ];
    let crosses = vec![Cross {
        families: vec![
            Family::Value("bmi".into()),
            Family::Indicators("age".into()),
        ],
    }];
    match Schema::new(attrs, crosses) {
        Ok(s) => s,
        Err(e) => panic!("bench schema: {e}"),
    }
}

struct Naive {
    count_range_rows_s: f64,
    sum_range_rows_s: f64,
    count_rows_s: f64,
    sum_rows_s: f64,
}

/// The naive integer path: per row FheUint comparisons, AND, cast and add (sample of rows).
fn naive(sample: usize) -> Naive {
    let config = ConfigBuilder::default().build();
    let (ck, sk) = generate_keys(config);
    set_server_key(sk.clone());
    rayon::broadcast(|_| set_server_key(sk.clone()));
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let ages: Vec<FheUint8> = (0..sample)
        .map(|_| FheUint8::encrypt(rng.gen_range(0..100u8), &ck))
        .collect();
    let bmis: Vec<FheUint16> = (0..sample)
        .map(|_| FheUint16::encrypt(rng.gen_range(150..450u16), &ck))
        .collect();
    let flags: Vec<FheBool> = (0..sample)
        .map(|_| FheBool::encrypt(rng.gen_bool(0.3), &ck))
        .collect();
    let time = |f: &dyn Fn() -> FheUint32| {
        let t = Instant::now();
        let r = f();
        let _: u32 = r.decrypt(&ck);
        sample as f64 / t.elapsed().as_secs_f64()
    };
    let count_rows_s = time(&|| {
        let mut acc = FheUint32::encrypt_trivial(0u32);
        for f in &flags {
            acc += FheUint32::cast_from(f.clone());
        }
        acc
    });
    let sum_rows_s = time(&|| {
        let mut acc = FheUint32::encrypt_trivial(0u32);
        for b in &bmis {
            acc += FheUint32::cast_from(b.clone());
        }
        acc
    });
    let count_range_rows_s = time(&|| {
        let mut acc = FheUint32::encrypt_trivial(0u32);
        for a in &ages {
            let bit = a.ge(40u8) & a.lt(60u8);
            acc += FheUint32::cast_from(bit);
        }
        acc
    });
    let sum_range_rows_s = time(&|| {
        let mut acc = FheUint32::encrypt_trivial(0u32);
        let zero = FheUint32::encrypt_trivial(0u32);
        for (a, b) in ages.iter().zip(&bmis) {
            let bit = a.ge(40u8) & a.lt(60u8);
            acc += bit.if_then_else(&FheUint32::cast_from(b.clone()), &zero);
        }
        acc
    });
    Naive {
        count_range_rows_s,
        sum_range_rows_s,
        count_rows_s,
        sum_rows_s,
    }
}

fn main() {
    let max_rows: usize = std::env::var("CUSTOS_FHE_BENCH_MAX_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(custos_fhe::params::MAX_ROWS);
    println!(
        "custos-fhe aggregate bench ({} rayon threads)",
        rayon::current_num_threads()
    );

    let keys = match measure_keys() {
        Ok(k) => k,
        Err(e) => panic!("keys: {e}"),
    };
    println!("\nkeys:");
    println!(
        "  client key        {:>12} bytes  gen {:>8.3} s  load {:.4} s",
        keys.client_key_bytes, keys.client_key_gen_s, keys.client_key_load_s
    );
    println!(
        "  compressed server {:>12} bytes  gen {:>8.3} s  load+decompress {:.3} s",
        keys.compressed_server_key_bytes, keys.server_key_gen_s, keys.server_key_load_s
    );
    println!(
        "  compact public    {:>12} bytes  gen {:>8.3} s",
        keys.public_key_bytes, keys.public_key_gen_s
    );

    println!("\nnaive tfhe integer path (high-level API, 4-row sample, extrapolated):");
    let nv = naive(4);
    println!(
        "  COUNT (FheBool→FheUint32 add)         {:>10.2} rows/s",
        nv.count_rows_s
    );
    println!(
        "  SUM   (FheUint16→FheUint32 add)       {:>10.2} rows/s",
        nv.sum_rows_s
    );
    println!(
        "  COUNT age in [40,60) (2 cmp, AND, add) {:>9.2} rows/s",
        nv.count_range_rows_s
    );
    println!(
        "  SUM bmi, age in [40,60) (+ select)     {:>9.2} rows/s",
        nv.sum_range_rows_s
    );

    let key = ClientKey::generate();
    let schema = bench_schema();
    let queries: [(&str, &str, f64); 4] = [
        (
            "COUNT diabetes=1",
            "COUNT WHERE diabetes = 1",
            nv.count_rows_s,
        ),
        ("SUM bmi", "SUM bmi", nv.sum_rows_s),
        (
            "COUNT age∈[40,60)",
            "COUNT WHERE age >= 40 AND age < 60",
            nv.count_range_rows_s,
        ),
        (
            "SUM bmi, age∈[40,60)",
            "SUM bmi WHERE age >= 40 AND age < 60",
            nv.sum_range_rows_s,
        ),
    ];
    println!("\npacked additive path, 75% consent-selected cohort (median of runs):");
    println!(
        "  {:>9} {:<22} {:>12} {:>14} {:>12} {:>14} {:>10}",
        "rows", "query", "eval ms", "rows/s", "vs naive", "check+dec ms", "bytes/rec/col"
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for n in [1_000usize, 10_000, 100_000, 1_000_000] {
        if n > max_rows {
            break;
        }
        let units: Vec<Vec<u64>> = (0..n)
            .map(|_| {
                vec![
                    rng.gen_range(0..=100),
                    rng.gen_range(150..=450),
                    u64::from(rng.gen_bool(0.3)),
                ]
            })
            .collect();
        let mut table = EncryptedTable::new(schema.clone(), &key);
        let t = Instant::now();
        if let Err(e) = table.append_units(&key, &units) {
            panic!("ingest: {e}");
        }
        let ingest_s = t.elapsed().as_secs_f64();
        let bits: Vec<bool> = (0..n).map(|_| rng.gen_bool(0.75)).collect();
        let cohort = match Cohort::from_bitmap(&bits) {
            Ok(c) => c,
            Err(e) => panic!("cohort: {e}"),
        };
        println!(
            "  {n:>9} rows: ingest {:.3} s ({:.0} rows/s for {} columns), cohort {}",
            ingest_s,
            n as f64 / ingest_s,
            table.column_count(),
            cohort.len()
        );
        for (label, q, naive_rate) in queries {
            let plan = match explain(table.schema(), q) {
                Ok(p) => p,
                Err(e) => panic!("{q}: {e}"),
            };
            let runs = if n >= 1_000_000 { 5 } else { 9 };
            let mut times = Vec::new();
            let mut result = None;
            for _ in 0..runs {
                let t = Instant::now();
                let r = evaluate(&plan, &table, &cohort, None, &NoProgress);
                times.push(t.elapsed().as_secs_f64());
                result = Some(r);
            }
            let result = match result {
                Some(Ok(r)) => r,
                Some(Err(e)) => panic!("{q}: {e}"),
                None => unreachable!("runs > 0"),
            };
            let eval_s = median(times);
            let t = Instant::now();
            let value = decrypt_checked(&key, &plan, &table, &cohort, &result, 10);
            let check_s = t.elapsed().as_secs_f64();
            let value = match value {
                Ok(v) => v,
                Err(e) => panic!("{q}: {e}"),
            };
            // Verify against the plaintext.
            let (mut count, mut sum) = (0u64, 0u64);
            for row in cohort.rows() {
                let u = &units[row as usize];
                let hit = match q {
                    "COUNT WHERE diabetes = 1" => u[2] == 1,
                    "SUM bmi" => true,
                    _ => (40..60).contains(&u[0]),
                };
                if hit {
                    count += 1;
                    sum += u[1];
                }
            }
            let ok = match value {
                AggregateValue::Count(c) => c == count,
                AggregateValue::Sum {
                    units, count: c, ..
                }
                | AggregateValue::Mean {
                    units, count: c, ..
                } => c == count && units == sum,
            };
            assert!(ok, "{q}: wrong aggregate at {n} rows");
            let rate = n as f64 / eval_s;
            println!(
                "  {n:>9} {label:<22} {:>12.2} {:>14.0} {:>11.0}× {:>14.2} {:>10.3}",
                eval_s * 1e3,
                rate,
                rate / naive_rate,
                check_s * 1e3,
                table.bytes_per_record_per_column()
            );
        }
        // The vault's own cost per request: repacking the cohort's rows of the plan's columns
        // for the worker (done again at release to check the result).
        if let Ok(plan) = explain(table.schema(), "SUM bmi WHERE age >= 40 AND age < 60") {
            let t = Instant::now();
            match table.repack(&key, &plan, &cohort, &[1u8; 32]) {
                Ok(packed) => println!(
                    "  {n:>9} rows: vault repack for one request ({} columns, {} cohort rows): {:.2} ms",
                    packed.column_count(),
                    packed.rows(),
                    t.elapsed().as_secs_f64() * 1e3
                ),
                Err(e) => panic!("repack: {e}"),
            }
        }
    }
    let plan = explain(
        &Schema::demo(),
        "MEAN bmi WHERE age >= 40 AND age < 60 AND hba1c >= 6.5",
    );
    if let Ok(plan) = plan {
        println!("\nexample plan (demo schema):\n{plan}");
    }
    let plan = explain(&Schema::demo(), "COUNT WHERE smoker = 1 AND bmi >= 27.3");
    if let Ok(plan) = plan {
        println!("\nexample plan (demo schema):\n{plan}");
    }
}
