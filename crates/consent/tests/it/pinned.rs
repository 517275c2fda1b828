//! The state root after a small fixed scenario, pinned.
//!
//! This hex commits to the whole state encoding: the key order, the postcard encoding of every
//! key and value with its version byte, the leaf framing and the RFC 6962 tree. Changing it is
//! an explicit decision about the state encoding (every existing chain's roots change with it):
//! bump `STATE_ENCODING_VERSION` or plan a migration, then update the pin in the same change.

use custos_types::{AccessMode, DecisionReason, Timestamp};

use crate::fixture::*;

// Changed on purpose when the validator set and its history entered the state (governance), and
// again when a request's state came to record its purpose and mode (vault refusal reports).
const PINNED_ROOT: &str = "d1730e7acce0d371bbb24269bd5523103901e1e1186dcef8d1be6d1e98a222cf";

#[test]
fn the_state_root_after_a_fixed_scenario_is_pinned() {
    let (mut l, c) = scene();
    let id = l.grant(
        &c.alice,
        consent(
            party(&c.alice),
            party(&c.insurer),
            &["HPAYMT"],
            &[AccessMode::Raw],
        ),
    );
    l.apply(
        &c.alice,
        delegate(party(&c.dave), Some(Timestamp(T0 + 3_600_000))),
    );
    l.next_block();
    assert_eq!(
        l.ask(&c.insurer, alice_lab(), "COVAUTH", AccessMode::Raw)
            .reason,
        DecisionReason::Consent
    );
    assert_eq!(
        l.ask(&c.advertiser, alice_lab(), "HMARKT", AccessMode::Raw)
            .reason,
        DecisionReason::NoConsent
    );
    l.next_block();
    l.revoke(&c.dave, id);
    l.apply(&c.bob, erase(bob_lab(), false));
    l.next_block();
    assert_eq!(l.sm.root().to_hex(), PINNED_ROOT);
}
