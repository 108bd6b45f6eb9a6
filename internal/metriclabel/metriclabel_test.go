package metriclabel_test

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/metriclabel"
)

func TestValuesAreBounded(t *testing.T) {
	long := strings.Repeat("é", 100)
	v := metriclabel.Value(long)
	if len(v) > metriclabel.MaxLen || !utf8.ValidString(v) || !strings.HasPrefix(long, v) {
		t.Fatalf("cut to %d bytes, valid %v", len(v), utf8.ValidString(v))
	}
	tid := uuid.New()
	off := metriclabel.Set{}
	if got := off.Values(tid, "a", long); len(got) != 2 || got[1] != v {
		t.Fatalf("without tenants: %v", got)
	}
	if !slices.Equal(off.Names("server"), []string{"server"}) {
		t.Fatal("names without tenants")
	}
	on := metriclabel.Set{Tenant: true}
	if got := on.Values(tid, "a"); !slices.Equal(got, []string{tid.String(), "a"}) {
		t.Fatalf("with tenants: %v", got)
	}
	if !slices.Equal(on.Names("server"), []string{"tenant", "server"}) {
		t.Fatal("names with tenants")
	}
}
