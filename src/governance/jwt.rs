//! External JWTs: tokens issued by a company identity provider, accepted as bearer tokens.
//!
//! The signature is checked against the provider's keys (a JWKS file), then the issuer, the
//! audience (when configured) and the expiry. The principal's name, groups and attributes come
//! from the claims: `name_claim`, `groups_claim`, and every other string claim as an attribute
//! (so a row filter can use `principal_attribute('region')`).

use std::collections::BTreeMap;

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::Value;

use super::Principal;
use crate::error::{Error, ErrorKind, Result};
use crate::spec::JwtSettings;

/// Verifies JWTs of one identity provider.
pub struct JwtVerifier {
    keys: JwkSet,
    settings: JwtSettings,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.settings.issuer)
            .field("keys", &self.keys.keys.len())
            .finish()
    }
}

fn invalid(why: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Unauthenticated, format!("invalid token: {why}"))
}

impl JwtVerifier {
    /// Reads the JWKS file of `settings` (a path already resolved against the mesh folder).
    pub fn new(settings: &JwtSettings) -> Result<Self> {
        let text = std::fs::read_to_string(&settings.jwks).map_err(|e| {
            Error::user(format!("cannot read the JWKS file {}: {e}", settings.jwks))
        })?;
        let keys: JwkSet = serde_json::from_str(&text)
            .map_err(|e| Error::user(format!("invalid JWKS file {}: {e}", settings.jwks)))?;
        Ok(Self {
            keys,
            settings: settings.clone(),
        })
    }

    /// Whether `token` looks like a JWT (three dot-separated parts).
    pub fn looks_like_jwt(token: &str) -> bool {
        token.split('.').count() == 3
    }

    /// The principal a valid token names.
    pub fn verify(&self, token: &str) -> Result<Principal> {
        let header = decode_header(token).map_err(invalid)?;
        let jwk = match &header.kid {
            Some(kid) => self.keys.find(kid),
            None if self.keys.keys.len() == 1 => self.keys.keys.first(),
            None => None,
        }
        .ok_or_else(|| invalid("signed with a key the JWKS file does not hold"))?;
        // The algorithm comes from the key, never from the token alone.
        let allowed: &[Algorithm] = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => &[Algorithm::RS256, Algorithm::RS384, Algorithm::RS512],
            AlgorithmParameters::EllipticCurve(_) => &[Algorithm::ES256, Algorithm::ES384],
            AlgorithmParameters::OctetKey(_) => {
                &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]
            }
            AlgorithmParameters::OctetKeyPair(_) => &[Algorithm::EdDSA],
        };
        if !allowed.contains(&header.alg) {
            return Err(invalid(format!(
                "algorithm {:?} does not match the key",
                header.alg
            )));
        }
        let key = DecodingKey::from_jwk(jwk).map_err(invalid)?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.settings.issuer]);
        match &self.settings.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&["exp", "iss"]);
        let claims = decode::<BTreeMap<String, Value>>(token, &key, &validation)
            .map_err(invalid)?
            .claims;
        let name = claims
            .get(&self.settings.name_claim)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid(format!("no `{}` claim", self.settings.name_claim)))?
            .to_string();
        let groups = match claims.get(&self.settings.groups_claim) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
            _ => Vec::new(),
        };
        let attributes = claims
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect();
        Ok(Principal {
            name,
            groups,
            attributes,
        })
    }
}
