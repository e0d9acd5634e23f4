package tune

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// ParseList reads a kernel CPU list ("0-3,6").
func ParseList(s string) ([]int, error) {
	var out []int
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("CPU list %q: %q is not a CPU", s, part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a || b-a > 1<<16 {
				return nil, fmt.Errorf("CPU list %q: %q is not a range", s, part)
			}
		}
		for c := a; c <= b; c++ {
			out = append(out, c)
		}
	}
	return out, nil
}

// FormatList writes CPUs as a kernel CPU list.
func FormatList(cpus []int) string {
	var parts []string
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, strconv.Itoa(cpus[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", cpus[i], cpus[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// hasCPU reports whether a hex CPU mask ("ff,ffffffff") has cpu's bit.
func hasCPU(mask string, cpu int) bool {
	v, ok := new(big.Int).SetString(strings.ReplaceAll(mask, ",", ""), 16)
	return ok && v.Bit(cpu) == 1
}

// maskOf writes CPUs as a hex mask.
func maskOf(cpus []int) string {
	v := new(big.Int)
	for _, c := range cpus {
		v.SetBit(v, c, 1)
	}
	return v.Text(16)
}

// bootValue returns name's value on the kernel command line.
func bootValue(cmdline, name string) string {
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, name+"="); ok {
			return v
		}
	}
	return ""
}
