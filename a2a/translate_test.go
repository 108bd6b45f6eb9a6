package a2a

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func canonJSON(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// TestTranslationTo03: requests of 1.0 become requests of 0.3; results
// and streamed events of 0.3 come back in 1.0 form.
func TestTranslationTo03(t *testing.T) {
	req, ok := requestTo03([]byte(`{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"messageId":"m","role":"ROLE_USER",
		"parts":[{"text":"hi"},{"url":"https://x/y.pdf","mediaType":"application/pdf","filename":"y.pdf"},{"data":{"k":1}}]},
		"configuration":{"acceptedOutputModes":["text/plain"],"historyLength":2,"returnImmediately":true}}}`))
	want := `{"id":1,"jsonrpc":"2.0","method":"message/send","params":{"configuration":{"acceptedOutputModes":["text/plain"],"blocking":false,"historyLength":2},
		"message":{"kind":"message","messageId":"m","parts":[{"kind":"text","text":"hi"},{"file":{"mimeType":"application/pdf","name":"y.pdf","uri":"https://x/y.pdf"},"kind":"file"},
		{"data":{"k":1},"kind":"data"}],"role":"user"}}}`
	if !ok || canonJSON(t, string(req)) != canonJSON(t, want) {
		t.Fatalf("SendMessage → %s", req)
	}
	if _, ok := requestTo03([]byte(`{"jsonrpc":"2.0","id":1,"method":"ListTasks","params":{}}`)); ok {
		t.Fatal("ListTasks has no 0.3 form here")
	}
	task03 := `{"jsonrpc":"2.0","id":1,"result":{"kind":"task","id":"t","contextId":"c","status":{"state":"input-required","timestamp":"2026-11-30T00:00:00Z",
		"message":{"kind":"message","messageId":"a","role":"agent","parts":[{"kind":"text","text":"which?"}]}},
		"artifacts":[{"artifactId":"x","parts":[{"kind":"file","file":{"bytes":"aGk=","mimeType":"text/plain"}}]}]}}`
	for method, want := range map[string]string{
		"SendMessage": `{"id":1,"jsonrpc":"2.0","result":{"task":{"artifacts":[{"artifactId":"x","parts":[{"mediaType":"text/plain","raw":"aGk="}]}],"contextId":"c","id":"t",
			"status":{"message":{"messageId":"a","parts":[{"text":"which?"}],"role":"ROLE_AGENT"},"state":"TASK_STATE_INPUT_REQUIRED","timestamp":"2026-11-30T00:00:00Z"}}}}`,
		"GetTask": `{"id":1,"jsonrpc":"2.0","result":{"artifacts":[{"artifactId":"x","parts":[{"mediaType":"text/plain","raw":"aGk="}]}],"contextId":"c","id":"t",
			"status":{"message":{"messageId":"a","parts":[{"text":"which?"}],"role":"ROLE_AGENT"},"state":"TASK_STATE_INPUT_REQUIRED","timestamp":"2026-11-30T00:00:00Z"}}}`,
	} {
		if got := responseFrom03([]byte(task03), method); canonJSON(t, string(got)) != canonJSON(t, want) {
			t.Errorf("%s ← %s", method, got)
		}
	}
	errResp := `{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"task not found"}}`
	if got := responseFrom03([]byte(errResp), "GetTask"); string(got) != errResp {
		t.Errorf("errors pass unchanged: %s", got)
	}
	stream := "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"kind\":\"status-update\",\"taskId\":\"t\",\"contextId\":\"c\",\"final\":true,\"status\":{\"state\":\"completed\"}}}\n\n" +
		"data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"kind\":\"artifact-update\",\"taskId\":\"t\",\"contextId\":\"c\",\"artifact\":{\"artifactId\":\"x\",\"parts\":[{\"kind\":\"text\",\"text\":\"hi\"}]}}}\n\n"
	var out bytes.Buffer
	flushes := 0
	if err := streamFrom03(&out, strings.NewReader(stream), "SendStreamingMessage", func() { flushes++ }); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	if lines[0] != "event: message" || flushes < 2 ||
		canonJSON(t, strings.TrimPrefix(lines[1], "data: ")) != canonJSON(t, `{"id":1,"jsonrpc":"2.0","result":{"statusUpdate":{"contextId":"c","status":{"state":"TASK_STATE_COMPLETED"},"taskId":"t"}}}`) ||
		canonJSON(t, strings.TrimPrefix(lines[3], "data: ")) != canonJSON(t, `{"id":1,"jsonrpc":"2.0","result":{"artifactUpdate":{"artifact":{"artifactId":"x","parts":[{"text":"hi"}]},"contextId":"c","taskId":"t"}}}`) {
		t.Fatalf("stream:\n%s", out.String())
	}
}

// TestTranslationRoundTrip: 1.0 → 0.3 → 1.0 keeps a request, and
// 0.3 → 1.0 → 0.3 keeps a task and the events of a stream.
func TestTranslationRoundTrip(t *testing.T) {
	req := `{"jsonrpc":"2.0","id":"x","method":"SendMessage","params":{"message":{"messageId":"m","contextId":"c","role":"ROLE_AGENT",
		"parts":[{"text":"hi"},{"raw":"aGk=","mediaType":"text/plain","filename":"a.txt"},{"data":{"n":[1,2]}}]}}}`
	down, ok := requestTo03([]byte(req))
	if !ok {
		t.Fatal("down")
	}
	back, ok := requestTo10(down)
	if !ok || canonJSON(t, string(back)) != canonJSON(t, req) {
		t.Fatalf("1.0 → 0.3 → 1.0:\n%s\n%s", req, back)
	}
	for _, r := range []string{
		`{"kind":"task","id":"t","contextId":"c","status":{"state":"working","timestamp":"2026-11-30T00:00:00Z"},"history":[{"kind":"message","messageId":"m","role":"user","parts":[{"kind":"text","text":"hi"}]}]}`,
		`{"kind":"message","messageId":"m","role":"agent","parts":[{"kind":"file","file":{"uri":"https://x/y","mimeType":"image/png","name":"y.png"}}]}`,
		`{"kind":"status-update","taskId":"t","contextId":"c","final":true,"status":{"state":"completed"}}`,
		`{"kind":"artifact-update","taskId":"t","contextId":"c","append":true,"lastChunk":false,"artifact":{"artifactId":"a","parts":[{"kind":"data","data":{"k":"v"}}]}}`,
	} {
		resp := `{"jsonrpc":"2.0","id":1,"result":` + r + `}`
		up := responseFrom03([]byte(resp), "SendStreamingMessage")
		if down := responseTo03(up, "message/stream"); canonJSON(t, string(down)) != canonJSON(t, resp) {
			t.Errorf("0.3 → 1.0 → 0.3:\n%s\n%s\n%s", resp, up, down)
		}
	}
}

// TestPushConfigTranslation: push-notification configs between the flat
// form of 1.0 and the wrapped form of 0.3, in requests (their own methods
// and a message's configuration) and in results, both ways.
func TestPushConfigTranslation(t *testing.T) {
	for _, c := range []struct{ v10, v03 string }{
		{`{"jsonrpc":"2.0","id":1,"method":"CreateTaskPushNotificationConfig","params":{"taskId":"t","id":"p","url":"https://hook/x","token":"k",
			"authentication":{"scheme":"Bearer","credentials":"pw"}}}`,
			`{"jsonrpc":"2.0","id":1,"method":"tasks/pushNotificationConfig/set","params":{"taskId":"t","pushNotificationConfig":{"id":"p","url":"https://hook/x","token":"k",
			"authentication":{"schemes":["Bearer"],"credentials":"pw"}}}}`},
		{`{"jsonrpc":"2.0","id":2,"method":"GetTaskPushNotificationConfig","params":{"taskId":"t","id":"p"}}`,
			`{"jsonrpc":"2.0","id":2,"method":"tasks/pushNotificationConfig/get","params":{"id":"t","pushNotificationConfigId":"p"}}`},
		{`{"jsonrpc":"2.0","id":3,"method":"ListTaskPushNotificationConfig","params":{"taskId":"t"}}`,
			`{"jsonrpc":"2.0","id":3,"method":"tasks/pushNotificationConfig/list","params":{"id":"t"}}`},
		{`{"jsonrpc":"2.0","id":4,"method":"DeleteTaskPushNotificationConfig","params":{"taskId":"t","id":"p"}}`,
			`{"jsonrpc":"2.0","id":4,"method":"tasks/pushNotificationConfig/delete","params":{"id":"t","pushNotificationConfigId":"p"}}`},
		{`{"jsonrpc":"2.0","id":5,"method":"SendMessage","params":{"message":{"messageId":"m","taskId":"t","role":"ROLE_USER","parts":[{"text":"hi"}]},
			"configuration":{"returnImmediately":true,"taskPushNotificationConfig":{"taskId":"t","url":"https://hook/x","token":"k"}}}}`,
			`{"jsonrpc":"2.0","id":5,"method":"message/send","params":{"message":{"kind":"message","messageId":"m","taskId":"t","role":"user","parts":[{"kind":"text","text":"hi"}]},
			"configuration":{"blocking":false,"pushNotificationConfig":{"url":"https://hook/x","token":"k"}}}}`},
	} {
		down, ok := requestTo03([]byte(c.v10))
		if !ok || canonJSON(t, string(down)) != canonJSON(t, c.v03) {
			t.Errorf("1.0 → 0.3:\n%s\n%s", c.v10, down)
		}
		up, ok := requestTo10([]byte(c.v03))
		if !ok || canonJSON(t, string(up)) != canonJSON(t, c.v10) {
			t.Errorf("0.3 → 1.0:\n%s\n%s", c.v03, up)
		}
	}
	cfg03 := `{"taskId":"t","pushNotificationConfig":{"id":"p","url":"https://hook/x","token":"k","authentication":{"schemes":["Bearer"]}}}`
	cfg10 := `{"taskId":"t","id":"p","url":"https://hook/x","token":"k","authentication":{"scheme":"Bearer"}}`
	for _, c := range []struct{ method10, method03, r10, r03 string }{
		{"CreateTaskPushNotificationConfig", "tasks/pushNotificationConfig/set", cfg10, cfg03},
		{"GetTaskPushNotificationConfig", "tasks/pushNotificationConfig/get", cfg10, cfg03},
		{"ListTaskPushNotificationConfig", "tasks/pushNotificationConfig/list", `{"configs":[` + cfg10 + `]}`, `[` + cfg03 + `]`},
		{"DeleteTaskPushNotificationConfig", "tasks/pushNotificationConfig/delete", `{}`, `{}`},
	} {
		resp03, resp10 := `{"jsonrpc":"2.0","id":1,"result":`+c.r03+`}`, `{"jsonrpc":"2.0","id":1,"result":`+c.r10+`}`
		if got := responseFrom03([]byte(resp03), c.method10); canonJSON(t, string(got)) != canonJSON(t, resp10) {
			t.Errorf("%s ← %s", c.method10, got)
		}
		if got := responseTo03([]byte(resp10), c.method03); canonJSON(t, string(got)) != canonJSON(t, resp03) {
			t.Errorf("%s ← %s", c.method03, got)
		}
	}
}

// TestTranslationKeepsNumbers: ids and numbers in data parts pass through
// translation as written, beyond float64's precision.
func TestTranslationKeepsNumbers(t *testing.T) {
	req := `{"jsonrpc":"2.0","id":9007199254740993,"method":"SendMessage","params":{"message":{"role":"ROLE_USER","parts":[{"data":{"n":12345678901234567890.5}}]}}}`
	down, ok := requestTo03([]byte(req))
	if !ok || !strings.Contains(string(down), `"id":9007199254740993`) || !strings.Contains(string(down), `"n":12345678901234567890.5`) {
		t.Fatalf("numbers changed: %s", down)
	}
	resp := `{"jsonrpc":"2.0","id":9007199254740993,"result":{"kind":"message","role":"agent","parts":[{"kind":"data","data":{"n":1e400}}]}}`
	if up := responseFrom03([]byte(resp), "SendMessage"); !strings.Contains(string(up), `"id":9007199254740993`) || !strings.Contains(string(up), `"n":1e400`) {
		t.Fatalf("numbers changed: %s", up)
	}
}

// FuzzTranslate: whatever a caller or an agent sends, translation neither
// panics nor produces anything but JSON, and a translated request keeps
// its id.
func FuzzTranslate(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"role":"ROLE_USER","parts":[{"text":"hi"},{"url":"u"}]},"configuration":{"taskPushNotificationConfig":{"url":"u","authentication":{"scheme":"B"}}}}}`))
	f.Add([]byte(`{"jsonrpc":"2.0","id":"x","method":"message/send","params":{"message":{"kind":"message","role":"agent","parts":[{"kind":"file","file":{"bytes":"aGk="}}]},"configuration":{"blocking":false,"pushNotificationConfig":{"url":"u"}}}}`))
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"result":[{"taskId":"t","pushNotificationConfig":{"url":"u","authentication":{"schemes":[1]}}}]}`))
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"result":{"configs":[{"url":"u"}],"task":{"status":{"message":{"parts":[null]}}},"statusUpdate":{"status":7}}}`))
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"result":{"kind":"artifact-update","artifact":{"parts":"x"}}}`))
	methods := append(slices.Clone(methods), "")
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, tr := range []func([]byte) ([]byte, bool){requestTo03, requestTo10} {
			out, ok := tr(in)
			if !ok {
				continue
			}
			var before, after struct{ ID any }
			if !json.Valid(out) || json.Unmarshal(in, &before) != nil || json.Unmarshal(out, &after) != nil ||
				fmt.Sprint(before.ID) != fmt.Sprint(after.ID) {
				t.Fatalf("%s → %s", in, out)
			}
		}
		for _, m := range methods {
			for _, out := range [][]byte{responseFrom03(in, m), responseTo03(in, m)} {
				if json.Valid(in) && !json.Valid(out) {
					t.Fatalf("%s (%s) → %s", in, m, out)
				}
			}
		}
	})
}
