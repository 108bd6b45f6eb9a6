package password

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/xavyo/xavyo/internal/apperr"
)

// Policy is a tenant's password policy.
type Policy struct {
	MinLength     int  `json:"min_length" doc:"minimum length in characters (8-128, default 12)"`
	RequireUpper  bool `json:"require_upper"`
	RequireLower  bool `json:"require_lower"`
	RequireDigit  bool `json:"require_digit"`
	RequireSymbol bool `json:"require_symbol"`
	// History is how many previous passwords may not be reused (0-24).
	History int `json:"history" doc:"previous passwords that may not be reused (0-24, default 5)"`
	// MaxAgeDays forces a change after this many days (0: never).
	MaxAgeDays int `json:"max_age_days" doc:"days until a password must be changed (0: never)"`
}

// DefaultPolicy is the policy of a tenant that set none.
var DefaultPolicy = Policy{MinLength: 12, History: 5}

// Validate checks the policy itself.
func (p Policy) Validate() error {
	if p.MinLength < 8 || p.MinLength > 128 {
		return apperr.Invalid("password.min_length", "must be from 8 to 128")
	}
	if p.History < 0 || p.History > 24 {
		return apperr.Invalid("password.history", "must be from 0 to 24")
	}
	if p.MaxAgeDays < 0 || p.MaxAgeDays > 3650 {
		return apperr.Invalid("password.max_age_days", "must be from 0 to 3650")
	}
	return nil
}

// Check tests pw against the policy; personal holds values the password
// must not contain (email local part, username, names).
func (p Policy) Check(pw string, personal ...string) error {
	n := utf8.RuneCountInString(pw)
	if n < p.MinLength {
		return apperr.Invalid("password", fmt.Sprintf("must be at least %d characters", p.MinLength))
	}
	if len(pw) > MaxLength {
		return apperr.Invalid("password", fmt.Sprintf("must be at most %d bytes", MaxLength))
	}
	var upper, lower, digit, symbol bool
	for _, r := range pw {
		switch {
		case unicode.IsUpper(r):
			upper = true
		case unicode.IsLower(r):
			lower = true
		case unicode.IsDigit(r):
			digit = true
		case unicode.IsPunct(r) || unicode.IsSymbol(r) || unicode.IsSpace(r):
			symbol = true
		}
	}
	var missing []string
	if p.RequireUpper && !upper {
		missing = append(missing, "an uppercase letter")
	}
	if p.RequireLower && !lower {
		missing = append(missing, "a lowercase letter")
	}
	if p.RequireDigit && !digit {
		missing = append(missing, "a digit")
	}
	if p.RequireSymbol && !symbol {
		missing = append(missing, "a symbol")
	}
	if len(missing) > 0 {
		return apperr.Invalid("password", "must contain "+strings.Join(missing, ", "))
	}
	lpw := strings.ToLower(pw)
	for _, v := range personal {
		if v = strings.ToLower(strings.TrimSpace(v)); len(v) >= 4 && strings.Contains(lpw, v) {
			return apperr.Invalid("password", "must not contain your name, username or email")
		}
	}
	return nil
}
