package governance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// argRule is the allow-list of one argument: it must be present and match
// an exact value, a prefix (strings) or a pattern (strings, whole match).
type argRule struct {
	values   allowSet
	prefixes []string
	patterns []*regexp.Regexp
}

// argCheck is an assignment's argument constraints in decision-ready form.
type argCheck struct {
	rules  map[string]*argRule
	names  []string // sorted, so the first failing argument named is stable
	schema *jsonschema.Schema
}

func (c *Constraints) hasArguments() bool {
	return len(c.ArgumentConstraints) > 0 || len(c.ArgumentPrefixes) > 0 || len(c.ArgumentPatterns) > 0 || len(c.ArgumentSchema) > 0
}

// compileArgSchema compiles a constraint's JSON Schema fragment (2020-12).
// Nothing may be loaded: a $ref to a file or URL fails.
func compileArgSchema(raw json.RawMessage) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(jsonschema.SchemeURLLoader{})
	c.DefaultDraft(jsonschema.Draft2020)
	const loc = "urn:xavyo:argument-constraints"
	if err := c.AddResource(loc, doc); err != nil {
		return nil, err
	}
	return c.Compile(loc)
}

func compileArgs(c *Constraints) *argCheck {
	if !c.hasArguments() {
		return nil
	}
	out := &argCheck{rules: map[string]*argRule{}}
	rule := func(name string) *argRule {
		if r := out.rules[name]; r != nil {
			return r
		}
		r := &argRule{}
		out.rules[name] = r
		out.names = append(out.names, name)
		return r
	}
	for name, vals := range c.ArgumentConstraints {
		r := rule(name)
		r.values = allowSet{}
		for _, v := range vals {
			r.values[canonical(v)] = struct{}{}
		}
	}
	for name, list := range c.ArgumentPrefixes {
		r := rule(name)
		r.prefixes = append(r.prefixes, list...)
	}
	for name, list := range c.ArgumentPatterns {
		r := rule(name)
		for _, p := range list {
			if re, err := regexp.Compile(`^(?:` + p + `)$`); err == nil {
				r.patterns = append(r.patterns, re)
			} else {
				r.patterns = append(r.patterns, regexp.MustCompile(`$.^`)) // validated on write; never matches if not
			}
		}
	}
	slices.Sort(out.names)
	if len(c.ArgumentSchema) > 0 {
		s, err := compileArgSchema(c.ArgumentSchema)
		if err != nil {
			s = nil
			out.rules["\x00schema"] = &argRule{} // an unusable schema allows nothing
			out.names = append([]string{"\x00schema"}, out.names...)
		}
		out.schema = s
	}
	return out
}

// callArgs are a call's arguments, raw and (when the caller has them)
// decoded.
type callArgs struct {
	raw     map[string]json.RawMessage
	decoded map[string]any
}

// str returns an argument as a string, if it is one.
func (c callArgs) str(name string) (string, bool) {
	if c.decoded != nil {
		s, ok := c.decoded[name].(string)
		return s, ok
	}
	var s string
	return s, json.Unmarshal(c.raw[name], &s) == nil
}

// allows checks arguments against the constraints; when it refuses it
// names the argument and the kind of constraint, never the allowed values.
func (a *argCheck) allows(args callArgs) (bool, string) {
	for _, name := range a.names {
		r := a.rules[name]
		if name == "\x00schema" {
			return false, "the assignment's argument schema cannot be used"
		}
		v, ok := args.raw[name]
		if !ok {
			return false, fmt.Sprintf("argument %q is required by the assignment's constraints", name)
		}
		if r.values != nil {
			if _, ok := r.values[string(v)]; ok {
				continue
			}
			if _, ok := r.values[canonical(v)]; ok {
				continue
			}
		}
		if len(r.prefixes) > 0 || len(r.patterns) > 0 {
			if str, ok := args.str(name); ok && (hasPrefix(str, r.prefixes) || matchesAny(str, r.patterns)) {
				continue
			}
		}
		return false, fmt.Sprintf("argument %q is not allowed by the assignment's %s", name, r.kinds())
	}
	if a.schema != nil {
		inst := args.decoded
		if inst == nil {
			inst = make(map[string]any, len(args.raw))
			for k, v := range args.raw {
				x, err := jsonschema.UnmarshalJSON(bytes.NewReader(v))
				if err != nil {
					return false, fmt.Sprintf("argument %q is not valid JSON", k)
				}
				inst[k] = x
			}
		}
		if err := a.schema.Validate(inst); err != nil {
			return false, schemaRefusal(err)
		}
	}
	return true, ""
}

func (r *argRule) kinds() string {
	var k []string
	if r.values != nil {
		k = append(k, "allowed values")
	}
	if len(r.prefixes) > 0 {
		k = append(k, "allowed prefixes")
	}
	if len(r.patterns) > 0 {
		k = append(k, "allowed patterns")
	}
	return strings.Join(k, " or ")
}

func hasPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func matchesAny(s string, res []*regexp.Regexp) bool {
	for _, re := range res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

// schemaRefusal names the first argument the schema refused and the
// keyword that refused it.
func schemaRefusal(err error) string {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return "the arguments do not satisfy the assignment's argument schema"
	}
	for len(ve.Causes) > 0 {
		ve = ve.Causes[0]
	}
	where := "the arguments"
	if len(ve.InstanceLocation) > 0 {
		where = fmt.Sprintf("argument %q", strings.Join(ve.InstanceLocation, "/"))
	}
	keyword := ""
	if kp := ve.ErrorKind.KeywordPath(); len(kp) > 0 {
		keyword = " (" + kp[len(kp)-1] + ")"
	} else if name := fmt.Sprintf("%T", ve.ErrorKind); strings.HasPrefix(name, "*kind.") {
		// Keywords such as not carry no path: their kind is named after them.
		name = strings.TrimPrefix(name, "*kind.")
		keyword = " (" + strings.ToLower(name[:1]) + name[1:] + ")"
	}
	return where + " is not allowed by the assignment's argument schema" + keyword
}
