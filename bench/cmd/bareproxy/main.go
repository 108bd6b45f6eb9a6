// Command bareproxy is the floor of any HTTP proxy on a machine: Go's
// reverse proxy with nothing else (no TLS, authentication, decision or
// audit). make bench-gateway runs it beside the gateway, so that the
// gateway's overhead can be told from the cost of an extra hop.
package main

import (
	"flag"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:19802", "listen address (loopback)")
	target := flag.String("target", "http://127.0.0.1:19801", "upstream base URL")
	flag.Parse()
	if host, _, err := net.SplitHostPort(*listen); err != nil || !net.ParseIP(host).IsLoopback() {
		log.Fatal("bareproxy listens on loopback only")
	}
	u, err := url.Parse(*target)
	if err != nil {
		log.Fatal(err)
	}
	p := httputil.NewSingleHostReverseProxy(u)
	p.Transport = &http.Transport{MaxIdleConnsPerHost: 64}
	p.FlushInterval = -1 // stream event-stream answers as they come
	srv := &http.Server{Addr: *listen, Handler: p, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
