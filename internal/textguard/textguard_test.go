package textguard_test

import (
	"net/url"
	"testing"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/textguard"
)

func TestCheckJSON(t *testing.T) {
	cases := map[string]struct {
		body  string
		field string
	}{
		"plain":              {`{"name":"a"}`, ""},
		"escaped backslash":  {`{"name":"a\\u0000"}`, ""},
		"nul in value":       {`{"name":"a\u0000b"}`, "name"},
		"nul in nested":      {`{"x":{"y":["ok","\u0000"]}}`, "ok"},
		"nul in key":         {`{"a\u0000":1}`, "body"},
		"invalid utf-8":      {"{\"name\":\"\xff\xfe\"}", "body"},
		"malformed, no nul":  {`{"name":`, ""},
		"nul after a syntax": {`{"name" "\u0000"}`, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := textguard.CheckJSON([]byte(tc.body))
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			fields := apperr.FieldsOf(err)
			if apperr.KindOf(err) != apperr.KindInvalidArgument || len(fields) != 1 || fields[0].Field != tc.field {
				t.Fatalf("err=%v fields=%v, want invalid %s", err, fields, tc.field)
			}
		})
	}
}

func TestCheckValues(t *testing.T) {
	for _, tc := range []struct {
		form  url.Values
		field string
	}{
		{url.Values{"client_id": {"abc"}, "scope": {"mcp é"}}, ""},
		{url.Values{"client_id": {"a\x00b"}}, "client_id"},
		{url.Values{"resource": {"ok", "\xff"}}, "resource"},
		{url.Values{"\xff": {"x"}}, "parameter name"},
	} {
		err := textguard.CheckValues(tc.form)
		if tc.field == "" {
			if err != nil {
				t.Fatal(err)
			}
			continue
		}
		if fields := apperr.FieldsOf(err); len(fields) != 1 || fields[0].Field != tc.field {
			t.Fatalf("%v: err=%v, want invalid %s", tc.form, err, tc.field)
		}
	}
}
