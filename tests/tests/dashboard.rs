//! The compliance dashboard in a real browser: headless Chromium (Debian's `chromium`) driven by
//! playwright-core (pinned, installed by this test under the target dir) against a real node.
//! The page verifies the chain and every proof itself; the test clicks through filters and an
//! entry, checks that the page shows the same counts as the gRPC API, that a wrong genesis pin
//! makes the page fail loudly, and saves a screenshot under the target dir.

// The helpers below are test code too: a failed step should stop the test where it failed.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use custos_proto::audit::v1 as audit_pb;
use custos_tests::story::audit_story;
use custos_tests::{NetOptions, TestNet};
use serde_json::Value;

const PLAYWRIGHT: &str = "playwright-core@1.65.1";
const CHROMIUM: &str = "/usr/bin/chromium";

/// The folder holding `node_modules/playwright-core`, installed on first use.
fn playwright() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("playwright");
    let ready = dir.join("installed-1.65.1");
    if !ready.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(&dir)
            .arg(PLAYWRIGHT)
            .output()
            .unwrap_or_else(|e| panic!("cannot run npm to install {PLAYWRIGHT}: {e}"));
        assert!(
            out.status.success(),
            "npm install {PLAYWRIGHT} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&ready, "").unwrap();
    }
    dir
}

const SCRIPT: &str = r#"
const [prefix, url, badUrl, shot, profile] = process.argv.slice(2);
const { chromium } = require(prefix + '/node_modules/playwright-core');
(async () => {
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const ready = () => page.waitForFunction(() => document.body.dataset.ready === 'true', null, { timeout: 60000 });
  const count = () => page.getAttribute('#count', 'data-count').then(Number);
  const out = {};
  await page.goto(url);
  await ready();
  out.chain = await page.textContent('#chain-status');
  out.genesis = await page.textContent('#genesis-status');
  out.total = await count();
  out.verified = Number(await page.getAttribute('#proofs-summary', 'data-verified'));
  out.breakGlass = Number(await page.getAttribute('#breakglass', 'data-count'));
  out.spikes = Number(await page.getAttribute('#spikes', 'data-count'));
  out.bars = await page.locator('#chart-purpose rect[data-key]').count();
  await page.selectOption('#f-decision', 'denied');
  await page.click('#apply');
  await ready();
  out.denied = await count();
  await page.selectOption('#f-decision', 'any');
  await page.fill('#f-purpose', 'HPAYMT');
  await page.click('#apply');
  await ready();
  out.hpaymt = await count();
  await page.click('tr.entry-row >> nth=0');
  await page.waitForSelector('#proof-status', { timeout: 30000 });
  out.proof = await page.textContent('#proof-status');
  out.detail = await page.textContent('#detail');
  await page.screenshot({ path: shot, fullPage: true });
  await page.goto('about:blank');
  await page.goto(badUrl);
  await ready();
  out.badChain = await page.textContent('#chain-status');
  out.errors = errors;
  await context.close();
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
"#;

async fn api_count(net: &TestNet, query: audit_pb::AccessLogQuery) -> u64 {
    net.client
        .access_log_all(&net.auditor, &query)
        .await
        .unwrap()
        .len() as u64
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_verifies_the_chain_itself_and_shows_the_same_counts_as_the_api() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium (`apt-get install -y chromium`; .ci/run does)"
    );
    let prefix = playwright();
    let options = NetOptions {
        break_glass: true,
        dashboard: true,
        ..NetOptions::default()
    };
    let net = TestNet::start_with(2, options).await.unwrap();
    audit_story(&net).await.unwrap();
    let dashboard = net.dashboard().expect("the node serves a dashboard");
    let valset = net.trusted().hash().to_hex();
    let url = dashboard.url(&valset);
    let bad = dashboard.url(&"00".repeat(32));

    // Without the token the API refuses.
    let plain = format!("http://{}/api/log", dashboard.addr);
    let unauthorized = Command::new("node")
        .args([
            "-e",
            &format!("fetch('{plain}').then(r => console.log(r.status))"),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&unauthorized.stdout).trim(), "401");

    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let profile = tempfile::tempdir().unwrap();
    let script = profile.path().join("drive.js");
    std::fs::write(&script, SCRIPT).unwrap();
    let run = tokio::process::Command::new("node")
        .arg(&script)
        .arg(&prefix)
        .arg(&url)
        .arg(&bad)
        .arg(&shot)
        .arg(profile.path().join("profile"))
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(180), run)
        .await
        .expect("the browser run finishes within 3 minutes")
        .unwrap();
    assert!(
        out.status.success(),
        "the browser run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    let chain = seen["chain"].as_str().unwrap();
    assert!(
        chain.starts_with("Chain verified in this browser"),
        "{chain}"
    );
    assert!(
        seen["genesis"]
            .as_str()
            .unwrap()
            .contains("matches the pinned hash"),
        "{seen}"
    );

    let all = api_count(&net, audit_pb::AccessLogQuery::default()).await;
    let denied = api_count(
        &net,
        audit_pb::AccessLogQuery {
            decision: audit_pb::Decision::Denied as i32,
            ..Default::default()
        },
    )
    .await;
    let hpaymt = api_count(
        &net,
        audit_pb::AccessLogQuery {
            purpose: "HPAYMT".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(seen["total"], all, "{seen}");
    assert_eq!(seen["verified"], all, "every proof checked in the page");
    assert_eq!(seen["denied"], denied, "{seen}");
    assert_eq!(seen["hpaymt"], hpaymt, "{seen}");
    assert_eq!(seen["breakGlass"], 1);
    assert!(
        seen["bars"].as_u64().unwrap() > 0,
        "the purpose chart is drawn"
    );
    let proof = seen["proof"].as_str().unwrap();
    assert!(
        proof.starts_with("inclusion proof verified in this browser"),
        "{proof}"
    );
    assert!(seen["detail"].as_str().unwrap().contains("HPAYMT"));
    let bad_chain = seen["badChain"].as_str().unwrap();
    assert!(
        bad_chain.starts_with("CHAIN VERIFICATION FAILED"),
        "{bad_chain}"
    );
    assert!(shot.exists(), "screenshot at {}", shot.display());
    net.stop().await.unwrap();
}
