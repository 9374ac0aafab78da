//! Group commit: calls for one key (a SKU) that arrive while a batch for
//! that key is in flight wait, and go together in the next batch, as one
//! call. Nothing waits for a timer: a call alone goes at once; under load a
//! batch holds what arrived during the previous one, so Redis runs one
//! script for many orders instead of one each. A call that waited longer
//! than `max_wait` for its batch (the calls ahead of it were slow, e.g. a
//! stalled Redis) is not sent at all: it is answered [`Unanswered::Expired`],
//! so a stall fails each call within `max_wait` plus one call's time.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::oneshot;

/// Runs one batch for one key: one result per item, in order.
type Run<T, R> = Arc<dyn Fn(String, Vec<T>) -> BoxFuture<'static, Vec<R>> + Send + Sync>;

pub struct GroupCommit<T, R> {
    /// One queue per key while it has calls; a drained queue is removed.
    queues: Arc<Queues<T, R>>,
    run: Run<T, R>,
    limits: Limits,
}

#[derive(Clone, Copy)]
struct Limits {
    max_batch: usize,
    max_wait: Duration,
}

type Queues<T, R> = DashMap<String, Arc<Mutex<Queue<T, R>>>>;

/// Why a call got no result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    /// It waited longer than `max_wait` for its batch and was not sent.
    Expired,
    /// Its batch ended without results (it panicked).
    Lost,
}

/// A call waiting for its batch: its item, since when, where its result goes.
type Waiting<T, R> = (T, Instant, oneshot::Sender<Result<R, Unanswered>>);

struct Queue<T, R> {
    waiting: Vec<Waiting<T, R>>,
    /// A task is taking batches off this queue.
    draining: bool,
}

impl<T, R> Default for Queue<T, R> {
    fn default() -> Self {
        Self { waiting: Vec::new(), draining: false }
    }
}

impl<T: Send + 'static, R: Send + 'static> GroupCommit<T, R> {
    /// `run` gets at most `max_batch` items at a time; a call not sent
    /// within `max_wait` expires.
    pub fn new(
        max_batch: usize,
        max_wait: Duration,
        run: impl Fn(String, Vec<T>) -> BoxFuture<'static, Vec<R>> + Send + Sync + 'static,
    ) -> Self {
        let limits = Limits { max_batch: max_batch.max(1), max_wait };
        Self { queues: Arc::new(DashMap::new()), run: Arc::new(run), limits }
    }

    /// Queues `item` for `key`'s next batch and waits for its result.
    pub async fn call(&self, key: &str, item: T) -> Result<R, Unanswered> {
        let queue = match self.queues.get(key) {
            Some(queue) => queue.clone(),
            None => self.queues.entry(key.to_owned()).or_default().clone(),
        };
        let (reply, result) = oneshot::channel();
        let start = {
            let mut queue = queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            queue.waiting.push((item, Instant::now(), reply));
            !std::mem::replace(&mut queue.draining, true)
        };
        // Its own task: a caller that goes away must not strand the others.
        if start {
            tokio::spawn(drain(key.to_owned(), queue, self.queues.clone(), self.run.clone(), self.limits));
        }
        result.await.unwrap_or(Err(Unanswered::Lost))
    }
}

/// Runs batches off `queue` until it is empty, then drops it from `queues`
/// unless a call came meanwhile: keys come and go (a SKU nobody sells any
/// more, or one that never existed) and leave nothing behind.
async fn drain<T, R>(
    key: String,
    queue: Arc<Mutex<Queue<T, R>>>,
    queues: Arc<Queues<T, R>>,
    run: Run<T, R>,
    limits: Limits,
) {
    loop {
        let batch: Vec<_> = {
            let mut queue = queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if queue.waiting.is_empty() {
                queue.draining = false;
                break;
            }
            let take = queue.waiting.len().min(limits.max_batch);
            queue.waiting.drain(..take).collect()
        };
        let mut items = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        for (item, since, reply) in batch {
            if since.elapsed() > limits.max_wait {
                let _ = reply.send(Err(Unanswered::Expired));
            } else {
                items.push(item);
                replies.push(reply);
            }
        }
        if items.is_empty() {
            continue;
        }
        // A panicking batch drops its replies (its callers get `Lost`);
        // the queue goes on.
        if let Ok(results) = AssertUnwindSafe(async { run(key.clone(), items).await }).catch_unwind().await {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(Ok(result));
            }
        }
    }
    // A caller holding this queue from before the removal still gets its
    // answer: finding it idle, it drains it itself.
    queues.remove_if(&key, |_, queue| {
        let queue = queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        queue.waiting.is_empty() && !queue.draining
    });
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn callers_arriving_during_a_batch_share_the_next_one_and_get_their_own_result() {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let seen = batches.clone();
        let commit = Arc::new(GroupCommit::new(100, Duration::from_secs(60), move |key: String, items: Vec<u32>| {
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
            assert_eq!(call.await.unwrap(), Ok(format!("{key}:{n}")));
        }
        let batches = batches.lock().unwrap();
        assert_eq!(batches.iter().map(|(_, n)| n).sum::<usize>(), 50, "every call ran once");
        assert!(batches.len() < 50, "calls were grouped: {batches:?}");
    }

    #[tokio::test]
    async fn batches_stay_within_their_size_and_a_panicking_one_does_not_stop_the_queue() {
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let commit = Arc::new(GroupCommit::new(3, Duration::from_secs(60), move |_key: String, items: Vec<u32>| {
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
            if call.await.unwrap().is_ok() {
                answered += 1;
            }
        }
        assert!((7..10).contains(&answered), "only the first batch's callers go without: {answered}");
        assert_eq!(commit.call("sku", 99).await, Ok(99), "the queue still runs");
    }

    #[tokio::test]
    async fn calls_that_waited_past_their_limit_behind_a_stalled_batch_are_not_sent() {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let seen = sent.clone();
        let commit =
            Arc::new(GroupCommit::new(100, Duration::from_millis(50), move |_key: String, items: Vec<u32>| {
                seen.lock().unwrap().extend(items.iter().copied());
                let stall = items.contains(&0);
                async move {
                    if stall {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    items
                }
                .boxed()
            }));
        let stalled = {
            let commit = commit.clone();
            tokio::spawn(async move { commit.call("sku", 0).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let behind: Vec<_> = (1..=5)
            .map(|n| {
                let commit = commit.clone();
                tokio::spawn(async move { commit.call("sku", n).await })
            })
            .collect();
        assert_eq!(stalled.await.unwrap(), Ok(0));
        for call in behind {
            assert_eq!(call.await.unwrap(), Err(Unanswered::Expired));
        }
        assert_eq!(*sent.lock().unwrap(), [0], "the expired calls never reached the batch");
        assert_eq!(commit.call("sku", 9).await, Ok(9), "a fresh call goes through");
    }

    #[tokio::test]
    async fn a_drained_key_leaves_nothing_behind() {
        let commit =
            GroupCommit::new(10, Duration::from_secs(1), |_key: String, items: Vec<u32>| async move { items }.boxed());
        for n in 0..100 {
            assert_eq!(commit.call(&format!("sku-{n}"), n).await, Ok(n));
        }
        for _ in 0..100 {
            if commit.queues.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("{} queues left after their calls were answered", commit.queues.len());
    }
}
