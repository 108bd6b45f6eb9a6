package app

import (
	"io"
	"log/slog"
	"testing"

	"github.com/xavyo/xavyo/internal/config"
)

// TestNewRefusesAnIncompleteConfig: every collaborator is required;
// nothing is opened or bound when one is missing.
func TestNewRefusesAnIncompleteConfig(t *testing.T) {
	cfg, err := config.Load("", []string{"XAVYO_DATA_DIR=" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	full := Config{Config: cfg, Logger: log, Out: io.Discard, Version: "test"}
	for name, mutate := range map[string]func(*Config){
		"no configuration": func(c *Config) { c.Config = nil },
		"no logger":        func(c *Config) { c.Logger = nil },
		"no output":        func(c *Config) { c.Out = nil },
		"no version":       func(c *Config) { c.Version = "" },
	} {
		c := full
		mutate(&c)
		if a, err := New(t.Context(), c); err == nil {
			a.Close()
			t.Errorf("%s: built", name)
		}
	}
}
