//! `xev::signal`: `ctrl_c` and `unix::signal` see signals the process sends
//! itself; several runtimes see the same signal; a signal sent before the
//! first `recv` is not lost; `examples/graceful.rs` (one runtime) lets a
//! live connection finish after `SIGTERM` and refuses new ones.
//!
//! Signal handlers are process-wide and stay installed, so each test runs
//! in a child copy of this binary; every wait is bounded.
#![cfg(unix)]

use std::sync::{mpsc, Arc, Barrier};
use std::time::Duration;

use xev::signal::unix::{signal, SignalKind};
use xev::time::timeout;

mod common;

#[allow(dead_code)] // its `main`
#[path = "../examples/graceful.rs"]
mod graceful;

use common::child::{is_child, run};

/// Sends `kind` to this process.
fn raise(kind: SignalKind) {
    // SAFETY: `kill` and `getpid` have no memory-safety preconditions.
    let sent = unsafe { libc::kill(libc::getpid(), kind.as_raw_value()) };
    assert_eq!(sent, 0, "kill failed: {}", std::io::Error::last_os_error());
}

#[test]
fn ctrl_c_resolves_when_the_process_sends_itself_sigint() {
    const NAME: &str = "ctrl_c_resolves_when_the_process_sends_itself_sigint";
    if !is_child(NAME) {
        return run(NAME);
    }
    xev::rt::block_on(async {
        let ctrl_c = xev::rt::spawn(xev::signal::ctrl_c());
        // Its first poll registers the listener.
        xev::rt::yield_now().await;
        raise(SignalKind::interrupt());
        let result = timeout(Duration::from_secs(5), ctrl_c)
            .await
            .expect("ctrl_c() resolves within 5 s of SIGINT");
        result.unwrap().expect("ctrl_c() is Ok");
    });
    // Still alive: SIGINT no longer ends the process.
}

#[test]
fn a_signal_sent_before_the_first_recv_is_delivered_to_it() {
    const NAME: &str = "a_signal_sent_before_the_first_recv_is_delivered_to_it";
    if !is_child(NAME) {
        return run(NAME);
    }
    xev::rt::block_on(async {
        let mut usr1 = signal(SignalKind::user_defined1()).unwrap();
        assert_eq!(usr1.kind(), SignalKind::user_defined1());
        raise(SignalKind::user_defined1());
        let got = timeout(Duration::from_secs(5), usr1.recv()).await;
        assert_eq!(got, Ok(Some(())));
        // Each later delivery wakes the next `recv`.
        for _ in 0..3 {
            raise(SignalKind::user_defined1());
            let got = timeout(Duration::from_secs(5), usr1.recv()).await;
            assert_eq!(got, Ok(Some(())));
        }
        // And nothing more is pending.
        let quiet = timeout(Duration::from_millis(50), usr1.recv()).await;
        assert!(quiet.is_err(), "a delivery was seen twice");
    });
}

#[test]
fn several_runtimes_each_see_the_same_signal() {
    const NAME: &str = "several_runtimes_each_see_the_same_signal";
    if !is_child(NAME) {
        return run(NAME);
    }
    const RUNTIMES: usize = 3;
    let registered = Arc::new(Barrier::new(RUNTIMES + 1));
    let (seen_tx, seen_rx) = mpsc::channel();
    let threads: Vec<_> = (0..RUNTIMES)
        .map(|index| {
            let registered = registered.clone();
            let seen_tx = seen_tx.clone();
            std::thread::spawn(move || {
                xev::rt::block_on(async move {
                    let mut term = signal(SignalKind::terminate()).unwrap();
                    registered.wait();
                    let got = timeout(Duration::from_secs(5), term.recv()).await;
                    seen_tx.send((index, got)).unwrap();
                })
            })
        })
        .collect();
    registered.wait();
    raise(SignalKind::terminate());
    let mut seen: Vec<_> = (0..RUNTIMES)
        .map(|_| seen_rx.recv_timeout(Duration::from_secs(10)).unwrap())
        .collect();
    seen.sort_by_key(|(index, _)| *index);
    assert_eq!(
        seen,
        (0..RUNTIMES)
            .map(|index| (index, Ok(Some(()))))
            .collect::<Vec<_>>()
    );
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn the_workers_of_a_pool_each_see_the_same_signal() {
    const NAME: &str = "the_workers_of_a_pool_each_see_the_same_signal";
    if !is_child(NAME) {
        return run(NAME);
    }
    let pool = xev::rt::Pool::builder().threads(4).build().unwrap();
    let registered = Arc::new(Barrier::new(5));
    let raiser = std::thread::spawn({
        let registered = registered.clone();
        move || {
            registered.wait();
            raise(SignalKind::hangup());
        }
    });
    let seen = pool.run(move |_| {
        let registered = registered.clone();
        async move {
            let mut hangup = signal(SignalKind::hangup()).unwrap();
            // Blocks this worker until all four are listening: fine here.
            registered.wait();
            timeout(Duration::from_secs(5), hangup.recv()).await
        }
    });
    raiser.join().unwrap();
    assert_eq!(seen, [Ok(Some(())); 4]);
}

#[test]
fn signals_that_cannot_be_caught_are_an_error() {
    xev::rt::block_on(async {
        for kind in [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV].map(SignalKind::from_raw) {
            let error = signal(kind).unwrap_err();
            assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
            assert!(
                error.to_string().contains("cannot listen for signal"),
                "{error}"
            );
        }
    });
}

#[test]
fn signal_kinds_have_their_unix_numbers() {
    assert_eq!(SignalKind::interrupt().as_raw_value(), libc::SIGINT);
    assert_eq!(SignalKind::terminate().as_raw_value(), libc::SIGTERM);
    assert_eq!(SignalKind::hangup().as_raw_value(), libc::SIGHUP);
    assert_eq!(SignalKind::user_defined1().as_raw_value(), libc::SIGUSR1);
    assert_eq!(
        SignalKind::from_raw(libc::SIGUSR2),
        SignalKind::user_defined2()
    );
    assert_eq!(i32::from(SignalKind::quit()), libc::SIGQUIT);
}

const GRACEFUL_CHILD: &str = "graceful_example_child";

/// The child's part: `examples/graceful.rs`'s server, in this process.
#[test]
fn graceful_example_child() {
    if !is_child(GRACEFUL_CHILD) {
        return; // run by the test below, in a child process
    }
    xev::rt::block_on(async {
        let listener = xev::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stop = graceful::stop_signal().unwrap();
        println!("listening on {}", listener.local_addr().unwrap());
        graceful::serve(listener, stop, Duration::from_secs(5)).await;
    });
}

#[test]
fn graceful_example_lets_a_live_connection_finish_after_sigterm() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    let mut child = common::child::start(GRACEFUL_CHILD, &[]);
    let mut lines = common::child::Lines::of(&mut child);
    let addr = lines.address_after("listening on ");
    let mut live = TcpStream::connect(addr).unwrap();
    live.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut echo = [0; 6];
    live.write_all(b"before").unwrap();
    live.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"before");

    common::child::terminate(&child);
    // The listener closes...
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(addr).is_ok() {
        assert!(
            Instant::now() < deadline,
            "still accepting 5 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // ...and the live connection still works until the client ends it.
    live.write_all(b"after!").unwrap();
    live.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"after!");
    drop(live);

    let status = common::child::exit_by(
        &mut child,
        Instant::now() + Duration::from_secs(5),
        "the example did not exit once its last connection closed",
    );
    let mut rest = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut rest);
    let output = lines.all();
    assert!(status.success(), "exit {status}\n{output}\n{rest}");
    assert!(output.contains("1 passed"), "{output}");
}
