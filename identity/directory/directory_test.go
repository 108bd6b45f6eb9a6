package directory_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/xavyo/xavyo/internal/audit"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/identity/password"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

func setup(t *testing.T, db *store.DB) (*directory.Service, context.Context) {
	t.Helper()
	tenants := &tenant.Service{DB: db, Audit: audit.Discard}
	tn, err := tenants.Create(context.Background(), tenant.CreateInput{Slug: "d-" + uuid.NewString()[:8], Name: "D"})
	if err != nil {
		t.Fatal(err)
	}
	s := &directory.Service{DB: db, Audit: audit.Discard, Hasher: password.NewHasher(password.Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 2),
		Policies: tenants}
	ctx := store.WithTenant(context.Background(), tn.ID)
	ctx = principal.With(ctx, &principal.Principal{TenantID: tn.ID, Kind: principal.KindUser, SubjectID: "admin",
		AdminRoles: []string{principal.RoleTenantAdmin}})
	return s, ctx
}

func TestAttributes(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		s, ctx := setup(t, db)
		yes := true
		for _, in := range []directory.AttributeDefinitionInput{
			{Name: "cost_center", Type: "string"},
			{Name: "level", Type: "number"},
			{Name: "contractor", Type: "boolean"},
			{Name: "start_date", Type: "date"},
			{Name: "region", Type: "enum", EnumValues: []string{"eu", "us"}},
		} {
			if _, err := s.CreateAttributeDefinition(ctx, in); err != nil {
				t.Fatal(err)
			}
		}
		for _, bad := range []directory.AttributeDefinitionInput{
			{Name: "Bad-Name", Type: "string"}, {Name: "x", Type: "blob"}, {Name: "e", Type: "enum"},
			{Name: "s", Type: "string", EnumValues: []string{"a"}}, {Name: "cost_center", Type: "string"},
		} {
			if _, err := s.CreateAttributeDefinition(ctx, bad); err == nil {
				t.Errorf("accepted %+v", bad)
			}
		}
		good := `{"cost_center":"cc-1","level":3,"contractor":false,"start_date":"2026-01-31","region":"eu"}`
		u, err := s.CreateUser(ctx, directory.CreateUserInput{Email: "a@x.test", Attributes: json.RawMessage(good)})
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{`{"unknown":1}`, `{"level":"3"}`, `{"contractor":"no"}`, `{"start_date":"2026-02-30"}`,
			`{"start_date":"31/01/2026"}`, `{"region":"apac"}`, `[1]`, `"s"`} {
			if _, err := s.CreateUser(ctx, directory.CreateUserInput{Email: uuid.NewString()[:6] + "@x.test", Attributes: json.RawMessage(bad)}); apperr.KindOf(err) != apperr.KindInvalidArgument {
				t.Errorf("%s: %v", bad, err)
			}
		}
		defs, _ := s.ListAttributeDefinitions(ctx)
		var region uuid.UUID
		for _, d := range defs {
			if d.Name == "region" {
				region = d.ID
			}
		}
		// Requiring an attribute some users lack is refused, then allowed once they have it.
		var level uuid.UUID
		for _, d := range defs {
			if d.Name == "level" {
				level = d.ID
			}
		}
		if _, err := s.CreateUser(ctx, directory.CreateUserInput{Email: "b@x.test"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdateAttributeDefinition(ctx, level, directory.AttributeDefinitionInput{Required: &yes}, 0); apperr.KindOf(err) != apperr.KindConflict {
			t.Fatalf("required while missing: %v", err)
		}
		if err := s.DeleteAttributeDefinition(ctx, region); apperr.KindOf(err) != apperr.KindConflict {
			t.Fatalf("delete while used: %v", err)
		}
		empty := json.RawMessage(`{}`)
		if _, err := s.UpdateUser(ctx, u.ID, directory.UpdateUserInput{Attributes: &empty}, 0); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteAttributeDefinition(ctx, region); err != nil {
			t.Fatal(err)
		}
	})
}

func TestGroupHierarchyHasNoCycles(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		s, ctx := setup(t, db)
		name := func(n string) *string { return &n }
		a, _ := s.CreateGroup(ctx, directory.GroupInput{Name: name("A")})
		b, _ := s.CreateGroup(ctx, directory.GroupInput{Name: name("B"), ParentID: &a.ID})
		c, err := s.CreateGroup(ctx, directory.GroupInput{Name: name("C"), ParentID: &b.ID})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			group, parent uuid.UUID
		}{{a.ID, c.ID}, {a.ID, a.ID}, {b.ID, c.ID}} {
			if _, err := s.UpdateGroup(ctx, tc.group, directory.GroupInput{ParentID: &tc.parent}, 0); apperr.KindOf(err) != apperr.KindInvalidArgument {
				t.Fatalf("cycle accepted: %v", err)
			}
		}
		ghost := uuid.New()
		if _, err := s.CreateGroup(ctx, directory.GroupInput{Name: name("D"), ParentID: &ghost}); apperr.KindOf(err) != apperr.KindInvalidArgument {
			t.Fatalf("unknown parent: %v", err)
		}
		if err := s.DeleteGroup(ctx, b.ID, 0); apperr.KindOf(err) != apperr.KindConflict {
			t.Fatalf("delete with children: %v", err)
		}
		root := uuid.Nil
		if _, err := s.UpdateGroup(ctx, c.ID, directory.GroupInput{ParentID: &root}, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdateGroup(ctx, a.ID, directory.GroupInput{ParentID: &c.ID}, 0); err != nil {
			t.Fatalf("a legal move was refused: %v", err)
		}
		if _, err := s.CreateGroup(ctx, directory.GroupInput{Name: name("A")}); apperr.KindOf(err) != apperr.KindAlreadyExists {
			t.Fatalf("duplicate name: %v", err)
		}
	})
}

func TestListUsersSortsAndPages(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		s, ctx := setup(t, db)
		for i := range 11 {
			un := fmt.Sprintf("user%02d", 10-i)
			if _, err := s.CreateUser(ctx, directory.CreateUserInput{Email: fmt.Sprintf("u%02d@x.test", i), Username: &un,
				DisplayName: fmt.Sprintf("Name %c", 'k'-i)}); err != nil {
				t.Fatal(err)
			}
		}
		for _, sort := range []directory.UserSort{directory.SortCreated, directory.SortEmail, directory.SortUsername, directory.SortDisplayName} {
			for _, desc := range []bool{false, true} {
				var got []string
				var after *directory.UserCursor
				for range 10 {
					page, next, err := s.ListUsers(ctx, directory.ListUsersOptions{Sort: sort, Desc: desc, Limit: 4, After: after})
					if err != nil {
						t.Fatal(err)
					}
					for _, u := range page {
						got = append(got, u.Email)
					}
					if next == nil {
						break
					}
					after = next
				}
				if len(got) != 11 {
					t.Fatalf("%s desc=%v: %d users: %v", sort, desc, len(got), got)
				}
				want := map[directory.UserSort]bool{directory.SortCreated: true, directory.SortEmail: true}[sort] != desc
				ascendingEmails := got[0] < got[10]
				if ascendingEmails != want {
					t.Fatalf("%s desc=%v: order %v", sort, desc, got)
				}
			}
		}
		page, _, err := s.ListUsers(ctx, directory.ListUsersOptions{Query: "USER0"})
		if err != nil || len(page) != 10 {
			t.Fatalf("prefix query: %d %v", len(page), err)
		}
		if _, _, err := s.ListUsers(ctx, directory.ListUsersOptions{Sort: "password_hash"}); apperr.KindOf(err) != apperr.KindInvalidArgument {
			t.Fatalf("bad sort: %v", err)
		}
	})
}

func TestBulkReportsEachRow(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		s, ctx := setup(t, db)
		existing, _ := s.CreateUser(ctx, directory.CreateUserInput{Email: "dup@x.test"})
		name := "Renamed"
		out, err := s.Bulk(ctx, directory.BulkInput{
			Create: []directory.CreateUserInput{{Email: "ok@x.test"}, {Email: "dup@x.test"}, {Email: "not-an-email"}},
			Update: []directory.BulkUpdate{{ID: existing.ID, UpdateUserInput: directory.UpdateUserInput{DisplayName: &name}},
				{ID: uuid.New(), UpdateUserInput: directory.UpdateUserInput{DisplayName: &name}},
				{ID: existing.ID, Version: 1, UpdateUserInput: directory.UpdateUserInput{DisplayName: &name}}},
		}, func(err error) int {
			return map[apperr.Kind]int{apperr.KindAlreadyExists: 409, apperr.KindInvalidArgument: 400,
				apperr.KindNotFound: 404, apperr.KindPreconditionFailed: 412}[apperr.KindOf(err)]
		})
		if err != nil {
			t.Fatal(err)
		}
		var statuses []string
		for _, r := range out.Results {
			statuses = append(statuses, fmt.Sprint(r.Status))
		}
		if strings.Join(statuses, ",") != "201,409,400,200,404,412" || out.Succeeded != 2 || out.Failed != 4 {
			t.Fatalf("results %v (%d ok, %d failed)", statuses, out.Succeeded, out.Failed)
		}
	})
}
