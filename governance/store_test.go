package governance_test

import (
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/governance"
	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

// TestFailingWriteChangesNothing: the writes of governance's stores (an
// application, an entitlement, a role with its links, an assignment, a
// rule; their updates and deletions) roll back whole when the change's
// last step fails, on both backends.
func TestFailingWriteChangesNothing(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		errLogDown := errors.New("the audit log refused the write")
		bad := *f.gov
		bad.Audit = audit.Failing(errLogDown)
		refused := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, errLogDown) {
				t.Fatalf("%s: %v", what, err)
			}
		}
		_, err := bad.CreateApplication(f.ctx, governance.ApplicationInput{Key: "ghost", Name: ptr("Ghost"), Type: "generic"})
		refused("create application", err)
		if apps, _, err := f.gov.ListApplications(f.ctx, "", 10, ""); err != nil || len(apps) != 0 {
			t.Fatalf("an application whose creation failed exists: %v %d", err, len(apps))
		}
		app, err := f.gov.CreateApplication(f.ctx, governance.ApplicationInput{Key: "erp", Name: ptr("ERP"), Type: "generic"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = bad.CreateEntitlement(f.ctx, app.ID, governance.EntitlementInput{Key: "ghost", Name: ptr("Ghost")})
		refused("create entitlement", err)
		ent, err := f.gov.CreateEntitlement(f.ctx, app.ID, governance.EntitlementInput{Key: "pay", Name: ptr("Pay")})
		if err != nil {
			t.Fatal(err)
		}
		_, err = bad.CreateRole(f.ctx, governance.RoleInput{Key: "ghost", Name: ptr("Ghost"), EntitlementIDs: ptr(ents(ent.ID))})
		refused("create role", err)
		if roles, _, err := f.gov.ListRoles(f.ctx, 10, ""); err != nil || len(roles) != 0 {
			t.Fatalf("a role whose creation failed exists: %v %d", err, len(roles))
		}
		role, err := f.gov.CreateRole(f.ctx, governance.RoleInput{Key: "clerk", Name: ptr("Clerk"), EntitlementIDs: ptr(ents(ent.ID))})
		if err != nil {
			t.Fatal(err)
		}
		_, err = bad.UpdateRole(f.ctx, role.ID, governance.RoleInput{Name: ptr("Renamed"), EntitlementIDs: ptr(ents())}, 0)
		refused("update role", err)
		if got, err := f.gov.GetRole(f.ctx, role.ID); err != nil || got.Name != "Clerk" || len(got.Entitlement) != 1 || got.Version != role.Version {
			t.Fatalf("the role after a failed update: %v %+v", err, got)
		}

		ada, err := f.dir.CreateUser(f.ctx, directory.CreateUserInput{Email: "ada@x.test"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = bad.CreateAssignment(f.ctx, governance.AssignmentInput{SubjectType: "user", SubjectID: ada.ID, TargetType: "role", TargetID: role.ID})
		refused("create assignment", err)
		if list, _, err := f.gov.ListAssignments(f.ctx, governance.ListAssignmentsOptions{Limit: 10}); err != nil || len(list) != 0 {
			t.Fatalf("an assignment whose creation failed exists: %v %d", err, len(list))
		}
		a, err := f.gov.CreateAssignment(f.ctx, governance.AssignmentInput{SubjectType: "user", SubjectID: ada.ID, TargetType: "role", TargetID: role.ID})
		if err != nil {
			t.Fatal(err)
		}
		refused("delete assignment", bad.DeleteAssignment(f.ctx, a.ID))
		refused("delete application", bad.DeleteApplication(f.ctx, app.ID))
		if list, _, err := f.gov.ListAssignments(f.ctx, governance.ListAssignmentsOptions{Limit: 10}); err != nil || len(list) != 1 {
			t.Fatalf("failed deletions removed assignments: %v %d", err, len(list))
		}
		if _, err := f.gov.GetEntitlement(f.ctx, ent.ID); err != nil {
			t.Fatalf("a failed application deletion removed its entitlement: %v", err)
		}
	})
}

func ents(ids ...uuid.UUID) []uuid.UUID { return append([]uuid.UUID{}, ids...) }
