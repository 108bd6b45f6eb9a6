package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/egress"
)

// upstreamVersion is the protocol revision the gateway speaks upstream.
const upstreamVersion = "2025-11-25"

// Breaker settings: this many consecutive transport failures open the
// circuit for breakerCooldown; then one call probes it.
const (
	breakerThreshold = 5
	breakerCooldown  = 10 * time.Second
)

// errUpstreamClosed is what a connection closed for good answers (the
// gateway is stopping, or the tool server's settings changed and a new
// connection replaces this one).
var errUpstreamClosed = apperr.New(apperr.KindUnavailable, "the connection to the tool server is closed")

// ErrUpstreamUnavailable is returned while a tool server's circuit is open.
var ErrUpstreamUnavailable = apperr.New(apperr.KindUnavailable, "the tool server is unavailable (circuit open)")

// upstream is the gateway's one connection to a tool server on this
// replica, shared by every agent session: the gateway calls upstream with
// the tool server's own credential, never an agent's, so one upstream
// session serves all.
type upstream struct {
	cfg     *upstreamConfig
	log     *slog.Logger
	client  *http.Client // adds the credential to every request
	raw     *http.Client // the egress client itself (the upstream's token endpoint)
	onList  func()       // called on notifications/tools/list_changed
	syncing atomic.Bool  // a resync runs
	// onUpdated receives notifications/resources/updated.
	onUpdated func(params json.RawMessage)

	mu      sync.Mutex
	tr      transport.Interface
	closed  bool      // close ran: no new connection (the gateway stops, or the server's settings changed)
	started time.Time // the last stdio process start
	crashes int       // stdio restarts in a row, each within a minute of the last start
	stop    context.CancelFunc

	ids    atomic.Int64
	logsOn atomic.Bool  // the upstream session sends every log level
	era    atomic.Int32 // eraUnknown, eraSession or eraStateless: what server/discover said
	// sessionless: the tool server refused a session and speaks the
	// stateless era; the gateway speaks that era to it.
	sessionless atomic.Bool
	lmu         sync.Mutex
	lstop       context.CancelFunc     // ends the stateless listen stream
	lclosed     bool                   // close ran: no new listen stream
	version     atomic.Pointer[string] // negotiated protocol version
	progress    sync.Map               // upstream progress token → func(json.RawMessage)

	bmu      sync.Mutex
	failures int
	openTill time.Time

	tmu      sync.Mutex
	oauthTok string
	oauthExp time.Time
}

// resync syncs the catalog again in the background, once at a time.
// errUpstreamTimeout is the cause of a call the tool server did not answer
// in time (errors.Is tells a timeout from other failures).
var errUpstreamTimeout = errors.New("the tool server's timeout passed")

func (u *upstream) resync() {
	if u.onList == nil || !u.syncing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer u.syncing.Store(false)
		u.onList()
	}()
}

func newUpstream(cfg *upstreamConfig, client *http.Client, log *slog.Logger, onList func()) *upstream {
	u := &upstream{cfg: cfg, raw: client, log: log.With("tool_server", cfg.slug), onList: onList}
	// Every request to the upstream carries its credential: the SDK
	// transport's own requests (the GET stream, the DELETE that ends the
	// session) as much as the gateway's.
	c := *client
	c.Transport = &credentials{base: client.Transport, u: u}
	u.client = &c
	return u
}

// credentials adds the tool server's credential to each request.
type credentials struct {
	base http.RoundTripper
	u    *upstream
}

func (c *credentials) RoundTrip(r *http.Request) (*http.Response, error) {
	h := c.u.headers(r.Context())
	if len(h) == 0 {
		return c.base.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	for k, v := range h {
		r.Header.Set(k, v)
	}
	return c.base.RoundTrip(r)
}

// allow reports whether the circuit lets a call through.
func (u *upstream) allow(now time.Time) bool {
	u.bmu.Lock()
	defer u.bmu.Unlock()
	if u.failures < breakerThreshold {
		return true
	}
	if now.Before(u.openTill) {
		return false
	}
	// Half-open: let this call probe; others wait for its outcome.
	u.openTill = now.Add(breakerCooldown)
	return true
}

func (u *upstream) record(err error) {
	u.bmu.Lock()
	defer u.bmu.Unlock()
	if err == nil {
		u.failures = 0
		return
	}
	u.failures++
	if u.failures >= breakerThreshold {
		u.openTill = time.Now().Add(breakerCooldown)
	}
}

// state describes the circuit for health reports.
func (u *upstream) state() string {
	u.bmu.Lock()
	defer u.bmu.Unlock()
	switch {
	case u.failures < breakerThreshold:
		return "closed"
	case time.Now().Before(u.openTill):
		return "open"
	default:
		return "half_open"
	}
}

// headers returns the upstream credential's headers.
func (u *upstream) headers(ctx context.Context) map[string]string {
	switch u.cfg.credType {
	case CredBearer:
		return map[string]string{"Authorization": "Bearer " + u.cfg.token}
	case CredOAuth:
		tok, err := u.oauthToken(ctx)
		if err != nil {
			return nil
		}
		return map[string]string{"Authorization": "Bearer " + tok}
	}
	return nil
}

// oauthToken returns a client-credentials token from the upstream's
// authorization server, cached until shortly before it expires.
func (u *upstream) oauthToken(ctx context.Context) (string, error) {
	u.tmu.Lock()
	defer u.tmu.Unlock()
	if u.oauthTok != "" && time.Now().Before(u.oauthExp) {
		return u.oauthTok, nil
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if u.cfg.scope != "" {
		form.Set("scope", u.cfg.scope)
	}
	form.Set("resource", u.cfg.url)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.cfg.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(u.cfg.clientID), url.QueryEscape(u.cfg.secret))
	resp, err := u.raw.Do(req)
	if err != nil {
		return "", fmt.Errorf("upstream token endpoint: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("upstream token endpoint answered %d", resp.StatusCode)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		return "", errors.New("upstream token endpoint: no access_token")
	}
	life := time.Duration(tr.ExpiresIn) * time.Second
	if life <= 0 {
		life = 5 * time.Minute
	}
	u.oauthTok, u.oauthExp = tr.AccessToken, time.Now().Add(life*9/10)
	return u.oauthTok, nil
}

// conn returns the initialized transport, connecting first if needed:
// streamable HTTP, or a stdio process (restarted at most once a second).
func (u *upstream) conn(ctx context.Context) (transport.Interface, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.tr != nil {
		return u.tr, nil
	}
	if u.closed {
		return nil, errUpstreamClosed
	}
	var tr transport.Interface
	if u.cfg.command != "" {
		// A process that keeps exiting is restarted with a growing delay
		// (none the first time; 250 ms doubling to 30 s); one that ran a
		// minute starts the count again.
		if !u.started.IsZero() {
			if time.Since(u.started) > time.Minute {
				u.crashes = 0
			}
			if u.crashes > 0 {
				wait := min(30*time.Second, 250*time.Millisecond<<min(u.crashes-1, 7))
				if time.Since(u.started) < wait {
					return nil, fmt.Errorf("the tool server's process keeps exiting; next start in %s", (wait - time.Since(u.started)).Round(time.Millisecond))
				}
			}
			u.crashes++
		}
		u.started = time.Now()
		pctx, stop := context.WithCancel(context.Background())
		st := transport.NewStdioWithOptions(u.cfg.command, nil, u.cfg.args,
			transport.WithCommandFunc(stdioCommand),
			transport.WithCommandStderrWriter(&logWriter{log: u.log}),
			transport.WithCommandLogger(u.log))
		if err := st.Start(pctx); err != nil {
			stop()
			return nil, fmt.Errorf("start %s: %w", u.cfg.command, err)
		}
		u.log.Info("tool server process started", "command", u.cfg.command)
		tr, u.stop = st, stop
	} else if u.cfg.sse {
		// The HTTP+SSE transport of 2024-11-05: a GET stream that lives as
		// long as this connection, and POSTs to the endpoint it names.
		pctx, stop := context.WithCancel(context.Background())
		st, err := transport.NewSSE(u.cfg.url, transport.WithHTTPClient(u.client), transport.WithSSELogger(u.log))
		if err != nil {
			stop()
			return nil, err
		}
		// The stream lives on pctx; Start returns once it named the endpoint.
		started := make(chan error, 1)
		go func() { started <- st.Start(pctx) }()
		select {
		case err = <-started:
		case <-time.After(u.cfg.timeout):
			err = errors.New("no endpoint event in time")
		}
		if err != nil {
			stop()
			_ = st.Close()
			return nil, fmt.Errorf("open the SSE stream: %w", err)
		}
		tr, u.stop = st, stop
	} else {
		ht, err := transport.NewStreamableHTTP(u.cfg.url,
			transport.WithHTTPBasicClient(u.client),
			// The upstream is spoken to in the legacy era (this release), where
			// the standalone GET stream carries list_changed notifications.
			transport.WithContinuousListening(), //nolint:staticcheck // SA1019: legacy-era upstreams use the GET stream
			transport.WithHTTPLogger(u.log))
		if err != nil {
			return nil, err
		}
		if err := ht.Start(context.WithoutCancel(ctx)); err != nil {
			return nil, err
		}
		tr = ht
	}
	tr.SetNotificationHandler(u.notification)
	if bt, ok := tr.(transport.BidirectionalInterface); ok {
		// Requests not sent on a call's response stream (stdio, the GET
		// stream) belong to no call: no client can answer them.
		bt.SetRequestHandler(func(_ context.Context, req transport.JSONRPCRequest) (*transport.JSONRPCResponse, error) {
			return &transport.JSONRPCResponse{JSONRPC: "2.0", ID: req.ID, Error: &mcpgo.JSONRPCErrorDetails{Code: codeNoMethod,
				Message: "the gateway relays " + req.Method + " only within a call's response stream"}}, nil
		})
	}
	closeAll := func() {
		_ = tr.Close()
		if u.stop != nil {
			u.stop()
			u.stop = nil
		}
	}
	ictx, cancel := context.WithTimeout(ctx, u.cfg.timeout)
	defer cancel()
	params := map[string]any{
		"protocolVersion": upstreamVersion,
		// What the gateway relays to the client of a call, when that
		// client declared it too.
		"capabilities": map[string]any{"sampling": map[string]any{}, "elicitation": map[string]any{"form": map[string]any{}, "url": map[string]any{}}},
		"clientInfo":   map[string]any{"name": "xavyo-gateway", "version": "1"},
	}
	resp, err := tr.SendRequest(ictx, transport.JSONRPCRequest{JSONRPC: "2.0", ID: mcpgo.NewRequestId(u.ids.Add(1)), Method: "initialize", Params: params})
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("initialize: %w", err)
	}
	if resp.Error != nil {
		closeAll()
		return nil, fmt.Errorf("initialize: upstream error %d: %s", resp.Error.Code, resp.Error.Message)
	}
	var init struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	if err := json.Unmarshal(resp.Result, &init); err != nil || init.ProtocolVersion == "" {
		closeAll()
		return nil, errors.New("initialize: no protocol version in the upstream's answer")
	}
	if ht, ok := tr.(*transport.StreamableHTTP); ok {
		ht.SetProtocolVersion(init.ProtocolVersion)
	}
	u.version.Store(&init.ProtocolVersion)
	if err := tr.SendNotification(ictx, mcpgo.JSONRPCNotification{JSONRPC: "2.0",
		Notification: mcpgo.Notification{Method: "notifications/initialized"}}); err != nil {
		closeAll()
		return nil, fmt.Errorf("initialized: %w", err)
	}
	u.tr = tr
	u.logsOn.Store(false)
	return tr, nil
}

// wantLogs asks the tool server, once per upstream session, for log
// messages of every level: the gateway filters them per client session.
func (u *upstream) wantLogs(ctx context.Context) {
	if u.logsOn.Load() || u.sessionless.Load() {
		return
	}
	if _, err := u.call(ctx, "logging/setLevel", json.RawMessage(`{"level":"debug"}`), nil); err == nil {
		u.logsOn.Store(true)
	}
}

// reset drops the connection (the upstream ended its session, or its
// process exited).
func (u *upstream) reset(tr transport.Interface) {
	u.mu.Lock()
	var stop context.CancelFunc
	if u.tr == tr {
		u.tr, stop, u.stop = nil, u.stop, nil
	}
	u.mu.Unlock()
	go func() {
		_ = tr.Close()
		if stop != nil {
			stop()
		}
	}()
}

// close ends the upstream session (and its process), and the listen
// stream of a stateless one.
func (u *upstream) close() {
	u.lmu.Lock()
	if u.lstop != nil {
		u.lstop()
		u.lstop = nil
	}
	u.lclosed = true
	u.lmu.Unlock()
	u.mu.Lock()
	tr, stop := u.tr, u.stop
	u.tr, u.stop, u.closed = nil, nil, true
	u.mu.Unlock()
	if tr != nil {
		_ = tr.Close()
	}
	if stop != nil {
		stop()
	}
}

// stdioCommand builds a tool server's process with a minimal environment:
// xavyo's own (its key-encryption key among it) never reaches it.
func stdioCommand(ctx context.Context, command string, _ []string, args []string) (*exec.Cmd, error) {
	cmd := exec.CommandContext(ctx, command, args...) //nolint:gosec // G204: only commands on the operator's allowlist
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + os.TempDir()}
	cmd.Dir = os.TempDir()
	return cmd, nil
}

// logWriter logs a tool server process's stderr, a line per record.
type logWriter struct {
	log *slog.Logger
	mu  sync.Mutex
	buf []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.log.Info("tool server stderr", "line", string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 64<<10 {
		w.log.Info("tool server stderr", "line", string(w.buf))
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

// notification handles notifications the SDK transport received (the GET
// stream).
func (u *upstream) notification(n mcpgo.JSONRPCNotification) {
	raw, err := json.Marshal(n.Params)
	if err != nil {
		return
	}
	u.notify(n.Method, raw)
}

// notify handles an upstream notification: list changes resync the
// catalog; progress goes to the call that asked for it.
func (u *upstream) notify(method string, params json.RawMessage) {
	switch method {
	case "notifications/tools/list_changed":
		u.resync()
	case "notifications/resources/updated":
		if u.onUpdated != nil {
			u.onUpdated(params)
		}
	case "notifications/progress":
		var p struct {
			Token json.RawMessage `json:"progressToken"`
		}
		if json.Unmarshal(params, &p) != nil {
			return
		}
		if fn, ok := u.progress.Load(string(p.Token)); ok {
			fn.(func(json.RawMessage))(params)
		}
	}
}

// relay carries what a tool server sends on one call's response stream,
// besides the answer, back to the client that made the call.
type relay struct {
	// progress receives progress notifications (params, with the
	// upstream's token).
	progress func(params json.RawMessage)
	// message receives the other notifications related to the call (log
	// messages).
	message func(method string, params json.RawMessage)
	// request answers the tool server's requests to the client (sampling,
	// elicitation, roots): the result, or an error.
	request func(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, *rpcError)
	// caps are the client's capabilities, declared to a tool server of the
	// stateless era on the client's behalf.
	caps json.RawMessage
	// logs asks a tool server of the stateless era for log messages.
	logs bool
	// params are the Mcp-Param-* headers of a call to a tool server of the
	// stateless era (name → value, encoded).
	params map[string]string
}

// callResult is an upstream answer: a result or a JSON-RPC error, raw.
type callResult struct {
	Result json.RawMessage
	Error  *mcpgo.JSONRPCErrorDetails
}

// call sends one request upstream and waits for its answer within the
// tool server's timeout. rl, when set, carries the call's notifications
// and the tool server's requests back to the client. A session the
// upstream ended is re-established once.
func (u *upstream) call(ctx context.Context, method string, params json.RawMessage, rl *relay) (*callResult, error) {
	if !u.allow(time.Now()) {
		return nil, ErrUpstreamUnavailable
	}
	ctx, cancel := context.WithTimeout(ctx, u.cfg.timeout)
	defer cancel()
	res, err := u.send(ctx, method, params, rl)
	if errors.Is(err, transport.ErrSessionTerminated) {
		res, err = u.send(ctx, method, params, rl)
	}
	if !errors.Is(err, context.Canceled) {
		// A client that went away says nothing of the tool server's health.
		u.record(err)
	}
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return nil, apperr.Wrap(errUpstreamTimeout, apperr.KindUnavailable, "the tool server did not answer within %s", u.cfg.timeout)
		}
		if errors.Is(err, context.Canceled) {
			return nil, err
		}
		// The client hears the reason in words; the cause is for the log.
		u.log.Warn("tool server call failed", "method", method, "error", err)
		return nil, egress.Unreachable("the tool server", err)
	}
	return res, nil
}

func (u *upstream) send(ctx context.Context, method string, params json.RawMessage, rl *relay) (*callResult, error) {
	if u.sessionless.Load() {
		return u.sendStateless(ctx, method, params, rl)
	}
	tr, err := u.conn(ctx)
	if err != nil {
		// A tool server of the stateless era only has no session to open.
		if u.cfg.command == "" && !u.cfg.sse && ctx.Err() == nil && u.stateless(ctx) {
			if !u.sessionless.Swap(true) {
				u.log.Info("tool server speaks the stateless era only", "cause", err)
				u.listenStateless(nil)
			}
			return u.sendStateless(ctx, method, params, rl)
		}
		return nil, err
	}
	id := u.ids.Add(1)
	if rl != nil && rl.progress != nil {
		tok := "xv-" + strconv.FormatInt(id, 10)
		params = withProgressToken(params, tok)
		key := strconv.Quote(tok)
		u.progress.Store(key, rl.progress)
		defer u.progress.Delete(key)
	}
	var res *callResult
	if ht, ok := tr.(*transport.StreamableHTTP); ok {
		res, err = u.post(ctx, ht, id, method, params, rl)
	} else {
		var resp *transport.JSONRPCResponse
		resp, err = tr.SendRequest(ctx, transport.JSONRPCRequest{JSONRPC: "2.0", ID: mcpgo.NewRequestId(id), Method: method, Params: params})
		if err == nil {
			res = &callResult{Result: resp.Result, Error: resp.Error}
		} else if ctx.Err() == nil {
			// The process is gone or broken: the next call starts another.
			u.reset(tr)
		}
	}
	if err != nil && ctx.Err() != nil {
		// The agent cancelled, or the timeout struck: tell the upstream.
		nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = tr.SendNotification(nctx, mcpgo.JSONRPCNotification{JSONRPC: "2.0", Notification: mcpgo.Notification{
			Method: "notifications/cancelled",
			Params: mcpgo.NotificationParams{AdditionalFields: map[string]any{"requestId": id, "reason": "cancelled by the gateway"}}}})
	}
	if errors.Is(err, transport.ErrSessionTerminated) {
		u.reset(tr)
	}
	return res, err
}

// post sends one request on the upstream session and reads its answer,
// raw: a JSON body, or an event stream whose notifications are dispatched
// until the response arrives. (The session itself, the GET stream and
// notifications to the upstream go through the SDK transport; the hot
// path stays lean.)
func (u *upstream) post(ctx context.Context, tr *transport.StreamableHTTP, id int64, method string, params json.RawMessage, rl *relay) (*callResult, error) {
	var b bytes.Buffer
	b.Grow(len(params) + len(method) + 64)
	b.WriteString(`{"jsonrpc":"2.0","id":`)
	b.WriteString(strconv.FormatInt(id, 10))
	b.WriteString(`,"method":`)
	m, _ := json.Marshal(method)
	b.Write(m)
	if len(params) > 0 {
		b.WriteString(`,"params":`)
		b.Write(params)
	}
	b.WriteByte('}')
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.cfg.url, &b)
	if err != nil {
		return nil, err
	}
	u.sessionHeaders(req, tr)
	resp, err := u.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, transport.ErrSessionTerminated
	case resp.StatusCode != http.StatusOK:
		// A JSON-RPC error may come with a 4xx; anything else is a failure.
		var r rpcAnswer
		if json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&r) == nil && r.Error != nil {
			return &callResult{Error: r.Error}, nil
		}
		return nil, fmt.Errorf("upstream answered HTTP %d", resp.StatusCode)
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	want := strconv.FormatInt(id, 10)
	switch mt {
	case "application/json":
		var r rpcAnswer
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return nil, fmt.Errorf("upstream answer: %w", err)
		}
		if string(r.ID) != want {
			return nil, errors.New("upstream answered another request")
		}
		return &callResult{Result: r.Result, Error: r.Error}, nil
	case "text/event-stream":
		return u.readEvents(resp.Body, want, rl, func(r rpcAnswer) { go u.answerRequest(ctx, tr, r, rl) })
	default:
		return nil, fmt.Errorf("upstream answered with content type %q", mt)
	}
}

// sessionHeaders sets the headers of a POST on the upstream session.
func (u *upstream) sessionHeaders(req *http.Request, tr *transport.StreamableHTTP) {
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if sid := tr.GetSessionId(); sid != "" {
		req.Header.Set(hdrSession, sid)
	}
	if v := u.version.Load(); v != nil {
		req.Header.Set(hdrVersion, *v)
	}
}

// answerRequest answers a request the tool server sent on a call's
// response stream: through the call's client when it can, else with an
// error, so that the tool server never waits in vain.
func (u *upstream) answerRequest(ctx context.Context, tr *transport.StreamableHTTP, r rpcAnswer, rl *relay) {
	var result json.RawMessage
	rerr := &rpcError{Code: codeNoMethod, Message: "the client of this call cannot answer " + r.Method}
	if rl != nil && rl.request != nil {
		result, rerr = rl.request(ctx, r.Method, r.Params)
	}
	body := errorBody(r.ID, rpcError{Code: codeInternal, Message: "no answer"})
	if rerr != nil {
		body = errorBody(r.ID, *rerr)
	} else if len(result) > 0 {
		body = resultBody(r.ID, result)
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), u.cfg.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(pctx, http.MethodPost, u.cfg.url, bytes.NewReader(body))
	if err != nil {
		return
	}
	u.sessionHeaders(req, tr)
	resp, err := u.client.Do(req)
	if err != nil {
		u.log.Warn("answer to the tool server not delivered", "method", r.Method, "error", err)
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}

// readAnswer reads the response to id from an HTTP answer: a JSON body,
// or an event stream (its notifications dropped).
func (u *upstream) readAnswer(resp *http.Response, id string) (*callResult, error) {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "text/event-stream" {
		return u.readEvents(resp.Body, id, nil, func(rpcAnswer) {})
	}
	var a rpcAnswer
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&a); err != nil {
		return nil, err
	}
	return &callResult{Result: a.Result, Error: a.Error}, nil
}

// rpcAnswer is a JSON-RPC message from the upstream: a response, or a
// notification (method set, no id).
type rpcAnswer struct {
	ID     json.RawMessage            `json:"id"`
	Method string                     `json:"method"`
	Params json.RawMessage            `json:"params"`
	Result json.RawMessage            `json:"result"`
	Error  *mcpgo.JSONRPCErrorDetails `json:"error"`
}

// readEvents reads an SSE stream until the response to id: progress and
// other notifications go to the call's relay, the tool server's requests
// to answer.
func (u *upstream) readEvents(body io.Reader, id string, rl *relay, answer func(rpcAnswer)) (*callResult, error) {
	var res *callResult
	err := scanEvents(body, func(_, data []byte) (bool, error) {
		var r rpcAnswer
		if len(data) == 0 || json.Unmarshal(data, &r) != nil {
			return false, nil
		}
		switch {
		case r.Method == "notifications/progress", r.Method == "notifications/tools/list_changed", r.Method == "notifications/resources/updated":
			u.notify(r.Method, r.Params)
		case r.Method != "" && len(r.ID) == 0:
			if rl != nil && rl.message != nil {
				rl.message(r.Method, r.Params)
			}
		case r.Method != "":
			if validID(r.ID) {
				answer(r)
			}
		case string(r.ID) == id:
			res = &callResult{Result: r.Result, Error: r.Error}
			return true, nil
		}
		return false, nil
	})
	switch {
	case res != nil:
		return res, nil
	case err != nil:
		return nil, err
	}
	return nil, errors.New("the upstream's event stream ended before the response")
}

// withProgressToken sets params._meta.progressToken, keeping the rest raw.
func withProgressToken(params json.RawMessage, tok string) json.RawMessage {
	var m map[string]json.RawMessage
	if len(params) == 0 || json.Unmarshal(params, &m) != nil || m == nil {
		m = map[string]json.RawMessage{}
	}
	var meta map[string]json.RawMessage
	if raw, ok := m["_meta"]; !ok || json.Unmarshal(raw, &meta) != nil || meta == nil {
		meta = map[string]json.RawMessage{}
	}
	meta["progressToken"], _ = json.Marshal(tok)
	m["_meta"], _ = json.Marshal(meta)
	out, _ := json.Marshal(m)
	return out
}

// pool holds the upstream connections of this replica.
type pool struct {
	mu  sync.Mutex
	ups map[uuid.UUID]*upstream
	// closed: the gateway stopped; a connection made after that is
	// closed at once, so that none outlives the gateway.
	closed bool
}

func (p *pool) get(id uuid.UUID) *upstream {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ups[id]
}

func (p *pool) put(id uuid.UUID, u *upstream) *upstream {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		u.close()
		return u
	}
	if p.ups == nil {
		p.ups = map[uuid.UUID]*upstream{}
	}
	if cur, ok := p.ups[id]; ok {
		return cur
	}
	p.ups[id] = u
	return u
}

// drop closes and forgets a server's connection (its settings changed).
func (p *pool) drop(id uuid.UUID) {
	p.mu.Lock()
	u := p.ups[id]
	delete(p.ups, id)
	p.mu.Unlock()
	if u != nil {
		go u.close()
	}
}

// closeAll closes every connection and waits.
func (p *pool) closeAll() {
	p.mu.Lock()
	ups := p.ups
	p.ups, p.closed = nil, true
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, u := range ups {
		wg.Go(u.close)
	}
	wg.Wait()
}

// dropAll closes every connection.
func (p *pool) dropAll() {
	p.mu.Lock()
	ups := p.ups
	p.ups = nil
	p.mu.Unlock()
	for _, u := range ups {
		go u.close()
	}
}
