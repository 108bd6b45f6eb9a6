package httpx_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/httpx"
)

type sample struct {
	Name  string      `json:"name"`
	Count int         `json:"count"`
	Tags  []string    `json:"tags"`
	Owner *uuid.UUID  `json:"owner"`
	IDs   []uuid.UUID `json:"ids"`
	At    time.Time   `json:"at"`
}

func TestDecodeJSONBytes(t *testing.T) {
	cases := map[string]struct {
		body  string
		field string
	}{
		"ok":            {`{"name":"a","count":1,"tags":["x"]}`, ""},
		"whitespace":    {" \n {\"name\":\"a\"} \n", ""},
		"empty":         {``, "body"},
		"array":         {`[1]`, "body"},
		"null":          {`null`, "body"},
		"string":        {`"x"`, "body"},
		"malformed":     {`{"name":`, "body"},
		"syntax":        {`{"name" "a"}`, "body"},
		"unknown":       {`{"nope":1}`, "nope"},
		"wrong type":    {`{"count":"one"}`, "count"},
		"wrong nested":  {`{"tags":[1]}`, "tags"},
		"trailing":      {`{} x`, "body"},
		"two objects":   {`{}{}`, "body"},
		"duplicate key": {`{"name":"a","name":"b"}`, ""},
		"uuids":         {`{"owner":"01a22adb-c148-72f2-8ad2-b74cf2592311","ids":["01a22adb-c148-72f2-8ad2-b74cf2592311"],"at":"2026-11-30T00:00:00Z"}`, ""},
		"bad uuid":      {`{"owner":"nope"}`, "owner"},
		"bad uuid item": {`{"name":"a","ids":["01a22adb-c148-72f2-8ad2-b74cf2592311","x"]}`, "ids"},
		"uuid number":   {`{"owner":7}`, "owner"},
		"bad time":      {`{"at":"yesterday"}`, "at"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var v sample
			err := httpx.DecodeJSONBytes([]byte(tc.body), &v)
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
			if strings.Contains(err.Error(), "json:") && strings.Contains(apperr.PublicMessage(err), "json:") {
				t.Fatalf("leaks decoder internals: %s", apperr.PublicMessage(err))
			}
		})
	}
}

func TestCursorRoundTripAndGarbage(t *testing.T) {
	type cur struct {
		A string `json:"a"`
	}
	var got cur
	if err := httpx.DecodeCursor(httpx.EncodeCursor(cur{A: "x"}), &got); err != nil || got.A != "x" {
		t.Fatal(err)
	}
	for _, bad := range []string{"!!", "bm90IGpzb24", "e30=="} {
		if err := httpx.DecodeCursor(bad, &got); apperr.KindOf(err) != apperr.KindInvalidArgument {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func FuzzDecodeJSONBytes(f *testing.F) {
	for _, s := range []string{`{"name":"a"}`, `{"count":1e999}`, `{"tags":[null]}`, `{`, `{"\u0000":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v sample
		err := httpx.DecodeJSONBytes(b, &v)
		if err != nil && apperr.KindOf(err) != apperr.KindInvalidArgument {
			t.Fatalf("%q: error of kind %s: %v", b, apperr.KindOf(err), err)
		}
	})
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add(httpx.EncodeCursor(map[string]string{"a": "01234567-89ab-cdef-0123-456789abcdef"}))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		var v struct {
			A string `json:"a"`
		}
		if err := httpx.DecodeCursor(s, &v); err != nil && apperr.KindOf(err) != apperr.KindInvalidArgument {
			t.Fatalf("%q: %v", s, err)
		}
	})
}
