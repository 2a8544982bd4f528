package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procSample is what /proc tells about one process at one instant.
type procSample struct {
	CPUTicks  uint64 // utime + stime, in clock ticks
	UserTicks uint64 // utime alone
	RSSKB     int64  // VmRSS
}

// errProcFormat is returned for /proc text that does not parse.
var errProcFormat = errors.New("unexpected /proc format")

// readProc samples process pid (its /proc/<pid>/stat and status).
func readProc(pid int) (procSample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procSample{}, err
	}
	utime, stime, err := parseStatCPU(stat)
	if err != nil {
		return procSample{}, err
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procSample{}, err
	}
	rss, err := parseStatusRSS(status)
	if err != nil {
		return procSample{}, err
	}
	return procSample{CPUTicks: utime + stime, UserTicks: utime, RSSKB: rss}, nil
}

// parseStatCPU returns utime and stime (fields 14 and 15) of a
// /proc/<pid>/stat line. The command name (field 2) is in parentheses and
// may hold spaces and parentheses itself, so fields are counted from the
// last ')'.
func parseStatCPU(stat []byte) (utime, stime uint64, err error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("stat: no ')': %w", errProcFormat)
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("stat: %d fields after the name: %w", len(f), errProcFormat)
	}
	utime, err1 := strconv.ParseUint(f[14-3], 10, 64)
	stime, err2 := strconv.ParseUint(f[15-3], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("stat: utime %q stime %q: %w", f[11], f[12], errProcFormat)
	}
	return utime, stime, nil
}

// parseStatusRSS returns VmRSS, in kB, from /proc/<pid>/status.
func parseStatusRSS(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("status: VmRSS %q: %w", rest, errProcFormat)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("status: VmRSS %q: %w", rest, errProcFormat)
		}
		return n, nil
	}
	return 0, fmt.Errorf("status: no VmRSS line: %w", errProcFormat)
}

// clockTicks returns the kernel's clock ticks per second (getconf CLK_TCK),
// or 100, Linux's value nearly everywhere, when getconf is missing.
func clockTicks() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 100
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil || n <= 0 {
		return 100
	}
	return n
}

// diskUsage returns the bytes allocated on disk under dir (what du counts).
func diskUsage(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // files come and go while it runs
				return nil
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		} else {
			total += info.Size()
		}
		return nil
	})
	return total, err
}

// pidSelf is this process's id, for sampling the bench's own CPU.
func pidSelf() int { return os.Getpid() }

// cpuTimes is the machine's CPU time from /proc/stat, in clock ticks.
type cpuTimes struct {
	Busy, Total uint64
	// User is user-mode time (user and nice). Other processes' interference
	// is judged on it: kernel time also holds work done for webhookd
	// itself (writeback, loopback networking), which must not count.
	User uint64
}

// readCPUTimes reads the machine-wide line of /proc/stat.
func readCPUTimes() (cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	return parseCPUTimes(b)
}

// parseCPUTimes reads the first "cpu" line of /proc/stat: user nice system
// idle iowait irq softirq steal ...; idle and iowait are not busy, and guest
// time is already inside user.
func parseCPUTimes(stat []byte) (cpuTimes, error) {
	line, _, _ := bytes.Cut(stat, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return cpuTimes{}, fmt.Errorf("/proc/stat: first line %q: %w", line, errProcFormat)
	}
	var t cpuTimes
	for i, s := range f[1:9] {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("/proc/stat: %q: %w", s, errProcFormat)
		}
		t.Total += n
		if i != 3 && i != 4 { // idle, iowait
			t.Busy += n
		}
		if i < 2 { // user, nice
			t.User += n
		}
	}
	return t, nil
}

// otherCores is the user-mode CPU, in cores, that the machine spent over
// wall outside webhookd (w0→w1) and the bench (s0→s1). The counters come
// from different files sampled a moment apart, so the difference can dip
// below zero; it is never reported so.
func otherCores(m0, m1 cpuTimes, w0, w1, s0, s1 procSample, ticks int64, wall time.Duration) float64 {
	if wall <= 0 || ticks <= 0 {
		return 0
	}
	d := float64(m1.User-m0.User) - float64(w1.UserTicks-w0.UserTicks) - float64(s1.UserTicks-s0.UserTicks)
	return max(0, d/float64(ticks)/wall.Seconds())
}
