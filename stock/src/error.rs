//! Why a call to Redis failed.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("unexpected reply from {script}: {reply:?}")]
    Reply { script: &'static str, reply: Vec<String> },
}

impl StoreError {
    /// An unexpected reply of numbers.
    pub(crate) fn numbers(script: &'static str, reply: &[impl ToString]) -> Self {
        Self::Reply { script, reply: reply.iter().map(ToString::to_string).collect() }
    }
}
