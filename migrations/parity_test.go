package migrations_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

// TestDialectsDescribeOneSchema applies every step in both forms and
// compares what they built: the same tables, each with the same columns
// (name, type class, nullability) and primary key, the same indexes (name,
// uniqueness, columns; the unnamed ones of UNIQUE constraints by their
// columns) and the same foreign keys. CHECK constraints are not compared:
// SQLite keeps them only as text.
func TestDialectsDescribeOneSchema(t *testing.T) {
	ctx := context.Background()
	lite, err := describe(ctx, testdb.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	pg, err := describe(ctx, testdb.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(lite) < 40 {
		t.Fatalf("only %d facts about the SQLite schema", len(lite))
	}
	for _, f := range pg {
		if !slices.Contains(lite, f) {
			t.Errorf("PostgreSQL only: %s", f)
		}
	}
	for _, f := range lite {
		if !slices.Contains(pg, f) {
			t.Errorf("SQLite only:     %s", f)
		}
	}

	// The comparison sees drift: a column, an index and a nullability
	// that one form has and the other not.
	drifted := testdb.SQLite(t)
	if err := drifted.SystemTx(ctx, func(tx *store.Tx) error {
		for _, q := range []string{`ALTER TABLE groups ADD COLUMN drift TEXT`, `CREATE INDEX drift_idx ON users (email)`} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	seen, err := describe(ctx, drifted)
	if err != nil {
		t.Fatal(err)
	}
	var extra []string
	for _, f := range seen {
		if !slices.Contains(pg, f) {
			extra = append(extra, f)
		}
	}
	if len(extra) != 2 {
		t.Fatalf("drift not seen as two facts: %q", extra)
	}
}

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

// typeClass maps a declared column type to what both dialects agree on.
func typeClass(decl string) string {
	d := strings.ToLower(decl)
	switch {
	case strings.Contains(d, "int"):
		return "int"
	case strings.Contains(d, "bool"):
		return "bool"
	case strings.Contains(d, "time"), strings.Contains(d, "date"):
		return "time"
	case strings.Contains(d, "blob"), strings.Contains(d, "bytea"):
		return "bytes"
	case strings.Contains(d, "real"), strings.Contains(d, "double"), strings.Contains(d, "float"), strings.Contains(d, "numeric"):
		return "real"
	}
	return "text" // text, varchar, uuid, json(b)
}

// describe lists facts about a migrated schema, sorted.
func describe(ctx context.Context, db *store.DB) ([]string, error) {
	var facts []string
	add := func(format string, args ...any) { facts = append(facts, fmt.Sprintf(format, args...)) }
	err := db.SystemRead(ctx, func(tx *store.Tx) error {
		query := func(q string, scan func(*rowScanner) error, args ...any) error {
			rows, err := tx.Query(ctx, q, args...)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				if err := scan(&rowScanner{rows.Scan}); err != nil {
					return err
				}
			}
			return rows.Err()
		}
		if db.Flavor() == store.SQLite {
			return describeSQLite(query, add)
		}
		return describePostgres(query, add)
	})
	slices.Sort(facts)
	return slices.Compact(facts), err
}

type rowScanner struct{ scan func(...any) error }

type queryFunc func(q string, scan func(*rowScanner) error, args ...any) error

const migrationsTable = "schema_migrations"

func describeSQLite(query queryFunc, add func(string, ...any)) error {
	var tables []string
	if err := query(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`, func(r *rowScanner) error {
		var n string
		if err := r.scan(&n); err != nil {
			return err
		}
		if n != migrationsTable {
			tables = append(tables, n)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, tbl := range tables {
		add("table %s", tbl)
		var pk []string
		if err := query(`SELECT name, type, "notnull", pk FROM pragma_table_info($1) ORDER BY cid`, func(r *rowScanner) error {
			var name, decl string
			var notnull bool
			var pkPos int
			if err := r.scan(&name, &decl, &notnull, &pkPos); err != nil {
				return err
			}
			if pkPos > 0 {
				notnull = true
				for len(pk) < pkPos {
					pk = append(pk, "")
				}
				pk[pkPos-1] = name
			}
			add("column %s.%s %s notnull=%v", tbl, name, typeClass(decl), notnull)
			return nil
		}, tbl); err != nil {
			return err
		}
		add("primary key %s (%s)", tbl, strings.Join(pk, ","))
		type index struct {
			name, origin string
			unique       bool
			cols         []string
		}
		var idx []*index
		if err := query(`SELECT name, "unique", origin FROM pragma_index_list($1)`, func(r *rowScanner) error {
			i := &index{}
			if err := r.scan(&i.name, &i.unique, &i.origin); err != nil {
				return err
			}
			idx = append(idx, i)
			return nil
		}, tbl); err != nil {
			return err
		}
		for _, i := range idx {
			if i.origin == "pk" {
				continue
			}
			if err := query(`SELECT name FROM pragma_index_info($1) ORDER BY seqno`, func(r *rowScanner) error {
				var c string
				if err := r.scan(&c); err != nil {
					return err
				}
				i.cols = append(i.cols, c)
				return nil
			}, i.name); err != nil {
				return err
			}
			if i.origin == "u" {
				add("unique constraint %s (%s)", tbl, strings.Join(i.cols, ","))
			} else {
				add("index %s on %s (%s) unique=%v", i.name, tbl, strings.Join(i.cols, ","), i.unique)
			}
		}
		fks := map[int]*[3]string{}
		var order []int
		if err := query(`SELECT id, "table", "from" FROM pragma_foreign_key_list($1) ORDER BY id, seq`, func(r *rowScanner) error {
			var id int
			var ref, from string
			if err := r.scan(&id, &ref, &from); err != nil {
				return err
			}
			if fks[id] == nil {
				fks[id] = &[3]string{ref}
				order = append(order, id)
			}
			fks[id][1] += "," + from
			return nil
		}, tbl); err != nil {
			return err
		}
		for _, id := range order {
			add("foreign key %s (%s) references %s", tbl, strings.TrimPrefix(fks[id][1], ","), fks[id][0])
		}
	}
	return nil
}

func describePostgres(query queryFunc, add func(string, ...any)) error {
	if err := query(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`, func(r *rowScanner) error {
		var n string
		if err := r.scan(&n); err != nil {
			return err
		}
		if n != migrationsTable {
			add("table %s", n)
		}
		return nil
	}); err != nil {
		return err
	}
	if err := query(`SELECT c.table_name, c.column_name, c.data_type, c.is_nullable = 'NO' FROM information_schema.columns c
		JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'
		WHERE c.table_schema = 'public'`, func(r *rowScanner) error {
		var tbl, name, decl string
		var notnull bool
		if err := r.scan(&tbl, &name, &decl, &notnull); err != nil {
			return err
		}
		if tbl != migrationsTable {
			add("column %s.%s %s notnull=%v", tbl, name, typeClass(decl), notnull)
		}
		return nil
	}); err != nil {
		return err
	}
	// Indexes with their columns in order; constraint-backed ones are
	// told apart as SQLite tells them (primary key, UNIQUE constraint).
	if err := query(`SELECT i.relname, t.relname, ix.indisunique, ix.indisprimary,
			EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = ix.indexrelid AND c.contype = 'u'),
			(SELECT string_agg(a.attname, ',' ORDER BY k.ord) FROM unnest(ix.indkey) WITH ORDINALITY k(attnum, ord)
				JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum)
		FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid
		JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = 'public'`, func(r *rowScanner) error {
		var name, tbl, cols string
		var unique, primary, constraint bool
		if err := r.scan(&name, &tbl, &unique, &primary, &constraint, &cols); err != nil {
			return err
		}
		switch {
		case tbl == migrationsTable:
		case primary:
			add("primary key %s (%s)", tbl, cols)
		case constraint:
			add("unique constraint %s (%s)", tbl, cols)
		default:
			add("index %s on %s (%s) unique=%v", name, tbl, cols, unique)
		}
		return nil
	}); err != nil {
		return err
	}
	return query(`SELECT c.conrelid::regclass::text, c.confrelid::regclass::text,
			(SELECT string_agg(a.attname, ',' ORDER BY k.ord) FROM unnest(c.conkey) WITH ORDINALITY k(attnum, ord)
				JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum)
		FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE c.contype = 'f' AND n.nspname = 'public'`, func(r *rowScanner) error {
		var tbl, ref, cols string
		if err := r.scan(&tbl, &ref, &cols); err != nil {
			return err
		}
		add("foreign key %s (%s) references %s", tbl, cols, ref)
		return nil
	})
}
