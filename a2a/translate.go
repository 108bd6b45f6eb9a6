package a2a

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
)

// Callers of A2A 1.0 reach agents of 0.3 through a translation of the
// requests and results they exchange: messages, parts, tasks, states,
// streamed events and push-notification configs (docs/design/0010).
// Members a version lacks are dropped.

// methodTo03 maps the 1.0 methods that are translated to their 0.3 names.
var methodTo03 = map[string]string{
	"SendMessage":          "message/send",
	"SendStreamingMessage": "message/stream",
	"GetTask":              "tasks/get",
	"CancelTask":           "tasks/cancel",
	"SubscribeToTask":      "tasks/resubscribe",

	"CreateTaskPushNotificationConfig": "tasks/pushNotificationConfig/set",
	"GetTaskPushNotificationConfig":    "tasks/pushNotificationConfig/get",
	"ListTaskPushNotificationConfig":   "tasks/pushNotificationConfig/list",
	"DeleteTaskPushNotificationConfig": "tasks/pushNotificationConfig/delete",
}

var roleTo03 = map[string]string{"ROLE_USER": "user", "ROLE_AGENT": "agent"}

var stateFrom03 = map[string]string{
	"submitted": "TASK_STATE_SUBMITTED", "working": "TASK_STATE_WORKING", "input-required": "TASK_STATE_INPUT_REQUIRED",
	"completed": "TASK_STATE_COMPLETED", "canceled": "TASK_STATE_CANCELED", "failed": "TASK_STATE_FAILED",
	"rejected": "TASK_STATE_REJECTED", "auth-required": "TASK_STATE_AUTH_REQUIRED", "unknown": "TASK_STATE_UNSPECIFIED",
}

type obj = map[string]any

// decodeExact decodes JSON keeping numbers as written: an id or a data
// part's number passes through translation unchanged.
func decodeExact(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

func asObj(v any) obj {
	o, _ := v.(obj)
	return o
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// copyKeys copies the named members present in src.
func copyKeys(dst, src obj, keys ...string) {
	for _, k := range keys {
		if v, ok := src[k]; ok {
			dst[k] = v
		}
	}
}

func partTo03(p obj) obj {
	out := obj{}
	copyKeys(out, p, "metadata")
	switch {
	case p["text"] != nil:
		out["kind"], out["text"] = "text", p["text"]
	case p["data"] != nil:
		out["kind"], out["data"] = "data", p["data"]
	case p["url"] != nil || p["raw"] != nil:
		f := obj{}
		if p["url"] != nil {
			f["uri"] = p["url"]
		} else {
			f["bytes"] = p["raw"]
		}
		if p["mediaType"] != nil {
			f["mimeType"] = p["mediaType"]
		}
		if p["filename"] != nil {
			f["name"] = p["filename"]
		}
		out["kind"], out["file"] = "file", f
	default:
		out["kind"], out["text"] = "text", ""
	}
	return out
}

func partFrom03(p obj) obj {
	out := obj{}
	copyKeys(out, p, "metadata")
	switch p["kind"] {
	case "text":
		out["text"] = p["text"]
	case "data":
		out["data"] = p["data"]
	case "file":
		f := asObj(p["file"])
		if f["uri"] != nil {
			out["url"] = f["uri"]
		} else {
			out["raw"] = f["bytes"]
		}
		if f["mimeType"] != nil {
			out["mediaType"] = f["mimeType"]
		}
		if f["name"] != nil {
			out["filename"] = f["name"]
		}
	}
	return out
}

// mapEach converts each object of l with conv.
func mapEach(l []any, conv func(obj) obj) []any {
	out := make([]any, 0, len(l))
	for _, p := range l {
		out = append(out, conv(asObj(p)))
	}
	return out
}

func messageTo03(m obj) obj {
	out := obj{"kind": "message", "role": roleTo03[asString(m["role"])], "parts": mapEach(asList(m["parts"]), partTo03)}
	if out["role"] == "" {
		out["role"] = "user"
	}
	copyKeys(out, m, "messageId", "contextId", "taskId", "metadata", "extensions", "referenceTaskIds")
	return out
}

func messageFrom03(m obj) obj {
	role := "ROLE_USER"
	if m["role"] == "agent" {
		role = "ROLE_AGENT"
	}
	out := obj{"role": role, "parts": mapEach(asList(m["parts"]), partFrom03)}
	copyKeys(out, m, "messageId", "contextId", "taskId", "metadata", "extensions", "referenceTaskIds")
	return out
}

func statusFrom03(s obj) obj { return status(s, stateFrom03, "TASK_STATE_UNSPECIFIED", messageFrom03) }

func artifactFrom03(a obj) obj { return artifact(a, partFrom03) }

func taskFrom03(t obj) obj { return task(obj{}, t, statusFrom03, artifactFrom03, messageFrom03) }

// status converts a task status: its state through states (unknown when
// absent there) and its message with message.
func status(s obj, states map[string]string, unknown string, message func(obj) obj) obj {
	out := obj{"state": states[asString(s["state"])]}
	if out["state"] == "" {
		out["state"] = unknown
	}
	copyKeys(out, s, "timestamp")
	if m := asObj(s["message"]); m != nil {
		out["message"] = message(m)
	}
	return out
}

// artifact converts an artifact, its parts with part.
func artifact(a obj, part func(obj) obj) obj {
	out := obj{"parts": mapEach(asList(a["parts"]), part)}
	copyKeys(out, a, "artifactId", "name", "description", "metadata", "extensions")
	return out
}

// task converts t into out with the conversions of one direction.
func task(out, t obj, status, artifact, message func(obj) obj) obj {
	out["status"] = status(asObj(t["status"]))
	copyKeys(out, t, "id", "contextId", "metadata")
	if l := asList(t["artifacts"]); l != nil {
		out["artifacts"] = mapEach(l, artifact)
	}
	if l := asList(t["history"]); l != nil {
		out["history"] = mapEach(l, message)
	}
	return out
}

// eventFrom03 turns a 0.3 result (task, message, status-update or
// artifact-update) into 1.0 form; wrapped says whether it is one of a
// stream's or a send's results (a member named after its kind) rather
// than a bare task (GetTask, CancelTask).
func eventFrom03(r obj, wrapped bool) obj {
	switch r["kind"] {
	case "message":
		return obj{"message": messageFrom03(r)}
	case "status-update":
		u := obj{"status": statusFrom03(asObj(r["status"]))}
		copyKeys(u, r, "taskId", "contextId", "metadata")
		return obj{"statusUpdate": u}
	case "artifact-update":
		u := obj{"artifact": artifactFrom03(asObj(r["artifact"]))}
		copyKeys(u, r, "taskId", "contextId", "append", "lastChunk", "metadata")
		return obj{"artifactUpdate": u}
	}
	if wrapped {
		return obj{"task": taskFrom03(r)}
	}
	return taskFrom03(r)
}

func asString(v any) string {
	s, _ := v.(string)
	return s
}

// requestTo03 rewrites a 1.0 request for an agent of 0.3; false when the
// method is not one that is translated.
func requestTo03(body []byte) ([]byte, bool) {
	return translateRequest(body, methodTo03, paramsTo03)
}

// translateRequest renames a request's method through methods and
// converts its params with params (given the new method); false when the
// method is not in methods.
func translateRequest(body []byte, methods map[string]string, params func(method string, p obj) obj) ([]byte, bool) {
	var req obj
	if decodeExact(body, &req) != nil {
		return nil, false
	}
	method, ok := methods[asString(req["method"])]
	if !ok {
		return nil, false
	}
	req["method"], req["params"] = method, params(method, asObj(req["params"]))
	b, err := json.Marshal(req)
	return b, err == nil
}

// paramsTo03 converts the params of a 1.0 request to those of the 0.3
// method.
func paramsTo03(method string, p obj) obj {
	out := obj{}
	switch method {
	case "message/send", "message/stream":
		out["message"] = messageTo03(asObj(p["message"]))
		copyKeys(out, p, "metadata")
		if c := asObj(p["configuration"]); c != nil {
			conf := obj{"blocking": c["returnImmediately"] != true}
			copyKeys(conf, c, "acceptedOutputModes", "historyLength")
			if pc := asObj(c["taskPushNotificationConfig"]); pc != nil {
				conf["pushNotificationConfig"] = pushConfigTo03(pc)["pushNotificationConfig"]
			}
			out["configuration"] = conf
		}
	case "tasks/pushNotificationConfig/set":
		out = pushConfigTo03(p)
	case "tasks/pushNotificationConfig/get", "tasks/pushNotificationConfig/delete", "tasks/pushNotificationConfig/list":
		out["id"] = p["taskId"]
		if p["id"] != nil && method != "tasks/pushNotificationConfig/list" {
			out["pushNotificationConfigId"] = p["id"]
		}
		copyKeys(out, p, "metadata")
	default:
		copyKeys(out, p, "id", "historyLength", "metadata")
	}
	return out
}

// Push-notification configs: 1.0 has them flat (taskId beside id, url,
// token and authentication with one scheme); 0.3 wraps them (taskId beside
// pushNotificationConfig, whose authentication lists schemes).

// pushConfigTo03 turns a 1.0 config into a 0.3 task config.
func pushConfigTo03(c obj) obj {
	conf := obj{}
	copyKeys(conf, c, "id", "url", "token")
	if a := asObj(c["authentication"]); a != nil {
		auth := obj{"schemes": []any{}}
		copyKeys(auth, a, "credentials")
		if a["scheme"] != nil {
			auth["schemes"] = []any{a["scheme"]}
		}
		conf["authentication"] = auth
	}
	out := obj{"pushNotificationConfig": conf}
	copyKeys(out, c, "taskId")
	return out
}

// pushConfigFrom03 turns a 0.3 task config into a 1.0 config.
func pushConfigFrom03(tc obj) obj {
	c := asObj(tc["pushNotificationConfig"])
	out := obj{}
	copyKeys(out, tc, "taskId")
	copyKeys(out, c, "id", "url", "token")
	if a := asObj(c["authentication"]); a != nil {
		auth := obj{}
		copyKeys(auth, a, "credentials")
		if l := asList(a["schemes"]); len(l) > 0 {
			auth["scheme"] = l[0]
		}
		out["authentication"] = auth
	}
	return out
}

// responseFrom03 rewrites a 0.3 JSON-RPC response for a caller of 1.0
// (errors pass unchanged: both versions share the codes).
func responseFrom03(body []byte, method string) []byte {
	return rewriteResult(body, func(r any) (any, bool) {
		switch method {
		case "CreateTaskPushNotificationConfig", "GetTaskPushNotificationConfig":
			return pushConfigFrom03(asObj(r)), true
		case "ListTaskPushNotificationConfig":
			return obj{"configs": mapEach(asList(r), pushConfigFrom03)}, true
		case "DeleteTaskPushNotificationConfig":
			return r, false
		}
		if asObj(r) == nil {
			return r, false
		}
		return eventFrom03(asObj(r), method != "GetTask" && method != "CancelTask"), true
	})
}

// rewriteResult rewrites the result of a JSON-RPC response with fn (false:
// leave it); the body unchanged when it has no result (an error) or is
// not JSON.
func rewriteResult(body []byte, fn func(any) (any, bool)) []byte {
	var resp obj
	if decodeExact(body, &resp) != nil {
		return body
	}
	r, ok := resp["result"]
	if !ok || r == nil {
		return body
	}
	if resp["result"], ok = fn(r); !ok {
		return body
	}
	b, err := json.Marshal(resp)
	if err != nil {
		return body
	}
	return b
}

// streamFrom03 rewrites a 0.3 event stream for a caller of 1.0, event by
// event, calling flush after each.
func streamFrom03(w io.Writer, r io.Reader, method string, flush func()) error {
	return rewriteStream(w, r, func(b []byte) []byte { return responseFrom03(b, method) }, flush)
}

// rewriteStream rewrites the data of each event of an event stream with
// fn, calling flush after each event.
func rewriteStream(w io.Writer, r io.Reader, fn func([]byte) []byte, flush func()) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20) // as a JSON answer
	for sc.Scan() {
		line := sc.Text()
		if data, ok := strings.CutPrefix(line, "data:"); ok {
			line = "data: " + string(fn([]byte(strings.TrimSpace(data))))
		}
		if _, err := io.WriteString(w, line+"\n"); err != nil {
			return err
		}
		if line == "" {
			flush()
		}
	}
	flush()
	return sc.Err()
}

// isJSON reports whether a content type is JSON (else it is an event stream).
func isJSON(contentType string) bool {
	return !strings.HasPrefix(strings.TrimSpace(strings.ToLower(contentType)), "text/event-stream")
}

// Callers of 0.3 reach agents of 1.0 through the inverse translation.

// methodTo10 maps the 0.3 methods that are translated to their 1.0 names.
var methodTo10 = map[string]string{}

var stateTo03 = map[string]string{}

func init() {
	for k, v := range methodTo03 {
		methodTo10[v] = k
	}
	for k, v := range stateFrom03 {
		stateTo03[v] = k
	}
}

func statusTo03(s obj) obj { return status(s, stateTo03, "unknown", messageTo03) }

func artifactTo03(a obj) obj { return artifact(a, partTo03) }

func taskTo03(t obj) obj {
	return task(obj{"kind": "task"}, t, statusTo03, artifactTo03, messageTo03)
}

// eventTo03 turns a 1.0 result — a task (GetTask, CancelTask) or one of
// {task, message, statusUpdate, artifactUpdate} — into 0.3 form.
func eventTo03(r obj) obj {
	switch {
	case r["task"] != nil:
		return taskTo03(asObj(r["task"]))
	case r["message"] != nil:
		return messageTo03(asObj(r["message"]))
	case r["statusUpdate"] != nil:
		u := asObj(r["statusUpdate"])
		out := obj{"kind": "status-update", "status": statusTo03(asObj(u["status"]))}
		copyKeys(out, u, "taskId", "contextId", "metadata")
		st := asString(asObj(u["status"])["state"])
		out["final"] = st == "TASK_STATE_COMPLETED" || st == "TASK_STATE_CANCELED" || st == "TASK_STATE_FAILED" || st == "TASK_STATE_REJECTED"
		return out
	case r["artifactUpdate"] != nil:
		u := asObj(r["artifactUpdate"])
		out := obj{"kind": "artifact-update", "artifact": artifactTo03(asObj(u["artifact"]))}
		copyKeys(out, u, "taskId", "contextId", "append", "lastChunk", "metadata")
		return out
	}
	return taskTo03(r)
}

// requestTo10 rewrites a 0.3 request for an agent of 1.0; false when the
// method is not one that is translated.
func requestTo10(body []byte) ([]byte, bool) {
	return translateRequest(body, methodTo10, paramsTo10)
}

// paramsTo10 converts the params of a 0.3 request to those of the 1.0
// method.
func paramsTo10(method string, p obj) obj {
	out := obj{}
	switch method {
	case "SendMessage", "SendStreamingMessage":
		msg := messageFrom03(asObj(p["message"]))
		out["message"] = msg
		copyKeys(out, p, "metadata")
		if c := asObj(p["configuration"]); c != nil {
			conf := obj{}
			copyKeys(conf, c, "acceptedOutputModes", "historyLength")
			if c["blocking"] == false {
				conf["returnImmediately"] = true
			}
			if pc := asObj(c["pushNotificationConfig"]); pc != nil {
				tc := obj{"pushNotificationConfig": pc}
				copyKeys(tc, msg, "taskId")
				conf["taskPushNotificationConfig"] = pushConfigFrom03(tc)
			}
			out["configuration"] = conf
		}
	case "CreateTaskPushNotificationConfig":
		out = pushConfigFrom03(p)
	case "GetTaskPushNotificationConfig", "DeleteTaskPushNotificationConfig", "ListTaskPushNotificationConfig":
		out["taskId"] = p["id"]
		if p["pushNotificationConfigId"] != nil && method != "ListTaskPushNotificationConfig" {
			out["id"] = p["pushNotificationConfigId"]
		}
		copyKeys(out, p, "metadata")
	default:
		copyKeys(out, p, "id", "historyLength", "metadata")
	}
	return out
}

// responseTo03 rewrites a 1.0 JSON-RPC response for a caller of 0.3 (of
// method, the caller's).
func responseTo03(body []byte, method string) []byte {
	return rewriteResult(body, func(r any) (any, bool) {
		switch method {
		case "tasks/pushNotificationConfig/set", "tasks/pushNotificationConfig/get":
			return pushConfigTo03(asObj(r)), true
		case "tasks/pushNotificationConfig/list":
			return mapEach(asList(asObj(r)["configs"]), pushConfigTo03), true
		case "tasks/pushNotificationConfig/delete":
			return r, false
		}
		if asObj(r) == nil {
			return r, false
		}
		return eventTo03(asObj(r)), true
	})
}
