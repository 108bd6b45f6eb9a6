package main

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/xavyo/xavyo/app"
	"github.com/xavyo/xavyo/identity/bootstrap"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/store"
)

// withStore runs fn with a migrated store and a running audit sequencer.
func (c *cli) withStore(ctx context.Context, fn func(*store.DB, *audit.Sequencer) error) error {
	cfg, err := c.load()
	if err != nil {
		return err
	}
	log := c.logger(cfg)
	db, err := app.OpenStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()
	seq, err := audit.New(audit.Config{DB: db, Logger: log})
	if err != nil {
		return err
	}
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { _ = seq.Run(actx); close(done) }()
	defer func() { cancel(); <-done }() // drains queued audit records
	return fn(db, seq)
}

func (c *cli) auditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Work with the audit log"}
	var tenantRef string
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Verify a tenant's audit hash chain; name the first bad row",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withStore(cmd.Context(), func(db *store.DB, _ *audit.Sequencer) error {
				tid, err := resolveTenant(cmd.Context(), db, tenantRef)
				if err != nil {
					return err
				}
				rep, err := audit.Verify(cmd.Context(), db, tid)
				if err != nil {
					return err
				}
				if rep.OK() {
					_, err := fmt.Fprintf(c.stdout, "audit chain of %s verifies: %d records, head at %d\n", tenantRef, rep.Rows, rep.HeadSeq)
					return err
				}
				fmt.Fprintf(c.stdout, "audit chain of %s is BROKEN at seq %d (record %s): %s\n", tenantRef, rep.First.Seq, rep.First.ID, rep.First.Reason)
				return fmt.Errorf("audit chain verification failed")
			})
		},
	}
	verify.Flags().StringVar(&tenantRef, "tenant", "", "tenant slug or UUID, or \"platform\" for the platform's own chain")
	_ = verify.MarkFlagRequired("tenant")
	cmd.AddCommand(verify)
	return cmd
}

// resolveTenant finds a tenant by slug or UUID, deleted ones included
// (their chains are kept for the retention period).
func resolveTenant(ctx context.Context, db *store.DB, ref string) (uuid.UUID, error) {
	if ref == "platform" {
		return audit.Platform, nil
	}
	id, err := tenant.IDOf(ctx, db, ref)
	if apperr.KindOf(err) == apperr.KindNotFound {
		return uuid.Nil, fmt.Errorf("no tenant %q", ref)
	}
	return id, err
}

func (c *cli) bootstrapCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "bootstrap", Short: "Manage the break-glass bootstrap token"}
	cmd.AddCommand(&cobra.Command{
		Use:   "revoke",
		Short: "Revoke the bootstrap token (it stays revoked until `bootstrap issue`)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withStore(cmd.Context(), func(db *store.DB, seq *audit.Sequencer) error {
				svc := &bootstrap.Service{DB: db, Audit: seq}
				if err := svc.Revoke(cmd.Context()); err != nil {
					return err
				}
				_, err := fmt.Fprintln(c.stdout, "bootstrap token revoked")
				return err
			})
		},
	}, &cobra.Command{
		Use:   "issue",
		Short: "Issue a new bootstrap token, replacing any other, and print it once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withStore(cmd.Context(), func(db *store.DB, seq *audit.Sequencer) error {
				svc := &bootstrap.Service{DB: db, Audit: seq}
				token, err := svc.Issue(cmd.Context())
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(c.stdout, token)
				return err
			})
		},
	})
	return cmd
}
