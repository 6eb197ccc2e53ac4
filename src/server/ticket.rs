//! Signed tickets: a DoGet ticket carries the statement to run, signed with HMAC-SHA256, so any
//! replica sharing the secret can serve it and no client can forge or alter one.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{Error, Result};

const TAG_BYTES: usize = 32;

/// What a statement ticket carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementTicket {
    pub sql: String,
}

/// Signs and verifies tickets with one secret.
#[derive(Clone)]
pub struct TicketSigner {
    secret: Vec<u8>,
}

impl std::fmt::Debug for TicketSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TicketSigner(..)")
    }
}

impl TicketSigner {
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self {
            secret: secret.into(),
        }
    }

    /// A signer with a random secret: tickets are valid for this process only.
    pub fn random() -> Self {
        let secret: [u8; 32] = rand::random();
        Self::new(secret.to_vec())
    }

    /// From `server.ticket_secret`: a literal, or `env:NAME` to read an environment variable.
    pub fn from_setting(setting: Option<&str>) -> Result<Self> {
        match setting {
            None => Ok(Self::random()),
            Some(s) => match s.strip_prefix("env:") {
                Some(var) => std::env::var(var)
                    .map(|v| Self::new(v.into_bytes()))
                    .map_err(|_| Error::user(format!("server.ticket_secret names environment variable `{var}`, which is not set"))),
                None => Ok(Self::new(s.as_bytes().to_vec())),
            },
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length.
        Hmac::<Sha256>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
    }

    pub fn sign(&self, ticket: &StatementTicket) -> Result<Vec<u8>> {
        let mut payload = serde_json::to_vec(ticket)
            .map_err(|e| Error::internal(format!("ticket encoding: {e}")))?;
        let mut mac = self.mac();
        mac.update(&payload);
        payload.extend_from_slice(&mac.finalize().into_bytes());
        Ok(payload)
    }

    pub fn verify(&self, bytes: &[u8]) -> Result<StatementTicket> {
        let invalid =
            || Error::permission("invalid ticket: it was not issued by this server or was altered");
        if bytes.len() < TAG_BYTES {
            return Err(invalid());
        }
        let (payload, tag) = bytes.split_at(bytes.len() - TAG_BYTES);
        let mut mac = self.mac();
        mac.update(payload);
        mac.verify_slice(tag).map_err(|_| invalid())?;
        serde_json::from_slice(payload).map_err(|_| invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn altered_or_foreign_tickets_are_refused() {
        let signer = TicketSigner::new(b"secret".to_vec());
        let t = StatementTicket {
            sql: "SELECT 1".into(),
        };
        let bytes = signer.sign(&t).unwrap();
        assert_eq!(signer.verify(&bytes).unwrap(), t);
        let mut altered = bytes.clone();
        altered[10] ^= 1;
        assert!(signer.verify(&altered).is_err());
        assert!(TicketSigner::new(b"other".to_vec()).verify(&bytes).is_err());
        assert!(signer.verify(b"short").is_err());
    }
}
