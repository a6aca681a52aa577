// A login route that asks Switchyard through OpenFeature, with no Switchyard-specific client.
//   npm install express @openfeature/server-sdk @openfeature/ofrep-provider
//   SWITCHYARD_URL=http://127.0.0.1:8080 SWITCHYARD_TOKEN=<a decide token> node server.js
const express = require('express');
const { OpenFeature } = require('@openfeature/server-sdk');
const { OFREPProvider } = require('@openfeature/ofrep-provider');

OpenFeature.setProvider(new OFREPProvider({
  baseUrl: process.env.SWITCHYARD_URL || 'http://127.0.0.1:8080',
  headers: [['Authorization', `Bearer ${process.env.SWITCHYARD_TOKEN}`]],
}));
const flags = OpenFeature.getClient();
const rollout = process.env.ROLLOUT || 'stytch-login';
const app = express();

app.get('/healthz', (req, res) => res.send('ok'));
app.get('/login', async (req, res) => {
  const cookies = Object.fromEntries((req.headers.cookie || '').split(';').filter((c) => c.includes('='))
    .map((c) => { const i = c.indexOf('='); return [c.slice(0, i).trim(), c.slice(i + 1).trim()]; }));
  // The flag is the rollout; the context is what POST /v1/decide takes (targetingKey = user key).
  const { value: flow, flagMetadata: m } = await flags.getStringDetails(rollout, 'legacy', {
    targetingKey: req.query.user, device_id: cookies.device_id, ip: req.ip, cookies,
  });
  if (m.set_cookie_name) { // the sticky cookie that keeps this device's place in line
    res.cookie(m.set_cookie_name, m.set_cookie_value,
      { maxAge: m.set_cookie_max_age * 1000, httpOnly: true, sameSite: 'lax' });
  }
  res.redirect(302, flow === 'stytch' ? '/login/stytch' : '/login/legacy');
});
app.listen(Number(process.env.PORT || 3000), '127.0.0.1');
