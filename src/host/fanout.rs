//! Bounded fan-out: run one job per item on at most `parallelism` threads.
//!
//! Restarting `chroma-agent` on a few hundred storage servers must not open a
//! few hundred SSH connections (and threads, and file descriptors) at once,
//! nor a dump of many databases start as many `pg_dump`s; and the caller
//! must be able to match every result to its item. So: a
//! fixed set of scoped worker threads takes the next index from a shared
//! counter, results come back over a channel to the calling thread, which
//! stores them by index (input order) and reports progress. The progress
//! callback therefore runs on the caller's thread and need not be `Send`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

/// Counts reported after every finished item (and once before the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Finished successfully.
    pub done: usize,
    /// Finished with an error.
    pub failed: usize,
    /// Not finished yet (running or queued).
    pub pending: usize,
    /// `done + failed + pending`.
    pub total: usize,
}

/// Runs `job` on every item with at most `parallelism` jobs at once and
/// returns the results in input order. `parallelism` 0 is treated as 1.
///
/// A panic inside `job` is not caught: it propagates to the caller once the
/// other workers have finished.
pub fn fan_out<T, R, E, F>(items: &[T], parallelism: usize, job: F) -> Vec<Result<R, E>>
where
    T: Sync,
    R: Send,
    E: Send,
    F: Fn(&T) -> Result<R, E> + Sync,
{
    fan_out_with_progress(items, parallelism, job, |_| {})
}

/// [`fan_out`] that calls `progress` on the calling thread before the first
/// job finishes and after each one (e.g. to drive an indicatif bar).
pub fn fan_out_with_progress<T, R, E, F, P>(
    items: &[T],
    parallelism: usize,
    job: F,
    mut progress: P,
) -> Vec<Result<R, E>>
where
    T: Sync,
    R: Send,
    E: Send,
    F: Fn(&T) -> Result<R, E> + Sync,
    P: FnMut(Progress),
{
    let total = items.len();
    let mut slots: Vec<Option<Result<R, E>>> =
        std::iter::repeat_with(|| None).take(total).collect();
    let mut counts = Progress {
        done: 0,
        failed: 0,
        pending: total,
        total,
    };
    progress(counts);
    if total == 0 {
        return Vec::new();
    }
    let workers = parallelism.clamp(1, total);
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, Result<R, E>)>();

    std::thread::scope(|scope| {
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, job) = (&next, &job);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                if tx.send((i, job(item))).is_err() {
                    break; // receiver gone: nothing left to report to
                }
            });
        }
        // Only the workers hold senders now, so the loop below ends when the
        // last worker exits (normally or by panic).
        drop(tx);
        for (i, result) in rx {
            if result.is_ok() {
                counts.done += 1;
            } else {
                counts.failed += 1;
            }
            counts.pending -= 1;
            if let Some(slot) = slots.get_mut(i) {
                *slot = Some(result);
            }
            progress(counts);
        }
    });

    // Every index was sent exactly once unless a worker panicked, and then
    // the scope above has already re-raised that panic.
    slots.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[test]
    fn results_in_input_order_with_bounded_concurrency() {
        let items: Vec<usize> = (0..256).collect();
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let mut reports = Vec::new();
        let results = fan_out_with_progress(
            &items,
            8,
            |&i| {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                // later items finish first, so completion order != input order
                std::thread::sleep(Duration::from_micros(((256 - i) % 7) as u64 * 100));
                running.fetch_sub(1, Ordering::SeqCst);
                if i % 5 == 0 {
                    Err(format!("host {i} failed"))
                } else {
                    Ok(i * 2)
                }
            },
            |p| reports.push(p),
        );
        assert_eq!(results.len(), 256);
        for (i, r) in results.iter().enumerate() {
            if i % 5 == 0 {
                assert_eq!(r, &Err(format!("host {i} failed")));
            } else {
                assert_eq!(r, &Ok(i * 2));
            }
        }
        assert!(peak.load(Ordering::SeqCst) <= 8);
        assert_eq!(reports.len(), 257);
        let last = reports[256];
        assert_eq!((last.done, last.failed, last.pending), (204, 52, 0));
    }

    #[test]
    fn empty_input_and_zero_parallelism() {
        let none: Vec<u8> = Vec::new();
        assert!(fan_out(&none, 4, |_| Ok::<_, ()>(())).is_empty());
        assert_eq!(
            fan_out(&[1, 2, 3], 0, |x| Ok::<_, ()>(x + 1)),
            vec![Ok(2), Ok(3), Ok(4)]
        );
    }
}
