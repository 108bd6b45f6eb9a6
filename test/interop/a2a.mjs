// The A2A JS SDK (@a2a-js/sdk, v1.0 client) through xavyo: it resolves an
// agent's card from the gateway, sends a message and consumes a streamed
// task; with the token of a caller without the entitlement it is refused.
import { randomUUID } from 'node:crypto';
import { ClientFactory, ClientFactoryOptions, JsonRpcTransportFactory } from '@a2a-js/sdk/client';
import { SendMessageRequest } from '@a2a-js/sdk';

const { AGENT_BASE, TOKEN, DENIED_TOKEN } = process.env;

function withToken(token) {
  return (url, init = {}) => {
    const headers = new Headers(init.headers);
    headers.set('Authorization', `Bearer ${token}`);
    return fetch(url, { ...init, headers });
  };
}

async function client(token) {
  const options = ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
    transports: [new JsonRpcTransportFactory({ fetchImpl: withToken(token) })],
  });
  // The card's full URL: a relative path would resolve against the parent.
  return new ClientFactory(options).createFromUrl(`${AGENT_BASE}/.well-known/agent-card.json`, '');
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
console.log(`a2a js sdk: sent, streamed ${events.length} events, refused without the entitlement`);
