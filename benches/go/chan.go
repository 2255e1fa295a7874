// The channel scenarios of benches/sync.rs on Go, for the same-run
// comparison: ping-pong round trips over two capacity-1 channels with
// GOMAXPROCS=1 and 2, 4 producers x 4 consumers over one capacity-64 channel
// with GOMAXPROCS=2 (per message), and a send plus a receive (plain, and a
// select over two channels that both hold a value), and 4 goroutines
// contending for one sync.Mutex with GOMAXPROCS=2 (per lock, with and
// without a short stretch of work inside and outside the lock). Each figure
// is the best of 5 runs of a fixed count, printed in ns per operation.
//
//	go run benches/go/chan.go
package main

import (
	"fmt"
	"runtime"
	"sync"
	"time"
)

const runs = 5

func best(n int, f func(n int) time.Duration) float64 {
	b := time.Duration(1 << 62)
	for r := 0; r < runs; r++ {
		if d := f(n); d < b {
			b = d
		}
	}
	return float64(b.Nanoseconds()) / float64(n)
}

func pingPong(n int) time.Duration {
	ping, pong := make(chan int, 1), make(chan int, 1)
	go func() {
		for v := range ping {
			pong <- v
		}
	}()
	start := time.Now()
	for i := 0; i < n; i++ {
		ping <- i
		<-pong
	}
	d := time.Since(start)
	close(ping)
	return d
}

func mpmc(n int) time.Duration {
	const parties = 4
	per := n / parties
	ch := make(chan int, 64)
	var prod, cons sync.WaitGroup
	start := time.Now()
	for p := 0; p < parties; p++ {
		prod.Add(1)
		go func() {
			defer prod.Done()
			for i := 0; i < per; i++ {
				ch <- i
			}
		}()
	}
	for c := 0; c < parties; c++ {
		cons.Add(1)
		go func() {
			defer cons.Done()
			for range ch {
			}
		}()
	}
	prod.Wait()
	close(ch)
	cons.Wait()
	return time.Since(start)
}

var sink int

func sendRecv(n int) time.Duration {
	ch := make(chan int, 4)
	start := time.Now()
	for i := 0; i < n; i++ {
		ch <- i
		sink += <-ch
	}
	return time.Since(start)
}

func sendSelect(n int) time.Duration {
	c1, c2 := make(chan int, 4), make(chan int, 4)
	c1 <- 0
	c2 <- 0
	start := time.Now()
	for i := 0; i < n; i++ {
		select {
		case v := <-c1:
			sink += v
			c1 <- i
		case v := <-c2:
			sink += v
			c2 <- i
		}
	}
	return time.Since(start)
}

// work is a short stretch of work: the xorshift chain of benches/sync.rs.
func work(steps int) {
	x := uint64(0x9E3779B97F4A7C15)
	for i := 0; i < steps; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	sink += int(x & 1)
}

func contended(steps int) func(n int) time.Duration {
	return func(n int) time.Duration {
		const parties = 4
		per := n / parties
		var m sync.Mutex
		var wg sync.WaitGroup
		counter := 0
		start := time.Now()
		for p := 0; p < parties; p++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < per; i++ {
					m.Lock()
					counter++
					work(steps)
					m.Unlock()
					work(steps)
				}
			}()
		}
		wg.Wait()
		if counter != per*parties {
			panic("lost increments")
		}
		return time.Since(start)
	}
}

func main() {
	runtime.GOMAXPROCS(1)
	fmt.Printf("go %s ping_pong GOMAXPROCS=1: %.1f ns\n", runtime.Version(), best(200_000, pingPong))
	runtime.GOMAXPROCS(2)
	fmt.Printf("go %s ping_pong GOMAXPROCS=2: %.1f ns\n", runtime.Version(), best(200_000, pingPong))
	fmt.Printf("go %s mpmc_4x4 GOMAXPROCS=2: %.1f ns/msg\n", runtime.Version(), best(400_000, mpmc))
	runtime.GOMAXPROCS(1)
	fmt.Printf("go %s send+recv: %.1f ns\n", runtime.Version(), best(1_000_000, sendRecv))
	fmt.Printf("go %s send+select_2_ready: %.1f ns\n", runtime.Version(), best(1_000_000, sendSelect))
	runtime.GOMAXPROCS(2)
	fmt.Printf("go %s mutex_contended_4 GOMAXPROCS=2: %.1f ns/lock\n", runtime.Version(), best(400_000, contended(0)))
	fmt.Printf("go %s mutex_contended_with_work_4 GOMAXPROCS=2: %.1f ns/lock\n", runtime.Version(), best(400_000, contended(20)))
}
