package rest_test

import (
	"os"
	"testing"

	"github.com/xavyo/xavyo/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

type userJSON struct {
	ID string `json:"id"`
}
