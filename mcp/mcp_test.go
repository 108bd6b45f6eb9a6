package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestForwardParamsKeepsArgumentsRawAndDropsTheProgressToken(t *testing.T) {
	for _, tc := range []struct {
		args, meta, rounds, want, tok string
	}{
		{`{"b": 1, "a":[1,2]}`, ``, ``, `{"name":"echo","arguments":{"b": 1, "a":[1,2]}}`, ``},
		{`{}`, `{"progressToken":"p1"}`, ``, `{"name":"echo","arguments":{}}`, `"p1"`},
		{`{}`, `{"progressToken":7,"trace":"x"}`, ``, `{"name":"echo","arguments":{},"_meta":{"trace":"x"}}`, `7`},
		{`{}`, `null`, ``, `{"name":"echo","arguments":{}}`, ``},
		// The client's protocol keys stay on its hop; a retry's rounds go on.
		{`{}`, `{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}`,
			`,"inputResponses":{"k":{"action":"accept"}},"requestState":"s1"`,
			`{"name":"echo","arguments":{},"inputResponses":{"k":{"action":"accept"}},"requestState":"s1"}`, ``},
	} {
		got, tok := forwardParams("echo", json.RawMessage(tc.args), json.RawMessage(tc.meta), json.RawMessage(tc.rounds))
		if string(got) != tc.want || string(tok) != tc.tok {
			t.Errorf("forwardParams(%s, %s) = %s, %s; want %s, %s", tc.args, tc.meta, got, tok, tc.want, tc.tok)
		}
		if !json.Valid(got) {
			t.Errorf("invalid JSON %s", got)
		}
	}
}

func TestRedactHidesSensitiveValuesAtAnyDepth(t *testing.T) {
	in := map[string]any{"query": "q", "API_Key": "k", "nested": map[string]any{"Password": "p", "list": []any{map[string]any{"sessionToken": "t"}}},
		"customer": "c"}
	out, _ := json.Marshal(redact(in, []string{"CUSTOMER"}))
	want := `{"API_Key":"[redacted]","customer":"[redacted]","nested":{"Password":"[redacted]","list":[{"sessionToken":"[redacted]"}]},"query":"q"}`
	if string(out) != want {
		t.Fatalf("redact: %s", out)
	}
	if in["API_Key"] != "k" {
		t.Fatal("redact changed its input")
	}
}

func TestBreakerOpensAfterConsecutiveFailuresAndProbes(t *testing.T) {
	u := &upstream{}
	now := time.Now()
	for i := 0; i < breakerThreshold; i++ {
		if !u.allow(now) {
			t.Fatalf("closed circuit refused call %d", i)
		}
		u.record(errors.New("down"))
	}
	if u.allow(time.Now()) || u.state() != "open" {
		t.Fatal("the circuit did not open")
	}
	later := time.Now().Add(breakerCooldown + time.Second)
	if !u.allow(later) {
		t.Fatal("no probe after the cool-down")
	}
	if u.allow(later) {
		t.Fatal("a second probe went through while the first was out")
	}
	u.record(nil)
	if !u.allow(later) || u.state() != "closed" {
		t.Fatal("a successful probe did not close the circuit")
	}
}

func TestReadEventsDispatchesNotificationsUntilTheResponse(t *testing.T) {
	var got []string
	u := &upstream{}
	u.progress.Store(`"xv-1"`, func(p json.RawMessage) { got = append(got, string(p)) })
	stream := "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":\"xv-1\",\"progress\":1}}\n\n" +
		": comment\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":9,\n data: \"result\":{\"ok\":true}}\n\n" +
		"data: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"ok\":true}}\n\n"
	stream = "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"x\"}}\n\n" +
		"data: {\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"elicitation/create\",\"params\":{}}\n\n" + stream
	var msgs, asked []string
	rl := &relay{message: func(method string, _ json.RawMessage) { msgs = append(msgs, method) }}
	res, err := u.readEvents(strings.NewReader(stream), "3", rl, func(r rpcAnswer) { asked = append(asked, r.Method+" "+string(r.ID)) })
	if err != nil || string(res.Result) != `{"ok":true}` {
		t.Fatalf("readEvents: %v %+v", err, res)
	}
	if len(got) != 1 || !strings.Contains(got[0], `"progress":1`) {
		t.Fatalf("progress: %v", got)
	}
	if strings.Join(msgs, ",") != "notifications/message" || strings.Join(asked, ",") != "elicitation/create 7" {
		t.Fatalf("relayed: %v, asked: %v", msgs, asked)
	}
	if _, err := u.readEvents(strings.NewReader("data: {\"jsonrpc\":\"2.0\",\"id\":4,\"result\":{}}\n\n"), "3", nil, func(rpcAnswer) {}); err == nil {
		t.Fatal("a stream without the response must fail")
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{`1`: true, `"a"`: true, `-3`: true, `1.5`: true, `null`: false, `{}`: false, `[1]`: false, `"x`: false, `true`: false, ``: false} {
		if validID(json.RawMessage(id)) != want {
			t.Errorf("validID(%s) != %v", id, want)
		}
	}
}

// FuzzReadEvents feeds arbitrary upstream event streams to the parser.
func FuzzReadEvents(f *testing.F) {
	f.Add([]byte("data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n"))
	f.Add([]byte("data: {\"method\":\"notifications/progress\",\"params\":{\"progressToken\":\"xv-1\"}}\n\ndata: x\n\n"))
	f.Add([]byte("data:\ndata:\n\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		u := &upstream{}
		u.progress.Store(`"xv-1"`, func(json.RawMessage) {})
		res, err := u.readEvents(bytes.NewReader(b), "1", &relay{message: func(string, json.RawMessage) {}}, func(rpcAnswer) {})
		if err == nil && res == nil {
			t.Fatal("no result and no error")
		}
	})
}

// FuzzToolCallParams feeds arbitrary tools/call params through what the
// gateway does with them before forwarding.
func FuzzToolCallParams(f *testing.F) {
	f.Add([]byte(`{"name":"a__b","arguments":{"x":1},"_meta":{"progressToken":"t"}}`))
	f.Add([]byte(`{"name":"","arguments":null}`))
	f.Add([]byte(`{"arguments":{"password":"p","n":[{"token":1}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var in struct {
			Name      string          `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
			Meta      json.RawMessage `json:"_meta"`
		}
		if json.Unmarshal(b, &in) != nil {
			return
		}
		var obj map[string]any
		if json.Unmarshal(in.Arguments, &obj) != nil || obj == nil {
			return
		}
		out, _ := forwardParams(in.Name, in.Arguments, in.Meta, nil)
		if !json.Valid(out) {
			t.Fatalf("forwarded params are not JSON: %s", out)
		}
		_ = instHash(obj)
		if _, err := json.Marshal(redact(obj, nil)); err != nil {
			t.Fatal(err)
		}
	})
}

func TestModernHeadersMustMatchTheBody(t *testing.T) {
	meta := `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}`
	call := &message{JSONRPC: "2.0", ID: json.RawMessage("1"), Method: "tools/call", Params: json.RawMessage(`{"name":"héllo wörld",` + meta + `}`)}
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		m    *message
		code int // 0: accepted
	}{
		{"plain", map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": headerSafe("héllo wörld")}, call, 0},
		{"base64 name with spaces around", map[string]string{"Mcp-Method": " tools/call ", "Mcp-Name": "  " + headerSafe("héllo wörld") + " "}, call, 0},
		{"name differs", map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "hello world"}, call, codeHeaderMismatch},
		{"name missing", map[string]string{"Mcp-Method": "tools/call"}, call, codeHeaderMismatch},
		{"bad base64", map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "=?base64?***?="}, call, codeHeaderMismatch},
		{"method case", map[string]string{"Mcp-Method": "TOOLS/CALL", "Mcp-Name": headerSafe("héllo wörld")}, call, codeHeaderMismatch},
		{"no meta", map[string]string{"Mcp-Method": "tools/list"}, &message{JSONRPC: "2.0", ID: json.RawMessage("1"), Method: "tools/list", Params: json.RawMessage(`{}`)}, codeInvalidParams},
		{"capabilities not an object", map[string]string{"Mcp-Method": "tools/list"}, &message{JSONRPC: "2.0", ID: json.RawMessage("1"), Method: "tools/list",
			Params: json.RawMessage(`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":[]}}`)}, codeInvalidParams},
		{"version differs", map[string]string{"Mcp-Method": "tools/list"}, &message{JSONRPC: "2.0", ID: json.RawMessage("1"), Method: "tools/list",
			Params: json.RawMessage(`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2025-11-25","io.modelcontextprotocol/clientCapabilities":{}}}`)}, codeHeaderMismatch},
	} {
		h := http.Header{}
		for k, v := range tc.hdr {
			h.Set(k, v)
		}
		e := checkModernHeaders(h, tc.m, "2026-07-28")
		if (e == nil) != (tc.code == 0) || (e != nil && e.Code != tc.code) {
			t.Errorf("%s: %+v, want code %d", tc.name, e, tc.code)
		}
	}
}

// FuzzHeaderValue: decoding a header never panics, and a value the gateway
// encodes (to a stateless tool server) decodes to itself.
func FuzzHeaderValue(f *testing.F) {
	for _, s := range []string{"echo", "héllo", " padded ", "=?base64?x?=", "line\nbreak", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h := http.Header{}
		h["Mcp-Name"] = []string{s}
		_, _ = headerValue(h, "Mcp-Name")
		if s == "" || !utf8.ValidString(s) {
			return
		}
		enc := headerSafe(s)
		for i := 0; i < len(enc); i++ {
			if enc[i] < 0x20 || enc[i] >= 0x7f {
				t.Fatalf("encoded header %q has a byte outside visible ASCII", enc)
			}
		}
		h["Mcp-Name"] = []string{enc}
		if got, ok := headerValue(h, "Mcp-Name"); !ok || got != s {
			t.Fatalf("%q → %q → %q, %v", s, enc, got, ok)
		}
	})
}

// TestClientsThatLeaveDoNotOpenTheCircuit: calls cancelled by their
// clients say nothing of the tool server; only its own failures count.
func TestClientsThatLeaveDoNotOpenTheCircuit(t *testing.T) {
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(hang)
	u := newUpstream(&upstreamConfig{url: srv.URL, timeout: 5 * time.Second, sse: true}, srv.Client(), slog.New(slog.DiscardHandler), nil)
	u.sessionless.Store(true) // no session to open: each call is one POST
	for range breakerThreshold + 2 {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(20*time.Millisecond, cancel)
		if _, err := u.call(ctx, "tools/call", json.RawMessage(`{"name":"x"}`), nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("a cancelled call: %v", err)
		}
	}
	if !u.allow(time.Now()) || u.state() != "closed" {
		t.Fatalf("cancelled calls opened the circuit: %s", u.state())
	}
}

func TestParamHeadersFollowTheToolsAnnotations(t *testing.T) {
	def := json.RawMessage(`{"name":"q","inputSchema":{"type":"object","properties":{
		"region":{"type":"string","x-mcp-header":"Region"},
		"limit":{"type":"integer","x-mcp-header":"Limit"},
		"dry":{"type":"boolean","x-mcp-header":"Dry"},
		"ratio":{"type":"number","x-mcp-header":"Ratio"},
		"query":{"type":"string"},
		"opts":{"type":"object","properties":{"tenant":{"type":"string","x-mcp-header":"Tenant"}}},
		"items":{"type":"array","items":{"type":"object","properties":{"x":{"type":"string","x-mcp-header":"X"}}}}}}}`)
	got := paramHeaders(def, json.RawMessage(`{"region":"us-west1","limit":42,"dry":false,"ratio":0.5,"query":"SELECT 1",
		"opts":{"tenant":"Hello, 世界"},"items":[{"x":"no"}]}`))
	want := map[string]string{"Region": "us-west1", "Limit": "42", "Dry": "false", "Tenant": "=?base64?SGVsbG8sIOS4lueVjA==?="}
	if len(got) != len(want) {
		t.Fatalf("headers: %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	if h := paramHeaders(def, json.RawMessage(`{"query":"x"}`)); len(h) != 0 {
		t.Errorf("absent values give no header: %v", h)
	}
}
