//! Work split over the machine's cores, results in order.

/// `f(0)`, `f(1)`, … `f(n - 1)`, in that order, computed on up to the machine's
/// cores (at most 8), each thread a contiguous range of at least `min_per_thread`;
/// on this thread when `n` is smaller than two such ranges. A panic in `f` is
/// raised here.
pub fn in_order<R: Send>(n: usize, min_per_thread: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    on_threads(cores.min(8), n, min_per_thread, f)
}

/// [`in_order`] on at most `threads` threads.
fn on_threads<R: Send>(
    threads: usize,
    n: usize,
    min_per_thread: usize,
    f: impl Fn(usize) -> R + Sync,
) -> Vec<R> {
    let threads = threads.min(n / min_per_thread.max(1));
    if threads < 2 {
        return (0..n).map(f).collect();
    }
    let size = n.div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .step_by(size)
            .map(|start| {
                scope.spawn(move || (start..n.min(start + size)).map(f).collect::<Vec<R>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_in_order_whatever_the_split() {
        // Fixed thread counts: the split is exercised on a one-core machine too.
        for threads in [1, 2, 3, 8] {
            for n in [0, 1, 5, 63, 64, 129, 1000] {
                let got = on_threads(threads, n, 8, |i| i * 3);
                let want: Vec<usize> = (0..n).map(|i| i * 3).collect();
                assert_eq!(got, want, "{threads} threads, n = {n}");
            }
        }
        assert_eq!(in_order(100, 8, |i| i), (0..100).collect::<Vec<_>>());
    }
}
