// Command xavyo is the one binary: serve both planes, migrate the schema,
// and administer the platform from the command line.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/xavyo/xavyo/internal/config"
)

// Set at build time with -ldflags "-X main.version=…".
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot(os.Stdout, os.Stderr, os.Environ()).ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "xavyo:", err)
		os.Exit(1)
	}
}

type cli struct {
	configPath string
	environ    []string
	stdout     io.Writer
	stderr     io.Writer
}

func (c *cli) load() (*config.Config, error) { return config.Load(c.configPath, c.environ) }

func (c *cli) logger(cfg *config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(c.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(c.stderr, opts))
}

func newRoot(stdout, stderr io.Writer, environ []string) *cobra.Command {
	c := &cli{stdout: stdout, stderr: stderr, environ: environ}
	root := &cobra.Command{
		Use:           "xavyo",
		Short:         "xavyo: the identity platform and agent-protocol gateway for AI agents, machines and people",
		Version:       versionString(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("xavyo {{.Version}}\n")
	// Back-quoted words in a flag's usage become its value's name: "file".
	root.PersistentFlags().StringVar(&c.configPath, "config", "", "YAML configuration `file` (every key can also be set by environment: xavyo config env lists them)")
	root.AddCommand(c.serveCmd(), c.migrateCmd(), c.versionCmd(), c.configCmd(), c.auditCmd(), c.bootstrapCmd())
	return root
}

// versionString is the version, with the commit when it says more.
func versionString() string {
	if commit == "" || commit == "unknown" || strings.HasPrefix(version, commit) {
		return version
	}
	return version + " (" + commit + ")"
}

func (c *cli) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(c.stdout, "xavyo %s\n", versionString())
			return err
		},
	}
}

func (c *cli) configCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Inspect the configuration"}
	cmd.AddCommand(&cobra.Command{
		Use:   "env",
		Short: "List every environment variable and the configuration key it sets",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			for _, v := range config.EnvVars() {
				if _, err := fmt.Fprintf(c.stdout, "%-32s %-28s %s\n", v.Name, v.Key, v.Desc); err != nil {
					return err
				}
			}
			return nil
		},
	})
	return cmd
}
