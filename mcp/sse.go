package mcp

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"sync"
	"time"
)

// keepAliveEvery is how often idle event streams send a comment.
const keepAliveEvery = 25 * time.Second

// openEventStream answers with an event stream, its headers sent at once.
func openEventStream(w http.ResponseWriter) *http.ResponseController {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	return rc
}

// writeEvent writes one event of the given type and flushes it.
func writeEvent(w http.ResponseWriter, rc *http.ResponseController, event string, data []byte) error {
	b := make([]byte, 0, len(event)+len(data)+16)
	b = append(append(append(append(append(b, "event: "...), event...), "\ndata: "...), data...), "\n\n"...)
	if _, err := w.Write(b); err != nil {
		return err
	}
	return rc.Flush()
}

// writeKeepAlive writes a comment that keeps an idle stream open.
func writeKeepAlive(w http.ResponseWriter, rc *http.ResponseController) error {
	if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil {
		return err
	}
	return rc.Flush()
}

// streamClock is what a long-lived stream waits on besides its work: the
// keep-alive ticker, and the expiry of the token that opened it.
type streamClock struct {
	ping    *time.Ticker
	timer   *time.Timer
	expired <-chan time.Time // nil when the stream has no expiry
}

func newStreamClock(exp time.Time) *streamClock {
	c := &streamClock{ping: time.NewTicker(keepAliveEvery)}
	if !exp.IsZero() {
		c.timer = time.NewTimer(time.Until(exp))
		c.expired = c.timer.C
	}
	return c
}

func (c *streamClock) stop() {
	c.ping.Stop()
	if c.timer != nil {
		c.timer.Stop()
	}
}

// sseWriter answers a request as a stream of server-sent events: progress
// notifications, then the response.
type sseWriter struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	mu     sync.Mutex
	closed bool
}

// finish writes the answer: as the last event when the stream opened,
// else as a plain JSON response. Later events are dropped.
func (s *sseWriter) finish(data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	if s.rc == nil {
		writeJSON(s.w, http.StatusOK, data)
		return
	}
	_ = writeEvent(s.w, s.rc, "message", data)
}

// event writes one event, opening the stream first; false once the
// stream is finished or broken.
func (s *sseWriter) event(data []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.rc == nil {
		s.rc = openEventStream(s.w)
	}
	return writeEvent(s.w, s.rc, "message", data) == nil
}

// takeOver hands the stream over to a caller that writes the rest of the
// answer itself: the response controller when the stream opened (nil when
// it did not: the caller answers as it likes). The writer writes nothing
// more.
func (s *sseWriter) takeOver() *http.ResponseController {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return s.rc
}

// scanEvents reads a stream of server-sent events and hands each to
// each: its raw lines (each ending with a newline) and its data (the data
// lines joined by newlines). It stops when each says so or fails, at the
// stream's end (a last event without its blank line counts), or on a read
// error.
func scanEvents(body io.Reader, each func(raw, data []byte) (stop bool, err error)) error {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var raw, data bytes.Buffer
	emit := func() (bool, error) {
		defer raw.Reset()
		defer data.Reset()
		if raw.Len() == 0 {
			return false, nil
		}
		return each(raw.Bytes(), data.Bytes())
	}
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			if stop, err := emit(); stop || err != nil {
				return err
			}
			continue
		}
		raw.Write(line)
		raw.WriteByte('\n')
		if rest, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.Write(bytes.TrimPrefix(rest, []byte(" ")))
		}
	}
	if stop, err := emit(); stop || err != nil {
		return err
	}
	return sc.Err()
}
