//! Many small messages written through xev's `WriteQueue`, against a loop of
//! `write_all` on xev and on tokio's current-thread runtime (and tokio's
//! usual fix for small writes, a `BufWriter`, for reference).
//!
//! The queue runs two ways: `queue` pushes every message at once and awaits
//! the last (the queue holds them all), `queue_bounded` awaits `flush`
//! whenever 256 KiB are queued (the backpressure the queue's docs suggest).
//!
//! Each run opens one loopback connection, writes N messages of S bytes, and
//! closes it; a plain blocking reader on its own thread counts the bytes.
//! The time is from the first write until the reader has every byte.
//!
//! ```text
//! cargo bench --bench write_queue [-- --quick] [-- --messages N --size S --runs R]
//! cargo bench --bench write_queue -- only queue     # one variant, for strace:
//! strace -c -f target/release/deps/write_queue-* only queue
//! ```

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::thread;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

/// The variants, by the name `only` takes.
const VARIANTS: [(&str, &str); 5] = [
    ("queue", "WriteQueue (xev)"),
    ("queue_bounded", "WriteQueue, 256K (xev)"),
    ("write_all", "write_all loop (xev)"),
    ("tokio", "write_all loop (tokio)"),
    ("tokio_bufwriter", "BufWriter (tokio)"),
];

struct Options {
    messages: usize,
    size: usize,
    runs: usize,
    only: Option<String>,
}

fn main() -> io::Result<()> {
    let options = parse_args()?;
    let variants: Vec<_> = VARIANTS
        .iter()
        .filter(|(name, _)| match &options.only {
            Some(only) => only == name,
            None => true,
        })
        .collect();
    let message: Vec<u8> = (0..options.size).map(|i| b'a' + (i % 26) as u8).collect();
    let total = options.messages * options.size;
    println!(
        "{} messages x {} B ({:.1} MB) per run, median of {} runs",
        options.messages,
        options.size,
        total as f64 / 1e6,
        options.runs
    );

    // Variants take turns run by run, so a slow patch of the machine is
    // shared out rather than landing on one of them.
    let mut times = vec![Vec::new(); variants.len()];
    for _ in 0..options.runs {
        for (times, (name, _)) in times.iter_mut().zip(&variants) {
            times.push(run(name, &message, options.messages)?);
        }
    }

    let medians: Vec<Duration> = times.iter_mut().map(|t| median(t)).collect();
    println!(
        "{:<24} {:>10} {:>9} {:>12} {:>13}",
        "variant", "time", "MB/s", "messages/s", "time / queue"
    );
    for ((_, label), time) in variants.iter().zip(&medians) {
        let secs = time.as_secs_f64();
        let ratio = match variants.iter().position(|(name, _)| *name == "queue") {
            Some(queue) => format!("{:.2}x", secs / medians[queue].as_secs_f64()),
            None => "-".to_string(),
        };
        println!(
            "{:<24} {:>7.1} ms {:>9.1} {:>12.0} {:>13}",
            label,
            secs * 1e3,
            total as f64 / secs / 1e6,
            options.messages as f64 / secs,
            ratio
        );
    }
    Ok(())
}

/// One run of variant `name`: the time until the reader has every byte.
fn run(name: &str, message: &[u8], messages: usize) -> io::Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let total = message.len() * messages;
    let reader = thread::spawn(move || -> io::Result<usize> {
        let (mut stream, _) = listener.accept()?;
        let mut buf = vec![0; 256 * 1024];
        let mut received = 0;
        loop {
            match stream.read(&mut buf)? {
                0 => return Ok(received),
                n => received += n,
            }
        }
    });

    let start = Instant::now();
    match name {
        "queue" => xev::rt::block_on(xev_queue(addr, message, messages, usize::MAX))?,
        "queue_bounded" => xev::rt::block_on(xev_queue(addr, message, messages, 256 * 1024))?,
        "write_all" => xev::rt::block_on(xev_write_all(addr, message, messages))?,
        "tokio" | "tokio_bufwriter" => tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?
            .block_on(tokio_write_all(addr, message, messages, name != "tokio"))?,
        _ => unreachable!("variant names are checked in parse_args"),
    }
    let received = reader.join().expect("the reader thread does not panic")?;
    let elapsed = start.elapsed();
    assert_eq!(received, total, "{name}: the reader got every byte");
    Ok(elapsed)
}

/// Pushes every message (an owned `Vec`, as a producer would build it),
/// waiting for a flush whenever `limit` bytes are queued, then waits for the
/// last one to be written.
async fn xev_queue(
    addr: SocketAddr,
    message: &[u8],
    messages: usize,
    limit: usize,
) -> io::Result<()> {
    let stream = Rc::new(xev::net::TcpStream::connect(addr).await?);
    let queue = xev::io::WriteQueue::new(stream.clone());
    for _ in 1..messages {
        drop(queue.push(message.to_vec()));
        if queue.queued_bytes() >= limit {
            queue.flush().await?;
        }
    }
    queue.push(message.to_vec()).await?;
    stream.shutdown(std::net::Shutdown::Write)
}

async fn xev_write_all(addr: SocketAddr, message: &[u8], messages: usize) -> io::Result<()> {
    let stream = xev::net::TcpStream::connect(addr).await?;
    for _ in 0..messages {
        stream.write_all(message).await?;
    }
    stream.shutdown(std::net::Shutdown::Write)
}

async fn tokio_write_all(
    addr: SocketAddr,
    message: &[u8],
    messages: usize,
    buffered: bool,
) -> io::Result<()> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    if buffered {
        let mut writer = tokio::io::BufWriter::new(&mut stream);
        for _ in 0..messages {
            writer.write_all(message).await?;
        }
        writer.flush().await?;
    } else {
        for _ in 0..messages {
            stream.write_all(message).await?;
        }
    }
    stream.shutdown().await
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn parse_args() -> io::Result<Options> {
    let usage = "usage: write_queue [--quick] [--messages N] [--size BYTES] [--runs R] \
                 [only queue|queue_bounded|write_all|tokio|tokio_bufwriter]";
    let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidInput, message);
    let mut options = Options {
        messages: 100_000,
        size: 64,
        runs: 7,
        only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |what: &str| {
            args.next()
                .and_then(|value| value.parse::<usize>().ok())
                .filter(|&n| n > 0)
                .ok_or_else(|| invalid(format!("{what} takes a positive number; {usage}")))
        };
        match arg.as_str() {
            "--quick" => (options.runs, options.messages) = (3, 50_000),
            "--messages" => options.messages = number("--messages")?,
            "--size" => options.size = number("--size")?,
            "--runs" => options.runs = number("--runs")?,
            "only" => {
                let name = args.next().unwrap_or_default();
                if !VARIANTS.iter().any(|(known, _)| *known == name) {
                    return Err(invalid(format!("unknown variant {name:?}; {usage}")));
                }
                options.only = Some(name);
            }
            // `cargo bench` passes `--bench` to every harness-less bench.
            "--bench" => {}
            _ => return Err(invalid(format!("unknown argument {arg:?}; {usage}"))),
        }
    }
    Ok(options)
}
