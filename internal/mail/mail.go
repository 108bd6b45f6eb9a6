// Package mail sends email over SMTP (DESIGN §12: smtp.{host, port,
// username, password, from, tls}). It is plumbing: what to send, and when,
// belongs to the domains, which queue messages through the outbox so that
// nothing is sent from inside a request's transaction.
package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// TLS modes of the SMTP connection.
const (
	TLSStartTLS = "starttls" // STARTTLS required (the default)
	TLSImplicit = "implicit" // TLS from the first byte (SMTPS, port 465)
	TLSNone     = "none"     // plain SMTP: loopback relays and tests only
)

// Config is the deployment's SMTP relay.
type Config struct {
	Host     string
	Port     int
	Username string
	// Password is the resolved secret (never a reference here).
	Password string
	// From is the envelope and default header sender, e.g.
	// "xavyo <no-reply@example.com>".
	From string
	TLS  string
	// RootCAs verifies the relay's certificate (nil: the system's).
	TLSConfig *tls.Config
	// Timeout bounds one delivery (default 10 s: well within the outbox
	// lease, so a slow relay never gets one message sent twice).
	Timeout time.Duration
}

// Message is one email.
type Message struct {
	// FromName is shown as the sender's name.
	FromName string
	// FromAddress, when set, replaces the deployment's address in the
	// From header (a tenant's own, whose domain must let the relay send
	// for it); the envelope sender, where bounces go, stays the
	// deployment's.
	FromAddress string
	To          string
	Subject     string
	Text        string
	HTML        string
	// ID is the Message-ID's local part: the same for every attempt to
	// send one message, so a receiver can drop duplicates.
	ID string
}

// Sender sends messages through the relay.
type Sender struct {
	cfg  Config
	from *mail.Address
}

// New checks a configuration and returns its sender.
func New(cfg Config) (*Sender, error) {
	if cfg.Host == "" {
		return nil, errors.New("mail: smtp.host is required")
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("mail: smtp.from %q is not an address: %w", cfg.From, err)
	}
	switch cfg.TLS {
	case "":
		cfg.TLS = TLSStartTLS
	case TLSStartTLS, TLSImplicit, TLSNone:
	default:
		return nil, fmt.Errorf("mail: smtp.tls must be %s, %s or %s", TLSStartTLS, TLSImplicit, TLSNone)
	}
	if cfg.TLS == TLSNone && cfg.Host != "localhost" && !net.ParseIP(cfg.Host).IsLoopback() {
		return nil, errors.New("mail: smtp.tls none is for a relay on loopback only")
	}
	if cfg.Port == 0 {
		cfg.Port = map[string]int{TLSStartTLS: 587, TLSImplicit: 465, TLSNone: 25}[cfg.TLS]
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	return &Sender{cfg: cfg, from: from}, nil
}

// ErrBadMessage is a message that can never be sent (a bad address or
// header): retrying it is pointless.
var ErrBadMessage = errors.New("mail: the message is malformed")

// Send delivers m. Header values go through the library's encoding: a
// name or subject cannot add headers (CR and LF are refused).
func (s *Sender) Send(ctx context.Context, m Message) error {
	for _, v := range []string{m.FromName, m.FromAddress, m.To, m.Subject, m.ID} {
		if strings.ContainsAny(v, "\r\n") {
			return fmt.Errorf("%w: a header value carries a line break", ErrBadMessage)
		}
	}
	to, err := mail.ParseAddress(m.To)
	if err != nil {
		return fmt.Errorf("%w: recipient: %w", ErrBadMessage, err)
	}
	msg := gomail.NewMsg()
	from := s.from.Address
	if m.FromAddress != "" {
		a, err := mail.ParseAddress(m.FromAddress)
		if err != nil || a.Name != "" {
			return fmt.Errorf("%w: sender address %q", ErrBadMessage, m.FromAddress)
		}
		from = a.Address
	}
	if err := msg.FromFormat(m.FromName, from); err != nil {
		return fmt.Errorf("%w: sender: %w", ErrBadMessage, err)
	}
	if err := msg.EnvelopeFrom(s.from.Address); err != nil {
		return fmt.Errorf("%w: envelope sender: %w", ErrBadMessage, err)
	}
	if err := msg.To(to.Address); err != nil {
		return fmt.Errorf("%w: recipient: %w", ErrBadMessage, err)
	}
	msg.Subject(m.Subject)
	msg.SetDate()
	if m.ID != "" {
		domain := s.from.Address[strings.LastIndexByte(s.from.Address, '@')+1:]
		msg.SetMessageIDWithValue(m.ID + "@" + domain)
	} else {
		msg.SetMessageID()
	}
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	opts := []gomail.Option{gomail.WithPort(s.cfg.Port), gomail.WithTimeout(s.cfg.Timeout)}
	if s.cfg.TLSConfig != nil {
		opts = append(opts, gomail.WithTLSConfig(s.cfg.TLSConfig))
	}
	switch s.cfg.TLS {
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL())
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if s.cfg.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover), gomail.WithUsername(s.cfg.Username), gomail.WithPassword(s.cfg.Password))
	}
	c, err := gomail.NewClient(s.cfg.Host, opts...)
	if err != nil {
		return fmt.Errorf("mail: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		var ne net.Error
		if errors.As(err, &ne) {
			return fmt.Errorf("mail: the relay %s:%d cannot be reached: %w", s.cfg.Host, s.cfg.Port, err)
		}
		return fmt.Errorf("mail: sending to the relay: %w", err)
	}
	return nil
}
