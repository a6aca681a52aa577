// Switchyard admin page (SPEC §12). A plain ES module: no build step, no dependency, nothing
// fetched from anywhere but this service's own API.
//
// Rules this file keeps:
// - Every string that comes from the API (descriptions, rule ids, actor names, user keys,
//   error messages) reaches the page as text (textContent or a text node), never as HTML.
// - The token lives in this tab's sessionStorage only: never in a URL, a cookie or
//   localStorage. Closing the tab forgets it.
// - Every write sends If-Match with the version the person saw: a change made meanwhile by
//   someone else is answered 412, shown, and never overwritten.
// - A token without the admin scope gets no write control at all (not even a disabled one).
//   Write controls carry `data-write`, so the browser test can check there are none.

const TOKEN_KEY = 'switchyard.token';
const POLL_MS = 10_000;
const STATS_MS = 15_000;
const SVG_NS = 'http://www.w3.org/2000/svg';

const main = document.getElementById('main');
let session = null; // {token, name, scopes, admin}
let viewSeq = 0; // the current view's number: answers for an older view are dropped
let timers = [];

// ---------------------------------------------------------------------------------------------
// DOM helpers: elements are built from properties and children; strings become text nodes.

function h(tag, props, ...children) {
  const el = document.createElement(tag);
  setProps(el, props);
  append(el, children);
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null) el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

function setProps(el, props) {
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') el.className = value;
    else if (name === 'text') el.textContent = String(value);
    else if (name === 'on') for (const [event, fn] of Object.entries(value)) el.addEventListener(event, fn);
    else if (name === 'data') Object.assign(el.dataset, value);
    else if (name === 'write') el.dataset.write = '';
    else if (typeof value !== 'string' && name in el) el[name] = value;
    else el.setAttribute(name, value === true ? '' : String(value));
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

// ---------------------------------------------------------------------------------------------
// Formatting

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const dateMinute = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const clock = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const number = new Intl.NumberFormat();

function pct(n) {
  return `${Number(n).toLocaleString(undefined, { maximumFractionDigits: 2 })}%`;
}

function ago(date) {
  const seconds = (Date.now() - date.getTime()) / 1000;
  const future = seconds < 0;
  const s = Math.abs(seconds);
  let text;
  if (s < 45) return future ? 'in a moment' : 'just now';
  if (s < 90) text = '1 min';
  else if (s < 3600) text = `${Math.round(s / 60)} min`;
  else if (s < 86_400) text = `${Math.round(s / 3600)} h`;
  else text = `${Math.round(s / 86_400)} d`;
  return future ? `in ${text}` : `${text} ago`;
}

function when(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return h('span', { text: String(iso) });
  return h('time', { datetime: date.toISOString(), title: dateTime.format(date), text: ago(date) });
}

function fullTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : dateTime.format(date);
}

function duration(seconds) {
  if (seconds % 86_400 === 0) return `${seconds / 86_400} d`;
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

function plural(n, one, many) {
  return `${number.format(n)} ${n === 1 ? one : many}`;
}

// ---------------------------------------------------------------------------------------------
// The API

class ApiFailure extends Error {
  constructor(status, body, fallback) {
    super(body?.error?.message || fallback);
    this.status = status;
    this.code = body?.error?.code;
    this.details = Array.isArray(body?.error?.details) ? body.error.details : [];
  }
}

async function api(method, path, { body, ifMatch, token } = {}) {
  const used = token ?? session?.token;
  const headers = { Authorization: `Bearer ${used}`, Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (ifMatch !== undefined) headers['If-Match'] = `"${ifMatch}"`;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch {
    throw new ApiFailure(0, null, 'The service did not answer. Is it running?');
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (response.status === 401 && session && used === session.token) {
    signOut('The service no longer accepts this token. Sign in again.');
  }
  if (!response.ok) {
    throw new ApiFailure(response.status, data, `${method} ${path} answered ${response.status}`);
  }
  return data;
}

const rolloutPath = (key, rest = '') => `/v1/rollouts/${encodeURIComponent(key)}${rest}`;
const rolloutHref = (key) => `#/rollouts/${encodeURIComponent(key)}`;

// ---------------------------------------------------------------------------------------------
// Small widgets

function alertBox(kind, ...children) {
  return h('div', { class: `alert ${kind}`, role: 'alert' }, ...children);
}

function errorBox(error) {
  const details = (error.details || []).filter((d) => d.field);
  return alertBox(
    'error',
    h('strong', { text: error.status ? `${error.status}: ` : '' }),
    error.message,
    details.length > 1 ? h('ul', {}, details.map((d) => h('li', { text: `${d.field}: ${d.message}` }))) : null,
  );
}

function toast(text) {
  const el = h('div', { class: 'toast', role: 'status', text });
  document.getElementById('toasts').append(el);
  setTimeout(() => el.remove(), 5000);
}

function stateBadge(rollout) {
  return rollout.enabled
    ? h('span', { class: 'badge live', text: 'Live' })
    : h('span', { class: 'badge killed', text: 'Killed' });
}

function flowBadge(flow) {
  return h('span', { class: `badge plain ${flow === 'stytch' ? 'stytch' : 'legacy'} then`, text: flow });
}

function meter(percentage, on) {
  const bar = h('span');
  bar.style.width = `${Math.max(0, Math.min(100, percentage))}%`;
  return h('div', { class: on ? 'meter' : 'meter off', 'aria-hidden': 'true' }, bar);
}

function card(title, hint, ...children) {
  return h(
    'section',
    { class: 'card' },
    h('div', { class: 'card-head' }, h('h2', { text: title }), hint ? h('span', { class: 'hint', text: hint }) : null),
    ...children,
  );
}

function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', { text: k }), h('dd', {}, v)]));
}

let dialogOpen = false;

// A modal confirmation (an HTML <dialog>, never window.confirm). Resolves to true or false.
function confirmDialog({ title, body, confirm, danger = false }) {
  return new Promise((resolve) => {
    let settled = false;
    const dialog = h('dialog', { 'aria-labelledby': 'dialog-title' });
    const done = (answer) => {
      if (settled) return;
      settled = true;
      dialogOpen = false;
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    const ok = h('button', {
      class: danger ? 'button danger' : 'button primary',
      type: 'button',
      text: confirm,
      on: { click: () => done(true) },
    });
    const cancel = h('button', { class: 'button', type: 'button', text: 'Cancel', on: { click: () => done(false) } });
    dialog.addEventListener('cancel', (event) => {
      event.preventDefault();
      done(false);
    });
    append(dialog, [
      h('div', { class: 'dialog-body' }, h('h2', { id: 'dialog-title', text: title }), body),
      h('div', { class: 'dialog-actions' }, cancel, ok),
    ]);
    document.body.append(dialog);
    dialogOpen = true;
    dialog.showModal();
    ok.focus();
  });
}

function fromTo(from, to) {
  return h(
    'div',
    { class: 'from-to', data: { test: 'from-to' } },
    h('span', { class: 'old', text: from }),
    h('span', { class: 'arrow', text: '→' }),
    h('span', { class: 'new', text: to }),
  );
}

// ---------------------------------------------------------------------------------------------
// Reading rollouts as people say them

const CONDITIONS = [
  ['ip_ranges', 'IP in'],
  ['countries', 'country'],
  ['continents', 'continent'],
  ['subdivisions', 'region'],
  ['platforms', 'platform'],
  ['app_version', 'app version'],
  ['user_keys', 'user key'],
];

function whenText(when) {
  const parts = [];
  for (const [name, label] of CONDITIONS) {
    const value = when?.[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) {
      if (name === 'user_keys' && value.length > 3) parts.push(`one of ${value.length} user keys`);
      else parts.push(`${label} ${value.join(', ')}`);
    } else {
      parts.push(`${label} ${value}`);
    }
  }
  return parts.length ? parts.join(' and ') : 'always';
}

function thenText(then) {
  return typeof then === 'string' ? then : `${pct(then?.percentage)} to stytch`;
}

function valueText(value) {
  if (value === undefined || value === null || value === '') return '(none)';
  if (typeof value === 'boolean') return value ? 'on' : 'off';
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  return JSON.stringify(value);
}

const FIELD_LABELS = { enabled: 'kill switch', legacy_sessions: 'legacy sessions' };

function changeValue(field, value) {
  if (field === 'percentage' && typeof value === 'number') return pct(value);
  if (field === 'enabled' && typeof value === 'boolean') return value ? 'live' : 'killed';
  if (field === 'sticky' && value && typeof value === 'object') {
    return value.enabled ? `cookie ${value.cookie_name}, ${duration(value.max_age_seconds)}` : 'off';
  }
  return valueText(value);
}

// What changed in the rules, rule by rule (by id).
function ruleDiff(from, to) {
  const before = new Map((Array.isArray(from) ? from : []).map((r) => [r.id, r]));
  const after = new Map((Array.isArray(to) ? to : []).map((r) => [r.id, r]));
  const lines = [];
  for (const [id, rule] of after) {
    const old = before.get(id);
    if (!old) lines.push(['added', `+ ${id}: ${whenText(rule.when)} → ${thenText(rule.then)}`]);
    else if (JSON.stringify(old) !== JSON.stringify(rule)) {
      lines.push(['changed', `~ ${id}: ${whenText(rule.when)} → ${thenText(rule.then)}`]);
    }
  }
  for (const id of before.keys()) if (!after.has(id)) lines.push(['removed', `− ${id}`]);
  const order = (m) => [...m.keys()].filter((id) => before.has(id) && after.has(id)).join('\u0000');
  if (!lines.length && order(before) !== order(after)) lines.push(['changed', `order: ${[...after.keys()].join(', ')}`]);
  return lines;
}

// A change record's fields, from → to; a creation (no "from") lists the values it set.
function changeList(changes, created = false) {
  return h(
    'ul',
    { class: created ? 'changes created' : 'changes' },
    (changes || []).map((change) => {
      const label = FIELD_LABELS[change.field] || change.field;
      if (change.field === 'rules') {
        const lines = ruleDiff(change.from, change.to);
        if (!lines.length) return null;
        return h(
          'li',
          {},
          h('div', { class: 'change' }, h('span', { class: 'field', text: label })),
          h('ul', { class: 'rule-diff' }, lines.map(([kind, text]) => h('li', { class: kind, text }))),
        );
      }
      if (created) {
        return h('li', { class: 'change' }, h('span', { class: 'field', text: label }), h('span', { text: changeValue(change.field, change.to) }));
      }
      return h(
        'li',
        { class: 'change' },
        h('span', { class: 'field', text: label }),
        h('span', { class: 'from', text: changeValue(change.field, change.from) }),
        h('span', { class: 'arrow', text: '→' }),
        h('span', { class: 'to', text: changeValue(change.field, change.to) }),
      );
    }),
  );
}

// The members a person edits, for "what would a roll back change" (the epoch is kept).
const CONTENT = ['description', 'enabled', 'percentage', 'rules', 'sticky', 'legacy_sessions', 'salt', 'schedule', 'guard'];

function contentChanges(current, target) {
  return CONTENT.filter((f) => JSON.stringify(current[f]) !== JSON.stringify(target[f])).map((f) => ({
    field: f,
    from: current[f],
    to: target[f],
  }));
}

function actionText(entry) {
  switch (entry.action) {
    case 'created':
      return 'created';
    case 'rolled_back':
      return entry.restored_version ? `rolled back to v${entry.restored_version}` : 'rolled back';
    case 'deleted':
      return 'deleted';
    default:
      return 'changed';
  }
}

function scheduleSummary(schedule) {
  if (!schedule) return h('span', { class: 'faint', text: '—' });
  const steps = Array.isArray(schedule.steps) ? schedule.steps : [];
  const applied = appliedSteps(schedule);
  const next = steps[applied];
  return h(
    'div',
    {},
    h('span', { class: `badge ${schedule.state === 'active' ? 'info' : schedule.state === 'paused' ? 'warn' : ''}`, text: schedule.state }),
    h('div', {
      class: 'desc',
      text: `${applied}/${steps.length} steps${next && schedule.state === 'active' ? ` · next ${pct(next.percentage)} ${ago(new Date(next.at))}` : ''}`,
    }),
  );
}

function appliedSteps(schedule) {
  const steps = Array.isArray(schedule.steps) ? schedule.steps : [];
  if (typeof schedule.applied_steps === 'number') return schedule.applied_steps;
  const now = Date.now();
  return steps.filter((step) => new Date(step.at).getTime() <= now).length;
}

function guardSummary(guard) {
  if (!guard) return h('span', { class: 'faint', text: '—' });
  if (!guard.enabled) return h('span', { class: 'badge', text: 'off' });
  return h(
    'div',
    {},
    h('span', { class: 'badge info', text: 'on' }),
    h('div', { class: 'desc', text: `${guard.action} if Stytch fails ≥ ${guard.max_failure_rate_increase} pts more` }),
  );
}

// ---------------------------------------------------------------------------------------------
// Session, routing, polling

function newView() {
  stopPolling();
  // A dialog belongs to the view that opened it.
  for (const dialog of document.querySelectorAll('dialog')) dialog.remove();
  dialogOpen = false;
  viewSeq += 1;
  return viewSeq;
}

function poll(fn, ms) {
  timers.push(
    setInterval(() => {
      if (!document.hidden && !dialogOpen) fn().catch(() => {});
    }, ms),
  );
}

function stopPolling() {
  for (const id of timers) clearInterval(id);
  timers = [];
}

async function signIn(token) {
  const info = await api('GET', '/v1/token', { token });
  const scopes = Array.isArray(info?.scopes) ? info.scopes : [];
  if (!scopes.includes('read')) {
    throw new Error(
      `The token "${info?.name}" may not read rollouts (its scopes: ${scopes.join(', ') || 'none'}). Use a token with the read or admin scope.`,
    );
  }
  session = { token, name: String(info.name), scopes, admin: scopes.includes('admin') };
  sessionStorage.setItem(TOKEN_KEY, token);
  renderWho();
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  session = null;
  renderWho();
  showSignIn(message);
}

function renderWho() {
  const who = document.getElementById('who');
  const nav = document.getElementById('nav');
  who.hidden = !session;
  nav.hidden = !session;
  if (!session) return replace(who);
  replace(
    who,
    h('span', {}, 'Signed in as ', h('strong', { text: session.name })),
    session.admin
      ? h('span', { class: 'scope', text: 'admin' })
      : h('span', { class: 'scope readonly', text: 'read-only', title: 'This token has no admin scope: nothing can be changed.' }),
    h('button', { class: 'button small', type: 'button', text: 'Sign out', on: { click: () => signOut() } }),
  );
}

function markNav(hash) {
  for (const link of document.querySelectorAll('#nav a')) {
    const target = link.getAttribute('href');
    const current = target === '#/audit' ? hash === '#/audit' : hash !== '#/audit';
    link.classList.toggle('current', current);
  }
}

function route() {
  if (!session) return showSignIn();
  const hash = location.hash || '#/';
  markNav(hash);
  const rollout = hash.match(/^#\/rollouts\/([^/]+)$/);
  if (rollout) {
    let key;
    try {
      key = decodeURIComponent(rollout[1]);
    } catch {
      key = rollout[1];
    }
    return new RolloutView(key).start();
  }
  if (hash === '#/audit') return showAudit();
  return showList();
}

// ---------------------------------------------------------------------------------------------
// Sign-in

function showSignIn(message) {
  newView();
  document.title = 'Sign in · Switchyard';
  const input = h('input', {
    type: 'password',
    id: 'token',
    name: 'token',
    autocomplete: 'off',
    spellcheck: 'false',
    required: true,
  });
  const problem = h('div');
  if (message) replace(problem, alertBox('error', message));
  const button = h('button', { class: 'button primary', type: 'submit', text: 'Sign in' });
  const form = h(
    'form',
    {
      class: 'card',
      on: {
        submit: async (event) => {
          event.preventDefault();
          const token = input.value.trim();
          if (!token) return;
          button.disabled = true;
          try {
            await signIn(token);
            route();
          } catch (error) {
            const text = error.status === 401 ? 'The service does not know this token.' : error.message;
            replace(problem, alertBox('error', text));
            button.disabled = false;
          }
        },
      },
    },
    h('h1', { text: 'Sign in' }),
    h('p', {
      text: 'Paste an API token with the read or admin scope. It is kept in this tab only (session storage), sent with each request as a bearer token, and forgotten when the tab closes.',
    }),
    problem,
    h('div', { class: 'field' }, h('label', { for: 'token', text: 'API token' }), input),
    button,
  );
  replace(main, h('section', { class: 'signin' }, form));
  input.focus();
}

// ---------------------------------------------------------------------------------------------
// The list of rollouts

async function showList() {
  const seq = newView();
  document.title = 'Rollouts · Switchyard';
  const body = h('div', {}, h('p', { class: 'empty', text: 'Loading…' }));
  replace(
    main,
    h(
      'div',
      { class: 'page-head' },
      h(
        'div',
        {},
        h('h1', { text: 'Rollouts' }),
        h('div', { class: 'sub', text: 'Who goes through Stytch, and who stays on the legacy login.' }),
      ),
      session.admin
        ? h('button', { class: 'button primary', type: 'button', write: true, text: 'New rollout', on: { click: createRollout } })
        : null,
    ),
    h('section', { class: 'card' }, body),
  );
  const load = async () => {
    const data = await api('GET', '/v1/rollouts');
    if (seq === viewSeq) replace(body, rolloutTable(data.rollouts || []));
  };
  try {
    await load();
  } catch (error) {
    if (seq === viewSeq) replace(body, errorBox(error));
  }
  poll(load, POLL_MS);
}

function rolloutTable(rollouts) {
  if (!rollouts.length) return h('p', { class: 'empty', text: 'No rollouts yet.' });
  return h(
    'table',
    { class: 'rollouts' },
    h(
      'thead',
      {},
      h('tr', {}, ['Rollout', 'State', 'Percentage', 'Schedule', 'Guard', 'Last change'].map((t) => h('th', { text: t }))),
    ),
    h(
      'tbody',
      {},
      rollouts.map((r) =>
        h(
          'tr',
          { data: { rollout: r.key } },
          h(
            'td',
            {},
            h('a', { class: 'key', href: rolloutHref(r.key), text: r.key }),
            r.description ? h('div', { class: 'desc', data: { test: 'description' }, text: r.description }) : null,
          ),
          h('td', {}, stateBadge(r)),
          h('td', {}, h('div', { class: 'pct-cell' }, h('span', { class: 'num', text: pct(r.percentage) }), meter(r.percentage, r.enabled))),
          h('td', {}, scheduleSummary(r.schedule)),
          h('td', {}, guardSummary(r.guard)),
          h(
            'td',
            { class: 'muted' },
            h('div', {}, `v${r.version} by `, h('strong', { text: r.updated_by })),
            h('div', { class: 'desc' }, when(r.updated_at)),
          ),
        ),
      ),
    ),
  );
}

function createRollout() {
  const key = h('input', { id: 'new-key', name: 'key', required: true, pattern: '[a-z0-9][a-z0-9_\\-]{0,63}', autocomplete: 'off' });
  const description = h('input', { id: 'new-description', name: 'description', autocomplete: 'off' });
  const percentage = h('input', { id: 'new-percentage', name: 'percentage', type: 'number', min: '0', max: '100', step: '0.01', value: '0' });
  const problem = h('div');
  const dialog = h('dialog', { 'aria-labelledby': 'create-title' });
  const close = () => {
    dialogOpen = false;
    dialog.close();
    dialog.remove();
  };
  const submit = h('button', { class: 'button primary', type: 'submit', text: 'Create rollout' });
  const form = h(
    'form',
    {
      on: {
        submit: async (event) => {
          event.preventDefault();
          submit.disabled = true;
          const body = { key: key.value.trim(), percentage: Number(percentage.value || 0) };
          if (description.value) body.description = description.value;
          try {
            const created = await api('POST', '/v1/rollouts', { body });
            close();
            toast(`Created ${created.key} at ${pct(created.percentage)}`);
            location.hash = rolloutHref(created.key);
          } catch (error) {
            replace(problem, errorBox(error));
            submit.disabled = false;
          }
        },
      },
    },
    h(
      'div',
      { class: 'dialog-body' },
      h('h2', { id: 'create-title', text: 'New rollout' }),
      h('p', { text: 'Sticky cookies are on (cookie sy_<key>, 30 days) and the salt is random; change them through the API.' }),
      problem,
      h('div', { class: 'field' }, h('label', { for: 'new-key', text: 'Key (a-z, 0-9, _ and -)' }), key),
      h('div', { class: 'field' }, h('label', { for: 'new-description', text: 'Description' }), description),
      h('div', { class: 'field' }, h('label', { for: 'new-percentage', text: 'Percentage to Stytch' }), percentage),
    ),
    h(
      'div',
      { class: 'dialog-actions' },
      h('button', { class: 'button', type: 'button', text: 'Cancel', on: { click: close } }),
      submit,
    ),
  );
  dialog.addEventListener('cancel', (event) => {
    event.preventDefault();
    close();
  });
  dialog.append(form);
  document.body.append(dialog);
  dialogOpen = true;
  dialog.showModal();
  key.focus();
}

// ---------------------------------------------------------------------------------------------
// The audit trail

async function showAudit() {
  const seq = newView();
  document.title = 'Audit trail · Switchyard';
  const rows = h('tbody');
  const more = h('div', { class: 'controls' });
  const problem = h('div');
  replace(
    main,
    h(
      'div',
      { class: 'page-head' },
      h('div', {}, h('h1', { text: 'Audit trail' }), h('div', { class: 'sub', text: 'Every change to every rollout, newest first.' })),
    ),
    h(
      'section',
      { class: 'card' },
      problem,
      h(
        'table',
        { class: 'audit' },
        h('thead', {}, h('tr', {}, ['When', 'Rollout', 'Version', 'Who', 'What'].map((t) => h('th', { text: t })))),
        rows,
      ),
      more,
    ),
  );
  const load = async (cursor) => {
    const query = new URLSearchParams({ limit: '50' });
    if (cursor) query.set('cursor', cursor);
    try {
      const page = await api('GET', `/v1/audit?${query}`);
      if (seq !== viewSeq) return;
      append(
        rows,
        (page.audit || []).map((record) =>
          h(
            'tr',
            {},
            h('td', { class: 'muted', title: fullTime(record.at) }, when(record.at)),
            h('td', {}, record.action === 'deleted' ? h('span', { text: record.rollout }) : h('a', { href: rolloutHref(record.rollout), text: record.rollout })),
            h('td', { class: 'num', text: `v${record.version}` }),
            h('td', {}, h('strong', { text: record.actor })),
            h('td', {}, h('div', { text: actionText(record) }), changeList(record.changes, record.action === 'created')),
          ),
        ),
      );
      if (!rows.children.length) append(rows, h('tr', {}, h('td', { colspan: '5', class: 'empty', text: 'No changes yet.' })));
      replace(
        more,
        page.next_cursor
          ? h('button', { class: 'button', type: 'button', text: 'Older changes', on: { click: () => load(page.next_cursor) } })
          : null,
      );
    } catch (error) {
      if (seq === viewSeq) replace(problem, errorBox(error));
    }
  };
  await load();
}

// ---------------------------------------------------------------------------------------------
// One rollout

class RolloutView {
  constructor(key) {
    this.key = key;
    this.seq = newView();
    this.rollout = null;
    this.history = [];
    this.el = {};
  }

  live() {
    return this.seq === viewSeq;
  }

  async start() {
    document.title = `${this.key} · Switchyard`;
    this.build();
    try {
      await this.refresh(true);
    } catch (error) {
      if (!this.live()) return;
      if (error.status === 404) {
        replace(
          main,
          h('div', { class: 'crumbs' }, h('a', { href: '#/', text: 'Rollouts' })),
          alertBox('error', `There is no rollout "${this.key}".`),
        );
      } else {
        replace(this.el.alert, errorBox(error));
      }
      return;
    }
    this.loadStats();
    poll(() => this.refresh(false), POLL_MS);
    poll(() => this.loadStats(), STATS_MS);
  }

  // The skeleton: display parts are re-rendered on each refresh; forms are built once, so
  // whatever a person is typing stays.
  build() {
    const el = this.el;
    el.head = h('div', { class: 'detail-head' });
    el.alert = h('div', { data: { test: 'rollout-alert' } });
    el.traffic = h('div');
    el.controls = session.admin ? this.buildControls() : null;
    el.charts = h('div', { class: 'charts' }, h('p', { class: 'empty', text: 'Loading…' }));
    el.history = h('ol', { class: 'history', data: { test: 'history' } });
    el.rules = h('div');
    el.schedule = h('div');
    el.guard = h('div');
    el.settings = h('div');
    replace(
      main,
      el.head,
      el.alert,
      h(
        'div',
        { class: 'grid' },
        h(
          'div',
          {},
          h('section', { class: 'card', data: { test: 'traffic' } }, h('div', { class: 'card-head' }, h('h2', { text: 'Traffic to Stytch' })), el.traffic, el.controls),
          card('Last hour', 'per minute', el.charts),
          card('History', 'newest first', el.history),
        ),
        h('div', {}, this.buildTry(), el.rules, el.schedule, el.guard, el.settings),
      ),
    );
  }

  buildControls() {
    const el = this.el;
    el.pctInput = h('input', {
      type: 'number',
      class: 'pct-input',
      id: 'new-pct',
      min: '0',
      max: '100',
      step: '0.01',
      'aria-label': 'New percentage',
      write: true,
    });
    el.range = h('input', { type: 'range', min: '0', max: '100', step: '1', 'aria-label': 'New percentage (slider)', write: true });
    el.pctInput.addEventListener('input', () => {
      el.pctInput.dataset.dirty = '1';
      el.range.value = el.pctInput.value;
    });
    el.range.addEventListener('input', () => {
      el.pctInput.dataset.dirty = '1';
      el.pctInput.value = el.range.value;
    });
    el.kill = h('button', { type: 'button', write: true, on: { click: () => this.toggleKill() } });
    return h(
      'div',
      { class: 'controls' },
      h('label', { for: 'new-pct', class: 'inline', text: 'Set to' }),
      el.pctInput,
      h('span', { class: 'muted', text: '%' }),
      h('div', { class: 'spacer' }, el.range),
      h('button', {
        class: 'button primary',
        type: 'button',
        write: true,
        text: 'Change percentage…',
        on: { click: () => this.changePercentage() },
      }),
      el.kill,
    );
  }

  buildTry() {
    const fields = [
      ['user_key', 'User key', 'alice@example.com'],
      ['device_id', 'Device id', 'd-81f2'],
      ['ip', 'IP address', '203.0.113.9'],
      ['country', 'Country', 'GB'],
      ['platform', 'Platform', 'ios'],
      ['app_version', 'App version', '5.1.0'],
    ];
    const inputs = {};
    const result = h('div', { data: { test: 'decision' } });
    const form = h(
      'form',
      {
        on: {
          submit: async (event) => {
            event.preventDefault();
            const body = {};
            for (const [name] of fields) {
              const value = inputs[name].value.trim();
              if (value) body[name] = value;
            }
            try {
              const answer = await api('POST', rolloutPath(this.key, '/evaluate'), { body });
              replace(result, decisionResult(answer));
            } catch (error) {
              replace(result, errorBox(error));
            }
          },
        },
      },
      h(
        'div',
        { class: 'fields' },
        fields.map(([name, label, example]) => {
          inputs[name] = h('input', { id: `try-${name}`, name, placeholder: example, autocomplete: 'off', spellcheck: 'false' });
          return h('div', { class: 'field' }, h('label', { for: `try-${name}`, text: label }), inputs[name]);
        }),
      ),
      h('button', { class: 'button', type: 'submit', text: 'Decide' }),
      result,
    );
    return card('Try a decision', 'not counted in metrics', form);
  }

  async refresh(force) {
    const rollout = await api('GET', rolloutPath(this.key));
    if (!this.live()) return;
    const changed = force || !this.rollout || this.rollout.version !== rollout.version;
    this.rollout = rollout;
    if (changed) {
      const history = await api('GET', rolloutPath(this.key, '/history'));
      if (!this.live()) return;
      this.history = history.history || [];
    }
    this.render();
    if (rollout.guard) await this.loadGuard();
  }

  render() {
    const r = this.rollout;
    const el = this.el;
    replace(
      el.head,
      h('div', { class: 'crumbs' }, h('a', { href: '#/', text: 'Rollouts' }), ' / ', r.key),
      h('div', { class: 'detail-title' }, h('h1', { text: r.key }), stateBadge(r), h('span', { class: 'badge plain', text: `version ${r.version}` })),
      h('div', { class: 'detail-meta' }, 'Last changed by ', h('strong', { text: r.updated_by }), ' ', when(r.updated_at)),
      r.description ? h('div', { class: 'description', data: { test: 'description' }, text: r.description }) : null,
    );
    replace(
      el.traffic,
      h(
        'div',
        { class: 'traffic' },
        h('div', { class: 'big', data: { test: 'percentage' } }, pct(r.percentage).replace('%', ''), h('small', { text: '%' })),
        h(
          'div',
          {},
          meter(r.percentage, r.enabled),
          h('div', {
            class: 'split',
            text: r.enabled
              ? `${pct(r.percentage)} of users are bucketed to Stytch, ${pct(100 - r.percentage)} stay on legacy (rules and enrollments first).`
              : 'The kill switch is on: every decision is legacy.',
          }),
        ),
      ),
      r.enabled ? null : h('div', { class: 'killed-note', text: 'Killed: everyone goes to legacy (reason disabled) until the rollout is re-enabled.' }),
    );
    if (el.controls) {
      if (!el.pctInput.dataset.dirty) {
        el.pctInput.value = String(r.percentage);
        el.range.value = String(r.percentage);
      }
      el.kill.className = r.enabled ? 'button danger-outline' : 'button';
      el.kill.textContent = r.enabled ? 'Kill switch…' : 'Re-enable…';
    }
    this.renderHistory();
    this.renderRules();
    this.renderSchedule();
    this.renderGuardConfig();
    this.renderSettings();
  }

  renderHistory() {
    const current = this.rollout.version;
    replace(
      this.el.history,
      this.history.map((entry) =>
        h(
          'li',
          { class: 'entry', data: { version: String(entry.version) } },
          h(
            'div',
            { class: 'entry-head' },
            h('span', { class: 'version', text: `v${entry.version}` }),
            h('span', { text: actionText(entry) }),
            h('span', { class: 'muted' }, 'by ', h('strong', { text: entry.actor })),
            h('span', { class: 'muted', title: fullTime(entry.at) }, when(entry.at)),
            h('span', { class: 'spacer' }),
            entry.version === current ? h('span', { class: 'badge plain info', text: 'current' }) : null,
            session.admin && entry.version !== current && entry.snapshot
              ? h('button', {
                  class: 'button small',
                  type: 'button',
                  write: true,
                  text: 'Roll back to this version',
                  on: { click: () => this.rollback(entry) },
                })
              : null,
          ),
          entry.changes?.length ? changeList(entry.changes, entry.action === 'created') : null,
        ),
      ),
    );
  }

  renderRules() {
    const rules = this.rollout.rules || [];
    replace(
      this.el.rules,
      card(
        'Rules',
        'first match wins',
        rules.length
          ? h(
              'ol',
              { class: 'rules' },
              rules.map((rule) =>
                h(
                  'li',
                  { class: 'rule' },
                  h('div', {}, h('div', { class: 'id', text: rule.id }), h('div', { class: 'when', text: `when ${whenText(rule.when)}` })),
                  flowBadge(thenText(rule.then)),
                ),
              ),
            )
          : h('p', { class: 'muted', text: 'No rules: every user is bucketed at the rollout percentage.' }),
      ),
    );
  }

  renderSchedule() {
    const schedule = this.rollout.schedule;
    if (!schedule) return replace(this.el.schedule);
    const steps = Array.isArray(schedule.steps) ? schedule.steps : [];
    const applied = appliedSteps(schedule);
    replace(
      this.el.schedule,
      card(
        'Schedule',
        null,
        h('div', { class: 'field' }, scheduleSummary(schedule)),
        h(
          'table',
          { class: 'steps', data: { test: 'schedule-steps' } },
          h('thead', {}, h('tr', {}, ['#', 'When', 'Percentage', ''].map((t) => h('th', { text: t })))),
          h(
            'tbody',
            {},
            steps.map((step, i) => {
              const done = i < applied;
              const label = done ? 'applied' : i === applied && schedule.state === 'active' ? 'next' : 'pending';
              return h(
                'tr',
                {},
                h('td', { class: 'num faint', text: String(i + 1) }),
                h('td', { title: fullTime(step.at) }, h('div', { text: dateMinute.format(new Date(step.at)) }), h('div', { class: 'hint' }, when(step.at))),
                h('td', { class: 'num', text: pct(step.percentage) }),
                h('td', { class: `step-state ${done ? 'applied' : 'pending'}`, text: label }),
              );
            }),
          ),
        ),
      ),
    );
  }

  renderGuardConfig() {
    const guard = this.rollout.guard;
    if (!guard) {
      this.el.guardView = null;
      return replace(this.el.guard);
    }
    this.el.guardView = this.el.guardView || h('div', { data: { test: 'guard-view' } });
    replace(
      this.el.guard,
      card(
        'Guard',
        guard.enabled ? 'watching login failures' : 'off',
        kv([
          ['Enabled', guard.enabled ? 'yes' : 'no'],
          ['Window', duration(guard.window_seconds)],
          ['Needs', `${plural(guard.min_attempts, 'attempt', 'attempts')} per flow`],
          ['Trips when', `Stytch fails more than ${guard.max_failure_rate_increase} points more often than legacy`],
          ['Confidence', pct(guard.confidence * 100)],
          ['Then', guard.action === 'kill' ? 'kill the rollout' : 'pause the schedule and step back'],
        ]),
        this.el.guardView,
      ),
    );
  }

  async loadGuard() {
    const view = this.el.guardView;
    if (!view) return;
    let state;
    try {
      state = await api('GET', rolloutPath(this.key, '/guard'));
    } catch (error) {
      // No guard view on this server (or not for this rollout): show only the settings.
      if (error.status === 404) view.hidden = true;
      else replace(view, errorBox(error));
      return;
    }
    if (!this.live()) return;
    view.hidden = false;
    const flows = ['stytch', 'legacy'];
    // GET /v1/rollouts/{key}/guard is flat: stytch_attempts, stytch_failures,
    // stytch_failure_rate_percent (null without attempts), the same for legacy.
    const count = (f, what) => state[`${f}_${what}`];
    const rate = (f) => count(f, 'failure_rate_percent') ?? null;
    const bound = state.increase_lower_bound_points ?? null;
    const evaluated = state.evaluated_at ?? null;
    const badge = { watching: 'live', tripped: 'killed', insufficient_data: 'warn' }[state.state] || '';
    replace(
      view,
      h('div', { class: 'controls' }, h('span', { class: `badge ${badge}`, text: String(state.state).replace('_', ' ') }), evaluated ? h('span', { class: 'muted' }, 'evaluated ', when(evaluated)) : null),
      h(
        'table',
        { class: 'guard-counts' },
        h('thead', {}, h('tr', {}, ['Flow', 'Attempts', 'Failures', 'Failure rate'].map((t) => h('th', { text: t })))),
        h(
          'tbody',
          {},
          flows.map((f) =>
            h(
              'tr',
              {},
              h('td', {}, flowBadge(f)),
              h('td', { class: 'num', text: number.format(count(f, 'attempts') ?? 0) }),
              h('td', { class: 'num', text: number.format(count(f, 'failures') ?? 0) }),
              h('td', { class: 'num', text: rate(f) === null ? '—' : pct(rate(f)) }),
            ),
          ),
        ),
      ),
      h(
        'p',
        { class: 'hint' },
        bound === null
          ? 'Not enough attempts yet for a bound.'
          : `Lower bound of the increase: ${Number(bound).toFixed(2)} points (trips above ${this.rollout.guard.max_failure_rate_increase}).`,
      ),
    );
  }

  renderSettings() {
    const r = this.rollout;
    replace(
      this.el.settings,
      card(
        'Settings',
        null,
        kv([
          ['Salt', h('code', { text: r.salt })],
          ['Sticky cookie', r.sticky?.enabled ? `${r.sticky.cookie_name}, ${duration(r.sticky.max_age_seconds)}` : 'off'],
          ['Epoch', String(r.epoch)],
          ['Legacy sessions', String(r.legacy_sessions)],
        ]),
      ),
    );
  }

  async loadStats() {
    let stats;
    try {
      stats = await api('GET', rolloutPath(this.key, '/stats'));
    } catch (error) {
      if (this.live()) replace(this.el.charts, errorBox(error));
      return;
    }
    if (!this.live()) return;
    replace(this.el.charts, decisionsChart(stats.minutes || []), successChart(stats.minutes || []));
  }

  // --- writes ------------------------------------------------------------------------------

  async write(seen, request, done) {
    replace(this.el.alert);
    try {
      const updated = await request();
      toast(`${this.key}: ${done} (version ${updated.version})`);
      if (this.el.pctInput) delete this.el.pctInput.dataset.dirty;
      await this.refresh(true);
    } catch (error) {
      if (!this.live()) return;
      if (error.status === 412) await this.showConflict(seen);
      else replace(this.el.alert, errorBox(error));
    }
  }

  // Someone changed the rollout after this page showed it: say who and what, show theirs.
  async showConflict(seen) {
    let who = [];
    try {
      await this.refresh(true);
      who = this.history.filter((e) => e.version > seen.version).reverse();
    } catch (error) {
      replace(this.el.alert, errorBox(error));
      return;
    }
    const now = this.rollout;
    replace(
      this.el.alert,
      alertBox(
        'conflict',
        h('strong', { text: 'Not saved: this rollout was changed meanwhile. ' }),
        `You saw version ${seen.version}; it is now version ${now.version}, at ${pct(now.percentage)}${now.enabled ? '' : ' and killed'}. Nothing was overwritten: check the change below and decide again.`,
        h(
          'ul',
          { data: { test: 'conflict' } },
          who.map((e) =>
            h(
              'li',
              {},
              h('strong', { text: e.actor }),
              ` ${actionText(e)} it to version ${e.version} (${fullTime(e.at)})`,
              changeList(e.changes),
            ),
          ),
        ),
      ),
    );
  }

  async changePercentage() {
    const seen = this.rollout;
    const raw = this.el.pctInput.value.trim();
    const to = Number(raw);
    if (raw === '' || !Number.isFinite(to) || to < 0 || to > 100 || Math.round(to * 100) !== to * 100) {
      replace(this.el.alert, alertBox('error', 'Give a percentage from 0 to 100, with at most two decimals.'));
      return;
    }
    if (to === seen.percentage) {
      replace(this.el.alert, alertBox('error', `${seen.key} is already at ${pct(to)}.`));
      return;
    }
    const body = [
      fromTo(pct(seen.percentage), pct(to)),
      h('p', {
        text:
          to > seen.percentage
            ? `About ${pct(to - seen.percentage)} of all users move from legacy to Stytch. Nobody already on Stytch moves back.`
            : `Fewer new devices go to Stytch. Devices that already met Stytch stay there (sticky cookies); only the kill switch moves everyone back.`,
      }),
      seen.schedule?.state === 'active' ? h('p', { class: 'notice', text: 'This pauses the active schedule, so its next step cannot undo your change.' }) : null,
      seen.enabled ? null : h('p', { class: 'notice', text: 'The kill switch is on: the new percentage applies once the rollout is re-enabled.' }),
    ];
    const ok = await confirmDialog({ title: `Change the percentage of ${seen.key}`, body, confirm: `Change to ${pct(to)}` });
    if (!ok) return;
    await this.write(
      seen,
      () => api('PATCH', rolloutPath(this.key), { body: { percentage: to }, ifMatch: seen.version }),
      `percentage ${pct(seen.percentage)} → ${pct(to)}`,
    );
  }

  async toggleKill() {
    const seen = this.rollout;
    const killing = seen.enabled;
    const ok = await confirmDialog({
      title: killing ? `Kill ${seen.key}?` : `Re-enable ${seen.key}?`,
      body: killing
        ? [
            fromTo('live', 'killed'),
            h('p', {
              text: 'Every decision becomes legacy (reason disabled) at once, on every replica. Nothing overrides it: no rule, enrollment or cookie.',
            }),
          ]
        : [
            fromTo('killed', 'live'),
            h('p', { text: `Decisions resume: ${pct(seen.percentage)} to Stytch, with the rules, enrollments and cookies as before.` }),
          ],
      confirm: killing ? 'Kill: send everyone to legacy' : 'Re-enable',
      danger: killing,
    });
    if (!ok) return;
    await this.write(
      seen,
      () => api('PATCH', rolloutPath(this.key), { body: { enabled: !seen.enabled }, ifMatch: seen.version }),
      killing ? 'killed' : 're-enabled',
    );
  }

  async rollback(entry) {
    const seen = this.rollout;
    const changes = contentChanges(seen, entry.snapshot);
    const ok = await confirmDialog({
      title: `Roll back ${seen.key} to version ${entry.version}?`,
      body: [
        h('p', {
          text: `A new version gets the content of version ${entry.version} (by ${entry.actor}, ${fullTime(entry.at)}). The epoch stays, so no cookie voided since comes back.`,
        }),
        changes.length ? changeList(changes) : h('p', { class: 'muted', text: 'Its content is the same as now.' }),
      ],
      confirm: `Roll back to version ${entry.version}`,
    });
    if (!ok) return;
    await this.write(
      seen,
      () => api('POST', rolloutPath(this.key, '/rollback'), { body: { version: entry.version }, ifMatch: seen.version }),
      `rolled back to version ${entry.version}`,
    );
  }
}

function decisionResult(answer) {
  const bucket = typeof answer.bucket === 'number' ? `${answer.bucket} (of 0–9999)` : '—';
  return h(
    'div',
    { class: 'result', data: { flow: String(answer.flow), reason: String(answer.reason) } },
    h('div', { class: `flow ${answer.flow === 'stytch' ? 'stytch' : 'legacy'}`, text: answer.flow }),
    kv([
      ['Reason', h('code', { text: answer.reason })],
      ['Rule', answer.rule === null ? h('span', { class: 'faint', text: 'none' }) : h('code', { text: answer.rule })],
      ['Bucket', bucket],
      ['Version', String(answer.version)],
      answer.session ? ['Session', h('code', { text: answer.session.action })] : null,
    ]),
  );
}

// ---------------------------------------------------------------------------------------------
// Charts: SVG drawn here (two small line charts do not need a library).

const W = 520;
const H = 180;
const PAD = { left: 42, right: 12, top: 12, bottom: 26 };

function niceMax(max) {
  if (max <= 0) return 4;
  const step = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= max) return m * step;
  return 10 * step;
}

// series: [{name, values: [number|null]}]; times: [Date]; y: {min, max, ticks, format}
function lineChart({ series, times, y, hover, empty, area }) {
  const n = times.length;
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const x = (i) => PAD.left + (n <= 1 ? plotW : (i * plotW) / (n - 1));
  const yAt = (v) => PAD.top + plotH - ((v - y.min) / (y.max - y.min)) * plotH;
  const svg = s('svg', { class: 'plot', viewBox: `0 0 ${W} ${H}`, role: 'img' });
  for (let t = 0; t <= y.ticks; t += 1) {
    const v = y.min + ((y.max - y.min) * t) / y.ticks;
    svg.append(
      s('line', { class: 'grid-line', x1: PAD.left, x2: W - PAD.right, y1: yAt(v), y2: yAt(v) }),
      s('text', { class: 'axis-label', x: PAD.left - 6, y: yAt(v) + 3.5, 'text-anchor': 'end' }, y.format(v)),
    );
  }
  for (let i = 0; i < n; i += 1) {
    if (i % 15 === 0 || i === n - 1) {
      const anchor = i === 0 ? 'start' : i === n - 1 ? 'end' : 'middle';
      svg.append(s('text', { class: 'axis-label', x: x(i), y: H - 8, 'text-anchor': anchor }, clock.format(times[i])));
    }
  }
  const hasData = series.some((line) => line.values.some((v) => v !== null && v > 0));
  if (!hasData) {
    svg.append(s('text', { class: 'no-data', x: PAD.left + plotW / 2, y: PAD.top + plotH / 2, 'text-anchor': 'middle' }, empty));
    return svg;
  }
  for (const line of series) {
    let d = '';
    let run = 0;
    line.values.forEach((v, i) => {
      if (v === null) {
        run = 0;
        return;
      }
      d += `${run === 0 ? 'M' : 'L'}${x(i).toFixed(1)},${yAt(v).toFixed(1)}`;
      run += 1;
      // A point with no neighbour is drawn as a dot, so a single minute shows.
      const lonely = (i === 0 || line.values[i - 1] === null) && (i === n - 1 || line.values[i + 1] === null);
      if (lonely) svg.append(s('circle', { class: `dot ${line.name}`, cx: x(i), cy: yAt(v), r: 2.5 }));
    });
    if (area && d) {
      svg.append(s('path', { class: `area ${line.name}`, d: `${d}L${x(n - 1)},${yAt(y.min)}L${x(0)},${yAt(y.min)}Z` }));
    }
    svg.append(s('path', { class: `line ${line.name}`, d }));
  }
  const column = plotW / Math.max(1, n - 1);
  for (let i = 0; i < n; i += 1) {
    svg.append(
      s('rect', { class: 'hover', x: x(i) - column / 2, y: PAD.top, width: column, height: plotH }, s('title', {}, hover(i))),
    );
  }
  return svg;
}

function decisionsChart(minutes) {
  const stytch = minutes.map((m) => m.decisions?.stytch ?? 0);
  const legacy = minutes.map((m) => m.decisions?.legacy ?? 0);
  const times = minutes.map((m) => new Date(m.start));
  const max = niceMax(Math.max(0, ...stytch, ...legacy));
  const sum = (values) => values.reduce((a, b) => a + b, 0);
  return h(
    'div',
    { class: 'chart', data: { test: 'decisions-chart' } },
    h('h3', { text: 'Decisions per minute' }),
    h(
      'div',
      { class: 'legend' },
      h('span', {}, h('span', { class: 'swatch stytch' }), 'Stytch ', h('strong', { text: number.format(sum(stytch)) })),
      h('span', {}, h('span', { class: 'swatch legacy' }), 'Legacy ', h('strong', { text: number.format(sum(legacy)) })),
    ),
    lineChart({
      series: [
        { name: 'legacy', values: legacy },
        { name: 'stytch', values: stytch },
      ],
      times,
      area: true,
      y: { min: 0, max, ticks: 4, format: (v) => number.format(Math.round(v)) },
      hover: (i) => `${clock.format(times[i])}: Stytch ${stytch[i]}, legacy ${legacy[i]}`,
      empty: 'No decisions in the last hour',
    }),
  );
}

function successChart(minutes) {
  const times = minutes.map((m) => new Date(m.start));
  const rate = (o) => {
    const attempts = (o?.success ?? 0) + (o?.failure ?? 0);
    return attempts ? (100 * (o.success ?? 0)) / attempts : null;
  };
  const stytch = minutes.map((m) => rate(m.outcomes?.stytch));
  const legacy = minutes.map((m) => rate(m.outcomes?.legacy));
  const total = (flow) =>
    minutes.reduce(
      (acc, m) => ({ success: acc.success + (m.outcomes?.[flow]?.success ?? 0), failure: acc.failure + (m.outcomes?.[flow]?.failure ?? 0) }),
      { success: 0, failure: 0 },
    );
  const legend = (flow, label) => {
    const t = total(flow);
    const attempts = t.success + t.failure;
    return h(
      'span',
      {},
      h('span', { class: `swatch ${flow}` }),
      `${label} `,
      h('strong', { text: attempts ? pct((100 * t.success) / attempts) : '—' }),
      attempts ? ` of ${plural(attempts, 'login', 'logins')}` : '',
    );
  };
  const seen = [...stytch, ...legacy].filter((v) => v !== null);
  const low = seen.length ? Math.min(...seen) : 0;
  // The lowest of these below every rate, so that the four steps up to 100 % are whole.
  const min = [96, 92, 80, 60, 0].find((m) => m < low) ?? 0;
  return h(
    'div',
    { class: 'chart', data: { test: 'success-chart' } },
    h('h3', { text: 'Login success rate' }),
    h('div', { class: 'legend' }, legend('stytch', 'Stytch'), legend('legacy', 'Legacy')),
    lineChart({
      series: [
        { name: 'legacy', values: legacy },
        { name: 'stytch', values: stytch },
      ],
      times,
      y: { min, max: 100, ticks: 4, format: (v) => `${Math.round(v)}%` },
      hover: (i) =>
        `${clock.format(times[i])}: Stytch ${stytch[i] === null ? '—' : pct(stytch[i].toFixed(1))}, legacy ${legacy[i] === null ? '—' : pct(legacy[i].toFixed(1))}`,
      empty: 'No login outcomes reported in the last hour',
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Start

async function start() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  window.addEventListener('hashchange', route);
  if (token) {
    try {
      await signIn(token);
    } catch (error) {
      session = null;
      // A service that did not answer has not refused the token: keep it for a reload.
      if (error.status === 0) return showSignIn(`${error.message} Reload the page to try again.`);
      sessionStorage.removeItem(TOKEN_KEY);
    }
  }
  route();
}

start();
