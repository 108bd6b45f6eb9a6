// Command exchangeload drives RFC 8693 token exchanges against a token
// endpoint from concurrent workers and prints exchanges/s and latency
// percentiles (the exchange counterpart of the client-credentials load
// generator).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

func main() {
	endpoint := flag.String("url", "", "token endpoint")
	id := flag.String("client-id", "", "actor client ID")
	secret := flag.String("client-secret", "", "actor client secret")
	subject := flag.String("subject-token", "", "the user's access token")
	resource := flag.String("resource", "", "resource indicator")
	workers := flag.Int("c", 16, "concurrent workers")
	dur := flag.Duration("d", 10*time.Second, "duration")
	flag.Parse()
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {*subject},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}}
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
		fmt.Fprintln(os.Stderr, "no successful exchange")
		os.Exit(1)
	}
	slices.Sort(lat)
	fmt.Printf("exchanges/s %.0f  p50 %v  p99 %v  errors %d\n", float64(len(lat))/dur.Seconds(), lat[len(lat)/2], lat[len(lat)*99/100], failed)
}
