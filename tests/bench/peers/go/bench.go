// SPDX-License-Identifier: MIT
// Go peer of the weft benchmark workloads (see tests/bench/README.md and the
// workload definitions the benchmark suite follows).
//
// Usage:
//
//	bench WORKLOAD [N]      run one workload, print one result line
//	bench http PORT         serve "Hello, World!\n" on 127.0.0.1:PORT until SIGINT/SIGTERM
//
// Workloads: switch spawn park parkgated skynet pingpong threadsend parallel.
// Every result line has the form
//
//	workload=<name> peer=go-gmp<P> n=<N> <metric>=<value> ... peak_rss_kb=<KB>
//
// where P is the effective GOMAXPROCS (set it with the GOMAXPROCS environment
// variable). Every line also says what the timed part paid (getrusage deltas over it,
// all threads): faults_per_task = minor page faults / N, ctx_switches = voluntary +
// involuntary context switches. Times are taken with time.Now()/time.Since, which use the
// monotonic clock, around the measured part only.
//
// Build (stdlib only, offline): GO111MODULE=off go build -o bench bench.go
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
)

func peakRSSKB() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return int64(ru.Maxrss) // kilobytes on Linux
}

func rusageNow() syscall.Rusage {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru
}

// cost formats what the timed part that started at before paid, per task of n.
func cost(before syscall.Rusage, n int) string {
	now := rusageNow()
	if n < 1 {
		n = 1
	}
	return fmt.Sprintf("faults_per_task=%.4f ctx_switches=%d",
		float64(now.Minflt-before.Minflt)/float64(n),
		(now.Nvcsw-before.Nvcsw)+(now.Nivcsw-before.Nivcsw))
}

func peerName() string {
	return fmt.Sprintf("go-gmp%d", runtime.GOMAXPROCS(0))
}

// emit prints one result line; fields are "key=value" strings placed between
// n= and peak_rss_kb=.
func emit(workload string, n int, fields ...string) {
	line := fmt.Sprintf("workload=%s peer=%s n=%d", workload, peerName(), n)
	for _, f := range fields {
		line += " " + f
	}
	line += fmt.Sprintf(" peak_rss_kb=%d", peakRSSKB())
	fmt.Println(line)
}

// ---------------------------------------------------------------- switch

// switchRun has two goroutines call runtime.Gosched n times each while main
// waits; with GOMAXPROCS=1 each Gosched hands the thread to the other one.
func switchRun(n int) time.Duration {
	var wg sync.WaitGroup
	gate := make(chan struct{})
	body := func() {
		defer wg.Done()
		<-gate
		for i := 0; i < n; i++ {
			runtime.Gosched()
		}
	}
	wg.Add(2)
	go body()
	go body()
	runtime.Gosched() // let both goroutines start and block on the gate
	start := time.Now()
	close(gate)
	wg.Wait()
	return time.Since(start)
}

func benchSwitch(n int) {
	switchRun(10000) // warm-up
	ru := rusageNow()
	el := switchRun(n)
	emit("switch", n, fmt.Sprintf("ns_per_switch=%.2f", float64(el.Nanoseconds())/float64(2*n)), cost(ru, n))
}

// ---------------------------------------------------------------- spawn

func benchSpawn(n int) {
	var wg sync.WaitGroup
	ru := rusageNow()
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() { wg.Done() }()
	}
	wg.Wait()
	el := time.Since(start)
	emit("spawn", n, fmt.Sprintf("tasks_per_s=%.0f", float64(n)/el.Seconds()),
		fmt.Sprintf("elapsed_s=%.3f", el.Seconds()), cost(ru, n))
}

// ---------------------------------------------------------------- park

// benchPark keeps n goroutines sleeping 2 s. gated: each goroutine waits for
// main to close a gate after creating all n, so all n are alive at once.
func benchPark(n int, gated bool) {
	var wg sync.WaitGroup
	gate := make(chan struct{})
	ru := rusageNow()
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		if gated {
			go func() {
				<-gate
				time.Sleep(2 * time.Second)
				wg.Done()
			}()
		} else {
			go func() {
				time.Sleep(2 * time.Second)
				wg.Done()
			}()
		}
	}
	spawn := time.Since(start)
	close(gate)
	wg.Wait()
	el := time.Since(start)
	paid := cost(ru, n)
	rss := peakRSSKB()
	// Ungated: the first goroutine's sleep ends 2 s after its creation, so
	// all n were alive at once only if creating them took less than 2 s.
	allAlive := "yes"
	if !gated && spawn >= 2*time.Second {
		allAlive = "no"
	}
	name := peerName()
	if gated {
		name += "-gated"
	}
	fmt.Printf("workload=park peer=%s n=%d bytes_per_task=%.0f elapsed_s=%.3f spawn_s=%.3f all_alive=%s %s peak_rss_kb=%d\n",
		name, n, float64(rss)*1024/float64(n), el.Seconds(), spawn.Seconds(), allAlive, paid, rss)
}

// ---------------------------------------------------------------- skynet

func skynet(out chan<- int64, num, size int64) {
	if size == 1 {
		out <- num
		return
	}
	rc := make(chan int64)
	step := size / 10
	for i := int64(0); i < 10; i++ {
		go skynet(rc, num+i*step, step)
	}
	var sum int64
	for i := 0; i < 10; i++ {
		sum += <-rc
	}
	out <- sum
}

func benchSkynet(n int) {
	res := make(chan int64)
	ru := rusageNow()
	start := time.Now()
	go skynet(res, 0, int64(n))
	sum := <-res
	el := time.Since(start)
	paid := cost(ru, n)
	want := int64(n) * int64(n-1) / 2
	check := "ok"
	if sum != want {
		check = fmt.Sprintf("FAIL(%d!=%d)", sum, want)
	}
	emit("skynet", n, fmt.Sprintf("wall_ms=%.1f", float64(el.Nanoseconds())/1e6), "check="+check, paid)
}

// ---------------------------------------------------------------- pingpong

func benchPingpong(n int) {
	ping := make(chan int)
	pong := make(chan int)
	done := make(chan struct{})
	go func() {
		for i := 0; i < n; i++ {
			v := <-ping
			pong <- v
		}
		close(done)
	}()
	ru := rusageNow()
	start := time.Now()
	for i := 0; i < n; i++ {
		ping <- i
		<-pong
	}
	<-done
	el := time.Since(start)
	emit("pingpong", n, fmt.Sprintf("ns_per_roundtrip=%.1f", float64(el.Nanoseconds())/float64(n)), cost(ru, n))
}

// ---------------------------------------------------------------- threadsend

func benchThreadsend(n int) {
	ch := make(chan int64, 1024)
	result := make(chan int64)
	go func() { // receiver: an ordinary goroutine
		var sum int64
		for v := range ch {
			sum += v
		}
		result <- sum
	}()
	ru := rusageNow()
	start := time.Now()
	go func() { // sender: a goroutine wired to its own OS thread
		runtime.LockOSThread()
		for i := int64(0); i < int64(n); i++ {
			ch <- i
		}
		close(ch)
	}()
	sum := <-result
	el := time.Since(start)
	paid := cost(ru, n)
	check := "ok"
	if want := int64(n) * int64(n-1) / 2; sum != want {
		check = fmt.Sprintf("FAIL(%d!=%d)", sum, want)
	}
	emit("threadsend", n, fmt.Sprintf("msgs_per_s=%.0f", float64(n)/el.Seconds()), "check="+check, paid)
}

// ---------------------------------------------------------------- parallel

var sink uint64

// hashJob is a CPU-only job: iters rounds of a 64-bit mix, no allocation.
func hashJob(iters uint64, seed uint64) uint64 {
	x := seed
	for i := uint64(0); i < iters; i++ {
		x ^= i
		x *= 0x9E3779B97F4A7C15
		x ^= x >> 29
	}
	return x
}

func runTasks(tasks int, iters uint64) time.Duration {
	var wg sync.WaitGroup
	var mu sync.Mutex
	start := time.Now()
	for t := 0; t < tasks; t++ {
		wg.Add(1)
		go func(seed uint64) {
			r := hashJob(iters, seed)
			mu.Lock()
			sink += r
			mu.Unlock()
			wg.Done()
		}(uint64(t))
	}
	wg.Wait()
	return time.Since(start)
}

func benchParallel(tasks int) {
	w := runtime.GOMAXPROCS(0)
	if tasks <= 0 {
		tasks = 2 * w
	}
	// Calibrate iterations so that one job takes about 200 ms.
	iters := uint64(1 << 20)
	for {
		t0 := time.Now()
		sink += hashJob(iters, 1)
		el := time.Since(t0)
		if el >= 20*time.Millisecond {
			iters = uint64(float64(iters) * float64(200*time.Millisecond) / float64(el))
			break
		}
		iters *= 4
	}
	ru := rusageNow()
	prev := runtime.GOMAXPROCS(1)
	t1 := runTasks(tasks, iters)
	runtime.GOMAXPROCS(prev)
	tw := runTasks(tasks, iters)
	line := fmt.Sprintf("workload=parallel peer=%s n=%d workers=%d speedup=%.3f t1_ms=%.1f tw_ms=%.1f %s peak_rss_kb=%d",
		peerName(), tasks, w, t1.Seconds()/tw.Seconds(), float64(t1.Nanoseconds())/1e6,
		float64(tw.Nanoseconds())/1e6, cost(ru, tasks), peakRSSKB())
	fmt.Println(line)
}

// ---------------------------------------------------------------- http

func serveHTTP(port string) {
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	hello := []byte("Hello, World!\n")
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(hello)
	})
	srv := &http.Server{Handler: mux}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		srv.Close()
	}()
	fmt.Fprintf(os.Stderr, "%s listening on 127.0.0.1:%s\n", peerName(), port)
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "peak_rss_kb=%d\n", peakRSSKB())
}

// ---------------------------------------------------------------- main

func usage() {
	fmt.Fprintln(os.Stderr, "usage: bench {switch|spawn|park|parkgated|skynet|pingpong|threadsend|parallel} [N]\n       bench http PORT")
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	wl := os.Args[1]
	if wl == "http" {
		if len(os.Args) < 3 {
			usage()
		}
		serveHTTP(os.Args[2])
		return
	}
	defaults := map[string]int{
		"switch": 10000000, "spawn": 1000000, "park": 1000000, "parkgated": 1000000,
		"skynet": 1000000, "pingpong": 1000000, "threadsend": 1000000, "parallel": 0,
	}
	n, ok := defaults[wl]
	if !ok {
		usage()
	}
	if len(os.Args) >= 3 {
		v, err := strconv.Atoi(os.Args[2])
		if err != nil || v < 0 {
			usage()
		}
		n = v
	}
	if n <= 0 && wl != "parallel" {
		usage()
	}
	switch wl {
	case "switch":
		benchSwitch(n)
	case "spawn":
		benchSpawn(n)
	case "park":
		benchPark(n, false)
	case "parkgated":
		benchPark(n, true)
	case "skynet":
		benchSkynet(n)
	case "pingpong":
		benchPingpong(n)
	case "threadsend":
		benchThreadsend(n)
	case "parallel":
		benchParallel(n)
	}
}
