// Real clients against a running xavyo: openid-client (a certified relying
// party) with jose, and the MCP TypeScript SDK's OAuth client. The Go test
// TestInteropWithRealClients starts the server, prepares the tenant and
// runs this script; any failed check exits non-zero.
import assert from 'node:assert/strict'
import http from 'node:http'
import { createHmac } from 'node:crypto'
import * as client from 'openid-client'
import * as jose from 'jose'
import { auth } from '@modelcontextprotocol/sdk/client/auth.js'

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`missing ${k}`); return v }
const ADMIN = env('ADMIN'), AGENT = env('AGENT'), SLUG = env('SLUG')
const issuer = new URL(`${ADMIN}/t/${SLUG}`)
const insecure = { execute: [client.allowInsecureRequests] } // the admin plane is plain http on loopback in tests
const step = (name) => console.log(`ok - ${name}`)

// Discovery, and every JWT verified against the JWKS.
let confidential = await client.discovery(issuer, env('CLIENT_ID'), env('CLIENT_SECRET'), client.ClientSecretBasic(env('CLIENT_SECRET')), insecure)
const md = confidential.serverMetadata()
assert.equal(md.issuer, issuer.href)
const jwks = jose.createRemoteJWKSet(new URL(md.jwks_uri))
const verify = async (jwt, audience) => (await jose.jwtVerify(jwt, jwks, { issuer: issuer.href, audience })).payload
step('discovery')

// Client credentials with client_secret_basic.
const cc = await client.clientCredentialsGrant(confidential, { scope: 'mcp' })
const mcpResource = `${AGENT}/t/${SLUG}/mcp`
let claims = await verify(cc.access_token, mcpResource)
assert.equal(claims.sub, env('AGENT_ID'))
assert.equal(claims.scope, 'mcp')
step('client credentials (client_secret_basic), token verified against JWKS')

// DPoP (RFC 9449) with openid-client's own support: a token bound to the
// client's key, used at the MCP gateway with a proof per request; the
// same token as a bearer token is refused.
const dpopKeys = await client.randomDPoPKeyPair('ES256')
const dpopHandle = client.getDPoPHandle(confidential, dpopKeys)
const dcc = await client.clientCredentialsGrant(confidential, { scope: 'mcp' }, { DPoP: dpopHandle })
assert.equal(dcc.token_type, 'dpop')
claims = await verify(dcc.access_token, mcpResource)
assert.equal(claims.cnf.jkt, await jose.calculateJwkThumbprint(await jose.exportJWK(dpopKeys.publicKey)))
const mcpInit = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'openid-client-dpop', version: '1' } } })
const mcpHeaders = () => new Headers({ 'content-type': 'application/json', accept: 'application/json, text/event-stream' })
const viaDPoP = await client.fetchProtectedResource(confidential, dcc.access_token, new URL(mcpResource), 'POST', mcpInit, mcpHeaders(),
  { DPoP: dpopHandle })
assert.equal(viaDPoP.status, 200, await viaDPoP.clone().text())
assert.ok(viaDPoP.headers.get('mcp-session-id'))
await assert.rejects(client.fetchProtectedResource(confidential, dcc.access_token, new URL(mcpResource), 'POST', mcpInit, mcpHeaders()),
  (err) => err.status === 401 && err.cause?.[0]?.scheme === 'dpop' && err.cause[0].parameters.error === 'invalid_token')
step('DPoP-bound token (openid-client) through the MCP gateway; as a bearer token refused')

// Client credentials with private_key_jwt.
const key = await jose.importJWK(JSON.parse(env('PRIVATE_JWK')), 'ES256')
const pkjwt = await client.discovery(issuer, env('CLIENT_ID'), undefined, client.PrivateKeyJwt({ key, kid: 'interop-1' }), insecure)
const cc2 = await client.clientCredentialsGrant(pkjwt, { scope: 'mcp' })
claims = await verify(cc2.access_token, mcpResource)
assert.equal(claims.sub, env('AGENT_ID'))
step('client credentials (private_key_jwt)')

// Token exchange: the agent acts for the user.
const ex = await client.genericGrantRequest(confidential, 'urn:ietf:params:oauth:grant-type:token-exchange', {
  subject_token: env('USER_TOKEN'), subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', scope: 'mcp', resource: mcpResource,
})
claims = await verify(ex.access_token, mcpResource)
assert.equal(claims.sub, env('USER_ID'))
assert.equal(claims.act.sub, env('AGENT_ID'))
step('token exchange produces act')

// Introspection and revocation.
let intro = await client.tokenIntrospection(confidential, cc.access_token)
assert.equal(intro.active, true)
await client.tokenRevocation(confidential, cc.access_token)
intro = await client.tokenIntrospection(confidential, cc.access_token)
assert.equal(intro.active, false)
step('introspection and revocation')

// Authorization code + PKCE through the real sign-in pages, as a browser
// would walk them (cookies kept by hand): the authorization request sends
// the person to /login?tx=…; signing in goes back to the request (a code,
// or the consent page for a client that is not first-party).
async function signIn(authorizationUrl, who = { login: env('USER_LOGIN'), password: env('USER_PASSWORD') }) {
  const jar = new Map()
  const go = async (url, init = {}) => {
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ')
    const res = await fetch(new URL(url, ADMIN), { ...init, redirect: 'manual', headers: { ...(init.headers || {}), cookie } })
    for (const c of res.headers.getSetCookie()) {
      const kv = c.split(';')[0]
      jar.set(kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1))
    }
    return res
  }
  const submit = async (html, fields) => {
    const form = new URLSearchParams()
    for (const [, k, v] of html.matchAll(/<input type="hidden" name="([a-z_]+)" value="([^"]*)">/g)) {
      form.set(k, v.replaceAll('&amp;', '&').replaceAll('&#43;', '+').replaceAll('&#34;', '"').replaceAll('&#39;', "'"))
    }
    for (const [k, v] of Object.entries(fields)) form.set(k, v)
    const action = html.match(/<form method="post" action="([^"]+)"/)[1].replaceAll('&amp;', '&')
    return go(action, { method: 'POST', body: form, headers: { 'content-type': 'application/x-www-form-urlencoded' } })
  }
  const toLogin = await go(authorizationUrl)
  assert.equal(toLogin.status, 302, `authorization request: ${toLogin.status}`)
  assert.match(toLogin.headers.get('location'), /\/login\?tx=/)
  const page = await go(toLogin.headers.get('location'))
  assert.equal(page.status, 200, `sign-in page: ${page.status}`)
  let res = await submit(await page.text(), { login: who.login, password: who.password })
  assert.equal(res.status, 302, `sign-in post: ${res.status}`)
  if (new URL(res.headers.get('location'), ADMIN).pathname.endsWith('/login/mfa')) {
    // The second step: a code of the person's authenticator app.
    const second = await go(res.headers.get('location'))
    const html = await second.text()
    assert.match(html, /name="code"/, 'second-step page')
    res = await submit(html, { code: totp(who.totpSecret, Date.now() + 30000) })
    assert.equal(res.status, 302, `second-step post: ${res.status}`)
  }
  if (new URL(res.headers.get('location'), ADMIN).pathname.endsWith('/consent')) {
    // A client that is not first-party: the person allows it on the
    // consent page (its CSRF token, bound to their SSO session).
    const consent = await go(res.headers.get('location'))
    const html = await consent.text()
    assert.match(html, /name="consent" value="allow"/, 'consent page')
    res = await submit(html, { consent: 'allow' })
    assert.equal(res.status, 302, `consent post: ${res.status}`)
  }
  const name = [...jar.keys()].find((k) => k.startsWith('xv_sso_'))
  sso = `${name}=${jar.get(name)}`
  return new URL(res.headers.get('location'))
}
let sso // the SSO session cookie of the last sign-in

// totp computes an RFC 6238 code (SHA-1, 6 digits, 30 s) of a base32
// secret at a time (ms), as an authenticator app does.
function totp(secret, at) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
  let bits = ''
  for (const ch of secret.replace(/=+$/, '')) bits += alphabet.indexOf(ch).toString(2).padStart(5, '0')
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)))
  const counter = Buffer.alloc(8)
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 30000)))
  const mac = createHmac('sha1', key).update(counter).digest()
  const off = mac[mac.length - 1] & 0xf
  return String((mac.readUInt32BE(off) & 0x7fffffff) % 1000000).padStart(6, '0')
}
const pub = await client.discovery(issuer, env('APP_CLIENT_ID'), undefined, client.None(), insecure)
const verifier = client.randomPKCECodeVerifier()
const state = client.randomState()
const nonce = client.randomNonce()
const authorizationUrl = client.buildAuthorizationUrl(pub, {
  redirect_uri: env('REDIRECT_URI'), scope: 'openid mcp offline_access', state, nonce,
  code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
})
const callback = await signIn(authorizationUrl)
const codeTokens = await client.authorizationCodeGrant(pub, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce })
assert.equal(codeTokens.claims().sub, env('USER_ID'))
await verify(codeTokens.access_token, mcpResource)
step('authorization code + PKCE through the login page; ID token checked (iss, nonce, RFC 9207 iss)')

// The SSO session: another authorization signs in without a page
// (prompt=none), as the same sign-in (auth_time); max_age=0 asks again.
const silentVerifier = client.randomPKCECodeVerifier()
const silentState = client.randomState()
const silentURL = client.buildAuthorizationUrl(pub, {
  redirect_uri: env('REDIRECT_URI'), scope: 'openid', state: silentState, prompt: 'none',
  code_challenge: await client.calculatePKCECodeChallenge(silentVerifier), code_challenge_method: 'S256',
})
const silent = await fetch(silentURL, { redirect: 'manual', headers: { cookie: sso } })
assert.equal(silent.status, 302, `prompt=none with an SSO session: ${silent.status}`)
const silentTokens = await client.authorizationCodeGrant(pub, new URL(silent.headers.get('location')),
  { pkceCodeVerifier: silentVerifier, expectedState: silentState })
assert.equal(silentTokens.claims().sub, env('USER_ID'))
assert.equal(silentTokens.claims().auth_time, codeTokens.claims().auth_time)
assert.deepEqual(silentTokens.claims().amr, ['pwd'])
const again = await fetch(client.buildAuthorizationUrl(pub, {
  redirect_uri: env('REDIRECT_URI'), scope: 'openid', state: silentState, max_age: '0',
  code_challenge: await client.calculatePKCECodeChallenge(silentVerifier), code_challenge_method: 'S256',
}), { redirect: 'manual', headers: { cookie: sso } })
assert.equal(again.status, 302, `max_age=0 sends the person to the sign-in page: ${again.status}`)
assert.match(again.headers.get('location'), /\/login\?tx=/)
const none = await fetch(silentURL, { redirect: 'manual' })
assert.equal(new URL(none.headers.get('location')).searchParams.get('error'), 'login_required')
step('SSO session: prompt=none signs in silently with the same auth_time; max_age=0 asks again; no session → login_required')


// Refresh rotation and reuse detection.
const rotated = await client.refreshTokenGrant(pub, codeTokens.refresh_token)
assert.notEqual(rotated.refresh_token, codeTokens.refresh_token)
await assert.rejects(client.refreshTokenGrant(pub, codeTokens.refresh_token), (e) => e.error === 'invalid_grant')
await assert.rejects(client.refreshTokenGrant(pub, rotated.refresh_token), (e) => e.error === 'invalid_grant')
step('refresh rotation; reuse revokes the family')

// RP-initiated logout: the end_session_endpoint from discovery, the
// person's ID token as hint, back to the registered address with state.
const fresh = await client.authorizationCodeGrant(pub, await signIn(authorizationUrl),
  { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce })
const logoutState = client.randomState()
const logoutURL = client.buildEndSessionUrl(pub, {
  id_token_hint: fresh.id_token, post_logout_redirect_uri: env('POST_LOGOUT_URI'), state: logoutState,
})
const loggedOut = await fetch(logoutURL, { redirect: 'manual', headers: { cookie: sso } })
assert.equal(loggedOut.status, 302, `end_session: ${loggedOut.status}`)
assert.equal(loggedOut.headers.get('location'), `${env('POST_LOGOUT_URI')}?state=${logoutState}`)
const after = await fetch(silentURL, { redirect: 'manual', headers: { cookie: sso } })
assert.equal(new URL(after.headers.get('location')).searchParams.get('error'), 'login_required')
await assert.rejects(client.refreshTokenGrant(pub, fresh.refresh_token), (e) => e.error === 'invalid_grant')
step('RP-initiated logout: end_session with id_token_hint and a registered post_logout_redirect_uri ends the SSO session')

// Web applications registered dynamically as confidential clients (the
// tenant allows it): a client secret, and private_key_jwt; a back-channel
// logout receiver; a second client signed in silently; the device flow.
const logoutTokens = []
const rp = http.createServer((req, res) => {
  let body = ''
  req.on('data', (c) => { body += c })
  req.on('end', () => {
    if (req.url === '/backchannel') logoutTokens.push(new URLSearchParams(body).get('logout_token'))
    res.writeHead(200, { 'cache-control': 'no-store' })
    res.end()
  })
})
await new Promise((resolve) => rp.listen(0, '127.0.0.1', resolve))
const rpBase = `http://127.0.0.1:${rp.address().port}`
const webRedirect = `${rpBase}/callback`
const wiki = await client.dynamicClientRegistration(issuer, {
  client_name: 'Wiki', redirect_uris: [webRedirect], token_endpoint_auth_method: 'client_secret_basic', response_types: ['code'],
  grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
  backchannel_logout_uri: `${rpBase}/backchannel`,
}, client.ClientSecretBasic(), insecure)
assert.match(wiki.clientMetadata().client_secret, /^xvs_/)
const codeFlow = async (config, extra = {}) => {
  const v = client.randomPKCECodeVerifier(), st = client.randomState(), n = client.randomNonce()
  const url = client.buildAuthorizationUrl(config, { redirect_uri: webRedirect, scope: 'openid', state: st, nonce: n,
    code_challenge: await client.calculatePKCECodeChallenge(v), code_challenge_method: 'S256', ...extra })
  return { url, check: { pkceCodeVerifier: v, expectedState: st, expectedNonce: n } }
}
let flow = await codeFlow(wiki)
const wikiTokens = await client.authorizationCodeGrant(wiki, await signIn(flow.url), flow.check)
const wikiSSO = sso
const wikiID = wikiTokens.claims()
assert.equal(wikiID.sub, env('USER_ID'))
assert.equal(wikiID.aud, wiki.clientMetadata().client_id)
step('a confidential web app registered by DCR (client_secret_basic): code flow through the pages and consent')

// A second client, already allowed, signs in silently in that session.
const quiet = client.buildAuthorizationUrl(pub, { redirect_uri: env('REDIRECT_URI'), scope: 'openid', state: silentState, prompt: 'none',
  code_challenge: await client.calculatePKCECodeChallenge(silentVerifier), code_challenge_method: 'S256' })
const quietAnswer = await fetch(quiet, { redirect: 'manual', headers: { cookie: wikiSSO } })
assert.equal(quietAnswer.status, 302)
const quietTokens = await client.authorizationCodeGrant(pub, new URL(quietAnswer.headers.get('location')),
  { pkceCodeVerifier: silentVerifier, expectedState: silentState })
assert.equal(quietTokens.claims().auth_time, wikiID.auth_time)
assert.equal(quietTokens.claims().sid, wikiID.sid)
step('a second client signs in silently (prompt=none) in the web app\'s session')

const { publicKey, privateKey } = await jose.generateKeyPair('ES256', { extractable: true })
const blog = await client.dynamicClientRegistration(issuer, {
  client_name: 'Blog', redirect_uris: [webRedirect], token_endpoint_auth_method: 'private_key_jwt', response_types: ['code'],
  grant_types: ['authorization_code', 'refresh_token'], token_endpoint_auth_signing_alg: 'ES256',
  jwks: { keys: [{ ...(await jose.exportJWK(publicKey)), kid: 'blog-1', alg: 'ES256', use: 'sig' }] },
}, client.PrivateKeyJwt({ key: privateKey, kid: 'blog-1' }), insecure)
assert.equal(blog.clientMetadata().client_secret, undefined)
flow = await codeFlow(blog)
const blogTokens = await client.authorizationCodeGrant(blog, await signIn(flow.url), flow.check)
assert.equal(blogTokens.claims().sub, env('USER_ID'))
const blogSSO = sso
step('a confidential web app registered by DCR (private_key_jwt): code flow')

// Signing out of the wiki's session: a logout token reaches the wiki's
// back channel, and validates.
const wikiLogout = await fetch(client.buildEndSessionUrl(wiki, { id_token_hint: wikiTokens.id_token }), { redirect: 'manual', headers: { cookie: wikiSSO } })
assert.equal(wikiLogout.status, 200, `end_session: ${wikiLogout.status}`)
for (let i = 0; i < 100 && logoutTokens.length === 0; i++) await new Promise((r) => setTimeout(r, 100))
assert.equal(logoutTokens.length, 1, 'one logout token')
const { payload: lt, protectedHeader } = await jose.jwtVerify(logoutTokens[0], jwks, { issuer: issuer.href, audience: wiki.clientMetadata().client_id,
  typ: 'logout+jwt', maxTokenAge: '2m' })
assert.equal(protectedHeader.typ, 'logout+jwt')
assert.deepEqual(lt.events, { 'http://schemas.openid.net/event/backchannel-logout': {} })
assert.equal(lt.sid, wikiID.sid)
assert.equal(lt.sub, env('USER_ID'))
assert.equal(lt.nonce, undefined)
assert.ok(lt.jti)
step('back-channel logout: the logout token reaches the relying party and validates (typ, iss, aud, events, sid, sub, no nonce)')

// The device flow: the wiki's CLI asks, the person allows it in their
// (blog) session, the CLI polls until it has the person's tokens.
const device = await client.initiateDeviceAuthorization(wiki, { scope: 'openid' })
const jar = [blogSSO]
const devicePage = await fetch(device.verification_uri_complete, { redirect: 'manual', headers: { cookie: jar.join('; ') } })
const deviceHTML = await devicePage.text()
assert.equal(devicePage.status, 200, `device page: ${devicePage.status}`)
assert.match(deviceHTML, /value="allow"/)
jar.push(devicePage.headers.getSetCookie().find((c) => c.startsWith('xv_device_csrf=')).split(';')[0])
const decision = new URLSearchParams({ step: 'decide', decision: 'allow', user_code: device.user_code,
  csrf: deviceHTML.match(/name="csrf" value="([0-9a-f]+)"/)[1] })
const decided = await fetch(new URL(`/t/${SLUG}/device`, ADMIN), { method: 'POST', redirect: 'manual', body: decision,
  headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: jar.join('; ') } })
assert.match(await decided.text(), /Your device is connected/)
const deviceTokens = await client.pollDeviceAuthorizationGrant(wiki, device)
assert.equal(deviceTokens.claims().sub, env('USER_ID'))
assert.equal(deviceTokens.claims().sid, blogTokens.claims().sid)
step('device flow: the person allows the code in their browser session; openid-client polls to the tokens')

// A person with an authenticator app: the sign-in asks for its code after
// the password, and the ID token says so (amr, acr).
const adminAPI = `${ADMIN}/api/v1`
flow = await codeFlow(wiki, { resource: adminAPI }) // a token for the admin API, for step-up below
const strong = await client.authorizationCodeGrant(wiki, await signIn(flow.url, { login: env('MFA_LOGIN'), password: env('USER_PASSWORD'),
  totpSecret: env('MFA_SECRET') }), flow.check)
assert.equal(strong.claims().acr, 'urn:xavyo:acr:mfa')
assert.ok(strong.claims().amr.includes('mfa') && strong.claims().amr.includes('otp'), `amr ${strong.claims().amr}`)
assert.equal(wikiTokens.claims().acr, 'urn:xavyo:acr:pwd')
step('a second factor on the pages: ID tokens say acr urn:xavyo:acr:mfa and amr pwd otp mfa (a password-only one: urn:xavyo:acr:pwd)')

// Step-up (RFC 9470): deciding an approval needs a recent sign-in with a
// second factor. Grace's token for the admin API, refreshed, says neither
// (amr pwd, no auth_time): refused with the challenge; a new sign-in
// asked as the challenge says (acr_values, max_age) is accepted.
const decide = (tok) => fetch(`${adminAPI}/approvals/${env('APPROVAL_ID')}/decision`, { method: 'POST',
  headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json' }, body: JSON.stringify({ decision: 'approve', step: 0 }) })
const grace = { login: env('MFA_LOGIN'), password: env('USER_PASSWORD'), totpSecret: env('MFA_SECRET2') }
const refreshed = await client.refreshTokenGrant(wiki, strong.refresh_token)
let refused = await decide(refreshed.access_token)
assert.equal(refused.status, 401, `a refreshed token: ${refused.status} ${await refused.text()}`)
const challenge = refused.headers.get('www-authenticate')
assert.match(challenge, /error="insufficient_user_authentication"/)
const acr = challenge.match(/acr_values="([^"]+)"/)[1], maxAge = challenge.match(/max_age=(\d+)/)[1]
assert.equal(acr, 'urn:xavyo:acr:mfa')
flow = await codeFlow(wiki, { resource: adminAPI, acr_values: acr, max_age: maxAge })
const stepped = await client.authorizationCodeGrant(wiki, await signIn(flow.url, grace), flow.check, { maxAge: Number(maxAge) })
assert.equal(stepped.claims().acr, 'urn:xavyo:acr:mfa')
const approved = await decide(stepped.access_token)
assert.equal(approved.status, 200, `after step-up: ${approved.status} ${await approved.text()}`)
step('step-up (RFC 9470): an approval decision with a refreshed token is challenged (acr_values, max_age); the sign-in they ask for is accepted')
rp.close()

// The MCP TypeScript SDK's OAuth client: protected-resource metadata →
// authorization server metadata → dynamic registration → code + PKCE.
const store = {}
const provider = {
  get redirectUrl() { return env('REDIRECT_URI') },
  get clientMetadata() {
    return { client_name: 'MCP SDK interop', redirect_uris: [env('REDIRECT_URI')], grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'], token_endpoint_auth_method: 'none' }
  },
  clientInformation: () => store.client,
  saveClientInformation: (c) => { store.client = c },
  tokens: () => store.tokens,
  saveTokens: (t) => { store.tokens = t },
  redirectToAuthorization: (url) => { store.authorizationUrl = url },
  saveCodeVerifier: (v) => { store.verifier = v },
  codeVerifier: () => store.verifier,
}
const serverUrl = `${AGENT}/t/${SLUG}/mcp`
assert.equal(await auth(provider, { serverUrl }), 'REDIRECT')
assert.ok(store.client?.client_id, 'the SDK registered a client')
const sdkCallback = await signIn(store.authorizationUrl)
assert.equal(await auth(provider, { serverUrl, authorizationCode: sdkCallback.searchParams.get('code') }), 'AUTHORIZED')
claims = await verify(store.tokens.access_token, serverUrl)
assert.equal(claims.sub, env('USER_ID'))
step('MCP SDK: resource metadata, dynamic registration, token for the gateway resource')
console.log('interop: all passed')
