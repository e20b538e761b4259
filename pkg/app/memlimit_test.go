package app

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCgroupMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name, file, content string
		want                int64
		ok, err             bool
	}{
		{"v2 limit", "memory.max", "536870912\n", 536870912, true, false},
		{"v2 none", "memory.max", "max\n", 0, false, false},
		{"v1 limit", "memory/memory.limit_in_bytes", "268435456\n", 268435456, true, false},
		{"v1 none", "memory/memory.limit_in_bytes", "9223372036854771712\n", 0, false, false},
		{"garbage", "memory.max", "lots\n", 0, false, true},
		{"no cgroup", "", "", 0, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if tc.file != "" {
				path := filepath.Join(root, tc.file)
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, ok, err := cgroupMemoryLimit(root)
			if got != tc.want || ok != tc.ok || (err != nil) != tc.err {
				t.Errorf("cgroupMemoryLimit = %d, %v, %v; want %d, %v, error %v", got, ok, err, tc.want, tc.ok, tc.err)
			}
		})
	}
}
