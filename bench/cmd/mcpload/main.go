// Command mcpload measures tools/call through any MCP server or gateway:
// C concurrent sessions of the mcp-go client (which negotiates the newest
// protocol version both sides offer) call one tool in a loop for a fixed
// time after a warm-up; it prints calls per second and latency
// percentiles, as a JSON line with -json. Loopback targets only.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

func main() {
	target := flag.String("url", "http://127.0.0.1:9801/mcp", "MCP endpoint (loopback only)")
	conc := flag.Int("c", 1, "concurrent sessions")
	dur := flag.Duration("d", 10*time.Second, "duration of the measured phase")
	warm := flag.Duration("warmup", 2*time.Second, "warm-up before measuring")
	tool := flag.String("tool", "echo", "tool to call")
	args := flag.String("args", `{"text":"hello"}`, "tool arguments (a JSON object)")
	token := flag.String("token", os.Getenv("MCPLOAD_TOKEN"), "bearer token (or env MCPLOAD_TOKEN)")
	certFile := flag.String("cert", "", "client certificate PEM (mTLS)")
	keyFile := flag.String("key", "", "client key PEM (mTLS)")
	ca := flag.String("ca", "", "CA bundle PEM to verify the server")
	insecure := flag.Bool("insecure", false, "do not verify the server's certificate")
	asJSON := flag.Bool("json", false, "print one JSON line")
	flag.Parse()

	u, err := url.Parse(*target)
	if err != nil || !loopback(u.Hostname()) {
		fail(fmt.Errorf("the target must be a loopback URL: %s", *target))
	}
	var arguments map[string]any
	if err := json.Unmarshal([]byte(*args), &arguments); err != nil {
		fail(fmt.Errorf("-args: %w", err))
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: *insecure} //nolint:gosec // G402: -insecure is the operator's choice
	if *ca != "" {
		pem, err := os.ReadFile(*ca)
		if err != nil {
			fail(err)
		}
		tc.RootCAs = x509.NewCertPool()
		tc.RootCAs.AppendCertsFromPEM(pem)
	}
	if *certFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			fail(err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc, MaxIdleConnsPerHost: 2 * *conc}}
	opts := []transport.StreamableHTTPCOption{transport.WithHTTPBasicClient(hc)}
	if *token != "" {
		opts = append(opts, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + *token}))
	}

	ctx, cancel := context.WithTimeout(context.Background(), *warm+*dur)
	defer cancel()
	measureFrom := time.Now().Add(*warm)
	var (
		mu       sync.Mutex
		lat      []time.Duration
		errs     int
		firstErr string
		wg       sync.WaitGroup
	)
	record := func(d time.Duration, at time.Time, err error) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			errs++
			if firstErr == "" {
				firstErr = err.Error()
			}
		case !at.Before(measureFrom):
			lat = append(lat, d)
		}
	}
	for range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := client.NewStreamableHttpClient(*target, opts...)
			if err == nil {
				err = c.Start(ctx)
			}
			if err == nil {
				init := mcp.InitializeRequest{}
				init.Params.ProtocolVersion = mcp.LATEST_PROTOCOL_VERSION
				init.Params.ClientInfo = mcp.Implementation{Name: "mcpload", Version: "1"}
				_, err = c.Initialize(ctx, init)
			}
			if err != nil {
				record(0, time.Now(), err)
				return
			}
			defer c.Close()
			req := mcp.CallToolRequest{}
			req.Params.Name, req.Params.Arguments = *tool, arguments
			for ctx.Err() == nil {
				start := time.Now()
				res, err := c.CallTool(ctx, req)
				if ctx.Err() != nil {
					return // the run ended mid-call
				}
				if err == nil && res.IsError {
					err = fmt.Errorf("tool error: %v", res.Content)
				}
				record(time.Since(start), start, err)
			}
		}()
	}
	wg.Wait()

	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	out := map[string]any{"calls_per_s": float64(len(lat)) / dur.Seconds(), "p50_ms": pct(0.5), "p90_ms": pct(0.9), "p99_ms": pct(0.99),
		"calls": len(lat), "errors": errs, "first_error": firstErr}
	if *asJSON {
		b, _ := json.Marshal(out)
		fmt.Println(string(b))
		return
	}
	fmt.Printf("%d sessions, %s: %.0f calls/s, p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, %d errors %s\n", *conc, *dur,
		out["calls_per_s"], out["p50_ms"], out["p90_ms"], out["p99_ms"], errs, firstErr)
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mcpload:", err)
	os.Exit(1)
}
