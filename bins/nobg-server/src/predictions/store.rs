//! Where predictions jobs live: this process's [`Jobs`], or Redis when replicas share them
//! ([`RedisJobs`]).

use nobg_api::predictions::{Job, PredictionError};
use tokio_util::sync::CancellationToken;

use super::Jobs;
use crate::auth::Owner;
use crate::cluster::jobs::RedisJobs;

pub enum JobStore {
    Local(Jobs),
    Redis(Box<RedisJobs>),
}

/// 503 in the predictions API's own error format.
fn unreachable_store() -> PredictionError {
    PredictionError::new(
        503,
        "the server's shared state (Redis) is unreachable; retry shortly",
    )
}

impl JobStore {
    pub(super) async fn insert(
        &self,
        job: &Job,
        owner: &Owner,
        cancel: CancellationToken,
    ) -> Result<(), PredictionError> {
        match self {
            Self::Local(j) => j.insert(job.clone(), owner.clone(), cancel),
            Self::Redis(j) => match j.insert(job, owner, cancel).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(super::store_full(j.max_jobs(), j.retention())),
                Err(_) => Err(unreachable_store()),
            },
        }
    }

    pub(super) async fn get(
        &self,
        id: &str,
        owner: &Owner,
    ) -> Result<Option<Job>, PredictionError> {
        match self {
            Self::Local(j) => Ok(j.get(id, owner)),
            Self::Redis(j) => j.get(id, owner).await.map_err(|_| unreachable_store()),
        }
    }

    /// Applies `change` unless the job is already final (a cancelled job stays cancelled).
    pub(super) async fn update(&self, id: &str, change: impl FnOnce(&mut Job)) {
        match self {
            Self::Local(j) => j.update(id, change),
            Self::Redis(j) => j.update(id, change).await,
        }
    }

    pub(super) async fn cancel(
        &self,
        id: &str,
        owner: &Owner,
    ) -> Result<Option<Job>, PredictionError> {
        match self {
            Self::Local(j) => Ok(j.cancel(id, owner)),
            Self::Redis(j) => j.cancel(id, owner).await.map_err(|_| unreachable_store()),
        }
    }

    /// Forgets final jobs older than the retention (Redis expires its keys itself).
    pub fn sweep(&self) -> usize {
        match self {
            Self::Local(j) => j.sweep(),
            Self::Redis(_) => 0,
        }
    }
}
