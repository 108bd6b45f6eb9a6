#!/usr/bin/env bash
# The CA seen by standard tools: openssl makes the key and CSR, curl
# fetches the certificate and talks mTLS to the agent plane.
# Inputs (environment): ADMIN AGENT AGENT_CA TOKEN NHI SLUG OTHER_SLUG WORK
set -euo pipefail
cd "$WORK"
auth=(-H "Authorization: Bearer $TOKEN")
status() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

openssl ecparam -name prime256v1 -genkey -noout -out agent.key
openssl req -new -key agent.key -subj "/CN=billing-bot" -out agent.csr 2>/dev/null
csr=$(awk '{printf "%s\\n", $0}' agent.csr)
curl -sf -X POST "$ADMIN/api/v1/nhis/$NHI/certificates" "${auth[@]}" -H 'Accept: application/x-pem-file' \
     -H 'Content-Type: application/json' -d "{\"csr\":\"$csr\"}" -o agent.pem
curl -sf --cacert "$AGENT_CA" "$AGENT/t/$SLUG/pki/bundle.pem" -o bundle.pem

# The chain verifies against the trust bundle; the leaf is a client certificate with the SPIFFE ID.
openssl verify -CAfile bundle.pem -untrusted agent.pem -purpose sslclient agent.pem
openssl x509 -in agent.pem -noout -ext subjectAltName | grep -q "URI:spiffe://xavyo.local/t/.*/agent/$NHI"

# mTLS identifies the agent.
curl -sf --cacert "$AGENT_CA" --cert agent.pem --key agent.key "$AGENT/t/$SLUG/pki/identity" > identity.json
grep -q "\"nhi_id\":\"$NHI\"" identity.json
serial=$(sed -E 's/.*"serial":"([0-9]+)".*/\1/' identity.json)

# Another tenant's path refuses it.
[ "$(status --cacert "$AGENT_CA" --cert agent.pem --key agent.key "$AGENT/t/$OTHER_SLUG/pki/identity")" = 403 ]

# Renewal over mTLS with a new key.
openssl ecparam -name prime256v1 -genkey -noout -out renewed.key
openssl req -new -key renewed.key -subj "/CN=billing-bot" -out renewed.csr 2>/dev/null
csr=$(awk '{printf "%s\\n", $0}' renewed.csr)
curl -sf --cacert "$AGENT_CA" --cert agent.pem --key agent.key -X POST "$AGENT/t/$SLUG/pki/renew" \
     -H 'Content-Type: application/json' -d "{\"csr\":\"$csr\"}" > renewed.json
sed -E 's/.*"chain_pem":"([^"]+)".*/\1/' renewed.json | sed 's/\\n/\n/g' > renewed.pem
curl -sf --cacert "$AGENT_CA" --cert renewed.pem --key renewed.key "$AGENT/t/$SLUG/pki/identity" | grep -q "\"nhi_id\":\"$NHI\""

# Revoke the first certificate: refused at once, listed in the CRL.
curl -sf -X POST "$ADMIN/api/v1/nhis/$NHI/certificates/$serial/revoke" "${auth[@]}" -H 'Content-Type: application/json' \
     -d '{"reason":"key compromise drill","reason_code":1}'
[ "$(status --cacert "$AGENT_CA" --cert agent.pem --key agent.key "$AGENT/t/$SLUG/pki/identity")" = 401 ]
curl -sf --cacert "$AGENT_CA" "$AGENT/pki/crl" -o crl.der
openssl crl -inform DER -in crl.der -out crl.pem
if openssl verify -crl_check -CAfile bundle.pem -untrusted agent.pem -CRLfile crl.pem agent.pem 2>verify.err; then
  echo "revoked certificate still verifies with the CRL"; exit 1
fi
grep -q "certificate revoked" verify.err
openssl verify -crl_check -CAfile bundle.pem -untrusted renewed.pem -CRLfile crl.pem renewed.pem
echo "mtls shell test passed"
