//! Collapses concurrent requests with the same idempotency key inside one
//! gateway into one piece of work whose answer they all share, so a client's
//! racing retries reserve once and all learn the same order id.

use std::future::Future;
use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::OnceCell;

pub struct SingleFlight<T> {
    calls: DashMap<String, Arc<OnceCell<T>>>,
}

impl<T: Clone> SingleFlight<T> {
    pub fn new() -> Self {
        Self { calls: DashMap::new() }
    }

    /// Whether a call with this key is running now.
    pub fn is_running(&self, key: &str) -> bool {
        self.calls.contains_key(key)
    }

    /// Runs `work` unless a call with the same key is already running, in
    /// which case this waits for that call's result. Returns the result and
    /// whether this caller ran the work.
    pub async fn run<F, Fut>(&self, key: String, work: F) -> (T, bool)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let cell = self.calls.entry(key.clone()).or_default().clone();
        let mut ran_here = false;
        let value = cell
            .get_or_init(|| {
                ran_here = true;
                work()
            })
            .await
            .clone();
        if ran_here {
            self.calls.remove_if(&key, |_, current| Arc::ptr_eq(current, &cell));
        }
        (value, ran_here)
    }
}

impl<T: Clone> Default for SingleFlight<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn concurrent_callers_share_one_run() {
        let flights = Arc::new(SingleFlight::<usize>::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (flights, runs) = (flights.clone(), runs.clone());
                tokio::spawn(async move {
                    flights
                        .run("k".into(), || async move {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            runs.fetch_add(1, Ordering::SeqCst) + 100
                        })
                        .await
                })
            })
            .collect();
        let mut leaders = 0;
        for task in tasks {
            let (value, ran_here) = task.await.unwrap();
            assert_eq!(value, 100);
            leaders += usize::from(ran_here);
        }
        assert_eq!((runs.load(Ordering::SeqCst), leaders), (1, 1));
        assert!(flights.calls.is_empty());
    }
}
