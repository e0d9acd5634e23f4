package rtsched

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseStat(t *testing.T) {
	// A real line's shape: the name holds a space and a parenthesis.
	fields := make([]string, 52)
	for i := range fields {
		fields[i] = "0"
	}
	fields[0], fields[1], fields[2] = "4242", "(bad) name)", "S"
	fields[39], fields[40] = "7", "2" // rt_priority, policy (fields 40, 41)
	got, err := parseStat(strings.Join(fields, " "))
	if err != nil || got != (Sched{Policy: unix.SCHED_RR, Priority: 7}) {
		t.Fatalf("parseStat = %+v, %v; want RR at 7", got, err)
	}
	for _, bad := range []string{"4242 no-parens S 1", "4242 (x) S 1 2 3", strings.Join(fields[:30], " ")} {
		if _, err := parseStat(bad); err == nil {
			t.Errorf("parseStat(%.30q…) took a short or broken line", bad)
		}
	}
}

func TestApplyRejectsPriorities(t *testing.T) {
	for _, p := range []int{0, -1, 100} {
		if _, err := Apply(p); err == nil || !strings.Contains(err.Error(), "must be 1 to 99") {
			t.Errorf("Apply(%d) = %v; want the range named", p, err)
		}
	}
}

// TestApplyEveryThread runs Apply in a child process (it changes the whole
// process, which must not leak into other tests) and checks from here,
// through /proc, that every thread of the child is SCHED_RR — those it had
// and one it made afterwards.
func TestApplyEveryThread(t *testing.T) {
	if os.Getenv("RTSCHED_CHILD") == "1" {
		child()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestApplyEveryThread$")
	cmd.Env = append(os.Environ(), "RTSCHED_CHILD=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	var line string
	if _, err := fmt.Fscanln(out, &line); err != nil {
		t.Fatalf("reading the child's answer: %v", err)
	}
	if strings.HasPrefix(line, "EPERM") {
		t.Skip("SCHED_RR not permitted here (needs root or CAP_SYS_NICE)")
	}
	if line != "ready" {
		t.Fatalf("child: %s", line)
	}
	tids, err := Threads(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(tids) < 3 {
		t.Fatalf("child has %d threads; the test needs several", len(tids))
	}
	for _, tid := range tids {
		s, err := Of(cmd.Process.Pid, tid)
		if err != nil {
			t.Fatal(err)
		}
		if s != (Sched{Policy: unix.SCHED_RR, Priority: 3}) {
			t.Errorf("thread %d: policy %d priority %d; want SCHED_RR (%d) at 3", tid, s.Policy, s.Priority, unix.SCHED_RR)
		}
	}
}

// child makes threads, applies SCHED_RR, makes one more thread, says
// "ready" and keeps them all alive until its stdin closes.
func child() {
	var wg sync.WaitGroup
	release := make(chan struct{})
	hold := func() {
		wg.Add(1)
		go func() {
			runtime.LockOSThread() // a thread of its own, kept
			wg.Done()
			<-release
		}()
		wg.Wait()
	}
	hold()
	hold()
	if _, err := Apply(3); err != nil {
		if errors.Is(err, unix.EPERM) {
			fmt.Println("EPERM")
		} else {
			fmt.Println(strings.ReplaceAll(err.Error(), " ", "_"))
		}
		os.Exit(0)
	}
	hold() // made after Apply: inherits
	fmt.Println("ready")
	var b [1]byte
	os.Stdin.Read(b[:])
	close(release)
	os.Exit(0)
}

// Permitted must not leave the calling process changed, not even for the
// moment its thread takes to exit.
func TestPermittedChangesNothing(t *testing.T) {
	before, err := Threads(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !Permitted() {
		t.Skip("SCHED_RR not permitted here: Permitted tried nothing")
	}
	after, err := Threads(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, tid := range after {
		if s, err := Of(os.Getpid(), tid); err == nil && s.Policy != unix.SCHED_NORMAL {
			t.Errorf("thread %d (of %d before, %d after) left with policy %d", tid, len(before), len(after), s.Policy)
		}
	}
}
