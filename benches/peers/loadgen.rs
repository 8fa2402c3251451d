//! The load generator: one mio event loop on its own thread (or process),
//! the same for every server, so that only the server differs between the
//! runs of a TCP scenario.
//!
//! It is written like the mio floor server (a read only on an event, stop at
//! a short read), so it costs about what the cheapest server costs and is
//! not what limits the figures of slower ones. Each figure is taken over a
//! window that starts after a warm-up; the server thread's CPU clock is read
//! at both ends of the window.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::cpu::ThreadClock;

/// The ping-pong message size.
pub const MESSAGE_LEN: usize = 64;

/// When a load generator stops.
#[derive(Clone, Copy, Debug)]
pub enum Until {
    /// Runs for `warmup`, then measures for `measure`.
    Elapsed { warmup: Duration, measure: Duration },
    /// Every connection makes this many round trips; everything is measured.
    Rounds(u64),
}

/// What happened in the measured window.
#[derive(Debug)]
pub struct Window {
    pub elapsed: Duration,
    pub server_cpu: Duration,
    pub client_cpu: Duration,
}

/// The start of a measured window.
struct WindowStart {
    at: Instant,
    server_cpu: Duration,
    client_cpu: Duration,
}

impl WindowStart {
    fn now(at: Instant, server: Option<ThreadClock>) -> WindowStart {
        WindowStart {
            at,
            server_cpu: server.map_or(Duration::ZERO, ThreadClock::elapsed),
            client_cpu: ThreadClock::current().elapsed(),
        }
    }

    fn close(&self, at: Instant, server: Option<ThreadClock>) -> Window {
        let end = WindowStart::now(at, server);
        Window {
            elapsed: end.at - self.at,
            server_cpu: end.server_cpu - self.server_cpu,
            client_cpu: end.client_cpu - self.client_cpu,
        }
    }
}

#[derive(Debug)]
pub struct PingPongReport {
    pub round_trips: u64,
    /// Nanoseconds from send to the complete echo, one per measured round trip.
    pub latencies: Vec<u32>,
    pub window: Window,
}

struct PingPongConnection {
    stream: TcpStream,
    sent_at: Instant,
    /// Echoed bytes of the message in flight received so far.
    received: usize,
    rounds: u64,
}

fn connect(addr: SocketAddr) -> io::Result<std::net::TcpStream> {
    let stream = std::net::TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_nonblocking(true)?;
    Ok(stream)
}

fn poll_for(poll: &mut Poll, events: &mut Events, timeout: Duration) -> io::Result<()> {
    match poll.poll(events, Some(timeout)) {
        Err(error) if error.kind() == io::ErrorKind::Interrupted => Ok(()),
        result => result,
    }
}

/// Keeps one 64-byte message in flight on each of `conns` connections: as
/// soon as a message is echoed in full, the next one is sent.
pub fn ping_pong(
    addr: SocketAddr,
    conns: usize,
    until: Until,
    server: Option<ThreadClock>,
) -> io::Result<PingPongReport> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut connections = Vec::with_capacity(conns);
    for key in 0..conns {
        let mut stream = TcpStream::from_std(connect(addr)?);
        poll.registry()
            .register(&mut stream, Token(key), Interest::READABLE)?;
        connections.push(PingPongConnection {
            stream,
            sent_at: Instant::now(),
            received: 0,
            rounds: 0,
        });
    }

    let message = [0x5a; MESSAGE_LEN];
    let send = |connection: &mut PingPongConnection, now: Instant| -> io::Result<()> {
        connection.sent_at = now;
        match connection.stream.write(&message) {
            Ok(MESSAGE_LEN) => Ok(()),
            Ok(n) => Err(io::Error::other(format!(
                "load generator: a {MESSAGE_LEN}-byte send took only {n} bytes"
            ))),
            Err(error) => Err(error),
        }
    };
    let (rounds, warmup_end, measure_end) = match until {
        Until::Elapsed { warmup, measure } => {
            let start = Instant::now();
            (u64::MAX, start + warmup, Some(start + warmup + measure))
        }
        Until::Rounds(rounds) => (rounds, Instant::now(), None),
    };

    let mut in_flight = 0;
    let now = Instant::now();
    if rounds > 0 {
        for connection in &mut connections {
            send(connection, now)?;
            in_flight += 1;
        }
    }
    let mut window_start: Option<WindowStart> = None;
    let mut window: Option<Window> = None;
    let mut round_trips = 0;
    let mut latencies = Vec::new();
    let mut buf = [0; 4096];
    while in_flight > 0 {
        poll_for(&mut poll, &mut events, Duration::from_millis(50))?;
        let now = Instant::now();
        if window_start.is_none() && now >= warmup_end {
            window_start = Some(WindowStart::now(now, server));
        }
        if let (Some(start), Some(end), None) = (&window_start, measure_end, &window) {
            if now >= end {
                window = Some(start.close(now, server));
            }
        }
        let measuring = window_start.is_some() && window.is_none();
        for event in events.iter() {
            let connection = &mut connections[event.token().0];
            loop {
                match connection.stream.read(&mut buf) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(n) => {
                        connection.received += n;
                        if n < buf.len() {
                            break;
                        }
                    }
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(error) => return Err(error),
                }
            }
            while connection.received >= MESSAGE_LEN {
                connection.received -= MESSAGE_LEN;
                connection.rounds += 1;
                in_flight -= 1;
                if measuring {
                    round_trips += 1;
                    let latency = now - connection.sent_at;
                    latencies.push(u32::try_from(latency.as_nanos()).unwrap_or(u32::MAX));
                }
                if window.is_none() && connection.rounds < rounds {
                    send(connection, now)?;
                    in_flight += 1;
                }
            }
        }
    }
    let window = match window {
        Some(window) => window,
        // Counted rounds: the window is the whole run.
        None => window_start
            .unwrap_or_else(|| WindowStart::now(now, server))
            .close(Instant::now(), server),
    };
    Ok(PingPongReport {
        round_trips,
        latencies,
        window,
    })
}

#[derive(Debug)]
pub struct StreamReport {
    /// Bytes echoed back within the window.
    pub bytes: u64,
    pub window: Window,
}

/// Streams `chunk`-byte writes to the echo server on one connection, reading
/// the echo as fast as it comes, then half-closes and reads to the end.
pub fn stream(
    addr: SocketAddr,
    chunk: usize,
    warmup: Duration,
    measure: Duration,
    server: ThreadClock,
) -> io::Result<StreamReport> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(16);
    let mut stream = TcpStream::from_std(connect(addr)?);
    poll.registry().register(
        &mut stream,
        Token(0),
        Interest::READABLE | Interest::WRITABLE,
    )?;
    let data = vec![0xa5; chunk];
    let mut buf = vec![0; chunk];
    // Where in `data` the next write starts.
    let mut offset = 0;
    let mut writable = true;
    let start = Instant::now();
    let (warmup_end, measure_end) = (start + warmup, start + warmup + measure);
    let mut window_start: Option<WindowStart> = None;
    let mut window: Option<Window> = None;
    let mut bytes = 0;
    loop {
        while writable && window.is_none() {
            match stream.write(&data[offset..]) {
                Ok(n) => offset = (offset + n) % chunk,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => writable = false,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        let measuring = window_start.is_some() && window.is_none();
        loop {
            match stream.read(&mut buf) {
                Ok(0) => {
                    return match window {
                        Some(window) => Ok(StreamReport { bytes, window }),
                        None => Err(io::ErrorKind::UnexpectedEof.into()),
                    }
                }
                Ok(n) if measuring => bytes += n as u64,
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        poll_for(&mut poll, &mut events, Duration::from_millis(50))?;
        writable |= events.iter().any(|event| event.is_writable());
        let now = Instant::now();
        if window_start.is_none() && now >= warmup_end {
            window_start = Some(WindowStart::now(now, Some(server)));
        }
        if let (Some(start), None) = (&window_start, &window) {
            if now >= measure_end {
                window = Some(start.close(now, Some(server)));
                stream.shutdown(std::net::Shutdown::Write)?;
            }
        }
    }
}

/// Opens `conns` connections and holds them, idle, until its standard input
/// is closed (by the parent process that measures the server).
pub fn idle(addr: SocketAddr, conns: usize) -> io::Result<()> {
    let streams = (0..conns)
        .map(|_| std::net::TcpStream::connect(addr))
        .collect::<io::Result<Vec<_>>>()?;
    io::copy(&mut io::stdin(), &mut io::sink())?;
    drop(streams);
    Ok(())
}
