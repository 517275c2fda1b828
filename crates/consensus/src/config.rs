//! How one validator takes part: where it listens, whom it dials, where it keeps its WAL.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Settings of one consensus node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsensusConfig {
    /// A name for logs and metrics.
    pub moniker: String,
    /// The libp2p address to listen on, e.g. `/ip4/127.0.0.1/tcp/26656`.
    pub listen_addr: String,
    /// The other validators' libp2p addresses; only these peers are connected.
    pub persistent_peers: Vec<String>,
    /// Folder for the engine's write-ahead log and the proposal store.
    pub data_dir: PathBuf,
    /// How long to wait for a proposal in round 0.
    pub propose_timeout: Duration,
    /// How long to wait for more prevotes or precommits after a quorum of mixed votes.
    pub vote_timeout: Duration,
    /// How much every timeout grows with each further round.
    pub timeout_delta: Duration,
    /// Least time from the start of one height to the start of the next (the engine's
    /// `target_time`): a height decided sooner waits, collecting late precommits. `None` moves
    /// on as soon as a height is committed.
    pub target_block_time: Option<Duration>,
    /// How often peers exchange their heights for value sync.
    pub sync_status_interval: Duration,
    /// How long a value-sync request may take before another peer is asked.
    pub sync_request_timeout: Duration,
    /// Largest value (encoded block) accepted from a peer, in bytes.
    pub max_value_bytes: usize,
}

impl ConsensusConfig {
    /// Settings with default timeouts for a node listening on `listen_addr` that keeps its data
    /// in `data_dir`.
    pub fn new(
        moniker: impl Into<String>,
        listen_addr: impl Into<String>,
        data_dir: PathBuf,
    ) -> Self {
        ConsensusConfig {
            moniker: moniker.into(),
            listen_addr: listen_addr.into(),
            persistent_peers: Vec::new(),
            data_dir,
            propose_timeout: Duration::from_secs(3),
            vote_timeout: Duration::from_secs(1),
            timeout_delta: Duration::from_millis(500),
            target_block_time: None,
            sync_status_interval: Duration::from_secs(2),
            sync_request_timeout: Duration::from_secs(10),
            max_value_bytes: 16 * 1024 * 1024,
        }
    }
}

/// The libp2p TCP multiaddr of a socket address: `/ip4/127.0.0.1/tcp/26656`.
pub fn tcp_multiaddr(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!("/ip4/{}/tcp/{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("/ip6/{}/tcp/{}", a.ip(), a.port()),
    }
}

/// A free loopback port for a validator, reserved by the returned listener until it is
/// dropped (so that no two picks at once get the same port).
///
/// It is drawn below the kernel's ephemeral range, where outgoing connections take their local
/// ports: a validator starts (and restarts) on its port some time after the port was picked,
/// and a port in the ephemeral range may meanwhile have become the local end of any connection
/// on the machine, which would keep the validator from listening. Where the range cannot be
/// read, it is taken to start at 32768 (Linux's default); where no port below it is free after
/// a few tries, any free port.
pub fn reserve_loopback_port() -> std::io::Result<std::net::TcpListener> {
    use rand::Rng;
    use std::net::TcpListener;
    const LOWEST: u16 = 10_000;
    let below = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    if below > LOWEST {
        let mut rng = rand::thread_rng();
        for _ in 0..64 {
            if let Ok(listener) = TcpListener::bind(("127.0.0.1", rng.gen_range(LOWEST..below))) {
                return Ok(listener);
            }
        }
    }
    TcpListener::bind("127.0.0.1:0")
}

#[cfg(test)]
mod tests {
    #[test]
    fn validator_ports_are_below_the_ephemeral_range() {
        let Some(start) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        else {
            return; // not Linux: nothing to compare with
        };
        let listeners: Vec<_> = (0..8)
            .map(|_| super::reserve_loopback_port().unwrap())
            .collect();
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        assert!(
            ports.iter().all(|p| (10_000..start).contains(p)),
            "{ports:?}"
        );
        let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len());
    }
}
