//! Bench-only: an open-loop, constant-rate HTTP load generator (wrk2-style) for
//! `bench/load.sh`'s latency-under-load measurement.
//!
//! Request `i` is *scheduled* at `start + i / rate`; connection `k` owns the slots
//! `k, k + C, k + 2C, …` and sends each one at its scheduled time, or as soon as its previous
//! response has arrived when it is running late. Latency is measured from the **scheduled**
//! time to the end of the response, so a stalled server is charged for every request it kept
//! waiting (no coordinated omission). The wait for a slot is a coarse tokio sleep followed by
//! a yield-spin for the last 1.5 ms, so requests leave within microseconds of their slot
//! instead of in bursts at tokio's 1 ms timer ticks (the generator should have a core to
//! itself: `taskset -c 1`).
//!
//! Bodies are read from a file, one JSON body per line, and sent in turn (every connection
//! starts at a different line), so the same varied requests as the wrk run go out.
//!
//! ```sh
//! cargo build --release --example fixed_rate
//! target/release/examples/fixed_rate --url http://127.0.0.1:18080/v1/decide --rate 5000 \
//!     --duration 10 --connections 32 --bodies bodies.jsonl --token T [--json]
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;

#[derive(Parser, Debug)]
#[command(about = "Open-loop constant-rate load generator (latency from the scheduled time)")]
struct Args {
    /// http://HOST:PORT/PATH (plain HTTP/1.1, keep-alive).
    #[arg(long)]
    url: String,
    /// Requests per second, all connections together.
    #[arg(long)]
    rate: f64,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds sent at the same rate before measuring (not recorded).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// One JSON body per line.
    #[arg(long)]
    bodies: std::path::PathBuf,
    /// Sent as `Authorization: Bearer <token>`.
    #[arg(long)]
    token: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Write "<ms since the first measured slot> <latency µs>" for every request slower than
    /// --slow-us to this file (to see when stalls happen).
    #[arg(long)]
    slow_log: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 1000)]
    slow_us: u64,
}

#[derive(Default)]
struct Tally {
    /// Microseconds from the scheduled time to the end of the response (measured slots only).
    latencies: Vec<u64>,
    /// Microseconds from the actual send to the end of the response (service time).
    service: Vec<u64>,
    ok: u64,
    non_2xx: u64,
    errors: u64,
    /// Slots sent more than 100 µs after their scheduled time (the connection was busy, or the
    /// generator could not keep up).
    late: u64,
    /// Microseconds between the scheduled and the actual send for slots whose connection was
    /// free in time: the generator's own precision (it grows when the generator is starved).
    send_lag: Vec<u64>,
    /// (µs since the first measured slot, latency µs) of requests slower than `slow_us`.
    slow: Vec<(u64, u64)>,
}

struct Plan {
    addr: SocketAddr,
    host: String,
    path: String,
    authorization: String,
    bodies: Vec<Bytes>,
    start: Instant,
    interval: Duration,
    warmup_slots: u64,
    total_slots: u64,
    connections: u64,
    slow_us: u64,
}

fn parse_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are supported")?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    Ok((host.to_string(), path))
}

/// Waits until `deadline` with a tokio sleep, then a yield-spin for the last 1.5 ms.
async fn wait_until(deadline: Instant) {
    const SPIN: Duration = Duration::from_micros(1500);
    let now = Instant::now();
    if deadline > now + SPIN {
        tokio::time::sleep_until((deadline - SPIN).into()).await;
    }
    while Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(plan: &Plan) -> Result<Sender, Box<dyn std::error::Error + Send + Sync>> {
    let stream = tokio::net::TcpStream::connect(plan.addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::task::spawn_local(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

async fn run_connection(plan: Arc<Plan>, k: u64) -> Tally {
    let mut tally = Tally::default();
    let mut sender: Option<Sender> = None;
    let mut slot = k;
    let mut body_index = (k as usize * 7919) % plan.bodies.len();
    let mut free_since = plan.start;
    while slot < plan.total_slots {
        let scheduled = plan.start + plan.interval * slot as u32;
        wait_until(scheduled).await;
        let sent = Instant::now();
        let measured = slot >= plan.warmup_slots;
        if measured {
            let lag = sent.saturating_duration_since(scheduled);
            if lag > Duration::from_micros(100) {
                tally.late += 1;
            }
            if free_since <= scheduled {
                tally.send_lag.push(lag.as_micros() as u64);
            }
        }
        if sender.is_none() {
            match connect(&plan).await {
                Ok(s) => sender = Some(s),
                Err(_) => {
                    tally.errors += u64::from(measured);
                    slot += plan.connections;
                    continue;
                }
            }
        }
        let body = plan.bodies[body_index].clone();
        body_index = (body_index + 1) % plan.bodies.len();
        let request = Request::builder()
            .method(Method::POST)
            .uri(plan.path.as_str())
            .header(HOST, plan.host.as_str())
            .header(AUTHORIZATION, plan.authorization.as_str())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .expect("valid request");
        let s = sender.as_mut().expect("connected");
        let outcome = async {
            s.ready().await?;
            let response = s.send_request(request).await?;
            let status = response.status();
            response.into_body().collect().await?;
            Ok::<_, hyper::Error>(status)
        }
        .await;
        let done = Instant::now();
        free_since = done;
        match outcome {
            Ok(status) => {
                if measured {
                    let latency = done.duration_since(scheduled).as_micros() as u64;
                    if latency > plan.slow_us {
                        let at = (plan.interval * (slot - plan.warmup_slots) as u32).as_micros();
                        tally.slow.push((at as u64, latency));
                    }
                    tally.latencies.push(latency);
                    tally
                        .service
                        .push(done.duration_since(sent).as_micros() as u64);
                    if status.is_success() {
                        tally.ok += 1;
                    } else {
                        tally.non_2xx += 1;
                    }
                }
            }
            Err(_) => {
                tally.errors += u64::from(measured);
                sender = None;
            }
        }
        slot += plan.connections;
    }
    tally
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = Args::parse();
    if args.rate.is_nan() || args.rate <= 0.0 || args.connections == 0 {
        return Err("--rate must be > 0 and --connections >= 1".into());
    }
    let (host, path) = parse_url(&args.url)?;
    let addr: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(host.as_str())?
        .next()
        .ok_or("cannot resolve the host")?;
    let bodies: Vec<Bytes> = std::fs::read_to_string(&args.bodies)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Bytes::from(l.to_string()))
        .collect();
    if bodies.is_empty() {
        return Err("the bodies file is empty".into());
    }
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let warmup_slots = (args.warmup * args.rate).round() as u64;
    let measured_slots = (args.duration * args.rate).round() as u64;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let tallies = local.block_on(&runtime, async {
        let plan = Arc::new(Plan {
            addr,
            host,
            path,
            authorization: format!("Bearer {}", args.token),
            bodies,
            // Leave time to open the connections before the first slot.
            start: Instant::now() + Duration::from_millis(200),
            interval,
            warmup_slots,
            total_slots: warmup_slots + measured_slots,
            connections: args.connections as u64,
            slow_us: args.slow_us,
        });
        let tasks: Vec<_> = (0..args.connections as u64)
            .map(|k| tokio::task::spawn_local(run_connection(plan.clone(), k)))
            .collect();
        let mut tallies = Vec::new();
        for t in tasks {
            tallies.push(t.await.expect("connection task"));
        }
        tallies
    });
    let mut all = Tally::default();
    for t in tallies {
        all.latencies.extend(t.latencies);
        all.service.extend(t.service);
        all.ok += t.ok;
        all.non_2xx += t.non_2xx;
        all.errors += t.errors;
        all.late += t.late;
        all.send_lag.extend(t.send_lag);
        all.slow.extend(t.slow);
    }
    if let Some(path) = &args.slow_log {
        all.slow.sort_unstable();
        let text: String = all
            .slow
            .iter()
            .map(|(at, latency)| format!("{:.3} {latency}\n", *at as f64 / 1000.0))
            .collect();
        std::fs::write(path, text)?;
    }
    all.latencies.sort_unstable();
    all.service.sort_unstable();
    all.send_lag.sort_unstable();
    let lag_p99 = percentile(&all.send_lag, 99.0);
    let lag_p999 = percentile(&all.send_lag, 99.9);
    let l = &all.latencies;
    let s = &all.service;
    let (p50, p90, p99, p999, max) = (
        percentile(l, 50.0),
        percentile(l, 90.0),
        percentile(l, 99.0),
        percentile(l, 99.9),
        l.last().copied().unwrap_or(0),
    );
    if args.json {
        println!(
            "{{\"rate\":{},\"duration_s\":{},\"connections\":{},\"requests\":{},\"ok\":{},\"non_2xx\":{},\"errors\":{},\"late_sends\":{},\"p50_us\":{p50},\"p90_us\":{p90},\"p99_us\":{p99},\"p999_us\":{p999},\"max_us\":{max},\"service_p50_us\":{},\"service_p99_us\":{},\"send_lag_p99_us\":{lag_p99},\"send_lag_p999_us\":{lag_p999}}}",
            args.rate,
            args.duration,
            args.connections,
            l.len(),
            all.ok,
            all.non_2xx,
            all.errors,
            all.late,
            percentile(s, 50.0),
            percentile(s, 99.0),
        );
    } else {
        println!(
            "{} requests at {} req/s over {} s on {} connections: {} ok, {} non-2xx, {} errors, {} sent late",
            l.len(),
            args.rate,
            args.duration,
            args.connections,
            all.ok,
            all.non_2xx,
            all.errors,
            all.late
        );
        println!(
            "latency from scheduled send (µs): p50 {p50}  p90 {p90}  p99 {p99}  p99.9 {p999}  max {max}"
        );
        println!(
            "service time from actual send (µs): p50 {}  p99 {}",
            percentile(s, 50.0),
            percentile(s, 99.0)
        );
        println!(
            "generator precision, send lag on free connections (µs): p99 {lag_p99}  p99.9 {lag_p999}"
        );
    }
    Ok(())
}
