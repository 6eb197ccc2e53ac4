//! Plans kept between announcing a query and running it, so that a statement is planned once:
//! GetFlightInfo plans and parks the plan under a random id the ticket carries (signed, bound to
//! the principal); DoGet takes it back instead of planning again. A ticket whose plan is gone —
//! expired, evicted, taken already, or served by another replica — is planned afresh from its
//! SQL, so the id is only ever a shortcut.

use std::sync::Arc;
use std::time::Duration;

use super::statement::Planned;
use crate::engine::SearchPath;

/// How long a parked plan waits for its DoGet.
const PARKED_FOR: Duration = Duration::from_secs(60);
/// Most plans parked at once (the oldest go first).
const MAX_PARKED: u64 = 1024;

struct Parked {
    principal: String,
    sql: String,
    path: SearchPath,
    planned: Planned,
}

pub(super) struct ParkedPlans {
    plans: moka::sync::Cache<u128, Arc<Parked>>,
}

impl Default for ParkedPlans {
    fn default() -> Self {
        Self {
            plans: moka::sync::Cache::builder()
                .max_capacity(MAX_PARKED)
                .time_to_live(PARKED_FOR)
                .build(),
        }
    }
}

impl ParkedPlans {
    /// Parks `planned` (of `sql` in `path`, for `principal`) and answers its id.
    pub(super) fn park(
        &self,
        principal: &str,
        sql: &str,
        path: &SearchPath,
        planned: &Planned,
    ) -> u128 {
        let id: u128 = rand::random();
        let parked = Parked {
            principal: principal.to_string(),
            sql: sql.to_string(),
            path: path.clone(),
            planned: planned.clone(),
        };
        self.plans.insert(id, Arc::new(parked));
        id
    }

    /// The plan parked under `id`, if it is still there and is the plan of this very statement
    /// for this principal; it is not kept afterwards.
    pub(super) fn take(
        &self,
        id: u128,
        principal: &str,
        sql: &str,
        path: &SearchPath,
    ) -> Option<Planned> {
        let parked = self.plans.remove(&id)?;
        (parked.principal == principal && parked.sql == sql && parked.path == *path)
            .then(|| parked.planned.clone())
    }
}
