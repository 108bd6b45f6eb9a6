package egress_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/egress"
)

// TestUnreachableSaysWhy: each way an outbound call fails is told apart —
// the egress policy (PermissionDenied), a refused connection, a name that
// does not resolve, an untrusted certificate — and no address is named.
func TestUnreachableSaysWhy(t *testing.T) {
	get := func(cfg egress.Config, url string) error {
		c, err := egress.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer tlsSrv.Close()
	cases := []struct {
		name string
		err  error
		kind apperr.Kind
		want string
	}{
		{"policy", get(egress.Config{}, "http://"+closed+"/"), apperr.KindPermissionDenied, "egress policy"},
		{"refused", get(egress.Config{AllowPrivate: true}, "http://"+closed+"/"), apperr.KindUnavailable, "refused the connection"},
		{"no such name", get(egress.Config{AllowPrivate: true}, "http://no-such-host.invalid/"), apperr.KindUnavailable, "does not resolve"},
		{"untrusted certificate", get(egress.Config{AllowPrivate: true}, tlsSrv.URL), apperr.KindUnavailable, "not signed by a trusted authority"},
		{"deadline", context.DeadlineExceeded, apperr.KindUnavailable, "in time"},
		{"not TLS", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, apperr.KindUnavailable, "does not speak TLS"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil {
				t.Fatal("the call did not fail")
			}
			err := egress.Unreachable("the tool server", tc.err)
			msg := apperr.PublicMessage(err)
			if apperr.KindOf(err) != tc.kind || !strings.Contains(msg, tc.want) || !strings.HasPrefix(msg, "the tool server") {
				t.Fatalf("%v → %s %q", tc.err, apperr.KindOf(err), msg)
			}
			if strings.Contains(msg, "127.0.0.1") || strings.Contains(msg, closed) {
				t.Fatalf("the message names an address: %q", msg)
			}
		})
	}
}
