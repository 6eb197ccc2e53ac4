//! [`QueryService`] itself: what it holds, identity, access decisions and the audit of refused
//! requests. Queries, listings, ingest and runs are in files of their own.

use std::net::IpAddr;
use std::sync::Arc;

use datafusion::execution::SessionState;

use super::admission::{self, StreamLimits};
use super::audit::{AuditLog, AuditRecord};
use super::cancel::{self, QueryId};
use super::operation::{Call, Operation, Protocol};
use super::parked::ParkedPlans;
use super::plans::PlanCache;
use super::results::ResultCache;
use crate::engine::{Engine, SearchPath};
use crate::error::{Error, Result};
use crate::governance::{Access, Identity, Logins, Principal, Signer};
use crate::spec::{Action, DatasetName};

/// Most sessions kept (one per principal and search path in use).
const SESSIONS_KEPT: u64 = 256;

/// The query service of one mesh.
pub struct QueryService {
    pub(super) engine: Arc<Engine>,
    identity: Arc<Identity>,
    logins: Logins,
    signer: Signer,
    pub(super) admission: admission::Admission,
    pub(super) limits: StreamLimits,
    pub(super) running: Arc<cancel::Running>,
    pub(super) audit: AuditLog,
    pub(super) results: ResultCache,
    pub(super) plans: PlanCache,
    /// Sessions by principal and search path (see [`QueryService::session`]).
    pub(super) sessions: moka::sync::Cache<(Principal, SearchPath), Arc<SessionState>>,
    pub(super) parked: ParkedPlans,
}

impl std::fmt::Debug for QueryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryService")
            .field("mesh", &self.engine.mesh().name)
            .finish()
    }
}

impl QueryService {
    /// The service of `engine`'s mesh: its principals, signing keys, limits and audit log. Starts
    /// the audit writer, so it needs a running Tokio runtime.
    pub fn new(engine: Arc<Engine>) -> Result<Arc<Self>> {
        let audit = engine.mesh().server.audit;
        Self::build(engine, audit)
    }

    /// The service for commands of the platform team on the warehouse itself (`meshql policy
    /// explain`): nothing they ask is written to the audit log.
    pub fn unaudited(engine: Arc<Engine>) -> Result<Arc<Self>> {
        Self::build(engine, false)
    }

    fn build(engine: Arc<Engine>, audit: bool) -> Result<Arc<Self>> {
        let settings = engine.mesh().server.clone();
        let signer = Signer::from_settings(
            settings.signing_key.as_deref(),
            &settings.previous_signing_keys,
        )?;
        let identity = Arc::new(Identity::new(engine.mesh(), signer.clone())?);
        Ok(Arc::new(Self {
            logins: Logins::new(Arc::clone(&identity)),
            identity,
            signer,
            admission: admission::Admission::new(&settings),
            limits: StreamLimits::from_settings(&settings),
            running: Arc::default(),
            results: ResultCache::new(settings.result_cache_mb),
            plans: PlanCache::new(settings.plan_cache_entries),
            sessions: moka::sync::Cache::new(SESSIONS_KEPT),
            parked: ParkedPlans::default(),
            audit: AuditLog::start(
                Arc::clone(&engine),
                audit,
                std::time::Duration::from_secs(settings.audit_flush_secs),
            ),
            engine,
        }))
    }

    /// Whether clients must authenticate (the mesh declares principals).
    pub fn requires_login(&self) -> bool {
        self.identity.required()
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Signs what the front ends hand out (tickets, prepared handles).
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// The principal a bearer credential (`authorization` header value) names; the anonymous
    /// principal on a mesh without principals.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Principal> {
        self.identity.authenticate(header)
    }

    /// Logs in with `authorization: Basic ...` (or checks a bearer credential) from `peer`;
    /// answers the principal and a bearer token for it. Audited as `authenticate` through
    /// `protocol`.
    pub async fn login(
        &self,
        protocol: Protocol,
        header: Option<&str>,
        peer: Option<IpAddr>,
    ) -> Result<(Principal, String)> {
        let started = chrono::Utc::now();
        let login = match header {
            Some(h) if h.starts_with("Basic ") => self.logins.login_basic(h, peer).await,
            other => self.identity.authenticate(other),
        };
        let who = login
            .as_ref()
            .map(|p| p.name.clone())
            .unwrap_or_else(|_| "(unauthenticated)".into());
        let mut record = AuditRecord::new(&who, protocol, Operation::Authenticate);
        record.at = started;
        self.audit.record(record.outcome(&login));
        let principal = login?;
        let token = self.identity.issue(&principal);
        Ok((principal, token))
    }

    /// The principal of mesh.yaml named `name`, as it would log in (what `meshql policy
    /// explain` asks about).
    pub fn principal_named(&self, name: &str) -> Result<Principal> {
        self.identity.principal(name).ok_or_else(|| {
            let names: Vec<&str> = self
                .engine
                .mesh()
                .principals
                .iter()
                .map(|p| p.name.as_str())
                .collect();
            Error::not_found(format!(
                "no principal `{name}` in mesh.yaml (principals: {})",
                names.join(", ")
            ))
        })
    }

    /// What `principal` may do (everything on an open mesh without principals).
    pub fn access(&self, principal: &Principal) -> Access {
        Access::new(
            Arc::clone(self.engine.mesh()),
            principal.clone(),
            !self.identity.required(),
        )
    }

    /// Refuses `action` on `dataset` unless the policies allow it.
    pub fn require(
        &self,
        principal: &Principal,
        action: Action,
        dataset: &DatasetName,
    ) -> Result<()> {
        let decision = self.access(principal).decide(action, dataset);
        if decision.allowed {
            return Ok(());
        }
        Err(Error::permission(format!(
            "`{}` may not {action} `{dataset}` ({})",
            principal.name, decision.reason
        )))
    }

    /// Where unqualified names resolve when a front end names no domain and layer.
    pub fn default_path(&self) -> &SearchPath {
        self.engine.default_path()
    }

    /// Records a refused request (a write path of a read-only client) and answers its error.
    pub fn refuse<T>(&self, call: &Call, sql: Option<&str>, error: Error) -> Result<T> {
        let mut record = AuditRecord::of(call);
        record.sql = sql.map(str::to_string);
        let result = Err(error);
        self.audit.record(record.outcome::<T>(&result));
        result
    }

    /// Stops the running queries of `keys` and refuses them later; true if one was running.
    /// Audited.
    pub fn cancel(&self, call: &Call, keys: &[QueryId]) -> bool {
        let mut any = false;
        for key in keys {
            any |= self.running.cancel(*key);
        }
        self.audit
            .record(AuditRecord::of(call).outcome::<()>(&Ok(())));
        any
    }

    /// The result cache (its statistics: hits, misses, entries, bytes).
    pub fn results(&self) -> &ResultCache {
        &self.results
    }

    /// The plan cache (its statistics: hits, stale plans, entries).
    pub fn plans(&self) -> &PlanCache {
        &self.plans
    }

    /// Waits until every audit record so far is written.
    pub async fn flush_audit(&self) {
        self.audit.flush().await;
    }
}
