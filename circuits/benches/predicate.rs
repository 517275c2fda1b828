//! Predicate-proof bench: constraint count, setup, proving, verification (single and batched)
//! and proof size, each next to the baseline a trusted party would run instead (SHA-256 of the
//! attributes compared with a stored digest, then the predicate evaluated natively).
//!
//! Run with `cargo bench -p custos-circuits --bench predicate`. Figures are medians.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ark_bn254::Fr;
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystem, OptimizationGoal};
use custos_circuits::{
    AttributeCommitment, Attributes, PROOF_BYTES, Predicate, PredicateCircuit, PredicatePrivate,
    PredicateProof, PredicatePublic, RequestBinding, Salt, setup,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use sha2::{Digest, Sha256};

const BATCH: usize = 64;

fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let mut rng = StdRng::seed_from_u64(7);
    let predicate: Predicate = "age>=18 && smoker=0 && bmi_x10<300 && sex in {1,2} \
        && postcode_region not in {3,4} && cholesterol!=0 && hba1c_x10<65 && systolic_bp<140"
        .parse()
        .expect("predicate");
    let attributes = Attributes::new([42, 0, 245, 128, 55, 190, 2, 75]);
    let salt = Salt::random(&mut rng);
    let statement = |request: u8| {
        (
            PredicatePublic {
                commitment: AttributeCommitment::commit(&attributes, &salt),
                predicate: predicate.clone(),
                binding: RequestBinding {
                    request_id: [request; 32],
                    partner_key: [0x5a; 32],
                },
            },
            PredicatePrivate { attributes, salt },
        )
    };
    let (public, private) = statement(0);

    // Constraint count.
    let cs = ConstraintSystem::<Fr>::new_ref();
    cs.set_optimization_goal(OptimizationGoal::Constraints);
    PredicateCircuit {
        public: public.clone(),
        private: private.clone(),
    }
    .generate_constraints(cs.clone())
    .expect("synthesis");
    cs.finalize();
    let constraints = cs.num_constraints();

    // Baseline: what a trusted party holding the attributes would do.
    let stored = Sha256::digest(attributes.to_bytes());
    let baseline_iters = 10_000u32;
    let baseline = median(11, || {
        for _ in 0..baseline_iters {
            let digest = Sha256::digest(black_box(&attributes).to_bytes());
            assert!(digest == stored);
            assert!(black_box(&predicate).evaluate(&attributes));
        }
    }) / baseline_iters;

    let commit = median(101, || {
        black_box(AttributeCommitment::commit(&attributes, &salt));
    });

    let setup_time = median(3, || {
        black_box(setup(&mut rng).expect("setup"));
    });
    let (pk, vk) = setup(&mut rng).expect("setup");

    let mut proof = None;
    let prove = median(21, || {
        proof = Some(PredicateProof::prove(&pk, &public, &private, &mut rng).expect("prove"));
    });
    let proof = proof.expect("a proof");
    let proof_bytes = proof.to_bytes().len();
    assert_eq!(proof_bytes, PROOF_BYTES);

    let verify = median(201, || {
        proof.verify(&vk, &public).expect("verify");
    });

    let items: Vec<(PredicatePublic, PredicateProof)> = (0..BATCH)
        .map(|i| {
            let (public, private) = statement(i as u8);
            let proof = PredicateProof::prove(&pk, &public, &private, &mut rng).expect("prove");
            (public, proof)
        })
        .collect();
    let batch = median(11, || {
        PredicateProof::batch_verify(&vk, items.iter().map(|(pu, pr)| (pr, pu)), &mut rng)
            .expect("batch");
    });
    let one_by_one = median(5, || {
        for (public, proof) in &items {
            proof.verify(&vk, public).expect("verify");
        }
    });

    let ratio = |d: Duration| d.as_secs_f64() / baseline.as_secs_f64();
    println!(
        "custos-circuits predicate bench ({} threads)",
        rayon_threads()
    );
    println!("  circuit: {constraints} constraints, 8 attributes, 8 clauses, 37 public inputs");
    println!(
        "  baseline (SHA-256 of attributes + compare + native evaluate): {:.3} µs",
        baseline.as_secs_f64() * 1e6
    );
    println!(
        "  poseidon commitment (native):   {:>9.3} ms  ({:>8.0}× baseline)",
        ms(commit),
        ratio(commit)
    );
    println!(
        "  setup:                          {:>9.1} ms",
        ms(setup_time)
    );
    println!(
        "  prove:                          {:>9.1} ms  ({:>8.0}× baseline)",
        ms(prove),
        ratio(prove)
    );
    println!(
        "  verify (prepared key):          {:>9.3} ms  ({:>8.0}× baseline)",
        ms(verify),
        ratio(verify)
    );
    println!(
        "  batch verify {BATCH}:                {:>9.1} ms  = {:.0} proofs/s, {:.3} ms/proof ({:.0}× baseline); one by one {:.0} proofs/s",
        ms(batch),
        BATCH as f64 / batch.as_secs_f64(),
        ms(batch) / BATCH as f64,
        ratio(batch / BATCH as u32),
        BATCH as f64 / one_by_one.as_secs_f64()
    );
    println!(
        "  baseline throughput:            {:.0} checks/s",
        1.0 / baseline.as_secs_f64()
    );
    println!("  proof size: {proof_bytes} bytes compressed (baseline: 32-byte SHA-256 digest)");
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
