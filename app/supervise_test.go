package app

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func quickSupervisor() *supervisor {
	s := newSupervisor(slog.New(slog.DiscardHandler))
	s.minBackoff, s.maxBackoff = time.Millisecond, 2*time.Millisecond
	return s
}

// TestSupervisorRestartsAFailedWorker: a worker that returns an error or
// panics while the process runs is started again; once the process ends
// the worker is not restarted and nothing fails.
func TestSupervisorRestartsAFailedWorker(t *testing.T) {
	s := quickSupervisor()
	var runs atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	s.start(ctx, worker{"flaky", func(ctx context.Context) error {
		switch runs.Add(1) {
		case 1:
			return errors.New("lost the connection")
		case 2:
			panic("a bug")
		}
		<-ctx.Done()
		return nil
	}})
	for deadline := time.Now().Add(5 * time.Second); runs.Load() < 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the worker ran %d times", runs.Load())
		}
	}
	cancel()
	s.wait()
	select {
	case err := <-s.failed():
		t.Fatalf("a recovered worker failed the process: %v", err)
	default:
	}
	if n := runs.Load(); n != 3 {
		t.Fatalf("the worker ran %d times after the process ended", n)
	}
}

// TestSupervisorFailsLoudly: a worker that keeps failing fails the
// process with its name and error, and is not started again.
func TestSupervisorFailsLoudly(t *testing.T) {
	s := quickSupervisor()
	var runs atomic.Int32
	s.start(t.Context(), worker{"doomed", func(context.Context) error {
		runs.Add(1)
		return errors.New("the disk is gone")
	}})
	select {
	case err := <-s.failed():
		if !strings.Contains(err.Error(), "doomed") || !strings.Contains(err.Error(), "the disk is gone") {
			t.Fatalf("the failure does not say which worker and why: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a worker failing every time did not fail the process")
	}
	s.wait()
	if n := runs.Load(); n != int32(s.maxFailures) {
		t.Fatalf("the worker ran %d times, want %d", n, s.maxFailures)
	}
}
