package gateway

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestRateLimitsCountTheLastMinute: at most limit calls in any minute; the
// count frees up as calls grow older than a minute; keys count apart.
func TestRateLimitsCountTheLastMinute(t *testing.T) {
	var r rateLimits
	k := rateKey{uuid.New(), uuid.New(), uuid.New()}
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 60 {
		if !r.allow(k, 60, t0.Add(time.Duration(i)*500*time.Millisecond)) {
			t.Fatalf("call %d refused", i+1)
		}
	}
	if r.allow(k, 60, t0.Add(30*time.Second)) {
		t.Fatal("the 61st call in a minute was admitted")
	}
	if !r.allow(rateKey{k.assignment, uuid.New(), k.ent}, 60, t0.Add(30*time.Second)) {
		t.Fatal("another subject shares the count")
	}
	// 61 s after the start the first two calls (second 0) have left.
	at := t0.Add(61 * time.Second)
	got := []bool{r.allow(k, 60, at), r.allow(k, 60, at), r.allow(k, 60, at)}
	if !got[0] || !got[1] || got[2] {
		t.Fatalf("61 s on: %v, want two admitted then a refusal", got)
	}
	r.sweep(t0.Add(5 * time.Minute))
	n := 0
	r.logs.Range(func(any, any) bool { n++; return true })
	if n != 0 {
		t.Fatalf("%d idle keys kept", n)
	}
}
