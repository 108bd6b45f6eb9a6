// Real clients against a running xavyo: openid-client (a certified relying
// party) with jose, and the MCP TypeScript SDK's OAuth client. The Go test
// TestInteropWithRealClients starts the server, prepares the tenant and
// runs this script; any failed check exits non-zero.
import assert from 'node:assert/strict'
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

// Authorization code + PKCE through the real login page.
async function signIn(authorizationUrl) {
  const page = await fetch(authorizationUrl, { redirect: 'manual' })
  assert.equal(page.status, 200, `login page: ${page.status}`)
  const html = await page.text()
  const form = new URLSearchParams()
  for (const [, k, v] of html.matchAll(/<input type="hidden" name="([a-z_]+)" value="([^"]*)">/g)) {
    form.set(k, v.replaceAll('&amp;', '&').replaceAll('&#43;', '+').replaceAll('&#34;', '"').replaceAll('&#39;', "'"))
  }
  form.set('login', env('USER_LOGIN'))
  form.set('password', env('USER_PASSWORD'))
  const action = html.match(/<form method="post" action="([^"]+)"/)[1].replaceAll('&amp;', '&')
  const res = await fetch(new URL(action, ADMIN), {
    method: 'POST', redirect: 'manual', body: form,
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: page.headers.get('set-cookie').split(';')[0] },
  })
  sso = res.headers.getSetCookie().find((c) => c.startsWith('xv_sso_')).split(';')[0]
  if (res.status === 200) {
    // A client that is not first-party: the person allows it on the
    // consent page (its CSRF token and the SSO session's cookie).
    const consent = await res.text()
    assert.match(consent, /name="consent" value="allow"/, 'consent page')
    const answer = new URLSearchParams()
    for (const [, k, v] of consent.matchAll(/<input type="hidden" name="([a-z_]+)" value="([^"]*)">/g)) {
      answer.set(k, v.replaceAll('&amp;', '&').replaceAll('&#43;', '+').replaceAll('&#34;', '"').replaceAll('&#39;', "'"))
    }
    answer.set('consent', 'allow')
    const csrf = res.headers.getSetCookie().find((c) => c.startsWith('xv_csrf=')).split(';')[0]
    const allowed = await fetch(new URL(action, ADMIN), {
      method: 'POST', redirect: 'manual', body: answer,
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: `${csrf}; ${sso}` },
    })
    assert.equal(allowed.status, 302, `consent post: ${allowed.status} ${await allowed.text()}`)
    return new URL(allowed.headers.get('location'))
  }
  assert.equal(res.status, 302, `login post: ${res.status} ${await res.text()}`)
  return new URL(res.headers.get('location'))
}
let sso // the SSO session cookie of the last sign-in
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
assert.equal(again.status, 200, `max_age=0 shows the sign-in page: ${again.status}`)
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
