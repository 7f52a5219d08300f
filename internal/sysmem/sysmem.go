// Package sysmem says how much memory this process may use: the machine's
// MemTotal, or the container's cgroup limit when that is lower. Servers size
// their limits from it (image size, Go's soft memory limit) so one default
// fits a 4 GB Jetson and a 64 GB workstation.
//
// Errors name the file that could not be read.
package sysmem

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// cgroupFiles hold a memory limit in bytes: cgroup v2's memory.max ("max"
// for none) and cgroup v1's memory.limit_in_bytes (a huge number for none).
var cgroupFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// Total returns the memory available to this process in bytes.
func Total() (int64, error) {
	total, err := memTotal("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, f := range cgroupFiles {
		if limit, ok := cgroupLimit(f); ok && limit < total {
			total = limit
		}
	}
	return total, nil
}

// memTotal reads MemTotal (kB) from a meminfo file.
func memTotal(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("sysmem: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil || kb <= 0 {
				return 0, fmt.Errorf("sysmem: %s: MemTotal %q, want a number of kB", path, strings.TrimSpace(v))
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("sysmem: %s has no MemTotal line", path)
}

// cgroupLimit reads one cgroup limit file; ok is false when the file is
// missing or says there is no limit.
func cgroupLimit(path string) (int64, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil || v <= 0 || v >= 1<<60 {
		return 0, false // "max", or v1's page-rounded MaxInt64
	}
	return v, true
}
