// SPDX-License-Identifier: MIT
// Boost.Fiber peer of the weft benchmark workloads (see tests/bench/README.md).
//
// Usage: boost_fiber WORKLOAD [N]
//   switch      two fibers yield N times each (round_robin)        peer=boost-fiber
//   spawn       N detached fibers, default stack (128 KiB)          peer=boost-fiber-defstack
//   park        N fibers sleep 2 s, default stack                  peer=boost-fiber-defstack
//   park8k      N fibers sleep 2 s, fixedsize_stack(8192)          peer=boost-fiber-stack8192
//   skynet      1,111,111 fibers over unbuffered channels          peer=boost-fiber
//   pingpong    two fibers, unbuffered_channel<long>               peer=boost-fiber
//   threadsend  std::thread -> buffered_channel(1024) -> fiber     peer=boost-fiber
//
// Prints one line: workload=<w> peer=<p> n=<N> <metric>=<value> ... peak_rss_kb=<KB>
// Timing: std::chrono::steady_clock (monotonic) around the measured part only.
//
// Build: g++ -O2 -std=c++17 boost_fiber.cpp -o boost_fiber -lboost_fiber -lboost_context -pthread

#include <boost/fiber/all.hpp>

#include <sys/resource.h>

#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace fibers = boost::fibers;
using clk = std::chrono::steady_clock;

static long peak_rss_kb()
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return ru.ru_maxrss;
}

#include "peer_cost.h" /* mark(), paid(n) */

static double secs(clk::time_point a, clk::time_point b)
{
    return std::chrono::duration<double>(b - a).count();
}

// WaitGroup from a fiber mutex and condition variable.
class WaitGroup
{
  public:
    void add(long k)
    {
        std::unique_lock<fibers::mutex> lk(mu_);
        count_ += k;
    }
    void done()
    {
        std::unique_lock<fibers::mutex> lk(mu_);
        if (--count_ == 0)
            cv_.notify_all();
    }
    void wait()
    {
        std::unique_lock<fibers::mutex> lk(mu_);
        cv_.wait(lk, [this] { return count_ == 0; });
    }

  private:
    fibers::mutex mu_;
    fibers::condition_variable cv_;
    long count_ = 0;
};

// ---------------------------------------------------------------- switch

static double switch_run(long n)
{
    auto body = [n] {
        for (long i = 0; i < n; i++)
            boost::this_fiber::yield();
    };
    // Default launch policy is post: neither fiber runs before main joins.
    fibers::fiber a(body), b(body);
    mark();
    auto t0 = clk::now();
    a.join();
    b.join();
    return secs(t0, clk::now());
}

static void bench_switch(long n)
{
    switch_run(10000); // warm-up
    double el = switch_run(n);
    printf("workload=switch peer=boost-fiber n=%ld ns_per_switch=%.2f %s peak_rss_kb=%ld\n", n,
           el * 1e9 / (2.0 * n), paid(n), peak_rss_kb());
}

// ---------------------------------------------------------------- spawn

static void bench_spawn(long n)
{
    WaitGroup wg;
    mark();
    auto t0 = clk::now();
    for (long i = 0; i < n; i++) {
        wg.add(1);
        fibers::fiber([&wg] { wg.done(); }).detach();
    }
    wg.wait();
    double el = secs(t0, clk::now());
    printf("workload=spawn peer=boost-fiber-defstack n=%ld tasks_per_s=%.0f elapsed_s=%.3f "
           "%s peak_rss_kb=%ld\n",
           n, n / el, el, paid(n), peak_rss_kb());
}

// ---------------------------------------------------------------- park

static void bench_park(long n, bool small_stack)
{
    WaitGroup wg;
    auto body = [&wg] {
        boost::this_fiber::sleep_for(std::chrono::seconds(2));
        wg.done();
    };
    mark();
    auto t0 = clk::now();
    for (long i = 0; i < n; i++) {
        wg.add(1);
        if (small_stack)
            fibers::fiber(std::allocator_arg, fibers::fixedsize_stack(8192), body).detach();
        else
            fibers::fiber(body).detach();
    }
    // With the post launch policy no fiber has run yet: all n start their
    // sleep once main blocks below, so all n are alive at once.
    double spawn = secs(t0, clk::now());
    wg.wait();
    double el = secs(t0, clk::now());
    long rss = peak_rss_kb();
    printf("workload=park peer=%s n=%ld bytes_per_task=%.0f elapsed_s=%.3f spawn_s=%.3f "
           "all_alive=yes %s peak_rss_kb=%ld\n",
           small_stack ? "boost-fiber-stack8192" : "boost-fiber-defstack", n, rss * 1024.0 / n, el,
           spawn, paid(n), rss);
}

// ---------------------------------------------------------------- skynet

using chan_t = fibers::unbuffered_channel<int64_t>;

static void skynet(chan_t *out, int64_t num, int64_t size)
{
    if (size == 1) {
        out->push(num);
        return;
    }
    // rc lives on this fiber's stack: this fiber returns only after popping
    // all 10 values, and a resumed producer does not touch the channel again.
    chan_t rc;
    int64_t step = size / 10;
    for (int64_t i = 0; i < 10; i++)
        fibers::fiber(skynet, &rc, num + i * step, step).detach();
    int64_t sum = 0;
    for (int i = 0; i < 10; i++)
        sum += rc.value_pop();
    out->push(sum);
}

static void bench_skynet(long n)
{
    chan_t res;
    mark();
    auto t0 = clk::now();
    fibers::fiber(skynet, &res, (int64_t)0, (int64_t)n).detach();
    int64_t sum = res.value_pop();
    double el = secs(t0, clk::now());
    int64_t want = (int64_t)n * (n - 1) / 2;
    printf("workload=skynet peer=boost-fiber n=%ld wall_ms=%.1f check=%s %s peak_rss_kb=%ld\n", n,
           el * 1e3, sum == want ? "ok" : "FAIL", paid(n), peak_rss_kb());
}

// ---------------------------------------------------------------- pingpong

static void bench_pingpong(long n)
{
    fibers::unbuffered_channel<long> ping, pong;
    fibers::fiber b([&] {
        for (long i = 0; i < n; i++) {
            long v = ping.value_pop();
            pong.push(v);
        }
    });
    mark();
    auto t0 = clk::now();
    for (long i = 0; i < n; i++) {
        ping.push(i);
        (void)pong.value_pop();
    }
    b.join();
    double el = secs(t0, clk::now());
    printf("workload=pingpong peer=boost-fiber n=%ld ns_per_roundtrip=%.1f %s peak_rss_kb=%ld\n", n,
           el * 1e9 / n, paid(n), peak_rss_kb());
}

// ---------------------------------------------------------------- threadsend

static void bench_threadsend(long n)
{
    fibers::buffered_channel<int64_t> ch(1024); // holds up to 1023 items
    int64_t sum = 0;
    mark();
    auto t0 = clk::now();
    std::thread sender([&ch, n] {
        for (int64_t i = 0; i < n; i++)
            ch.push(i);
        ch.close();
    });
    fibers::fiber rx([&ch, &sum] {
        int64_t v;
        while (ch.pop(v) == fibers::channel_op_status::success)
            sum += v;
    });
    rx.join();
    double el = secs(t0, clk::now());
    sender.join();
    int64_t want = (int64_t)n * (n - 1) / 2;
    printf(
        "workload=threadsend peer=boost-fiber n=%ld msgs_per_s=%.0f check=%s %s peak_rss_kb=%ld\n",
        n, n / el, sum == want ? "ok" : "FAIL", paid(n), peak_rss_kb());
}

// ---------------------------------------------------------------- main

static void usage()
{
    fprintf(stderr,
            "usage: boost_fiber {switch|spawn|park|park8k|skynet|pingpong|threadsend} [N]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    std::string w = argv[1];
    long n = 0;
    if (w == "switch")
        n = 10000000;
    else if (w == "spawn" || w == "park" || w == "park8k" || w == "skynet")
        n = 1000000;
    else if (w == "pingpong" || w == "threadsend")
        n = 1000000;
    else
        usage();
    if (argc >= 3) {
        char *end;
        n = strtol(argv[2], &end, 10);
        if (*end || n <= 0)
            usage();
    }
    if (w == "switch")
        bench_switch(n);
    else if (w == "spawn")
        bench_spawn(n);
    else if (w == "park")
        bench_park(n, false);
    else if (w == "park8k")
        bench_park(n, true);
    else if (w == "skynet")
        bench_skynet(n);
    else if (w == "pingpong")
        bench_pingpong(n);
    else if (w == "threadsend")
        bench_threadsend(n);
    fflush(stdout);
    // Skip tearing down whatever the runtime still holds: teardown is not measured.
    _exit(0);
}
