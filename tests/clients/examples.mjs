// Checks the OpenFeature examples' login routes (examples/ofrep-express, examples/ofrep-flask),
// each already running against Switchyard: for several users, with and without the sticky
// cookie, the flow a route redirects to and the cookie it sets are what POST /v1/decide says.
// Arguments: name=url of each example. The examples read the rollout ROLLOUT.
import assert from 'node:assert/strict';
import { createRollout, decideFor } from './common.mjs';

const rollout = process.env.ROLLOUT;
const examples = process.argv.slice(2).map((arg) => arg.split('='));
const created = await createRollout({ key: rollout, percentage: 50, salt: 'examples' });
const cookieName = created.sticky.cookie_name;

async function login(url, user, cookie) {
  const response = await fetch(`${url}/login?user=${encodeURIComponent(user)}`, {
    redirect: 'manual', headers: cookie ? { Cookie: `${cookieName}=${cookie}` } : {},
  });
  assert.equal(response.status, 302, `${url}: ${await response.text()}`);
  const setCookie = response.headers.get('set-cookie');
  return {
    location: new URL(response.headers.get('location'), url).pathname,
    cookie: setCookie ? setCookie.split(';')[0] : null,
  };
}

for (const [name, url] of examples) {
  const flows = new Set();
  for (let i = 0; i < 8; i++) {
    const user = `user-${i}@example.com`;
    const fresh = await login(url, user);
    const decided = await decideFor(rollout, { targetingKey: user, ip: '127.0.0.1', cookies: {} });
    assert.equal(fresh.location, `/login/${decided.flow}`, `${name} ${user}`);
    assert.equal(fresh.cookie, `${cookieName}=${decided.set_cookie.value}`, `${name} ${user}`);
    flows.add(decided.flow);
    // Back with the cookie it set: decided as decide decides with that cookie.
    const value = decided.set_cookie.value;
    const again = await login(url, user, value);
    const decidedAgain = await decideFor(rollout, { targetingKey: user, ip: '127.0.0.1', cookies: { [cookieName]: value } });
    assert.equal(again.location, `/login/${decidedAgain.flow}`, `${name} ${user} with its cookie`);
    const expected = decidedAgain.set_cookie ? `${cookieName}=${decidedAgain.set_cookie.value}` : null;
    assert.equal(again.cookie, expected, `${name} ${user} with its cookie`);
  }
  assert.deepEqual([...flows].sort(), ['legacy', 'stytch'], `${name}: both flows among the users`);
  console.log(`examples: ${name}'s login route chose decide's flow and cookie for 8 users, twice each`);
}
