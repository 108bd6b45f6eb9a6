package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/xavyo/xavyo/app"
)

func (c *cli) serveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the admin plane, the agent plane and the background workers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.load()
			if err != nil {
				return err
			}
			a, err := app.New(cmd.Context(), app.Config{Config: cfg, Logger: c.logger(cfg), Out: c.stdout, Version: version})
			if err != nil {
				return err
			}
			return a.Run(cmd.Context())
		},
	}
}

func (c *cli) migrateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply pending schema migrations and exit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.load()
			if err != nil {
				return err
			}
			n, err := app.Migrate(cmd.Context(), cfg, c.logger(cfg))
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(c.stdout, "applied %d migration step(s)\n", n)
			return err
		},
	}
}
