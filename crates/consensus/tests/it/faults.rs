//! Finalizing with all validators, with one down and with two down.

use std::time::Duration;

use crate::cluster::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_validators_finalize_the_same_certified_blocks() {
    let mut cluster = Cluster::new(4).await;
    cluster.start_all();
    cluster.wait_for(&[0, 1, 2, 3], 10).await;
    cluster.stop_all().await;
    let agreed = cluster.assert_agreement(&[0, 1, 2, 3]);
    assert!(agreed >= 10, "only {agreed} heights agreed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_of_four_keep_finalizing_and_a_restarted_validator_catches_up() {
    let mut cluster = Cluster::new(4).await;
    cluster.start_all();
    cluster.wait_for(&[0, 1, 2, 3], 3).await;

    cluster.stop(3).await;
    let stopped_at = cluster.height(3);
    let before = cluster.ledgers[3].blocks();
    // Every validator proposes in turn, so these heights include the stopped one's turns.
    let target = (0..3).map(|i| cluster.height(i)).max().unwrap_or(0) + 6;
    cluster.wait_for(&[0, 1, 2], target).await;
    assert_eq!(
        cluster.height(3),
        stopped_at,
        "a stopped validator commits nothing"
    );

    // Restarted with the same WAL and store, it syncs the heights it missed and rejoins.
    cluster.start(3);
    let target = (0..3).map(|i| cluster.height(i)).max().unwrap_or(0) + 3;
    cluster.wait_for(&[0, 1, 2, 3], target).await;
    cluster.stop_all().await;

    let agreed = cluster.assert_agreement(&[0, 1, 2, 3]);
    assert!(agreed >= target);
    let after = cluster.ledgers[3].blocks();
    for (h, block) in &before {
        assert_eq!(
            after.get(h),
            Some(block),
            "height {h} changed across the restart"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_two_of_four_down_nothing_finalizes_until_one_returns() {
    let mut cluster = Cluster::new(4).await;
    cluster.start_all();
    cluster.wait_for(&[0, 1, 2, 3], 3).await;

    cluster.stop(2).await;
    cluster.stop(3).await;
    // A height whose precommits were already out may still complete; nothing after it can.
    let stalled = (0..2).map(|i| cluster.height(i)).max().unwrap_or(0);
    let before = cluster.ledgers[0].blocks();
    let mut rx = cluster.ledgers[0].watch_height();
    let progressed =
        tokio::time::timeout(Duration::from_secs(6), rx.wait_for(|h| *h > stalled + 1)).await;
    assert!(
        progressed.is_err(),
        "two of four validators finalized a block"
    );
    let stalled = (0..2).map(|i| cluster.height(i)).max().unwrap_or(0);

    // With three of four back the chain goes on, with nothing lost.
    cluster.start(2);
    cluster.wait_for(&[0, 1, 2], stalled + 4).await;
    cluster.start(3);
    let target = (0..3).map(|i| cluster.height(i)).max().unwrap_or(0) + 2;
    cluster.wait_for(&[0, 1, 2, 3], target).await;
    cluster.stop_all().await;

    cluster.assert_agreement(&[0, 1, 2, 3]);
    let after = cluster.ledgers[0].blocks();
    for (h, block) in &before {
        assert_eq!(after.get(h), Some(block), "height {h} was lost or changed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_validator_down_from_the_start_syncs_everything_when_it_joins() {
    let mut cluster = Cluster::new(4).await;
    for i in 0..3 {
        cluster.start(i);
    }
    cluster.wait_for(&[0, 1, 2], 8).await;
    assert_eq!(cluster.height(3), 0);

    cluster.start(3);
    let target = (0..3).map(|i| cluster.height(i)).max().unwrap_or(0) + 2;
    cluster.wait_for(&[0, 1, 2, 3], target).await;
    cluster.stop_all().await;
    assert!(cluster.assert_agreement(&[0, 1, 2, 3]) >= target);
}
