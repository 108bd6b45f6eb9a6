// Package gateway is the agent plane: a net/http server over TLS (client
// certificates requested and verified when given) that authenticates
// agents, checks browser origins, and hosts the MCP and A2A endpoints.
// Streaming never goes through a buffering adaptor here.
package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/clientcert"
	"github.com/xavyo/xavyo/internal/health"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/reqid"
	"github.com/xavyo/xavyo/internal/textguard"
)

// Config configures the agent plane.
type Config struct {
	// TLS is the server's TLS configuration; ClientAuth is forced to
	// VerifyClientCertIfGiven.
	TLS *tls.Config
	// TrustDomain is the SPIFFE trust domain of client certificates.
	TrustDomain string
	// AllowedOrigins are the browser origins allowed to call; requests
	// with any other Origin header get 403.
	AllowedOrigins []string
	// Ready reports readiness for /readyz.
	Ready  func(context.Context) error
	Logger *slog.Logger
	// Certs maps verified client certificates to principals on every
	// request (resumed TLS sessions included), refusing revoked ones.
	Certs CertAuthenticator
	// ClientCAs, when set, supplies the client-certificate roots at each
	// handshake, so CA rotations apply without a restart.
	ClientCAs func() *x509.CertPool
	// Plaintext serves HTTP without TLS (behind a TLS-terminating proxy);
	// no client certificates are seen then.
	Plaintext bool
	// BodyTimeout bounds how long a request body may take to arrive
	// (default 10s); once it has, the connection's read deadline is
	// lifted again, so streams that follow are not cut.
	BodyTimeout time.Duration
}

// CertAuthenticator maps a verified client certificate to a principal:
// (nil, nil) for certificates it does not know, an error for ones it
// refuses.
type CertAuthenticator interface {
	Authenticate(ctx context.Context, leaf *x509.Certificate) (*principal.Principal, error)
}

// CheckAndSetDefaults validates and fills defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.TLS == nil {
		return errors.New("gateway: TLS configuration is required")
	}
	if c.TrustDomain == "" {
		return errors.New("gateway: trust domain is required")
	}
	if c.Ready == nil {
		return errors.New("gateway: readiness check is required")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.BodyTimeout <= 0 {
		c.BodyTimeout = 10 * time.Second
	}
	return nil
}

// Server is the agent plane.
type Server struct {
	cfg  Config
	mux  *http.ServeMux
	http *http.Server
	// patterns are the registered routes, in order (Patterns).
	pmu      sync.Mutex
	patterns []string

	kmu   sync.Mutex
	kinds map[string]kindEntry
}

// New returns the agent plane server.
func New(cfg Config) (*Server, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	tc := cfg.TLS.Clone()
	if tc.MinVersion < tls.VersionTLS12 {
		tc.MinVersion = tls.VersionTLS12
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	if cfg.ClientCAs == nil {
		pool := tc.ClientCAs
		cfg.ClientCAs = func() *x509.CertPool { return pool }
		s.cfg.ClientCAs = cfg.ClientCAs
	}
	// Client certificates are requested, and verified by us: chained to a
	// trusted CA, or self-signed (RFC 8705 self_signed_tls_client_auth,
	// usable only where a client registered that very certificate). Any
	// other certificate fails the handshake (resumed ones too); each request
	// classifies its certificate again, as the CA pool may have rotated.
	tc.ClientAuth = tls.RequestClientCert
	tc.VerifyConnection = func(cs tls.ConnectionState) error {
		raw := make([][]byte, len(cs.PeerCertificates))
		for i, c := range cs.PeerCertificates {
			raw[i] = c.Raw
		}
		_, err := classify(raw, cfg.ClientCAs())
		return err
	}
	// No CA names are advertised (an empty certificate_authorities list):
	// clients then send the certificate they hold, self-signed or not,
	// rather than withholding one that matches no advertised name.
	tc.ClientCAs = nil
	health.Mount(s.mux, cfg.Ready)
	s.http = &http.Server{
		Handler:           s.middleware(s.mux),
		TLSConfig:         tc,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Handle registers a handler on the agent plane's mux (Go 1.22 patterns).
func (s *Server) Handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, h)
	s.pmu.Lock()
	s.patterns = append(s.patterns, pattern)
	s.pmu.Unlock()
}

// Patterns lists the registered patterns, in the order they were added.
func (s *Server) Patterns() []string {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	return slices.Clone(s.patterns)
}

// Serve serves TLS on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	var err error
	if s.cfg.Plaintext {
		err = s.http.Serve(ln)
	} else {
		err = s.http.ServeTLS(ln, "", "")
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting and waits for in-flight requests until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.http.Shutdown(ctx) }

// Handler returns the server's root handler (for tests).
func (s *Server) Handler() http.Handler { return s.http.Handler }

func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := reqid.OrNew(r.Header.Get("X-Request-ID"))
		w.Header().Set("X-Request-ID", id)
		ctx := reqid.With(r.Context(), id)
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if p := recover(); p != nil {
				if err, ok := p.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(p)
				}
				s.cfg.Logger.Error("panic serving agent request", "panic", p, "request_id", id, "stack", string(debug.Stack()))
				if !sw.wrote {
					http.Error(sw, `{"error":"internal error"}`, http.StatusInternalServerError)
				}
			}
			attrs := []slog.Attr{slog.String("request_id", id), slog.String("method", r.Method), slog.String("path", r.URL.Path),
				slog.Int("status", sw.status), slog.Duration("duration", time.Since(start))}
			if p := principal.From(ctx); p != nil {
				attrs = append(attrs, slog.String("tenant_id", p.TenantID.String()), slog.String("agent_id", p.SubjectID))
			}
			s.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "agent request", attrs...)
		}()
		if o := r.Header.Get("Origin"); o != "" && !slices.Contains(s.cfg.AllowedOrigins, o) {
			sw.Header().Set("Content-Type", "application/json")
			sw.WriteHeader(http.StatusForbidden)
			_, _ = sw.Write([]byte(`{"error":"origin not allowed"}`))
			return
		}
		// Text no store can keep is refused before anyone reads it.
		if err := checkURLText(r); err != nil {
			sw.Header().Set("Content-Type", "application/json")
			sw.WriteHeader(http.StatusBadRequest)
			msg, _ := json.Marshal(map[string]string{"error": "invalid_request", "error_description": apperr.PublicMessage(err)})
			_, _ = sw.Write(msg)
			return
		}
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && r.URL.Path != "/healthz" && r.URL.Path != "/readyz" {
			kind, err := s.certKind(r.TLS.PeerCertificates)
			if err != nil {
				sw.Header().Set("Content-Type", "application/json")
				sw.WriteHeader(http.StatusUnauthorized)
				_, _ = sw.Write([]byte(`{"error":"invalid_client_certificate","error_description":"client certificate not trusted"}`))
				return
			}
			ctx = context.WithValue(ctx, certKindKey{}, kind)
			if kind.selfSigned {
				ctx = clientcert.WithSelfSigned(ctx, kind.thumbprint)
			}
			if kind.trusted {
				ctx = clientcert.WithVerified(ctx, clientcert.Verified{Leaf: r.TLS.PeerCertificates[0], Thumbprint: kind.thumbprint})
			}
		}
		if kind, _ := ctx.Value(certKindKey{}).(certKind); kind.trusted && s.cfg.Certs != nil {
			p, err := s.cfg.Certs.Authenticate(ctx, r.TLS.PeerCertificates[0])
			if err != nil {
				sw.Header().Set("Content-Type", "application/json")
				sw.WriteHeader(http.StatusUnauthorized)
				msg, _ := json.Marshal(map[string]string{"error": "invalid_client_certificate", "error_description": apperr.PublicMessage(err)})
				_, _ = sw.Write(msg)
				return
			}
			if p != nil {
				ctx = principal.With(ctx, p)
			}
		}
		if r.Body != nil && r.Body != http.NoBody {
			// A body that trickles in (a byte every few seconds) does not
			// hold the connection: it must arrive within BodyTimeout.
			rc := http.NewResponseController(w)
			if rc.SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout)) == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, lift: func() { _ = rc.SetReadDeadline(time.Time{}) }}
			}
		}
		next.ServeHTTP(sw, r.WithContext(ctx))
	})
}

// deadlineBody lifts the connection's read deadline once the body has
// been read to its end (or failed), so what follows — a long answer
// stream — is bound by nothing but the client.
type deadlineBody struct {
	io.ReadCloser
	once sync.Once
	lift func()
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.once.Do(b.lift)
	}
	return n, err
}

// checkURLText refuses a path or query with NUL characters or invalid
// UTF-8.
func checkURLText(r *http.Request) error {
	if err := textguard.Check("path", r.URL.Path); err != nil {
		return err
	}
	if r.URL.RawQuery == "" {
		return nil
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return apperr.Invalid("query", "malformed query")
	}
	return textguard.CheckValues(q)
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Flush lets streaming handlers flush through the wrapper.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack lets WebSocket upgrades take the connection over.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("gateway: the connection cannot be taken over")
	}
	w.status, w.wrote = http.StatusSwitchingProtocols, true
	return h.Hijack()
}

// Unwrap exposes the underlying writer to http.ResponseController.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// certKind classifies a client certificate.
type certKind struct {
	trusted    bool   // chains to a trusted CA
	selfSigned bool   // self-signed (RFC 8705 §2.2)
	thumbprint string // x5t#S256
}

type certKindKey struct{}

// classify verifies a presented chain: trusted (to pool, for client
// authentication), or a lone self-signed certificate; anything else is an
// error.
func classify(raw [][]byte, pool *x509.CertPool) (certKind, error) {
	if len(raw) == 0 {
		return certKind{}, nil
	}
	leaf, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return certKind{}, errors.New("gateway: malformed client certificate")
	}
	sum := sha256.Sum256(leaf.Raw)
	k := certKind{thumbprint: base64.RawURLEncoding.EncodeToString(sum[:])}
	inter := x509.NewCertPool()
	for _, r := range raw[1:] {
		if c, err := x509.ParseCertificate(r); err == nil {
			inter.AddCert(c)
		}
	}
	// A nil pool would mean the system roots: with no CA, no chain is trusted.
	if pool != nil {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
			k.trusted = true
			return k, nil
		}
	}
	now := time.Now()
	if len(raw) == 1 && bytes.Equal(leaf.RawIssuer, leaf.RawSubject) && now.After(leaf.NotBefore) && now.Before(leaf.NotAfter) &&
		leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil {
		k.selfSigned = true
		return k, nil
	}
	return certKind{}, errors.New("gateway: client certificate not trusted")
}

// certKind classifies a request's certificate, caching by fingerprint and
// trust pool (a CA rotation changes the pool, so old verdicts lapse).
func (s *Server) certKind(chain []*x509.Certificate) (certKind, error) {
	pool := s.cfg.ClientCAs()
	sum := sha256.Sum256(chain[0].Raw)
	key := string(sum[:])
	s.kmu.Lock()
	if e, ok := s.kinds[key]; ok && e.pool == pool {
		s.kmu.Unlock()
		return e.kind, e.err
	}
	s.kmu.Unlock()
	raw := make([][]byte, len(chain))
	for i, c := range chain {
		raw[i] = c.Raw
	}
	k, err := classify(raw, pool)
	s.kmu.Lock()
	if s.kinds == nil || len(s.kinds) > 100_000 {
		s.kinds = map[string]kindEntry{}
	}
	s.kinds[key] = kindEntry{pool: pool, kind: k, err: err}
	s.kmu.Unlock()
	return k, err
}

type kindEntry struct {
	pool *x509.CertPool
	kind certKind
	err  error
}
