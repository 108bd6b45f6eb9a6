// Package egress is the one guarded client for outbound HTTP calls to
// addresses a tenant configures (upstream MCP servers, A2A peers,
// webhooks, metadata documents). It checks every resolved address at dial
// time — after DNS, so rebinding cannot slip past — and bounds time and
// response size.
package egress

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"

	"github.com/xavyo/xavyo/internal/apperr"
)

// Config configures the client.
type Config struct {
	// AllowPrivate admits private, loopback, link-local and CGNAT
	// addresses (development and tests). Metadata endpoints and
	// unspecified or multicast addresses stay refused even then.
	AllowPrivate bool
	// Timeout bounds a whole request, body included (default 30s).
	// Streaming callers set 0 via StreamTimeout and use contexts instead.
	Timeout time.Duration
	// DialTimeout bounds connecting (default 5s).
	DialTimeout time.Duration
	// MaxResponseBytes bounds a response body (default 10 MiB).
	MaxResponseBytes int64
	// MaxRedirects bounds redirects followed (default 5; each target is
	// checked again at dial time).
	MaxRedirects int
	// RootCAs, when set, replaces the system roots (a private PKI).
	RootCAs *x509.CertPool
	// ClientCertificate, when set, answers TLS client-certificate requests
	// (mTLS toward upstreams that require it).
	ClientCertificate func(*tls.CertificateRequestInfo) (*tls.Certificate, error)
	// Streaming drops the whole-request timeout (responses that stream
	// for as long as the caller's context allows); Timeout then bounds
	// only the wait for response headers.
	Streaming bool
}

// CheckAndSetDefaults fills defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.Timeout < 0 || c.DialTimeout < 0 || c.MaxResponseBytes < 0 || c.MaxRedirects < 0 {
		return errors.New("egress: limits must not be negative")
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.MaxResponseBytes == 0 {
		c.MaxResponseBytes = 10 << 20
	}
	if c.MaxRedirects == 0 {
		c.MaxRedirects = 5
	}
	return nil
}

// ErrBlocked is returned (wrapped) when a destination address is refused.
var ErrBlocked = apperr.New(apperr.KindPermissionDenied, "destination address not allowed")

// ErrTooLarge is returned when a response body exceeds the limit.
var ErrTooLarge = apperr.New(apperr.KindTooLarge, "response body too large")

// always refused, whatever AllowPrivate says: cloud metadata services.
var metadata = []netip.Prefix{
	netip.MustParsePrefix("169.254.169.254/32"),
	netip.MustParsePrefix("169.254.170.2/32"), // ECS task metadata
	netip.MustParsePrefix("fd00:ec2::254/128"),
	netip.MustParsePrefix("100.100.100.200/32"), // Alibaba
}

// refused unless AllowPrivate.
var private = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"), // CGNAT
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("0.0.0.0/8"),
}

// Check reports whether addr may be dialed under allowPrivate.
func Check(addr netip.Addr, allowPrivate bool) error {
	addr = addr.Unmap()
	if !addr.IsValid() || addr.IsUnspecified() || addr.IsMulticast() ||
		addr.IsInterfaceLocalMulticast() || addr.IsLinkLocalMulticast() {
		return fmt.Errorf("%w: %s", ErrBlocked, addr)
	}
	if addr.Is4() && addr == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return fmt.Errorf("%w: %s", ErrBlocked, addr)
	}
	for _, p := range metadata {
		if p.Contains(addr) {
			return fmt.Errorf("%w: %s (metadata service)", ErrBlocked, addr)
		}
	}
	if allowPrivate {
		return nil
	}
	for _, p := range private {
		if p.Contains(addr) {
			return fmt.Errorf("%w: %s (private, loopback or link-local)", ErrBlocked, addr)
		}
	}
	// NAT64 and 6to4 embed IPv4 addresses; refuse them rather than decode.
	if addr.Is6() && (netip.MustParsePrefix("64:ff9b::/96").Contains(addr) || netip.MustParsePrefix("2002::/16").Contains(addr)) {
		return fmt.Errorf("%w: %s (IPv4-embedding prefix)", ErrBlocked, addr)
	}
	return nil
}

// Dialer returns a net.Dialer that refuses addresses Check refuses.
func Dialer(cfg Config) *net.Dialer {
	return &net.Dialer{
		Timeout:   cfg.DialTimeout,
		KeepAlive: 30 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: unparsable address %q", ErrBlocked, address)
			}
			return Check(ap.Addr(), cfg.AllowPrivate)
		},
	}
}

// Transport returns an http.Transport whose dials are checked. Proxies
// from the environment are ignored: they would hide the destination.
func Transport(cfg Config) *http.Transport {
	d := Dialer(cfg)
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		TLSClientConfig:       &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12, GetClientCertificate: cfg.ClientCertificate},
		ResponseHeaderTimeout: cfg.Timeout,
		ExpectContinueTimeout: time.Second,
	}
}

// New returns the guarded client: checked dials, bounded redirects, a
// whole-request timeout and size-limited response bodies.
func New(cfg Config) (*http.Client, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	timeout := cfg.Timeout
	if cfg.Streaming {
		timeout = 0
	}
	return &http.Client{
		Transport: &limitedTransport{base: Transport(cfg), max: cfg.MaxResponseBytes},
		Timeout:   timeout,
		CheckRedirect: func(_ *http.Request, via []*http.Request) error {
			if len(via) > cfg.MaxRedirects {
				return fmt.Errorf("egress: more than %d redirects", cfg.MaxRedirects)
			}
			return nil
		},
	}, nil
}

// limitedTransport bounds response bodies.
type limitedTransport struct {
	base http.RoundTripper
	max  int64
}

func (t *limitedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > t.max {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("%w: %d bytes announced", ErrTooLarge, resp.ContentLength)
	}
	resp.Body = &limitedBody{rc: resp.Body, left: t.max}
	return resp, nil
}

type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// Probe one byte: exactly max bytes is fine, more is not.
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, ErrTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// DialContext dials a TCP address with the same checks, for clients that
// are not HTTP (WebSocket upgrades use the Transport).
func DialContext(ctx context.Context, cfg Config, network, addr string) (net.Conn, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	return Dialer(cfg).DialContext(ctx, network, addr)
}
