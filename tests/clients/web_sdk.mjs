// The real @openfeature/web-sdk with @openfeature/ofrep-web-provider (bulk evaluation, cached,
// polled) against Switchyard: its values equal POST /v1/decide; a poll with nothing changed
// sends If-None-Match and gets 304; after a percentage change the next poll gets the new
// values; a wrong token is the provider's fatal error and the default value.
import assert from 'node:assert/strict';
import { OpenFeature, ProviderEvents } from '@openfeature/web-sdk';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';
import { SY, DECIDE, createRollout, patchRollout, decideFor, assertSameAsDecide, unique } from './common.mjs';

const key = unique('ofrep-web');
await createRollout({ key, percentage: 0 });

// Every bulk request the provider makes, with what it sent and got.
const seen = [];
const recordingFetch = async (request) => {
  const response = await fetch(request);
  seen.push({
    url: request.url, status: response.status,
    ifNoneMatch: request.headers.get('If-None-Match'), etag: response.headers.get('ETag'),
  });
  return response;
};
const until = async (what, condition) => {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}; requests: ${JSON.stringify(seen)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

const context = { targetingKey: 'frank@example.com', country: 'GB', platform: 'web' };
await OpenFeature.setContext(context);
await OpenFeature.setProviderAndWait(new OFREPWebProvider({
  baseUrl: SY, headers: [['Authorization', `Bearer ${DECIDE}`]],
  pollInterval: 200, cacheMode: 'disabled', fetchImplementation: recordingFetch,
}));
const client = OpenFeature.getClient();

const before = client.getStringDetails(key, 'stytch');
assertSameAsDecide(before, await decideFor(key, context), 'at 0 %');
assert.equal(before.value, 'legacy');
assert.equal(seen.length, 1);
assert.equal(seen[0].status, 200);
assert.match(seen[0].etag, /^"[0-9a-f]{32}"$/);
// The default rollout (stytch-login) is in the same answer.
assertSameAsDecide(client.getStringDetails('stytch-login', 'stytch'), await decideFor('stytch-login', context), 'stytch-login');

// Nothing changed: the next poll sends the ETag back and gets 304.
await until('a second poll', () => seen.length >= 2);
assert.equal(seen[1].ifNoneMatch, seen[0].etag);
assert.equal(seen[1].status, 304);

// Ramp to 100 %: the next poll gets 200, a new ETag and the new value.
const changed = new Promise((resolve) => client.addHandler(ProviderEvents.ConfigurationChanged, resolve));
await patchRollout(key, { percentage: 100 });
const event = await changed;
assert.ok(event.flagsChanged.includes(key), JSON.stringify(event));
const last = seen[seen.length - 1];
assert.equal(last.status, 200);
assert.notEqual(last.etag, seen[0].etag);
const after = client.getStringDetails(key, 'legacy');
assertSameAsDecide(after, await decideFor(key, context), 'at 100 %');
assert.equal(after.value, 'stytch');
assert.equal(after.flagMetadata.version, 2);
const polls304 = seen.filter((r) => r.status === 304).length;

// A wrong token: the provider stops (fatal error) and the client gives the default value.
const wrongSeen = [];
await assert.rejects(OpenFeature.setProviderAndWait('wrong-token', new OFREPWebProvider({
  baseUrl: SY, headers: [['Authorization', 'Bearer not-a-token']], cacheMode: 'disabled',
  fetchImplementation: async (request) => { const r = await fetch(request); wrongSeen.push(r.status); return r; },
})));
const wrong = OpenFeature.getClient('wrong-token').getStringDetails(key, 'fallback');
assert.equal(wrong.value, 'fallback');
assert.equal(wrong.reason, 'ERROR');
assert.equal(wrong.errorCode, 'PROVIDER_FATAL');
assert.deepEqual(wrongSeen, [401]);

await OpenFeature.close();
console.log(`web-sdk: bulk values equal decide; ${polls304} poll(s) answered 304 with nothing changed; `
  + 'after 0 % → 100 % the next poll got 200 and the new value; a wrong token is fatal (401)');
