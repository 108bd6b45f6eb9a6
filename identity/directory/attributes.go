package directory

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/store"
)

// AttributeDefinition declares one custom user attribute of a tenant.
type AttributeDefinition struct {
	ID          uuid.UUID `json:"id"`
	Name        string    `json:"name" doc:"[a-z][a-z0-9_]{0,62}"`
	Type        string    `json:"type" doc:"string, number, boolean, date (YYYY-MM-DD) or enum"`
	Required    bool      `json:"required"`
	EnumValues  []string  `json:"enum_values"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	Version     int64     `json:"version"`
}

// AttributeDefinitionInput creates or changes a definition.
type AttributeDefinitionInput struct {
	Name        string   `json:"name,omitempty"`
	Type        string   `json:"type,omitempty"`
	Required    *bool    `json:"required,omitempty"`
	EnumValues  []string `json:"enum_values,omitempty"`
	Description *string  `json:"description,omitempty"`
}

var attrName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

func (d *AttributeDefinition) validate() error {
	if !attrName.MatchString(d.Name) {
		return apperr.Invalid("name", "must match [a-z][a-z0-9_]{0,62}")
	}
	switch d.Type {
	case "string", "number", "boolean", "date":
		if len(d.EnumValues) > 0 {
			return apperr.Invalid("enum_values", "only enum attributes have values")
		}
	case "enum":
		if len(d.EnumValues) == 0 || len(d.EnumValues) > 200 {
			return apperr.Invalid("enum_values", "an enum needs 1 to 200 values")
		}
	default:
		return apperr.Invalid("type", "must be string, number, boolean, date or enum")
	}
	if len(d.Description) > 500 {
		return apperr.Invalid("description", "must be at most 500 characters")
	}
	return nil
}

const attrCols = `id, name, type, required, enum_values, description, created_at, updated_at, version`

func scanAttr(row interface{ Scan(...any) error }) (*AttributeDefinition, error) {
	var d AttributeDefinition
	var enum []byte
	if err := row.Scan(&d.ID, &d.Name, &d.Type, &d.Required, &enum, &d.Description, &d.CreatedAt, &d.UpdatedAt, &d.Version); err != nil {
		return nil, err
	}
	_ = json.Unmarshal(enum, &d.EnumValues)
	if d.EnumValues == nil {
		d.EnumValues = []string{}
	}
	return &d, nil
}

// ListAttributeDefinitions lists the tenant's definitions by name.
func (s *Service) ListAttributeDefinitions(ctx context.Context) ([]*AttributeDefinition, error) {
	var out []*AttributeDefinition
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		out, err = attributeDefinitions(ctx, tx)
		return err
	})
	return out, err
}

// CreateAttributeDefinition adds a definition.
func (s *Service) CreateAttributeDefinition(ctx context.Context, in AttributeDefinitionInput) (*AttributeDefinition, error) {
	now := store.Now()
	d := &AttributeDefinition{ID: uuid.Must(uuid.NewV7()), Name: in.Name, Type: in.Type, EnumValues: in.EnumValues,
		CreatedAt: now, UpdatedAt: now, Version: 1}
	if in.Required != nil {
		d.Required = *in.Required
	}
	if in.Description != nil {
		d.Description = *in.Description
	}
	if d.EnumValues == nil {
		d.EnumValues = []string{}
	}
	if err := d.validate(); err != nil {
		return nil, err
	}
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if d.Required {
			n, err := countUsers(ctx, tx)
			if err != nil {
				return err
			}
			if n > 0 {
				return apperr.New(apperr.KindConflict, "a new attribute cannot be required while users exist; create it optional, fill it, then require it")
			}
		}
		if err := insertAttr(ctx, tx, d); err != nil {
			return err
		}
		if err := events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: AttrDefEvent, ID: d.ID.String(), Version: 1}, d); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "attribute_definition.create", "attribute_definition", d.ID.String(), d)
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// UpdateAttributeDefinition changes a definition's requiredness, values
// or description (name and type are fixed once users may carry them).
func (s *Service) UpdateAttributeDefinition(ctx context.Context, id uuid.UUID, in AttributeDefinitionInput, ifVersion int64) (*AttributeDefinition, error) {
	if in.Name != "" || in.Type != "" {
		return nil, apperr.Invalid("name", "name and type cannot change; define a new attribute")
	}
	var d *AttributeDefinition
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		var err error
		d, err = lockAttr(ctx, tx, id)
		if err != nil {
			return err
		}
		if ifVersion != 0 && ifVersion != d.Version {
			return apperr.New(apperr.KindPreconditionFailed, "attribute definition changed since version %d", ifVersion)
		}
		if in.Required != nil {
			d.Required = *in.Required
		}
		if in.Description != nil {
			d.Description = *in.Description
		}
		if in.EnumValues != nil {
			d.EnumValues = in.EnumValues
		}
		if err := d.validate(); err != nil {
			return err
		}
		if d.Required {
			missing, err := usersWithAttr(ctx, tx, d.Name, false)
			if err != nil {
				return err
			}
			if missing > 0 {
				return apperr.New(apperr.KindConflict, "%d users lack %q; it cannot be required yet", missing, d.Name)
			}
		}
		d.UpdatedAt = store.Now()
		d.Version++
		if err := updateAttr(ctx, tx, d); err != nil {
			return err
		}
		if err := events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: AttrDefEvent, ID: id.String(), Version: d.Version}, d); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "attribute_definition.update", "attribute_definition", id.String(), d)
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// DeleteAttributeDefinition removes a definition no user carries.
func (s *Service) DeleteAttributeDefinition(ctx context.Context, id uuid.UUID) error {
	var name string
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		d, err := lockAttr(ctx, tx, id)
		if err != nil {
			return err
		}
		name = d.Name
		used, err := usersWithAttr(ctx, tx, name, true)
		if err != nil {
			return err
		}
		if used > 0 {
			return apperr.New(apperr.KindConflict, "%d users carry %q; remove it from them first", used, name)
		}
		if err := deleteAttr(ctx, tx, id); err != nil {
			return err
		}
		if err := events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: AttrDefEvent, ID: id.String(), Op: events.OpDelete}, nil); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "attribute_definition.delete", "attribute_definition", id.String(), map[string]string{"name": name})
	})
	if err != nil {
		return err
	}
	return nil
}

var dateRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// validateAttributes checks a user's attributes against the definitions
// and returns them re-encoded.
func validateAttributes(defs []*AttributeDefinition, raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 {
		raw = json.RawMessage("{}")
	}
	var attrs map[string]any
	if err := json.Unmarshal(raw, &attrs); err != nil || attrs == nil {
		return nil, apperr.Invalid("attributes", "must be a JSON object")
	}
	byName := map[string]*AttributeDefinition{}
	for _, d := range defs {
		byName[d.Name] = d
	}
	for k, v := range attrs {
		d, ok := byName[k]
		field := "attributes." + k
		if !ok {
			return nil, apperr.Invalid(field, "is not a defined attribute")
		}
		if v == nil {
			delete(attrs, k)
			continue
		}
		bad := func(want string) error { return apperr.Invalid(field, "must be "+want) }
		switch d.Type {
		case "string":
			if s, ok := v.(string); !ok || len(s) > 2000 {
				return nil, bad("a string of at most 2000 bytes")
			}
		case "number":
			if _, ok := v.(float64); !ok {
				return nil, bad("a number")
			}
		case "boolean":
			if _, ok := v.(bool); !ok {
				return nil, bad("true or false")
			}
		case "date":
			s, ok := v.(string)
			if !ok || !dateRE.MatchString(s) {
				return nil, bad("a date YYYY-MM-DD")
			}
			if _, err := time.Parse(time.DateOnly, s); err != nil {
				return nil, bad("a valid date")
			}
		case "enum":
			s, ok := v.(string)
			if !ok || !slices.Contains(d.EnumValues, s) {
				return nil, bad(fmt.Sprintf("one of %v", d.EnumValues))
			}
		}
	}
	for _, d := range defs {
		if _, ok := attrs[d.Name]; d.Required && !ok {
			return nil, apperr.Invalid("attributes."+d.Name, "is required")
		}
	}
	out, _ := json.Marshal(attrs)
	return out, nil
}
