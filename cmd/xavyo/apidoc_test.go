package main

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/xavyo/xavyo/app/apptest"
)

// theDoc checks answers against the committed document (docs/openapi.json,
// itself checked against the served one by TestOpenAPIDocumentIsCurrent):
// for servers in another process.
var theDoc = apptest.NewDocCheck(func() ([]byte, error) { return os.ReadFile(openAPIGolden) })

// TestAPIDocCatchesDrift: the response check refuses an answer the
// document does not describe (a wrong type, an unknown member, a missing
// one) and a route it does not list, and accepts a conforming answer.
func TestAPIDocCatchesDrift(t *testing.T) {
	ok := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}}
	good := `{"items":[{"id":"01a24fee-5d13-7998-bbae-7f10f880ebb1","slug":"acme","name":"Acme","status":"active","settings":{},` +
		`"created_at":"2026-12-07T00:00:00Z","updated_at":"2026-12-07T00:00:00Z","version":1}]}`
	if err := theDoc.Check("GET", "/api/v1/tenants", ok, []byte(good)); err != nil {
		t.Fatalf("a conforming answer: %v", err)
	}
	for name, body := range map[string]string{
		"wrong type":     strings.Replace(good, `"version":1`, `"version":"1"`, 1),
		"unknown member": strings.Replace(good, `"version":1`, `"version":1,"secret":"x"`, 1),
		"missing member": strings.Replace(good, `"slug":"acme",`, ``, 1),
	} {
		if err := theDoc.Check("GET", "/api/v1/tenants", ok, []byte(body)); err == nil {
			t.Errorf("%s: not caught", name)
		}
	}
	if err := theDoc.Check("GET", "/api/v1/no-such-route", ok, []byte(`{}`)); err == nil {
		t.Error("an undocumented route: not caught")
	}
}
