package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"

	"github.com/xavyo/xavyo/internal/config"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/migrations"
)

// storeURL is the URL the application connects with.
func storeURL(cfg *config.Config) string {
	if cfg.IsPostgres() {
		return cfg.Database.URL
	}
	return "sqlite:" + cfg.SQLitePath()
}

// Migrate applies pending steps. On PostgreSQL it connects as
// database.migrate_url (the schema owner) when set, and grants the
// application role of database.url its rights — creating that role when
// missing, which a development database allows.
func Migrate(ctx context.Context, cfg *config.Config, log *slog.Logger) (int, error) {
	if !cfg.IsPostgres() {
		db, err := store.Open(ctx, store.Config{URL: storeURL(cfg), Logger: log})
		if err != nil {
			return 0, err
		}
		defer db.Close()
		return store.Migrate(ctx, db, migrations.SQLite(), store.MigrateOptions{})
	}
	owner := cfg.Database.MigrateURL
	opts := store.MigrateOptions{}
	if owner == "" {
		owner = cfg.Database.URL
	} else {
		u, err := url.Parse(cfg.Database.URL)
		if err != nil || u.User == nil {
			return 0, fmt.Errorf("database.url must name the application role")
		}
		opts.AppRole, opts.CreateAppRole = u.User.Username(), true
	}
	db, err := store.Open(ctx, store.Config{URL: owner, MaxConns: 2, Logger: log})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	return store.Migrate(ctx, db, migrations.Postgres(), opts)
}

// schemaSteps is the migration step this binary expects.
func schemaSteps(cfg *config.Config) (int, error) {
	fsys := migrations.SQLite()
	if cfg.IsPostgres() {
		fsys = migrations.Postgres()
	}
	steps, err := store.Steps(fsys)
	return len(steps), err
}

// OpenStore opens the application's store after migrating it.
func OpenStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (*store.DB, error) {
	n, err := Migrate(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		log.Info("schema migrated", "steps_applied", n)
	}
	db, err := store.Open(ctx, store.Config{URL: storeURL(cfg), MaxConns: cfg.Database.MaxConns, Logger: log})
	if err != nil {
		return nil, err
	}
	if role, err := db.Role(ctx); err == nil && (role.Super || role.BypassRLS) {
		log.Warn("the application connects as a role that bypasses row-level security; "+
			"set database.url to an ordinary role and database.migrate_url to the schema owner", "role", role.Name)
	}
	return db, nil
}
