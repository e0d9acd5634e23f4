package proc

import (
	"context"
	"os/exec"
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
