//! Concurrent reads for one answer that needs many rows at random.
//!
//! A page of the audit log reads about 150 rows scattered over the store (its decisions, their
//! entries and release confirmations, the headers they sit in). Read one after the other from a
//! cold store, each waits for the disk in turn and an unlucky page adds up dozens of them; issued
//! together, the disk serves them at its queue depth. Cached rows are read faster than a pool
//! wakes up, so reads go concurrent only once one of them turns out to wait for the disk. They
//! run on a small pool of their own: they mostly wait, so it is larger than the machine's core
//! count, and CPU work on the global pool (proofs, FHE) does not hold them up.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;

/// Whether [`read_all`] may read concurrently (on by default; see [`set_concurrent`]).
static CONCURRENT: AtomicBool = AtomicBool::new(true);

/// Turns concurrent reads on or off for the whole process: for benchmarks, to measure the same
/// reads one after another as a baseline.
pub fn set_concurrent(on: bool) {
    CONCURRENT.store(on, Ordering::Relaxed);
}

/// Reads in flight at once: enough to keep a disk's queue busy, few enough to be cheap.
const READERS: usize = 16;

fn pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(READERS)
            .thread_name(|n| format!("custos-read-{n}"))
            .build()
            .ok()
    })
    .as_ref()
}

/// A read slower than this went to the disk (a hit in sled's or the OS's cache takes a few
/// microseconds, a disk read a hundred or more).
const SLOW_READ: Duration = Duration::from_micros(50);

/// `read` applied to every item, results in the items' order; the first error (in item order)
/// if any fails.
///
/// The items are read one after another while each read is quick (the rows are cached, and
/// waking the pool would cost more than the reads); once one read is slow, the rest are read
/// concurrently on the pool. Where the pool's threads could not be started, everything is read
/// in turn.
pub fn read_all<T, R, E>(items: &[T], read: impl Fn(&T) -> Result<R, E> + Sync) -> Result<Vec<R>, E>
where
    T: Sync,
    R: Send,
    E: Send,
{
    let mut out = Vec::with_capacity(items.len());
    for (n, item) in items.iter().enumerate() {
        let started = Instant::now();
        out.push(read(item)?);
        let rest = &items[n + 1..];
        if rest.len() > 1
            && started.elapsed() > SLOW_READ
            && CONCURRENT.load(Ordering::Relaxed)
            && let Some(pool) = pool()
        {
            let results: Vec<Result<R, E>> = pool.install(|| rest.par_iter().map(&read).collect());
            for result in results {
                out.push(result?);
            }
            return Ok(out);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_the_items_order() {
        let items: Vec<u64> = (0..1000).collect();
        // The first read is slow, so the rest run on the pool.
        let out = read_all(&items, |n| {
            if *n == 0 {
                std::thread::sleep(SLOW_READ * 2);
            }
            Ok::<_, ()>(n * 2)
        })
        .unwrap();
        assert_eq!(out, (0..1000).map(|n| n * 2).collect::<Vec<_>>());
    }

    #[test]
    fn the_first_error_in_item_order_is_returned() {
        let items: Vec<u64> = (0..1000).collect();
        // Slow reads, so that most run on the pool.
        let out = read_all(&items, |n| {
            std::thread::sleep(SLOW_READ * 2);
            if n % 300 == 299 { Err(*n) } else { Ok(*n) }
        });
        assert_eq!(out, Err(299));
    }

    #[test]
    fn quick_reads_stay_on_the_calling_thread() {
        let caller = std::thread::current().id();
        let items: Vec<u64> = (0..100).collect();
        let threads = read_all(&items, |_| Ok::<_, ()>(std::thread::current().id())).unwrap();
        assert!(threads.iter().all(|t| *t == caller));
    }

    #[test]
    fn after_a_slow_read_the_rest_run_concurrently() {
        // The first read is slow; the other sixteen each wait for all the others, so they can
        // only finish if they run at the same time.
        let barrier = std::sync::Barrier::new(READERS);
        let items: Vec<usize> = (0..=READERS).collect();
        let out = read_all(&items, |n| {
            if *n == 0 {
                std::thread::sleep(SLOW_READ * 20);
            } else {
                barrier.wait();
            }
            Ok::<_, ()>(*n)
        })
        .unwrap();
        assert_eq!(out, items);
    }
}
