//! A consortium of validators on 127.0.0.1, each with its own data folder, started and stopped
//! at will.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use custos_consensus::{ConsensusConfig, run, tcp_multiaddr};
use custos_crypto::{SecretKey, SigningKeyPair};
use custos_ledger::{Validator, ValidatorSet};
use tempfile::TempDir;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::ledger::{Committed, TestLedger, check_certificate_by_hand, parse_header};

/// Clusters run one at a time: four engines already keep two cores busy.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long any wait in a test may take.
pub(crate) const PATIENCE: Duration = Duration::from_secs(90);

struct Running {
    shutdown: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
}

/// The cluster.
pub(crate) struct Cluster {
    pub(crate) keys: Vec<SigningKeyPair>,
    pub(crate) set: ValidatorSet,
    pub(crate) ledgers: Vec<Arc<TestLedger>>,
    addrs: Vec<String>,
    dirs: Vec<TempDir>,
    running: Vec<Option<Running>>,
    _guard: tokio::sync::MutexGuard<'static, ()>,
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Free loopback ports, reserved by binding them all before releasing any.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| custos_consensus::reserve_loopback_port().unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

impl Cluster {
    /// `n` validators of power 1 with seeded keys; none started.
    pub(crate) async fn new(n: usize) -> Self {
        let guard = ONE_AT_A_TIME.lock().await;
        init_tracing();
        let keys: Vec<SigningKeyPair> = (0..n)
            .map(|i| {
                SigningKeyPair::from_secret(&SecretKey::from_slice(&[i as u8 + 1; 32]).unwrap())
            })
            .collect();
        let set = ValidatorSet::new(
            keys.iter()
                .map(|k| Validator {
                    key: k.public(),
                    power: 1,
                })
                .collect(),
        )
        .unwrap();
        let addrs = free_ports(n)
            .into_iter()
            .map(|p| tcp_multiaddr(SocketAddr::from(([127, 0, 0, 1], p))))
            .collect();
        Cluster {
            ledgers: (0..n)
                .map(|_| Arc::new(TestLedger::new(set.clone())))
                .collect(),
            dirs: (0..n).map(|_| tempfile::tempdir().unwrap()).collect(),
            running: (0..n).map(|_| None).collect(),
            keys,
            set,
            addrs,
            _guard: guard,
        }
    }

    fn config(&self, i: usize) -> ConsensusConfig {
        let mut config = ConsensusConfig::new(
            format!("validator-{i}"),
            self.addrs[i].clone(),
            self.dirs[i].path().to_path_buf(),
        );
        config.persistent_peers = self
            .addrs
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, a)| a.clone())
            .collect();
        config.propose_timeout = Duration::from_millis(1500);
        config.vote_timeout = Duration::from_millis(500);
        config.timeout_delta = Duration::from_millis(250);
        config.sync_status_interval = Duration::from_millis(500);
        config.sync_request_timeout = Duration::from_secs(3);
        config
    }

    /// Starts validator `i` (again, with the same data folder and ledger).
    pub(crate) fn start(&mut self, i: usize) {
        assert!(
            self.running[i].is_none(),
            "validator {i} is already running"
        );
        let (shutdown, rx) = watch::channel(false);
        let app = self.ledgers[i].clone();
        let task = tokio::spawn(run(app, self.config(i), self.keys[i].clone(), rx));
        self.running[i] = Some(Running { shutdown, task });
    }

    pub(crate) fn start_all(&mut self) {
        for i in 0..self.keys.len() {
            self.start(i);
        }
    }

    /// Stops validator `i` and waits until its engine has shut down.
    pub(crate) async fn stop(&mut self, i: usize) {
        let running = self.running[i].take().expect("validator is running");
        running.shutdown.send_replace(true);
        let result = tokio::time::timeout(PATIENCE, running.task)
            .await
            .expect("validator stops in time")
            .expect("validator task does not panic");
        result.expect("validator stops cleanly");
    }

    pub(crate) async fn stop_all(&mut self) {
        for i in 0..self.keys.len() {
            if self.running[i].is_some() {
                self.stop(i).await;
            }
        }
    }

    /// The committed height of validator `i`.
    pub(crate) fn height(&self, i: usize) -> u64 {
        *self.ledgers[i].watch_height().borrow()
    }

    /// Waits until each of `which` has committed `height`; fails after [`PATIENCE`].
    pub(crate) async fn wait_for(&self, which: &[usize], height: u64) {
        for &i in which {
            let mut rx = self.ledgers[i].watch_height();
            tokio::time::timeout(PATIENCE, rx.wait_for(|h| *h >= height))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "validator {i} reached height {} of {height} in time",
                        self.height(i)
                    )
                })
                .expect("ledger alive");
        }
    }

    /// Asserts that the chains of `which` agree on every height they share, that each is
    /// contiguous from 1, and that every block carries a certificate of more than 2/3 of the
    /// power over its header. Returns the shortest chain's height.
    pub(crate) fn assert_agreement(&self, which: &[usize]) -> u64 {
        let chains: Vec<Committed> = which.iter().map(|&i| self.ledgers[i].blocks()).collect();
        let shortest = chains
            .iter()
            .map(|c| c.keys().next_back().copied().unwrap_or(0))
            .min()
            .unwrap_or(0);
        for (chain, &i) in chains.iter().zip(which) {
            let heights: Vec<u64> = chain.keys().copied().collect();
            let expected: Vec<u64> = (1..=heights.len() as u64).collect();
            assert_eq!(heights, expected, "validator {i} has a gap");
            let mut prev = custos_crypto::Hash::ZERO;
            for (h, (value, certificate)) in chain {
                let header = parse_header(value).expect("committed values are headers");
                assert_eq!(header.height, *h);
                assert_eq!(
                    header.prev_hash, prev,
                    "validator {i} height {h} does not chain"
                );
                prev = header.hash();
                certificate
                    .verify(&header, &self.set)
                    .unwrap_or_else(|e| panic!("validator {i} height {h}: {e}"));
                check_certificate_by_hand(&header, certificate, &self.set)
                    .unwrap_or_else(|e| panic!("validator {i} height {h}: {e}"));
            }
        }
        for h in 1..=shortest {
            let first = &chains[0][&h].0;
            for (chain, &i) in chains.iter().zip(which) {
                assert_eq!(&chain[&h].0, first, "validator {i} disagrees at height {h}");
            }
        }
        shortest
    }
}
