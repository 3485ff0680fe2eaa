package keepalived

import (
	"fmt"
	"os"
	"path/filepath"
)

// LoadConf reads keepalived.conf and the files it includes. Include
// patterns are globbed in order; like keepalived's plain include, a pattern
// that matches nothing is skipped, while a file that cannot be read is an
// error. opts are ParseConf's.
func LoadConf(path string, opts ...Options) (*Conf, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load keepalived config: %w", err)
	}
	return ParseConf(path, data, func(pattern string) ([]File, error) {
		names, err := filepath.Glob(pattern)
		if err != nil {
			return nil, fmt.Errorf("glob %q: %w", pattern, err)
		}
		files := make([]File, 0, len(names))
		for _, n := range names {
			if fi, err := os.Stat(n); err == nil && fi.IsDir() {
				continue
			}
			b, err := os.ReadFile(n)
			if err != nil {
				return nil, err
			}
			files = append(files, File{Name: n, Data: b})
		}
		return files, nil
	}, opts...)
}
