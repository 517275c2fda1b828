// The Custos compliance dashboard. It trusts the node for nothing it can check: headers,
// certificates and inclusion proofs are verified here with WebCrypto (SHA-256, Ed25519) from the
// genesis validator set, whose hash is pinned in the page address (#valset=…).
'use strict';

const fragment = new URLSearchParams(location.hash.slice(1));
const token = fragment.get('token') || '';
const pinnedValset = (fragment.get('valset') || '').toLowerCase();
const enc = new TextEncoder();

const state = {
  genesis: null,
  headers: new Map(), // height -> { hash, logSize, logRoot, time }
  verifiedTip: 0,
  expectedSet: null,
  prevHash: new Uint8Array(32),
  chainError: null,
  entries: [],
};

// ---- bytes ----
function fromHex(h) {
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.substr(i * 2, 2), 16);
  return out;
}
function toHex(b) { return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(''); }
function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}
function u32(n) { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, n); return b; }
function u64(n) { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, BigInt(n)); return b; }
function equal(a, b) { return a.length === b.length && a.every((x, i) => x === b[i]); }
async function sha256(bytes) { return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)); }
async function ed25519Verify(key, message, signature) {
  const k = await crypto.subtle.importKey('raw', key, { name: 'Ed25519' }, false, ['verify']);
  return crypto.subtle.verify({ name: 'Ed25519' }, k, signature, message);
}

async function api(path) {
  const r = await fetch(path, { headers: { Authorization: 'Bearer ' + token } });
  if (!r.ok) throw new Error(path + ': ' + r.status + ' ' + (await r.text()));
  return r.json();
}

// ---- the ledger's encodings (crates/ledger: header.rs, certificate.rs) ----
async function valsetHash(validators) {
  const sorted = [...validators].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return sha256(concat(enc.encode('custos/valset/v1'), ...sorted.map((v) => concat(fromHex(v.key), u64(v.power)))));
}

function parseHeader(bytes) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const domain = new TextDecoder().decode(bytes.slice(0, 16));
  if (domain !== 'custos/header/v1') throw new Error('unknown header encoding');
  let at = 16;
  const len = dv.getUint32(at); at += 4;
  const chain = new TextDecoder().decode(bytes.slice(at, at + len)); at += len;
  const take = (n) => { const v = bytes.slice(at, at + n); at += n; return v; };
  const height = Number(dv.getBigUint64(at)); at += 8;
  const time = Number(dv.getBigInt64(at)); at += 8;
  const prev = take(32);
  const logSize = Number(dv.getBigUint64(at)); at += 8;
  const logRoot = take(32);
  const stateRoot = take(32);
  const txCount = dv.getUint32(at); at += 4;
  const proposer = take(32);
  const nextValset = take(32);
  if (at !== bytes.length) throw new Error('trailing bytes in header');
  return { chain, height, time, prev, logSize, logRoot, stateRoot, txCount, proposer, nextValset };
}

function commitMessage(chain, height, round, headerHash) {
  const c = enc.encode(chain);
  return concat(enc.encode('custos/commit/v1'), u32(c.length), c, u64(height), u32(round), headerHash);
}

// Verifies one header: hash, link, validator set named by its predecessor, > 2/3 signatures.
async function verifyHeader(h) {
  const canonical = fromHex(h.canonical);
  const hash = await sha256(canonical);
  const p = parseHeader(canonical);
  const where = 'header ' + h.height + ': ';
  if (p.chain !== state.genesis.chain_id) throw new Error(where + 'another chain');
  if (p.height !== state.verifiedTip + 1) throw new Error(where + 'expected height ' + (state.verifiedTip + 1));
  if (!equal(p.prev, state.prevHash)) throw new Error(where + 'does not link to the previous header');
  if (!equal(await valsetHash(h.validators), state.expectedSet)) {
    throw new Error(where + 'signed by a validator set its predecessor did not name');
  }
  if (h.certified_hash !== toHex(hash)) throw new Error(where + 'the certificate signs another header');
  const power = new Map(h.validators.map((v) => [v.key, v.power]));
  const total = h.validators.reduce((n, v) => n + v.power, 0);
  const message = commitMessage(p.chain, p.height, h.round, hash);
  const seen = new Set();
  let signed = 0;
  for (const s of h.signatures) {
    if (!power.has(s.key)) throw new Error(where + 'a signer is not a validator');
    if (seen.has(s.key)) throw new Error(where + 'a validator signed twice');
    seen.add(s.key);
    if (!(await ed25519Verify(fromHex(s.key), message, fromHex(s.signature)))) {
      throw new Error(where + 'a signature does not verify');
    }
    signed += power.get(s.key);
  }
  if (signed * 3 <= total * 2) throw new Error(where + 'signers hold 2/3 of the power or less');
  state.headers.set(p.height, { hash, logSize: p.logSize, logRoot: p.logRoot, time: p.time });
  state.verifiedTip = p.height;
  state.prevHash = hash;
  state.expectedSet = p.nextValset;
}

async function verifyChainTo(height) {
  while (state.verifiedTip < height && !state.chainError) {
    const to = Math.min(height, state.verifiedTip + 500);
    const page = await api('/api/headers?from=' + (state.verifiedTip + 1) + '&to=' + to);
    if (page.headers.length === 0) break;
    try {
      for (const h of page.headers) await verifyHeader(h);
    } catch (e) {
      state.chainError = e.message;
    }
  }
}

function showChain() {
  const el = document.getElementById('chain-status');
  if (state.chainError) {
    el.className = 'fail';
    el.textContent = 'CHAIN VERIFICATION FAILED: ' + state.chainError;
    return;
  }
  const tip = state.headers.get(state.verifiedTip);
  el.className = 'ok';
  el.textContent = 'Chain verified in this browser: ' + state.verifiedTip +
    ' headers from the genesis, every certificate signed by more than 2/3 of its validator set; log size ' +
    (tip ? tip.logSize : 0) + ', root ' + (tip ? toHex(tip.logRoot).slice(0, 16) : '-') + '…';
  el.dataset.verifiedHeight = String(state.verifiedTip);
}

// ---- RFC 6962 / RFC 9162 ----
async function leafHash(entry) { return sha256(concat(new Uint8Array([0]), entry)); }
async function nodeHash(l, r) { return sha256(concat(new Uint8Array([1]), l, r)); }
async function verifyInclusion(leaf, index, size, path, root) {
  if (index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equal(r, root);
}

// Checks a proven entry against the verified header of its block.
async function checkProof(p) {
  await verifyChainTo(p.height);
  const h = state.headers.get(p.height);
  if (!h) return { ok: false, why: 'header ' + p.height + ' is not verified' };
  if (p.tree_size !== h.logSize) return { ok: false, why: 'proof is for another tree size' };
  const ok = await verifyInclusion(await leafHash(fromHex(p.entry)), p.index, p.tree_size, p.path.map(fromHex), h.logRoot);
  return ok ? { ok: true, header: h } : { ok: false, why: 'inclusion proof does not lead to the header\'s log root' };
}

// ---- protobuf: custos.ledger.v1.LedgerEntry{decision = 11: custos.access.v1.AccessDecision} ----
function readFields(bytes) {
  const fields = [];
  let at = 0;
  const varint = () => {
    let v = 0; let mul = 1; let b;
    do { b = bytes[at++]; v += (b & 0x7f) * mul; mul *= 128; } while (b & 0x80);
    return v;
  };
  while (at < bytes.length) {
    const key = varint();
    const no = Math.floor(key / 8);
    const wire = key % 8;
    if (wire === 0) fields.push([no, varint()]);
    else if (wire === 2) { const n = varint(); fields.push([no, bytes.slice(at, at + n)]); at += n; }
    else if (wire === 1) { at += 8; } else if (wire === 5) { at += 4; } else throw new Error('bad protobuf');
  }
  return fields;
}
const REASONS = { 1: 'consent', 2: 'owner', 3: 'break_glass', 10: 'no_consent', 11: 'revoked', 12: 'expired',
  13: 'not_yet_valid', 14: 'purpose_not_covered', 15: 'mode_not_covered', 16: 'unknown_record', 17: 'erased',
  18: 'not_authorized', 19: 'break_glass_disabled', 20: 'justification_required', 30: 'vault_not_requester',
  31: 'vault_unverified', 32: 'vault_not_finalized', 33: 'vault_refused' };
const MODES = { 1: 'raw', 2: 'predicate', 3: 'aggregate' };
function decodeDecision(entryBytes) {
  const top = readFields(entryBytes);
  const inner = top.find(([no]) => no === 11);
  if (!inner) return null;
  const d = { granted: false, break_glass: false, patient: '', consent: '', time: 0, height: 0 };
  for (const [no, v] of readFields(inner[1])) {
    if (no === 1) d.request = toHex(v);
    if (no === 2) d.requester = toHex(v);
    if (no === 3) d.record = toHex(v);
    if (no === 4) d.patient = toHex(v);
    if (no === 5) d.purpose = new TextDecoder().decode(v);
    if (no === 6) d.mode = MODES[v] || String(v);
    if (no === 7) d.granted = v === 1;
    if (no === 8) d.reason = REASONS[v] || String(v);
    if (no === 9) d.consent = toHex(v);
    if (no === 10) d.break_glass = v === 1;
    if (no === 11) d.height = v;
    if (no === 12) d.time = v;
  }
  return d;
}

// ---- the log ----
function filterQuery() {
  const q = new URLSearchParams();
  const set = (k, v) => { if (v) q.set(k, v); };
  set('purpose', document.getElementById('f-purpose').value.trim().toUpperCase());
  set('decision', document.getElementById('f-decision').value);
  set('mode', document.getElementById('f-mode').value);
  set('organisation', document.getElementById('f-organisation').value.trim());
  set('requester', document.getElementById('f-requester').value.trim());
  set('patient', document.getElementById('f-patient').value.trim());
  if (document.getElementById('f-break-glass').checked) q.set('break_glass', 'true');
  return q;
}

async function loadLog() {
  const q = filterQuery();
  const entries = [];
  let cursor = '';
  document.getElementById('count').textContent = 'loading…';
  try {
    do {
      const page = await api('/api/log?' + q.toString() + '&page_size=500' + (cursor ? '&cursor=' + cursor : ''));
      entries.push(...page.entries);
      cursor = page.next_cursor;
    } while (cursor && entries.length < 20000);
  } catch (e) {
    document.getElementById('count').textContent = 'error: ' + e.message;
    return;
  }
  let verified = 0;
  for (const e of entries) {
    e.decision = decodeDecision(fromHex(e.entry));
    e.check = await checkProof(e);
    if (e.check.ok) verified++;
  }
  showChain();
  state.entries = entries;
  const count = document.getElementById('count');
  count.textContent = entries.length + ' entries';
  count.dataset.count = String(entries.length);
  const summary = document.getElementById('proofs-summary');
  summary.textContent = verified === entries.length
    ? '— every inclusion proof verified in this browser'
    : '— ' + (entries.length - verified) + ' PROOFS FAILED';
  summary.className = verified === entries.length ? 'ok' : 'fail';
  summary.dataset.verified = String(verified);
  renderTable();
  drawCharts();
}

function cell(row, text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
}

function renderTable() {
  const body = document.getElementById('log');
  body.replaceChildren();
  for (const e of state.entries) {
    const d = e.decision || {};
    const tr = document.createElement('tr');
    tr.className = 'entry-row';
    tr.dataset.index = String(e.index);
    cell(tr, String(e.index));
    cell(tr, new Date(d.time).toISOString());
    cell(tr, (e.organisation ? e.organisation + ' ' : '') + (d.requester || '').slice(0, 8));
    cell(tr, d.purpose);
    cell(tr, d.mode);
    cell(tr, d.granted ? 'granted' : 'denied', d.granted ? 'ok' : 'fail');
    cell(tr, d.reason + (d.break_glass ? ' (break-glass)' : ''));
    cell(tr, e.releases.length ? 'yes' : '');
    cell(tr, e.check.ok ? '✓' : '✗', e.check.ok ? 'ok' : 'fail');
    tr.addEventListener('click', () => showEntry(e, tr));
    body.appendChild(tr);
  }
}

async function showEntry(e, tr) {
  document.querySelectorAll('tr.selected').forEach((r) => r.classList.remove('selected'));
  tr.classList.add('selected');
  const el = document.getElementById('detail');
  el.replaceChildren();
  const d = e.decision || {};
  const line = (label, value, cls) => {
    const div = document.createElement('div');
    const b = document.createElement('b');
    b.textContent = label + ': ';
    const span = document.createElement('span');
    span.textContent = value;
    span.className = cls || 'mono';
    div.append(b, span);
    el.appendChild(div);
    return span;
  };
  line('log index', String(e.index));
  line('request', d.request);
  line('requester', d.requester + (e.organisation ? ' (' + e.organisation + ', per the node)' : ''));
  line('patient', d.patient || '(unknown record)');
  line('record', d.record);
  line('purpose', d.purpose);
  line('mode', d.mode);
  line('decision', (d.granted ? 'granted' : 'denied') + ' — ' + d.reason + (d.break_glass ? ', break-glass' : ''));
  line('consent', d.consent || '-');
  line('time', new Date(d.time).toISOString());
  const check = await checkProof(e);
  const status = line('proof', check.ok
    ? 'inclusion proof verified in this browser against the certified header ' + e.height +
      ' (log size ' + check.header.logSize + ', root ' + toHex(check.header.logRoot).slice(0, 16) + '…)'
    : 'PROOF FAILED: ' + check.why, check.ok ? 'ok' : 'fail');
  status.id = 'proof-status';
  for (const r of e.releases) {
    const rc = await checkProof(r);
    line('release confirmation', 'log index ' + r.index + ', block ' + r.height + (rc.ok ? ' — proof verified' : ' — PROOF FAILED'), rc.ok ? 'ok' : 'fail');
  }
  line('fields', 'decoded here from the proven entry bytes', 'claim');
}

// ---- charts: stacked bars per time bucket, drawn as SVG ----
const COLORS = ['#3366cc', '#dc3912', '#ff9900', '#109618', '#990099', '#0099c6', '#dd4477', '#66aa00'];
function drawChart(svg, keyOf) {
  const NS = 'http://www.w3.org/2000/svg';
  svg.replaceChildren();
  const entries = state.entries.filter((e) => e.decision);
  const add = (name, attrs, text) => {
    const el = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    if (text !== undefined) el.textContent = text;
    svg.appendChild(el);
    return el;
  };
  if (entries.length === 0) { add('text', { x: 10, y: 20 }, 'no entries'); return; }
  const times = entries.map((e) => e.decision.time);
  const t0 = Math.min(...times);
  const t1 = Math.max(...times);
  const buckets = 12;
  const width = (t1 - t0) / buckets || 1;
  const keys = [...new Set(entries.map(keyOf))].sort();
  const counts = Array.from({ length: buckets }, () => new Map());
  for (const e of entries) {
    const b = Math.min(buckets - 1, Math.floor((e.decision.time - t0) / width));
    counts[b].set(keyOf(e), (counts[b].get(keyOf(e)) || 0) + 1);
  }
  const max = Math.max(...counts.map((m) => [...m.values()].reduce((a, b) => a + b, 0)));
  const W = 300; const H = 170; const left = 30; const top = 10;
  add('line', { x1: left, y1: top + H, x2: left + W, y2: top + H, stroke: '#888' });
  add('text', { x: 2, y: top + 10, 'font-size': 10 }, String(max));
  counts.forEach((m, b) => {
    let y = top + H;
    keys.forEach((k, i) => {
      const n = m.get(k) || 0;
      if (!n) return;
      const h = (n / max) * H;
      y -= h;
      add('rect', { x: left + b * (W / buckets) + 2, y, width: W / buckets - 4, height: h, fill: COLORS[i % COLORS.length], 'data-key': k, 'data-count': n });
    });
  });
  add('text', { x: left, y: top + H + 14, 'font-size': 10 }, new Date(t0).toISOString().slice(11, 19));
  add('text', { x: left + W - 50, y: top + H + 14, 'font-size': 10 }, new Date(t1).toISOString().slice(11, 19));
  keys.forEach((k, i) => {
    add('rect', { x: left + W + 10, y: top + i * 16, width: 10, height: 10, fill: COLORS[i % COLORS.length] });
    add('text', { x: left + W + 24, y: top + i * 16 + 9, 'font-size': 10 }, k.slice(0, 18));
  });
}
function drawCharts() {
  drawChart(document.getElementById('chart-purpose'), (e) => e.decision.purpose);
  drawChart(document.getElementById('chart-partner'), (e) => e.organisation || e.decision.requester.slice(0, 8));
}

// ---- review lists ----
function list(id, items, describe) {
  const el = document.getElementById(id);
  el.replaceChildren();
  if (items.length === 0) { el.textContent = 'none'; el.dataset.count = '0'; return; }
  const ul = document.createElement('ul');
  for (const it of items) { const li = document.createElement('li'); li.textContent = describe(it); ul.appendChild(li); }
  el.appendChild(ul);
  el.dataset.count = String(items.length);
}
async function loadFlags() {
  const f = await api('/api/flags');
  const who = (x) => (x.organisation ? x.organisation + ' ' : '') + x.requester.slice(0, 8);
  list('breakglass', f.break_glass, (x) => x.time + ' — ' + who(x) + ' opened record ' + x.record_id.slice(0, 8) + ' for ' + x.purpose + ' (log index ' + x.log_index + ')');
  list('spikes', f.denial_spikes, (x) => who(x) + ': ' + x.denials + ' denials between ' + x.from + ' and ' + x.to);
  list('revoked', f.after_revocation, (x) => x.time + ' — ' + who(x) + ' asked for record ' + x.record_id.slice(0, 8) + ' after its consent was revoked (log index ' + x.log_index + ')');
}

async function start() {
  try {
    state.genesis = await api('/api/genesis');
    const hash = await valsetHash(state.genesis.validators);
    state.expectedSet = hash;
    const g = document.getElementById('genesis-status');
    if (!pinnedValset) {
      g.className = 'claim';
      g.textContent = 'Genesis validator set ' + toHex(hash) + ' as the node serves it: not pinned (add #valset=<hash of your genesis validator set> to the address).';
    } else if (pinnedValset === toHex(hash)) {
      g.className = 'ok';
      g.textContent = 'Genesis validator set matches the pinned hash ' + pinnedValset + '.';
    } else {
      state.chainError = 'the node serves a genesis validator set ' + toHex(hash) + ', the pinned one is ' + pinnedValset;
    }
    const status = await api('/api/status');
    await verifyChainTo(status.height);
  } catch (e) {
    state.chainError = state.chainError || e.message;
  }
  showChain();
  await loadLog();
  try { await loadFlags(); } catch (e) { document.getElementById('breakglass').textContent = 'error: ' + e.message; }
  document.body.dataset.ready = 'true';
}

document.getElementById('filters').addEventListener('submit', (ev) => {
  ev.preventDefault();
  document.body.dataset.ready = 'false';
  loadLog().then(() => { document.body.dataset.ready = 'true'; });
});
start();
