//! Four validators on loopback with real libp2p sockets, driving an in-memory ledger.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;
mod faults;
mod ledger;
