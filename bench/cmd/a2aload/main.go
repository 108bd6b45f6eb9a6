// Command a2aload sends A2A SendMessage requests (JSON-RPC, A2A-Version
// 1.0) to an agent endpoint from c concurrent clients and prints one JSON
// line: calls per second, latency percentiles and errors.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

func main() {
	url := flag.String("url", "", "A2A JSON-RPC endpoint (loopback only)")
	conc := flag.Int("c", 16, "concurrent clients")
	dur := flag.Duration("d", 10*time.Second, "duration of the measured phase")
	warm := flag.Duration("warmup", 2*time.Second, "warm-up before measuring")
	token := flag.String("token", os.Getenv("A2ALOAD_TOKEN"), "bearer token (or env A2ALOAD_TOKEN)")
	ca := flag.String("ca", "", "CA bundle PEM to verify the server")
	flag.Parse()
	if !strings.HasPrefix(*url, "http://127.0.0.1:") && !strings.HasPrefix(*url, "https://127.0.0.1:") {
		fail(fmt.Errorf("loopback URLs only"))
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if *ca != "" {
		pem, err := os.ReadFile(*ca)
		if err != nil {
			fail(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tlsConf.RootCAs = pool
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf, MaxIdleConnsPerHost: *conc, MaxConnsPerHost: *conc}}
	var (
		mu     sync.Mutex
		lat    []time.Duration
		errs   int
		first  string
		wg     sync.WaitGroup
		begin  = time.Now()
		record = begin.Add(*warm)
		end    = record.Add(*dur)
	)
	for w := range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(end); i++ {
				body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"SendMessage","params":{"message":{"messageId":"m-%d-%d","role":"ROLE_USER","parts":[{"text":"hello"}]}}}`, i, w, i)
				req, _ := http.NewRequest(http.MethodPost, *url, bytes.NewBufferString(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("A2A-Version", "1.0")
				if *token != "" {
					req.Header.Set("Authorization", "Bearer "+*token)
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				var out []byte
				if err == nil {
					out, _ = io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK || !bytes.Contains(out, []byte("TASK_STATE_COMPLETED")) {
						err = fmt.Errorf("status %d: %.200s", resp.StatusCode, out)
					}
				}
				took := time.Since(t0)
				if t0.Before(record) {
					continue
				}
				mu.Lock()
				if err != nil {
					errs++
					if first == "" {
						first = err.Error()
					}
				} else if time.Now().Before(end) {
					lat = append(lat, took)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	out, _ := json.Marshal(map[string]any{"calls_per_s": float64(len(lat)) / dur.Seconds(), "p50_ms": pct(0.5), "p90_ms": pct(0.9),
		"p99_ms": pct(0.99), "errors": errs, "first_error": first})
	fmt.Println(string(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "a2aload:", err)
	os.Exit(1)
}
