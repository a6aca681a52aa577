//! Bench-only: measures how often, and for how long, this machine stops running a thread that
//! never waits (a "hiccup meter", like jHiccup). `bench/load.sh` runs one per core, pinned,
//! while nothing else of the benchmark runs, so that the latency-under-load numbers of the same
//! run can be read against the machine's own stalls: no server can answer a request while the
//! core it runs on is not running it.
//!
//! The thread reads the monotonic clock in a tight loop; any gap between two reads longer than
//! `--min-us` is time the thread was not running (preempted by another process, an interrupt,
//! or the hypervisor taking the virtual CPU away). It prints the gaps' counts by size, the
//! longest, and the share of the time lost.
//!
//! ```sh
//! cargo build --release --example stall_meter
//! taskset -c 0 target/release/examples/stall_meter --seconds 10 --json
//! ```

use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Counts the gaps in a thread that never waits (machine stalls)")]
struct Args {
    /// How long to measure.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Gaps shorter than this are not counted as stalls (µs).
    #[arg(long, default_value_t = 50)]
    min_us: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Stall sizes reported, in µs: a stall counts in every bucket it is longer than.
const OVER_US: [u64; 6] = [100, 250, 500, 1_000, 2_000, 5_000];

fn main() {
    let args = Args::parse();
    let duration = Duration::from_secs_f64(args.seconds);
    let min = Duration::from_micros(args.min_us);
    let mut stalls: Vec<Duration> = Vec::with_capacity(1 << 16);
    let start = Instant::now();
    let mut last = start;
    loop {
        let now = Instant::now();
        let gap = now - last;
        if gap > min {
            stalls.push(gap);
        }
        last = now;
        if now - start >= duration {
            break;
        }
    }
    let elapsed = last - start;
    let lost: Duration = stalls.iter().sum();
    let longest = stalls.iter().max().copied().unwrap_or_default();
    let over: Vec<(u64, usize)> = OVER_US
        .iter()
        .map(|&us| {
            let limit = Duration::from_micros(us);
            (us, stalls.iter().filter(|&&g| g > limit).count())
        })
        .collect();
    let lost_over_1ms: Duration = stalls
        .iter()
        .filter(|&&g| g > Duration::from_millis(1))
        .sum();
    let share = |d: Duration| 100.0 * d.as_secs_f64() / elapsed.as_secs_f64();
    if args.json {
        let counts: Vec<String> = over
            .iter()
            .map(|(us, n)| format!("\"over_{us}us\":{n}"))
            .collect();
        println!(
            "{{\"seconds\":{:.3},\"stalls\":{},{},\"longest_us\":{},\"lost_pct\":{:.3},\"lost_over_1ms_pct\":{:.3}}}",
            elapsed.as_secs_f64(),
            stalls.len(),
            counts.join(","),
            longest.as_micros(),
            share(lost),
            share(lost_over_1ms),
        );
    } else {
        println!(
            "{:.1} s measured, {} stalls over {} µs",
            elapsed.as_secs_f64(),
            stalls.len(),
            args.min_us
        );
        for (us, n) in over {
            println!("  over {us:>5} µs: {n}");
        }
        println!(
            "  longest {} µs; time lost {:.3} % ({:.3} % in stalls over 1 ms)",
            longest.as_micros(),
            share(lost),
            share(lost_over_1ms)
        );
    }
}
