// Verifies an agent card's signature with jose: a JWS over A2A 1.0
// §8.4.1's canonical form of the card without its signatures (members with
// default values — empty strings, nulls, empty arrays and objects — left
// out, then RFC 8785), payload detached, the key from the tenant's JWKS
// (named by the header's kid and jku).
import { base64url, createRemoteJWKSet, decodeProtectedHeader, flattenedVerify } from 'jose';

const { CARD_URL, JWKS_URL } = process.env;

// §8.4.1: default values are not signed.
function clean(v) {
  if (v === '' || v === null || v === undefined) return undefined;
  if (Array.isArray(v)) {
    const out = v.map(clean).filter((e) => e !== undefined);
    return out.length ? out : undefined;
  }
  if (typeof v === 'object') {
    const out = {};
    for (const [k, e] of Object.entries(v)) {
      const c = clean(e);
      if (c !== undefined) out[k] = c;
    }
    return Object.keys(out).length ? out : undefined;
  }
  return v;
}

// RFC 8785: keys sorted by UTF-16 code units, ECMAScript number and string forms.
function canonical(v) {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return '[' + v.map(canonical).join(',') + ']';
  return '{' + Object.keys(v).sort().map((k) => JSON.stringify(k) + ':' + canonical(v[k])).join(',') + '}';
}

async function verify(card, jwks) {
  const { signatures, ...unsigned } = card;
  const payload = base64url.encode(new TextEncoder().encode(canonical(clean(unsigned) ?? {})));
  return flattenedVerify({ protected: signatures[0].protected, signature: signatures[0].signature, payload }, jwks);
}

const res = await fetch(CARD_URL);
if (!res.ok) throw new Error(`card: ${res.status}`);
const card = await res.json();
const header = decodeProtectedHeader(card.signatures[0]);
if (header.jku !== JWKS_URL || !header.kid || header.alg !== 'ES256') throw new Error(`header: ${JSON.stringify(header)}`);
const jwks = createRemoteJWKSet(new URL(JWKS_URL));
await verify(card, jwks);
let forged = false;
try {
  await verify({ ...card, description: card.description + ' (now also wires money)' }, jwks);
  forged = true;
} catch {
  // expected: a changed card does not verify
}
if (forged) throw new Error('a changed card verified');
console.log('a2a card: signature verified with jose');
