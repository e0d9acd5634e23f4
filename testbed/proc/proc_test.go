package proc

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"
)

func TestAliveAndKill(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep binary")
	}
	pid := cmd.Process.Pid
	if !Alive(pid) {
		t.Fatal("a running process is not alive")
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }() // reap, so it does not stay a zombie
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := Kill(ctx, pid, "sleep"); err != nil {
		t.Fatal(err)
	}
	<-done
	if Alive(pid) {
		t.Fatal("a killed process is alive")
	}
	if err := Kill(ctx, pid, "sleep"); err != nil {
		t.Fatalf("killing a process that is gone: %v", err)
	}
}

// TestCPUTime compares the /proc reading of this process with getrusage
// after it has burnt some CPU.
func TestCPUTime(t *testing.T) {
	used := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	// Spin until this process has used 300 ms more CPU (on a loaded
	// machine that takes longer than 300 ms).
	x, until := 0, used()+300*time.Millisecond
	for used() < until {
		x++
	}
	got, err := CPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	want := used()
	if got < 250*time.Millisecond || got > want+20*time.Millisecond || got < want-50*time.Millisecond {
		t.Fatalf("CPUTime %v, getrusage %v (after %d spins)", got, want, x)
	}
	if _, err := CPUTime(1 << 30); err == nil {
		t.Fatal("no error for a pid that does not exist")
	}
}

// TestPeakRSS checks the reading against memory this process touched.
func TestPeakRSS(t *testing.T) {
	buf := make([]byte, 64<<20)
	for i := range buf {
		if i%4096 == 0 {
			buf[i] = 1
		}
	}
	got, err := PeakRSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if got < 64<<20 || got > 4<<30 {
		t.Fatalf("peak RSS %d B after touching 64 MiB", got)
	}
	runtime.KeepAlive(buf)
	if _, err := PeakRSS(1 << 30); err == nil {
		t.Fatal("no error for a pid that does not exist")
	}
}
