// Fairness scenario of benches/preempt.rs (c) on Go: GOMAXPROCS=2, four
// goroutines spinning with no function calls beside one goroutine sleeping
// 1 ms in a loop (500 times). Prints p50/p99/max lateness of its wake-ups in
// the same format as the Rust bench. Go preempts a goroutine that ran for
// 10 ms (sysmon, asynchronous preemption by SIGURG since Go 1.14).
//
//	go run benches/go/fairness.go
package main

import (
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

const (
	spinners  = 4
	sleeps    = 500
	spinLimit = 3 * time.Second
)

func fmtDur(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%.1f µs", float64(d)/1e3)
	}
	return fmt.Sprintf("%.2f ms", float64(d)/1e6)
}

func percentile(s []time.Duration, p float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	return s[int(float64(len(s)-1)*p+0.5)]
}

func main() {
	runtime.GOMAXPROCS(2)
	var stop atomic.Bool
	var wg sync.WaitGroup
	// The sleeper starts first, as in the Rust bench.
	done := make(chan []time.Duration)
	go func() {
		late := make([]time.Duration, 0, sleeps)
		started := time.Now()
		for len(late) < sleeps && time.Since(started) < spinLimit {
			due := time.Now().Add(time.Millisecond)
			time.Sleep(time.Millisecond)
			late = append(late, time.Since(due))
		}
		done <- late
	}()
	deadline := time.Now().Add(spinLimit)
	for i := 0; i < spinners; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			// No calls except the deadline check every 2^20 iterations
			// (about 1 ms): sysmon asks a goroutine that ran 10 ms to yield,
			// and it does at the next function prologue or at the SIGURG
			// that follows (asynchronous preemption), whichever comes first.
			for !stop.Load() {
				n++
				if n&(1<<20-1) == 0 && time.Now().After(deadline) {
					break
				}
			}
		}()
	}
	late := <-done
	stop.Store(true)
	wg.Wait()
	sort.Slice(late, func(i, j int) bool { return late[i] < late[j] })
	max := time.Duration(0)
	if len(late) > 0 {
		max = late[len(late)-1]
	}
	fmt.Printf("%-36s %7d %11s %11s %11s\n", "go "+runtime.Version()+" (GOMAXPROCS=2)", len(late),
		fmtDur(percentile(late, 0.5)), fmtDur(percentile(late, 0.99)), fmtDur(max))
}
