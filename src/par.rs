//! Work split over the machine's cores, results in order.

/// `f(0)`, `f(1)`, … `f(n - 1)`, in that order, computed on up to the machine's
/// cores (at most 8), each thread a contiguous range of at least `min_per_thread`;
/// on this thread when `n` is smaller than two such ranges. A panic in `f` is
/// raised here.
pub fn in_order<R: Send>(n: usize, min_per_thread: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |c| c.get())
        .min(8)
        .min(n / min_per_thread.max(1));
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
        for n in [0, 1, 5, 63, 64, 129, 1000] {
            let got = in_order(n, 8, |i| i * 3);
            assert_eq!(got, (0..n).map(|i| i * 3).collect::<Vec<_>>(), "n = {n}");
        }
    }
}
