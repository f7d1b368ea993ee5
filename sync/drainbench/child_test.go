package drainbench

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeseal/edgeseal/archive"
)

// The receiving side of BenchmarkDrain and of its paho baseline runs in
// a child process (this test binary again, in the mode childEnv names),
// so that the benchmark process's CPU time over the drain is the
// agent's alone (core, outbox, publisher and its MQTT client), and over
// the baseline paho's publishing client's alone, each read from the
// process's rusage; the child reads its own over the same span.
const childEnv = "EDGESEAL_DRAINBENCH_CHILD"

// Child modes and their settings (environment variables).
const (
	childArchive = "archive"  // the archive and its sync subscriber
	childPahoSub = "paho-sub" // a plain paho QoS 1 subscriber

	childURL   = "EDGESEAL_DRAINBENCH_URL"   // broker
	childDir   = "EDGESEAL_DRAINBENCH_DIR"   // archive directory
	childKey   = "EDGESEAL_DRAINBENCH_KEY"   // archive key, hex
	childTopic = "EDGESEAL_DRAINBENCH_TOPIC" // paho-sub: topic (also its client id)
	childWant  = "EDGESEAL_DRAINBENCH_WANT"  // paho-sub: messages to wait for
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		if err := runChild(mode, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "drainbench child %s: %v\n", mode, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// child is a running child process: lines to its stdin, lines from its
// stdout.
type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

// startChild starts this binary in mode with the given settings and
// waits until it says ready; it ends when the benchmark does (its stdin
// closed).
func startChild(b *testing.B, mode string, env ...string) *child {
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(append(os.Environ(), childEnv+"="+mode), env...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &child{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	b.Cleanup(func() { c.stop() })
	c.expect(b, "ready")
	return c
}

// stop closes the child's stdin and waits for it to exit.
func (c *child) stop() error {
	c.in.Close()
	return c.cmd.Wait()
}

// send writes one line to the child.
func (c *child) send(b *testing.B, line string) {
	if _, err := io.WriteString(c.in, line+"\n"); err != nil {
		b.Fatalf("child: %v", err)
	}
}

// expect reads the child's next line, which must start with word, and
// returns the numbers after it.
func (c *child) expect(b *testing.B, word string) []int64 {
	if !c.out.Scan() {
		b.Fatalf("child: no %q line: %v", word, c.out.Err())
	}
	f := strings.Fields(c.out.Text())
	if len(f) == 0 || f[0] != word {
		b.Fatalf("child: %q, want %q", c.out.Text(), word)
	}
	var ns []int64
	for _, s := range f[1:] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			b.Fatalf("child: %q: %v", c.out.Text(), err)
		}
		ns = append(ns, n)
	}
	return ns
}

// archiveStats is what the archive child measured between start and
// stop.
type archiveStats struct {
	cpu, admit, receive time.Duration
	logSize             uint64
	// indexCPU is the archive's CPU from the end of the drain until its
	// export index covered the whole log: the indexing that yielded to
	// admission during the drain (archive/exportindex_yield.go).
	indexCPU time.Duration
	// peakRSS is the archive process's peak resident memory (VmHWM) in
	// bytes, from its start to the end of the drain's indexing.
	peakRSS int64
}

// startArchiveChild runs the archive in dir (its device enrolled) with
// key, subscribed on the broker at url, in a child process.
func startArchiveChild(b *testing.B, url, dir string, key ed25519.PrivateKey) *child {
	return startChild(b, childArchive, childURL+"="+url, childDir+"="+dir, childKey+"="+hex.EncodeToString(key))
}

// stats ends the archive child's timed span and reads what it measured.
func (c *child) stats(b *testing.B) archiveStats {
	c.send(b, "stop")
	n := c.expect(b, "stats")
	if len(n) != 6 {
		b.Fatalf("archive child: stats %v", n)
	}
	return archiveStats{time.Duration(n[0]), time.Duration(n[1]), time.Duration(n[2]), uint64(n[3]), time.Duration(n[4]), n[5]}
}

func runChild(mode string, in io.Reader, out io.Writer) error {
	switch mode {
	case childArchive:
		return archiveChild(in, out)
	case childPahoSub:
		return pahoSubChild(in, out)
	case childReplica:
		return replicaChild(in, out)
	}
	return fmt.Errorf("unknown mode")
}

// archiveChild opens the archive, starts its subscriber and says ready;
// "start" starts its timed span (and the CPU profile
// EDGESEAL_DRAIN_ARCHIVE_CPUPROFILE names), "stop" ends it and answers
// "stats cpu-ns admit-ns receive-ns log-size index-cpu-ns peak-rss" once
// the export index covers the log (index-cpu-ns: the CPU from "stop"
// until then; peak-rss: the process's VmHWM in bytes).
func archiveChild(in io.Reader, out io.Writer) error {
	key, err := hex.DecodeString(os.Getenv(childKey))
	if err != nil || len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("key: %v", err)
	}
	ctx := context.Background()
	ar, err := archive.Open(ctx, archive.Options{Dir: os.Getenv(childDir), Key: ed25519.PrivateKey(key)})
	if err != nil {
		return err
	}
	defer ar.Close()
	stop, err := archiveSubscriber(os.Getenv(childURL), ar)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintln(out, "ready")
	sc := bufio.NewScanner(in)
	var cpu0 time.Duration
	stopDrainProf := func() {}
	for sc.Scan() {
		switch sc.Text() {
		case "start":
			if stopDrainProf, err = startProfile(os.Getenv("EDGESEAL_DRAIN_ARCHIVE_CPUPROFILE")); err != nil {
				return err
			}
			admitNanos.Store(0)
			receiveNanos.Store(0)
			if cpu0, err = selfCPU(); err != nil {
				return err
			}
		case "stop":
			cpu, err := selfCPU()
			if err != nil {
				return err
			}
			stopDrainProf()
			stopProf, err := startProfile(os.Getenv("EDGESEAL_DRAIN_INDEX_CPUPROFILE"))
			if err != nil {
				return err
			}
			size := ar.LogSize()
			wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			err = ar.WaitIndexed(wctx, size)
			cancel()
			stopProf()
			if err != nil {
				return fmt.Errorf("export index: %d of %d log entries: %w", ar.IndexedUpTo(), size, err)
			}
			cpu1, err := selfCPU()
			if err != nil {
				return err
			}
			rss, err := peakRSS()
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "stats %d %d %d %d %d %d\n", cpu-cpu0, admitNanos.Load(), receiveNanos.Load(), size, cpu1-cpu, rss)
		default:
			return fmt.Errorf("command %q", sc.Text())
		}
	}
	return sc.Err()
}

// startProfile starts a CPU profile into file f (none when f is empty;
// EDGESEAL_DRAIN_PROFILE_HZ sets the rate of the first one); stop ends
// it and closes the file.
func startProfile(f string) (stop func(), err error) {
	if f == "" {
		return func() {}, nil
	}
	w, err := os.Create(f)
	if err != nil {
		return nil, err
	}
	if hz := envInt("EDGESEAL_DRAIN_PROFILE_HZ"); hz > 0 && !profileRateSet {
		runtime.SetCPUProfileRate(hz)
		profileRateSet = true
	}
	if err := pprof.StartCPUProfile(w); err != nil {
		w.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); w.Close() }, nil
}

// profileRateSet: the runtime takes the profile rate once.
var profileRateSet bool

// pahoSubChild subscribes at QoS 1 to its topic (a persistent session,
// messages in order) and says ready; "start" starts its timed span, and
// when the wanted number of messages has arrived it answers "all cpu-ns".
func pahoSubChild(in io.Reader, out io.Writer) error {
	want, err := strconv.ParseInt(os.Getenv(childWant), 10, 64)
	if err != nil {
		return err
	}
	topic := os.Getenv(childTopic)
	var got atomic.Int64
	all := make(chan struct{})
	opts := mqtt.NewClientOptions().AddBroker(os.Getenv(childURL)).SetClientID("sub-" + strings.ReplaceAll(topic, "/", "-")).
		SetCleanSession(false).SetOrderMatters(true)
	sub := mqtt.NewClient(opts)
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("connect: %v", tok.Error())
	}
	defer sub.Disconnect(250)
	if tok := sub.Subscribe(topic, 1, func(mqtt.Client, mqtt.Message) {
		if got.Add(1) == want {
			close(all)
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("subscribe: %v", tok.Error())
	}
	fmt.Fprintln(out, "ready")
	sc := bufio.NewScanner(in)
	if !sc.Scan() || sc.Text() != "start" {
		return fmt.Errorf("no start: %v", sc.Err())
	}
	cpu0, err := selfCPU()
	if err != nil {
		return err
	}
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		return fmt.Errorf("got %d of %d", got.Load(), want)
	}
	cpu, err := selfCPU()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "all %d\n", cpu-cpu0)
	for sc.Scan() { // until the benchmark closes stdin
	}
	return nil
}

// peakRSS is this process's peak resident memory (VmHWM) in bytes.
func peakRSS() (int64, error) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	return vmHWM(status)
}

// selfCPU is the CPU time (user and system) this process used so far.
func selfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
