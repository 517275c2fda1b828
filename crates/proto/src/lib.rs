//! Parses the wire: prost messages and tonic services generated from `proto/custos`.
//!
//! These types only parse and build the wire format. The domain crates convert them with
//! `TryFrom` into validated types; nothing here checks a field's meaning. The gRPC clients and
//! servers are behind the `rpc` feature so that domain crates need no tonic.
#![allow(missing_docs, unreachable_pub, clippy::all)]

/// The encoded `FileDescriptorSet` of every Custos proto file, for gRPC server reflection and for
/// generic (reflection-based) encoders.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/custos_descriptor.bin"));

/// The gRPC codec of every generated client and server.
#[cfg(feature = "rpc")]
pub mod codec;

/// Ledger area: envelopes, transactions, blocks, headers, certificates and proofs.
pub mod ledger {
    /// Version 1.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/custos.ledger.v1.rs"));
    }
}
/// Consent area: parties, records and consents.
pub mod consent {
    /// Version 1.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/custos.consent.v1.rs"));
    }
}
/// Access area: requests and decisions.
pub mod access {
    /// Version 1.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/custos.access.v1.rs"));
    }
}
/// Vault area: the custodian's encrypted store.
pub mod vault {
    /// Version 1.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/custos.vault.v1.rs"));
    }
}
/// Compute area: aggregate queries over encrypted cohorts.
pub mod compute {
    /// Version 1.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/custos.compute.v1.rs"));
    }
}
/// Audit area: the access log.
pub mod audit {
    /// Version 1.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/custos.audit.v1.rs"));
    }
}
