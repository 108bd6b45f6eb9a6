// Command eraload drives tools/call load through the gateway in a chosen
// era and transport (mcpload negotiates the newest the server
// offers): the session era over streamable HTTP (initialize, then
// Mcp-Session-Id on each request), the stateless era (2026-07-28, no
// session, headers and _meta on each request) and WebSocket (one JSON-RPC
// message per frame, a session per connection).
// It prints the same JSON line as mcpload -json. With -idle, each client
// makes one call and then holds its session without traffic for -d
// (memory per idle session); "ready N" goes to stderr once all are held.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

const version = "2026-07-28"

func main() {
	mode := flag.String("mode", "stateless", "session, stateless or websocket")
	url := flag.String("url", "http://127.0.0.1:18543/t/default/mcp", "MCP endpoint (loopback only)")
	conc := flag.Int("c", 16, "concurrent clients")
	dur := flag.Duration("d", 10*time.Second, "duration of the measured phase")
	warm := flag.Duration("warmup", 2*time.Second, "warm-up before measuring")
	tool := flag.String("tool", "bench__echo", "tool to call")
	args := flag.String("args", `{"text":"hello"}`, "tool arguments as JSON")
	token := flag.String("token", os.Getenv("MCPLOAD_TOKEN"), "bearer token (or env MCPLOAD_TOKEN)")
	ca := flag.String("ca", "", "CA bundle PEM to verify the server")
	idle := flag.Bool("idle", false, "make one call per client, then hold its session idle for -d")
	flag.Parse()

	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if *ca != "" {
		pem, err := os.ReadFile(*ca)
		if err != nil {
			fail(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tlsConf.RootCAs = pool
	}
	var call func(ctx context.Context, w *worker) error
	switch *mode {
	case "session":
		call = sessionCall
	case "stateless":
		call = statelessCall
	case "websocket":
		call = wsCall
	default:
		fail(fmt.Errorf("unknown mode %q", *mode))
	}
	params, _ := json.Marshal(map[string]any{"name": *tool, "arguments": json.RawMessage(*args),
		"_meta": map[string]any{"io.modelcontextprotocol/protocolVersion": version, "io.modelcontextprotocol/clientCapabilities": map[string]any{}}})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf, MaxIdleConnsPerHost: *conc * 2}}
	if *idle {
		holdIdle(call, *conc, *dur, func() *worker {
			return &worker{url: *url, token: *token, tool: *tool, args: json.RawMessage(*args), params: params, client: client, tls: tlsConf}
		})
		return
	}

	ctx, cancel := context.WithTimeout(context.Background(), *warm+*dur)
	defer cancel()
	measureFrom := time.Now().Add(*warm)
	var mu sync.Mutex
	var lat []time.Duration
	errs, firstErr := 0, ""
	var wg sync.WaitGroup
	for i := 0; i < *conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &worker{url: *url, token: *token, tool: *tool, args: json.RawMessage(*args), params: params, client: client, tls: tlsConf}
			defer w.close()
			var mine []time.Duration
			bad := 0
			for ctx.Err() == nil {
				t0 := time.Now()
				err := call(ctx, w)
				if ctx.Err() != nil {
					break
				}
				if t0.After(measureFrom) {
					if err != nil {
						bad++
						mu.Lock()
						if firstErr == "" {
							firstErr = err.Error()
						}
						mu.Unlock()
					} else {
						mine = append(mine, time.Since(t0))
					}
				}
				if err != nil {
					w.close()
					time.Sleep(10 * time.Millisecond)
				}
			}
			mu.Lock()
			lat, errs = append(lat, mine...), errs+bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	out, _ := json.Marshal(map[string]any{"calls_per_s": float64(len(lat)) / dur.Seconds(), "p50_ms": pct(0.5), "p90_ms": pct(0.9),
		"p99_ms": pct(0.99), "errors": errs, "first_error": firstErr, "mode": *mode, "concurrency": *conc})
	fmt.Println(string(out))
}

// holdIdle opens n sessions with one call each, reports them held, and
// keeps them without traffic for d.
func holdIdle(call func(context.Context, *worker) error, n int, d time.Duration, newWorker func() *worker) {
	ctx := context.Background()
	workers := make([]*worker, n)
	errs := 0
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16) // opened 16 at a time
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			w := newWorker()
			if err := call(ctx, w); err != nil {
				mu.Lock()
				errs++
				mu.Unlock()
				fmt.Fprintln(os.Stderr, "eraload:", err)
			}
			workers[i] = w
		}()
	}
	wg.Wait()
	fmt.Fprintln(os.Stderr, "ready", n-errs)
	time.Sleep(d)
	for _, w := range workers {
		w.close()
	}
	out, _ := json.Marshal(map[string]any{"sessions": n - errs, "errors": errs})
	fmt.Println(string(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "eraload:", err)
	os.Exit(1)
}

// worker is one client: its connection (WebSocket) and request ids.
type worker struct {
	url, token, tool string
	args             json.RawMessage
	params           []byte
	client           *http.Client
	tls              *tls.Config
	conn             *websocket.Conn
	session          string // Mcp-Session-Id of the session era
	id               int
}

func (w *worker) close() {
	w.session = ""
	if w.conn != nil {
		_ = w.conn.Close()
		w.conn = nil
	}
}

func (w *worker) body(method string, params []byte) []byte {
	w.id++
	return []byte(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q,"params":%s}`, w.id, method, params))
}

// post sends one message over HTTP with the given headers and returns
// the answer's body and headers.
func (w *worker) post(ctx context.Context, msg []byte, hdr map[string]string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(msg))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+w.token)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode/100 != 2 {
		err = fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, b)
	}
	return b, resp.Header, err
}

// sessionCall is one tools/call of the session era over streamable HTTP,
// on the worker's session (initialized first when there is none).
func sessionCall(ctx context.Context, w *worker) error {
	if w.session == "" {
		init := []byte(`{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"eraload","version":"1"}}`)
		_, h, err := w.post(ctx, w.body("initialize", init), nil)
		if err != nil {
			return err
		}
		if w.session = h.Get("Mcp-Session-Id"); w.session == "" {
			return fmt.Errorf("no session")
		}
		hdr := map[string]string{"Mcp-Session-Id": w.session, "MCP-Protocol-Version": "2025-11-25"}
		if _, _, err := w.post(ctx, []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`), hdr); err != nil {
			return err
		}
	}
	params := []byte(`{"name":` + strconv.Quote(w.tool) + `,"arguments":` + string(w.args) + `}`)
	b, _, err := w.post(ctx, w.body("tools/call", params), map[string]string{"Mcp-Session-Id": w.session, "MCP-Protocol-Version": "2025-11-25"})
	if err != nil {
		return err
	}
	if !bytes.Contains(b, []byte(`"result"`)) || bytes.Contains(b, []byte(`"isError":true`)) {
		return fmt.Errorf("%.200s", b)
	}
	return nil
}

// statelessCall is one tools/call of the stateless era.
func statelessCall(ctx context.Context, w *worker) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(w.body("tools/call", w.params)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+w.token)
	req.Header.Set("MCP-Protocol-Version", version)
	req.Header.Set("Mcp-Method", "tools/call")
	req.Header.Set("Mcp-Name", w.tool)
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(`"result"`)) || bytes.Contains(b, []byte(`"isError":true`)) {
		return fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, b)
	}
	return nil
}

// wsCall is one tools/call on the worker's WebSocket session, opened and
// initialized first when there is none.
func wsCall(ctx context.Context, w *worker) error {
	if w.conn == nil {
		d := websocket.Dialer{TLSClientConfig: w.tls, Subprotocols: []string{"mcp"}, HandshakeTimeout: 5 * time.Second}
		u := "ws" + strings.TrimPrefix(w.url, "http")
		c, resp, err := d.DialContext(ctx, u, http.Header{"Authorization": {"Bearer " + w.token}})
		if resp != nil && resp.Body != nil {
			_ = resp.Body.Close()
		}
		if err != nil {
			return err
		}
		w.conn = c
		init := []byte(`{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"eraload","version":"1"}}`)
		if err := w.roundTrip(w.body("initialize", init)); err != nil {
			return err
		}
		if err := c.WriteMessage(websocket.TextMessage, []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)); err != nil {
			return err
		}
	}
	return w.roundTrip(w.body("tools/call", w.params))
}

// roundTrip sends one request and reads frames until its response.
func (w *worker) roundTrip(msg []byte) error {
	if err := w.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
		return err
	}
	want := fmt.Sprint(w.id)
	for {
		_ = w.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, b, err := w.conn.ReadMessage()
		if err != nil {
			return err
		}
		var m struct {
			ID json.RawMessage `json:"id"`
		}
		if json.Unmarshal(b, &m) != nil || string(m.ID) != want {
			continue // a notification
		}
		if !bytes.Contains(b, []byte(`"result"`)) || bytes.Contains(b, []byte(`"isError":true`)) {
			return fmt.Errorf("%.200s", b)
		}
		return nil
	}
}
