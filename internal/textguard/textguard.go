// Package textguard refuses text that no store can keep: NUL characters
// (PostgreSQL's text types cannot hold them) and invalid UTF-8. Both
// planes check what they receive with it, so both backends answer alike.
package textguard

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/xavyo/xavyo/internal/apperr"
)

// Check refuses a NUL character or invalid UTF-8 in s, naming what.
func Check(what, s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return apperr.Invalid(what, "must not contain NUL characters")
	}
	if !utf8.ValidString(s) {
		return apperr.Invalid(what, "must be valid UTF-8")
	}
	return nil
}

// CheckJSON refuses a JSON document that is not valid UTF-8 or that
// has a string (member name or value) with an escaped NUL character,
// naming the member.
func CheckJSON(body []byte) error {
	if !utf8.Valid(body) {
		return apperr.Invalid("body", "must be valid UTF-8")
	}
	if !bytes.Contains(body, []byte(`\u0000`)) {
		return nil
	}
	// Only an escape in a string counts ("\\u0000" is a backslash and
	// text): the tokens say.
	dec := json.NewDecoder(bytes.NewReader(body))
	key := "body"
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // malformed JSON is the decoder's to report
		}
		s, ok := tok.(string)
		if !ok {
			continue
		}
		if strings.IndexByte(s, 0) >= 0 {
			return apperr.Invalid(key, "must not contain NUL characters")
		}
		key = s
	}
}

// CheckValues refuses a form or query whose parameter names or values
// Check refuses.
func CheckValues(v url.Values) error {
	for k, vals := range v {
		if err := Check("parameter name", k); err != nil {
			return err
		}
		for _, s := range vals {
			if err := Check(k, s); err != nil {
				return err
			}
		}
	}
	return nil
}
