// The real @openfeature/server-sdk with @openfeature/ofrep-provider against Switchyard: every
// evaluation equals POST /v1/decide for the same input; an unknown flag, a missing targeting
// key, a bad context and a wrong token take the SDK's own error paths with the default value.
import assert from 'node:assert/strict';
import { OpenFeature } from '@openfeature/server-sdk';
import { OFREPProvider } from '@openfeature/ofrep-provider';
import { SY, DECIDE, createRollout, decideFor, assertSameAsDecide, unique } from './common.mjs';

const key = unique('ofrep-node');
const rollout = await createRollout({
  key, percentage: 40,
  rules: [
    { id: 'office', when: { ip_ranges: ['203.0.113.0/24'] }, then: 'stytch' },
    { id: 'uk-half', when: { countries: ['GB'] }, then: { percentage: 50 } },
  ],
});
const cookie = rollout.sticky.cookie_name;

// As the README says: the provider with the decide token, as a bearer token or an X-API-Key.
await OpenFeature.setProviderAndWait(new OFREPProvider({
  baseUrl: SY, headers: [['Authorization', `Bearer ${DECIDE}`]],
}));
await OpenFeature.setProviderAndWait('api-key', new OFREPProvider({
  baseUrl: SY, headers: [['X-API-Key', DECIDE]],
}));
await OpenFeature.setProviderAndWait('wrong-token', new OFREPProvider({
  baseUrl: SY, headers: [['Authorization', 'Bearer not-a-token']],
}));
const client = OpenFeature.getClient();
const apiKeyClient = OpenFeature.getClient('api-key');

// A device's first visit mints a sticky cookie; once it has been sent to Stytch, the cookie
// sent back decides (reason sticky_cookie). Take the first device id that goes to Stytch.
let device, first;
for (let i = 0; !first || first.flow !== 'stytch'; i++) {
  assert.ok(i < 200, 'one of 200 devices goes to Stytch at 40 %');
  device = `d-node-${i}`;
  first = await decideFor(key, { device_id: device, country: 'US' });
}
assert.ok(first.set_cookie, 'a first visit gets a sticky cookie');

const contexts = [
  { targetingKey: 'alice@example.com', ip: '198.51.100.7', country: 'US', platform: 'web' },
  { targetingKey: 'bob@example.com', ip: '203.0.113.9', platform: 'ios', app_version: '5.1.0' },
  { targetingKey: 'carol@example.com', country: 'GB', session_token: 'opaque-legacy-token' },
  { targetingKey: 'dave@example.com', device_id: device, cookies: { [cookie]: first.set_cookie.value } },
  { device_id: 'd-node-2', ip: '2001:db8::1', cookies: { other: 'x' } },
];
const reasons = new Set();
for (const context of contexts) {
  for (const [name, c] of [['bearer', client], ['x-api-key', apiKeyClient]]) {
    const details = await c.getStringDetails(key, 'legacy', context);
    const decided = await decideFor(key, context);
    assertSameAsDecide(details, decided, `${name} ${JSON.stringify(context)}`);
    reasons.add(decided.reason);
  }
}
assert.deepEqual([...reasons].sort(), ['percentage', 'rule', 'sticky_cookie'], 'the contexts reach these steps');

const unknown = await client.getStringDetails('no-such-rollout', 'legacy', contexts[0]);
assert.equal(unknown.errorCode, 'FLAG_NOT_FOUND');
assert.equal(unknown.value, 'legacy');
assert.equal(unknown.reason, 'ERROR');

const noKey = await client.getStringDetails(key, 'legacy', { country: 'GB' });
assert.equal(noKey.errorCode, 'TARGETING_KEY_MISSING');
assert.equal(noKey.value, 'legacy');

const badIp = await client.getStringDetails(key, 'legacy', { targetingKey: 'erin', ip: 'not-an-ip' });
assert.equal(badIp.errorCode, 'INVALID_CONTEXT');
assert.match(badIp.errorMessage, /context\.ip/);

const wrong = await OpenFeature.getClient('wrong-token').getStringDetails(key, 'stytch', contexts[0]);
assert.equal(wrong.reason, 'ERROR');
assert.equal(wrong.errorCode, 'GENERAL');
assert.equal(wrong.value, 'stytch', 'the default value');

await OpenFeature.close();
console.log(`server-sdk: ${contexts.length * 2} evaluations equal decide (${[...reasons].join(', ')}); `
  + 'FLAG_NOT_FOUND, TARGETING_KEY_MISSING, INVALID_CONTEXT and a wrong token give the default');
