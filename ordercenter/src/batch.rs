//! Calls of one Redis script for one SKU, grouped: the requests that
//! arrive together share one script call (see [`GroupCommit`]).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use stock::{SaleStore, StoreError};

use crate::group_commit::{GroupCommit, Unanswered};

/// Why a batched Redis call gave one item no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Redis(Arc<StoreError>),
    #[error("it waited longer than the Redis command timeout for its batch and was not sent")]
    Expired,
    #[error("its batch ended without an answer")]
    Lost,
}

/// Calls of one script for one SKU, grouped.
pub struct RedisBatch<I, T>(GroupCommit<I, Result<T, BatchError>>);

impl<I: Send + 'static, T: Clone + Send + 'static> RedisBatch<I, T> {
    /// `call` runs one batch for one SKU: one answer per item, in order.
    /// An item that waited `max_wait` for its batch is not sent.
    pub fn new<F>(sales: Arc<SaleStore>, max_wait: Duration, call: F) -> Self
    where
        F: for<'a> Fn(&'a SaleStore, &'a str, &'a [I]) -> BoxFuture<'a, Result<Vec<T>, StoreError>>
            + Send
            + Sync
            + 'static,
    {
        let call = Arc::new(call);
        Self(GroupCommit::new(REDIS_BATCH, max_wait, move |sku, items: Vec<I>| {
            let (sales, call) = (sales.clone(), call.clone());
            async move {
                match call(&sales, &sku, &items).await {
                    Ok(answers) => answers.into_iter().map(Ok).collect(),
                    Err(err) => vec![Err(BatchError::Redis(Arc::new(err))); items.len()],
                }
            }
            .boxed()
        }))
    }

    /// `item`'s answer, from its SKU's next batch.
    pub async fn call(&self, sku: &str, item: I) -> Result<T, BatchError> {
        match self.0.call(sku, item).await {
            Ok(answer) => answer,
            Err(Unanswered::Expired) => Err(BatchError::Expired),
            Err(Unanswered::Lost) => Err(BatchError::Lost),
        }
    }
}

/// Most items one batched Redis call takes.
const REDIS_BATCH: usize = 256;
