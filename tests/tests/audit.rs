//! Audit and compliance on a real node (sled, consensus, gRPC on loopback): the access log with
//! proofs under the block each entry sits in, the live stream, offline bundles and what
//! tampering with them looks like, the transparency-log monitor, the reports and role checks.

// The helpers below are test code too: a failed step should stop the test where it failed.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use custos_client::bundle::verify_bundle;
use custos_client::monitor::{WatchError, watch_once};
use custos_client::report::{self, AuditRow, Directory, FlagSettings};
use custos_client::verify::verify_proven_entry;
use custos_client::{ClientError, methods};
use custos_proto::audit::v1 as audit_pb;
use custos_tests::story::{AuditStory, audit_story, raw_request};
use custos_tests::{NetOptions, TestNet, bounded, party};
use custos_types::{EntryKind, Purpose};
use tokio_stream::StreamExt;
use tonic::Code;

async fn net_with_story() -> (TestNet, AuditStory) {
    let options = NetOptions {
        break_glass: true,
        ..NetOptions::default()
    };
    let net = TestNet::start_with(2, options).await.unwrap();
    let story = audit_story(&net).await.unwrap();
    (net, story)
}

async fn full_log(net: &TestNet) -> Vec<audit_pb::AuditEntry> {
    bounded(
        "the auditor's log",
        net.client
            .access_log_all(&net.auditor, &audit_pb::AccessLogQuery::default()),
    )
    .await
    .unwrap()
    .unwrap()
}

fn status_of<T: std::fmt::Debug>(r: Result<T, ClientError>) -> tonic::Status {
    match r {
        Err(ClientError::Status(s)) => s,
        other => panic!("expected an error status, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_decision_and_release_is_in_the_log_with_a_proof_under_the_block_it_sits_in() {
    let (net, story) = net_with_story().await;
    let log = full_log(&net).await;
    let logged: Vec<Vec<u8>> = log
        .iter()
        .map(|e| e.decision.as_ref().unwrap().request_id.clone())
        .collect();
    let made: Vec<Vec<u8>> = story
        .decisions
        .iter()
        .map(|d| d.request_id.clone())
        .collect();
    assert_eq!(logged, made, "every decision, in log order");
    let trusted = net.trusted();
    for entry in &log {
        let proven = entry.proven.as_ref().unwrap();
        let verified = verify_proven_entry(&net.genesis, &trusted, proven).unwrap();
        // Proven under the header of its own block, which certifies it as of that block.
        assert_eq!(verified.header.height, verified.entry.height.0);
        let EntryKind::Decision(decision) = verified.entry.kind else {
            panic!("a decision entry");
        };
        assert_eq!(
            &custos_proto::access::v1::AccessDecision::from(&decision),
            entry.decision.as_ref().unwrap()
        );
        for release in &entry.releases {
            verify_proven_entry(&net.genesis, &trusted, release).unwrap();
        }
    }
    let rows = AuditRow::from_entries(&log).unwrap();
    let released: Vec<&AuditRow> = rows.iter().filter(|r| !r.releases.is_empty()).collect();
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].decision.request_id, story.released);
    assert_eq!(released[0].releases[0].custodian, party(&net.hospital));
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stream_sends_matching_entries_then_new_ones_as_blocks_commit_under_the_role_filter() {
    let (net, story) = net_with_story().await;
    let mut stream = bounded(
        "opening the insurer's stream",
        net.client
            .stream_access_log(&net.insurer, &audit_pb::AccessLogQuery::default()),
    )
    .await
    .unwrap()
    .unwrap();
    let insurer = party(&net.insurer).to_vec();
    let own: Vec<_> = story
        .decisions
        .iter()
        .filter(|d| d.requester == insurer)
        .collect();
    for expected in &own {
        let entry = bounded("an existing entry", stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(
            entry.decision.as_ref().unwrap().request_id,
            expected.request_id
        );
    }
    // Someone else's request is not streamed to the insurer; the insurer's next one is.
    net.client
        .request_access(&net.advertiser, raw_request(story.record, Purpose::HMARKT))
        .await
        .unwrap();
    let live = net
        .client
        .request_access(
            &net.insurer,
            raw_request(story.record, Purpose::parse("COVAUTH").unwrap()),
        )
        .await
        .unwrap();
    let entry = bounded("the live entry", stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        entry.decision.unwrap().request_id,
        live.decision.unwrap().request_id
    );
    verify_proven_entry(&net.genesis, &net.trusted(), &entry.proven.unwrap()).unwrap();
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exported_bundle_verifies_offline_and_each_tampering_is_named() {
    let (net, story) = net_with_story().await;
    let bundle = bounded("exporting", net.client.export_bundle(&net.auditor, 0, 0))
        .await
        .unwrap()
        .unwrap();
    let verified = verify_bundle(&net.genesis, &bundle).unwrap();
    assert_eq!(verified.first_index, 0);
    assert_eq!(verified.decisions(), story.decisions.len());
    assert_eq!(verified.tip.log_size, verified.entries.len() as u64);
    // A later range verifies too, seeded from the compact range before it.
    let tip = bundle.to_height;
    let busy = bundle
        .blocks
        .iter()
        .rev()
        .find(|b| !b.entries.is_empty())
        .unwrap()
        .height;
    let part = net
        .client
        .export_bundle(&net.auditor, busy, tip)
        .await
        .unwrap();
    let part_verified = verify_bundle(&net.genesis, &part).unwrap();
    assert!(part_verified.first_index > 0);

    let expect = |b: &audit_pb::AuditBundle, words: &[&str]| {
        let message = verify_bundle(&net.genesis, b).unwrap_err().to_string();
        for w in words {
            assert!(message.contains(w), "`{message}` should mention `{w}`");
        }
    };
    let with_entries = bundle
        .blocks
        .iter()
        .position(|b| b.entries.len() >= 2)
        .unwrap();
    let height = bundle.blocks[with_entries].height.to_string();

    let mut changed = bundle.clone();
    let entry = &mut changed.blocks[with_entries].entries[0];
    let last = entry.len() - 1;
    entry[last] ^= 1;
    expect(&changed, &[&format!("block {height}"), "changed"]);

    let mut removed = bundle.clone();
    removed.blocks[with_entries].entries.remove(1);
    expect(&removed, &[&format!("block {height}"), "removed"]);

    let mut header_changed = bundle.clone();
    let h = header_changed.headers[with_entries]
        .header
        .as_mut()
        .unwrap();
    h.time_ms += 1;
    expect(
        &header_changed,
        &[&format!("header {height}"), "certificate"],
    );

    let mut stripped = bundle.clone();
    stripped.headers[2].certificate = None;
    expect(&stripped, &["header 3", "no commit certificate"]);

    let mut forged = bundle.clone();
    let cert = forged.headers[1].certificate.as_mut().unwrap();
    cert.signatures[0].signature[0] ^= 1;
    expect(&forged, &["header 2", "does not verify"]);

    let mut short = bundle.clone();
    short.headers.pop();
    expect(&short, &["range", "headers"]);

    let mut frontier = part.clone();
    if let Some(root) = frontier.frontier.first_mut() {
        root[0] ^= 1;
        expect(&frontier, &["frontier"]);
    }
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_monitor_advances_its_checkpoint_and_alarms_on_a_rewritten_log_or_chain() {
    let (net, story) = net_with_story().await;
    let first = watch_once(&net.client, &net.genesis, None).await.unwrap();
    assert!(first.new_headers >= 1);
    net.client
        .request_access(&net.insurer, raw_request(story.record, Purpose::HPAYMT))
        .await
        .unwrap();
    let second = watch_once(&net.client, &net.genesis, Some(&first.checkpoint))
        .await
        .unwrap();
    assert!(
        second.consistency_checked,
        "the log grew: a consistency proof"
    );
    assert!(second.checkpoint.log_size > first.checkpoint.log_size);

    let alarm = |cp: custos_client::monitor::Checkpoint| {
        let client = net.client.clone();
        let genesis = net.genesis.clone();
        async move {
            match watch_once(&client, &genesis, Some(&cp)).await {
                Err(WatchError::Alarm(text)) => text,
                other => panic!("expected an alarm, got {other:?}"),
            }
        }
    };
    // A log that the node's log does not extend (same size, another root, or another history).
    let mut other_root = first.checkpoint.clone();
    other_root.log_root = "11".repeat(32);
    assert!(alarm(other_root).await.contains("rewritten"));
    let mut other_header = second.checkpoint.clone();
    other_header.header_hash = "22".repeat(32);
    assert!(alarm(other_header).await.contains("fork"));
    let mut ahead = second.checkpoint.clone();
    ahead.height += 1_000_000;
    assert!(alarm(ahead).await.contains("rolled back"));
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn patients_and_partners_reach_only_their_own_history_in_every_audit_method() {
    let (net, _story) = net_with_story().await;
    let [alice, bob] = [&net.patients[0], &net.patients[1]];
    let of = |p: &custos_crypto::PartyKeys| audit_pb::AccessLogQuery {
        patient: party(p).to_vec(),
        ..Default::default()
    };
    // Bob cannot read Alice's history: query, stream, CSV, FHIR.
    let denied = |s: tonic::Status| {
        assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
        assert!(s.message().contains("query.patient"), "{s:?}");
    };
    denied(status_of(net.client.access_log(bob, &of(alice)).await));
    denied(status_of(net.client.export_csv(bob, &of(alice)).await));
    denied(status_of(
        net.client.export_fhir_audit_events(bob, &of(alice)).await,
    ));
    denied(status_of(
        net.client
            .stream_access_log(bob, &of(alice))
            .await
            .map(|_| ()),
    ));
    // Alice's own export names only her records' decisions.
    let csv = net.client.export_csv(alice, &of(alice)).await.unwrap();
    let alice_hex = party(alice).to_hex();
    let lines: Vec<&str> = csv.lines().skip(1).collect();
    assert!(!lines.is_empty());
    assert!(lines.iter().all(|l| l.contains(&alice_hex)), "{csv}");
    // A partner cannot read another partner's requests, nor export a whole bundle.
    let others = audit_pb::AccessLogQuery {
        requester: party(&net.advertiser).to_vec(),
        ..Default::default()
    };
    let s = status_of(net.client.access_log(&net.insurer, &others).await);
    assert_eq!(s.code(), Code::PermissionDenied);
    assert!(s.message().contains("query.requester"), "{s:?}");
    let own = net
        .client
        .access_log_all(&net.insurer, &audit_pb::AccessLogQuery::default())
        .await
        .unwrap();
    let insurer = party(&net.insurer).to_vec();
    assert!(
        own.iter()
            .all(|e| e.decision.as_ref().unwrap().requester == insurer)
    );
    let s = status_of(net.client.export_bundle(&net.insurer, 0, 0).await);
    assert_eq!(s.code(), Code::PermissionDenied);
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_audit_queries_are_refused_naming_the_field_and_change_nothing() {
    let (net, _story) = net_with_story().await;
    let before = net.snapshot().await.unwrap();
    let refused = |s: tonic::Status, field: &str| {
        assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
        assert!(
            s.message().contains(field),
            "`{}` should name {field}",
            s.message()
        );
    };
    let q = |f: &dyn Fn(&mut audit_pb::AccessLogQuery)| {
        let mut q = audit_pb::AccessLogQuery::default();
        f(&mut q);
        q
    };
    let auditor = &net.auditor;
    for (query, field) in [
        (q(&|q| q.cursor = vec![1, 2, 3]), "query.cursor"),
        (
            q(&|q| q.cursor = u64::MAX.to_be_bytes().to_vec()),
            "query.cursor",
        ),
        (q(&|q| q.page_size = 501), "query.page_size"),
        (q(&|q| q.decision = 7), "query.decision"),
        (q(&|q| q.purpose = "NOSUCH".into()), "query.purpose"),
        (q(&|q| q.patient = vec![1; 5]), "query.patient"),
        (q(&|q| q.mode = 42), "query.mode"),
    ] {
        refused(
            status_of(net.client.access_log(auditor, &query).await),
            field,
        );
        refused(
            status_of(
                net.client
                    .stream_access_log(auditor, &query)
                    .await
                    .map(|_| ()),
            ),
            field,
        );
        refused(
            status_of(net.client.export_csv(auditor, &query).await),
            field,
        );
    }
    refused(
        status_of(net.client.export_bundle(auditor, 0, 1_000_000).await),
        "query.to_height",
    );
    refused(
        status_of(net.client.export_bundle(auditor, 3, 2).await),
        "query.from_height",
    );
    // A read signed for one method is not accepted by another.
    let read = net.client.signed_read(
        auditor,
        methods::QUERY_ACCESS_LOG,
        &audit_pb::AccessLogQuery::default(),
    );
    let s = net.client.audit().export_csv(read).await.unwrap_err();
    assert!(s.message().contains("body.method"), "{s:?}");
    net.assert_unchanged(&before).await.unwrap();
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_count_the_log_flag_what_needs_review_and_account_for_disclosures() {
    let (net, story) = net_with_story().await;
    let log = full_log(&net).await;
    let rows = AuditRow::from_entries(&log).unwrap();
    // CSV from the node: a header line and one line per decision.
    let csv = net
        .client
        .export_csv(&net.auditor, &audit_pb::AccessLogQuery::default())
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), story.decisions.len() + 1);
    assert!(csv.starts_with(&report::CSV_COLUMNS.join(",")));
    assert!(
        csv.contains("acme-insurance") && csv.contains(",HMARKT,"),
        "{csv}"
    );

    let settings = FlagSettings {
        denial_threshold: 3,
        window_ms: 60 * 60 * 1000,
    };
    let flags = report::flags(&rows, settings, &Directory::new());
    assert_eq!(flags.break_glass.len(), 1);
    assert_eq!(flags.break_glass[0].purpose, "ETREAT");
    assert_eq!(flags.after_revocation.len(), 1);
    assert_eq!(flags.after_revocation[0].reason, "revoked");
    let spikes: BTreeSet<String> = flags
        .denial_spikes
        .iter()
        .map(|s| s.requester.clone())
        .collect();
    assert_eq!(spikes, BTreeSet::from([party(&net.advertiser).to_hex()]));

    let alice = party(&net.patients[0]);
    let disclosures = report::disclosures(&rows, alice, &Directory::new());
    assert_eq!(disclosures.len(), 1, "one grant on Alice's record");
    assert_eq!(disclosures[0].purpose, "HPAYMT");
    assert!(disclosures[0].released_at.is_some());
    assert!(report::disclosures_text(&disclosures).contains("released"));
    // Alice can run her own accounting; it holds only her records.
    let own = net
        .client
        .access_log_all(
            &net.patients[0],
            &audit_pb::AccessLogQuery {
                decision: audit_pb::Decision::Granted as i32,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(own.len(), 1);
    net.stop().await.unwrap();
}
