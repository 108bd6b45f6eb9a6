// Package migrations holds the schema steps, one numbered file per step in
// two forms: postgres/ (with row-level security) and sqlite/ (the same
// tables, types adapted). A landed file is never edited; add a new step.
package migrations

import (
	"embed"
	"io/fs"
)

//go:embed postgres/*.sql sqlite/*.sql
var files embed.FS

// Postgres returns the PostgreSQL steps.
func Postgres() fs.FS { sub, _ := fs.Sub(files, "postgres"); return sub }

// SQLite returns the SQLite steps.
func SQLite() fs.FS { sub, _ := fs.Sub(files, "sqlite"); return sub }
