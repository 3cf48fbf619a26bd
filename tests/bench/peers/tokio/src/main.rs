// SPDX-License-Identifier: MIT
// Tokio peer of the weft benchmark workloads (tests/bench/README.md, the suite's
// bench/WORKLOADS.md): what a Rust user would pick instead of weft.
//
// Usage:
//     tokio-bench WORKLOAD [N]    run one workload, print one result line
//     tokio-bench http PORT       serve "Hello, World!\n" (hyper 0.14) on 127.0.0.1:PORT
//                                 until killed (SIGTERM's default action ends it)
// Workloads: switch spawn park skynet pingpong threadsend parallel.
// Runtime: TOKIO_FLAVOR=ct runs a current-thread runtime (peer=tokio-ct); anything else a
// multi-thread one (peer=tokio) with Tokio's default worker count (one per CPU, or Tokio's
// own TOKIO_WORKER_THREADS). Every result line has the form
//     workload=<name> peer=<tokio|tokio-ct> n=<N> <metric>=<value> ... faults_per_task=<f>
//         ctx_switches=<c> workers=<W> peak_rss_kb=<KB>
// faults_per_task is the process's minor page faults (getrusage ru_minflt) during the timed
// part divided by N; ctx_switches the voluntary + involuntary context switches of all its
// threads during the timed part (ru_nvcsw + ru_nivcsw).
//
// How each workload maps onto Tokio (the semantics are weft_bench.c's):
// - The body of every workload runs as a spawned task (rt.block_on(rt.spawn(body))), as
//   weft_run runs its main function in a coroutine and Go its main goroutine: its spawns go
//   through the worker's local queue, not through the injection queue of block_on's thread.
// - switch: two tasks call tokio::task::yield_now() N times each (10,000 each first, untimed);
//   meaningful on the current-thread runtime only (one OS thread, as the other peers).
// - spawn: N detached tokio::spawn'ed tasks that only signal a wait group (an atomic counter
//   and a Notify: Tokio has no WaitGroup), then the body waits for the counter to reach 0.
// - park: gated, as Go's valid row: each task waits on a Semaphore that the body closes once
//   all N exist, then tokio::time::sleep(2 s), then signals the wait group.
// - skynet and pingpong: tokio::sync::mpsc channels of CAPACITY 1. Tokio has no rendezvous
//   (unbuffered) channel, so a sender here may run one value ahead of its receiver where
//   weft's and Go's unbuffered senders block until the hand-over.
// - threadsend: a std::thread sends 0..N-1 with Sender::blocking_send into an mpsc channel
//   of capacity 1024 and drops the sender; the body receives until None (closed).
// - parallel: 2 x W CPU-only tasks of ~200 ms each (weft_bench.c's hash loop), timed on a
//   1-worker multi-thread runtime and on a W-worker one; speedup = t1 / tW.
// Build (offline, Debian crates): see Cargo.toml and run-bench.sh.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::runtime::{Builder, Runtime};
use tokio::sync::{mpsc, Notify, Semaphore};

// ------------------------------------------------------------------ process figures

fn rusage() -> libc::rusage {
    // SAFETY: getrusage writes a plain struct; zeroed is a valid rusage.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    }
}

fn peak_rss_kb() -> i64 {
    rusage().ru_maxrss as i64 // kilobytes on Linux
}

/// What the timed part paid, from a getrusage taken at its start: "faults_per_task=...
/// ctx_switches=...".
fn cost(before: &libc::rusage, n: u64) -> String {
    let now = rusage();
    let faults = (now.ru_minflt - before.ru_minflt) as f64;
    let csw = (now.ru_nvcsw - before.ru_nvcsw) + (now.ru_nivcsw - before.ru_nivcsw);
    format!("faults_per_task={:.4} ctx_switches={}", faults / n.max(1) as f64, csw)
}

fn current_thread() -> bool {
    std::env::var("TOKIO_FLAVOR").map(|v| v == "ct").unwrap_or(false)
}

fn peer() -> &'static str {
    if current_thread() {
        "tokio-ct"
    } else {
        "tokio"
    }
}

fn build_runtime(workers: Option<usize>) -> Runtime {
    let mut b = if current_thread() && workers.is_none() {
        Builder::new_current_thread()
    } else {
        Builder::new_multi_thread()
    };
    if let Some(w) = workers {
        b.worker_threads(w);
    }
    b.enable_all().build().expect("tokio runtime")
}

/// Runs BODY as a task of a fresh runtime (see the header) and returns its output.
fn run<F, T>(body: F) -> T
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let rt = build_runtime(None);
    let h = rt.spawn(body);
    rt.block_on(h).expect("benchmark body panicked")
}

fn workers() -> usize {
    if current_thread() {
        return 1;
    }
    std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&w: &usize| w > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

fn emit(workload: &str, n: u64, fields: &str) {
    println!(
        "workload={} peer={} n={} {} workers={} peak_rss_kb={}",
        workload,
        peer(),
        n,
        fields,
        workers(),
        peak_rss_kb()
    );
}

// ------------------------------------------------------------------ wait group

/// Tokio has no WaitGroup: a counter and a Notify. done() by the last task stores a permit
/// in the Notify (notify_one), so a wait() that has not started waiting yet still sees it.
struct WaitGroup {
    left: AtomicUsize,
    zero: Notify,
}

impl WaitGroup {
    fn new(n: usize) -> &'static WaitGroup {
        Box::leak(Box::new(WaitGroup {
            left: AtomicUsize::new(n),
            zero: Notify::new(),
        }))
    }
    fn done(&self) {
        // AcqRel: the last done() sees every other task's writes before it wakes the waiter.
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.zero.notify_one();
        }
    }
    async fn wait(&self) {
        while self.left.load(Ordering::Acquire) != 0 {
            self.zero.notified().await;
        }
    }
}

// ------------------------------------------------------------------ switch

async fn yield_pair(n: u64) {
    let body = move || async move {
        for _ in 0..n {
            tokio::task::yield_now().await;
        }
    };
    let a = tokio::spawn(body());
    let b = tokio::spawn(body());
    a.await.unwrap();
    b.await.unwrap();
}

fn bench_switch(n: u64) {
    let (ns, c) = run(async move {
        yield_pair(10_000).await; // warm-up
        let ru = rusage();
        let t0 = Instant::now();
        yield_pair(n).await;
        let el = t0.elapsed();
        (el.as_nanos() as f64 / (2.0 * n as f64), cost(&ru, n))
    });
    emit("switch", n, &format!("ns_per_switch={:.2} {}", ns, c));
}

// ------------------------------------------------------------------ spawn

fn bench_spawn(n: u64) {
    let (el, c) = run(async move {
        let ru = rusage();
        let t0 = Instant::now();
        let wg = WaitGroup::new(n as usize);
        for _ in 0..n {
            tokio::spawn(async move { wg.done() });
        }
        wg.wait().await;
        (t0.elapsed(), cost(&ru, n))
    });
    emit(
        "spawn",
        n,
        &format!("tasks_per_s={:.0} elapsed_s={:.3} {}", n as f64 / el.as_secs_f64(), el.as_secs_f64(), c),
    );
}

// ------------------------------------------------------------------ park (gated)

fn bench_park(n: u64) {
    let (el, spawn, c) = run(async move {
        let ru = rusage();
        let t0 = Instant::now();
        let wg = WaitGroup::new(n as usize);
        let gate: &'static Semaphore = Box::leak(Box::new(Semaphore::new(0)));
        for _ in 0..n {
            tokio::spawn(async move {
                let _ = gate.acquire().await; // Err(Closed) once all N exist
                tokio::time::sleep(Duration::from_secs(2)).await;
                wg.done();
            });
        }
        let spawn = t0.elapsed();
        gate.close();
        wg.wait().await;
        (t0.elapsed(), spawn, cost(&ru, n))
    });
    let rss = peak_rss_kb();
    emit(
        "park",
        n,
        &format!(
            "bytes_per_task={:.0} elapsed_s={:.3} spawn_s={:.3} {}",
            rss as f64 * 1024.0 / n as f64,
            el.as_secs_f64(),
            spawn.as_secs_f64(),
            c
        ),
    );
}

// ------------------------------------------------------------------ skynet

/// A plain function that spawns the node, so the async block's type does not contain itself.
fn spawn_skynet(out: mpsc::Sender<i64>, num: i64, size: i64) {
    tokio::spawn(async move {
        if size == 1 {
            let _ = out.send(num).await;
            return;
        }
        let (tx, mut rx) = mpsc::channel::<i64>(1); // capacity 1: see the header
        let step = size / 10;
        for i in 0..10 {
            spawn_skynet(tx.clone(), num + i * step, step);
        }
        drop(tx);
        let mut sum = 0;
        for _ in 0..10 {
            sum += rx.recv().await.expect("skynet child");
        }
        let _ = out.send(sum).await;
    });
}

fn bench_skynet(n: u64) {
    let (sum, el, c) = run(async move {
        let ru = rusage();
        let (tx, mut rx) = mpsc::channel::<i64>(1);
        let t0 = Instant::now();
        spawn_skynet(tx, 0, n as i64);
        let sum = rx.recv().await.expect("skynet root");
        (sum, t0.elapsed(), cost(&ru, n))
    });
    let want = n as i64 * (n as i64 - 1) / 2;
    let check = if sum == want { "ok".to_string() } else { format!("FAIL({}!={})", sum, want) };
    emit(
        "skynet",
        n,
        &format!("wall_ms={:.1} check={} {}", el.as_secs_f64() * 1e3, check, c),
    );
}

// ------------------------------------------------------------------ pingpong

fn bench_pingpong(n: u64) {
    let (ns, c) = run(async move {
        let (ping_tx, mut ping_rx) = mpsc::channel::<u64>(1);
        let (pong_tx, mut pong_rx) = mpsc::channel::<u64>(1);
        let b = tokio::spawn(async move {
            for _ in 0..n {
                let v = ping_rx.recv().await.expect("ping");
                pong_tx.send(v).await.expect("pong");
            }
        });
        let ru = rusage();
        let t0 = Instant::now();
        for i in 0..n {
            ping_tx.send(i).await.expect("ping");
            pong_rx.recv().await.expect("pong");
        }
        b.await.unwrap();
        (t0.elapsed().as_nanos() as f64 / n as f64, cost(&ru, n))
    });
    emit("pingpong", n, &format!("ns_per_roundtrip={:.1} {}", ns, c));
}

// ------------------------------------------------------------------ threadsend

fn bench_threadsend(n: u64) {
    let (sum, el, c) = run(async move {
        let (tx, mut rx) = mpsc::channel::<i64>(1024);
        let ru = rusage();
        let t0 = Instant::now();
        let th = std::thread::spawn(move || {
            for i in 0..n as i64 {
                tx.blocking_send(i).expect("threadsend");
            }
            // dropping tx closes the channel
        });
        let mut sum = 0i64;
        while let Some(v) = rx.recv().await {
            sum += v;
        }
        let el = t0.elapsed();
        let c = cost(&ru, n);
        th.join().unwrap();
        (sum, el, c)
    });
    let want = n as i64 * (n as i64 - 1) / 2;
    let check = if sum == want { "ok".to_string() } else { format!("FAIL({}!={})", sum, want) };
    emit(
        "threadsend",
        n,
        &format!("msgs_per_s={:.0} check={} {}", n as f64 / el.as_secs_f64(), check, c),
    );
}

// ------------------------------------------------------------------ parallel

static SINK: AtomicU64 = AtomicU64::new(0);

fn burn(iters: u64) {
    let mut h: u64 = 1469598103934665603;
    for i in 0..iters {
        h = (h ^ i).wrapping_mul(1099511628211);
    }
    SINK.fetch_add(h, Ordering::Relaxed);
}

fn parallel_once(workers: usize, tasks: usize, iters: u64) -> f64 {
    let rt = build_runtime(Some(workers));
    let t0 = Instant::now();
    rt.block_on(async move {
        let hs: Vec<_> = (0..tasks).map(|_| tokio::spawn(async move { burn(iters) })).collect();
        for h in hs {
            h.await.unwrap();
        }
    });
    t0.elapsed().as_secs_f64()
}

fn bench_parallel() {
    let w = workers();
    let t = Instant::now();
    burn(20_000_000);
    let per = t.elapsed().as_secs_f64() / 20_000_000.0;
    let iters = (0.2 / per) as u64;
    let tasks = 2 * w;
    let ru = rusage();
    let (mut t1, mut tw) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        t1.push(parallel_once(1, tasks, iters));
        tw.push(parallel_once(w, tasks, iters));
    }
    t1.sort_by(|a, b| a.partial_cmp(b).unwrap());
    tw.sort_by(|a, b| a.partial_cmp(b).unwrap());
    emit(
        "parallel",
        tasks as u64,
        &format!("t1_s={:.3} tw_s={:.3} speedup={:.2} {}", t1[1], tw[1], t1[1] / tw[1], cost(&ru, tasks as u64)),
    );
}

// ------------------------------------------------------------------ http

fn serve_http(port: u16) {
    use hyper::service::{make_service_fn, service_fn};
    use hyper::{Body, Request, Response, Server};
    let rt = build_runtime(None);
    rt.block_on(async move {
        let make = make_service_fn(|_conn| async {
            Ok::<_, Infallible>(service_fn(|_req: Request<Body>| async {
                Ok::<_, Infallible>(
                    Response::builder()
                        .header("Content-Type", "text/plain")
                        .body(Body::from("Hello, World!\n"))
                        .unwrap(),
                )
            }))
        });
        let addr = ([127, 0, 0, 1], port).into();
        eprintln!("{} listening on 127.0.0.1:{}", peer(), port);
        if let Err(e) = Server::bind(&addr).serve(make).await {
            eprintln!("serve: {}", e);
            std::process::exit(1);
        }
    });
}

// ------------------------------------------------------------------ main

fn usage() -> ! {
    eprintln!(
        "usage: tokio-bench {{switch|spawn|park|skynet|pingpong|threadsend|parallel}} [N]\n       \
         tokio-bench http PORT\n(TOKIO_FLAVOR=ct: current-thread runtime)"
    );
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 2 {
        usage();
    }
    let wl = args[1].as_str();
    if wl == "http" {
        match args.get(2).and_then(|p| p.parse::<u16>().ok()) {
            Some(p) if p > 0 => serve_http(p),
            _ => usage(),
        }
        return;
    }
    let default = match wl {
        "switch" => 10_000_000,
        "spawn" | "park" | "skynet" | "pingpong" | "threadsend" => 1_000_000,
        "parallel" => 0,
        _ => usage(),
    };
    let n: u64 = match args.get(2) {
        Some(s) => s.parse().unwrap_or_else(|_| usage()),
        None => default,
    };
    if n == 0 && wl != "parallel" {
        usage();
    }
    match wl {
        "switch" => bench_switch(n),
        "spawn" => bench_spawn(n),
        "park" => bench_park(n),
        "skynet" => bench_skynet(n),
        "pingpong" => bench_pingpong(n),
        "threadsend" => bench_threadsend(n),
        "parallel" => bench_parallel(),
        _ => usage(),
    }
}
