//! Concurrent reads for one answer that needs many rows at random.
//!
//! A page of the audit log reads about 150 rows scattered over the store (its decisions, their
//! entries and release confirmations, the headers they sit in). Read one after the other from a
//! cold store, each waits for the disk in turn and an unlucky page adds up dozens of them; issued
//! together, the disk serves them at its queue depth. The reads run on a small pool of their own:
//! they mostly wait, so it is larger than the machine's core count, and CPU work on the global
//! pool (proofs, FHE) does not hold them up.

use std::sync::OnceLock;

use rayon::prelude::*;

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

/// `read` applied to every item, concurrently, results in the items' order; the first error
/// (in item order) if any fails. One item, or no pool (threads could not be started), reads
/// inline.
pub fn read_all<T, R, E>(items: &[T], read: impl Fn(&T) -> Result<R, E> + Sync) -> Result<Vec<R>, E>
where
    T: Sync,
    R: Send,
    E: Send,
{
    match pool() {
        Some(pool) if items.len() > 1 => {
            let results: Vec<Result<R, E>> = pool.install(|| items.par_iter().map(&read).collect());
            results.into_iter().collect()
        }
        _ => items.iter().map(read).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_the_items_order() {
        let items: Vec<u64> = (0..1000).collect();
        let out = read_all(&items, |n| Ok::<_, ()>(n * 2)).unwrap();
        assert_eq!(out, (0..1000).map(|n| n * 2).collect::<Vec<_>>());
    }

    #[test]
    fn the_first_error_in_item_order_is_returned() {
        let items: Vec<u64> = (0..1000).collect();
        let out = read_all(&items, |n| if n % 300 == 299 { Err(*n) } else { Ok(*n) });
        assert_eq!(out, Err(299));
    }

    #[test]
    fn reads_run_concurrently() {
        // Sixteen reads that each wait for all the others can only finish together.
        let barrier = std::sync::Barrier::new(READERS);
        let items: Vec<usize> = (0..READERS).collect();
        let out = read_all(&items, |n| {
            barrier.wait();
            Ok::<_, ()>(*n)
        })
        .unwrap();
        assert_eq!(out, items);
    }
}
