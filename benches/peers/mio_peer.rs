//! The floor: hand-written mio event loops, no runtime, no tasks, no
//! wakers. Anything built on mio pays at least this.
//!
//! Each loop reads a socket only when epoll said it is readable and stops
//! at a short read (edge-triggered epoll reports data that arrives later),
//! so a round trip costs one `recvfrom`, one `sendto` and a share of an
//! `epoll_wait`. Except once the peer has closed its side: a FIN that came
//! with the last data makes that read short too, and no later edge
//! reports it, so then the loop reads on until it sees the end.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::ops::Range;
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::echo::{EchoConfig, ServerPhase};
use crate::ping_pongs::{MessageCounter, PING, PONG};

const LISTENER: Token = Token(usize::MAX);

fn poll_once(poll: &mut Poll, events: &mut Events) -> io::Result<()> {
    match poll.poll(events, None) {
        Err(error) if error.kind() == io::ErrorKind::Interrupted => Ok(()),
        result => result,
    }
}

/// Whether an event gives a connection something to do: data or EOF to
/// read, an error to report, or room to send bytes it holds back.
fn concerns(event: &Event, has_unsent: bool) -> bool {
    event.is_readable()
        || event.is_read_closed()
        || event.is_error()
        || (has_unsent && (event.is_writable() || event.is_write_closed()))
}

pub fn echo_server(listener: std::net::TcpListener, mut config: EchoConfig) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut listener = TcpListener::from_std(listener);
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    config.notify(ServerPhase::Listening);
    let mut connections: Slab<EchoConnection> = Slab::with_capacity(config.conns);
    let (mut accepted, mut closed) = (0, 0);
    while closed < config.conns {
        poll_once(&mut poll, &mut events)?;
        for event in events.iter() {
            if event.token() == LISTENER {
                while accepted < config.conns {
                    let (mut stream, _) = match listener.accept() {
                        Ok(accepted) => accepted,
                        Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                        Err(error) => return Err(error),
                    };
                    stream.set_nodelay(true)?;
                    let entry = connections.vacant_entry();
                    poll.registry().register(
                        &mut stream,
                        Token(entry.key()),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    entry.insert(EchoConnection {
                        stream,
                        buf: vec![0; config.buf_size],
                        unsent: 0..0,
                        read_closed: false,
                    });
                    accepted += 1;
                    if accepted == config.conns {
                        config.notify(ServerPhase::Idle);
                    }
                }
                continue;
            }
            let key = event.token().0;
            let Some(connection) = connections.get_mut(key) else {
                continue;
            };
            if !concerns(event, !connection.unsent.is_empty()) {
                continue;
            }
            connection.read_closed |= event.is_read_closed();
            // An error (a reset) ends the connection like an orderly close.
            if !connection.echo().unwrap_or(false) {
                connections.remove(key);
                closed += 1;
            }
        }
    }
    Ok(())
}

struct EchoConnection {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The part of `buf` read but not yet sent back.
    unsent: Range<usize>,
    /// epoll reported the peer's FIN: a short read no longer means drained.
    read_closed: bool,
}

impl EchoConnection {
    /// Sends back what is pending, then reads and sends until the socket is
    /// drained or its send buffer is full. `Ok(false)` once the peer closed.
    fn echo(&mut self) -> io::Result<bool> {
        let mut drained = false;
        loop {
            while !self.unsent.is_empty() {
                match self.stream.write(&self.buf[self.unsent.clone()]) {
                    Ok(n) => self.unsent.start += n,
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(error) => return Err(error),
                }
            }
            if drained {
                return Ok(true);
            }
            match self.stream.read(&mut self.buf) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.unsent = 0..n;
                    drained = n < self.buf.len() && !self.read_closed;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
    }
}

/// One end of a ping-pongs connection: reads, counts messages, and sends
/// whatever `answer` queues for them.
struct PingPongEnd {
    stream: TcpStream,
    counter: MessageCounter,
    outgoing: Vec<u8>,
    /// epoll reported the peer's FIN: a short read no longer means drained.
    read_closed: bool,
}

impl PingPongEnd {
    fn register(poll: &Poll, mut stream: TcpStream, incoming: &[u8]) -> io::Result<PingPongEnd> {
        stream.set_nodelay(true)?;
        poll.registry().register(
            &mut stream,
            Token(0),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        Ok(PingPongEnd {
            stream,
            counter: MessageCounter::new(incoming),
            outgoing: Vec::new(),
            read_closed: false,
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        while !self.outgoing.is_empty() {
            match self.stream.write(&self.outgoing) {
                Ok(n) => {
                    self.outgoing.drain(..n);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Handles one event; `answer` gets the number of messages each read
    /// completed and queues the reply. `Ok(false)` once the peer closed.
    fn pump(
        &mut self,
        event: &Event,
        mut answer: impl FnMut(usize, &mut Vec<u8>),
    ) -> io::Result<bool> {
        if !concerns(event, !self.outgoing.is_empty()) {
            return Ok(true);
        }
        self.read_closed |= event.is_read_closed();
        self.flush()?;
        let mut buf = [0; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    let messages = self.counter.feed(&buf[..n])?;
                    answer(messages, &mut self.outgoing);
                    self.flush()?;
                    if n < buf.len() && !self.read_closed {
                        return Ok(true);
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
    }
}

pub fn ping_pongs_server(listener: std::net::TcpListener) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(64);
    let mut listener = TcpListener::from_std(listener);
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let stream = loop {
        poll_once(&mut poll, &mut events)?;
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    };
    let mut end = PingPongEnd::register(&poll, stream, PING)?;
    loop {
        poll_once(&mut poll, &mut events)?;
        for event in events.iter().filter(|event| event.token() == Token(0)) {
            let open = end.pump(event, |pings, outgoing| {
                for _ in 0..pings {
                    outgoing.extend_from_slice(PONG);
                }
            })?;
            if !open {
                return Ok(());
            }
        }
    }
}

pub fn ping_pongs_client(addr: SocketAddr, pongs: u64) -> io::Result<Duration> {
    let start = Instant::now();
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(64);
    let stream = std::net::TcpStream::connect(addr)?;
    stream.set_nonblocking(true)?;
    let mut end = PingPongEnd::register(&poll, TcpStream::from_std(stream), PONG)?;
    end.outgoing.extend_from_slice(PING);
    end.flush()?;
    let mut seen = 0;
    while seen < pongs {
        poll_once(&mut poll, &mut events)?;
        for event in events.iter() {
            let open = end.pump(event, |new, outgoing| {
                let new = new as u64;
                seen += new;
                for _ in 0..new.min(pongs.saturating_sub(seen)) {
                    outgoing.extend_from_slice(PING);
                }
            })?;
            if !open && seen < pongs {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
    Ok(start.elapsed())
}
