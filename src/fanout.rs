//! One way to do many things at once, with a bound: the run's orders and renewal-window reads (8 at a time), the
//! check's handshakes (16) and the notifications' deliveries (one per channel and notice).

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;

/// Runs `work` on every item, at most `limit` at a time, each as a task of its own. Results come back in the order of
/// `items`, whatever order they finished in; `None` marks a task that panicked (logged, with `what` it was).
pub async fn bounded<T, F, Fut, R>(limit: usize, what: &str, items: Vec<T>, work: F) -> Vec<Option<R>>
where
    T: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: Future<Output = R> + Send + 'static,
    R: Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limit.max(1)));
    let mut tasks = JoinSet::new();
    let count = items.len();
    for (index, item) in items.into_iter().enumerate() {
        let permits = permits.clone();
        let job = work(item);
        // In the caller's span: the log lines of a request to the daemon's control socket find their way back to its
        // client through it (`logging::forward`).
        tasks.spawn(
            async move {
                let _permit = permits.acquire_owned().await.expect("the semaphore is never closed");
                (index, job.await)
            }
            .in_current_span(),
        );
    }
    let mut results: Vec<Option<R>> = (0..count).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, result)) => results[index] = Some(result),
            Err(err) => tracing::error!("a {what} task ended abnormally: {err}"),
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn results_keep_their_order_and_no_more_than_the_limit_run_at_once() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let work = |n: u64| {
            let (running, most) = (running.clone(), most.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                // Later items finish first.
                tokio::time::sleep(Duration::from_millis(20 - n)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                assert!(n != 3, "a task that panics");
                n * 10
            }
        };
        let results = bounded(2, "test", (0..6).collect(), work).await;
        assert_eq!(results, [Some(0), Some(10), Some(20), None, Some(40), Some(50)]);
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }
}
