// Tenantry console: a small single-page app over the REST API v1. No framework, no CDN.
// Every value from the API reaches the page through textContent (never innerHTML), so tenant
// names cannot inject markup; the server's Content-Security-Policy allows only these files.

import { renderPlans, renderInvoices, renderInvoice, renderCosts, renderPolicies, renderMigrations, tenantLinks, shortcuts } from './pages.js';

const TOKEN_KEY = 'tenantry.token';
const app = document.getElementById('app');
const nav = document.getElementById('nav');
let viewId = 0; // bumps on every navigation; long-polls of an old view stop

// ---- tiny DOM helper ---------------------------------------------------------------------------
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'testid') el.dataset.testid = v;
    else if (k === 'width') el.style.width = v; // CSSOM, which the CSP allows (style attributes it does not)
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const badge = (s) => h('span', { class: `badge ${s}`, testid: 'status' }, s);
const time = (iso) => (iso ? new Date(iso).toLocaleString() : '');
// replaceChildren would print a null or false (an absent optional part) as text.
const show = (...nodes) => app.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined && n !== false));
const errorBox = (e) => h('div', { class: 'error', role: 'alert', testid: 'error' }, e.message || String(e));

// ---- API ---------------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, problem) {
    const fields = problem && problem.errors ? Object.entries(problem.errors).map(([k, v]) => `${k}: ${[].concat(v).join(' ')}`) : [];
    super([problem?.title, fields.length ? fields.join('; ') : problem?.detail].filter(Boolean).join(' — ') || `HTTP ${status}`);
    this.status = status;
  }
}

async function api(method, path, body) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) { logout(); throw new ApiError(401, { title: 'Not logged in.' }); }
  const res = await fetch(path, {
    method,
    credentials: 'omit',
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (res.status === 401) { logout(); throw new ApiError(401, { title: 'Your session ended; log in again.' }); }
  const text = await res.text();
  const json = text ? JSON.parse(text) : null;
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

function logout() {
  sessionStorage.removeItem(TOKEN_KEY);
  nav.hidden = true;
  viewId++;
  renderLogin();
}

// ---- login -------------------------------------------------------------------------------------
function renderLogin(message) {
  const id = h('input', { name: 'client_id', value: 'operator', autocomplete: 'username', testid: 'client-id' });
  const secret = h('input', { name: 'client_secret', type: 'password', autocomplete: 'current-password', required: true, testid: 'client-secret' });
  const out = h('div');
  const form = h('form', { class: 'card login', testid: 'login-form', onsubmit: async (e) => {
    e.preventDefault();
    out.replaceChildren();
    // credentials 'omit': the token endpoint's 401 carries WWW-Authenticate: Basic, which would open the browser's own login box.
    const res = await fetch('/connect/token', {
      method: 'POST',
      credentials: 'omit',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: id.value, client_secret: secret.value, scope: 'tenantry:admin' }),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) { out.append(errorBox(new Error(body.error_description || 'Login refused.'))); return; }
    sessionStorage.setItem(TOKEN_KEY, body.access_token);
    route();
  } },
  h('h1', {}, 'Operator login'),
  h('p', { class: 'muted' }, 'The operator secret is printed by the host at start (or set with TENANTRY_OPERATOR_SECRET).'),
  message ? errorBox(new Error(message)) : null,
  h('label', {}, 'Client id', id), h('label', {}, 'Client secret', secret),
  h('button', { type: 'submit', testid: 'login' }, 'Log in'), out);
  show(form);
  secret.focus();
}

// ---- overview ----------------------------------------------------------------------------------
const STATUSES = ['provisioning', 'active', 'suspended', 'failed', 'offboarding', 'offboarded'];

function barChart(title, counts, testid) {
  const entries = Object.entries(counts).filter(([, v]) => v > 0);
  const max = Math.max(1, ...entries.map(([, v]) => v));
  const rowH = 24, width = 420, labelW = 110;
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('class', 'chart');
  svg.setAttribute('width', width);
  svg.setAttribute('height', Math.max(rowH, entries.length * rowH));
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', title);
  entries.forEach(([name, value], i) => {
    const y = i * rowH;
    const label = document.createElementNS(ns, 'text');
    label.setAttribute('x', 0); label.setAttribute('y', y + 16); label.textContent = name;
    const bar = document.createElementNS(ns, 'rect');
    const w = Math.max(2, ((width - labelW - 50) * value) / max);
    bar.setAttribute('x', labelW); bar.setAttribute('y', y + 4); bar.setAttribute('width', w); bar.setAttribute('height', 16);
    bar.setAttribute('rx', 3); bar.setAttribute('fill', '#3b5bdb');
    const num = document.createElementNS(ns, 'text');
    num.setAttribute('x', labelW + w + 6); num.setAttribute('y', y + 16); num.textContent = value;
    svg.append(label, bar, num);
  });
  return h('div', { class: 'card', testid }, h('h2', {}, title), entries.length ? svg : h('p', { class: 'muted' }, 'Nothing yet.'));
}

async function renderOverview(params = new URLSearchParams()) {
  const mine = viewId;
  const fleet = await api('GET', '/v1/fleet');
  const ops = fleet.operations || {};
  const inFlight = (ops.pending || 0) + (ops.running || 0);
  show(
    h('h1', {}, 'Fleet overview'),
    h('div', { class: 'grid' },
      stat('Tenants', fleet.tenants, 'stat-tenants'),
      stat('Active', fleet.byStatus.active || 0, 'stat-active'),
      stat('Operations in flight', inFlight, 'stat-inflight'),
      stat('Failed operations', ops.failed || 0, 'stat-failed')),
    h('h2', {}, 'Distribution'),
    h('div', { class: 'grid' },
      barChart('Tenants per status', Object.fromEntries(STATUSES.map((s) => [s, fleet.byStatus[s] || 0])), 'chart-status'),
      barChart('Tenants per tier', fleet.byTier, 'chart-tier')),
    h('h2', {}, 'Latest failed operations'),
    fleet.recentFailures.length
      ? table(['Tenant', 'Operation', 'Error', 'When'], fleet.recentFailures.map((f) => [
        h('a', { href: `#/tenants/${f.tenantId}` }, f.slug), f.kind, f.error || '', time(f.finishedAt)]), 'failures')
      : h('p', { class: 'muted' }, 'None.'),
    h('div', { id: 'cells' }),
    h('div', { id: 'nodes' }),
    h('div', { id: 'worst', testid: 'worst-panel' }),
    h('div', { id: 'billing' }));
  renderCells(document.getElementById('cells'));
  renderNodes(document.getElementById('nodes'));
  renderWorst(document.getElementById('worst'), params, mine);
  renderBilling(document.getElementById('billing'));
}

// The cells tenants are placed in: one row per cell, with its region and how full it is.
async function renderCells(slot) {
  let cells;
  try { cells = await api('GET', '/v1/cells'); } catch (err) { slot.replaceChildren(errorBox(err)); return; }
  const used = (c) => (c.capacity > 0 && c.capacity < 2147483647 ? `${(100 * c.tenants / c.capacity).toFixed(1)} %` : '');
  slot.replaceChildren(h('h2', {}, 'Cells'),
    table(['Cell', 'Region', 'Tenants', 'Capacity', 'Used', 'PostgreSQL servers'], cells.items.map((c) => [
      h('span', { testid: `cell-${c.name}` }, c.name), c.region || 'any', c.tenants,
      c.capacity < 2147483647 ? c.capacity : '', used(c), c.postgresServers.length ? c.postgresServers.join(', ') : 'all']), 'cells-table'));
}

// The compute nodes (hosts that run app instances): one row per node, with its heartbeat and status.
async function renderNodes(slot) {
  let nodes;
  try { nodes = await api('GET', '/v1/nodes'); } catch (err) { slot.replaceChildren(errorBox(err)); return; }
  slot.replaceChildren(h('h2', {}, 'Nodes'),
    table(['Node', 'Address', 'Status', 'Instances', 'Capacity', 'Last heartbeat'], nodes.items.map((n) => [
      h('span', { testid: `node-${n.name}` }, n.self ? `${n.name} (this)` : n.name), n.address,
      h('span', { class: `badge ${n.status === 'live' ? 'active' : n.status === 'dead' ? 'failed' : 'suspended'}` }, n.status),
      n.instances, n.capacity, time(n.lastHeartbeat)]), 'nodes-table'));
}

// Usage and revenue-vs-cost charts appear once the metering API answers (404 until then).
async function renderBilling(slot) {
  const period = new Date().toISOString().slice(0, 7);
  let costs;
  try { costs = await api('GET', `/v1/costs?period=${period}`); } catch { return; }
  const rows = (costs.tenants || costs.items || []).slice(0, 20);
  if (!rows.length) return;
  const revenue = Object.fromEntries(rows.map((r) => [r.slug || r.tenantId, Number(r.revenue || 0)]));
  const cost = Object.fromEntries(rows.map((r) => [r.slug || r.tenantId, Number(r.cost || 0)]));
  slot.replaceChildren(h('h2', {}, `Revenue vs cost, ${period}`), h('div', { class: 'grid' },
    barChart('Revenue per tenant', revenue, 'chart-revenue'), barChart('Cost per tenant', cost, 'chart-cost')));
  try {
    const usage = await api('GET', '/v1/usage?meter=api_calls&window=month');
    const slugs = Object.fromEntries(rows.map((r) => [r.tenantId, r.slug]));
    const perTenant = {};
    for (const p of usage.items) {
      const key = slugs[p.tenantId] || p.tenantId.slice(0, 8);
      perTenant[key] = (perTenant[key] || 0) + Number(p.value);
    }
    slot.append(h('div', { class: 'grid' }, barChart(`API calls per tenant, ${period}`, perTenant, 'chart-usage')));
  } catch { /* no usage yet */ }
}

// A tenant's metered API calls per day this billing period (hidden until metering answers).
async function renderTenantUsage(slot, tenantId, mine) {
  let usage;
  try { usage = await api('GET', `/v1/usage?tenantId=${tenantId}&meter=api_calls&window=day`); } catch { return; }
  if (mine !== viewId || !usage.items.length) return;
  const perDay = Object.fromEntries(usage.items.map((p) => [p.windowStart.slice(0, 10), Number(p.value)]));
  slot.replaceChildren(h('h2', {}, 'Usage'), barChart('API calls per day', perDay, 'chart-tenant-usage'));
}

const stat = (label, value, testid) => h('div', { class: 'card stat', testid }, h('div', { class: 'value' }, value), h('div', { class: 'label' }, label));

function table(headers, rows, testid) {
  return h('table', { testid },
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', {}, x)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c) => h('td', {}, c))))));
}

// ---- tenant list -------------------------------------------------------------------------------
async function renderTenants(params) {
  const q = params.get('q') || '', status = params.get('status') || '', tier = params.get('tier') || '';
  const cursor = params.get('cursor') || '';
  const back = params.get('back') || ''; // previous cursors, for "Previous"
  const query = new URLSearchParams({ limit: '25' });
  if (q) query.set('q', q);
  if (status) query.set('status', status);
  if (tier) query.set('tier', tier);
  if (cursor) query.set('cursor', cursor);
  const started = performance.now();
  const page = await api('GET', `/v1/tenants?${query}`);
  const took = Math.round(performance.now() - started);

  const search = h('input', { type: 'search', name: 'q', value: q, placeholder: 'Search slug or name', testid: 'search' });
  const statusSel = h('select', { name: 'status', testid: 'filter-status' }, h('option', { value: '' }, 'any status'), STATUSES.map((s) => h('option', { value: s, selected: s === status }, s)));
  const tierSel = h('select', { name: 'tier', testid: 'filter-tier' }, h('option', { value: '' }, 'any tier'), ['basic', 'standard', 'premium'].map((t) => h('option', { value: t, selected: t === tier }, t)));
  const go = (extra = {}) => {
    const p = new URLSearchParams();
    if (search.value) p.set('q', search.value);
    if (statusSel.value) p.set('status', statusSel.value);
    if (tierSel.value) p.set('tier', tierSel.value);
    for (const [k, v] of Object.entries(extra)) if (v) p.set(k, v);
    location.hash = `#/tenants?${p}`;
  };
  let timer;
  search.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(() => go(), 250); });
  statusSel.addEventListener('change', () => go());
  tierSel.addEventListener('change', () => go());

  const backs = back ? back.split(',') : [];
  show(
    h('h1', {}, 'Tenants'),
    h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); go(); } }, search, statusSel, tierSel, h('button', { type: 'submit' }, 'Filter')),
    page.items.length
      ? table(['Slug', 'Name', 'Tier', 'Status', 'Created'], page.items.map((t) => [
        h('a', { href: `#/tenants/${t.id}`, testid: `tenant-${t.slug}` }, t.slug), t.name, t.tier, badge(t.status), time(t.createdAt)]), 'tenant-table')
      : h('p', { class: 'muted', testid: 'no-tenants' }, 'No tenant matches.'),
    h('div', { class: 'pager' },
      h('button', { class: 'secondary', disabled: !cursor, testid: 'prev', onclick: () => go({ cursor: backs.at(-1) || '', back: backs.slice(0, -1).join(',') }) }, 'Previous'),
      h('button', { class: 'secondary', disabled: !page.nextCursor, testid: 'next', onclick: () => go({ cursor: page.nextCursor, back: [...backs, cursor].join(',') }) }, 'Next'),
      h('span', { class: 'muted' }, `${page.items.length} shown · ${took} ms`)));
  if (q) { search.focus(); search.setSelectionRange(q.length, q.length); }
}

// ---- new tenant --------------------------------------------------------------------------------
function renderNew() {
  const out = h('div');
  const name = h('input', { name: 'name', required: true, testid: 'new-name' });
  const slug = h('input', { name: 'slug', placeholder: 'from the name', testid: 'new-slug' });
  const tier = h('select', { name: 'tier', testid: 'new-tier' }, ['basic', 'standard', 'premium'].map((t) => h('option', { value: t }, t)));
  const email = h('input', { name: 'adminEmail', type: 'email', required: true, testid: 'new-email' });
  show(h('h1', {}, 'New tenant'), h('form', { class: 'stack card', onsubmit: async (e) => {
    e.preventDefault();
    out.replaceChildren();
    try {
      const t = await api('POST', '/v1/tenants', { name: name.value, slug: slug.value || undefined, tier: tier.value, adminEmail: email.value });
      location.hash = `#/tenants/${t.id}`;
    } catch (err) { out.append(errorBox(err)); }
  } },
  h('label', {}, 'Name', name), h('label', {}, 'Slug', slug), h('label', {}, 'Tier', tier), h('label', {}, 'Admin email', email),
  h('button', { type: 'submit', testid: 'create' }, 'Create tenant'), out));
  name.focus();
}

// ---- tenant detail -----------------------------------------------------------------------------
function kv(obj) {
  return h('dl', { class: 'kv' }, Object.entries(obj || {}).flatMap(([k, v]) => [
    h('dt', {}, k), h('dd', { class: typeof v === 'object' ? '' : 'mono' }, v && typeof v === 'object' ? kv(v) : String(v ?? '')),
  ]));
}

function operationView(op) {
  const done = op.steps.filter((s) => s.status === 'succeeded').length;
  const pct = op.steps.length ? Math.round((done * 100) / op.steps.length) : 0;
  return h('div', { class: 'card', testid: 'operation' },
    h('div', {}, h('strong', {}, op.kind), ' ', badge(op.status), ' ', h('span', { class: 'muted', testid: 'progress-text' }, `${done}/${op.steps.length} steps`)),
    h('div', { class: `progress ${op.status}` }, h('div', { width: `${pct}%`, testid: 'progress-bar' })),
    op.error ? errorBox(new Error(op.error)) : null,
    table(['Step', 'Status', 'Attempts', 'Finished', 'Error'], op.steps.map((s) => [s.name, badge(s.status), s.attempts, time(s.finishedAt), s.error || '']), 'steps'));
}

async function renderTenant(id, params = new URLSearchParams(), reread = false) {
  const mine = viewId;
  const tenant = await api('GET', `/v1/tenants/${encodeURIComponent(id)}`);
  const opSlot = h('div', { testid: 'operation-slot' });
  const auditSlot = h('div');
  const eventsSlot = h('div', { testid: 'events-slot' });
  const usersSlot = h('div', { testid: 'users-slot' });
  const usageSlot = h('div');
  const healthSlot = h('div', { testid: 'health-slot' });
  const jobsSlot = h('div', { testid: 'jobs-slot' });
  const out = h('div');
  const act = (label, method, path, cls = '', confirmText) => h('button', { class: cls, testid: `action-${label.toLowerCase()}`, onclick: async () => {
    if (confirmText && !(await confirmDialog(confirmText, tenant.slug))) return;
    out.replaceChildren();
    try { await api(method, path); renderTenant(id); } catch (err) { out.append(errorBox(err)); }
  } }, label);

  const actions = [];
  if (tenant.status === 'active') actions.push(act('Suspend', 'POST', `/v1/tenants/${tenant.id}/suspend`, 'secondary'));
  if (tenant.status === 'suspended') actions.push(act('Reactivate', 'POST', `/v1/tenants/${tenant.id}/reactivate`));
  if (tenant.status === 'active') {
    // A tier of another isolation model moves the tenant's data (a change-tier operation, followed below like any other).
    const tierPick = h('select', { testid: 'change-tier-select', 'aria-label': 'New tier' },
      ['basic', 'standard', 'premium'].filter((t) => t !== tenant.tier).map((t) => h('option', { value: t }, t)));
    actions.push(h('span', { class: 'inline' }, tierPick, ' ', h('button', { class: 'secondary', testid: 'action-change-tier', onclick: async () => {
      out.replaceChildren();
      try { await api('POST', `/v1/tenants/${tenant.id}/tier`, { tier: tierPick.value }); renderTenant(id); } catch (err) { out.append(errorBox(err)); }
    } }, 'Change tier')));
    // Another cell of the tenant's region: a move operation (its data goes to that cell's servers), followed below.
    const here = (tenant.resources && tenant.resources.placement) || {};
    const region = tenant.config && typeof tenant.config.region === 'string' ? tenant.config.region : null;
    const cells = (await api('GET', '/v1/cells').catch(() => ({ items: [] }))).items
      .filter((c) => c.name !== here.cell && (!region || !c.region || c.region === region));
    if (cells.length) {
      const cellPick = h('select', { testid: 'move-cell-select', 'aria-label': 'Cell to move to' }, cells.map((c) => h('option', { value: c.name }, c.region ? `${c.name} (${c.region})` : c.name)));
      actions.push(h('span', { class: 'inline' }, cellPick, ' ', h('button', { class: 'secondary', testid: 'action-move', onclick: async () => {
        out.replaceChildren();
        try { await api('POST', `/v1/tenants/${tenant.id}/move`, { cell: cellPick.value }); renderTenant(id); } catch (err) { out.append(errorBox(err)); }
      } }, 'Move to cell')));
    }
  }
  if (tenant.status === 'failed' && tenant.operationId) actions.push(act('Retry', 'POST', `/v1/operations/${tenant.operationId}/retry`));
  if (!['offboarded', 'offboarding', 'provisioning'].includes(tenant.status)) {
    actions.push(act('Offboard', 'DELETE', `/v1/tenants/${tenant.id}`, 'danger', `Offboarding exports ${tenant.slug}'s data, then deletes its database, files, users and routes. Type the slug to confirm.`));
  }

  show(
    h('h1', {}, tenant.name, ' ', badge(tenant.status)),
    h('p', { class: 'muted mono' }, `${tenant.slug} · ${tenant.id} · ${tenant.tier} (${tenant.isolation})`),
    tenant.statusReason ? errorBox(new Error(tenant.statusReason)) : null,
    tenantLinks(tenant),
    h('div', { class: 'actions' }, actions), out,
    h('h2', {}, 'Current operation'), opSlot,
    h('h2', {}, 'Health'), healthSlot,
    h('h2', {}, 'Jobs'), jobsSlot,
    h('h2', {}, 'Resources'), h('div', { class: 'card', testid: 'resources' }, kv(tenant.resources)),
    h('h2', {}, 'Users'), usersSlot,
    usageSlot,
    h('h2', {}, 'Events'), eventsSlot,
    h('h2', {}, 'Audit trail'), auditSlot);
  renderTenantHealth(healthSlot, tenant, params, mine);
  renderTenantJobs(jobsSlot, tenant.id, mine);
  renderTenantUsage(usageSlot, tenant.id, mine);
  renderTenantUsers(usersSlot, tenant.id, mine);

  // The events timeline: what the tenant's webhooks were (or would be) sent, newest first.
  api('GET', `/v1/events?tenantId=${tenant.id}&limit=100`).then((page) => {
    if (mine !== viewId) return;
    eventsSlot.replaceChildren(page.items.length
      ? h('ol', { class: 'timeline', testid: 'events' }, page.items.map((e) => h('li', { testid: `event-${e.type}` },
        h('span', { class: 'mono' }, e.type), ' ', h('span', { class: 'muted' }, time(e.time)),
        e.data && e.data.status ? h('span', { class: 'muted' }, ` → ${e.data.status}`) : null)))
      : h('p', { class: 'muted' }, 'None.'));
  }).catch((err) => eventsSlot.replaceChildren(errorBox(err)));

  api('GET', `/v1/audit?tenantId=${tenant.id}&limit=200`).then((page) => {
    if (mine !== viewId) return;
    auditSlot.replaceChildren(table(['Time', 'Actor', 'Action', 'Outcome'], page.items.map((e) => [time(e.time), e.actor, e.action, e.outcome]), 'audit'));
  }).catch((err) => auditSlot.replaceChildren(errorBox(err)));

  if (!tenant.operationId) { opSlot.replaceChildren(h('p', { class: 'muted' }, 'None.')); return; }
  // Live progress: long-poll the operation; when it ends, re-render the tenant (status, actions).
  let op = await api('GET', `/v1/operations/${tenant.operationId}`);
  if (mine !== viewId) return;
  const ended = op.status === 'succeeded' || op.status === 'failed';
  // It ended after we read the tenant: read it again, once (a tier change ends after its last change to the tenant).
  if (ended && !reread && op.finishedAt && new Date(op.finishedAt) > new Date(tenant.updatedAt)) { renderTenant(id, params, true); return; }
  opSlot.replaceChildren(operationView(op));
  while (mine === viewId && (op.status === 'pending' || op.status === 'running')) {
    try { op = await api('GET', `/v1/operations/${tenant.operationId}?wait=10`); } catch (err) { opSlot.append(errorBox(err)); return; }
    if (mine !== viewId) return;
    opSlot.replaceChildren(operationView(op));
    if (op.status === 'succeeded' || op.status === 'failed') { renderTenant(id); return; }
  }
}

// A tenant's users; one locked out after failed sign-ins shows until when, with a button to unlock it now.
async function renderTenantUsers(slot, tenantId, mine) {
  let page;
  try { page = await api('GET', `/v1/tenants/${tenantId}/users`); } catch (err) { slot.replaceChildren(errorBox(err)); return; }
  if (mine !== viewId) return;
  if (!page.items.length) { slot.replaceChildren(h('p', { class: 'muted' }, 'None.')); return; }
  const out = h('div');
  const unlock = (u) => h('button', { class: 'secondary', testid: `unlock-${u.email}`, onclick: async () => {
    out.replaceChildren();
    try {
      await api('POST', `/v1/tenants/${tenantId}/users/${encodeURIComponent(u.email)}/unlock`);
      renderTenantUsers(slot, tenantId, mine);
    } catch (err) { out.append(errorBox(err)); }
  } }, 'Unlock');
  slot.replaceChildren(table(['E-mail', 'Role', 'Status', 'Sign-in', ''], page.items.map((u) => [
    u.email, u.role, badge(u.disabled ? 'disabled' : u.status),
    u.lockedUntil ? h('span', { class: 'locked', testid: `locked-${u.email}` }, `locked until ${time(u.lockedUntil)}`) : '',
    u.lockedUntil ? unlock(u) : '']), 'users'), out);
}

function confirmDialog(text, slug) {
  return new Promise((resolve) => {
    const input = h('input', { testid: 'confirm-slug', placeholder: slug });
    const ok = h('button', { class: 'danger', disabled: true, testid: 'confirm-ok', onclick: () => { dialog.close(); resolve(true); } }, 'Offboard');
    input.addEventListener('input', () => { ok.disabled = input.value !== slug; });
    const dialog = h('dialog', { testid: 'confirm' }, h('p', {}, text), input,
      h('div', { class: 'actions' }, ok, h('button', { class: 'secondary', onclick: () => { dialog.close(); resolve(false); } }, 'Cancel')));
    document.body.append(dialog);
    dialog.addEventListener('close', () => { dialog.remove(); resolve(false); });
    dialog.showModal();
  });
}

// ---- apps --------------------------------------------------------------------------------------
async function renderApps(params) {
  const cursor = params.get('cursor') || '';
  const query = new URLSearchParams({ limit: '50' });
  if (cursor) query.set('cursor', cursor);
  const page = await api('GET', `/v1/apps?${query}`);
  show(
    h('h1', {}, 'Apps'),
    h('p', { class: 'muted' }, 'Registered applications. Register one with `tenantry apps register ./tenantry.app.json`.'),
    page.items.length
      ? table(['Name', 'Route', 'Health', 'Shared instances', 'Current release', 'Registered'], page.items.map((a) => [
        h('a', { href: `#/apps/${encodeURIComponent(a.name)}`, testid: `app-${a.name}` }, a.name), a.routePrefix, a.healthPath, a.shared.instances,
        a.currentRelease ? h('span', { class: 'mono', testid: `current-${a.name}` }, a.currentRelease.version) : h('span', { class: 'muted' }, 'none'),
        time(a.createdAt)]), 'app-table')
      : h('p', { class: 'muted', testid: 'no-apps' }, 'No app is registered yet.'),
    page.nextCursor ? h('div', { class: 'pager' }, h('a', { href: `#/apps?cursor=${encodeURIComponent(page.nextCursor)}`, testid: 'next' }, 'Next')) : null);
}

async function renderApp(name) {
  const mine = viewId;
  const app = await api('GET', `/v1/apps/${encodeURIComponent(name)}`);
  const releasesSlot = h('div', { testid: 'releases-slot' });
  const rolloutSlot = h('div', { testid: 'rollout-slot' });
  const current = app.currentRelease ? app.currentRelease.version : null;
  show(
    h('h1', {}, app.name),
    h('p', { class: 'muted mono' }, `${app.routePrefix} · health ${app.healthPath} · ${app.shared.instances} shared instance(s)`),
    h('h2', {}, 'Current release'),
    h('div', { class: 'card', testid: 'current-release' }, app.currentRelease
      ? kv({ version: current, command: [app.currentRelease.process.command, ...app.currentRelease.process.args].join(' '), image: app.currentRelease.image || '', migrations: app.currentRelease.migrations.length })
      : h('p', { class: 'muted' }, 'None yet.')),
    h('h2', {}, 'Rollout'), rolloutSlot,
    h('h2', {}, 'Releases'), releasesSlot);
  watchRollout(rolloutSlot, name, mine);
  let page;
  try { page = await api('GET', `/v1/apps/${encodeURIComponent(name)}/releases?limit=200`); } catch (err) { releasesSlot.replaceChildren(errorBox(err)); return; }
  if (mine !== viewId) return;
  releasesSlot.replaceChildren(page.items.length
    ? table(['Version', 'Command', 'Image', 'Migrations', 'Created', 'By'], page.items.map((r) => [
      h('span', { class: 'mono', testid: `release-${r.version}` }, r.version, r.version === current ? ' (current)' : ''),
      h('span', { class: 'mono' }, [r.process.command, ...r.process.args].join(' ')), r.image || '',
      r.migrations.map((m) => m.id).join(', '), time(r.createdAt), r.createdBy]), 'releases')
    : h('p', { class: 'muted' }, 'None.'));
}

// ---- live rollout ------------------------------------------------------------------------------
// The app's latest rollout, read again every second while it runs or is paused (until the view changes).
const ROLLOUT_ACTIVE = ['running', 'paused'];

// Each call replaces the slot's earlier watch (a control button starts a new one, which shows its effect at once).
async function watchRollout(slot, name, mine) {
  const watch = String(Number(slot.dataset.watch || 0) + 1);
  slot.dataset.watch = watch;
  const current = () => mine === viewId && slot.dataset.watch === watch;
  for (let reads = 0; current() && reads < 100000; reads++) {
    let rollout;
    try {
      const page = await api('GET', `/v1/rollouts?app=${encodeURIComponent(name)}&limit=1`);
      rollout = page.items[0];
    } catch (err) { if (current()) slot.replaceChildren(errorBox(err)); return; }
    if (!current()) return;
    slot.replaceChildren(rollout ? rolloutView(rollout, slot, name, mine) : h('p', { class: 'muted', testid: 'no-rollout' }, 'No rollout yet. Start one with `tenantry rollouts start`.'));
    if (!rollout || !ROLLOUT_ACTIVE.includes(rollout.status)) return;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

function rolloutView(r, slot, name, mine) {
  const out = h('div');
  const control = (action, label, cls = '') => h('button', { class: cls, testid: `rollout-${action}`, onclick: async (e) => {
    e.target.disabled = true;
    out.replaceChildren();
    try { await api('POST', `/v1/rollouts/${r.id}/${action}`); } catch (err) { out.append(errorBox(err)); return; }
    watchRollout(slot, name, mine);
  } }, label);
  const actions = [];
  if (r.status === 'running') actions.push(control('pause', 'Pause', 'secondary'));
  if (r.status === 'paused') actions.push(control('resume', 'Resume'));
  if (ROLLOUT_ACTIVE.includes(r.status)) actions.push(control('abort', 'Abort', 'danger'));
  const waves = r.waves.map((w) => {
    const targets = [...(w.shared || []), ...w.tenants];
    const done = targets.filter((t) => t.status === 'updated').length;
    const failed = targets.filter((t) => t.status === 'failed').length;
    const back = targets.filter((t) => t.status === 'rolled-back').length;
    const share = targets.length ? Math.round((100 * done) / targets.length) : 0;
    const gates = w.gates ? `${fmt(w.gates.requests)} requests · ${pct(w.gates.errorRate)} 5xx · p99 ${w.gates.p99Ms === null ? '–' : `${fmt(w.gates.p99Ms)} ms`} · ${w.gates.passed ? 'passed' : `failed${w.gates.reason ? `: ${w.gates.reason}` : ''}`}` : 'no figures yet';
    return h('div', { class: 'card', testid: `wave-${w.index}` },
      h('div', {}, h('strong', {}, w.index === 0 ? 'Wave 0 · shared instances' : `Wave ${w.index} · dedicated`), ' ', badge(w.status), ' ',
        h('span', { class: 'muted', testid: 'wave-progress' }, `${done}/${targets.length} done · ${failed} failed${back ? ` · ${back} rolled back` : ''}`)),
      h('div', { class: `progress ${w.status}` }, h('div', { width: `${share}%`, testid: 'wave-bar' })),
      h('p', { class: 'muted mono', testid: 'wave-gates' }, gates),
      table(['Tenant', 'Status', 'Release', 'Error'], targets.map((t) => [
        t.tenantId ? h('a', { href: `#/tenants/${t.tenantId}` }, t.slug || t.tenantId) : `shared slot ${t.slot}`, badge(t.status), h('span', { class: 'mono' }, t.release), t.error || '']), `wave-${w.index}-targets`));
  });
  return h('div', { testid: 'rollout' },
    h('div', {}, h('strong', { class: 'mono' }, `${r.previousRelease} → ${r.version}`), ' ', h('span', { testid: 'rollout-status' }, badge(r.status)), ' ',
      h('span', { class: 'muted' }, `phase ${r.phase} · bake ${r.bakeSeconds} s · started ${time(r.createdAt)} by ${r.actor}`)),
    r.error ? errorBox(new Error(r.error)) : null,
    h('div', { class: 'actions' }, actions), out,
    waves);
}

// ---- per-tenant health (uPlot, vendored) -------------------------------------------------------
// Ranges of the tenant page: how far back, and the step that keeps a chart at 60-170 points.
const HEALTH_RANGES = { '1h': [3600e3, '1m'], '6h': [6 * 3600e3, '5m'], '24h': [24 * 3600e3, '15m'], '7d': [7 * 86400e3, '1h'], '30d': [30 * 86400e3, '6h'] };
const fmt = (n) => (n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US', { maximumFractionDigits: 2 }));
const pct = (n) => `${(100 * n).toFixed(2)} %`;

// A picker of deep links (#/…?name=value): the view is in the address, so it can be shared and reloaded.
function picker(label, name, values, current, hrefFor, testid) {
  return h('div', { class: 'picker', role: 'group', 'aria-label': label, testid },
    h('span', { class: 'muted' }, label),
    values.map((v) => h('a', { href: hrefFor(v), class: v === current ? 'active' : '', 'aria-current': v === current ? 'true' : undefined, testid: `${testid}-${v}` }, v)));
}

function lineChart(title, x, series, testid, unit) {
  const width = Math.max(320, Math.min(1100, app.clientWidth - 40));
  const colors = ['#3b5bdb', '#e67700', '#c92a2a', '#2b8a3e'];
  const box = h('div', { class: 'card', testid, 'data-points': String(x.length) }, h('h2', {}, title));
  const opts = {
    width, height: 180,
    series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: colors[i % colors.length], width: 1.5, spanGaps: false, value: (u, v) => (v === null ? '–' : `${fmt(v)}${unit}`) }))],
    axes: [{}, { size: 60, values: (u, vals) => vals.map((v) => `${fmt(v)}${unit}`) }],
    scales: { x: { time: true } },
    cursor: { drag: { x: false, y: false } },
  };
  // Drawn once the box is in the page (uPlot measures its legend).
  requestAnimationFrame(() => { if (box.isConnected) new uPlot(opts, [x, ...series.map((s) => s.values)], box); });
  return box;
}

async function renderTenantHealth(slot, tenant, params, mine) {
  const range = HEALTH_RANGES[params.get('range')] ? params.get('range') : '1h';
  const [span, step] = HEALTH_RANGES[range];
  const to = new Date();
  const from = new Date(to.getTime() - span);
  const pick = picker('Range', 'range', Object.keys(HEALTH_RANGES), range, (v) => `#/tenants/${tenant.id}?range=${v}`, 'health-range');
  slot.replaceChildren(pick, h('p', { class: 'loading', testid: 'health-loading' }, 'Loading health…'));
  let series;
  try {
    series = await api('GET', `/v1/tenants/${tenant.id}/health?from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}&step=${step}`);
  } catch (err) { if (mine === viewId) slot.replaceChildren(pick, errorBox(err)); return; }
  if (mine !== viewId) return;
  const items = series.items;
  const total = (f) => items.reduce((a, p) => a + p[f], 0);
  const requests = total('requests');
  const p99s = items.map((p) => p.p99Ms).filter((v) => v !== null);
  const stats = h('div', { class: 'grid health-stats', testid: 'health-stats', 'data-from': series.from, 'data-to': series.to, 'data-step': series.step },
    stat('Requests', fmt(requests), 'health-requests'),
    stat('4xx', fmt(total('status4xx')), 'health-4xx'),
    stat('5xx', fmt(total('status5xx')), 'health-5xx'),
    stat('Throttled (429)', fmt(total('throttled')), 'health-throttled'),
    stat('Error rate (5xx)', requests ? pct(total('status5xx') / requests) : '–', 'health-error-rate'),
    stat('Highest p99', p99s.length ? `${fmt(Math.max(...p99s))} ms` : '–', 'health-peak-p99'));
  if (!requests) {
    slot.replaceChildren(pick, stats, h('p', { class: 'muted', testid: 'health-empty' }, `No traffic through the gateway in the last ${range}.`));
    return;
  }
  const x = items.map((p) => Date.parse(p.at) / 1000);
  const perStep = `per ${series.step}`;
  slot.replaceChildren(pick, stats, h('div', { class: 'health-charts' },
    lineChart(`Requests ${perStep}`, x, [{ label: 'requests', values: items.map((p) => p.requests) }], 'chart-health-requests', ''),
    lineChart(`Errors ${perStep}`, x, [
      { label: '4xx', values: items.map((p) => p.status4xx) },
      { label: '5xx', values: items.map((p) => p.status5xx) },
      { label: '429', values: items.map((p) => p.throttled) }], 'chart-health-errors', ''),
    lineChart('Latency', x, [
      { label: 'p50', values: items.map((p) => p.p50Ms) },
      { label: 'p95', values: items.map((p) => p.p95Ms) },
      { label: 'p99', values: items.map((p) => p.p99Ms) }], 'chart-health-latency', ' ms')));
}

const WORST_BY = { errorRate: 'error rate', p99: 'p99', throttled: '429s' };
const WORST_WINDOWS = ['5m', '15m', '1h'];

// The fleet page's "worst tenants now": a table and a bar chart of the metric ranked by.
async function renderWorst(slot, params, mine) {
  const by = WORST_BY[params.get('by')] ? params.get('by') : 'errorRate';
  const win = WORST_WINDOWS.includes(params.get('window')) ? params.get('window') : '15m';
  const link = (b, w) => `#/?by=${b}&window=${w}`;
  const head = [h('h2', {}, 'Worst tenants now'),
    picker('By', 'by', Object.keys(WORST_BY), by, (b) => link(b, win), 'worst-by'),
    picker('Window', 'window', WORST_WINDOWS, win, (w) => link(by, w), 'worst-window')];
  slot.replaceChildren(...head, h('p', { class: 'loading', testid: 'worst-loading' }, 'Loading…'));
  let worst;
  try { worst = await api('GET', `/v1/health/worst?by=${by}&window=${win}&limit=10`); } catch (err) { if (mine === viewId) slot.replaceChildren(...head, errorBox(err)); return; }
  if (mine !== viewId) return;
  if (!worst.items.length) { slot.replaceChildren(...head, h('p', { class: 'muted', testid: 'worst-empty' }, `No tenant traffic in the last ${win}.`)); return; }
  const metric = (t) => (by === 'errorRate' ? 100 * t.errorRate : by === 'p99' ? t.p99Ms : t.throttled);
  const rows = worst.items.map((t) => [
    h('a', { href: `#/tenants/${t.tenantId}`, testid: `worst-${t.slug}` }, t.slug || t.tenantId), fmt(t.requests), fmt(t.status5xx), pct(t.errorRate), fmt(t.throttled), t.p99Ms === null ? '–' : `${fmt(t.p99Ms)} ms`]);
  const width = Math.max(320, Math.min(1100, app.clientWidth - 40));
  const box = h('div', { class: 'card', testid: 'chart-worst' }, h('h2', {}, `${WORST_BY[by]}, last ${win}`));
  const labels = worst.items.map((t) => t.slug || t.tenantId.slice(0, 8));
  const opts = {
    width, height: 200,
    scales: { x: { time: false, range: [-0.5, labels.length - 0.5] } },
    axes: [{ values: (u, vals) => vals.map((v) => (Number.isInteger(v) ? labels[v] || '' : '')), splits: () => labels.map((_, i) => i) }, { size: 60 }],
    series: [{}, { label: WORST_BY[by] + (by === 'errorRate' ? ' %' : by === 'p99' ? ' ms' : ''), fill: '#3b5bdb88', stroke: '#3b5bdb', paths: uPlot.paths.bars({ size: [0.6] }), points: { show: false } }],
    legend: { show: false },
  };
  slot.replaceChildren(...head, table(['Tenant', 'Requests', '5xx', 'Error rate', '429s', 'p99'], rows, 'worst-table'), h('div', { class: 'health-charts' }, box));
  requestAnimationFrame(() => { if (box.isConnected) new uPlot(opts, [labels.map((_, i) => i), worst.items.map(metric)], box); });
}

// ---- job queues --------------------------------------------------------------------------------
const age = (s) => (s === null || s === undefined ? '—' : s < 120 ? `${Math.round(s)} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`);

// A tenant's queue now and its dead-letter queue (the jobs that failed their last attempt).
async function renderTenantJobs(slot, tenantId, mine) {
  let queue, dead;
  try {
    [queue, dead] = await Promise.all([
      api('GET', `/v1/jobs/queues?tenantId=${tenantId}`),
      api('GET', `/v1/jobs?tenantId=${tenantId}&status=dead&limit=50`),
    ]);
  } catch (err) { slot.replaceChildren(errorBox(err)); return; }
  if (mine !== viewId) return;
  const q = queue.items[0];
  if (!q) { slot.replaceChildren(h('p', { class: 'muted', testid: 'no-queue' }, 'No queue (onboarding makes it, offboarding deletes it).')); return; }
  slot.replaceChildren(
    h('div', { class: 'grid health-stats', testid: 'jobs-stats' },
      stat('Depth', q.depth, 'jobs-depth'), stat('Ready', q.ready, 'jobs-ready'), stat('Leased', q.leased, 'jobs-leased'),
      stat('Oldest due', age(q.oldestAgeSeconds), 'jobs-oldest'), stat('Runs succeeded', q.succeeded, 'jobs-succeeded'),
      stat('Runs failed', q.failed, 'jobs-failed'), stat('Dead letters', q.dead, 'jobs-dead')),
    h('h3', {}, 'Dead-letter queue'),
    dead.items.length
      ? table(['Job', 'Type', 'Attempts', 'Last error', 'Finished'], dead.items.map((j) => [
        h('span', { class: 'mono' }, j.id), j.type, `${j.attempts}/${j.maxAttempts}`, j.lastError || '', time(j.finishedAt)]), 'dead-letters')
      : h('p', { class: 'muted', testid: 'no-dead-letters' }, 'Empty.'));
}

// Every tenant's queue, deepest first.
async function renderQueues() {
  const page = await api('GET', '/v1/jobs/queues');
  const total = (f) => page.items.reduce((n, q) => n + f(q), 0);
  const oldest = page.items.reduce((m, q) => Math.max(m, q.oldestAgeSeconds || 0), 0);
  show(
    h('h1', {}, 'Job queues'),
    h('p', { class: 'muted' }, 'Each tenant\'s work queue: jobs waiting or running, the oldest due job\'s wait, runs and dead letters.'),
    h('div', { class: 'grid health-stats' },
      stat('Queues', page.items.length, 'queues-count'), stat('Jobs waiting or running', total((q) => q.depth), 'queues-depth'),
      stat('Oldest due', age(page.items.length ? oldest : null), 'queues-oldest'), stat('Dead letters', total((q) => q.dead), 'queues-dead')),
    page.items.length
      ? table(['Tenant', 'Depth', 'Ready', 'Leased', 'Oldest due', 'Succeeded', 'Failed', 'Dead'], page.items.map((q) => [
        h('a', { href: `#/tenants/${encodeURIComponent(q.tenantSlug || q.tenantId)}`, testid: `queue-${q.tenantSlug || q.tenantId}` }, q.tenantSlug || q.tenantId),
        q.depth, q.ready, q.leased, age(q.oldestAgeSeconds), q.succeeded, q.failed, q.dead]), 'queues-table')
      : h('p', { class: 'muted', testid: 'no-queues' }, 'No queue yet.'));
}

// ---- webhooks ----------------------------------------------------------------------------------
async function renderWebhooks() {
  const page = await api('GET', '/v1/webhooks?limit=200');
  const out = h('div');
  const url = h('input', { id: 'hook-url', name: 'url', placeholder: 'https://hooks.example.com/tenantry', required: true, testid: 'hook-url' });
  const events = h('input', { id: 'hook-events', name: 'events', value: 'tenant.*', testid: 'hook-events' });
  const tenant = h('input', { id: 'hook-tenant', name: 'tenant', placeholder: 'all tenants', testid: 'hook-tenant' });
  const form = h('form', { class: 'card', testid: 'hook-form', onsubmit: async (ev) => {
    ev.preventDefault();
    out.replaceChildren();
    try {
      const body = { url: url.value.trim(), events: events.value.split(',').map((x) => x.trim()).filter(Boolean) };
      if (tenant.value.trim()) body.tenantId = tenant.value.trim();
      const created = await api('POST', '/v1/webhooks', body);
      await renderWebhooks();
      // The secret is shown once, here.
      app.append(h('div', { class: 'card', testid: 'hook-secret' }, h('p', {}, `Signing secret of ${created.url} (shown once):`), h('p', { class: 'mono' }, created.secret)));
    } catch (err) { out.append(errorBox(err)); }
  } },
  h('label', { for: 'hook-url' }, 'URL'), url,
  h('label', { for: 'hook-events' }, 'Events (comma-separated, * as a wildcard)'), events,
  h('label', { for: 'hook-tenant' }, 'Tenant (id or slug; empty: every tenant)'), tenant,
  h('button', { type: 'submit', testid: 'hook-create' }, 'Add endpoint'));
  show(
    h('h1', {}, 'Webhooks'),
    h('p', { class: 'muted' }, 'Endpoints that receive control-plane events, signed per Standard Webhooks.'),
    page.items.length
      ? table(['URL', 'Events', 'Tenant', 'Status', 'Created'], page.items.map((w) => [
        h('a', { href: `#/webhooks/${encodeURIComponent(w.id)}`, testid: `hook-${w.id}` }, w.url), w.events.join(', '), w.tenantId || 'all',
        badge(w.enabled ? 'enabled' : 'disabled'), time(w.createdAt)]), 'hook-table')
      : h('p', { class: 'muted', testid: 'no-hooks' }, 'No endpoint yet.'),
    h('h2', {}, 'Add an endpoint'), form, out);
}

async function renderWebhook(id) {
  const mine = viewId;
  const hook = await api('GET', `/v1/webhooks/${encodeURIComponent(id)}`);
  const slot = h('div', { testid: 'deliveries-slot' });
  const out = h('div');
  show(
    h('h1', {}, hook.url, ' ', badge(hook.enabled ? 'enabled' : 'disabled')),
    h('p', { class: 'muted mono' }, `${hook.id} · ${hook.events.join(', ')} · ${hook.tenantId || 'all tenants'}`),
    hook.disabledReason ? errorBox(new Error(hook.disabledReason)) : null,
    h('div', { class: 'actions' },
      h('button', { class: 'secondary', testid: 'hook-toggle', onclick: async () => {
        try { await api('PATCH', `/v1/webhooks/${hook.id}`, { enabled: !hook.enabled }); renderWebhook(id); } catch (err) { out.append(errorBox(err)); }
      } }, hook.enabled ? 'Disable' : 'Enable')),
    out,
    h('h2', {}, 'Deliveries'), slot);
  let page;
  try { page = await api('GET', `/v1/webhooks/${encodeURIComponent(id)}/deliveries?limit=100`); } catch (err) { slot.replaceChildren(errorBox(err)); return; }
  if (mine !== viewId) return;
  const replay = (d) => h('button', { class: 'secondary', testid: `replay-${d.id}`, onclick: async () => {
    out.replaceChildren();
    try { await api('POST', `/v1/webhooks/${hook.id}/deliveries/${d.id}/replay`); renderWebhook(id); } catch (err) { out.append(errorBox(err)); }
  } }, 'Replay');
  slot.replaceChildren(page.items.length
    ? table(['Event', 'Status', 'Attempts', 'Code', 'Duration', 'Response', 'Created', ''], page.items.map((d) => [
      h('span', { class: 'mono', testid: `delivery-${d.eventType}` }, d.eventType), badge(d.status), d.attempts,
      d.lastAttempt && d.lastAttempt.statusCode !== null ? d.lastAttempt.statusCode : (d.lastAttempt ? d.lastAttempt.error || '' : ''),
      d.lastAttempt ? `${d.lastAttempt.durationMs} ms` : '', h('span', { class: 'mono' }, d.lastAttempt && d.lastAttempt.responseExcerpt ? d.lastAttempt.responseExcerpt.slice(0, 80) : ''),
      time(d.createdAt), replay(d)]), 'deliveries')
    : h('p', { class: 'muted', testid: 'no-deliveries' }, 'None yet.'));
}

// ---- mails -------------------------------------------------------------------------------------
async function renderMails() {
  const page = await api('GET', '/v1/mails?limit=200');
  show(
    h('h1', {}, 'Mails'),
    h('p', { class: 'muted' }, 'Welcome, notice and invitation mails. Without an SMTP server they are .eml files in the data directory.'),
    page.items.length
      ? table(['To', 'Subject', 'Kind', 'Status', 'Sent', 'Where'], page.items.map((m) => [
        m.to, h('span', { testid: `mail-${m.kind}` }, m.subject), m.kind, badge(m.status), time(m.sentAt), h('span', { class: 'mono' }, m.location || m.error || '')]), 'mail-table')
      : h('p', { class: 'muted', testid: 'no-mails' }, 'No mail yet.'));
}

// ---- router ------------------------------------------------------------------------------------
async function route() {
  if (!sessionStorage.getItem(TOKEN_KEY)) { nav.hidden = true; renderLogin(); return; }
  nav.hidden = false;
  viewId++;
  const [path, qs] = (location.hash.slice(1) || '/').split('?');
  const params = new URLSearchParams(qs || '');
  for (const a of nav.querySelectorAll('a')) a.classList.toggle('active', a.getAttribute('href') === `#${path}`);
  try {
    if (path === '/' || path === '') await renderOverview(params);
    else if (path === '/tenants') await renderTenants(params);
    else if (path === '/new') renderNew();
    else if (path === '/apps') await renderApps(params);
    else if (path.startsWith('/apps/')) await renderApp(decodeURIComponent(path.slice('/apps/'.length)));
    else if (/^\/tenants\/[^/]+\/invoices$/.test(path)) await renderInvoices(decodeURIComponent(path.split('/')[2]), params);
    else if (path.startsWith('/tenants/')) await renderTenant(decodeURIComponent(path.slice('/tenants/'.length)), params);
    else if (path === '/webhooks') await renderWebhooks();
    else if (path.startsWith('/webhooks/')) await renderWebhook(decodeURIComponent(path.slice('/webhooks/'.length)));
    else if (path === '/mails') await renderMails();
    else if (path === '/queues') await renderQueues();
    else if (path === '/plans') await renderPlans(params);
    else if (path.startsWith('/invoices/')) await renderInvoice(decodeURIComponent(path.slice('/invoices/'.length)));
    else if (path === '/costs') await renderCosts(params);
    else if (path === '/policies') await renderPolicies(params);
    else if (path === '/migrations') await renderMigrations(params);
    else show(h('p', {}, 'Not found. ', h('a', { href: '#/' }, 'Overview')));
  } catch (err) {
    if (err.status !== 401) show(errorBox(err));
  }
}

document.getElementById('logout').addEventListener('click', logout);
window.addEventListener('hashchange', route);
document.addEventListener('keydown', shortcuts);
route();

// What the pages of pages.js share with this file.
function currentView() { return viewId; }
export { h, api, show, badge, time, errorBox, stat, operationView, logout, currentView };
