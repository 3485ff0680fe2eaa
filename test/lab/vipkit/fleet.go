package vipkit

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/vipkit/vipkit/pkg/clock"
	"github.com/vipkit/vipkit/pkg/fleetview"
	"github.com/vipkit/vipkit/test/lab"
)

// Metrics scrapes node n's fenced (MetricsAddr, on the loopback of the
// node's namespace) and returns the exposition text.
func (v *Lab) Metrics(n *lab.Node) (string, error) {
	var body string
	err := n.Host.NS.Do(func() error {
		// Dialled on this locked thread, so the socket is the node's.
		c, err := net.DialTimeout("tcp", MetricsAddr, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n"); err != nil {
			return err
		}
		b, err := io.ReadAll(c)
		if err != nil {
			return err
		}
		head, rest, ok := strings.Cut(string(b), "\r\n\r\n")
		if !ok || !strings.Contains(strings.SplitN(head, "\r\n", 2)[0], " 200 ") {
			return fmt.Errorf("answer %q", strings.SplitN(head, "\r\n", 2)[0])
		}
		body = rest
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("scrape fenced metrics on %s: %w", n.Name, err)
	}
	return body, nil
}

// ErrNoSample means the exposition has no sample of the metric asked for.
var ErrNoSample = errors.New("no such sample")

// Sample finds one sample in an exposition text: the metric's name with
// its labels exactly as fenced renders them (`name{instance="VI_1"}`).
func Sample(exposition, series string) (float64, error) {
	for _, line := range strings.Split(exposition, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	return 0, fmt.Errorf("%s: %w", series, ErrNoSample)
}

// FleetView is the fleet view node n's fenced recorded, judged now, as
// `vipctl fleet --json` prints it (read from the node's state file,
// without starting a process: cheap enough to poll every few
// milliseconds).
func (v *Lab) FleetView(n *lab.Node) (fleetview.Report, error) {
	s, err := v.ReadFencedState(n)
	if err != nil {
		return fleetview.Report{}, err
	}
	return fleetview.Build(s, clock.Boottime(), ""), nil
}
