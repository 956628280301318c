// Runnel's web console: a page per hash route (#/, #/topics, #/topics/NAME, #/groups,
// #/groups/ID), each drawn from the console's JSON API. No external assets; charts are SVG.
'use strict';

const main = document.getElementById('main');
let auth = sessionStorage.getItem('runnel-auth');
let refreshTimer = null;
let route = '';

function h(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}
const dash = (v) => (v === null || v === undefined || v === '' ? '–' : v);
function bytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0; let v = Number(n);
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i += 1; }
  return (i === 0 ? v.toFixed(0) : v.toFixed(1)) + ' ' + units[i];
}
const rate = (v) => (v === null || v === undefined ? '–' : Number(v).toFixed(1));
const num = (v) => (v === null || v === undefined ? '–' : Number(v).toLocaleString('en-US'));
// A producer sets record timestamps: one out of Date's range must not break the page.
const when = (ms) => { const d = new Date(ms); return Number.isFinite(d.getTime()) ? d.toISOString() : String(ms); };
const cell = (key, raw, shown, cls) => `<td data-k="${h(key)}" data-v="${h(raw ?? '')}"${cls ? ` class="${cls}"` : ''}>${h(shown)}</td>`;

async function api(method, path, body) {
  const headers = { 'x-runnel-page': '1' };
  if (auth) headers.authorization = 'Basic ' + auth;
  if (method !== 'GET') {
    // Only sent from a confirmed action (see confirmThen).
    headers['x-runnel-console'] = 'confirm';
    headers['content-type'] = 'application/json';
  }
  const response = await fetch('/api/' + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await response.json().catch(() => ({ error: response.statusText }));
  if (response.status === 401) {
    signIn(data.error);
    const needed = new Error(data.error || 'sign in needed');
    needed.signIn = true;
    throw needed;
  }
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function signIn(why) {
  stopRefresh();
  main.innerHTML = `<h1>Sign in</h1><p class="muted">${h(why || 'This cluster needs a Kafka user (SASL).')}</p>
    <form id="signin" class="inline"><label>User<input name="user" autocomplete="username"></label>
    <label>Password<input name="password" type="password" autocomplete="current-password"></label>
    <button class="primary">Sign in</button></form>`;
  document.getElementById('signin').addEventListener('submit', (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    auth = btoa(unescape(encodeURIComponent(f.get('user') + ':' + f.get('password'))));
    sessionStorage.setItem('runnel-auth', auth);
    render();
  });
}

// A change runs only after the user confirms it in the modal.
function confirmThen(title, bodyHtml, action, needsText) {
  const modal = document.getElementById('modal');
  document.getElementById('modal-title').textContent = title;
  document.getElementById('modal-body').innerHTML = bodyHtml + (needsText
    ? `<p><label>Type <b>${h(needsText)}</b> to confirm<input id="modal-text" autocomplete="off"></label></p>` : '');
  const confirm = document.getElementById('modal-confirm');
  const cancel = document.getElementById('modal-cancel');
  modal.classList.remove('hidden');
  const close = () => { modal.classList.add('hidden'); confirm.onclick = null; cancel.onclick = null; };
  cancel.onclick = close;
  confirm.onclick = async () => {
    if (needsText && document.getElementById('modal-text').value !== needsText) return;
    close();
    try { await action(); } catch (e) { flash(e.message, true); }
  };
}

function flash(message, bad) {
  const old = document.getElementById('flash');
  if (old) old.remove();
  const p = document.createElement('p');
  p.id = 'flash';
  p.className = bad ? 'error' : 'notice';
  p.textContent = message;
  main.prepend(p);
}

function chart(series, unit) {
  const w = 900; const ht = 180; const pad = 36;
  const all = series.flatMap((s) => s.points);
  if (all.length < 2) return `<div class="chart"><p class="muted">Collecting samples…</p></div>`;
  const t0 = Math.min(...all.map((p) => p[0])); const t1 = Math.max(...all.map((p) => p[0]));
  const top = Math.max(1, ...all.map((p) => p[1]));
  const x = (t) => pad + ((t - t0) / Math.max(1, t1 - t0)) * (w - pad - 8);
  const y = (v) => ht - 20 - (v / top) * (ht - 34);
  const colors = ['#2458d6', '#e67e22', '#1e8c4e'];
  const lines = series.map((s, i) => `<polyline fill="none" stroke="${colors[i % 3]}" stroke-width="2" points="${s.points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ')}"/>`).join('');
  const time = (t) => new Date(t).toLocaleTimeString();
  const svg = `<svg viewBox="0 0 ${w} ${ht}" preserveAspectRatio="none" role="img">
    <line x1="${pad}" y1="${ht - 20}" x2="${w}" y2="${ht - 20}" stroke="#ccc"/>
    <text x="2" y="14" font-size="11" fill="#6b7385">${h(unit === 'bytes' ? bytes(top) + '/s' : rate(top) + (unit ? ' ' + unit : ''))}</text>
    <text x="${pad}" y="${ht - 4}" font-size="11" fill="#6b7385">${h(time(t0))}</text>
    <text x="${w - 70}" y="${ht - 4}" font-size="11" fill="#6b7385">${h(time(t1))}</text>${lines}</svg>`;
  const legend = series.map((s, i) => `<span><i class="c${i % 3}"></i>${h(s.name)}</span>`).join('');
  return `<div class="chart">${svg}<div class="legend">${legend}</div></div>`;
}

function card(key, label, value, cls) {
  return `<div class="card" data-k="${h(key)}"><div class="label">${h(label)}</div><div class="value ${cls || ''}">${h(value)}</div></div>`;
}

async function overview() {
  const o = await api('GET', 'overview');
  const c = o.cluster; const p = o.partitions;
  const brokers = c.nodes.filter((n) => n.roles.includes('broker')).length;
  const nodes = c.nodes.map((n) => `<tr data-node="${h(n.node)}">${cell('node', n.node, n.node)}${cell('roles', n.roles.join(','), n.roles.join(', ') || '–')}
    ${cell('rack', n.rack, dash(n.rack))}${cell('quorum', n.quorum, dash(n.quorum))}${cell('address', n.kafka_address, dash(n.kafka_address))}
    ${cell('metadata_offset', n.metadata_offset, num(n.metadata_offset), 'num')}
    <td>${n.node === c.active_controller ? '<span class="tag ok">active controller</span>' : ''}</td></tr>`).join('');
  const t = o.node_traffic;
  main.innerHTML = `<h1>Overview</h1>
    <div class="cards" id="cards">${card('cluster_id', 'Cluster', c.cluster_id)}${card('active_controller', 'Active controller', c.active_controller)}
    ${card('brokers', 'Brokers', brokers)}${card('topics', 'Topics', o.topics)}${card('partitions', 'Partitions', p.total)}
    ${card('under_replicated', 'Under-replicated', p.under_replicated, p.under_replicated ? 'bad' : 'ok')}
    ${card('with_offline_replicas', 'Offline replicas', p.with_offline_replicas, p.with_offline_replicas ? 'bad' : 'ok')}
    ${card('leaderless', 'Leaderless', p.leaderless, p.leaderless ? 'bad' : 'ok')}
    ${card('metadata', 'Metadata log', `index ${c.metadata_committed_index}, epoch ${c.metadata_epoch}`)}</div>
    <h2>Nodes</h2><table id="nodes"><thead><tr><th>Node</th><th>Roles</th><th>Rack</th><th>Quorum</th><th>Kafka address</th><th class="num">Metadata offset</th><th></th></tr></thead><tbody>${nodes}</tbody></table>
    <h2>This node's traffic (last hour)</h2>${chart([{ name: 'bytes in/s', points: t.bytes_in }, { name: 'bytes out/s', points: t.bytes_out }], 'bytes')}
    ${chart([{ name: 'messages in/s', points: t.messages_in }], 'msg/s')}`;
}

let showInternal = false;
async function topics() {
  const data = await api('GET', 'topics');
  const rows = data.topics.filter((t) => showInternal || !t.internal).map((t) => `<tr data-topic="${h(t.name)}">
    <td><a href="#/topics/${encodeURIComponent(t.name)}">${h(t.name)}</a>${t.internal ? ' <span class="tag">internal</span>' : ''}</td>
    ${cell('partitions', t.partitions, t.partitions, 'num')}${cell('replication_factor', t.replication_factor, t.replication_factor, 'num')}
    ${cell('size_bytes', t.size_bytes, bytes(t.size_bytes), 'num')}${cell('log_end_offsets', t.log_end_offsets, num(t.log_end_offsets), 'num')}
    ${cell('messages_per_second', t.messages_per_second, rate(t.messages_per_second), 'num')}
    ${cell('under_replicated', t.under_replicated, t.under_replicated, t.under_replicated ? 'num bad' : 'num')}</tr>`).join('');
  const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest('#create-topic');
  if (focused) return; // do not redraw a form being filled in
  main.innerHTML = `<h1>Topics</h1>
    <form id="create-topic" class="inline"><label>Name<input name="name" required></label>
    <label>Partitions<input name="partitions" type="number" min="1" value="1"></label>
    <label>Replication factor<input name="replication_factor" type="number" min="1" placeholder="default"></label>
    <label>Settings (key=value, comma-separated)<input name="configs" size="36" placeholder="cleanup.policy=compact"></label>
    <button class="primary" id="create-topic-button">Create topic</button></form>
    <label class="toolbar"><span><input type="checkbox" id="show-internal" ${showInternal ? 'checked' : ''}> show internal topics</span></label>
    <table id="topics"><thead><tr><th>Topic</th><th class="num">Partitions</th><th class="num">Replication</th><th class="num">Size</th><th class="num">Offsets (sum of log ends)</th><th class="num">Messages/s</th><th class="num">Under-replicated</th></tr></thead><tbody>${rows}</tbody></table>`;
  document.getElementById('show-internal').addEventListener('change', (e) => { showInternal = e.target.checked; topics(); });
  document.getElementById('create-topic').addEventListener('submit', (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    const configs = {};
    for (const pair of String(f.get('configs') || '').split(',').map((s) => s.trim()).filter(Boolean)) {
      const i = pair.indexOf('=');
      if (i > 0) configs[pair.slice(0, i).trim()] = pair.slice(i + 1).trim();
    }
    const body = { name: f.get('name'), partitions: Number(f.get('partitions') || 1), configs };
    if (f.get('replication_factor')) body.replication_factor = Number(f.get('replication_factor'));
    confirmThen('Create topic', `<p>Create topic <b>${h(body.name)}</b> with ${h(body.partitions)} partition(s)?</p>`, async () => {
      await api('POST', 'topics', body);
      e.target.reset();
      await topics();
      flash(`Created topic ${body.name}`);
    });
  });
}

function decodeBytes(b64) {
  if (b64 === null || b64 === undefined) return null;
  const raw = atob(b64);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i += 1) out[i] = raw.charCodeAt(i);
  return out;
}
function show(b64, format) {
  const bytesIn = decodeBytes(b64);
  if (bytesIn === null) return '<span class="muted">null</span>';
  if (format === 'hex') return `<pre>${h(Array.from(bytesIn, (b) => b.toString(16).padStart(2, '0')).join(' '))}</pre>`;
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytesIn);
  if (format === 'json') {
    try { return `<pre>${h(JSON.stringify(JSON.parse(text), null, 2))}</pre>`; } catch (e) { return `<pre>${h(text)}</pre>`; }
  }
  return `<pre>${h(text)}</pre>`;
}

async function browse(topic, params) {
  const out = document.getElementById('messages');
  const q = new URLSearchParams();
  q.set('partition', params.partition);
  q.set('limit', params.limit);
  if (params.mode === 'offset') q.set('offset', params.value);
  if (params.mode === 'timestamp') q.set('timestamp', params.value);
  try {
    const page = await api('GET', `topics/${encodeURIComponent(topic)}/messages?${q}`);
    const rows = page.records.map((r) => `<tr data-offset="${h(r.offset)}">${cell('offset', r.offset, r.offset, 'num')}
      <td>${h(when(r.timestamp))}</td><td class="key">${show(r.key, params.format)}</td><td class="value">${show(r.value, params.format)}</td>
      <td>${r.headers.map((hd) => `<div><b>${h(hd.key)}</b>: ${show(hd.value, params.format)}</div>`).join('')}</td></tr>`).join('');
    const cut = page.truncated ? ' Some values were cut to keep the page under 1 MB.' : '';
    out.innerHTML = `<p class="muted" id="messages-range">Partition ${h(page.partition)}: offsets ${h(page.earliest_offset)} to ${h(page.latest_offset)}; showing ${h(page.records.length)} from ${h(page.from)}.${h(cut)}</p>
      <div class="toolbar"><button id="older" type="button">← Older</button><button id="newer" type="button">Newer →</button></div>
      <table><thead><tr><th class="num">Offset</th><th>Time</th><th>Key</th><th>Value</th><th>Headers</th></tr></thead><tbody>${rows}</tbody></table>`;
    document.getElementById('older').onclick = () => browse(topic, { ...params, mode: 'offset', value: Math.max(page.earliest_offset, page.from - params.limit) });
    document.getElementById('newer').onclick = () => browse(topic, { ...params, mode: 'offset', value: page.next_offset });
  } catch (e) {
    out.innerHTML = `<p class="error">${h(e.message)}</p>`;
  }
}

async function topicPage(name) {
  const t = await api('GET', `topics/${encodeURIComponent(name)}`);
  const list = (ids) => (ids && ids.length ? ids.join(', ') : '–');
  const parts = t.partitions.map((p) => `<tr data-partition="${h(p.partition)}">${cell('partition', p.partition, p.partition, 'num')}
    ${cell('leader', p.leader, dash(p.leader))}${cell('replicas', p.replicas.join(','), list(p.replicas))}${cell('isr', p.isr.join(','), list(p.isr))}
    ${cell('offline', p.offline.join(','), list(p.offline), p.offline.length ? 'bad' : '')}
    ${cell('earliest_offset', p.earliest_offset, num(p.earliest_offset), 'num')}${cell('latest_offset', p.latest_offset, num(p.latest_offset), 'num')}
    ${cell('size_bytes', p.size_bytes, bytes(p.size_bytes), 'num')}</tr>`).join('');
  const settings = t.settings.map((s) => `<tr data-setting="${h(s.name)}"${s.source === 'DYNAMIC_TOPIC_CONFIG' ? '' : ' class="default hidden"'}><td>${h(s.name)}</td>${cell('value', s.value, s.sensitive ? '(hidden)' : dash(s.value))}<td>${h(s.source)}${s.acted_on ? '' : ' <span class="tag">not acted on</span>'}</td>
    <td>${s.source === 'DYNAMIC_TOPIC_CONFIG' ? `<button type="button" class="reset-setting" data-name="${h(s.name)}">Reset to default</button>` : ''}</td></tr>`).join('');
  const partitionOptions = t.partitions.map((p) => `<option value="${h(p.partition)}">${h(p.partition)}</option>`).join('');
  main.innerHTML = `<h1>Topic ${h(t.name)} <span class="muted">${h(t.topic_id)}</span></h1>
    <div class="toolbar"><button type="button" class="danger" id="delete-topic">Delete topic</button></div>
    <h2>Messages in per second (all partitions, last hour)</h2>${chart([{ name: 'messages/s', points: t.messages_per_second }], 'msg/s')}
    <h2>Partitions</h2><table id="partitions"><thead><tr><th class="num">Partition</th><th>Leader</th><th>Replicas</th><th>ISR</th><th>Offline</th><th class="num">Earliest offset</th><th class="num">Latest offset</th><th class="num">Size</th></tr></thead><tbody>${parts}</tbody></table>
    <h2>Messages</h2>
    <form id="browse" class="inline"><label>Partition<select name="partition">${partitionOptions}</select></label>
    <label>From<select name="mode"><option value="newest">the newest</option><option value="offset">offset</option><option value="timestamp">time</option></select></label>
    <label>Offset or time<input name="value" placeholder="42 or 2026-12-06T10:00:00Z"></label>
    <label>Count<input name="limit" type="number" min="1" max="100" value="20"></label>
    <label>Show as<select name="format"><option value="text">text</option><option value="json">JSON</option><option value="hex">hex</option></select></label>
    <button class="primary" id="browse-button">Read</button></form><div id="messages"></div>
    <h2>Settings</h2>
    <form id="set-config" class="inline"><label>Setting<input name="key" required placeholder="retention.ms"></label><label>Value<input name="value" required></label><button class="primary">Set</button>
    <label class="toolbar"><span><input type="checkbox" id="show-defaults"> show defaults too</span></label></form>
    <table id="settings"><thead><tr><th>Name</th><th>Value</th><th>Source</th><th></th></tr></thead><tbody>${settings}</tbody></table>`;
  document.getElementById('delete-topic').onclick = () => confirmThen('Delete topic', `<p>Delete <b>${h(t.name)}</b> and all its records? This cannot be undone.</p>`, async () => {
    await api('DELETE', `topics/${encodeURIComponent(t.name)}`);
    location.hash = '#/topics';
  }, t.name);
  document.getElementById('show-defaults').addEventListener('change', (e) => {
    for (const row of document.querySelectorAll('#settings tr.default')) row.classList.toggle('hidden', !e.target.checked);
  });
  document.getElementById('set-config').addEventListener('submit', (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    const key = f.get('key'); const value = f.get('value');
    confirmThen('Change a setting', `<p>Set <b>${h(key)}</b> = <b>${h(value)}</b> on ${h(t.name)}?</p>`, async () => {
      await api('POST', `topics/${encodeURIComponent(t.name)}/configs`, { set: { [key]: value } });
      await topicPage(name);
      flash(`Set ${key} on ${t.name}`);
    });
  });
  for (const button of document.querySelectorAll('.reset-setting')) {
    button.onclick = () => confirmThen('Reset a setting', `<p>Return <b>${h(button.dataset.name)}</b> to the broker default?</p>`, async () => {
      await api('POST', `topics/${encodeURIComponent(t.name)}/configs`, { delete: [button.dataset.name] });
      await topicPage(name);
    });
  }
  document.getElementById('browse').addEventListener('submit', (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    browse(t.name, { partition: f.get('partition'), mode: f.get('mode'), value: f.get('value'), limit: Number(f.get('limit') || 20), format: f.get('format') });
  });
}

async function groups() {
  const data = await api('GET', 'groups');
  const rows = data.groups.map((g) => `<tr data-group="${h(g.group)}"><td><a href="#/groups/${encodeURIComponent(g.group)}">${h(g.group)}</a></td>
    ${cell('state', g.state, g.state)}${cell('protocol_type', g.protocol_type, dash(g.protocol_type))}${cell('lag', g.lag, num(g.lag), 'num')}</tr>`).join('');
  main.innerHTML = `<h1>Consumer groups</h1><table id="groups"><thead><tr><th>Group</th><th>State</th><th>Protocol type</th><th class="num">Lag (last sample)</th></tr></thead><tbody>${rows}</tbody></table>
    ${data.groups.length ? '' : '<p class="muted">No groups yet.</p>'}`;
}

async function groupPage(id) {
  const g = await api('GET', `groups/${encodeURIComponent(id)}`);
  const members = g.members.map((m) => `<tr><td>${h(m.member_id)}</td><td>${h(dash(m.instance_id))}</td><td>${h(m.client_id)}</td><td>${h(m.host)}</td>
    <td>${h(Object.entries(m.assignment).map(([t, ps]) => `${t}: ${ps.join(',')}`).join('; ') || '–')}</td></tr>`).join('');
  const offsets = g.offsets.map((o) => `<tr data-topic="${h(o.topic)}" data-partition="${h(o.partition)}"><td>${h(o.topic)}</td>${cell('partition', o.partition, o.partition, 'num')}
    ${cell('current_offset', o.current_offset, num(o.current_offset), 'num')}${cell('log_end_offset', o.log_end_offset, num(o.log_end_offset), 'num')}
    ${cell('lag', o.lag, num(o.lag), 'num')}<td>${h(dash(o.member_id))}</td></tr>`).join('');
  const totalLag = g.offsets.reduce((sum, o) => sum + (o.lag || 0), 0);
  const topicsOf = [...new Set(g.offsets.map((o) => o.topic))];
  const busy = document.activeElement && document.activeElement.closest && document.activeElement.closest('#reset');
  if (busy) return;
  main.innerHTML = `<h1>Group ${h(g.group)}</h1>
    <div class="cards">${card('state', 'State', g.state)}${card('members', 'Members', g.members.length)}${card('protocol', 'Protocol', dash(g.protocol))}${card('lag', 'Total lag', totalLag)}</div>
    <h2>Lag (last hour)</h2>${chart([{ name: 'total lag', points: g.lag_history }], 'messages')}
    <h2>Offsets</h2><table id="offsets"><thead><tr><th>Topic</th><th class="num">Partition</th><th class="num">Committed</th><th class="num">Log end</th><th class="num">Lag</th><th>Member</th></tr></thead><tbody>${offsets}</tbody></table>
    <h2>Members</h2><table id="members"><thead><tr><th>Member</th><th>Instance</th><th>Client</th><th>Host</th><th>Assignment</th></tr></thead><tbody>${members}</tbody></table>
    <h2>Reset offsets</h2><p class="muted">Only while the group has no members. Preview first; applying asks for confirmation.</p>
    <form id="reset" class="inline"><label>Topic (or topic:partitions)<input name="topic" required value="${h(topicsOf[0] || '')}"></label>
    <label>To<select name="to"><option value="earliest">earliest</option><option value="latest">latest</option><option value="offset">offset</option><option value="datetime">date-time</option></select></label>
    <label>Offset or date-time<input name="value" placeholder="42 or 2026-12-06T10:00:00Z"></label>
    <button class="primary" id="reset-preview">Preview</button></form><div id="reset-plan"></div>`;
  document.getElementById('reset').addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    const body = { topic: f.get('topic'), to: f.get('to'), value: f.get('value'), execute: false };
    const out = document.getElementById('reset-plan');
    try {
      // The dry run changes nothing, but goes through the same confirmed path as every POST.
      const plan = await api('POST', `groups/${encodeURIComponent(g.group)}/reset`, body);
      const rows = plan.offsets.map((o) => `<tr data-partition="${h(o.partition)}">${cell('partition', o.partition, o.partition, 'num')}${cell('new_offset', o.new_offset, num(o.new_offset), 'num')}</tr>`).join('');
      out.innerHTML = `<p>Dry run for ${h(plan.topic)}:</p><table id="reset-rows"><thead><tr><th class="num">Partition</th><th class="num">New offset</th></tr></thead><tbody>${rows}</tbody></table>
        <div class="toolbar"><button class="danger" id="reset-apply" type="button">Apply</button></div>`;
      document.getElementById('reset-apply').onclick = () => confirmThen('Reset offsets', `<p>Commit these offsets for group <b>${h(g.group)}</b>?</p>`, async () => {
        await api('POST', `groups/${encodeURIComponent(g.group)}/reset`, { ...body, execute: true });
        await groupPage(id);
        flash(`Reset the offsets of ${g.group} on ${plan.topic}`);
      });
    } catch (err) {
      out.innerHTML = `<p class="error">${h(err.message)}</p>`;
    }
  });
}

function stopRefresh() {
  if (refreshTimer) clearInterval(refreshTimer);
  refreshTimer = null;
}

async function render() {
  stopRefresh();
  route = location.hash.replace(/^#/, '') || '/';
  let parts;
  try {
    parts = route.split('/').filter(Boolean).map(decodeURIComponent);
  } catch (e) {
    main.innerHTML = '<p class="error">No such page.</p>';
    return;
  }
  for (const a of document.querySelectorAll('header nav a')) a.classList.toggle('active', a.getAttribute('href') === '#/' + (parts[0] || ''));
  let page;
  if (parts.length === 0) page = overview;
  else if (parts[0] === 'topics' && parts.length === 1) page = topics;
  else if (parts[0] === 'topics') page = () => topicPage(parts[1]);
  else if (parts[0] === 'groups' && parts.length === 1) page = groups;
  else if (parts[0] === 'groups') page = () => groupPage(parts[1]);
  else page = async () => { main.innerHTML = '<p class="error">No such page.</p>'; };
  const shown = route;
  try {
    await page();
    document.body.dataset.loaded = shown;
  } catch (e) {
    if (!e.signIn) main.innerHTML = `<p class="error">${h(e.message)}</p>`;
    return;
  }
  // Lists and the overview refresh themselves; a topic page does not (its browser would reset).
  if (parts.length <= 1 || parts[0] === 'groups') {
    refreshTimer = setInterval(() => {
      if (document.hidden || route !== shown || !document.getElementById('modal').classList.contains('hidden')) return;
      page().catch(() => {});
    }, 5000);
  }
  api('GET', 'whoami').then((w) => { document.getElementById('who').textContent = w.user ? `signed in as ${w.user}` : ''; }).catch(() => {});
}

window.addEventListener('hashchange', render);
render();
