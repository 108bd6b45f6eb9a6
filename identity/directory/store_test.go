package directory_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

var errLogDown = errors.New("the audit log refused the write")

// TestFailingWriteChangesNothing: every write of the directory's stores
// (users, passwords, groups, memberships, attribute definitions) rolls
// back whole when the change's last step fails, on both backends.
func TestFailingWriteChangesNothing(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		good, ctx := setup(t, db)
		bad := *good
		bad.Audit = audit.Failing(errLogDown)
		refused := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, errLogDown) {
				t.Fatalf("%s: %v", what, err)
			}
		}
		pw := "Correct-horse-battery-9"
		_, err := bad.CreateUser(ctx, directory.CreateUserInput{Email: "ghost@d.test", Password: &pw})
		refused("create user", err)
		if users, _, err := good.ListUsers(ctx, directory.ListUsersOptions{Email: "ghost@d.test"}); err != nil || len(users) != 0 {
			t.Fatalf("a user whose creation failed exists: %v %d", err, len(users))
		}
		u, err := good.CreateUser(ctx, directory.CreateUserInput{Email: "ada@d.test", Password: &pw, GivenName: "Ada"})
		if err != nil {
			t.Fatal(err)
		}
		g, err := good.CreateGroup(ctx, directory.GroupInput{Name: ptr("staff")})
		if err != nil {
			t.Fatal(err)
		}
		_, err = bad.CreateGroup(ctx, directory.GroupInput{Name: ptr("ghosts")})
		refused("create group", err)
		attr, err := good.CreateAttributeDefinition(ctx, directory.AttributeDefinitionInput{Name: "cost_center", Type: "string"})
		if err != nil {
			t.Fatal(err)
		}

		disabled := directory.StatusDisabled
		_, err = bad.UpdateUser(ctx, u.ID, directory.UpdateUserInput{GivenName: ptr("Eve"), Status: &disabled}, 0)
		refused("update user", err)
		_, err = bad.SetPassword(ctx, u.ID, "Another-horse-battery-7", true)
		refused("set password", err)
		_, _, err = bad.AddMember(ctx, g.ID, u.ID)
		refused("add member", err)
		_, err = bad.UpdateGroup(ctx, g.ID, directory.GroupInput{Name: ptr("renamed")}, 0)
		refused("update group", err)
		_, err = bad.UpdateAttributeDefinition(ctx, attr.ID, directory.AttributeDefinitionInput{Description: ptr("changed")}, 0)
		refused("update attribute", err)
		refused("delete attribute", bad.DeleteAttributeDefinition(ctx, attr.ID))
		refused("delete group", bad.DeleteGroup(ctx, g.ID, 0))
		refused("delete user", bad.DeleteUser(ctx, u.ID, 0))

		after, err := good.GetUser(ctx, u.ID)
		if err != nil {
			t.Fatalf("the user after failed changes: %v", err)
		}
		if after.GivenName != "Ada" || after.Status != directory.StatusActive || after.Version != u.Version || after.MustChangePassword {
			t.Fatalf("failed changes left traces on the user: %+v", after)
		}
		groups, err := good.GroupsOfUser(ctx, u.ID)
		if err != nil || len(groups) != 0 {
			t.Fatalf("a failed membership exists: %v %d", err, len(groups))
		}
		if got, err := good.GetGroup(ctx, g.ID); err != nil || got.Name != "staff" || got.Version != g.Version {
			t.Fatalf("the group after failed changes: %v %+v", err, got)
		}
		defs, err := good.ListAttributeDefinitions(ctx)
		if err != nil || len(defs) != 1 || defs[0].Description != "" || defs[0].Version != attr.Version {
			t.Fatalf("the attribute after failed changes: %v %s", err, mustJSON(defs))
		}
		// The old password still works and the new one does not: the
		// failed change wrote no hash and no history.
		var ok bool
		err = db.InTenantRead(ctx, func(tx *store.Tx) error {
			cur, err := good.FindUserTx(ctx, tx, u.ID)
			if err != nil || cur == nil {
				return errors.Join(err, errors.New("no user"))
			}
			ok, _, err = good.Hasher.Verify(ctx, pw, cur.PasswordHash())
			return err
		})
		if err != nil || !ok {
			t.Fatalf("the password after a failed change: %v %v", err, ok)
		}
		if _, err := good.GetUser(ctx, uuid.New()); err == nil {
			t.Fatal("an unknown user was found")
		}
	})
}

func ptr[T any](v T) *T { return &v }

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
