package a2a

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/xavyo/xavyo/gateway"

	"github.com/xavyo/xavyo/internal/store"
)

// Tasks made through the gateway belong to the caller that made them. The
// target sees every call with xavyo's credential, so it may not tell
// callers apart; xavyo does: a task another caller made is, to this one,
// a task that does not exist (TaskNotFound), and lists leave it out.
// Tasks xavyo never saw made are the target's to decide.

// sendMethods make tasks: their answers bind the tasks they name.
var sendMethods = []string{"SendMessage", "SendStreamingMessage", "message/send", "message/stream"}

// requestedTask is the task a request addresses ("" for none): a task's
// own methods, its push-notification configs, and a message continuing it.
func requestedTask(method string, body []byte) string {
	var req struct {
		Params struct {
			ID      any `json:"id"`
			TaskID  any `json:"taskId"`
			Message struct {
				TaskID any `json:"taskId"`
			} `json:"message"`
		} `json:"params"`
	}
	if json.Unmarshal(body, &req) != nil {
		return ""
	}
	p := req.Params
	var v any
	switch method {
	case "GetTask", "CancelTask", "SubscribeToTask", "tasks/get", "tasks/cancel", "tasks/resubscribe",
		"tasks/pushNotificationConfig/get", "tasks/pushNotificationConfig/list", "tasks/pushNotificationConfig/delete":
		v = p.ID
	case "CreateTaskPushNotificationConfig", "GetTaskPushNotificationConfig", "ListTaskPushNotificationConfig", "DeleteTaskPushNotificationConfig",
		"tasks/pushNotificationConfig/set":
		v = p.TaskID
	case "SendMessage", "SendStreamingMessage", "message/send", "message/stream":
		v = p.Message.TaskID
	}
	s, _ := v.(string)
	return s
}

// answeredTasks are the tasks an answer (or one event of a stream) names,
// in either version: a task, or the task of a message or an update.
func answeredTasks(body []byte) []string {
	var resp obj
	if decodeExact(body, &resp) != nil {
		return nil
	}
	r := asObj(resp["result"])
	if r == nil {
		return nil
	}
	var ids []string
	add := func(v any) {
		if s, _ := v.(string); s != "" && !slices.Contains(ids, s) {
			ids = append(ids, s)
		}
	}
	for _, k := range []string{"statusUpdate", "artifactUpdate", "message"} {
		add(asObj(r[k])["taskId"])
	}
	add(asObj(r["task"])["id"])
	switch {
	case r["kind"] == "task", r["kind"] == nil && r["status"] != nil:
		add(r["id"])
	case r["kind"] != nil:
		add(r["taskId"])
	}
	return ids
}

// taskOwners reads who made each of the tasks (of agent) that xavyo saw
// made: caller kind and ID joined by a slash.
func (h *Handlers) taskOwners(ctx context.Context, agent string, ids []string) (map[string]string, error) {
	owners := map[string]string{}
	if len(ids) == 0 {
		return owners, nil
	}
	err := h.cfg.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		owners, err = tasksOwners(ctx, tx, agent, ids)
		return err
	})
	return owners, err
}

func callerKey(p *gateway.Caller) string { return string(p.Kind) + "/" + p.SubjectID }

// othersTask reports whether a task was made through xavyo by another
// caller.
func (h *Handlers) othersTask(ctx context.Context, p *gateway.Caller, agent, id string) (bool, error) {
	owners, err := h.taskOwners(ctx, agent, []string{id})
	if err != nil {
		return false, err
	}
	o, ok := owners[id]
	return ok && o != callerKey(p), nil
}

// bindTasks records the caller as the maker of tasks (the first answer
// naming a task binds it; later ones change nothing). Bindings are as
// durable as the audit records of calls: they survive a crash of the
// process (docs/design/0007).
func (h *Handlers) bindTasks(ctx context.Context, p *gateway.Caller, agent string, ids []string) error {
	return h.cfg.DB.InTenantTxRelaxed(ctx, func(tx *store.Tx) error {
		for _, id := range ids {
			if err := bindTask(ctx, tx, agent, id, p); err != nil {
				return err
			}
		}
		return nil
	})
}

// binder binds the tasks the answers of one call name, each once.
type binder struct {
	h     *Handlers
	ctx   context.Context
	p     *gateway.Caller
	agent string
	seen  []string
}

func (b *binder) observe(body []byte) {
	var fresh []string
	for _, id := range answeredTasks(body) {
		if !slices.Contains(b.seen, id) {
			b.seen = append(b.seen, id)
			fresh = append(fresh, id)
		}
	}
	if len(fresh) == 0 {
		return
	}
	if err := b.h.bindTasks(b.ctx, b.p, b.agent, fresh); err != nil {
		b.h.cfg.Logger.Warn("a2a task binding failed", "agent", b.agent, "error", err)
	}
}

// filterTasks leaves out of a ListTasks answer the tasks other callers
// made.
func (h *Handlers) filterTasks(ctx context.Context, p *gateway.Caller, agent string, body []byte) []byte {
	var resp obj
	if decodeExact(body, &resp) != nil {
		return body
	}
	r := asObj(resp["result"])
	tasks := asList(r["tasks"])
	if len(tasks) == 0 {
		return body
	}
	var ids []string
	for _, tk := range tasks {
		if id, _ := asObj(tk)["id"].(string); id != "" {
			ids = append(ids, id)
		}
	}
	owners, err := h.taskOwners(ctx, agent, ids)
	if err != nil {
		// Better no list than another's tasks.
		b, _ := json.Marshal(obj{"jsonrpc": "2.0", "id": resp["id"], "error": obj{"code": codeInternal, "message": "tasks could not be listed"}})
		return b
	}
	kept := make([]any, 0, len(tasks))
	for _, tk := range tasks {
		id, _ := asObj(tk)["id"].(string)
		if o, ok := owners[id]; ok && o != callerKey(p) {
			continue
		}
		kept = append(kept, tk)
	}
	if len(kept) == len(tasks) {
		return body
	}
	if n, ok := r["totalSize"].(json.Number); ok {
		if total, err := n.Int64(); err == nil {
			r["totalSize"] = total - int64(len(tasks)-len(kept))
		}
	}
	r["tasks"] = kept
	b, err := json.Marshal(resp)
	if err != nil {
		return body
	}
	return b
}
