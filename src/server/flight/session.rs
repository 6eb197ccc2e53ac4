//! Flight sessions: `SetSessionOptions` / `GetSessionOptions` / `CloseSession`.
//!
//! A session is named by the `arrow_flight_session_id` cookie and holds the current catalog
//! (domain) and schema (layer), so unqualified table names resolve there — the `USE` of Flight
//! SQL. Statements capture the search path in their signed tickets and handles, so executing
//! them never depends on session state.

use std::time::Duration;

use tonic::Request;

use crate::engine::SearchPath;
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

    /// Where unqualified names resolve for this request: the session's catalog and schema, or
    /// the engine's defaults.
    pub fn search_path<T>(
        &self,
        service: &QueryService,
        request: &Request<T>,
        principal: &Principal,
    ) -> SearchPath {
        let engine = service.engine();
        let default = engine.default_path().clone();
        let Some(session) = self.get(Self::id_of(request).as_deref(), principal) else {
            return default;
        };
        let domain = session.catalog.unwrap_or(default.domain);
        let layer = session.schema.unwrap_or_else(|| {
            engine
                .mesh()
                .domain(&domain)
                .and_then(|d| d.layers.first().cloned())
                .unwrap_or(default.layer)
        });
        SearchPath { domain, layer }
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

    pub fn options(&self, id: Option<&str>, principal: &Principal) -> GetSessionOptionsResult {
        let mut session_options = std::collections::HashMap::new();
        if let Some(s) = self.get(id, principal) {
            for (name, value) in [("catalog", s.catalog), ("schema", s.schema)] {
                if let Some(v) = value {
                    session_options.insert(
                        name.to_string(),
                        SessionOptionValue {
                            option_value: Some(OptionValue::StringValue(v)),
                        },
                    );
                }
            }
        }
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

fn error(value: ErrorValue) -> OptionError {
    OptionError {
        value: value as i32,
    }
}
