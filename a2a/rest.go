package a2a

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/xavyo/xavyo/internal/apperr"
)

// The HTTP+JSON binding of A2A 1.0, served in front of agents that speak
// JSON-RPC: each route becomes the JSON-RPC request it stands for, goes
// through the same decision, audit and forwarding, and its answer comes
// back out of the JSON-RPC envelope (errors as AIP-193 statuses).

// rest serves POST {agent}/message:send and message:stream, GET
// {agent}/tasks, GET {agent}/tasks/{id}, POST {agent}/tasks/{id}:cancel
// and :subscribe, GET {agent}/extendedAgentCard, and a task's
// push-notification configs: POST and GET
// {agent}/tasks/{id}/pushNotificationConfigs, GET and DELETE
// {agent}/tasks/{id}/pushNotificationConfigs/{config}.
func (h *Handlers) rest(route string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// The tenant first, as on every route: a refusal in this binding's form.
		t, ctx, err := h.cfg.Enforcer.Tenant(r.Context(), r.PathValue("slug"))
		if err != nil {
			code := codeInvalidRequest
			if apperr.KindOf(err) == apperr.KindPermissionDenied {
				code = codeForbidden
			}
			restError(w, apperr.KindOf(err).HTTPStatus(), code, apperr.PublicMessage(err), nil)
			return
		}
		params := map[string]any{}
		method := route // per request: "task" routes resolve to a method below
		switch method {
		case "SendMessage", "SendStreamingMessage":
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<20))
			if err != nil || json.Unmarshal(body, &params) != nil {
				restError(w, http.StatusBadRequest, codeInvalidRequest, "the body is a JSON SendMessageRequest of at most 4 MiB", nil)
				return
			}
		case "task":
			rest := r.PathValue("rest")
			id, verb, _ := strings.Cut(rest, ":")
			switch {
			case r.Method == http.MethodGet && verb == "":
				method = "GetTask"
				if v := r.URL.Query().Get("historyLength"); v != "" {
					n, err := strconv.Atoi(v)
					if err != nil || n < 0 {
						restError(w, http.StatusBadRequest, codeInvalidParams, "historyLength is a number", nil)
						return
					}
					params["historyLength"] = n
				}
			case r.Method == http.MethodPost && verb == "cancel":
				method = "CancelTask"
			case r.Method == http.MethodPost && verb == "subscribe":
				method = "SubscribeToTask"
			default:
				restError(w, http.StatusNotFound, codeMethodNotFound, "no such route", nil)
				return
			}
			params["id"] = id
		case "CreateTaskPushNotificationConfig":
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
			if err != nil || json.Unmarshal(body, &params) != nil {
				restError(w, http.StatusBadRequest, codeInvalidRequest, "the body is a JSON push-notification config of at most 1 MiB", nil)
				return
			}
			params["taskId"] = r.PathValue("task")
		case "GetTaskPushNotificationConfig", "DeleteTaskPushNotificationConfig":
			params["taskId"], params["id"] = r.PathValue("task"), r.PathValue("config")
		case "ListTaskPushNotificationConfig":
			params["taskId"] = r.PathValue("task")
			q := r.URL.Query()
			if v := q.Get("pageToken"); v != "" {
				params["pageToken"] = v
			}
			if v := q.Get("pageSize"); v != "" {
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 {
					restError(w, http.StatusBadRequest, codeInvalidParams, "pageSize is a number", nil)
					return
				}
				params["pageSize"] = n
			}
		case "ListTasks":
			q := r.URL.Query()
			for _, k := range []string{"contextId", "status", "pageToken"} {
				if v := q.Get(k); v != "" {
					params[k] = v
				}
			}
			if v := q.Get("pageSize"); v != "" {
				if n, err := strconv.Atoi(v); err == nil {
					params["pageSize"] = n
				}
			}
		}
		body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
		h.callWith(w, r.WithContext(ctx), t, body, true)
	}
}

// restStatus maps JSON-RPC error codes to HTTP statuses (AIP-193).
func restStatus(code int) (int, string) {
	switch code {
	case -32001: // TaskNotFound
		return http.StatusNotFound, "NOT_FOUND"
	case -32002: // TaskNotCancelable
		return http.StatusConflict, "FAILED_PRECONDITION"
	case codeUnsupported, -32003, -32005, -32007:
		return http.StatusNotImplemented, "UNIMPLEMENTED"
	case codeForbidden:
		return http.StatusForbidden, "PERMISSION_DENIED"
	case codeParse, codeInvalidRequest, codeInvalidParams, codeMethodNotFound:
		return http.StatusBadRequest, "INVALID_ARGUMENT"
	}
	return http.StatusInternalServerError, "INTERNAL"
}

// restError writes an error of the HTTP+JSON binding; status is the one
// the JSON-RPC error would have had, refined by its code.
func restError(w http.ResponseWriter, status, code int, msg string, data map[string]string) {
	st, name := restStatus(code)
	if status >= 400 && status != http.StatusOK && status != http.StatusForbidden && status != http.StatusBadGateway {
		st = status
	}
	if status == http.StatusBadGateway || status == http.StatusServiceUnavailable {
		st, name = status, "UNAVAILABLE"
	}
	e := map[string]any{"code": st, "status": name, "message": msg}
	if len(data) > 0 {
		e["details"] = []any{map[string]any{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": data["code"], "domain": "xavyo",
			"metadata": data}}
	}
	writeJSON(w, st, map[string]any{"error": e})
}

// unwrapRPC takes an answer out of its JSON-RPC envelope: the result, or
// the error as an HTTP status and an AIP-193 body.
func unwrapRPC(b []byte) (int, []byte) {
	var env struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &env) != nil {
		return http.StatusBadGateway, []byte(`{"error":{"code":502,"status":"UNAVAILABLE","message":"the agent's answer was not JSON-RPC"}}`)
	}
	if env.Error != nil {
		st, name := restStatus(env.Error.Code)
		out, _ := json.Marshal(map[string]any{"error": map[string]any{"code": st, "status": name, "message": env.Error.Message,
			"details": []any{map[string]any{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": fmt.Sprint(env.Error.Code), "domain": "a2a"}}}})
		return st, out
	}
	if len(env.Result) == 0 || string(env.Result) == "null" {
		return http.StatusOK, []byte("{}")
	}
	return http.StatusOK, env.Result
}
