package egress

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"syscall"

	"github.com/xavyo/xavyo/internal/apperr"
)

// Reason says, in words fit for the tenant that configured the
// destination, why an outbound connection failed: refused by the egress
// policy, refused by the destination, timed out, a name that does not
// resolve, an untrusted certificate. It never names addresses (the
// platform's own or other tenants'); the full cause is for the log.
func Reason(err error) string {
	var (
		dnsErr   *net.DNSError
		ne       net.Error
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		header   tls.RecordHeaderError
	)
	switch {
	case errors.Is(err, ErrBlocked):
		return "the egress policy refuses the destination's address (private, loopback and link-local addresses need egress.allow_private; metadata addresses are always refused)"
	case errors.Is(err, ErrTooLarge):
		return "the answer was larger than allowed"
	case errors.As(err, &dnsErr):
		return "the host name does not resolve"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "the destination refused the connection"
	case errors.Is(err, syscall.ECONNRESET):
		return "the destination reset the connection"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "the destination did not answer in time"
	case errors.As(err, &unknown):
		return "the destination's certificate is not signed by a trusted authority"
	case errors.As(err, &hostname):
		return "the destination's certificate is for another name"
	case errors.As(err, &invalid):
		return "the destination's certificate is not valid (expired or not for this use)"
	case errors.As(err, &header):
		return "the destination does not speak TLS"
	}
	return "the connection failed"
}

// Unreachable is the error of a call to a tenant-configured destination
// (what names it: "the tool server") that failed: the egress policy's
// refusal is said as such (PermissionDenied: trying again will not
// help), anything else is Unavailable with its reason. The cause stays
// wrapped for the log.
func Unreachable(what string, err error) error {
	if errors.Is(err, ErrBlocked) {
		return apperr.Wrap(err, apperr.KindPermissionDenied, "%s cannot be called: %s", what, Reason(err))
	}
	return apperr.Wrap(err, apperr.KindUnavailable, "%s could not be reached: %s", what, Reason(err))
}
