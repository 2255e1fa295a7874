// Go versions of the workloads of benches/spawn.rs, run by that bench when
// `go` is installed (same machine, same run). Each invocation measures one
// workload and prints one `RESULT` line in the bench's format:
//
//	go run benches/go/spawn.go parked 1000000       # ns per creation, RSS and page tables per parked goroutine
//	go run benches/go/spawn.go burst 1000000 1      # 1M spawned then all waited for, GOMAXPROCS=1; second burst
//	go run benches/go/spawn.go batch 1000000        # spawn+wait in batches of 1,000, GOMAXPROCS=1
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

func status(key string) int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, key+":") {
			f := strings.Fields(l[len(key)+1:])
			v, _ := strconv.ParseInt(f[0], 10, 64)
			return v * 1024
		}
	}
	return 0
}

// One burst: n goroutines spawned, then all waited for (each sends its
// result, like a join). Returns ns per goroutine.
func burst(n int) float64 {
	var wg sync.WaitGroup
	res := make([]int, n)
	t := time.Now()
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func(i int) { res[i] = i; wg.Done() }(i)
	}
	wg.Wait()
	return float64(time.Since(t).Nanoseconds()) / float64(n)
}

func main() {
	mode := os.Args[1]
	n, _ := strconv.Atoi(os.Args[2])
	switch mode {
	case "parked":
		runtime.GOMAXPROCS(2)
		ch := make(chan struct{})
		var started sync.WaitGroup
		started.Add(n)
		var done sync.WaitGroup
		done.Add(n)
		rss0, pte0 := status("VmRSS"), status("VmPTE")
		t := time.Now()
		for i := 0; i < n; i++ {
			go func() { started.Done(); <-ch; done.Done() }()
		}
		started.Wait()
		create := float64(time.Since(t).Nanoseconds()) / float64(n)
		time.Sleep(200 * time.Millisecond)
		rss, pte := status("VmRSS"), status("VmPTE")
		fmt.Printf("RESULT %.0f %.0f %.0f\n", create, float64(rss-rss0)/float64(n), float64(pte-pte0)/float64(n))
		close(ch)
		done.Wait()
	case "burst":
		procs, _ := strconv.Atoi(os.Args[3])
		runtime.GOMAXPROCS(procs)
		first := burst(n)
		second := burst(n)
		fmt.Printf("RESULT %.0f %.0f\n", first, second)
	case "batch":
		runtime.GOMAXPROCS(1)
		burst(1000)
		t := time.Now()
		for done := 0; done < n; done += 1000 {
			burst(1000)
		}
		fmt.Printf("RESULT %.1f\n", float64(time.Since(t).Nanoseconds())/float64(n))
	}
}
