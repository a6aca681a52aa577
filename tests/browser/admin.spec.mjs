// The admin page (SPEC §12) in a real browser: Debian's chromium through playwright-core,
// against the service tests/browser/run.sh started. Each step is one thing a person does, and
// what they must see; any JavaScript dialog (alert, confirm, prompt), page error, console
// error or CSP violation fails the run.
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (run tests/browser/run.sh)`);
  return value;
};
const URL = env('SY_URL');
const ADMIN = env('SY_ADMIN_TOKEN'); // "ops"
const OTHER_ADMIN = env('SY_OTHER_ADMIN_TOKEN'); // "deploy-bot"
const READER = env('SY_READ_TOKEN'); // "viewer"
const APP = env('SY_APP_TOKEN'); // "web-app": decide and report
const SCREENSHOTS = env('SCREENSHOTS');
const XSS = '<img src=x onerror=alert(1)>';
const TIMEOUT = 5000;

const started = Date.now();
let passed = 0;
async function step(name, fn) {
  const t = Date.now();
  await fn();
  passed += 1;
  console.log(`ok ${passed} - ${name} (${Date.now() - t} ms)`);
}

async function api(method, path, token, body, headers = {}) {
  const response = await fetch(URL + path, {
    method,
    headers: {
      Authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

async function decisionsCounted() {
  const text = await (await fetch(`${URL}/metrics`)).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith('switchyard_decisions_total{') && line.includes('rollout="stytch-login"'))
    .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
}

const problems = [];
function watch(page, who) {
  page.on('dialog', async (dialog) => {
    problems.push(`${who}: a JavaScript ${dialog.type()} opened: ${dialog.message()}`);
    await dialog.dismiss().catch(() => {});
  });
  page.on('pageerror', (error) => problems.push(`${who}: page error: ${error.message}`));
  page.on('console', (message) => {
    // Chromium logs every 4xx answer: the 412 and the 422 provoked below are expected, and the
    // 404 of the guard view, which this build does not have yet.
    const status = message.text().match(/^Failed to load resource: the server responded with a status of (\d+) /)?.[1];
    const expected = status === '412' || status === '422' || (status === '404' && /\/guard$/.test(message.location().url));
    if (message.type() === 'error' && !expected) {
      problems.push(`${who}: console error: ${message.text()}`);
    }
  });
  page.on('request', (request) => {
    for (const token of [ADMIN, OTHER_ADMIN, READER]) {
      if (request.url().includes(token)) problems.push(`${who}: a token in a URL: ${request.url()}`);
    }
  });
}

async function signIn(page, token, name) {
  await page.goto(`${URL}/admin`);
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#who').getByText(name, { exact: true }).waitFor({ timeout: TIMEOUT });
}

// Fills "try a decision" and returns the answer shown.
async function tryDecision(page, fields) {
  const form = page.locator('form').filter({ has: page.getByRole('button', { name: 'Decide' }) });
  for (const label of ['User key', 'Device id', 'IP address', 'Country', 'Platform', 'App version']) {
    await form.getByLabel(label, { exact: true }).fill(fields[label] ?? '');
  }
  const result = page.locator('[data-test=decision]');
  await result.evaluate((el) => el.replaceChildren());
  await form.getByRole('button', { name: 'Decide' }).click();
  const shown = result.locator('.result, .alert');
  await shown.waitFor({ timeout: TIMEOUT });
  if ((await shown.getAttribute('class')).includes('alert')) return { refused: await shown.innerText() };
  return { flow: await shown.getAttribute('data-flow'), reason: await shown.getAttribute('data-reason') };
}

async function confirm(page, expectedFromTo, button) {
  const dialog = page.locator('dialog[open]');
  await dialog.waitFor({ timeout: TIMEOUT });
  if (expectedFromTo) {
    const text = (await dialog.locator('[data-test=from-to]').innerText()).replace(/\s+/g, ' ');
    assert.equal(text, expectedFromTo);
  }
  await dialog.getByRole('button', { name: button }).click();
  await dialog.waitFor({ state: 'detached', timeout: TIMEOUT });
}

async function rolloutNow() {
  const { status, body } = await api('GET', '/v1/rollouts/stytch-login', ADMIN);
  assert.equal(status, 200);
  return body;
}

const browser = await chromium.launch({
  executablePath: env('CHROMIUM'),
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
});
console.log(`chromium ${browser.version()}`);

try {
  const admin = await browser.newContext({ viewport: { width: 1360, height: 900 } });
  const page = await admin.newPage();
  watch(page, 'admin');

  await step('the page is served with a strict Content-Security-Policy, nosniff and no-referrer', async () => {
    const response = await page.goto(`${URL}/admin`);
    assert.equal(response.status(), 200);
    const headers = response.headers();
    const csp = headers['content-security-policy'];
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.equal(headers['x-content-type-options'], 'nosniff');
    assert.equal(headers['referrer-policy'], 'no-referrer');
  });

  await step('sign in with an admin token, kept in sessionStorage only', async () => {
    await signIn(page, ADMIN, 'ops');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('switchyard.token')), ADMIN);
    assert.equal(await page.evaluate(() => localStorage.length), 0);
    assert.deepEqual(await admin.cookies(), []);
    assert.ok(!page.url().includes(ADMIN));
  });

  await step('the list shows stytch-login (created on the first start) at 0 %', async () => {
    const row = page.locator('tr[data-rollout="stytch-login"]');
    await row.waitFor({ timeout: TIMEOUT });
    assert.match(await row.innerText(), /0%/);
    assert.match(await row.innerText(), /Live/);
    await page.screenshot({ path: `${SCREENSHOTS}/list.png`, fullPage: true });
  });

  await step('ramp 0 → 10 % with the from → to confirmation', async () => {
    await page.getByRole('link', { name: 'stytch-login' }).click();
    await page.locator('[data-test=percentage]').waitFor({ timeout: TIMEOUT });
    await page.getByLabel('New percentage', { exact: true }).fill('10');
    await page.getByRole('button', { name: 'Change percentage…' }).click();
    await confirm(page, '0% → 10%', 'Change to 10%');
    await page.locator('[data-test=percentage]', { hasText: /^10%$/ }).waitFor({ timeout: TIMEOUT });
    const now = await rolloutNow();
    assert.equal(now.percentage, 10);
    assert.equal(now.version, 2);
    assert.equal(now.updated_by, 'ops');
  });

  await step('the new version is in the history with its diff', async () => {
    const entry = page.locator('li[data-version="2"]');
    await entry.waitFor({ timeout: TIMEOUT });
    const text = (await entry.innerText()).replace(/\s+/g, ' ');
    assert.match(text, /v2 changed by ops/);
    assert.match(text, /percentage 0% → 10%/);
    assert.match(text, /current/);
  });

  // Keys the service sends to each flow at 10 % (asked through the API, not computed here).
  const keys = { stytch: null, legacy: null };
  for (let i = 0; i < 400 && !(keys.stytch && keys.legacy); i += 1) {
    const { body } = await api('POST', '/v1/rollouts/stytch-login/evaluate', READER, { user_key: `user-${i}@example.com` });
    keys[body.flow] ??= `user-${i}@example.com`;
  }
  assert.ok(keys.stytch && keys.legacy, 'found a user of each flow at 10 %');

  await step('"try a decision" answers as decide would, and is not counted', async () => {
    const before = await decisionsCounted();
    assert.deepEqual(await tryDecision(page, { 'User key': keys.stytch }), { flow: 'stytch', reason: 'percentage' });
    assert.deepEqual(await tryDecision(page, { 'User key': keys.legacy, Country: 'GB' }), { flow: 'legacy', reason: 'percentage' });
    const decided = await api('POST', '/v1/decide', APP, { rollout: 'stytch-login', user_key: keys.stytch });
    assert.equal(decided.body.flow, 'stytch');
    assert.equal(await decisionsCounted(), before + 1, 'only the real decision was counted');
    const { refused } = await tryDecision(page, { 'User key': 'x', 'IP address': '10.0.0.300' });
    assert.match(refused, /422: ip: invalid IP address '10\.0\.0\.300'/);
  });

  await step('kill with the confirmation: every "try a decision" answer becomes legacy / disabled', async () => {
    await page.getByRole('button', { name: 'Kill switch…' }).click();
    await confirm(page, 'live → killed', 'Kill: send everyone to legacy');
    await page.locator('.detail-title .badge.killed').waitFor({ timeout: TIMEOUT });
    for (const fields of [{ 'User key': keys.stytch }, { 'User key': keys.legacy }, { 'Device id': 'd-81f2', Platform: 'ios' }]) {
      assert.deepEqual(await tryDecision(page, fields), { flow: 'legacy', reason: 'disabled' });
    }
    assert.equal((await rolloutNow()).enabled, false);
  });

  await step('roll back to version 2 from the history', async () => {
    await page.locator('li[data-version="2"]').getByRole('button', { name: 'Roll back to this version' }).click();
    const dialog = page.locator('dialog[open]');
    await dialog.waitFor({ timeout: TIMEOUT });
    assert.match((await dialog.innerText()).replace(/\s+/g, ' '), /kill switch killed → live/);
    await confirm(page, null, 'Roll back to version 2');
    await page.locator('.detail-title .badge.live').waitFor({ timeout: TIMEOUT });
    const now = await rolloutNow();
    assert.equal(now.version, 4);
    assert.equal(now.enabled, true);
    assert.equal(now.percentage, 10);
    assert.match((await page.locator('li[data-version="4"]').innerText()).replace(/\s+/g, ' '), /rolled back to v2 by ops/);
    assert.deepEqual(await tryDecision(page, { 'User key': keys.stytch }), { flow: 'stytch', reason: 'percentage' });
  });

  await step('a change made through the API meanwhile gives a 412 message naming who, and is not overwritten', async () => {
    await page.getByLabel('New percentage', { exact: true }).fill('20');
    await page.getByRole('button', { name: 'Change percentage…' }).click();
    await page.locator('dialog[open]').waitFor({ timeout: TIMEOUT });
    const meanwhile = await api('PATCH', '/v1/rollouts/stytch-login', OTHER_ADMIN, { percentage: 30 }, { 'If-Match': '"4"' });
    assert.equal(meanwhile.status, 200);
    await confirm(page, '10% → 20%', 'Change to 20%');
    const conflict = page.locator('[data-test=conflict]');
    await conflict.waitFor({ timeout: TIMEOUT });
    const text = (await page.locator('[data-test=rollout-alert]').innerText()).replace(/\s+/g, ' ');
    assert.match(text, /Not saved/);
    assert.match(text, /deploy-bot changed it to version 5/);
    assert.match(text, /percentage 10% → 30%/);
    const now = await rolloutNow();
    assert.equal(now.version, 5);
    assert.equal(now.percentage, 30);
    assert.equal(now.updated_by, 'deploy-bot');
    await page.locator('[data-test=percentage]', { hasText: /^30%$/ }).waitFor({ timeout: TIMEOUT });
  });

  await step('charts show this minute\'s decisions and login outcomes per flow', async () => {
    const sends = [];
    for (let i = 0; i < 120; i += 1) {
      sends.push(api('POST', '/v1/decide', APP, { rollout: 'stytch-login', user_key: `traffic-${i}` }));
    }
    for (let i = 0; i < 40; i += 1) {
      const flow = i % 2 ? 'stytch' : 'legacy';
      const outcome = i % 10 === 1 ? 'failure' : 'success';
      sends.push(api('POST', '/v1/outcomes', APP, { rollout: 'stytch-login', flow, outcome }));
    }
    const answers = await Promise.all(sends);
    assert.ok(answers.every((a) => a.status === 200 || a.status === 202));
    // The counts reach the shared buckets the charts read with the next flush (every second).
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await page.reload();
    const decisions = page.locator('[data-test=decisions-chart]');
    await decisions.locator('path.line.stytch').waitFor({ timeout: TIMEOUT });
    const legend = (await decisions.locator('.legend').innerText()).replace(/\s+/g, ' ');
    const [stytch, legacy] = [...legend.matchAll(/(\d[\d,]*)/g)].map((m) => Number(m[1].replace(/,/g, '')));
    assert.equal(stytch + legacy, 121, legend);
    const success = (await page.locator('[data-test=success-chart] .legend').innerText()).replace(/\s+/g, ' ');
    assert.match(success, /Stytch 80% of 20 logins/);
    assert.match(success, /Legacy 100% of 20 logins/);
    await page.screenshot({ path: `${SCREENSHOTS}/rollout.png`, fullPage: true });
  });

  await step('a description that is HTML is shown as text, and no dialog opens', async () => {
    await page.goto(`${URL}/admin#/`);
    await page.getByRole('button', { name: 'New rollout' }).click();
    await page.getByLabel('Key (a-z, 0-9, _ and -)').fill('web-login');
    await page.getByLabel('Description').fill(XSS);
    await page.getByRole('button', { name: 'Create rollout' }).click();
    await page.locator('.detail-title h1', { hasText: 'web-login' }).waitFor({ timeout: TIMEOUT });
    const description = page.locator('.detail-head [data-test=description]');
    assert.equal(await description.textContent(), XSS);
    await page.goto(`${URL}/admin#/`);
    await page.locator('tr[data-rollout="web-login"]').waitFor({ timeout: TIMEOUT });
    assert.equal(await page.locator('tr[data-rollout="web-login"] [data-test=description]').textContent(), XSS);
    await page.goto(`${URL}/admin#/audit`);
    await page.locator('.audit a', { hasText: 'web-login' }).first().waitFor({ timeout: TIMEOUT });
    assert.equal(await page.locator('img[src="x"]').count(), 0, 'no element was made from the description');
    await page.waitForTimeout(300); // an onerror handler would have run by now
    const created = await api('GET', '/v1/rollouts/web-login', READER);
    assert.equal(created.body.description, XSS);
    assert.equal(created.body.updated_by, 'ops');
  });

  // The schedule and guard members (SPEC §9) and GET /v1/rollouts/{key}/guard come with issue
  // 13, which this build does not have yet: until then their answers are completed here with
  // page.route, in SPEC §9's shapes, to check what the page shows of them. Everything else
  // on the page stays real.
  await step('schedule steps (applied / next / pending) and the guard view, from a real schedule and guard', async () => {
    const hour = 3_600_000;
    const steps = [
      { at: new Date(Date.now() - 2 * hour).toISOString(), percentage: 5 },
      { at: new Date(Date.now() - hour).toISOString(), percentage: 30 },
      { at: new Date(Date.now() + 20 * hour).toISOString(), percentage: 50 },
      { at: new Date(Date.now() + 44 * hour).toISOString(), percentage: 100 },
    ];
    const guard = { enabled: true, window_seconds: 600, min_attempts: 20, max_failure_rate_increase: 2.0, confidence: 0.95, action: 'kill' };
    const created = await api('POST', '/v1/rollouts', ADMIN, {
      key: 'ramped-login',
      description: 'a planned ramp with a guard',
      percentage: 0,
      schedule: { state: 'active', steps },
      guard,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    // The two steps whose time has passed are caught up at once (only the latest is written).
    const deadline = Date.now() + TIMEOUT;
    let now;
    do {
      now = (await api('GET', '/v1/rollouts/ramped-login', READER)).body;
      if (now.percentage === 30) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    } while (Date.now() < deadline);
    assert.equal(now.percentage, 30, JSON.stringify(now));
    assert.equal(now.updated_by, 'schedule');
    // The guard's window starts just after the rollout was enabled (outcomes from before are
    // ignored, SPEC §9): wait for its first evaluation to name that start, and until it has come.
    let view;
    const windowKnown = Date.now() + 4 * TIMEOUT;
    do {
      view = (await api('GET', '/v1/rollouts/ramped-login/guard', READER)).body;
      if (view.window_start && Date.parse(view.window_start) < Date.now()) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    } while (Date.now() < windowKnown);
    // Outcomes for the guard to judge: 20 attempts each, 1 Stytch failure, none on legacy.
    const reports = [];
    for (let i = 0; i < 20; i += 1) {
      reports.push(api('POST', '/v1/outcomes', APP, { rollout: 'ramped-login', flow: 'stytch', outcome: i === 0 ? 'failure' : 'success' }));
      reports.push(api('POST', '/v1/outcomes', APP, { rollout: 'ramped-login', flow: 'legacy', outcome: 'success' }));
    }
    assert.ok((await Promise.all(reports)).every((a) => a.status === 202));
    // The counts are flushed within a second and judged every second (guards.interval_seconds = 1).
    const judged = Date.now() + 2 * TIMEOUT;
    do {
      view = (await api('GET', '/v1/rollouts/ramped-login/guard', READER)).body;
      if (view.stytch_attempts === 20 && view.legacy_attempts === 20) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    } while (Date.now() < judged);
    assert.equal(view.state, 'watching', JSON.stringify(view));

    await page.goto(`${URL}/admin#/rollouts/ramped-login`);
    const rows = page.locator('[data-test=schedule-steps] tbody tr');
    await rows.first().waitFor({ timeout: TIMEOUT });
    const states = await rows.locator('td:last-child').allInnerTexts();
    assert.deepEqual(states, ['applied', 'applied', 'next', 'pending']);
    await page.getByText('Trips when').waitFor({ timeout: TIMEOUT });
    const guardView = page.locator('[data-test=guard-view]');
    await guardView.locator('table').waitFor({ timeout: TIMEOUT });
    const text = (await guardView.innerText()).replace(/\s+/g, ' ');
    assert.match(text, /watching/);
    assert.match(text, /stytch 20 1 5%/);
    assert.match(text, /legacy 20 0 0%/);
    assert.match(text, /Lower bound of the increase: -?\d+\.\d\d points \(trips above 2\)/);
    await page.screenshot({ path: `${SCREENSHOTS}/schedule-and-guard.png`, fullPage: true });
    await page.goto(`${URL}/admin#/`);
    assert.match(await page.locator('tr[data-rollout="ramped-login"]').innerText(), /active[\s\S]*2\/4 steps/);
  });

  const reader = await browser.newContext({ viewport: { width: 1360, height: 900 } });
  const readPage = await reader.newPage();
  watch(readPage, 'viewer');

  await step('a read-only token sees the page without any write control', async () => {
    await signIn(readPage, READER, 'viewer');
    await readPage.locator('#who').getByText('read-only').waitFor({ timeout: TIMEOUT });
    await readPage.locator('tr[data-rollout="stytch-login"]').waitFor({ timeout: TIMEOUT });
    assert.equal(await readPage.locator('[data-write]').count(), 0);
    assert.equal(await readPage.getByRole('button', { name: 'New rollout' }).count(), 0);
    await readPage.getByRole('link', { name: 'stytch-login' }).click();
    await readPage.locator('li[data-version="5"]').waitFor({ timeout: TIMEOUT });
    assert.equal(await readPage.locator('[data-write]').count(), 0);
    assert.equal(await readPage.locator('input[type=range], #new-pct').count(), 0);
    for (const name of [/change/i, /kill/i, /re-enable/i, /roll back/i, /new rollout/i]) {
      assert.equal(await readPage.getByRole('button', { name }).count(), 0, `no ${name} button`);
    }
    // Reading and trying decisions still work.
    assert.deepEqual(await tryDecision(readPage, { 'User key': keys.stytch }), { flow: 'stytch', reason: 'percentage' });
    await readPage.screenshot({ path: `${SCREENSHOTS}/rollout-read-only.png`, fullPage: true });
  });

  await step('signing out forgets the token', async () => {
    await readPage.getByRole('button', { name: 'Sign out' }).click();
    await readPage.getByLabel('API token').waitFor({ timeout: TIMEOUT });
    assert.equal(await readPage.evaluate(() => sessionStorage.getItem('switchyard.token')), null);
  });

  assert.deepEqual(problems, [], 'no dialog, page error, console error or token in a URL');
  console.log(`all ${passed} checks passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} finally {
  await browser.close();
}
