package mail_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/xavyo/xavyo/internal/mail"
	"github.com/xavyo/xavyo/internal/mail/mailtest"
)

// TestSendThroughARealRelay: a message goes over STARTTLS to a real SMTP
// server with its Message-ID, an encoded subject and both bodies; header
// values with line breaks are refused and nothing is sent; a relay
// without STARTTLS is refused rather than spoken to in the clear; a relay
// that is down is an error naming it.
func TestSendThroughARealRelay(t *testing.T) {
	srv := mailtest.Start(t, true)
	s, err := mail.New(mail.Config{Host: srv.Host, Port: srv.Port, From: "Example <no-reply@example.test>", TLSConfig: srv.TLSConfig(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m := mail.Message{FromName: "Acme, Inc. (Ünïcode)", To: "ada@example.test", Subject: "Réinitialiser votre mot de passe",
		Text: "Bonjour Ada,\nhttps://id.example.test/reset?token=abc\n", HTML: "<p>Bonjour <b>Ada</b></p>", ID: "0190-test-1"}
	if err := s.Send(ctx, m); err != nil {
		t.Fatal(err)
	}
	got := srv.Wait(1, 10*time.Second)[0]
	if got.Subject != m.Subject || !strings.Contains(got.Header.Get("From"), "no-reply@example.test") || got.Header.Get("Message-Id") != "<0190-test-1@example.test>" ||
		!strings.Contains(got.Text, "https://id.example.test/reset?token=abc") || !strings.Contains(got.HTML, "<b>Ada</b>") || !strings.Contains(got.To, "ada@example.test") {
		t.Fatalf("received: subject %q from %q id %q to %q\ntext %q\nhtml %q", got.Subject, got.Header.Get("From"), got.Header.Get("Message-Id"), got.To, got.Text, got.HTML)
	}

	for name, bad := range map[string]mail.Message{
		"a name with a header":    {FromName: "Acme\r\nBcc: victim@example.test", To: "ada@example.test", Subject: "x", Text: "x"},
		"a subject with a header": {To: "ada@example.test", Subject: "Hi\nBcc: victim@example.test", Text: "x"},
		"a recipient list":        {To: "ada@example.test, victim@example.test", Subject: "x", Text: "x"},
		"no recipient":            {To: "nobody", Subject: "x", Text: "x"},
	} {
		if err := s.Send(ctx, bad); !errors.Is(err, mail.ErrBadMessage) {
			t.Errorf("%s: %v", name, err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(srv.Messages()); n != 1 {
		t.Fatalf("%d messages after the refused ones, want 1", n)
	}

	plain := mailtest.Start(t, false)
	s2, _ := mail.New(mail.Config{Host: plain.Host, Port: plain.Port, From: "no-reply@example.test", Timeout: 5 * time.Second})
	if err := s2.Send(ctx, mail.Message{To: "ada@example.test", Subject: "x", Text: "x"}); err == nil {
		t.Fatal("a relay without STARTTLS was spoken to in the clear")
	}
	s3, _ := mail.New(mail.Config{Host: plain.Host, Port: plain.Port, From: "no-reply@example.test", TLS: mail.TLSNone, Timeout: 5 * time.Second})
	if err := s3.Send(ctx, mail.Message{To: "ada@example.test", Subject: "plain", Text: "x"}); err != nil {
		t.Fatalf("tls none to a plain relay: %v", err)
	}
	plain.Stop()
	if err := s3.Send(ctx, mail.Message{To: "ada@example.test", Subject: "x", Text: "x"}); err == nil || !strings.Contains(err.Error(), "cannot be reached") {
		t.Fatalf("a relay that is down: %v", err)
	}
	if _, err := mail.New(mail.Config{Host: "h", From: "not an address"}); err == nil {
		t.Fatal("a bad from address was accepted")
	}
}
