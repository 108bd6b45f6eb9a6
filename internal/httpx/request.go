package httpx

import (
	"bytes"
	"encoding"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"reflect"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
)

// DecodeJSON decodes the request body into v strictly: JSON media type,
// one object, no unknown fields, no trailing data, no string over its
// length limit (MaxLen). Its errors say what was wrong and where.
func DecodeJSON(c *fiber.Ctx, v any) error {
	mt, _, err := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
	if err != nil || (mt != fiber.MIMEApplicationJSON && !strings.HasSuffix(mt, "+json")) {
		return fiber.NewError(fiber.StatusUnsupportedMediaType, "Content-Type must be application/json")
	}
	return DecodeJSONBytes(c.Body(), v)
}

// DecodeJSONBytes is DecodeJSON's decoding, for bodies already read.
func DecodeJSONBytes(body []byte, v any) error {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return apperr.Invalid("body", "a JSON object is required")
	}
	if trimmed[0] != '{' {
		return apperr.Invalid("body", "must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if field, msg, ok := badTextField(trimmed, v); ok {
			return apperr.Invalid(field, msg)
		}
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return apperr.Invalid("body", "unexpected data after the JSON object")
	}
	return checkLengths(reflect.ValueOf(v), "", MaxValueLen)
}

func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return apperr.Invalid("body", fmt.Sprintf("malformed JSON at offset %d", syn.Offset))
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		return apperr.Invalid(field, fmt.Sprintf("must be of type %s, not %s", jsonType(typ.Type.Kind().String()), typ.Value))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return apperr.Invalid("body", "truncated JSON")
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return apperr.Invalid(strings.Trim(f, `"`), "unknown field")
	}
	var ae *apperr.Error
	if errors.As(err, &ae) {
		return err
	}
	return apperr.Invalid("body", "invalid JSON")
}

// badTextField finds the top-level field of v whose value its type
// refused as text (a malformed UUID or time), so the error can name it:
// encoding/json reports such errors without the field.
func badTextField(body []byte, v any) (field, msg string, ok bool) {
	t := reflect.TypeOf(v)
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return "", "", false
	}
	var raw map[string]json.RawMessage
	if json.Unmarshal(body, &raw) != nil {
		return "", "", false
	}
	st := t.Elem()
	for i := range st.NumField() {
		f := st.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		val, present := raw[name]
		if !present {
			continue
		}
		base := f.Type
		for base.Kind() == reflect.Pointer || base.Kind() == reflect.Slice {
			base = base.Elem()
		}
		if !reflect.PointerTo(base).Implements(reflect.TypeFor[encoding.TextUnmarshaler]()) {
			continue
		}
		if err := json.Unmarshal(val, reflect.New(f.Type).Interface()); err != nil {
			var typ *json.UnmarshalTypeError
			if errors.As(err, &typ) {
				return name, "must be a string", true
			}
			return name, "is not valid: " + err.Error(), true
		}
	}
	return "", "", false
}

func jsonType(kind string) string {
	switch kind {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "number"
	case "slice", "array":
		return "array"
	case "map", "struct":
		return "object"
	case "bool":
		return "boolean"
	}
	return kind
}

// PathUUID parses the path parameter name as a UUID.
func PathUUID(c *fiber.Ctx, name string) (uuid.UUID, error) {
	id, err := uuid.Parse(c.Params(name))
	if err != nil || id == uuid.Nil {
		return uuid.Nil, apperr.Invalid(name, "must be a UUID")
	}
	return id, nil
}

// PageRequest is a parsed cursor page request.
type PageRequest struct {
	Limit  int
	Cursor string
}

// Page is one page of a list.
type Page[T any] struct {
	Items []T `json:"items"`
	// NextCursor, when present, fetches the next page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// PageOf is a page of items (the caller sets NextCursor when more follow).
func PageOf[T any](items []*T) Page[T] {
	out := Page[T]{Items: make([]T, 0, len(items))}
	for _, it := range items {
		out.Items = append(out.Items, *it)
	}
	return out
}

// Page limits.
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 500
)

// ParsePage reads ?limit= and ?cursor=.
func ParsePage(c *fiber.Ctx) (PageRequest, error) {
	p := PageRequest{Limit: DefaultPageLimit, Cursor: c.Query("cursor")}
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxPageLimit {
			return p, apperr.Invalid("limit", fmt.Sprintf("must be an integer from 1 to %d", MaxPageLimit))
		}
		p.Limit = n
	}
	return p, nil
}

// EncodeCursor makes an opaque cursor of v.
func EncodeCursor(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor reads a cursor made by EncodeCursor.
func DecodeCursor(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, v) != nil {
		return apperr.Invalid("cursor", "malformed cursor")
	}
	return nil
}

// ETag returns the entity tag of a record version.
func ETag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// SetETag sets the ETag header for a record version.
func SetETag(c *fiber.Ctx, version int64) { c.Set(fiber.HeaderETag, ETag(version)) }

// IfMatch reads If-Match: the version the client expects, 0 when the
// header is absent or "*" (no precondition on the version).
func IfMatch(c *fiber.Ctx) (int64, error) {
	h := strings.TrimSpace(c.Get(fiber.HeaderIfMatch))
	if h == "" || h == "*" {
		return 0, nil
	}
	h = strings.TrimPrefix(h, "W/")
	v, err := strconv.ParseInt(strings.Trim(h, `"`), 10, 64)
	if err != nil || v < 1 || !strings.HasPrefix(h, `"`) || !strings.HasSuffix(h, `"`) {
		return 0, apperr.Invalid("If-Match", `must be an entity tag such as "3"`)
	}
	return v, nil
}
