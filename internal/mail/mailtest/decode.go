package mailtest

import (
	"encoding/base64"
	"io"
	"mime/quotedprintable"
)

func newQP(r io.Reader) io.Reader  { return quotedprintable.NewReader(r) }
func newB64(r io.Reader) io.Reader { return base64.NewDecoder(base64.StdEncoding, r) }
