//! The fallback from io_uring to poll (DESIGN §10, issue 15): with
//! `io_uring_setup` refused by a seccomp filter, once with `ENOSYS` (a
//! kernel without io_uring) and once with `EPERM` (a sandbox or
//! `kernel.io_uring_disabled`), `Backend::Auto` runs on `Poll`, says why,
//! and TCP, a `WriteQueue`, a timer and `spawn_blocking` work on it; an
//! explicit `Backend::IoUring` fails to build with the probe's error; and
//! the whole `tcp` test binary passes under the filter with
//! `XEV_BACKEND=auto`.
//!
//! A seccomp filter cannot be taken back and holds for the whole process,
//! so each test runs its body in a child copy of this binary that installs
//! the filter first, and the parent checks the child passed and printed
//! its marker line (a child that ran nothing fails).
//!
//! The filter needs a seccomp architecture seccompiler knows; elsewhere the
//! one test here prints why it skipped.

mod common;

/// Linux on x86_64 or aarch64: where the filter can be built.
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
#[test]
fn backend_fallback_is_skipped_on_this_platform() {
    println!(
        "backend fallback tests skipped: they need a seccomp filter, built here for Linux on \
         x86_64 or aarch64 only (this is {} on {})",
        std::env::consts::OS,
        std::env::consts::ARCH
    );
}

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod filtered {
    use std::io::{self, Write};
    use std::net::Shutdown;
    use std::path::{Path, PathBuf};
    use std::process::Output;
    use std::rc::Rc;
    use std::time::Duration;

    use futures::future;
    use xev::io::WriteQueue;
    use xev::net::{TcpListener, TcpStream};
    use xev::rt::{Backend, Runtime};

    use super::common::{child, pattern, read_to_end, within};

    /// Printed by a child as its last act, with its test's name: proof the
    /// body ran to the end under the filter.
    const MARKER: &str = "backend-fallback child passed:";

    /// The longest a whole test binary may take under the filter (the
    /// `tcp` binary takes a few seconds in debug on two cores).
    const BINARY_LIMIT: Duration = Duration::from_secs(300);

    /// Tells the child copy which test binary to run under the filter.
    const EXEC_ENV: &str = "XEV_FALLBACK_EXEC";

    /// Installs, on every thread of this process and every process it
    /// execs, a filter that fails `io_uring_setup` with `errno` and lets
    /// every other system call through. seccompiler sets `no_new_privs`
    /// first, which installing a filter without `CAP_SYS_ADMIN` requires.
    fn refuse_io_uring_setup(errno: i32) {
        use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

        let arch = TargetArch::try_from(std::env::consts::ARCH).expect("a seccomp architecture");
        let filter = SeccompFilter::new(
            [(libc::SYS_io_uring_setup, Vec::new())].into(),
            SeccompAction::Allow,
            SeccompAction::Errno(errno as u32),
            arch,
        )
        .expect("a filter on io_uring_setup");
        let program = BpfProgram::try_from(filter).expect("the filter compiles to BPF");
        seccompiler::apply_filter_all_threads(&program).expect("install the seccomp filter");
    }

    /// What `io::Error` prints for `errno`, e.g. "Operation not permitted
    /// (os error 1)": the refusal the runtime must report.
    fn refusal(errno: i32) -> String {
        io::Error::from_raw_os_error(errno).to_string()
    }

    /// In the parent: runs `test` in a child copy of this binary and checks
    /// it printed its marker. In that child: installs the filter for
    /// `errno`, runs `body`, and prints the marker.
    fn in_filtered_child(test: &str, errno: i32, env: &[(&str, String)], body: fn(i32)) {
        if child::is_child(test) {
            refuse_io_uring_setup(errno);
            body(errno);
            println!("{MARKER} {test}");
            return;
        }
        let stdout = child::finish(test, child::start(test, env));
        assert!(
            stdout.contains(&format!("{MARKER} {test}")),
            "the child running `{test}` did not print its marker\n--- stdout\n{stdout}"
        );
        for line in stdout.lines().filter(|line| line.contains("backend")) {
            println!("child: {line}");
        }
    }

    /// 1 MiB through a `WriteQueue` (two pushes and a flush) to an echo
    /// task and back, a timer, and a `spawn_blocking` closure.
    async fn exercise_the_runtime() -> io::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let echo = xev::rt::spawn(async move {
            let (stream, _) = listener.accept().await?;
            let mut chunk = vec![0; 64 * 1024];
            loop {
                match stream.read(&mut chunk).await? {
                    0 => break,
                    n => stream.write_all(&chunk[..n]).await?,
                }
            }
            stream.shutdown(Shutdown::Write)
        });

        let client = Rc::new(TcpStream::connect(addr).await?);
        let data = pattern(15, 1 << 20);
        let queue = WriteQueue::new(client.clone());
        let (half, rest) = data.split_at(data.len() / 2);
        let first = queue.push(half.to_vec());
        drop(queue.push(rest.to_vec())); // written all the same
        let send = async {
            assert_eq!(first.await?, half.len());
            queue.flush().await?;
            assert!(
                queue.is_empty(),
                "flush left {} bytes queued",
                queue.queued_bytes()
            );
            client.shutdown(Shutdown::Write)
        };
        let (sent, echoed) = future::join(send, read_to_end(&client)).await;
        sent?;
        let echoed = echoed?;
        assert_eq!(echoed.len(), data.len(), "echoed length");
        assert!(echoed == data, "the echoed bytes differ from those sent");
        echo.await.expect("the echo task ran to the end")?;

        let nap = Duration::from_millis(20);
        let start = xev::time::now();
        xev::time::sleep(nap).await;
        assert!(xev::time::now() - start >= nap, "a sleep ended early");

        let answer = xev::rt::spawn_blocking(|| 6 * 7).await;
        assert_eq!(answer.expect("the blocking closure ran"), 42);
        Ok(())
    }

    /// The child's body: `Backend::Auto` (explicit, and from
    /// `XEV_BACKEND=auto`) runs on `Poll`, says why, and works.
    fn auto_runs_on_poll(errno: i32) {
        let refusal = refusal(errno);
        let rt = Runtime::builder()
            .backend(Backend::Auto)
            .build()
            .expect("Backend::Auto builds a runtime when io_uring is refused");
        assert_eq!(rt.backend(), Backend::Poll);
        let reason = rt.backend_reason();
        assert!(
            reason.contains(&refusal),
            "the reason `{reason}` does not mention the refusal `{refusal}`"
        );
        let debug = format!("{rt:?}");
        assert!(
            debug.contains("Poll") && debug.contains(&refusal),
            "Debug of the runtime shows neither the backend nor the refusal: {debug}"
        );

        let from_env = Runtime::new().expect("XEV_BACKEND=auto builds a runtime");
        assert_eq!(from_env.backend(), Backend::Poll, "under XEV_BACKEND=auto");
        drop(from_env);

        rt.block_on(within(
            Duration::from_secs(30),
            "TCP, WriteQueue, timer and spawn_blocking on the poll fallback",
            exercise_the_runtime(),
        ))
        .expect("the runtime works on the poll fallback");
        println!(
            "backend: {:?}; reason: {}",
            rt.backend(),
            rt.backend_reason()
        );
    }

    /// The child's body: an explicit `Backend::IoUring` (from the builder,
    /// and from `XEV_BACKEND=io_uring`) fails with the refusal's errno, and
    /// `Auto` still builds afterwards.
    fn explicit_io_uring_fails(errno: i32) {
        let error = Runtime::builder()
            .backend(Backend::IoUring)
            .build()
            .expect_err("Backend::IoUring cannot build when io_uring_setup is refused");
        assert_eq!(error.raw_os_error(), Some(errno), "the error: {error}");
        println!("backend IoUring refused: {error}");

        let error =
            Runtime::new().expect_err("XEV_BACKEND=io_uring cannot build when io_uring is refused");
        assert_eq!(error.raw_os_error(), Some(errno), "the error: {error}");

        let rt = Runtime::builder()
            .backend(Backend::Auto)
            .build()
            .expect("Backend::Auto still builds after a refused Backend::IoUring");
        assert_eq!(rt.backend(), Backend::Poll);
    }

    #[test]
    fn auto_falls_back_to_poll_when_io_uring_setup_fails_with_enosys() {
        in_filtered_child(
            "filtered::auto_falls_back_to_poll_when_io_uring_setup_fails_with_enosys",
            libc::ENOSYS,
            &[("XEV_BACKEND", "auto".to_owned())],
            auto_runs_on_poll,
        );
    }

    #[test]
    fn auto_falls_back_to_poll_when_io_uring_setup_fails_with_eperm() {
        in_filtered_child(
            "filtered::auto_falls_back_to_poll_when_io_uring_setup_fails_with_eperm",
            libc::EPERM,
            &[("XEV_BACKEND", "auto".to_owned())],
            auto_runs_on_poll,
        );
    }

    #[test]
    fn explicit_io_uring_fails_to_build_when_io_uring_setup_fails_with_enosys() {
        in_filtered_child(
            "filtered::explicit_io_uring_fails_to_build_when_io_uring_setup_fails_with_enosys",
            libc::ENOSYS,
            &[("XEV_BACKEND", "io_uring".to_owned())],
            explicit_io_uring_fails,
        );
    }

    #[test]
    fn explicit_io_uring_fails_to_build_when_io_uring_setup_fails_with_eperm() {
        in_filtered_child(
            "filtered::explicit_io_uring_fails_to_build_when_io_uring_setup_fails_with_eperm",
            libc::EPERM,
            &[("XEV_BACKEND", "io_uring".to_owned())],
            explicit_io_uring_fails,
        );
    }

    /// The newest `tcp` test binary beside this one (`target/*/deps`).
    fn tcp_test_binary() -> PathBuf {
        use std::os::unix::fs::PermissionsExt;

        let this = std::env::current_exe().expect("this test binary's path");
        let deps = this.parent().expect("the directory of this test binary");
        let is_tcp_binary = |path: &Path| {
            let name = path
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or("");
            let hash = name.strip_prefix("tcp-").unwrap_or("");
            !hash.is_empty()
                && hash.chars().all(|c| c.is_ascii_hexdigit())
                && path
                    .metadata()
                    .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        };
        std::fs::read_dir(deps)
            .expect("list the test binaries' directory")
            .filter_map(|entry| Some(entry.ok()?.path()))
            .filter(|path| is_tcp_binary(path))
            .max_by_key(|path| path.metadata().and_then(|meta| meta.modified()).ok())
            .unwrap_or_else(|| {
                panic!(
                    "no `tcp` test binary in {}: build it first with \
                     `cargo test --test tcp --no-run` (or run the whole suite)",
                    deps.display()
                )
            })
    }

    /// The sum of the "N passed" counts of libtest's result lines.
    fn passed(stdout: &str) -> usize {
        stdout
            .lines()
            .filter_map(|line| line.strip_prefix("test result: ok. "))
            .filter_map(|rest| rest.split_once(" passed")?.0.parse::<usize>().ok())
            .sum()
    }

    /// Every test of the `tcp` binary passes under the `ENOSYS` filter with
    /// `XEV_BACKEND=auto`. The child copy of this binary installs the
    /// filter and execs the `tcp` binary in its place (a filter survives
    /// `exec`), so the parent sees the `tcp` binary's own output.
    #[test]
    fn the_tcp_tests_pass_on_the_fallback_when_io_uring_setup_fails_with_enosys() {
        use std::os::unix::process::CommandExt;

        const TEST: &str =
            "filtered::the_tcp_tests_pass_on_the_fallback_when_io_uring_setup_fails_with_enosys";
        if child::is_child(TEST) {
            let binary = std::env::var_os(EXEC_ENV).expect("the binary to run");
            refuse_io_uring_setup(libc::ENOSYS);
            let probe = Runtime::new().expect("XEV_BACKEND=auto builds a runtime");
            assert_eq!(
                probe.backend(),
                Backend::Poll,
                "the filter refuses io_uring"
            );
            drop(probe);
            println!("{MARKER} {TEST}: filter installed, running {binary:?}");
            io::stdout().flush().expect("flush stdout before exec");
            let error = std::process::Command::new(&binary)
                .env_remove("XEV_TEST_CHILD")
                .exec();
            panic!("exec {binary:?}: {error}");
        }

        let binary = tcp_test_binary();
        let started = child::start(
            TEST,
            &[
                (EXEC_ENV, binary.display().to_string()),
                ("XEV_BACKEND", "auto".to_owned()),
            ],
        );
        let output: Output = child::wait_within(TEST, started, BINARY_LIMIT);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{} failed under the filter: {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            binary.display(),
            output.status
        );
        assert!(
            stdout.contains(&format!("{MARKER} {TEST}")),
            "the child did not install the filter\n--- stdout\n{stdout}"
        );
        let passed = passed(&stdout);
        assert!(
            passed > 0,
            "{} ran no test\n--- stdout\n{stdout}",
            binary.display()
        );
        println!(
            "{}: {passed} tests passed on the poll fallback",
            binary.display()
        );
    }
}
