package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// Exit codes of `fenced configured`, chosen for systemd's ExecCondition=:
// 1..254 skip the start quietly (the unit stays inactive, not failed),
// 255 fails it.
const (
	exitNotConfigured = 1
	exitBadConfig     = 255
)

func configuredCommand() *cli.Command {
	return &cli.Command{
		Name:  "configured",
		Usage: "exit 0 when the configuration names an etcd cluster (systemd ExecCondition)",
		Description: `The package enables fenced.service on install, but the shipped /etc/vipkit/vipkit.toml
names no [[cluster]]: until one is configured the unit's ExecCondition (this command) exits 1
and systemd skips the start without marking the unit failed. A configuration that does not
load exits 255, so the start fails and says why.`,
		Flags: []cli.Flag{configFlag, stateFlag},
		Action: func(c *cli.Context) error {
			cfg, err := loadRunConfig(c)
			if err != nil {
				fmt.Fprintf(c.App.ErrWriter, "fenced: %s\n", strings.ReplaceAll(strings.TrimPrefix(err.Error(), errUsage.Error()+": "), "\n", "; "))
				return silentError{exitBadConfig}
			}
			if len(cfg.Clusters) == 0 {
				fmt.Fprintf(c.App.ErrWriter, "fenced: not configured: %s names no [[cluster]]\n", cfg.Path)
				return silentError{exitNotConfigured}
			}
			return nil
		},
	}
}
