// The A2A JS SDK (@a2a-js/sdk) through xavyo, in v1.0 and in v0.3 (its
// compatibility layer, toward an agent that speaks 0.3): it resolves the
// agent's card from the gateway, sends a message and consumes a streamed
// task; with the token of a caller without the entitlement it is refused.
import { randomUUID } from 'node:crypto';
import { ClientFactory, ClientFactoryOptions, JsonRpcTransportFactory } from '@a2a-js/sdk/client';
import { SendMessageRequest, verifyAgentCardSignature } from '@a2a-js/sdk';
import { importJWK } from 'jose';

const { AGENT_BASE, TOKEN, DENIED_TOKEN, V03_BASE, V03_TOKEN } = process.env;

function withToken(token) {
  return (url, init = {}) => {
    const headers = new Headers(init.headers);
    headers.set('Authorization', `Bearer ${token}`);
    return fetch(url, { ...init, headers });
  };
}

async function client(token, base = AGENT_BASE) {
  const options = ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
    transports: [new JsonRpcTransportFactory({ fetchImpl: withToken(token), legacyCompat: { enabled: true } })],
  });
  // The card's full URL: a relative path would resolve against the parent.
  return new ClientFactory(options).createFromUrl(`${base}/.well-known/agent-card.json`, '');
}

// The card's signature, checked by the SDK's own verifier with the key
// its jku names (xavyo's tenant JWKS).
const verify = verifyAgentCardSignature(async (kid, jku) => {
  const set = await (await fetch(jku)).json();
  const jwk = set.keys.find((k) => k.kid === kid);
  if (!jwk) throw new Error(`no key ${kid} at ${jku}`);
  return importJWK(jwk, jwk.alg);
});
for (const base of [AGENT_BASE, V03_BASE]) {
  const card = await (await fetch(`${base}/.well-known/agent-card.json`)).json();
  await verify(card);
  const tampered = { ...card, description: `${card.description} (changed)` };
  let caught = false;
  try { await verify(tampered); } catch { caught = true; }
  if (!caught) throw new Error('a changed card verified');
}

const request = (text) => SendMessageRequest.fromJSON({ message: { messageId: randomUUID(), role: 'ROLE_USER', parts: [{ text }] } });

const c = await client(TOKEN);
const sent = JSON.stringify(await c.sendMessage(request('hello from the js sdk')));
if (!sent.includes('hello from the js sdk')) throw new Error(`sendMessage: ${sent}`);

const events = [];
for await (const ev of c.sendMessageStream(request('streamed from the js sdk'))) events.push(JSON.stringify(ev));
if (!events.some((e) => e.includes('streamed from the js sdk'))) throw new Error(`stream: ${events.join('\n')}`);

let refused = false;
try {
  await (await client(DENIED_TOKEN)).sendMessage(request('not allowed'));
} catch (err) {
  refused = /403|not allowed/i.test(String(err));
  if (!refused) throw err;
}
if (!refused) throw new Error('a caller without the entitlement was answered');
// v0.3 on the wire: the card says the agent speaks 0.3, the SDK switches.
const old = await client(V03_TOKEN, V03_BASE);
const oldSent = JSON.stringify(await old.sendMessage(request('hello in 0.3')));
if (!oldSent.includes('hello in 0.3')) throw new Error(`sendMessage 0.3: ${oldSent}`);
const oldEvents = [];
for await (const ev of old.sendMessageStream(request('streamed in 0.3'))) oldEvents.push(JSON.stringify(ev));
if (!oldEvents.some((e) => e.includes('streamed in 0.3'))) throw new Error(`stream 0.3: ${oldEvents.join('\n')}`);
console.log(`a2a js sdk: cards verified (a changed one refused); sent, streamed ${events.length} events, refused without the entitlement; in 0.3 sent and streamed ${oldEvents.length} events`);
