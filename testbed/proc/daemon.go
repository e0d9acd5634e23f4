package proc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Daemon is a child process whose output goes to a log file and is
// watched line by line (the shipped daemons log with slog).
type Daemon struct {
	Name  string
	Cmd   *exec.Cmd
	Log   string      // the log file
	lines chan string // every log line, for Wait and Count
	done  chan struct{}
	err   error // after done
}

// Start runs cmd with its stdout and stderr going to logPath.
func Start(name string, cmd *exec.Cmd, logPath string) (*Daemon, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", name, err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	d := &Daemon{Name: name, Cmd: cmd, Log: logPath, lines: make(chan string, 4096), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		f.Close()
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	pw.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the log: to the file, and to Wait
		defer wg.Done()
		defer f.Close()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			fmt.Fprintln(f, sc.Text())
			select {
			case d.lines <- sc.Text():
			default: // nobody waits for lines this late
			}
		}
		pr.Close()
	}()
	go func() {
		d.err = cmd.Wait()
		wg.Wait()
		close(d.done)
	}()
	return d, nil
}

// Pid is the process id.
func (d *Daemon) Pid() int { return d.Cmd.Process.Pid }

// Wait returns the submatches of the first log line matching re, reading
// the lines logged since the last Wait or Count.
func (d *Daemon) Wait(ctx context.Context, re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	deadline := time.After(timeout)
	for {
		select {
		case l := <-d.lines:
			if m := re.FindStringSubmatch(l); m != nil {
				return m, nil
			}
		case <-d.done:
			// Its last lines may still wait in the channel.
			for {
				select {
				case l := <-d.lines:
					if m := re.FindStringSubmatch(l); m != nil {
						return m, nil
					}
					continue
				default:
				}
				break
			}
			return nil, fmt.Errorf("%s exited (%v) before it logged %q:\n%s", d.Name, d.err, re, d.Tail())
		case <-deadline:
			return nil, fmt.Errorf("%s did not log %q within %v:\n%s", d.Name, re, timeout, d.Tail())
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Count returns how many of the lines logged since the last Wait or Count
// match re.
func (d *Daemon) Count(re *regexp.Regexp) int {
	n := 0
	for {
		select {
		case l := <-d.lines:
			if re.MatchString(l) {
				n++
			}
		default:
			return n
		}
	}
}

// Tail is the end of the daemon's log, for errors.
func (d *Daemon) Tail() string {
	b, _ := os.ReadFile(d.Log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return "  " + strings.Join(lines[max(0, len(lines)-8):], "\n  ")
}

// Stop sends SIGTERM and waits, then kills after 10 s. (ip netns exec
// runs a daemon as its own process, so the signal reaches it.)
func (d *Daemon) Stop() error {
	select {
	case <-d.done:
		return nil
	default:
	}
	_ = d.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		var ee *exec.ExitError
		if d.err != nil && !errors.As(d.err, &ee) {
			return d.err
		}
		return nil
	case <-time.After(10 * time.Second):
		_ = d.Cmd.Process.Kill()
		<-d.done
		return fmt.Errorf("%s ignored SIGTERM for 10 s: killed", d.Name)
	}
}

// Find returns the executable name from dir, else from the folder of this
// program (make build puts all binaries in one), else from PATH.
func Find(dir, name string) (string, error) {
	var dirs []string
	if dir != "" {
		dirs = append(dirs, dir)
	}
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Dir(exe))
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found next to this program or on PATH (make build puts it in bin/): %w", name, err)
	}
	return p, nil
}
