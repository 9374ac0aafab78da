//! Group commit: calls for one key (a SKU) that arrive while a batch for
//! that key is in flight wait, and go together in the next batch, as one
//! call. Nothing waits for a timer: a call alone goes at once; under load a
//! batch holds what arrived during the previous one, so Redis runs one
//! script for many orders instead of one each.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::oneshot;

/// Runs one batch for one key: one result per item, in order.
type Run<T, R> = Arc<dyn Fn(String, Vec<T>) -> BoxFuture<'static, Vec<R>> + Send + Sync>;

pub struct GroupCommit<T, R> {
    queues: DashMap<String, Arc<Mutex<Queue<T, R>>>>,
    run: Run<T, R>,
    max_batch: usize,
}

struct Queue<T, R> {
    waiting: Vec<(T, oneshot::Sender<R>)>,
    /// A task is taking batches off this queue.
    draining: bool,
}

impl<T, R> Default for Queue<T, R> {
    fn default() -> Self {
        Self { waiting: Vec::new(), draining: false }
    }
}

impl<T: Send + 'static, R: Send + 'static> GroupCommit<T, R> {
    /// `run` gets at most `max_batch` items at a time.
    pub fn new(
        max_batch: usize,
        run: impl Fn(String, Vec<T>) -> BoxFuture<'static, Vec<R>> + Send + Sync + 'static,
    ) -> Self {
        Self { queues: DashMap::new(), run: Arc::new(run), max_batch: max_batch.max(1) }
    }

    /// Queues `item` for `key`'s next batch and waits for its result;
    /// `None` if its batch ended without one (it panicked).
    pub async fn call(&self, key: &str, item: T) -> Option<R> {
        let queue = match self.queues.get(key) {
            Some(queue) => queue.clone(),
            None => self.queues.entry(key.to_owned()).or_default().clone(),
        };
        let (reply, result) = oneshot::channel();
        let start = {
            let mut queue = queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            queue.waiting.push((item, reply));
            !std::mem::replace(&mut queue.draining, true)
        };
        // Its own task: a caller that goes away must not strand the others.
        if start {
            tokio::spawn(drain(key.to_owned(), queue, self.run.clone(), self.max_batch));
        }
        result.await.ok()
    }
}

/// Runs batches off `queue` until it is empty.
async fn drain<T, R>(key: String, queue: Arc<Mutex<Queue<T, R>>>, run: Run<T, R>, max_batch: usize) {
    loop {
        let batch: Vec<_> = {
            let mut queue = queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if queue.waiting.is_empty() {
                queue.draining = false;
                return;
            }
            let take = queue.waiting.len().min(max_batch);
            queue.waiting.drain(..take).collect()
        };
        let (items, replies): (Vec<T>, Vec<_>) = batch.into_iter().unzip();
        // A panicking batch drops its replies (its callers get `None`);
        // the queue goes on.
        if let Ok(results) = AssertUnwindSafe(async { run(key.clone(), items).await }).catch_unwind().await {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn callers_arriving_during_a_batch_share_the_next_one_and_get_their_own_result() {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let seen = batches.clone();
        let commit = Arc::new(GroupCommit::new(100, move |key: String, items: Vec<u32>| {
            seen.lock().unwrap().push((key.clone(), items.len()));
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                items.into_iter().map(|n| format!("{key}:{n}")).collect()
            }
            .boxed()
        }));
        let calls: Vec<_> = (0..50)
            .map(|n| {
                let commit = commit.clone();
                tokio::spawn(async move { commit.call(if n % 2 == 0 { "a" } else { "b" }, n).await })
            })
            .collect();
        for (n, call) in calls.into_iter().enumerate() {
            let key = if n % 2 == 0 { "a" } else { "b" };
            assert_eq!(call.await.unwrap(), Some(format!("{key}:{n}")));
        }
        let batches = batches.lock().unwrap();
        assert_eq!(batches.iter().map(|(_, n)| n).sum::<usize>(), 50, "every call ran once");
        assert!(batches.len() < 50, "calls were grouped: {batches:?}");
    }

    #[tokio::test]
    async fn batches_stay_within_their_size_and_a_panicking_one_does_not_stop_the_queue() {
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let commit = Arc::new(GroupCommit::new(3, move |_key: String, items: Vec<u32>| {
            assert!(items.len() <= 3, "a batch of {}", items.len());
            let first = counted.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                if first {
                    panic!("the first batch fails");
                }
                items
            }
            .boxed()
        }));
        let calls: Vec<_> = (0..10)
            .map(|n| {
                let commit = commit.clone();
                tokio::spawn(async move { commit.call("sku", n).await })
            })
            .collect();
        let mut answered = 0;
        for call in calls {
            if call.await.unwrap().is_some() {
                answered += 1;
            }
        }
        assert!((7..10).contains(&answered), "only the first batch's callers go without: {answered}");
        assert_eq!(commit.call("sku", 99).await, Some(99), "the queue still runs");
    }
}
