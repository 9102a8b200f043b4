//! Credentials kept until shortly before they expire, fetched once however many callers
//! ask at the same moment.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use time::OffsetDateTime;
use wharf_core::Result;

use crate::Clock;

/// Values by key (a scope, an audience), each with its expiry.
#[derive(Debug)]
pub(crate) struct Cache<T> {
    clock: Arc<dyn Clock>,
    margin: time::Duration,
    entries: tokio::sync::Mutex<HashMap<String, (T, OffsetDateTime)>>,
}

impl<T: Clone> Cache<T> {
    pub(crate) fn new(clock: Arc<dyn Clock>, margin: time::Duration) -> Self {
        Self {
            clock,
            margin,
            entries: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The value for `key`, or what `fetch` gives (with its expiry) when there is none or it
    /// expires within the margin. Callers at the same moment wait for one fetch.
    pub(crate) async fn get<F, Fut>(&self, key: &str, fetch: F) -> Result<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(T, OffsetDateTime)>>,
    {
        let mut entries = self.entries.lock().await;
        if let Some((value, expires)) = entries.get(key)
            && *expires - self.clock.now() > self.margin
        {
            return Ok(value.clone());
        }
        let (value, expires) = fetch().await?;
        entries.insert(key.to_owned(), (value.clone(), expires));
        Ok(value)
    }
}
