package egress_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/xavyo/xavyo/internal/egress"
)

func TestCheck(t *testing.T) {
	cases := []struct {
		addr         string
		denied       bool // with AllowPrivate false
		deniedAlways bool // even with AllowPrivate
	}{
		{"8.8.8.8", false, false},
		{"2606:4700::1111", false, false},
		{"127.0.0.1", true, false},
		{"127.8.9.10", true, false},
		{"::1", true, false},
		{"10.1.2.3", true, false},
		{"172.16.0.1", true, false},
		{"172.31.255.255", true, false},
		{"172.32.0.1", false, false},
		{"192.168.1.1", true, false},
		{"100.64.0.1", true, false},
		{"169.254.1.1", true, false},
		{"fe80::1", true, false},
		{"fd12:3456::1", true, false},
		{"::ffff:127.0.0.1", true, false},
		{"::ffff:10.0.0.1", true, false},
		{"64:ff9b::7f00:1", true, false},
		{"2002:7f00:1::", true, false},
		{"169.254.169.254", true, true},
		{"::ffff:169.254.169.254", true, true},
		{"fd00:ec2::254", true, true},
		{"0.0.0.0", true, true},
		{"::", true, true},
		{"224.0.0.1", true, true},
		{"255.255.255.255", true, true},
	}
	for _, tc := range cases {
		t.Run(tc.addr, func(t *testing.T) {
			a := netip.MustParseAddr(tc.addr)
			if err := egress.Check(a, false); (err != nil) != tc.denied {
				t.Errorf("strict: err=%v, want denied=%v", err, tc.denied)
			} else if err != nil && !errors.Is(err, egress.ErrBlocked) {
				t.Errorf("error %v is not ErrBlocked", err)
			}
			if err := egress.Check(a, true); (err != nil) != tc.deniedAlways {
				t.Errorf("allow_private: err=%v, want denied=%v", err, tc.deniedAlways)
			}
		})
	}
}

func TestClientRefusesLoopbackUnlessAllowed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hello") }))
	defer srv.Close()
	for _, host := range []string{srv.URL, strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)} {
		strict, _ := egress.New(egress.Config{})
		_, err := strict.Get(host)
		if err == nil || !errors.Is(err, egress.ErrBlocked) {
			t.Fatalf("%s: strict client got err=%v", host, err)
		}
		dev, _ := egress.New(egress.Config{AllowPrivate: true})
		resp, err := dev.Get(host)
		if err != nil {
			t.Fatalf("%s: dev client: %v", host, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "hello" {
			t.Fatalf("body %q", b)
		}
	}
}

func TestMappedLoopbackIsRefused(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer target.Close()
	_, port, _ := net.SplitHostPort(target.Listener.Addr().String())
	c, _ := egress.New(egress.Config{})
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://[::ffff:127.0.0.1]:"+port+"/", nil)
	if _, err := c.Do(req); !errors.Is(err, egress.ErrBlocked) {
		t.Fatalf("mapped loopback: err=%v", err)
	}
}

func TestRedirectToMetadataIsRefused(t *testing.T) {
	// Each redirect hop is checked at dial time like the first.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
	}))
	defer srv.Close()
	c, _ := egress.New(egress.Config{AllowPrivate: true})
	if _, err := c.Get(srv.URL); !errors.Is(err, egress.ErrBlocked) {
		t.Fatalf("redirect to metadata: err=%v", err)
	}
}

func TestResponseSizeLimit(t *testing.T) {
	big := strings.Repeat("x", 2048)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			w.(http.Flusher).Flush() // no Content-Length
		}
		_, _ = io.WriteString(w, big)
	}))
	defer srv.Close()
	c, _ := egress.New(egress.Config{AllowPrivate: true, MaxResponseBytes: 1024})
	if _, err := c.Get(srv.URL + "/sized"); !errors.Is(err, egress.ErrTooLarge) {
		t.Fatalf("announced size: err=%v", err)
	}
	resp, err := c.Get(srv.URL + "/chunked")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if !errors.Is(err, egress.ErrTooLarge) || len(b) != 1024 {
		t.Fatalf("streamed: read %d bytes, err=%v", len(b), err)
	}
	exact, _ := egress.New(egress.Config{AllowPrivate: true, MaxResponseBytes: 2048})
	resp, err = exact.Get(srv.URL + "/chunked")
	if err != nil {
		t.Fatal(err)
	}
	b, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || len(b) != 2048 {
		t.Fatalf("exactly at the limit: %d %v", len(b), err)
	}
}
