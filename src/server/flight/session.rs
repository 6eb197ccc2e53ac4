//! Flight sessions: `SetSessionOptions` / `GetSessionOptions` / `CloseSession`.
//!
//! A session is named by the `arrow_flight_session_id` cookie and holds the current catalog
//! (domain) and schema (layer), so unqualified table names resolve there — the `USE` of Flight
//! SQL. Statements capture the search path in their signed tickets and handles, so executing
//! them never depends on session state.

use std::time::Duration;

use tonic::Request;

use crate::engine::SearchPath;
use crate::error::{Error, Result};
use crate::governance::Principal;
use crate::proto::session::session_option_value::OptionValue;
use crate::proto::session::set_session_options_result::{Error as OptionError, ErrorValue};
use crate::proto::session::{
    CloseSessionResult, GetSessionOptionsResult, SessionOptionValue, SetSessionOptionsRequest,
    SetSessionOptionsResult, close_session_result,
};
use crate::service::QueryService;

/// The cookie naming a session.
pub const SESSION_COOKIE: &str = "arrow_flight_session_id";
pub const SET_SESSION_OPTIONS: &str = "SetSessionOptions";
pub const GET_SESSION_OPTIONS: &str = "GetSessionOptions";
pub const CLOSE_SESSION: &str = "CloseSession";
/// Request headers choosing where unqualified names resolve for one call: the JDBC driver
/// sends connection properties it does not know (`schema=`, `catalog=`) as headers.
const CATALOG_HEADER: &str = "catalog";
const SCHEMA_HEADER: &str = "schema";

#[derive(Debug, Clone, Default)]
struct Session {
    principal: String,
    catalog: Option<String>,
    schema: Option<String>,
}

/// Open sessions; idle ones expire after eight hours.
pub struct Sessions {
    cache: moka::sync::Cache<String, Session>,
}

impl Sessions {
    pub fn new() -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(8 * 3600))
                .build(),
        }
    }

    /// The session id the request's cookies name, if any.
    pub fn id_of<T>(request: &Request<T>) -> Option<String> {
        request
            .metadata()
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == SESSION_COOKIE)
            .map(|(_, value)| value.to_string())
    }

    fn get(&self, id: Option<&str>, principal: &Principal) -> Option<Session> {
        self.cache
            .get(id?)
            .filter(|s| s.principal == principal.name)
    }

    /// Where unqualified names resolve for this request: the `catalog` and `schema` request
    /// headers when sent (the JDBC driver sends its `schema=` URL property so, on every call),
    /// else the session's catalog and schema, else the engine's defaults.
    pub fn search_path<T>(
        &self,
        service: &QueryService,
        request: &Request<T>,
        principal: &Principal,
    ) -> Result<SearchPath> {
        let session = self.get(Self::id_of(request).as_deref(), principal);
        let mut path = effective_path(service, session.as_ref());
        let header = |name: &str| {
            request
                .metadata()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let engine = service.engine();
        if let Some(domain) = header(CATALOG_HEADER) {
            let Some(found) = engine.mesh().domain(&domain) else {
                return Err(Error::not_found(format!(
                    "the `{CATALOG_HEADER}` header names `{domain}`, which is no domain of this mesh"
                )));
            };
            path.layer = found.layers.first().cloned().unwrap_or(path.layer);
            path.domain = domain;
        }
        if let Some(layer) = header(SCHEMA_HEADER) {
            let known = engine
                .mesh()
                .domain(&path.domain)
                .is_some_and(|d| d.layers.contains(&layer));
            if !known {
                return Err(Error::not_found(format!(
                    "the `{SCHEMA_HEADER}` header names `{layer}`, which is no layer of domain `{}`",
                    path.domain
                )));
            }
            path.layer = layer;
        }
        Ok(path)
    }

    /// Applies options; answers the result and the id of a session created for the request.
    pub fn set(
        &self,
        service: &QueryService,
        principal: &Principal,
        id: Option<String>,
        request: SetSessionOptionsRequest,
    ) -> (SetSessionOptionsResult, Option<String>) {
        let engine = service.engine();
        let existing = self.get(id.as_deref(), principal);
        let (id, created) = match (&existing, id) {
            (Some(_), Some(id)) => (id, None),
            _ => {
                let bytes: [u8; 16] = rand::random();
                let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                (id.clone(), Some(id))
            }
        };
        let mut session = existing.unwrap_or(Session {
            principal: principal.name.clone(),
            ..Session::default()
        });
        let mut errors = std::collections::HashMap::new();
        let mut names: Vec<&String> = request.session_options.keys().collect();
        // `catalog` before `schema`, so a schema is checked against the new catalog.
        names.sort_by_key(|n| (n.as_str() != "catalog", n.to_string()));
        for name in names {
            let value = request
                .session_options
                .get(name)
                .and_then(|v| v.option_value.clone());
            let text = match value {
                Some(OptionValue::StringValue(s)) => Some(s),
                None => None,
                Some(_) => {
                    errors.insert(name.clone(), error(ErrorValue::InvalidValue));
                    continue;
                }
            };
            match name.as_str() {
                "catalog" => match text {
                    Some(domain) if engine.mesh().domain(&domain).is_none() => {
                        errors.insert(name.clone(), error(ErrorValue::InvalidValue));
                    }
                    other => {
                        session.catalog = other;
                        session.schema = None;
                    }
                },
                "schema" => {
                    let domain = session
                        .catalog
                        .clone()
                        .unwrap_or_else(|| engine.default_path().domain.clone());
                    let known = engine
                        .mesh()
                        .domain(&domain)
                        .map(|d| d.layers.clone())
                        .unwrap_or_default();
                    match text {
                        Some(layer) if !known.contains(&layer) => {
                            errors.insert(name.clone(), error(ErrorValue::InvalidValue));
                        }
                        other => session.schema = other,
                    }
                }
                _ => {
                    errors.insert(name.clone(), error(ErrorValue::InvalidName));
                }
            }
        }
        self.cache.insert(id, session);
        (SetSessionOptionsResult { errors }, created)
    }

    /// The session's options as clients read them back (the ADBC driver's current catalog and
    /// schema, the JDBC driver's `getCatalog()` and `getSchema()`): always the catalog and schema
    /// unqualified names resolve in, the defaults when the client has set nothing or keeps no
    /// session cookie, so a client never reads "no current catalog" where there is one.
    pub fn options(
        &self,
        service: &QueryService,
        id: Option<&str>,
        principal: &Principal,
    ) -> GetSessionOptionsResult {
        let path = effective_path(service, self.get(id, principal).as_ref());
        let session_options = [("catalog", path.domain), ("schema", path.layer)]
            .into_iter()
            .map(|(name, value)| {
                let value = SessionOptionValue {
                    option_value: Some(OptionValue::StringValue(value)),
                };
                (name.to_string(), value)
            })
            .collect();
        GetSessionOptionsResult { session_options }
    }

    pub fn close(&self, id: Option<&str>, principal: &Principal) -> CloseSessionResult {
        if let Some(id) = id
            && self.get(Some(id), principal).is_some()
        {
            self.cache.invalidate(id);
        }
        CloseSessionResult {
            status: close_session_result::Status::Closed as i32,
        }
    }
}

/// The catalog (domain) and schema (layer) a session resolves unqualified names in: what it set,
/// else the domain's first layer, else the engine's defaults.
fn effective_path(service: &QueryService, session: Option<&Session>) -> SearchPath {
    let engine = service.engine();
    let default = engine.default_path().clone();
    let Some(session) = session else {
        return default;
    };
    let domain = session.catalog.clone().unwrap_or(default.domain);
    let layer = session.schema.clone().unwrap_or_else(|| {
        engine
            .mesh()
            .domain(&domain)
            .and_then(|d| d.layers.first().cloned())
            .unwrap_or(default.layer)
    });
    SearchPath { domain, layer }
}

fn error(value: ErrorValue) -> OptionError {
    OptionError {
        value: value as i32,
    }
}
