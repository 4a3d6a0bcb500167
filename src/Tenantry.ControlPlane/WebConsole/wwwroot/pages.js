// Console pages for money (plans, invoices, costs), access policies and fleet migrations.
// Same rules as app.js: every API value through textContent, no inline script or style. Each view's
// state is in the address (#/page?name=value), so any view can be reloaded, bookmarked and shared.

import { h, api, show, badge, time, errorBox, stat, operationView, currentView, logout } from './app.js';

// ---- shared: calls, loading, empty states, keyboard -------------------------------------------

const TOKEN_KEY = 'tenantry.token';

// Like api(), with the status and headers as well (202 + operation, ETag), extra request headers,
// and the problem details kept on the error (per-field messages of a validation problem).
export async function call(method, path, body, headers = {}) {
  try {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const res = await fetch(path, {
      method,
      credentials: 'omit',
      headers: { authorization: `Bearer ${token || ''}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    if (res.status === 401) { logout(); throw Object.assign(new Error('Your session ended; log in again.'), { status: 401 }); }
    const text = await res.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { json = { title: text.slice(0, 200) }; }
    if (!res.ok) {
      const err = new Error(problemText(res.status, json));
      err.status = res.status;
      err.problem = json;
      throw err;
    }
    return { status: res.status, body: json, headers: res.headers };
  } catch (err) {
    if (err.status === undefined) err.message = `The server did not answer (${err.message}).`;
    throw err;
  }
}

function problemText(status, problem) {
  const fields = problem && problem.errors ? Object.entries(problem.errors).map(([k, v]) => `${k}: ${[].concat(v).join(' ')}`) : [];
  return [problem?.title, fields.length ? fields.join('; ') : problem?.detail].filter(Boolean).join(' — ') || `HTTP ${status}`;
}

// A bar at the top of the window while any call of any page takes longer than a moment; long-polls
// (?wait=), which wait on purpose, do not count. The console's pages all call through fetch.
function installBusyBar() {
  const bar = document.createElement('div');
  bar.className = 'busy';
  bar.hidden = true;
  bar.dataset.testid = 'busy';
  bar.setAttribute('role', 'progressbar');
  bar.setAttribute('aria-label', 'Loading');
  document.body.prepend(bar);
  const fetchNow = window.fetch.bind(window);
  let slow = 0;
  window.fetch = async (input, init) => {
    if (/[?&]wait=/.test(String(input && input.url ? input.url : input))) return fetchNow(input, init);
    let counted = false;
    const timer = setTimeout(() => { counted = true; slow++; bar.hidden = false; }, 300);
    try { return await fetchNow(input, init); } finally {
      clearTimeout(timer);
      if (counted && --slow === 0) bar.hidden = true;
    }
  };
}
installBusyBar();

const loadingLine = (label) => h('p', { class: 'loading', role: 'status', testid: 'loading' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), ` ${label}…`);

// The one loading function of these pages: a loading line in the slot while fn runs (only when it takes
// longer than a blink, so quick answers do not flicker), an error box in its place when it fails.
// Answers fn's value, or null after an error or when the view changed meanwhile.
export async function load(slot, label, fn) {
  const mine = currentView();
  const timer = setTimeout(() => { if (mine === currentView()) slot.replaceChildren(loadingLine(label)); }, 120);
  try {
    const value = await fn();
    return mine === currentView() ? value : null;
  } catch (err) {
    if (err.status !== 401 && mine === currentView()) slot.replaceChildren(errorBox(err));
    return null;
  } finally {
    clearTimeout(timer);
  }
}

// A button that shows it is working while its action runs, and cannot be pressed twice meanwhile.
function busyButton(label, attrs, action) {
  const button = h('button', { ...attrs, onclick: async (e) => {
    e.preventDefault();
    if (button.disabled) return;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    button.replaceChildren(h('span', { class: 'spinner', 'aria-hidden': 'true' }), ` ${label}`);
    try { await action(); } finally {
      button.disabled = false;
      button.removeAttribute('aria-busy');
      button.replaceChildren(label);
    }
  } }, label);
  return button;
}

// replaceChildren would print an absent optional part (null, false) as text.
const fill = (slot, ...nodes) => slot.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined && n !== false));
const empty = (testid, text) => h('p', { class: 'muted empty', testid }, text);
const money = (n) => (n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 }));
const amount = (n, testid) => h('span', { class: Number(n) < 0 ? 'num neg' : 'num', 'data-value': n === null || n === undefined ? '' : String(n), testid }, money(n));
const percent = (n) => (n === null || n === undefined ? '–' : `${Number(n).toFixed(2)} %`);
const qty = (n) => Number(n).toLocaleString('en-US', { maximumFractionDigits: 4 });
// A quantity of a meter: byte meters in GiB/MiB when that reads better (the exact number is in the title).
const UNITS = [[2 ** 40, 'TiB'], [2 ** 30, 'GiB'], [2 ** 20, 'MiB']];
function measure(meter, n) {
  const v = Number(n);
  if (!/bytes$/.test(meter || '') || !v) return qty(v);
  const [size, unit] = UNITS.find(([b]) => v >= b) || [1, 'B'];
  return `${qty(v / size)} ${unit}`.replace(/(\.\d{2})\d+ /, '$1 ');
}
const link = (path, params) => {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== ''));
  return `#${path}${[...q].length ? `?${q}` : ''}`;
};

// A table whose rows can be walked with the keyboard: each row with a link is focusable, ↑/↓ move,
// Enter opens the row's link.
function rowTable(headers, rows, testid, rowAttrs = () => ({})) {
  const body = h('tbody', {}, rows.map((r, i) => {
    const tr = h('tr', rowAttrs(i), r.map((c) => h('td', {}, c)));
    const a = tr.querySelector('a[href]');
    if (a) {
      tr.tabIndex = 0;
      tr.addEventListener('keydown', (e) => {
        if (e.target !== tr) return;
        if (e.key === 'Enter') { e.preventDefault(); a.click(); }
        if (e.key === 'ArrowDown' && tr.nextElementSibling) { e.preventDefault(); tr.nextElementSibling.focus(); }
        if (e.key === 'ArrowUp' && tr.previousElementSibling) { e.preventDefault(); tr.previousElementSibling.focus(); }
      });
    }
    return tr;
  }));
  return h('table', { testid, class: 'rows' }, h('thead', {}, h('tr', {}, headers.map((x) => h('th', {}, x)))), body);
}

// "/" focuses the page's search or first field; "g" then a letter goes to a page.
const GO = { o: '#/', t: '#/tenants', a: '#/apps', p: '#/plans', c: '#/costs', y: '#/policies', m: '#/migrations', w: '#/webhooks' };
let pendingG = 0;
export function shortcuts(e) {
  const t = e.target;
  if (e.ctrlKey || e.metaKey || e.altKey || (t && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName)))) return;
  if (document.querySelector('dialog[open]')) return;
  if (e.key === '/') {
    const field = document.querySelector('#app [data-shortcut=search], #app input:not([type=hidden]):not([disabled]), #app select, #app textarea');
    if (field) { e.preventDefault(); field.focus(); }
  } else if (e.key === 'g') {
    pendingG = Date.now();
  } else if (pendingG && Date.now() - pendingG < 1500 && GO[e.key]) {
    pendingG = 0;
    location.hash = GO[e.key];
  } else {
    pendingG = 0;
  }
}

// A confirmation with the consequence spelled out; true when the operator confirms.
function confirmAction(text, okLabel, cls = 'danger') {
  return new Promise((resolve) => {
    let answer = false;
    const ok = h('button', { class: cls, testid: 'confirm-ok', onclick: () => { answer = true; dialog.close(); } }, okLabel);
    const dialog = h('dialog', { testid: 'confirm' }, h('p', {}, text),
      h('div', { class: 'actions' }, ok, h('button', { class: 'secondary', testid: 'confirm-cancel', onclick: () => dialog.close() }, 'Cancel')));
    document.body.append(dialog);
    dialog.addEventListener('close', () => { dialog.remove(); resolve(answer); });
    dialog.showModal();
    ok.focus();
  });
}

// Puts a validation problem's messages next to the fields they name (the first part of the path),
// and the whole problem in the form's error box.
function showProblem(form, out, err) {
  for (const old of form.querySelectorAll('.field-error')) old.remove();
  for (const f of form.querySelectorAll('[aria-invalid]')) f.removeAttribute('aria-invalid');
  out.replaceChildren(errorBox(err));
  const errors = err.problem && err.problem.errors;
  if (!errors) return;
  for (const [path, messages] of Object.entries(errors)) {
    const name = path.replace(/^\$\./, '').split(/[.[]/)[0];
    const field = form.querySelector(`[name="${CSS.escape(name)}"]`);
    if (!field) continue;
    field.setAttribute('aria-invalid', 'true');
    field.after(h('div', { class: 'field-error', testid: `field-error-${name}` }, `${path}: ${[].concat(messages).join(' ')}`));
  }
}

const monthOf = (d) => d.toISOString().slice(0, 7);
const validPeriod = (p) => /^\d{4}-(0[1-9]|1[0-2])$/.test(p || '');
function shiftMonth(period, by) {
  const [y, m] = period.split('-').map(Number);
  return monthOf(new Date(Date.UTC(y, m - 1 + by, 1)));
}

// Previous / month field / next: each is a deep link of the view with another period.
function periodPicker(period, hrefFor, testid) {
  const input = h('input', { type: 'month', value: period, 'aria-label': 'Period', testid: `${testid}-input` });
  input.addEventListener('change', () => { if (validPeriod(input.value)) location.hash = hrefFor(input.value); });
  return h('div', { class: 'picker', role: 'group', 'aria-label': 'Billing period', testid },
    h('a', { href: hrefFor(shiftMonth(period, -1)), testid: `${testid}-prev`, 'aria-label': 'Previous month' }, '← previous'),
    input,
    h('a', { href: hrefFor(shiftMonth(period, 1)), testid: `${testid}-next`, 'aria-label': 'Next month' }, 'next →'),
    period !== monthOf(new Date()) ? h('a', { href: hrefFor(monthOf(new Date())), testid: `${testid}-now` }, 'this month') : null);
}

const json = (value) => h('pre', { class: 'json' }, JSON.stringify(value, null, 2));

// ---- plans -------------------------------------------------------------------------------------

function priceText(p) {
  const inc = p.included ? `${measure(p.meter, p.included)} included, then ` : '';
  if (p.model === 'per_unit') return `${p.meter}: ${inc}${p.unitPrice} per unit`;
  if (p.model === 'package') return `${p.meter}: ${inc}${p.packagePrice} per ${measure(p.meter, p.packageSize)}`;
  if (p.model === 'graduated') return `${p.meter}: ${inc}${(p.tiers || []).map((t) => `${t.unitPrice}${t.upTo === null ? ' beyond' : ` up to ${qty(t.upTo)}`}${t.flatPrice ? ` +${t.flatPrice}` : ''}`).join(', ')}`;
  return `${p.meter}: ${p.model}`;
}

const list = (items, testid) => (items.length ? h('ul', { class: 'plain', testid }, items.map((x) => h('li', {}, x))) : h('span', { class: 'muted' }, 'none'));

export async function renderPlans(params) {
  const slot = h('div', { testid: 'plans-slot' });
  const formSlot = h('div', { testid: 'plan-form-slot' });
  show(h('h1', {}, 'Plans'),
    h('p', { class: 'muted' }, 'The catalog: what each tier pays (base price per month, metered prices) and what it is entitled to (quotas, rate limits, job workers).'),
    h('div', { class: 'actions' }, h('a', { class: 'button', href: '#/plans?new=1', testid: 'plan-new' }, 'New plan')),
    slot, formSlot);
  const plans = await load(slot, 'Loading plans', () => api('GET', '/v1/plans'));
  if (!plans) return;
  plans.sort((a, b) => a.basePrice - b.basePrice || a.id.localeCompare(b.id));
  slot.replaceChildren(plans.length
    ? rowTable(['Plan', 'Tier', 'Isolation', 'Base price', 'Metered prices', 'Quotas', 'Rate limits', 'Jobs', 'Heavy lifter above', ''], plans.map((p) => [
      h('a', { href: `#/plans?edit=${encodeURIComponent(p.id)}`, testid: `plan-${p.id}` }, p.name), p.tier, p.isolation,
      h('span', { testid: `plan-price-${p.id}` }, `${p.currency} ${money(p.basePrice)}`),
      list(p.prices.map(priceText), `plan-prices-${p.id}`),
      list(p.quotas.map((q) => `${q.meter} ≤ ${measure(q.meter, q.limit)} (${q.kind})`), `plan-quotas-${p.id}`),
      list(p.rateLimits.map((r) => `${r.name}: ${r.permitsPerSecond}/s, burst ${r.burst}${r.dailyQuota ? `, ${qty(r.dailyQuota)}/day` : ''}`), `plan-limits-${p.id}`),
      `weight ${p.jobs.weight} · ${p.jobs.concurrency} at once · ≤ ${qty(p.jobs.maxDepth)} queued`,
      `${Math.round(p.heavyLifterShare * 100)} % of cost`,
      p.archived ? badge('archived') : '']), 'plan-table', (i) => ({ testid: `plan-row-${plans[i].id}` }))
    : empty('no-plans', 'No plan in the catalog.'));
  const edit = params.get('edit');
  if (edit) {
    const plan = plans.find((p) => p.id === edit);
    formSlot.replaceChildren(plan ? planForm(plan) : errorBox(new Error(`No plan '${edit}'.`)));
  } else if (params.get('new')) {
    formSlot.replaceChildren(planForm(null));
  }
  const first = formSlot.querySelector('input:not([disabled])');
  if (first) first.focus();
}

function planForm(plan) {
  const out = h('div', { testid: 'plan-form-result' });
  const field = (label, input) => h('label', {}, label, input);
  const text = (name, value, attrs = {}) => h('input', { name, value: value ?? '', testid: `plan-${name}`, ...attrs });
  const area = (name, value) => h('textarea', { name, rows: 6, spellcheck: 'false', testid: `plan-${name}` }, JSON.stringify(value, null, 2));
  const isolation = h('select', { name: 'isolation', testid: 'plan-isolation' }, ['pool', 'bridge', 'silo'].map((i) => h('option', { value: i, selected: plan ? plan.isolation === i : i === 'pool' }, i)));
  const archived = h('input', { type: 'checkbox', name: 'archived', testid: 'plan-archived', checked: plan ? plan.archived : false });
  const inputs = {
    id: text('id', plan?.id, { disabled: !!plan, required: true, placeholder: 'lowercase-id' }),
    name: text('name', plan?.name, { required: true }),
    tier: text('tier', plan?.tier, { required: true, placeholder: 'basic' }),
    currency: text('currency', plan?.currency ?? 'USD', { maxlength: 3 }),
    basePrice: text('basePrice', plan?.basePrice ?? 0, { inputmode: 'decimal' }),
    heavyLifterShare: text('heavyLifterShare', plan?.heavyLifterShare ?? 0.5, { inputmode: 'decimal' }),
    prices: area('prices', plan?.prices ?? []),
    quotas: area('quotas', plan?.quotas ?? []),
    rateLimits: area('rateLimits', plan?.rateLimits ?? []),
    jobs: area('jobs', plan?.jobs ?? { weight: 1, concurrency: 10, maxDepth: 100000 }),
  };
  const form = h('form', { class: 'stack card wide', testid: 'plan-form', novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    const body = { name: inputs.name.value.trim(), tier: inputs.tier.value.trim(), isolation: isolation.value, currency: inputs.currency.value.trim(), archived: archived.checked };
    if (!plan) body.id = inputs.id.value.trim();
    // Numbers and lists are checked here first, so a typo names its field before anything is sent.
    const local = {};
    for (const k of ['basePrice', 'heavyLifterShare']) {
      const v = inputs[k].value.trim();
      if (v === '' || !Number.isFinite(Number(v))) local[k] = [`${k} is a number.`]; else body[k] = Number(v);
    }
    for (const k of ['prices', 'quotas', 'rateLimits', 'jobs']) {
      try { body[k] = JSON.parse(inputs[k].value); } catch (err) { local[k] = [`${k} is not JSON: ${err.message}`]; }
    }
    if (Object.keys(local).length) {
      const err = new Error(`Please correct the form — ${Object.entries(local).map(([k, v]) => `${k}: ${v.join(' ')}`).join('; ')}`);
      err.problem = { errors: local };
      showProblem(form, out, err);
      return;
    }
    try {
      const res = plan
        ? await call('PATCH', `/v1/plans/${encodeURIComponent(plan.id)}`, body, { 'if-match': `"${plan.version}"` })
        : await call('POST', '/v1/plans', body);
      location.hash = `#/plans?edit=${encodeURIComponent(res.body.id)}&saved=${res.body.version}`;
    } catch (err) { showProblem(form, out, err); }
  } },
  h('h2', {}, plan ? `Edit ${plan.name} (version ${plan.version})` : 'New plan'),
  new URLSearchParams(location.hash.split('?')[1] || '').get('saved') && plan ? h('p', { class: 'ok', role: 'status', testid: 'plan-saved' }, `Saved: version ${plan.version}.`) : null,
  h('div', { class: 'cols' },
    field('Id', inputs.id), field('Name', inputs.name), field('Tier', inputs.tier), field('Isolation', isolation),
    field('Currency', inputs.currency), field('Base price per month', inputs.basePrice),
    field('Heavy lifter above (share of total cost, 0-1)', inputs.heavyLifterShare), h('label', { class: 'check' }, archived, ' Archived (takes no new tenants)')),
  field('Metered prices (JSON: [{meter, model: per_unit|graduated|package, included, unitPrice, tiers, packageSize, packagePrice}])', inputs.prices),
  field('Quotas (JSON: [{meter, limit, kind: hard|soft}])', inputs.quotas),
  field('Rate limits (JSON: [{name, permitsPerSecond, burst, dailyQuota}])', inputs.rateLimits),
  field('Job workers (JSON: {weight, concurrency, maxDepth})', inputs.jobs),
  h('div', { class: 'actions' }, h('button', { type: 'submit', testid: 'plan-save' }, plan ? 'Save changes' : 'Create plan'), h('a', { href: '#/plans', class: 'button secondary' }, 'Close')),
  out);
  return form;
}

// ---- invoices ----------------------------------------------------------------------------------

function linesTable(lines, testid) {
  return lines.length
    ? rowTable(['Kind', 'Description', 'Quantity', 'Included', 'Billable', 'Amount', 'From', 'To'], lines.map((l) => [
      h('span', { class: `badge line-${l.kind}`, testid: `line-kind-${l.kind}` }, l.kind), l.description, measure(l.meter, l.quantity), measure(l.meter, l.included), measure(l.meter, l.billable),
      amount(l.amount, 'line-amount'), time(l.from), time(l.to)]), testid, (i) => ({ class: lines[i].kind === 'proration' ? 'proration' : '' }))
    : empty(`${testid}-empty`, 'No line.');
}

export async function renderInvoices(id, params) {
  const now = monthOf(new Date());
  const period = validPeriod(params.get('period')) ? params.get('period') : now;
  const head = h('div');
  const previewSlot = h('div', { testid: 'preview-slot' });
  const listSlot = h('div', { testid: 'invoices-slot' });
  const out = h('div');
  show(head, h('h2', {}, 'Invoices'), listSlot, h('h2', {}, `Preview of ${period}`),
    periodPicker(period, (p) => link(`/tenants/${encodeURIComponent(id)}/invoices`, { period: p }), 'invoice-period'), out, previewSlot);
  const tenant = await load(head, 'Loading tenant', () => api('GET', `/v1/tenants/${encodeURIComponent(id)}`));
  if (!tenant) return;
  head.replaceChildren(h('h1', {}, `Invoices of ${tenant.name}`),
    h('p', { class: 'muted' }, h('a', { href: `#/tenants/${tenant.id}`, testid: 'back-to-tenant' }, tenant.slug), ` · ${tenant.tier} · `,
      h('a', { href: link('/costs', { period }) }, `costs of ${period}`)));
  const [invoices, preview] = await Promise.all([
    load(listSlot, 'Loading invoices', () => api('GET', `/v1/tenants/${tenant.id}/invoices`)),
    load(previewSlot, 'Computing the preview', () => api('GET', `/v1/tenants/${tenant.id}/invoices/preview?period=${period}`)),
  ]);
  if (invoices) {
    const items = [...invoices.items].reverse();
    listSlot.replaceChildren(items.length
      ? rowTable(['Invoice', 'Period', 'Status', 'Total', 'Lines', 'Updated'], items.map((i) => [
        h('a', { href: `#/invoices/${encodeURIComponent(i.id)}`, testid: `invoice-${i.period}-${i.status}` }, i.id), i.period, badge(i.status),
        h('span', {}, `${i.currency} `, amount(i.total, `invoice-total-${i.id}`)), i.lines.length, time(i.updatedAt)]), 'invoice-table')
      : empty('no-invoices', 'No invoice yet: create a draft from the preview below.'));
  }
  if (preview) {
    const open = invoices && invoices.items.find((i) => i.period === period && i.status !== 'void');
    const draft = busyButton(open && open.status === 'draft' ? 'Recompute the draft' : 'Create a draft invoice', { class: 'secondary', testid: 'invoice-draft' }, async () => {
      out.replaceChildren();
      try {
        const res = await call('POST', `/v1/tenants/${tenant.id}/invoices`, { period });
        location.hash = `#/invoices/${encodeURIComponent(res.body.id)}`;
      } catch (err) { out.append(errorBox(err)); }
    });
    previewSlot.replaceChildren(
      h('div', { class: 'card' },
        h('div', {}, 'Total so far: ', h('strong', {}, `${preview.currency} `, amount(preview.total, 'preview-total')), ' ',
          h('span', { class: 'muted' }, 'computed from the stored usage now; nothing is stored.'),
          preview.lines.some((l) => l.kind === 'proration') ? h('span', { class: 'badge proration', testid: 'has-proration' }, 'prorated') : null),
        open && open.status === 'finalized' ? h('p', { class: 'muted' }, `The period's invoice is finalized (${open.id}).`) : h('div', { class: 'actions' }, draft)),
      linesTable(preview.lines, 'preview-lines'));
  }
}

export async function renderInvoice(id) {
  const slot = h('div', { testid: 'invoice-slot' });
  show(slot);
  const invoice = await load(slot, 'Loading invoice', () => api('GET', `/v1/invoices/${encodeURIComponent(id)}`));
  if (!invoice) return;
  const out = h('div');
  const transition = (action, label, text, cls) => busyButton(label, { class: cls, testid: `invoice-${action}` }, async () => {
    if (!(await confirmAction(text, label, cls))) return;
    out.replaceChildren();
    try { await call('POST', `/v1/invoices/${encodeURIComponent(invoice.id)}/${action}`); renderInvoice(id); } catch (err) { out.append(errorBox(err)); }
  });
  const actions = [];
  if (invoice.status === 'draft') {
    actions.push(transition('finalize', 'Finalize', `Finalizing recomputes invoice ${invoice.id} a last time and freezes it: its period (${invoice.period}) then takes no more usage for the tenant. This cannot be undone (only voided).`, ''));
  }
  if (invoice.status !== 'void') {
    actions.push(transition('void', 'Void', `Voiding marks invoice ${invoice.id} void; it stays on record and a new draft can be issued for ${invoice.period}.`, 'danger'));
  }
  // The CSV needs the token, so it is fetched and handed to the browser as a file.
  const csv = busyButton('Download CSV', { class: 'secondary', testid: 'invoice-csv' }, async () => {
    out.replaceChildren();
    try {
      const res = await fetch(`/v1/invoices/${encodeURIComponent(invoice.id)}?format=csv`, { credentials: 'omit', headers: { authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) || ''}` } });
      if (!res.ok) throw new Error(problemText(res.status, await res.json().catch(() => null)));
      const url = URL.createObjectURL(await res.blob());
      const a = h('a', { href: url, download: `${invoice.id}.csv`, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (err) { out.append(errorBox(err)); }
  });
  actions.push(csv);
  const base = invoice.lines.filter((l) => l.kind !== 'usage').reduce((a, l) => a + Number(l.amount), 0);
  const usage = invoice.lines.filter((l) => l.kind === 'usage').reduce((a, l) => a + Number(l.amount), 0);
  slot.replaceChildren(
    h('h1', {}, `Invoice ${invoice.period} `, h('span', { testid: 'invoice-status' }, badge(invoice.status))),
    h('p', { class: 'muted mono' }, `${invoice.id} · `, h('a', { href: `#/tenants/${invoice.tenantId}/invoices?period=${invoice.period}`, testid: 'invoice-tenant' }, 'the tenant\'s invoices'),
      ` · created ${time(invoice.createdAt)} · updated ${time(invoice.updatedAt)}`),
    h('div', { class: 'grid' },
      stat('Total', h('span', {}, `${invoice.currency} `, amount(invoice.total, 'invoice-total')), 'stat-invoice-total'),
      stat('Plan (base and proration)', money(base), 'stat-invoice-base'),
      stat('Usage', money(usage), 'stat-invoice-usage')),
    h('div', { class: 'actions' }, actions), out,
    h('h2', {}, 'Lines'), linesTable(invoice.lines, 'invoice-lines'));
}

// A tenant page's links to its money and access views.
export function tenantLinks(tenant) {
  return h('p', { class: 'links', testid: 'tenant-links' },
    h('a', { href: `#/tenants/${tenant.id}/invoices`, testid: 'tenant-invoices' }, 'Invoices'), ' · ',
    h('a', { href: link('/policies', { tenant: tenant.slug }), testid: 'tenant-policies' }, 'Effective policies'));
}

// ---- costs and margins -------------------------------------------------------------------------

const CHART_MONTHS = 6;

export async function renderCosts(params) {
  const period = validPeriod(params.get('period')) ? params.get('period') : monthOf(new Date());
  const slot = h('div', { testid: 'costs-slot' });
  const chartSlot = h('div', { testid: 'costs-chart-slot' });
  const linesSlot = h('div', { testid: 'cost-lines-slot' });
  show(h('h1', {}, `Costs and margins, ${period}`),
    periodPicker(period, (p) => link('/costs', { period: p }), 'costs-period'),
    slot, h('h2', {}, `Revenue and cost per tier, last ${CHART_MONTHS} months`), chartSlot,
    h('h2', {}, 'Cost lines'), linesSlot);
  const report = await load(slot, 'Computing the margins', () => api('GET', `/v1/costs?period=${period}`));
  if (report) {
    const heavy = report.items.filter((t) => t.heavyLifter);
    slot.replaceChildren(
      h('div', { class: 'grid', testid: 'cost-totals' },
        stat('Revenue', amount(report.totalRevenue, 'total-revenue'), 'stat-revenue'),
        stat('Cost', amount(report.totalCost, 'total-cost'), 'stat-cost'),
        stat('Margin', amount(report.margin, 'total-margin'), 'stat-margin'),
        stat('Margin %', percent(report.marginPercent), 'stat-margin-percent'),
        stat('Heavy lifters', heavy.length, 'stat-heavy')),
      h('p', { class: 'muted' }, `Direct ${money(report.directCost)} · shared ${money(report.sharedCost)} (split by ${report.meter}) · unallocated ${money(report.unallocatedCost)}. Revenue: finalized invoices, else the invoice as it stands.`),
      h('h2', {}, 'Per tier'),
      report.tiers.length
        ? rowTable(['Tier', 'Tenants', 'Revenue', 'Cost', 'Margin', 'Margin %'], report.tiers.map((t) => [
          h('span', { testid: `tier-${t.tier}` }, t.tier), t.tenants, amount(t.revenue), amount(t.cost), amount(t.margin, `tier-margin-${t.tier}`), percent(t.marginPercent)]), 'tier-costs')
        : empty('no-tiers', 'No tier had tenants in this period.'),
      h('h2', {}, 'Per tenant'),
      report.items.length
        ? rowTable(['Tenant', 'Tier', 'Plan', 'Revenue', 'Direct', 'Shared', 'Cost', 'Margin', 'Margin %', `Usage (${report.meter})`, 'Cost share', ''], report.items.map((t) => [
          h('a', { href: `#/tenants/${t.tenantId}/invoices?period=${period}`, testid: `cost-tenant-${t.slug}` }, t.slug), t.tier, t.planId,
          amount(t.revenue, 'revenue'), amount(t.directCost), amount(t.sharedCost), amount(t.cost, 'cost'), amount(t.margin, 'margin'), percent(t.marginPercent),
          qty(t.usage), `${(100 * t.costShare).toFixed(1)} %`,
          t.heavyLifter ? h('span', { class: 'badge heavy', testid: `heavy-${t.slug}`, title: 'Its share of the total cost is above its plan\'s heavy-lifter share.' }, 'heavy lifter') : '']),
        'tenant-costs', (i) => ({ class: report.items[i].heavyLifter ? 'heavy' : '', 'data-slug': report.items[i].slug }))
        : empty('no-cost-tenants', 'No tenant in this period.'));
  }
  renderCostLines(linesSlot, period, params.get('source') || '');
  renderCostChart(chartSlot, period);
}

// A line's source: a tag (the price book's daily lines carry source=price-book), else recorded by hand.
const sourceOf = (l) => (l.tags && l.tags.source) || 'manual';
const SHOWN_LINES = 500;

async function renderCostLines(slot, period, source) {
  const lines = await load(slot, 'Loading cost lines', () => api('GET', `/v1/costs/lines?period=${period}`));
  if (!lines) return;
  const out = h('div');
  const resource = h('input', { name: 'resource', required: true, placeholder: 'e.g. postgres-eu-1', testid: 'cost-resource' });
  const value = h('input', { name: 'amount', required: true, inputmode: 'decimal', placeholder: '0.00', testid: 'cost-amount' });
  const tenant = h('input', { name: 'tags', required: true, placeholder: 'tenant slug, or shared', testid: 'cost-tenant' });
  const form = h('form', { class: 'filters card', testid: 'cost-form', novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    const n = Number(value.value);
    if (value.value.trim() === '' || !Number.isFinite(n)) { showProblem(form, out, Object.assign(new Error('amount is a number.'), { problem: { errors: { amount: ['amount is a number.'] } } })); return; }
    try {
      // The key makes a double submit record the line once.
      await call('POST', '/v1/costs/lines', { resource: resource.value.trim(), amount: n, period, tags: { tenant: tenant.value.trim() } }, { 'idempotency-key': crypto.randomUUID() });
      location.hash = link('/costs', { period, recorded: Date.now().toString(36) });
    } catch (err) { showProblem(form, out, err); }
  } },
  h('label', {}, 'Resource', resource), h('label', {}, 'Amount', value), h('label', {}, 'Tenant', tenant),
  h('button', { type: 'submit', testid: 'cost-add' }, `Record for ${period}`));
  const bySource = new Map();
  for (const l of lines.items) bySource.set(sourceOf(l), (bySource.get(sourceOf(l)) || 0) + Number(l.amount));
  const shown = lines.items.filter((l) => !source || sourceOf(l) === source);
  fill(slot,
    bySource.size > 1 ? picker('Source', [['', 'all'], ...[...bySource.keys()].sort().map((k) => [k, `${k} (${money(bySource.get(k))})`])], source, (v) => link('/costs', { period, source: v }), 'cost-source') : null,
    shown.length
      ? rowTable(['Resource', 'Amount', 'Tenant', 'Source', 'Tags', 'Recorded'], shown.slice(0, SHOWN_LINES).map((l) => [
        l.resource, amount(l.amount), l.shared ? 'shared' : h('a', { href: `#/tenants/${l.tenantId}` }, l.tags.tenant || l.tenantId), sourceOf(l),
        Object.entries(l.tags).filter(([k]) => k !== 'source').map(([k, v]) => `${k}=${v}`).join(', '), time(l.createdAt)]), 'cost-lines')
      : empty('no-cost-lines', `No cost recorded for ${period}.`),
    shown.length > SHOWN_LINES ? h('p', { class: 'muted', testid: 'cost-lines-more' }, `The first ${SHOWN_LINES} of ${shown.length} lines; pick a source to narrow them.`) : null,
    h('h2', {}, 'Record a cost'), form, out);
}

// Links that each show the view with another value of one parameter; values are [value, label].
function picker(label, values, current, hrefFor, testid) {
  return h('div', { class: 'picker', role: 'group', 'aria-label': label, testid }, h('span', { class: 'muted' }, label),
    values.map(([v, text]) => h('a', { href: hrefFor(v), class: v === current ? 'active' : '', 'aria-current': v === current ? 'true' : undefined, testid: `${testid}-${v || 'all'}` }, text)));
}

// Revenue against cost per tier over the months up to the period: one report per month.
async function renderCostChart(slot, period) {
  const months = Array.from({ length: CHART_MONTHS }, (_, i) => shiftMonth(period, i - CHART_MONTHS + 1));
  const reports = await load(slot, 'Loading the months', () => Promise.all(months.map((m) => api('GET', `/v1/costs?period=${m}`))));
  if (!reports) return;
  const tiers = [...new Set(reports.flatMap((r) => r.tiers.map((t) => t.tier)))].sort();
  if (!tiers.length) { slot.replaceChildren(empty('no-cost-history', 'No revenue or cost in these months.')); return; }
  const colors = ['#3b5bdb', '#2b8a3e', '#e67700', '#c92a2a', '#7048e8', '#0c8599'];
  const series = [];
  tiers.forEach((tier, i) => {
    const of = (r, f) => { const t = r.tiers.find((x) => x.tier === tier); return t ? Number(t[f]) : 0; };
    series.push({ label: `${tier} revenue`, stroke: colors[i % colors.length], width: 2, values: reports.map((r) => of(r, 'revenue')) });
    series.push({ label: `${tier} cost`, stroke: colors[i % colors.length], width: 2, dash: [6, 4], values: reports.map((r) => of(r, 'cost')) });
  });
  const width = Math.max(320, Math.min(1100, document.getElementById('app').clientWidth - 40));
  const box = h('div', { class: 'card', testid: 'chart-costs', 'data-months': months.join(',') });
  const opts = {
    width, height: 220,
    scales: { x: { time: false } },
    axes: [{ values: (u, vals) => vals.map((v) => (Number.isInteger(v) ? months[v] || '' : '')), splits: () => months.map((_, i) => i) }, { size: 70, values: (u, vals) => vals.map(money) }],
    series: [{ label: 'month', value: (u, v) => (v === null ? '–' : months[v] || '') },
      ...series.map((s) => ({ label: s.label, stroke: s.stroke, width: s.width, dash: s.dash, value: (u, v) => (v === null ? '–' : money(v)) }))],
    cursor: { drag: { x: false, y: false } },
  };
  slot.replaceChildren(h('div', { class: 'health-charts' }, box));
  requestAnimationFrame(() => { if (box.isConnected) new uPlot(opts, [months.map((_, i) => i), ...series.map((s) => s.values)], box); });
}

// ---- policies ----------------------------------------------------------------------------------

// The role policies a tenant principal acts with (the server's PlatformPolicies.RolePolicy): the
// simulator starts from them; the operator may edit the identity document before running it.
const ROLE_POLICIES = {
  admin: { Version: '2012-10-17', Statement: [{ Sid: 'AdminStorage', Effect: 'Allow', Action: 'storage:*', Resource: 'trn:tenantry:storage::*' }] },
  member: { Version: '2012-10-17', Statement: [{ Sid: 'MemberStorage', Effect: 'Allow', Action: ['storage:GetObject', 'storage:ListObjects', 'storage:PutObject'], Resource: 'trn:tenantry:storage::*' }] },
};
const ACTIONS = ['storage:GetObject', 'storage:PutObject', 'storage:DeleteObject', 'storage:ListObjects'];

const statementsOf = (doc) => (doc && doc.Statement ? [].concat(doc.Statement) : []);
const DECISION_CLASS = { Allow: 'succeeded', ExplicitDeny: 'failed', ImplicitDeny: 'disabled' };
const decisionBadge = (d, testid) => h('span', { class: `badge ${DECISION_CLASS[d] || ''}`, testid }, d);

// The condition keys the platform sets for a tenant principal's requests.
function principalContext(tenant, role, name) {
  if (!tenant) return {};
  return {
    'tenantry:TenantId': tenant.id, 'tenantry:TenantSlug': tenant.slug, 'tenantry:Tier': tenant.tier, 'tenantry:Role': role,
    'tenantry:PrincipalType': 'user', 'aws:username': name, 'aws:PrincipalTag/TenantId': tenant.id, 'aws:PrincipalTag/Tier': tenant.tier,
  };
}

export async function renderPolicies(params) {
  const slug = (params.get('tenant') || '').trim();
  const role = ROLE_POLICIES[params.get('role')] ? params.get('role') : 'member';
  const action = params.get('action') || '';
  const resource = params.get('resource') || '';
  const simSlot = h('div', { testid: 'simulation-slot' });
  const tenantSlot = h('div', { testid: 'tenant-policies-slot' });
  const guardSlot = h('div', { testid: 'guardrails-slot' });
  const templSlot = h('div', { testid: 'templates-slot' });

  const tenantIn = h('input', { name: 'tenant', value: slug, placeholder: 'slug or id (empty: no session policy)', 'data-shortcut': 'search', testid: 'sim-tenant' });
  const roleSel = h('select', { name: 'role', testid: 'sim-role' }, Object.keys(ROLE_POLICIES).map((r) => h('option', { value: r, selected: r === role }, r)));
  const actionIn = h('input', { name: 'action', value: action, list: 'policy-actions', required: true, placeholder: 'storage:GetObject', testid: 'sim-action' });
  const resourceIn = h('input', { name: 'resource', value: resource, required: true, placeholder: 'trn:tenantry:storage::acme:tenants/acme/file.txt', testid: 'sim-resource' });
  const form = h('form', { class: 'stack card wide', testid: 'sim-form', onsubmit: (e) => {
    e.preventDefault();
    location.hash = link('/policies', { tenant: tenantIn.value.trim(), role: roleSel.value, action: actionIn.value.trim(), resource: resourceIn.value.trim() });
  } },
  h('datalist', { id: 'policy-actions' }, ACTIONS.map((a) => h('option', { value: a }))),
  h('div', { class: 'cols' }, h('label', {}, 'Tenant (principal\'s tenant)', tenantIn), h('label', {}, 'Role', roleSel),
    h('label', {}, 'Action', actionIn), h('label', {}, 'Resource', resourceIn)),
  h('button', { type: 'submit', testid: 'sim-run' }, 'Simulate'));
  // Typing a tenant fills in a resource of its own, the usual first question.
  tenantIn.addEventListener('change', () => {
    const s = tenantIn.value.trim();
    if (s && !resourceIn.value) resourceIn.value = `trn:tenantry:storage::${s}:tenants/${s}/`;
  });

  show(h('h1', {}, 'Access policies'),
    h('p', { class: 'muted' }, 'A tenant principal may act when its role policy, its tier\'s session policy and the guardrails (when there are any) all allow it and no statement denies it (IAM semantics).'),
    h('h2', {}, 'Simulator'), form, simSlot,
    h('h2', {}, slug ? `Effective policies of ${slug}` : 'Effective policies of a tenant'), tenantSlot,
    h('h2', {}, 'Guardrails'), guardSlot,
    h('h2', {}, 'Session policy templates per tier'), templSlot);

  const guardrails = load(guardSlot, 'Loading guardrails', () => api('GET', '/v1/guardrails'));
  renderTemplates(templSlot);
  guardrails.then((g) => { if (g) renderGuardrails(guardSlot, g); });

  let tenant = null, session = null;
  if (slug) {
    const found = await load(tenantSlot, 'Loading the tenant\'s policies', async () => {
      const t = await api('GET', `/v1/tenants/${encodeURIComponent(slug)}`);
      return [t, await api('GET', `/v1/tenants/${encodeURIComponent(slug)}/policies`)];
    });
    if (!found) { simSlot.replaceChildren(); return; }
    [tenant, session] = found;
  } else {
    tenantSlot.replaceChildren(empty('no-tenant', 'Name a tenant in the simulator to see the policies its principals act with.'));
  }
  const g = await guardrails;
  if (g === null) return;
  const docs = [
    { kind: 'identity', name: `role ${role}`, document: ROLE_POLICIES[role] },
    ...(session ? [{ kind: 'session', name: `session (${tenant.tier} template)`, document: session }] : []),
    ...g.items.map((x) => ({ kind: 'guardrail', name: `guardrail ${x.name}`, document: x.document })),
  ];
  if (!action || !resource) {
    simSlot.replaceChildren(empty('no-simulation', 'Give an action and a resource to see the decision.'));
    if (tenant) tenantSlot.replaceChildren(policyDocs(docs, null));
    return;
  }
  const context = principalContext(tenant, role, tenant ? `${role}@${tenant.slug}` : 'operator');
  const request = { action, resource, context };
  const policies = { identity: [ROLE_POLICIES[role]], session: session ? [session] : null, guardrail: g.items.length ? g.items.map((x) => x.document) : null };
  // The whole set, then each statement on its own: what that statement alone decides for the request.
  const result = await load(simSlot, 'Evaluating', async () => {
    const whole = await api('POST', '/v1/policies/simulate', { policies, request });
    const each = await Promise.all(docs.map((d) => Promise.all(statementsOf(d.document).map((s) =>
      api('POST', '/v1/policies/simulate', { policies: { identity: [{ Version: d.document.Version || '2012-10-17', Statement: [s] }] }, request }).then((r) => r.decision)))));
    return { whole, each };
  });
  if (!result) return;
  const { whole, each } = result;
  simSlot.replaceChildren(h('div', { class: 'card', testid: 'sim-result', 'data-decision': whole.decision },
    h('div', {}, h('strong', {}, 'Decision: '), decisionBadge(whole.decision, 'sim-decision'),
      whole.missingAllow ? h('span', { class: 'muted', testid: 'sim-missing' }, ` — no ${whole.missingAllow} policy allows it`) : null),
    h('p', { class: 'muted mono' }, `${action} on ${resource}${tenant ? `, as ${role} of ${tenant.slug}` : ''}`),
    whole.matched.length
      ? rowTable(['Policy', 'Statement', 'Effect'], whole.matched.map((m) => [m.policy, m.sid || '(no Sid)', decisionBadge(m.effect === 'Deny' ? 'ExplicitDeny' : m.effect)]), 'sim-matched')
      : empty('sim-nothing-matched', 'No statement matched.')));
  if (tenant) tenantSlot.replaceChildren(policyDocs(docs, each)); else simSlot.append(policyDocs(docs, each));
}

// Each document with each statement and, after a simulation, what that statement decides alone.
function policyDocs(docs, decisions) {
  const rows = [];
  docs.forEach((d, i) => statementsOf(d.document).forEach((s, j) => {
    const decision = decisions ? decisions[i][j] : null;
    rows.push([d.name, s.Sid || `#${j + 1}`, s.Effect, [].concat(s.Action || s.NotAction || []).join(', '), [].concat(s.Resource || s.NotResource || []).join(', '),
      s.Condition ? h('span', { class: 'mono' }, JSON.stringify(s.Condition)) : '',
      decision ? decisionBadge(decision === 'ImplicitDeny' ? 'ImplicitDeny' : decision, `statement-${d.kind}-${s.Sid || j}`) : '']);
  }));
  return h('div', { testid: 'statements' },
    rowTable(['Policy', 'Statement', 'Effect', 'Action', 'Resource', 'Condition', decisions ? 'Alone, it decides' : ''], rows, 'statement-table'),
    h('details', {}, h('summary', {}, 'Documents'), docs.map((d) => h('div', {}, h('h3', {}, d.name), json(d.document)))));
}

function renderGuardrails(slot, g) {
  const out = h('div');
  const text = h('textarea', { name: 'items', rows: 12, spellcheck: 'false', testid: 'guardrails-json' },
    JSON.stringify(g.items.map((x) => ({ name: x.name, document: x.document })), null, 2));
  const form = h('form', { class: 'stack card wide', testid: 'guardrails-form', novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    let items;
    try { items = JSON.parse(text.value); } catch (err) {
      showProblem(form, out, Object.assign(new Error(`items is not JSON: ${err.message}`), { problem: { errors: { items: ['Not JSON.'] } } }));
      return;
    }
    if (!(await confirmAction(`Replace every guardrail with these ${Array.isArray(items) ? items.length : '?'}? They apply to every tenant principal at once.`, 'Replace', ''))) return;
    try {
      const res = await call('PUT', '/v1/guardrails', { items });
      const warnings = res.body.warnings || [];
      renderGuardrails(slot, res.body);
      if (warnings.length) slot.append(h('div', { class: 'card warn', testid: 'guardrails-warnings' }, warnings.map((w) => h('p', {}, `${w.path}: ${w.message}`))));
    } catch (err) { showProblem(form, out, err); }
  } },
  h('label', {}, 'Guardrails (JSON: [{name, document}]; [] removes them all)', text),
  h('button', { type: 'submit', testid: 'guardrails-save' }, 'Save guardrails'), out);
  slot.replaceChildren(
    g.items.length
      ? rowTable(['Name', 'Statements', 'Updated'], g.items.map((x) => [h('span', { testid: `guardrail-${x.name}` }, x.name),
        statementsOf(x.document).map((s) => `${s.Effect} ${[].concat(s.Action || s.NotAction || []).join(', ')}`).join('; '), time(x.updatedAt)]), 'guardrail-table')
      : empty('no-guardrails', 'No guardrail: nothing beyond role and session policies restricts tenant principals.'),
    h('details', {}, h('summary', { testid: 'guardrails-edit' }, 'Edit guardrails'), form));
}

async function renderTemplates(slot) {
  const data = await load(slot, 'Loading templates', async () => {
    const [custom, plans] = await Promise.all([api('GET', '/v1/policies/templates'), api('GET', '/v1/plans')]);
    const tiers = [...new Set([...plans.map((p) => p.tier), ...custom.map((t) => t.tier)])].sort();
    return Promise.all(tiers.map((t) => api('GET', `/v1/policies/templates/${encodeURIComponent(t)}`)));
  });
  if (!data) return;
  slot.replaceChildren(data.length
    ? rowTable(['Tier', 'Source', 'Statements', ''], data.map((t) => [
      h('span', { testid: `template-${t.tier}` }, t.tier), t.isDefault ? badge('default') : badge('custom'),
      statementsOf(t.document).map((s) => `${s.Sid ? `${s.Sid}: ` : ''}${s.Effect} ${[].concat(s.Action || []).join(', ')} on ${[].concat(s.Resource || []).join(', ')}`).join('; '),
      h('details', {}, h('summary', { testid: `template-edit-${t.tier}` }, 'Document'), templateForm(slot, t))]), 'template-table')
    : empty('no-templates', 'No tier.'));
}

// A tier's template, editable: ${tenant}, ${tenantId} and ${tier} are filled in per tenant.
function templateForm(slot, t) {
  const out = h('div');
  const text = h('textarea', { name: 'document', rows: 12, spellcheck: 'false', testid: `template-json-${t.tier}` }, JSON.stringify(t.document, null, 2));
  const form = h('form', { class: 'stack wide', novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    let doc;
    try { doc = JSON.parse(text.value); } catch (err) {
      showProblem(form, out, Object.assign(new Error(`The document is not JSON: ${err.message}`), { problem: { errors: { document: ['Not JSON.'] } } }));
      return;
    }
    if (!(await confirmAction(`Set the session policy of every ${t.tier} tenant to this template? It applies to their next request.`, 'Save', ''))) return;
    try {
      const res = await call('PUT', `/v1/policies/templates/${encodeURIComponent(t.tier)}`, doc);
      await renderTemplates(slot);
      if (res.body.warnings && res.body.warnings.length) slot.append(h('div', { class: 'card warn', testid: 'template-warnings' }, res.body.warnings.map((w) => h('p', {}, `${t.tier} ${w.path}: ${w.message}`))));
    } catch (err) {
      // A problem's paths ($.Statement[0]…) all belong to the one document.
      if (err.problem && err.problem.errors) err.problem = { errors: { document: Object.entries(err.problem.errors).map(([k, v]) => `${k}: ${[].concat(v).join(' ')}`) } };
      showProblem(form, out, err);
    }
  } }, text, h('button', { type: 'submit', testid: `template-save-${t.tier}` }, `Save the ${t.tier} template`), out);
  return form;
}

// ---- fleet migrations --------------------------------------------------------------------------

const LAST_RUN = 'tenantry.migrations.last';

// A run answers either at once with its report (200), or 202 with the run to follow: at
// /v1/migrations/{id} (progress and per-target results), or as an operation at /v1/operations/{id}.
export async function renderMigrations(params) {
  const slot = h('div', { testid: 'migration-slot' });
  const runsSlot = h('div', { testid: 'migration-runs-slot' });
  const out = h('div');
  const run = busyButton('Run fleet migration', { testid: 'migration-run' }, async () => {
    if (!(await confirmAction('Apply the tenant schema and every registered app\'s current release to the pool and every tenant database? Tenants already up to date are left as they are; a failed tenant does not stop the others.', 'Run', ''))) return;
    out.replaceChildren();
    let res;
    try { res = await call('POST', '/v1/migrations'); } catch (err) { out.append(errorBox(err)); return; }
    const id = res.status === 202 && res.body ? res.body.id || res.body.operationId : null;
    if (id) { location.hash = link('/migrations', { run: id }); return; }
    sessionStorage.setItem(LAST_RUN, JSON.stringify({ at: new Date().toISOString(), report: res.body }));
    slot.replaceChildren(migrationReport(res.body, new Date().toISOString()));
  });
  show(h('h1', {}, 'Fleet migrations'),
    h('p', { class: 'muted' }, 'Brings the pool, every bridge schema and silo database up to the tenant schema and each app\'s current release. Running it again applies only what is missing.'),
    h('div', { class: 'actions' }, run), out, slot, runsSlot);
  renderRuns(runsSlot);
  const id = params.get('run') || params.get('operation');
  if (id) {
    await followRun(slot, id);
    if (slot.isConnected) renderRuns(runsSlot); // the run has ended: the list shows it so
    return;
  }
  const last = JSON.parse(sessionStorage.getItem(LAST_RUN) || 'null');
  slot.replaceChildren(last ? migrationReport(last.report, last.at) : empty('no-migration-run', 'No run from this console yet.'));
}

// Earlier runs, where the API keeps them (GET /v1/migrations); nothing is shown where it does not.
async function renderRuns(slot) {
  let page;
  try { page = await api('GET', '/v1/migrations?limit=20'); } catch { return; }
  if (!page || !Array.isArray(page.items) || !page.items.length) return;
  slot.replaceChildren(h('h2', {}, 'Runs'), rowTable(['Run', 'Status', 'Progress', 'Started', 'By'], page.items.map((r) => [
    h('a', { href: link('/migrations', { run: r.id }), class: 'mono', testid: `run-${r.id}` }, r.id), badge(r.status),
    r.progress ? `${r.progress.done}/${r.progress.total} · ${r.progress.failed} failed` : '', time(r.createdAt), r.actor || '']), 'migration-runs'));
}

// Reads the run again (long-poll, a few seconds at a time so the progress moves) until it ends.
async function followRun(slot, id) {
  const mine = currentView();
  let source = 'migrations';
  let run = await load(slot, 'Loading the run', async () => {
    try { return await api('GET', `/v1/migrations/${encodeURIComponent(id)}`); } catch (err) {
      if (err.status !== 404 && err.status !== 405) throw err;
      source = 'operations';
      return api('GET', `/v1/operations/${encodeURIComponent(id)}`);
    }
  });
  for (let reads = 0; run && mine === currentView() && reads < 10000; reads++) {
    const running = run.status === 'pending' || run.status === 'running';
    slot.replaceChildren(source === 'migrations' ? runView(run) : operationRun(run, running));
    if (!running) return;
    try { run = await api('GET', `/v1/${source}/${encodeURIComponent(id)}?wait=${source === 'migrations' ? 2 : 10}`); } catch (err) {
      if (mine === currentView()) slot.append(errorBox(err));
      return;
    }
  }
}

function operationRun(op, running) {
  const report = op.result || op.report || null;
  return h('div', {},
    h('div', { testid: 'migration-operation', 'data-status': op.status }, operationView(op)),
    report && !running ? migrationReport(report, op.finishedAt) : null,
    !running && !report ? h('p', { class: 'muted', testid: 'migration-done' }, `The run ${op.status} at ${time(op.finishedAt)}; each step above is a part of it.`) : null);
}

// A background run: progress, each target (the pool, then each tenant) and each app's outcome per tenant.
function runView(r) {
  const p = r.progress || { total: 0, done: 0, succeeded: 0, failed: 0, skipped: 0 };
  const share = p.total ? Math.round((100 * p.done) / p.total) : 0;
  const targets = r.tenants || [];
  const apps = new Map();
  for (const t of targets) {
    for (const a of t.apps || []) {
      if (!apps.has(a.app)) apps.set(a.app, { release: a.release, rows: [] });
      apps.get(a.app).rows.push({ ...a, tenantId: t.tenantId, slug: t.slug });
    }
  }
  const schemaText = (s) => (!s ? '–' : s.applied && s.applied.length ? `applied ${s.applied.join(', ')}` : `up to date (${s.alreadyApplied})`);
  return h('div', { testid: 'migration-run-view', 'data-status': r.status },
    h('div', {}, h('strong', { class: 'mono' }, r.id), ' ', badge(r.status), ' ',
      h('span', { class: 'muted', testid: 'run-progress' }, `${p.done}/${p.total} targets done · ${p.succeeded} succeeded · ${p.failed} failed · ${p.skipped} skipped`)),
    h('div', { class: `progress ${r.status}` }, h('div', { width: `${share}%`, testid: 'run-bar' })),
    r.error ? errorBox(new Error(r.error)) : null,
    h('p', { class: 'muted' }, `Schema ${r.schema}, latest version ${r.latestVersion} · started ${time(r.createdAt)} by ${r.actor}${r.finishedAt ? ` · finished ${time(r.finishedAt)}` : ''}`),
    h('h2', {}, 'Per target'),
    targets.length
      ? rowTable(['Target', 'Where', 'Status', 'Tenant schema', 'Apps', 'Error', 'Finished'], targets.map((t) => [
        t.tenantId ? h('a', { href: `#/tenants/${t.tenantId}`, testid: `run-target-${t.slug}` }, t.slug) : h('span', { testid: 'run-target-pool' }, 'pool (shared)'),
        t.target, badge(t.status), schemaText(t.schema), (t.apps || []).map((a) => `${a.app} ${a.release}: ${a.outcome}`).join('; '), t.error || '', time(t.finishedAt)]),
      'migration-tenants', (i) => ({ 'data-status': targets[i].status }))
      : empty('no-run-targets', 'No target yet.'),
    [...apps].map(([app, a]) => h('div', { testid: `migration-app-${app}` },
      h('h2', {}, `App ${app} ${a.release}`),
      rowTable(['Tenant', 'Where', 'Outcome', 'Applied', 'Already applied', 'Failed migration', 'Error'], a.rows.map((t) => [
        h('a', { href: `#/tenants/${t.tenantId}`, testid: `app-tenant-${app}-${t.slug}` }, t.slug), t.target, badge(t.outcome),
        t.applied && t.applied.length ? t.applied.join(', ') : '–', t.alreadyApplied, t.failedMigration || '', t.error || '']), `migration-app-${app}-tenants`))));
}

function migrationReport(r, at) {
  const outcome = (t) => badge(t.outcome === 'up-to-date' ? 'up-to-date' : t.outcome);
  const results = r.results || [];
  const apps = r.apps || [];
  const failedTargets = results.filter((x) => x.error || x.failedVersion !== null && x.failedVersion !== undefined);
  return h('div', { testid: 'migration-report', 'data-succeeded': String(r.succeeded) },
    h('div', { class: 'grid' },
      stat('Outcome', badge(r.succeeded ? 'succeeded' : 'failed'), 'migration-outcome'),
      stat('Targets', r.targets, 'migration-targets'),
      stat('Failed', r.failed, 'migration-failed'),
      stat('Migrations applied', r.applied, 'migration-applied'),
      stat('Took', `${Math.round(r.durationMs)} ms`, 'migration-duration')),
    h('p', { class: 'muted' }, `Schema ${r.schema}, latest version ${r.latestVersion}${at ? ` · run ${time(at)}` : ''}`),
    failedTargets.length ? errorBox(new Error(`${failedTargets.length} target(s) failed: ${failedTargets.map((x) => x.target).join(', ')}`)) : null,
    h('h2', {}, 'Tenant schema, per target'),
    results.length
      ? rowTable(['Target', 'Isolation', 'Applied', 'Already applied', 'Failed at', 'Error', 'Took'], results.map((x) => [
        x.tenantId ? h('a', { href: `#/tenants/${x.tenantId}`, testid: `target-${x.target}` }, x.target) : h('span', { testid: `target-${x.target}` }, `${x.target} (shared)`),
        x.isolation, x.applied.length ? x.applied.join(', ') : '–', x.alreadyApplied, x.failedVersion ?? '', x.error || '', `${Math.round(x.durationMs)} ms`]), 'migration-results')
      : empty('no-migration-targets', 'No target.'),
    apps.map((a) => h('div', { testid: `migration-app-${a.app}` },
      h('h2', {}, `App ${a.app} ${a.release} `, badge(a.succeeded ? 'succeeded' : 'failed'), h('span', { class: 'muted' }, ` ${a.migrations} migration(s), ${a.failed} failed`)),
      a.tenants.length
        ? rowTable(['Tenant', 'Where', 'Outcome', 'Applied', 'Already applied', 'Failed migration', 'Error'], a.tenants.map((t) => [
          h('a', { href: `#/tenants/${t.tenantId}`, testid: `app-tenant-${a.app}-${t.slug}` }, t.slug), t.target, outcome(t),
          t.applied.length ? t.applied.join(', ') : '–', t.alreadyApplied, t.failedMigration || '', t.error || '']), `migration-app-${a.app}-tenants`)
        : empty(`migration-app-${a.app}-empty`, 'No tenant.'))));
}
