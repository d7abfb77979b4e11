//! The simulator's async runtime for openraft: the seeded RNG runtime, plus panics caught
//! at every task openraft spawns.
//!
//! Under the simulator tokio must run with `--cfg tokio_unstable` so that its scheduler RNG
//! is seeded (otherwise `select!` and task order differ between processes and a seed does
//! not replay). That setting also makes a panicking task shut its runtime down from inside
//! the task, and openraft's drop path then panics again and aborts the process. So a task
//! that panics here is caught, recorded by the panic hook, and left pending for ever — to
//! the rest of the cluster the node simply froze, as a real one would on `abort`.

use futures::FutureExt;
use openraft::rt::AsyncRuntime;
use openraft::OptionalSend;
use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

/// `RT` with every spawned task's panics contained.
#[derive(Debug)]
pub struct CatchPanics<RT: AsyncRuntime> {
    inner: RT,
}

impl<RT: AsyncRuntime> AsyncRuntime for CatchPanics<RT> {
    type JoinError = RT::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = RT::JoinHandle<T>;
    type Sleep = RT::Sleep;
    type Instant = RT::Instant;
    type TimeoutError = RT::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = RT::Timeout<R, T>;
    type ThreadLocalRng = RT::ThreadLocalRng;
    type Mpsc = RT::Mpsc;
    type Watch = RT::Watch;
    type Oneshot = RT::Oneshot;
    type Mutex<T: OptionalSend + 'static> = RT::Mutex<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        RT::spawn(async move {
            match AssertUnwindSafe(future).catch_unwind().await {
                Ok(value) => value,
                Err(_) => std::future::pending().await,
            }
        })
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        RT::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        RT::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(duration: Duration, future: F) -> Self::Timeout<R, F> {
        RT::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(deadline: Self::Instant, future: F) -> Self::Timeout<R, F> {
        RT::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        RT::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        RT::thread_rng()
    }

    fn new(threads: usize) -> Self {
        CatchPanics { inner: RT::new(threads) }
    }

    fn block_on<F, T>(&mut self, future: F) -> T
    where
        F: Future<Output = T>,
    {
        self.inner.block_on(future)
    }

    fn spawn_blocking<F, T>(f: F) -> impl Future<Output = Result<T, io::Error>> + Send
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        RT::spawn_blocking(f)
    }
}
