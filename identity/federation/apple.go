package federation

// Sign in with Apple: an OpenID provider (discovery at
// https://appleid.apple.com) with two quirks. Its client secret is a
// short ES256 JWT the client makes with its team's private key (the .p8
// file: the provider's client_secret, best as a reference); and asking
// for the name or address makes it answer with response_mode=form_post, a
// cross-site POST to the callback, whose "user" field carries the
// person's name on their first authorization only (unsigned: used for the
// name alone, never the address).

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"regexp"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/xavyo/xavyo/internal/apperr"
)

// PresetApple is Sign in with Apple.
const PresetApple = "apple"

var appleIDRE = regexp.MustCompile(`^[A-Z0-9]{10}$`)

// appleSecret makes the client secret JWT of an Apple provider from its
// team's private key (PEM, PKCS#8, P-256), valid five minutes.
func (s *Service) appleSecret(p *Provider, keyPEM string) (string, error) {
	block, _ := pem.Decode([]byte(keyPEM))
	if block == nil {
		return "", apperr.New(apperr.KindUnavailable, "the Apple provider's client_secret is not a PEM private key (the .p8 file)")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	ec, ok := k.(*ecdsa.PrivateKey)
	if err != nil || !ok {
		return "", apperr.New(apperr.KindUnavailable, "the Apple provider's client_secret is not an EC private key (the .p8 file)")
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: ec},
		(&jose.SignerOptions{}).WithHeader(jose.HeaderKey("kid"), p.KeyID).WithType("JWT"))
	if err != nil {
		return "", err
	}
	now := s.now()
	return jwt.Signed(signer).Claims(jwt.Claims{Issuer: p.TeamID, Subject: p.ClientID, Audience: jwt.Audience{p.Issuer},
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute))}).Serialize()
}

// appleUser reads the name of Apple's first-authorization "user" field.
func appleUser(raw string, claims map[string]any) {
	if raw == "" || len(raw) > 4096 {
		return
	}
	var u struct {
		Name struct {
			FirstName string `json:"firstName"`
			LastName  string `json:"lastName"`
		} `json:"name"`
	}
	if json.Unmarshal([]byte(raw), &u) != nil {
		return
	}
	if _, ok := claims["given_name"]; !ok && u.Name.FirstName != "" {
		claims["given_name"] = u.Name.FirstName
	}
	if _, ok := claims["family_name"]; !ok && u.Name.LastName != "" {
		claims["family_name"] = u.Name.LastName
	}
	if _, ok := claims["name"]; !ok && (u.Name.FirstName != "" || u.Name.LastName != "") {
		claims["name"] = u.Name.FirstName + " " + u.Name.LastName
	}
}
