//! The last-known copy: everything the replica last saw in Redis, kept in `store.path` (the
//! embedded store's file format). Read once when the store is opened; saved in the background
//! when it changed. The copy itself lives in memory in `Inner::mirror`.
//!
//! The only two places that touch the file are here: `read` and `Inner::save_mirror_forever`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::Inner;
use crate::store::dataset::Dataset;
use crate::store::{file, StoreError};

/// The copy at `path`, or an empty dataset when there is none yet.
pub(super) fn read(path: &Path) -> Result<Dataset, StoreError> {
    Ok(file::read_dataset(path)?.unwrap_or_else(Dataset::empty))
}

impl Inner {
    /// Saves the last-known copy when it changed, at most twice a second.
    pub(super) async fn save_mirror_forever(self: Arc<Self>) {
        loop {
            self.mirror_dirty.notified().await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let copy = self.mirror.lock().await.clone();
            let path = self.options.path.clone();
            let result =
                tokio::task::spawn_blocking(move || file::write_dataset(&path, &copy)).await;
            if let Err(e) = result
                .map_err(StoreError::unavailable)
                .and_then(|saved| saved)
            {
                tracing::error!(path = %self.options.path.display(), error = %e, "cannot write the last-known copy");
            }
        }
    }
}
