import { createHash } from 'node:crypto';
import type { AdminHttp } from './admin-http.js';

/**
 * GET / on the admin listener: one self-contained page in the spirit of HAProxy's stats page.
 * The HTML carries no data: its script fetches /status (and /health) every 2 s and builds the
 * tables with textContent only, so a server or backend name from the config can never become
 * markup. With a token (typed in, kept in sessionStorage for this tab only) it offers ready /
 * drain / maint, weight and reload controls that call the admin API. No CDN, no build step; a
 * Content-Security-Policy with the hashes of the inline style and script forbids everything else.
 */

const STYLE = `
:root { --bg:#f4f6f9; --card:#fff; --ink:#1d2530; --muted:#66707d; --line:#e3e7ed; --head:#18202b;
  --up:#1f7a3a; --up-bg:#dcf5e2; --down:#a11b1b; --down-bg:#ffdede; --warn:#7a5600; --warn-bg:#fff1c2;
  --rise:#8a4300; --rise-bg:#ffe3c4; --drain:#3f2f9a; --drain-bg:#e4e0ff; --maint:#5b4030; --maint-bg:#eadfd6;
  --nocheck:#3e4a59; --nocheck-bg:#e8edf3; }
* { box-sizing: border-box; }
[hidden] { display:none !important; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; color:var(--ink); background:var(--bg); }
header { background:var(--head); color:#eef2f7; padding:12px 24px; display:flex; flex-wrap:wrap; align-items:center; gap:12px 24px; }
header h1 { font-size:18px; margin:0; letter-spacing:.5px; font-weight:650; }
header h1 span { color:#8fd19e; }
header .meta { color:#aab4c2; font-size:13px; }
header .spacer { flex:1; }
.pill { display:inline-block; padding:2px 10px; border-radius:999px; font-weight:600; font-size:12px; letter-spacing:.3px; white-space:nowrap; }
.pill.ok { background:var(--up-bg); color:var(--up); } .pill.bad { background:var(--down-bg); color:var(--down); }
.pill.stale { background:#fff1c2; color:#7a5600; }
.pill.idle { background:#e8edf5; color:#3b4a63; }
.pill.peer { max-width:480px; overflow:hidden; text-overflow:ellipsis; vertical-align:middle; }
#peers { display:contents; }
.tokenbox { display:flex; gap:6px; align-items:center; font-size:13px; }
.tokenbox input { width:190px; padding:5px 8px; border-radius:6px; border:1px solid #3a4656; background:#222c38; color:#eef2f7; }
button { font:inherit; font-size:12px; padding:4px 10px; border-radius:6px; border:1px solid #c5ccd6; background:#fff; color:var(--ink); cursor:pointer; }
button:hover { background:#eef2f7; } button:disabled { opacity:.5; cursor:default; }
header button { background:#2b3645; color:#eef2f7; border-color:#3a4656; } header button:hover { background:#364355; }
button.on { background:#18202b; color:#fff; border-color:#18202b; }
main { padding:20px 24px 40px; max-width:1500px; margin:0 auto; }
#toast { min-height:22px; margin:0 0 12px; font-size:13px; color:var(--muted); white-space:pre-wrap; }
#toast.err { color:var(--down); } #toast.good { color:var(--up); }
section.card { background:var(--card); border:1px solid var(--line); border-radius:10px; margin:0 0 18px; box-shadow:0 1px 2px rgba(16,24,40,.05); }
.scroll { overflow-x:auto; border-radius:0 0 10px 10px; }
.card h2 { margin:0; font-size:16px; display:flex; flex-wrap:wrap; align-items:center; gap:8px 14px; padding:12px 16px; border-bottom:1px solid var(--line); }
.card h2 .name { font-weight:650; }
.card h2 .facts { color:var(--muted); font-weight:400; font-size:13px; }
.serving { font-size:12px; }
.serving.t0 { background:var(--up-bg); color:var(--up); } .serving.t1 { background:#dbe9ff; color:#1c4f9c; }
.serving.t2 { background:var(--rise-bg); color:var(--rise); } .serving.none { background:var(--down); color:#fff; }
table { border-collapse:collapse; width:100%; }
th { text-align:left; font-size:11px; text-transform:uppercase; letter-spacing:.6px; color:var(--muted); font-weight:600; padding:8px 10px; background:#fafbfc; border-bottom:1px solid var(--line); white-space:nowrap; }
td { padding:7px 10px; border-bottom:1px solid var(--line); vertical-align:middle; }
td.name { font-weight:600; white-space:nowrap; }
tr:last-child td { border-bottom:0; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
td.addr, .mono { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:12.5px; }
tr.tier1 td:first-child { box-shadow:inset 3px 0 0 #6f9ee8; } tr.tier2 td:first-child { box-shadow:inset 3px 0 0 #e09a4f; }
tr.tier0 td:first-child { box-shadow:inset 3px 0 0 #5cbf7a; }
.state { display:inline-block; min-width:78px; text-align:center; padding:3px 8px; border-radius:6px; font-weight:650; font-size:12px; }
.s-up { background:var(--up-bg); color:var(--up); } .s-going-down { background:var(--warn-bg); color:var(--warn); }
.s-down { background:var(--down-bg); color:var(--down); } .s-going-up { background:var(--rise-bg); color:var(--rise); }
.s-drain { background:var(--drain-bg); color:var(--drain); } .s-maint { background:var(--maint-bg); color:var(--maint); }
.s-nocheck { background:var(--nocheck-bg); color:var(--nocheck); }
.sub { color:var(--muted); font-size:12px; }
.overdue { color:var(--warn); font-weight:650; font-size:12px; }
.check-ok { color:var(--up); font-weight:700; } .check-fail { color:var(--down); font-weight:700; }
.reason { max-width:280px; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
.actions { white-space:nowrap; } .actions button { margin-right:2px; padding:3px 8px; }
.actions input { width:60px; padding:3px 6px; border:1px solid #c5ccd6; border-radius:6px; font:inherit; font-size:12px; }
.ctl { display:none; } body.controls .ctl { display:table-cell; } body.controls span.ctl, body.controls button.ctl { display:inline-block; }
.legend { display:flex; flex-wrap:wrap; gap:8px; color:var(--muted); font-size:12px; align-items:center; margin-top:8px; }
footer { color:var(--muted); font-size:12px; margin-top:24px; } footer a { color:#34598f; }
.stale-data main { opacity:.55; }
`;

const SCRIPT = `
'use strict';
var TOKEN_KEY = 'licgate.admin.token';
var REFRESH_MS = 2000;
var last = null;
var lastOk = 0;
var rows = new Map();
var cards = new Map();

function $(id) { return document.getElementById(id); }
function el(tag, cls, text) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }
function toast(msg, kind) { var t = $('toast'); t.textContent = msg; t.className = kind || ''; }

function ago(ms) {
  var s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return s + 's';
  var m = Math.floor(s / 60); if (m < 60) return m + 'm ' + (s % 60) + 's';
  var h = Math.floor(m / 60); if (h < 48) return h + 'h ' + (m % 60) + 'm';
  return Math.floor(h / 24) + 'd ' + (h % 24) + 'h';
}
function stateClass(st) {
  if (st === 'UP') return 's-up';
  // Healthy but taking no client, as a drain: a triad member the MASTER serves for.
  if (st.indexOf(' (standby)') > 0) return 's-drain';
  if (st.indexOf('UP ') === 0) return 's-going-down';
  if (st === 'DOWN' || st.indexOf('DOWN (') === 0) return 's-down';
  if (st.indexOf('DOWN ') === 0) return 's-going-up';
  if (st.indexOf('DRAIN') === 0) return 's-drain';
  if (st.indexOf('MAINT') === 0) return 's-maint';
  return 's-nocheck';
}
function tierClass(t) { return t === null ? 'none' : 't' + Math.min(t, 2); }
// events.ts tierLabel: a DR tier past the first says its number (DR sites at tiers 2 and 3).
function tierLabel(t) { return t === null ? 'none' : t === 0 ? 'active' : t === 1 ? 'backup' : t === 2 ? 'dr' : 'dr tier ' + t; }

function setText(node, text) { text = String(text); if (node.textContent !== text) node.textContent = text; }

function serverRow(b, s) {
  var key = b.name + '\\u0000' + s.name;
  var r = rows.get(key);
  if (r) return r;
  var tr = el('tr');
  r = { tr: tr, cells: {} };
  ['name', 'addr', 'tier', 'state', 'weight', 'active', 'total', 'errors', 'connect', 'check', 'since', 'actions'].forEach(function (c) {
    var td = el('td', c === 'name' ? 'name' : c === 'addr' ? 'addr' : ['weight', 'active', 'total', 'errors', 'connect'].indexOf(c) >= 0 ? 'num' : c === 'actions' ? 'actions ctl' : '');
    tr.appendChild(td); r.cells[c] = td;
  });
  r.stateBadge = el('span', 'state'); r.adminNote = el('div', 'sub admin-note'); r.cells.state.append(r.stateBadge, r.adminNote);
  r.connectText = el('span'); r.overdue = el('div', 'overdue');
  r.overdue.title = 'connects unanswered past the race delay: new sessions go to other servers meanwhile';
  r.cells.connect.append(r.connectText, r.overdue);
  r.checkMark = el('span'); r.checkText = el('span', 'mono'); r.checkAge = el('span', 'sub'); r.checkReason = el('div', 'reason sub');
  r.cells.check.append(r.checkMark, ' ', r.checkText, ' ', r.checkAge, r.checkReason);
  r.buttons = {};
  ['ready', 'drain', 'maint'].forEach(function (st) {
    var btn = el('button', '', st);
    btn.type = 'button';
    btn.dataset.action = st;
    btn.addEventListener('click', function () { post(b.name, s.name, { state: st }); });
    r.buttons[st] = btn; r.cells.actions.appendChild(btn);
  });
  r.weightInput = el('input'); r.weightInput.type = 'number'; r.weightInput.min = '0'; r.weightInput.max = '256';
  r.weightInput.setAttribute('aria-label', 'weight for ' + s.name);
  var set = el('button', '', 'set'); set.type = 'button'; set.title = 'set the weight of ' + s.name;
  set.addEventListener('click', function () {
    var v = r.weightInput.value.trim();
    if (!/^\\d+$/.test(v)) { toast('weight: expected a whole number 0-256', 'err'); return; }
    post(b.name, s.name, { weight: Number(v) });
  });
  r.cells.actions.append(' ', r.weightInput, set);
  rows.set(key, r);
  return r;
}

function updateRow(r, b, s, now) {
  r.tr.className = 'tier' + Math.min(s.tier, 2);
  r.tr.dataset.server = s.name;
  r.tr.dataset.state = s.state;
  setText(r.cells.name, s.name);
  setText(r.cells.addr, s.address);
  setText(r.cells.tier, s.tier_name + (s.tier > 1 ? ' (' + s.tier + ')' : ''));
  setText(r.stateBadge, s.state);
  r.stateBadge.className = 'state ' + stateClass(s.state);
  r.stateBadge.title = s.agent ? s.agent.reason : '';
  // An admin drain under DOWN or an agent's MAINT: shown apart, as HAProxy keeps the admin state.
  setText(r.adminNote, s.admin !== 'ready' && s.state.indexOf(s.admin.toUpperCase()) !== 0 ? 'admin: ' + s.admin : '');
  var w = s.effective_weight !== s.weight ? s.effective_weight + ' (' + s.weight + ')' : String(s.weight);
  setText(r.cells.weight, s.weight !== s.configured_weight ? w + ' / ' + s.configured_weight : w);
  setText(r.cells.active, s.maxconn > 0 ? s.active + ' / ' + s.maxconn : String(s.active));
  setText(r.cells.total, s.total);
  setText(r.cells.errors, s.connect_errors);
  setText(r.connectText, s.connect_ms === null ? '\u2014' : s.connect_ms + ' ms');
  setText(r.overdue, s.connects_overdue > 0 ? s.connects_overdue + ' overdue' : '');
  var c = s.last_check;
  if (c) {
    setText(r.checkMark, c.ok ? '\\u2713' : '\\u2717');
    r.checkMark.className = c.ok ? 'check-ok' : 'check-fail';
    setText(r.checkText, c.duration_ms + ' ms');
    setText(r.checkReason, c.reason);
    r.checkReason.title = c.reason;
    setText(r.checkAge, '\u00b7 ' + ago(now - Date.parse(c.at)) + ' ago');
  } else {
    setText(r.checkMark, ''); setText(r.checkText, b.check === 'none' ? 'not checked' : 'pending');
    setText(r.checkReason, ''); setText(r.checkAge, '');
  }
  setText(r.cells.since, ago(now - Date.parse(s.since)));
  ['ready', 'drain', 'maint'].forEach(function (st) { r.buttons[st].className = s.admin === st ? 'on' : ''; });
  r.weightInput.placeholder = String(s.weight);
}

function backendCard(b) {
  var c = cards.get(b.name);
  if (c) return c;
  var sec = el('section', 'card');
  sec.dataset.backend = b.name;
  var h = el('h2');
  c = { sec: sec, name: el('span', 'name'), serving: el('span', 'pill serving'), facts: el('span', 'facts'), failback: el('button', 'ctl', 'fail back now') };
  c.failback.type = 'button';
  c.failback.addEventListener('click', function () { call('POST', '/admin/backends/' + encodeURIComponent(b.name) + '/failback', undefined, 'failback ' + b.name); });
  h.append(c.name, c.serving, c.facts, c.failback);
  var table = el('table');
  var head = el('tr');
  [['Server'], ['Address'], ['Tier'], ['State'], ['Weight', 'num'], ['Active', 'num'], ['Total', 'num'], ['Errors', 'num'], ['Connect', 'num'], ['Last check'], ['In state'], ['Actions', 'ctl']].forEach(function (x) {
    head.appendChild(el('th', x[1] || '', x[0]));
  });
  var thead = el('thead'); thead.appendChild(head);
  c.tbody = el('tbody');
  table.append(thead, c.tbody);
  var scroll = el('div', 'scroll'); scroll.appendChild(table);
  sec.append(h, scroll);
  cards.set(b.name, c);
  return c;
}

function render(status, health) {
  var now = Date.now();
  setText($('version'), 'v' + status.version + ' \\u00b7 pid ' + status.pid + ' \\u00b7 up ' + ago(status.uptime_s * 1000));
  var hp = $('health');
  if (status.shutting_down) { setText(hp, 'SHUTTING DOWN'); hp.className = 'pill bad'; }
  else if (health) { setText(hp, health.ok ? 'HEALTHY' : 'UNHEALTHY: ' + health.reason); hp.className = 'pill ' + (health.ok ? 'ok' : 'bad'); }
  var vp = $('vrrp'), v = status.vrrp;
  vp.hidden = !v;
  if (v && v.role) {
    setText(vp, 'VRRP ' + v.role.state);
    vp.className = 'pill ' + (v.role.state === 'MASTER' ? 'ok' : v.role.state === 'BACKUP' ? 'idle' : 'bad');
    vp.title = v.role.name + ', priority ' + v.role.priority + ', since ' + new Date(v.role.since).toLocaleString() + ' (' + v.file + ')';
  } else if (v) {
    setText(vp, 'VRRP ?'); vp.className = 'pill stale'; vp.title = v.error + ' (' + v.file + ')';
  }
  renderPeers(status.peers);

  var fbody = $('frontends');
  fbody.textContent = '';
  status.frontends.forEach(function (f) {
    var tr = el('tr');
    var listen = /:0$/.test(f.listen) && f.port !== null ? f.listen.replace(/:0$/, ':' + f.port) : f.listen;
    tr.append(el('td', '', f.name), el('td', 'addr', listen), el('td', '', f.backend), el('td', 'num', f.active));
    fbody.appendChild(tr);
  });
  $('frontends-card').hidden = status.frontends.length === 0;

  var container = $('backends');
  var seenCards = new Set(), seenRows = new Set();
  status.backends.forEach(function (b) {
    var c = backendCard(b);
    seenCards.add(b.name);
    setText(c.name, b.name);
    setText(c.serving, 'serving: ' + tierLabel(b.serving_tier));
    c.serving.className = 'pill serving ' + tierClass(b.serving_tier);
    c.sec.dataset.serving = tierLabel(b.serving_tier);
    setText(c.facts, b.servers_up + ' up \\u00b7 ' + b.balance + ' \\u00b7 failback ' + b.failback + ' \\u00b7 check ' + b.check + (b.stick_entries !== null ? ' \\u00b7 ' + b.stick_entries + ' sticky client' + (b.stick_entries === 1 ? '' : 's') : ''));
    c.failback.hidden = b.failback !== 'manual';
    b.servers.forEach(function (s, i) {
      var r = serverRow(b, s);
      seenRows.add(b.name + '\\u0000' + s.name);
      updateRow(r, b, s, now);
      if (c.tbody.children[i] !== r.tr) c.tbody.insertBefore(r.tr, c.tbody.children[i] || null);
    });
    if (container.children[status.backends.indexOf(b)] !== c.sec) container.insertBefore(c.sec, container.children[status.backends.indexOf(b)] || null);
  });
  rows.forEach(function (r, k) { if (!seenRows.has(k)) { r.tr.remove(); rows.delete(k); } });
  cards.forEach(function (c, k) { if (!seenCards.has(k)) { c.sec.remove(); cards.delete(k); } });
}

// One pill per remote of the peers section: a broken link shows nothing to clients until the VIP moves.
function renderPeers(p) {
  var box = $('peers');
  var remotes = p ? p.remotes : [];
  while (box.children.length > remotes.length) box.lastChild.remove();
  while (box.children.length < remotes.length) box.appendChild(el('span', 'pill peer'));
  remotes.forEach(function (r, i) {
    var pill = box.children[i];
    pill.dataset.remote = r.remote;
    setText(pill, 'peers: ' + r.remote + (r.connected ? ' connected' : ' not connected: ' + (r.last_error || r.state)));
    pill.className = 'pill peer ' + (r.connected ? 'ok' : r.state === 'connecting' ? 'stale' : 'bad');
    pill.title = r.state + (r.since ? ' since ' + new Date(r.since).toLocaleString() : '') + ', ' + r.entries_sent + ' entries sent' + (r.last_error ? '; last error: ' + r.last_error : '') + ' (peers.listen ' + p.listen + ')';
  });
}

async function refresh() {
  try {
    var res = await Promise.all([fetch('/status', { cache: 'no-store' }), fetch('/health', { cache: 'no-store' })]);
    if (!res[0].ok) throw new Error('/status answered ' + res[0].status);
    var status = await res[0].json();
    var health = null;
    try { health = await res[1].json(); } catch (e) { health = null; }
    last = status; lastOk = Date.now();
    document.body.classList.remove('stale-data');
    render(status, health);
    setText($('updated'), 'updated ' + new Date(lastOk).toLocaleTimeString());
  } catch (e) {
    document.body.classList.add('stale-data');
    var hp = $('health'); setText(hp, 'NO ANSWER'); hp.className = 'pill stale';
    setText($('updated'), 'cannot reach licgate' + (lastOk ? ' since ' + new Date(lastOk).toLocaleTimeString() : '') + ': ' + e.message);
  }
}

async function call(method, path, body, what) {
  var headers = { authorization: 'Bearer ' + token() };
  if (body !== undefined) headers['content-type'] = 'application/json';
  try {
    var res = await fetch(path, { method: method, headers: headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
    var data = {};
    try { data = await res.json(); } catch (e) { data = {}; }
    if (res.ok) {
      var extra = data.changes ? (data.changes.length ? ': ' + data.changes.join('; ') : ': no changes') : '';
      toast(what + ': done' + extra, 'good');
    } else {
      var why = data.errors ? data.errors.join('\\n') : (data.error || ('HTTP ' + res.status));
      toast(what + ' refused (' + res.status + '): ' + why, 'err');
    }
  } catch (e) {
    toast(what + ' failed: ' + e.message, 'err');
  }
  refresh();
}
function post(b, s, body) {
  var what = b + '/' + s + ' ' + (body.state !== undefined ? body.state : 'weight ' + body.weight);
  return call('POST', '/admin/backends/' + encodeURIComponent(b) + '/servers/' + encodeURIComponent(s), body, what);
}

function showControls() {
  var on = token() !== '';
  document.body.classList.toggle('controls', on);
  $('token-form').hidden = on;
  $('token-on').hidden = !on;
}

document.addEventListener('DOMContentLoaded', function () {
  $('token-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var v = $('token').value.trim();
    if (v) sessionStorage.setItem(TOKEN_KEY, v);
    $('token').value = '';
    showControls();
  });
  $('forget').addEventListener('click', function () { sessionStorage.removeItem(TOKEN_KEY); showControls(); toast(''); });
  $('reload').addEventListener('click', function () { call('POST', '/admin/reload', undefined, 'reload config'); });
  showControls();
  refresh();
  setInterval(refresh, REFRESH_MS);
});
`;

const hash = (text: string): string => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

export const STATS_PAGE_CSP = [
  "default-src 'none'",
  `script-src ${hash(SCRIPT)}`,
  `style-src ${hash(STYLE)}`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export const STATS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>licgate statistics</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
<header>
  <h1>lic<span>gate</span></h1>
  <span class="meta" id="version"></span>
  <span class="pill" id="health">…</span>
  <span class="pill" id="vrrp" hidden></span>
  <span id="peers"></span>
  <span class="meta" id="updated">loading…</span>
  <span class="spacer"></span>
  <form class="tokenbox" id="token-form" autocomplete="off">
    <input id="token" type="password" placeholder="admin token for controls" aria-label="admin token">
    <button type="submit">use token</button>
  </form>
  <span class="tokenbox" id="token-on" hidden>
    <span>controls on</span>
    <button type="button" id="reload">reload config</button>
    <button type="button" id="forget">forget token</button>
  </span>
</header>
<main>
  <div id="toast" role="status" aria-live="polite"></div>
  <section class="card" id="frontends-card">
    <h2><span class="name">Frontends</span><span class="facts">listening ports and the backend each one feeds</span></h2>
    <div class="scroll"><table>
      <thead><tr><th>Frontend</th><th>Listen</th><th>Backend</th><th class="num">Open sessions</th></tr></thead>
      <tbody id="frontends"></tbody>
    </table></div>
  </section>
  <div id="backends"></div>
  <div class="legend">
    <span class="state s-up">UP</span><span class="state s-going-down">UP 1/3</span><span>going down</span>
    <span class="state s-going-up">DOWN 1/2</span><span>going up</span><span class="state s-down">DOWN</span>
    <span class="state s-drain">DRAIN</span><span class="state s-drain">UP (standby)</span><span>FlexLM triad member, not MASTER</span><span class="state s-maint">MAINT</span><span>(agent): set by the server's agent</span><span class="state s-nocheck">no check</span>
    <span>admin: drain under a DOWN, (agent) or (standby) state: the admin's drain, still held when that ends</span>
  </div>
  <footer>
    Refreshes every 2 s from <a href="/status">/status</a> · <a href="/health">/health</a> · <a href="/ready">/ready</a> · <a href="/metrics">/metrics</a>.
    Controls need the token from admin.token_file; it stays in this tab only.
  </footer>
</main>
<noscript>This page needs JavaScript; the same data is at /status.</noscript>
<script>${SCRIPT}</script>
</body>
</html>
`;

export function registerStatsPage(http: AdminHttp): void {
  const body = Buffer.from(STATS_PAGE_HTML, 'utf8');
  http.add('GET', /^\/$/, (_req, res) => {
    res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      'content-length': body.length,
      'cache-control': 'no-store',
      'content-security-policy': STATS_PAGE_CSP,
      // frame-ancestors 'none' (in the policy) for browsers without CSP level 2: the controls must
      // not be clickjacked from a framing page.
      'x-frame-options': 'DENY',
      'referrer-policy': 'no-referrer',
    });
    res.end(body);
  });
}
