package spiffe_test

import (
	"net/url"
	"testing"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/pki/spiffe"
)

func TestRoundTrip(t *testing.T) {
	id := spiffe.ID{TrustDomain: "xavyo.local", TenantID: uuid.New(), Kind: "agent", Name: "billing-bot"}
	got, err := spiffe.Parse(id.URL(), "xavyo.local")
	if err != nil || got != id {
		t.Fatalf("%+v %v", got, err)
	}
	u, _ := url.Parse(id.String())
	if got, err := spiffe.Parse(u, "xavyo.local"); err != nil || got != id {
		t.Fatalf("from string: %+v %v", got, err)
	}
}

func TestRejects(t *testing.T) {
	tid := uuid.New().String()
	for _, s := range []string{
		"https://xavyo.local/t/" + tid + "/agent/a",
		"spiffe://evil.example/t/" + tid + "/agent/a",
		"spiffe://xavyo.local/t/" + tid + "/agent",
		"spiffe://xavyo.local/t/" + tid + "/agent/a/extra",
		"spiffe://xavyo.local/x/" + tid + "/agent/a",
		"spiffe://xavyo.local/t/not-a-uuid/agent/a",
		"spiffe://xavyo.local/t/00000000-0000-0000-0000-000000000000/agent/a",
		"spiffe://xavyo.local/t/" + tid + "/root/a",
		"spiffe://xavyo.local/t/" + tid + "/agent/A_B",
		"spiffe://xavyo.local/t/" + tid + "/agent/a%2Fb",
		"spiffe://xavyo.local/t/" + tid + "/agent/a?x=1",
		"spiffe://user@xavyo.local/t/" + tid + "/agent/a",
		"spiffe://xavyo.local:443/t/" + tid + "/agent/a",
	} {
		u, err := url.Parse(s)
		if err != nil {
			continue
		}
		if _, err := spiffe.Parse(u, "xavyo.local"); err == nil {
			t.Errorf("accepted %s", s)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("spiffe://xavyo.local/t/" + uuid.New().String() + "/agent/a")
	f.Add("spiffe://xavyo.local/t//agent/")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := url.Parse(s)
		if err != nil {
			return
		}
		id, err := spiffe.Parse(u, "xavyo.local")
		if err != nil {
			return
		}
		back, err := spiffe.Parse(id.URL(), "xavyo.local")
		if err != nil || back != id {
			t.Fatalf("%q parsed to %+v but does not round-trip: %v", s, id, err)
		}
	})
}
