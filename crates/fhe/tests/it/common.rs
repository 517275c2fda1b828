use std::sync::OnceLock;

use custos_fhe::{
    Aggregate, AttributeKind, ClientKey, Cohort, CompressedServerKey, EncryptedTable, Literal, Op,
    Query, Record, Schema, ServerKey, Value,
};
use rand::{Rng, SeedableRng};

pub(crate) fn client_key() -> &'static ClientKey {
    static KEY: OnceLock<ClientKey> = OnceLock::new();
    KEY.get_or_init(ClientKey::generate)
}

pub(crate) fn server_key() -> &'static ServerKey {
    static KEY: OnceLock<ServerKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let bytes = client_key()
            .compressed_server_key()
            .to_bytes()
            .expect("server key serializes");
        CompressedServerKey::from_bytes(&bytes)
            .expect("server key loads")
            .decompress()
    })
}

pub(crate) fn random_record(rng: &mut impl Rng) -> Record {
    let mut r = Record::new();
    r.insert(
        "age".into(),
        Value::Number(f64::from(rng.gen_range(0..=127u32))),
    );
    r.insert(
        "bmi".into(),
        Value::Number(f64::from(rng.gen_range(150..=450u32)) / 10.0),
    );
    r.insert(
        "hba1c".into(),
        Value::Number(f64::from(rng.gen_range(40..=110u32)) / 10.0),
    );
    r.insert("diabetes".into(), Value::Bool(rng.gen_bool(0.3)));
    r.insert("smoker".into(), Value::Bool(rng.gen_bool(0.4)));
    let sex = ["female", "male", "other"][rng.gen_range(0..3)];
    r.insert("sex".into(), Value::Category(sex.into()));
    r
}

pub(crate) fn random_records(seed: u64, n: usize) -> Vec<Record> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| random_record(&mut rng)).collect()
}

pub(crate) fn demo_table(records: &[Record]) -> EncryptedTable {
    let mut t = EncryptedTable::new(Schema::demo(), client_key());
    t.append(client_key(), records)
        .expect("records fit the demo schema");
    t
}

pub(crate) fn random_cohort(seed: u64, rows: usize, density: f64) -> Cohort {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let bits: Vec<bool> = (0..rows).map(|_| rng.gen_bool(density)).collect();
    Cohort::from_bitmap(&bits).expect("valid bitmap")
}

fn units(schema: &Schema, name: &str, v: &Value) -> i64 {
    let attr = schema
        .attributes()
        .iter()
        .find(|a| a.name == name)
        .expect("known attribute");
    match (&attr.kind, v) {
        (AttributeKind::Numeric { scale, .. }, Value::Number(x)) => {
            (x * f64::from(*scale)).round() as i64
        }
        (_, Value::Bool(b)) => i64::from(*b),
        _ => 0,
    }
}

fn clause_holds(schema: &Schema, record: &Record, c: &custos_fhe::Clause) -> bool {
    let v = &record[&c.attribute];
    if let (Value::Category(label), Literal::Label(want)) = (v, &c.literal) {
        return match c.op {
            Op::Eq => label == want,
            Op::Ne => label != want,
            _ => false,
        };
    }
    let x = units(schema, &c.attribute, v);
    let scale = match &schema
        .attributes()
        .iter()
        .find(|a| a.name == c.attribute)
        .map(|a| &a.kind)
    {
        Some(AttributeKind::Numeric { scale, .. }) => f64::from(*scale),
        _ => 1.0,
    };
    let y = match c.literal {
        Literal::Number(n) => (n * scale).round() as i64,
        Literal::Bool(b) => i64::from(b),
        Literal::Label(_) => return false,
    };
    match c.op {
        Op::Eq => x == y,
        Op::Ne => x != y,
        Op::Lt => x < y,
        Op::Le => x <= y,
        Op::Gt => x > y,
        Op::Ge => x >= y,
    }
}

/// (count, sum in units) of the query over the cohort, in clear.
pub(crate) fn plaintext(
    schema: &Schema,
    records: &[Record],
    cohort: &Cohort,
    q: &Query,
) -> (u64, u64) {
    let mut count = 0;
    let mut sum = 0;
    for row in cohort.rows() {
        let r = &records[row as usize];
        if q.clauses.iter().all(|c| clause_holds(schema, r, c)) {
            count += 1;
            if let Aggregate::Sum(a) | Aggregate::Mean(a) = &q.aggregate {
                sum += units(schema, a, &r[a]) as u64;
            }
        }
    }
    (count, sum)
}
