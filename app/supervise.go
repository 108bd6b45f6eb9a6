package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// A worker is one background loop of the process: it runs until its
// context ends.
type worker struct {
	name string
	run  func(context.Context) error
}

// supervisor owns the process's background loops. A loop that returns or
// panics while the process is running is logged and restarted after a
// growing pause; one that fails MaxFailures times within Window fails the
// process (Wait returns its error), loudly, rather than leaving it running
// without the work it does.
type supervisor struct {
	log         *slog.Logger
	maxFailures int
	window      time.Duration
	minBackoff  time.Duration
	maxBackoff  time.Duration

	wg   sync.WaitGroup
	once sync.Once
	fail chan error
}

func newSupervisor(log *slog.Logger) *supervisor {
	return &supervisor{log: log, maxFailures: 5, window: time.Minute, minBackoff: 100 * time.Millisecond,
		maxBackoff: 10 * time.Second, fail: make(chan error, 1)}
}

// start runs every worker until ctx ends.
func (s *supervisor) start(ctx context.Context, ws ...worker) {
	for _, w := range ws {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.keep(ctx, w)
		}()
	}
}

// failed delivers the error of the first worker that gave up.
func (s *supervisor) failed() <-chan error { return s.fail }

// wait returns once every worker has returned (after ctx ended).
func (s *supervisor) wait() { s.wg.Wait() }

func (s *supervisor) keep(ctx context.Context, w worker) {
	var failures []time.Time
	backoff := s.minBackoff
	for {
		err := s.runOnce(ctx, w)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("returned while the process runs")
		}
		now := time.Now()
		failures = append(failures, now)
		for len(failures) > 0 && now.Sub(failures[0]) > s.window {
			failures = failures[1:]
		}
		if len(failures) >= s.maxFailures {
			s.log.Error("background worker keeps failing; stopping the process", "worker", w.name, "failures", len(failures), "error", err)
			s.once.Do(func() { s.fail <- fmt.Errorf("background worker %s: %w", w.name, err) })
			return
		}
		s.log.Error("background worker failed; restarting it", "worker", w.name, "error", err, "restart_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, s.maxBackoff)
	}
}

// runOnce runs a worker once, turning a panic into an error.
func (s *supervisor) runOnce(ctx context.Context, w worker) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return w.run(ctx)
}
