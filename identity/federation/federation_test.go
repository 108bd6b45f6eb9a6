package federation

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestTemplates: a mapping template fills claims (members by path, lists
// joined, numbers and booleans as text, missing ones empty), and bad
// templates are refused when the provider is saved.
func TestTemplates(t *testing.T) {
	claims := map[string]any{}
	_ = json.Unmarshal([]byte(`{"given_name":"Lin","family_name":"Shu","org":{"name":"FX","id":7},"roles":["a","b"],"admin":true,
		"x.y":"dotted"}`), &claims)
	for tmpl, want := range map[string]string{
		"{given_name} {family_name}": "Lin Shu",
		"{org.name} #{org.id}":       "FX #7",
		"{roles}":                    "a, b",
		"admin={admin}":              "admin=true",
		"{missing}":                  "",
		"  {given_name}  ":           "Lin",
		"{x.y}":                      "dotted",
		"plain":                      "plain",
	} {
		if err := checkTemplate(tmpl); err != nil {
			t.Errorf("%q refused: %v", tmpl, err)
		}
		if got := render(tmpl, claims); got != want {
			t.Errorf("render(%q) = %q, want %q", tmpl, got, want)
		}
	}
	for _, bad := range []string{"{", "}", "{a", "a}", "{}", "{a b}", "{<script>}", strings.Repeat("x", 300)} {
		if checkTemplate(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestProviderSettings: presets fill what they know, and settings that
// cannot work are refused with the field they are about.
func TestProviderSettings(t *testing.T) {
	ok := []Provider{
		{Settings: Settings{Preset: PresetGoogle, ClientID: "c"}},
		{Settings: Settings{Preset: PresetGitHub, ClientID: "c"}},
		{Settings: Settings{Preset: PresetMicrosoft, ClientID: "c", AllowedTenants: []string{"72f988bf-86f1-41af-91ab-2d7cd011db47"}}},
		{Settings: Settings{Preset: PresetMicrosoft, ClientID: "c", Issuer: "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"}},
		{Settings: Settings{Issuer: "https://op.example", ClientID: "c", Domains: []string{"Example.COM"}}},
	}
	for i := range ok {
		if err := ok[i].normalize(); err != nil {
			t.Errorf("%d: %v", i, err)
		}
	}
	if ok[0].Issuer != "https://accounts.google.com" || ok[1].BaseURL != "https://github.com" || ok[1].AuthMethod != "client_secret_post" ||
		ok[4].Domains[0] != "example.com" || ok[4].Algorithms[0] != "RS256" {
		t.Fatalf("defaults: %+v %+v %+v", ok[0].Settings, ok[1].Settings, ok[4].Settings)
	}
	for what, p := range map[string]Provider{
		"settings.issuer":              {Settings: Settings{ClientID: "c"}},
		"settings.client_id":           {Settings: Settings{Issuer: "https://op.example"}},
		"settings.id_token_algorithms": {Settings: Settings{Issuer: "https://op.example", ClientID: "c", Algorithms: []string{"none"}}},
		"settings.allowed_tenants":     {Settings: Settings{Preset: PresetMicrosoft, ClientID: "c"}},
		"settings.scopes":              {Settings: Settings{Issuer: "https://op.example", ClientID: "c", Scopes: []string{"email"}}},
		"settings.domains":             {Settings: Settings{Issuer: "https://op.example", ClientID: "c", Domains: []string{"not a domain"}}},
		"settings.mapping":             {Settings: Settings{Issuer: "https://op.example", ClientID: "c", Mapping: map[string]string{"admin_roles": "{x}"}}},
		"settings.metadata":            {Kind: KindSAML, Settings: Settings{Metadata: "<!DOCTYPE x><EntityDescriptor/>"}},
		"settings.preset":              {Settings: Settings{Preset: "okta", ClientID: "c"}},
		"settings.team_id":             {Settings: Settings{Preset: PresetApple, ClientID: "c"}},
		"settings.base_url":            {Settings: Settings{Preset: PresetGitHub, ClientID: "c", BaseURL: "github.com"}},
	} {
		err := p.normalize()
		if err == nil || !strings.Contains(err.Error(), what) {
			t.Errorf("%s: %v", what, err)
		}
	}
}

// TestMicrosoftTemplate: a multi-tenant Entra issuer becomes the template
// of its tenants' issuers; a single-tenant one is kept as it is.
func TestMicrosoftTemplate(t *testing.T) {
	if got := microsoftTemplate("https://login.microsoftonline.com/organizations/v2.0"); got != "https://login.microsoftonline.com/{tenantid}/v2.0" {
		t.Fatal(got)
	}
	if got := microsoftTemplate("https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"); got != "" {
		t.Fatal(got)
	}
}

// FuzzTemplate: any template is either refused or renders without
// panicking; a template without placeholders renders as itself.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{"{given_name} {family_name}", "{a.b.c}", "{", "}{", "x{y}z", "{{a}}"} {
		f.Add(s)
	}
	claims := map[string]any{"a": map[string]any{"b": map[string]any{"c": "deep"}}, "given_name": "Lin", "list": []any{"x", 1.5, true}}
	f.Fuzz(func(t *testing.T, tmpl string) {
		if checkTemplate(tmpl) != nil {
			return
		}
		got := render(tmpl, claims)
		if !strings.ContainsAny(tmpl, "{}") && got != strings.TrimSpace(tmpl) {
			t.Fatalf("render(%q) = %q", tmpl, got)
		}
	})
}

// FuzzIDPMetadata: metadata is parsed or refused, never a panic, and a
// DTD never passes.
func FuzzIDPMetadata(f *testing.F) {
	f.Add(`<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example"><IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example/sso"/></IDPSSODescriptor></EntityDescriptor>`)
	f.Add(`<!DOCTYPE x [<!ENTITY a "b">]><EntityDescriptor/>`)
	f.Fuzz(func(t *testing.T, raw string) {
		ed, err := ParseIDPMetadata(raw)
		if err == nil && (strings.Contains(raw, "<!DOCTYPE") || ed.EntityID == "") {
			t.Fatalf("accepted %q", raw)
		}
	})
}

// FuzzIsIDJAG: telling an ID-JAG from another assertion reads untrusted
// text: never a panic, and only a header typed oauth-id-jag+jwt says yes.
func FuzzIsIDJAG(f *testing.F) {
	f.Add("eyJ0eXAiOiJvYXV0aC1pZC1qYWcrand0IiwiYWxnIjoiUlMyNTYifQ.e30.x")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("...")
	f.Fuzz(func(t *testing.T, raw string) {
		if IsIDJAG(raw) && !strings.Contains(raw, ".") {
			t.Fatalf("an ID-JAG without a payload: %q", raw)
		}
	})
}
