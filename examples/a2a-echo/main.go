// Command a2a-echo is a small A2A 1.0 agent for trying the gateway: it
// answers SendMessage (and SendStreamingMessage, as one event) with the
// text it was sent, serves its card, and checks nothing — put it behind
// xavyo, on a loopback address.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"strings"
	"time"
)

type request struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  struct {
		Message struct {
			ContextID string `json:"contextId"`
			Parts     []struct {
				Text string `json:"text"`
			} `json:"parts"`
		} `json:"message"`
	} `json:"params"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9802", "listen address")
	flag.Parse()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/agent-card.json", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{
			"name": "a2a-echo", "description": "Echoes the text it is sent.", "version": "1.0.0",
			"supportedInterfaces": []any{map[string]any{"url": "http://" + r.Host + "/", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}},
			"capabilities":        map[string]any{"streaming": true},
			"defaultInputModes":   []string{"text/plain"}, "defaultOutputModes": []string{"text/plain"},
			"skills": []any{map[string]any{"id": "echo", "name": "Echo", "description": "Says back what it hears.", "tags": []string{"echo"}}},
		})
	})
	mux.HandleFunc("POST /{$}", func(w http.ResponseWriter, r *http.Request) {
		var req request
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil || req.JSONRPC != "2.0" {
			writeJSON(w, map[string]any{"jsonrpc": "2.0", "id": nil, "error": map[string]any{"code": -32700, "message": "not a JSON-RPC request"}})
			return
		}
		var text []string
		for _, p := range req.Params.Message.Parts {
			text = append(text, p.Text)
		}
		reply := map[string]any{"message": map[string]any{"messageId": newID(), "contextId": req.Params.Message.ContextID, "role": "ROLE_AGENT",
			"parts": []any{map[string]any{"text": "echo: " + strings.Join(text, " ")}}}}
		switch req.Method {
		case "SendMessage":
			writeJSON(w, map[string]any{"jsonrpc": "2.0", "id": req.ID, "result": reply})
		case "SendStreamingMessage":
			b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": req.ID, "result": reply})
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = w.Write(append(append([]byte("data: "), b...), "\n\n"...))
		default:
			writeJSON(w, map[string]any{"jsonrpc": "2.0", "id": req.ID, "error": map[string]any{"code": -32004, "message": req.Method + " is not supported"}})
		}
	})
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Printf("a2a-echo: A2A JSON-RPC at http://%s/", *addr)
	log.Fatal(srv.ListenAndServe())
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
