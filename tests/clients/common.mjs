// Shared by the Node client checks: the service's address and tokens (from tests/clients/run.sh),
// admin calls, POST /v1/decide, and what an OFREP evaluation must equal for a decide answer.
import assert from 'node:assert/strict';

export const SY = process.env.SY_URL;
export const ADMIN = process.env.SY_ADMIN_TOKEN;
export const DECIDE = process.env.SY_DECIDE_TOKEN;
if (!SY || !ADMIN || !DECIDE) throw new Error('SY_URL, SY_ADMIN_TOKEN and SY_DECIDE_TOKEN must be set');

export async function call(method, path, token, body, headers = {}) {
  const response = await fetch(SY + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : null };
}

/** Creates a rollout (admin API) and returns its stored form. */
export async function createRollout(draft) {
  const created = await call('POST', '/v1/rollouts', ADMIN, draft);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return created.body;
}

export async function patchRollout(key, patch) {
  const patched = await call('PATCH', `/v1/rollouts/${key}`, ADMIN, patch);
  assert.equal(patched.status, 200, JSON.stringify(patched.body));
  return patched.body;
}

/** POST /v1/decide for the decide request an OpenFeature context stands for (SPEC §10). */
export async function decideFor(rollout, context) {
  const { targetingKey, ...rest } = context;
  const body = { rollout, ...rest };
  if (targetingKey !== undefined) body.user_key = targetingKey;
  const answer = await call('POST', '/v1/decide', DECIDE, body);
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body;
}

export const OFREP_REASON = {
  disabled: 'DISABLED', override_cookie: 'TARGETING_MATCH', rule: 'TARGETING_MATCH',
  enrolled: 'TARGETING_MATCH', sticky_cookie: 'TARGETING_MATCH', percentage: 'SPLIT',
};

/** The flag metadata an OFREP evaluation carries for this decide answer. */
export function metadataOf(decided) {
  const metadata = {
    reason: decided.reason, bucket: decided.bucket, version: decided.version,
    session_action: decided.session.action,
  };
  if (decided.rule !== null) metadata.rule = decided.rule;
  if (decided.set_cookie !== null) {
    metadata.set_cookie_name = decided.set_cookie.name;
    metadata.set_cookie_value = decided.set_cookie.value;
    metadata.set_cookie_max_age = decided.set_cookie.max_age_seconds;
  }
  return metadata;
}

/** Asserts that an SDK's evaluation details say exactly what decide said. */
export function assertSameAsDecide(details, decided, what) {
  assert.equal(details.errorCode, undefined, `${what}: ${details.errorCode} ${details.errorMessage}`);
  assert.equal(details.value, decided.flow, what);
  assert.equal(details.variant, decided.flow, what);
  assert.equal(details.reason, OFREP_REASON[decided.reason], what);
  assert.deepEqual(details.flagMetadata, metadataOf(decided), what);
}

export function unique(prefix) {
  return `${prefix}-${process.pid}-${Date.now() % 100000}`;
}
