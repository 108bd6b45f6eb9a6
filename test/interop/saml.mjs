// A real SAML service provider (@node-saml/node-saml) against a tenant's
// SAML identity provider: it reads the IdP's metadata, registers itself by
// its own generated metadata, and signs a person in SP-initiated with the
// HTTP-Redirect and the HTTP-POST bindings, validating each response's
// signatures with the certificate the metadata gave (its InResponseTo
// too). The SP is at localhost, xavyo at 127.0.0.1: another site. It signs
// its requests (RSA-SHA256 with SHA-256 digests: xavyo refuses SHA-1, which
// node-saml otherwise uses for digests). A person
// without the SP's entitlement gets RequestDenied. The script plays the
// browser with a cookie jar.
import assert from 'node:assert/strict'
import { SAML, ValidateInResponseTo, generateServiceProviderMetadata } from '@node-saml/node-saml'

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`missing ${k}`); return v }
const step = (name) => console.log(`ok - ${name}`)
const ADMIN = env('ADMIN'), SLUG = env('SLUG')
const SP = 'http://localhost:9/notes', ACS = 'http://localhost:9/notes/acs', SLO = 'http://localhost:9/notes/slo'

const metadata = await (await fetch(`${ADMIN}/t/${SLUG}/saml/metadata`)).text()
const cert = metadata.match(/<(?:ds:)?X509Certificate[^>]*>([^<]+)</)[1]
const sso = (binding) => metadata.match(new RegExp(`SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:${binding}" Location="([^"]+)"`))[1]
const cache = new Map()
const saml = new SAML({
  entryPoint: sso('HTTP-Redirect'), issuer: SP, callbackUrl: ACS, idpCert: cert, audience: SP,
  logoutUrl: metadata.match(/SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="([^"]+)"/)[1],
  logoutCallbackUrl: SLO, privateKey: env('SP_KEY'), publicCert: env('SP_CERT'), signatureAlgorithm: 'sha256', digestAlgorithm: 'sha256',
  wantAssertionsSigned: true, wantAuthnResponseSigned: true, identifierFormat: 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress',
  validateInResponseTo: ValidateInResponseTo.always, disableRequestedAuthnContext: true,
  cacheProvider: {
    saveAsync: async (k, v) => { cache.set(k, { value: v, createdAt: Date.now() }); return cache.get(k) },
    getAsync: async (k) => cache.get(k)?.value ?? null,
    removeAsync: async (k) => { const had = cache.get(k)?.value ?? null; cache.delete(k); return had },
  },
})
step('the IdP metadata: signing certificate and SSO endpoints')

const spMetadata = generateServiceProviderMetadata({ issuer: SP, callbackUrl: ACS, logoutCallbackUrl: SLO, wantAssertionsSigned: true,
  identifierFormat: 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress', privateKey: env('SP_KEY'), publicCerts: env('SP_CERT') })
let res = await fetch(`${ADMIN}/api/v1/saml-service-providers`, { method: 'POST',
  headers: { authorization: `Bearer ${env('TOKEN')}`, 'content-type': 'application/json' },
  body: JSON.stringify({ key: 'notes', name: 'Notes', metadata: spMetadata, entitlement_id: env('ENTITLEMENT') }) })
assert.equal(res.status, 201, `register the SP: ${res.status} ${await res.text()}`)
step('the SP registered by the metadata node-saml generates')

// browser keeps cookies by hand and follows xavyo's redirects; it stops at
// a page.
function browser() {
  const jar = new Map()
  const go = async (url, init = {}) => {
    for (;;) {
      const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ')
      const r = await fetch(new URL(url, ADMIN), { ...init, redirect: 'manual', headers: { ...(init.headers || {}), cookie } })
      for (const c of r.headers.getSetCookie()) {
        const kv = c.split(';')[0]
        jar.set(kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1))
      }
      if (r.status !== 302 && r.status !== 303) return { status: r.status, html: await r.text() }
      url = new URL(r.headers.get('location'), url).toString()
      init = {}
    }
  }
  go.cookies = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ')
  return go
}
const unescape = (s) => s.replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCodePoint(parseInt(h, 16)))
  .replace(/&#(\d+);/g, (_, d) => String.fromCodePoint(Number(d))).replaceAll('&quot;', '"').replaceAll('&lt;', '<').replaceAll('&gt;', '>')
  .replaceAll('&amp;', '&')
const field = (html, name) => unescape(html.match(new RegExp(`name="${name}" value="([^"]*)"`))[1])
const signIn = async (go, page, login) => {
  assert.match(page.html, /id="password"/, 'the sign-in page')
  return go(`/t/${SLUG}/login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ tx: field(page.html, 'tx'), csrf: field(page.html, 'csrf'), login, password: env('PASSWORD') }) })
}
const toSP = (page) => {
  assert.match(page.html, new RegExp(`action="${ACS}"`), 'a response for the SP')
  return { SAMLResponse: field(page.html, 'SAMLResponse'), RelayState: field(page.html, 'RelayState') }
}

// SP-initiated, HTTP-Redirect: the person signs in on xavyo's page.
const ada = browser()
let page = await signIn(ada, await ada(await saml.getAuthorizeUrlAsync('relay-1', undefined, {})), env('USER_LOGIN'))
let form = toSP(page)
assert.equal(form.RelayState, 'relay-1')
let { profile } = await saml.validatePostResponseAsync(form)
assert.equal(profile.nameID, env('USER_LOGIN'))
assert.equal(profile.nameIDFormat, 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress')
step('SP-initiated SSO (HTTP-Redirect) through the sign-in page: signatures, audience and InResponseTo validated by node-saml')
await assert.rejects(saml.validatePostResponseAsync(form), /InResponseTo/, 'the same response again')
step('the same response again is refused by the SP (its request was answered)')

// SP-initiated, HTTP-POST: the SSO session answers at once.
const post = new SAML({ ...saml.options, entryPoint: sso('HTTP-POST'), cacheProvider: saml.cacheProvider })
const html = await post.getAuthorizeFormAsync('relay-2')
page = await ada(html.match(/action="([^"]+)"/)[1], { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({ SAMLRequest: unescape(html.match(/name="SAMLRequest" value="([^"]+)"/)[1]), RelayState: 'relay-2' }) })
form = toSP(page)
;({ profile } = await post.validatePostResponseAsync(form))
assert.equal(profile.nameID, env('USER_LOGIN'))
step('SP-initiated SSO (HTTP-POST) answered from the SSO session')

// IdP-initiated: a link at xavyo names the SP by key; the SP takes the
// unsolicited response (no InResponseTo) when it accepts those.
page = await ada(`/t/${SLUG}/saml/sso?sp=notes&RelayState=from-idp`)
form = toSP(page)
assert.equal(form.RelayState, 'from-idp')
await assert.rejects(saml.validatePostResponseAsync(form), /InResponseTo/, 'an SP that wants InResponseTo refuses it')
const unsolicited = new SAML({ ...saml.options, validateInResponseTo: ValidateInResponseTo.ifPresent })
;({ profile } = await unsolicited.validatePostResponseAsync(form))
assert.equal(profile.nameID, env('USER_LOGIN'))
step('IdP-initiated SSO: the unsolicited response validates at an SP that accepts them')

// Single logout, from the SP: a signed LogoutRequest; the IdP ends the SSO
// session and answers with a signed LogoutResponse the SP validates; the
// next sign-in asks for the password again.
const logout = await saml.getLogoutUrlAsync(profile, 'bye', {})
page = await ada(logout)
// node-saml's metadata asks for its LogoutResponse over HTTP-POST.
assert.match(page.html, new RegExp(`action="${SLO}"`), 'a LogoutResponse for the SP')
// (node-saml checks InResponseTo only on Responses: a posted LogoutResponse
// is validated, signature included, by an instance that does not ask.)
const sloCheck = new SAML({ ...saml.options, validateInResponseTo: ValidateInResponseTo.never })
const { loggedOut } = await sloCheck.validatePostResponseAsync({ SAMLResponse: field(page.html, 'SAMLResponse'), RelayState: field(page.html, 'RelayState') })
assert.equal(loggedOut, true)
page = await ada(await saml.getAuthorizeUrlAsync('relay-4', undefined, {}))
assert.match(page.html, /id="password"/, 'after single logout, the sign-in page')
step('single logout (signed LogoutRequest over HTTP-Redirect, signed LogoutResponse over HTTP-POST): the SSO session ends; node-saml validates it')

// A person without the SP's entitlement.
const bob = browser()
page = await signIn(bob, await bob(await saml.getAuthorizeUrlAsync('relay-3', undefined, {})), env('OTHER_LOGIN'))
await assert.rejects(saml.validatePostResponseAsync(toSP(page)), (e) => /status:RequestDenied/.test(e.xmlStatus))
step('a person without the entitlement: RequestDenied')

console.log('saml: all passed')
