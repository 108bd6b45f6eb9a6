// The official MCP TypeScript SDK client through xavyo's MCP gateway: a
// client-credentials token, an mTLS client certificate, and a user's token
// from the authorization code flow. Each lists exactly its permitted
// tools, calls one, and is refused another.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js'
import { Agent, fetch as undiciFetch } from 'undici'
import * as client from 'openid-client'
import { Client as ClientV2, StreamableHTTPClientTransport as TransportV2 } from '@modelcontextprotocol/client'

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`missing ${k}`); return v }
const ADMIN = env('ADMIN'), AGENT = env('AGENT'), SLUG = env('SLUG')
const endpoint = new URL(`${AGENT}/t/${SLUG}/mcp`)
const step = (name) => console.log(`ok - ${name}`)
const ca = readFileSync(env('AGENT_CA'))

async function connect(name, opts) {
  const client = new Client({ name, version: '1.0.0' })
  await client.connect(new StreamableHTTPClientTransport(endpoint, opts))
  return client
}

async function check(client, label, want, allowed, refused) {
  const { tools } = await client.listTools()
  assert.deepEqual(tools.map((t) => t.name).sort(), want, `${label}: tools/list`)
  const res = await client.callTool({ name: allowed, arguments: { text: `hello from ${label}` } })
  assert.equal(res.isError ?? false, false, `${label}: ${JSON.stringify(res)}`)
  assert.equal(res.content[0].text, `hello from ${label}`)
  await assert.rejects(client.callTool({ name: refused, arguments: { q: 'x' } }), (e) => {
    assert.match(String(e.message), /no assignment grants this entitlement/)
    assert.ok(e.data?.audit_id, 'the denial carries an audit id')
    return true
  }, `${label}: ${refused} must be refused`)
  await client.close()
  step(`${label}: lists ${want.join(', ')}; calls ${allowed}; refused ${refused}`)
}

// 1. A bearer token from client credentials.
const tr = await fetch(`${ADMIN}/t/${SLUG}/token`, {
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: 'Basic ' + Buffer.from(`${encodeURIComponent(env('CLIENT_ID'))}:${encodeURIComponent(env('CLIENT_SECRET'))}`).toString('base64') },
  body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'mcp', resource: endpoint.href }),
})
assert.equal(tr.status, 200)
const { access_token: agentToken } = await tr.json()
await check(await connect('sdk-bearer', { requestInit: { headers: { authorization: `Bearer ${agentToken}` } } }),
  'client credentials', ['bench__add', 'bench__echo'], 'bench__echo', 'bench__tool_0')

// 1b. The same token over the older HTTP+SSE transport (2024-11-05) on the same endpoint.
const sseClient = new Client({ name: 'sdk-sse', version: '1.0.0' })
await sseClient.connect(new SSEClientTransport(endpoint, { requestInit: { headers: { authorization: `Bearer ${agentToken}` } } }))
await check(sseClient, 'HTTP+SSE transport', ['bench__add', 'bench__echo'], 'bench__echo', 'bench__tool_0')

// 1c. The v2 client (@modelcontextprotocol/client): legacy negotiation, auto
// (it probes the stateless era first with server/discover) and pinned to the
// stateless era (2026-07-28: no session, every request carries its version).
for (const mode of ['legacy', 'auto', { pin: '2026-07-28' }]) {
  const v2 = new ClientV2({ name: `sdk-v2-${mode}`, version: '1.0.0' }, { versionNegotiation: { mode } })
  await v2.connect(new TransportV2(endpoint, { requestInit: { headers: { authorization: `Bearer ${agentToken}` } } }))
  const label = `client v2 (${typeof mode === 'string' ? mode : `pinned ${mode.pin}`})`
  if (typeof mode !== 'string' || mode === 'auto') {
    assert.equal(v2.getNegotiatedProtocolVersion(), '2026-07-28', `${label}: the stateless era`)
  }
  await check(v2, label, ['bench__add', 'bench__echo'], 'bench__echo', 'bench__tool_0')
}

// 2. The agent's client certificate, no token.
const dispatcher = new Agent({ connect: { ca, cert: readFileSync(env('CERT_FILE')), key: readFileSync(env('KEY_FILE')) } })
const mtlsFetch = (url, init) => undiciFetch(url, { ...init, dispatcher })
await check(await connect('sdk-mtls', { fetch: mtlsFetch }), 'mTLS certificate', ['bench__add', 'bench__echo'], 'bench__echo', 'bench__tool_0')

// Without credentials the SDK gets the gateway's 401.
await assert.rejects(connect('sdk-anonymous', {}), (e) => e.code === 401)
step('no credentials: 401')

// 3. A user's token from the code flow, through the real login page.
const issuer = new URL(`${ADMIN}/t/${SLUG}`)
const pub = await client.discovery(issuer, env('APP_CLIENT_ID'), undefined, client.None(), { execute: [client.allowInsecureRequests] })
const verifier = client.randomPKCECodeVerifier()
const state = client.randomState()
const toLogin = await fetch(client.buildAuthorizationUrl(pub, {
  redirect_uri: env('REDIRECT_URI'), scope: 'mcp', state, resource: endpoint.href,
  code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
}), { redirect: 'manual' })
assert.equal(toLogin.status, 302)
const page = await fetch(new URL(toLogin.headers.get('location'), ADMIN), { redirect: 'manual' })
assert.equal(page.status, 200)
const html = await page.text()
const form = new URLSearchParams()
for (const [, k, v] of html.matchAll(/<input type="hidden" name="([a-z_]+)" value="([^"]*)">/g)) {
  form.set(k, v.replaceAll('&amp;', '&').replaceAll('&#43;', '+').replaceAll('&#34;', '"').replaceAll('&#39;', "'"))
}
form.set('login', env('USER_LOGIN'))
form.set('password', env('USER_PASSWORD'))
const action = html.match(/<form method="post" action="([^"]+)"/)[1].replaceAll('&amp;', '&')
const posted = await fetch(new URL(action, ADMIN), {
  method: 'POST', redirect: 'manual', body: form,
  headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: page.headers.get('set-cookie').split(';')[0] },
})
assert.equal(posted.status, 302)
const userTokens = await client.authorizationCodeGrant(pub, new URL(posted.headers.get('location')), { pkceCodeVerifier: verifier, expectedState: state })
await check(await connect('sdk-user', { requestInit: { headers: { authorization: `Bearer ${userTokens.access_token}` } } }),
  'user (code flow)', ['bench__echo'], 'bench__echo', 'bench__tool_0')
console.log('gateway interop: all passed')
