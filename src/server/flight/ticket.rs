//! Signed statements: DoGet tickets and prepared-statement handles carry the SQL to run (and
//! bound parameters), signed by the server and bound to the principal they were issued to. Any
//! replica sharing the signing key can serve them; no client can forge, alter or borrow one.

use serde::{Deserialize, Serialize};

use crate::engine::SearchPath;
use crate::error::{Error, Result};
use crate::governance::{Principal, Signer};

/// What a ticket or handle carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedStatement {
    pub sql: String,
    /// Name of the principal the statement was issued to.
    pub principal: String,
    /// Bound parameter values: one row, Arrow IPC stream bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Vec<u8>>,
    /// Domain and layer where unqualified names resolve (the session's, when it was issued).
    pub domain: String,
    pub layer: String,
    /// The plan GetFlightInfo parked for this statement (see `QueryService::park`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<u128>,
}

/// What the signed bytes are for; a ticket cannot be used as a handle or the reverse.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    Ticket,
    PreparedHandle,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Ticket => "ticket",
            Purpose::PreparedHandle => "prepared",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Purpose::Ticket => "ticket",
            Purpose::PreparedHandle => "prepared statement handle",
        }
    }
}

impl SignedStatement {
    pub fn new(sql: &str, principal: &Principal, path: &SearchPath) -> Self {
        Self {
            sql: sql.to_string(),
            principal: principal.name.clone(),
            params: None,
            domain: path.domain.clone(),
            layer: path.layer.clone(),
            plan: None,
        }
    }

    /// Where unqualified names resolve for this statement.
    pub fn search_path(&self) -> SearchPath {
        SearchPath {
            domain: self.domain.clone(),
            layer: self.layer.clone(),
        }
    }

    pub fn sign(&self, signer: &Signer, purpose: Purpose) -> Result<Vec<u8>> {
        let payload = serde_json::to_vec(self)
            .map_err(|e| Error::internal(format!("encoding a {}: {e}", purpose.noun())))?;
        Ok(signer.sign(purpose.as_str(), &payload))
    }

    /// Verifies `bytes` and that they were issued to `principal`.
    pub fn verify(
        signer: &Signer,
        purpose: Purpose,
        bytes: &[u8],
        principal: &Principal,
    ) -> Result<Self> {
        let invalid = || {
            Error::permission(format!(
                "invalid {}: it was not issued by this server or was altered",
                purpose.noun()
            ))
        };
        let payload = signer.verify(purpose.as_str(), bytes).ok_or_else(invalid)?;
        let statement: Self = serde_json::from_slice(payload).map_err(|_| invalid())?;
        if statement.principal != principal.name {
            return Err(Error::permission(format!(
                "this {} was issued to another principal",
                purpose.noun()
            )));
        }
        Ok(statement)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_bound_to_purpose_and_principal() {
        let signer = Signer::new(b"k".to_vec());
        let ana = Principal {
            name: "ana".into(),
            groups: vec![],
            attributes: Default::default(),
        };
        let bob = Principal {
            name: "bob".into(),
            groups: vec![],
            attributes: Default::default(),
        };
        let path = SearchPath {
            domain: "d".into(),
            layer: "l".into(),
        };
        let s = SignedStatement::new("SELECT 1", &ana, &path);
        let ticket = s.sign(&signer, Purpose::Ticket).unwrap();
        assert_eq!(
            SignedStatement::verify(&signer, Purpose::Ticket, &ticket, &ana).unwrap(),
            s
        );
        assert!(SignedStatement::verify(&signer, Purpose::PreparedHandle, &ticket, &ana).is_err());
        let err = SignedStatement::verify(&signer, Purpose::Ticket, &ticket, &bob).unwrap_err();
        assert_eq!(
            err.to_string(),
            "this ticket was issued to another principal"
        );
    }
}
