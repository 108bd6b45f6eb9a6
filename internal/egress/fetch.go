package egress

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/xavyo/xavyo/internal/apperr"
)

// FetchDocument GETs a document (metadata, a discovery document) by URL
// with client (an egress-checked one), within 10 seconds and max bytes
// (a longer one is cut there: the parser refuses it). Errors name field,
// the input that gave the URL, and say why, never with the document.
func FetchDocument(ctx context.Context, client *http.Client, raw, accept, field string, maxBytes int64) ([]byte, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(raw) > 2048 {
		return nil, apperr.Invalid(field, "an absolute http(s) URL")
	}
	if client == nil {
		return nil, apperr.New(apperr.KindUnavailable, "documents cannot be fetched here")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, apperr.Invalid(field, "an absolute http(s) URL")
	}
	req.Header.Set("Accept", accept)
	resp, err := client.Do(req)
	if err != nil {
		return nil, Unreachable("the "+field, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, apperr.Invalid(field, fmt.Sprintf("answered %d", resp.StatusCode))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBytes+1))
	if err != nil {
		return nil, Unreachable("the "+field, err)
	}
	return body, nil
}
