package httpx

import (
	"fmt"
	"mime"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/textguard"
)

// Text limits. Every string of a request body has a length limit in
// characters: the field's `maxlen` tag, else one by the field's name
// (names and keys, free text), else MaxValueLen. The OpenAPI document
// states the same limits (maxLength).
const (
	// MaxNameLen bounds names, titles, keys, logins and addresses.
	MaxNameLen = 256
	// MaxTextLen bounds free text: descriptions, justifications, comments.
	MaxTextLen = 4096
	// MaxValueLen bounds any other string (URLs, certificates, secrets).
	MaxValueLen = 64 << 10
	// MaxQueryLen bounds one query parameter's value (room for an ID token
	// as id_token_hint).
	MaxQueryLen = 8192
)

var (
	nameFields = map[string]bool{"name": true, "display_name": true, "title": true, "given_name": true, "family_name": true,
		"login": true, "email": true, "slug": true, "key": true, "username": true, "label": true, "tenant": true}
	textFields = map[string]bool{"description": true, "justification": true, "comment": true, "reason": true, "note": true}
)

// MaxLen is the length limit, in characters, of a string field whose JSON
// name is name.
func MaxLen(f reflect.StructField, name string) int {
	if tag := f.Tag.Get("maxlen"); tag != "" {
		if n, err := strconv.Atoi(tag); err == nil && n > 0 {
			return n
		}
	}
	switch {
	case nameFields[name]:
		return MaxNameLen
	case textFields[name]:
		return MaxTextLen
	}
	return MaxValueLen
}

// checkLengths refuses a decoded request whose strings exceed their
// limits, naming the field (dotted path for nested ones).
func checkLengths(v reflect.Value, path string, limit int) error {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return checkLengths(v.Elem(), path, limit)
	case reflect.String:
		if n := len(v.String()); n > limit && utf8.RuneCountInString(v.String()) > limit {
			return apperr.Invalid(fieldName(path), fmt.Sprintf("must be at most %d characters", limit))
		}
	case reflect.Struct:
		if v.Type() == timeType || v.Type() == uuidType {
			return nil
		}
		return checkStruct(v, path)
	case reflect.Slice, reflect.Array:
		if v.Type() == rawType || v.Type().Elem().Kind() == reflect.Uint8 {
			return nil
		}
		for i := range v.Len() {
			if err := checkLengths(v.Index(i), path+"["+strconv.Itoa(i)+"]", limit); err != nil {
				return err
			}
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			k := fmt.Sprint(iter.Key().Interface())
			if len(k) > MaxNameLen {
				return apperr.Invalid(fieldName(path), fmt.Sprintf("keys must be at most %d characters", MaxNameLen))
			}
			if err := checkLengths(iter.Value(), joinField(path, k), MaxValueLen); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkStruct(v reflect.Value, path string) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" {
			if err := checkLengths(v.Field(i), path, MaxValueLen); err != nil {
				return err
			}
			continue
		}
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if err := checkLengths(v.Field(i), joinField(path, name), MaxLen(f, name)); err != nil {
			return err
		}
	}
	return nil
}

func joinField(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func fieldName(path string) string {
	if path == "" {
		return "body"
	}
	return path
}

// textGuard refuses, before any handler runs, text no store can keep: a
// NUL character or invalid UTF-8 in the path, a query parameter, or a
// JSON or form body, and over-long query values. Both backends then
// answer alike (PostgreSQL would fail on such text, SQLite would keep it).
func textGuard(c *fiber.Ctx) error {
	if err := refuseBadText(c); err != nil {
		return err
	}
	return c.Next()
}

func refuseBadText(c *fiber.Ctx) error {
	// Handlers see path parameters escaped; unescaped, they must be text.
	if path, err := url.PathUnescape(c.Path()); err != nil {
		return apperr.Invalid("path", "malformed percent-encoding")
	} else if err := textguard.Check("path", path); err != nil {
		return err
	}
	var bad error
	c.Request().URI().QueryArgs().VisitAll(func(k, v []byte) {
		if bad != nil {
			return
		}
		name := string(k)
		if bad = textguard.Check("query parameter", name); bad != nil {
			return
		}
		if bad = textguard.Check(name, string(v)); bad == nil && len(v) > MaxQueryLen {
			bad = apperr.Invalid(name, fmt.Sprintf("must be at most %d characters", MaxQueryLen))
		}
	})
	if bad != nil {
		return bad
	}
	body := c.Body()
	if len(body) == 0 {
		return nil
	}
	mt, _, _ := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
	switch {
	case mt == fiber.MIMEApplicationForm:
		c.Request().PostArgs().VisitAll(func(k, v []byte) {
			if bad == nil {
				if bad = textguard.Check("form field", string(k)); bad == nil {
					bad = textguard.Check(string(k), string(v))
				}
			}
		})
		return bad
	case mt == fiber.MIMEApplicationJSON || strings.HasSuffix(mt, "+json"):
		return textguard.CheckJSON(body)
	}
	return nil
}
