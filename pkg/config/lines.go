package config

import (
	"fmt"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// keyLines maps each key path ("cluster[0].ttl", "announce.count") to the
// line it is written on, so that errors found after decoding can point at
// the line too. Array-of-tables entries are indexed in order of appearance.
func keyLines(data []byte) map[string]int {
	lines := map[string]int{}
	var p unstable.Parser
	p.Reset(data)
	counts := map[string]int{}
	table := ""
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			name := joinKey(e.Key())
			if e.Kind == unstable.ArrayTable {
				table = fmt.Sprintf("%s[%d]", name, counts[name])
				counts[name]++
			} else {
				table = arrayIndexed(name, counts)
			}
			lines[table] = lineOf(&p, e.Key())
		case unstable.KeyValue:
			k := joinKey(e.Key())
			if table != "" {
				k = table + "." + k
			}
			lines[k] = lineOf(&p, e.Key())
		}
	}
	return lines
}

// arrayIndexed rewrites "instance.announce" to "instance[2].announce" when it
// follows the third [[instance]].
func arrayIndexed(name string, counts map[string]int) string {
	for arr, n := range counts {
		if strings.HasPrefix(name, arr+".") {
			return fmt.Sprintf("%s[%d]%s", arr, n-1, strings.TrimPrefix(name, arr))
		}
	}
	return name
}

func joinKey(it unstable.Iterator) string {
	var parts []string
	for it.Next() {
		parts = append(parts, string(it.Node().Data))
	}
	return strings.Join(parts, ".")
}

func lineOf(p *unstable.Parser, it unstable.Iterator) int {
	for it.Next() {
		n := it.Node()
		if n.Raw.Length > 0 {
			return p.Shape(n.Raw).Start.Line
		}
	}
	return 0
}
