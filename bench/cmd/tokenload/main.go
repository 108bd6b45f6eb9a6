// Command tokenload drives a token endpoint from concurrent workers —
// client-credentials grants or RFC 8693 token exchanges, the client
// authenticated with HTTP Basic — and prints tokens/s and latency
// percentiles. Loopback targets only.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

func main() {
	endpoint := flag.String("url", "", "token endpoint (loopback only)")
	grant := flag.String("grant", "client_credentials", "client_credentials or token_exchange")
	id := flag.String("client-id", "", "client ID")
	secret := flag.String("client-secret", "", "client secret")
	subject := flag.String("subject-token", "", "token_exchange: the user's access token")
	scope := flag.String("scope", "", "scope to ask for")
	resource := flag.String("resource", "", "resource indicator")
	workers := flag.Int("c", 16, "concurrent workers")
	dur := flag.Duration("d", 10*time.Second, "duration")
	flag.Parse()
	if u, err := url.Parse(*endpoint); err != nil || !loopback(u.Hostname()) {
		fmt.Fprintln(os.Stderr, "tokenload: -url must be a loopback URL")
		os.Exit(2)
	}
	form := url.Values{}
	switch *grant {
	case "client_credentials":
		form.Set("grant_type", "client_credentials")
	case "token_exchange":
		form = url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {*subject},
			"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}}
	default:
		fmt.Fprintln(os.Stderr, "tokenload: -grant is client_credentials or token_exchange")
		os.Exit(2)
	}
	if *scope != "" {
		form.Set("scope", *scope)
	}
	if *resource != "" {
		form.Set("resource", *resource)
	}
	body := form.Encode()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *workers}}
	var mu sync.Mutex
	var lat []time.Duration
	var failed int
	deadline := time.Now().Add(*dur)
	var wg sync.WaitGroup
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			bad := 0
			for time.Now().Before(deadline) {
				req, _ := http.NewRequest("POST", *endpoint, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(url.QueryEscape(*id), url.QueryEscape(*secret))
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					bad++
					continue
				}
				var out map[string]any
				_ = json.NewDecoder(resp.Body).Decode(&out)
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || out["access_token"] == nil {
					bad++
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			failed += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(lat) == 0 {
		fmt.Fprintln(os.Stderr, "no token was issued")
		os.Exit(1)
	}
	slices.Sort(lat)
	fmt.Printf("%s tokens/s %.0f  p50 %v  p99 %v  errors %d\n", *grant, float64(len(lat))/dur.Seconds(), lat[len(lat)/2], lat[len(lat)*99/100], failed)
}

func loopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}
