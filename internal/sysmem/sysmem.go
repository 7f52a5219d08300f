// Package sysmem says how much memory this process may use (Total: the
// machine's MemTotal, or the container's cgroup limit when that is lower)
// and how much it uses (Resident: VmRSS). Servers size their limits from
// Total (image size, Go's soft memory limit) so one default fits a 4 GB
// Jetson and a 64 GB workstation; benchmarks report Resident.
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

// Resident is this process's resident memory in bytes (VmRSS).
func Resident() (int64, error) { return kBField("/proc/self/status", "VmRSS") }

// memTotal reads MemTotal from a meminfo file.
func memTotal(path string) (int64, error) { return kBField(path, "MemTotal") }

// kBField reads a "Key:   123 kB" line of a /proc file, in bytes.
func kBField(path, key string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("sysmem: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil || kb <= 0 {
				return 0, fmt.Errorf("sysmem: %s: %s %q, want a number of kB", path, key, strings.TrimSpace(v))
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("sysmem: %s has no %s line", path, key)
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
