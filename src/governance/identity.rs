//! Principals and how they prove who they are.
//!
//! - HTTP Basic credentials, checked against Argon2 hashes in mesh.yaml, during the handshake;
//! - bearer tokens issued by the handshake: signed, with an expiry (`server.token_ttl_secs`);
//! - long-lived bearer tokens whose SHA-256 hashes are listed in mesh.yaml;
//! - an admin token from the `MESHQL_ADMIN_TOKEN` environment variable.
//!
//! A mesh without principals is open: every client is the anonymous principal.

use std::collections::BTreeMap;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Signer;
use crate::error::{Error, ErrorKind, Result};
use crate::spec::Mesh;

/// Environment variable holding a token that authenticates as an administrator.
pub const ADMIN_TOKEN_ENV: &str = "MESHQL_ADMIN_TOKEN";

const TOKEN_PREFIX: &str = "mq1.";

/// Longest user name, password and `authorization` header accepted (a JWT with many groups
/// fits; a 64 KB user name does not).
pub const MAX_USER_BYTES: usize = 256;
pub const MAX_PASSWORD_BYTES: usize = 1024;
pub const MAX_CREDENTIAL_BYTES: usize = 16 * 1024;

/// An authenticated user or service.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    pub name: String,
    pub groups: Vec<String>,
    /// Attributes row filters use (`principal_attribute('region')`).
    pub attributes: BTreeMap<String, String>,
}

impl Principal {
    /// The platform team's principal, in the mesh's admin group: pipeline runs and the embedded
    /// CLI (`meshql query`, `meshql history`) act as it.
    pub fn platform(mesh: &Mesh) -> Self {
        Self {
            name: "meshql".into(),
            groups: vec![mesh.admin_group.clone()],
            attributes: BTreeMap::new(),
        }
    }

    pub fn anonymous() -> Self {
        Self {
            name: "anonymous".into(),
            groups: Vec::new(),
            attributes: BTreeMap::new(),
        }
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct TokenClaims {
    sub: String,
    exp: i64,
}

struct Known {
    groups: Vec<String>,
    password_hash: Option<String>,
    attributes: BTreeMap<String, String>,
}

/// Authenticates requests against the principals of a mesh.
pub struct Identity {
    principals: BTreeMap<String, Known>,
    /// SHA-256 of long-lived tokens → principal name.
    tokens: BTreeMap<[u8; 32], String>,
    admin_token: Option<[u8; 32]>,
    admin_group: String,
    signer: Signer,
    ttl_secs: i64,
    jwt: Option<super::JwtVerifier>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("principals", &self.principals.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn unauthenticated(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Unauthenticated, msg)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl Identity {
    /// The principals of `mesh`; `MESHQL_ADMIN_TOKEN` is read from the environment.
    ///
    /// Fails when `server.jwt` names keys that cannot be read: a server that silently dropped
    /// its identity provider could end up open to everyone.
    pub fn new(mesh: &Mesh, signer: Signer) -> Result<Self> {
        let admin_token = std::env::var(ADMIN_TOKEN_ENV)
            .ok()
            .filter(|t| !t.is_empty())
            .map(|t| sha256(t.as_bytes()));
        Self::with_admin_token(mesh, signer, admin_token)
    }

    fn with_admin_token(
        mesh: &Mesh,
        signer: Signer,
        admin_token: Option<[u8; 32]>,
    ) -> Result<Self> {
        let mut principals = BTreeMap::new();
        let mut tokens = BTreeMap::new();
        for p in &mesh.principals {
            for t in &p.token_hashes {
                let hex = t.trim_start_matches("sha256:");
                let mut hash = [0u8; 32];
                for (i, byte) in hash.iter_mut().enumerate() {
                    *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or_default();
                }
                tokens.insert(hash, p.name.clone());
            }
            principals.insert(
                p.name.clone(),
                Known {
                    groups: p.groups.clone(),
                    password_hash: p.password_hash.clone(),
                    attributes: p.attributes.clone(),
                },
            );
        }
        let jwt = mesh
            .server
            .jwt
            .as_ref()
            .map(super::JwtVerifier::new)
            .transpose()?;
        Ok(Self {
            principals,
            tokens,
            admin_token,
            admin_group: mesh.admin_group.clone(),
            signer,
            ttl_secs: mesh.server.token_ttl_secs as i64,
            jwt,
        })
    }

    /// Whether clients must authenticate (the mesh declares principals, an admin token or an
    /// identity provider).
    pub fn required(&self) -> bool {
        !self.principals.is_empty() || self.admin_token.is_some() || self.jwt.is_some()
    }

    /// The principal of mesh.yaml named `name`.
    pub fn principal(&self, name: &str) -> Option<Principal> {
        self.principals.get(name).map(|k| Principal {
            name: name.to_string(),
            groups: k.groups.clone(),
            attributes: k.attributes.clone(),
        })
    }

    /// Checks a user name and password (HTTP Basic).
    pub fn login(&self, user: &str, password: &str) -> Result<Principal> {
        let denied = || unauthenticated("invalid user name or password");
        let known = self.principals.get(user);
        let hash = known.and_then(|k| k.password_hash.as_deref());
        let Some(hash) = hash else {
            // Spend the same time as a real check, so user names cannot be probed by timing.
            let _ = hash_password(password);
            return Err(denied());
        };
        let parsed = PasswordHash::new(hash)
            .map_err(|e| Error::internal(format!("password hash of `{user}` is malformed: {e}")))?;
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .map_err(|_| denied())?;
        self.principal(user).ok_or_else(denied)
    }

    /// Checks an `Authorization: Basic ...` header value.
    pub fn login_basic(&self, header: &str) -> Result<Principal> {
        let (user, password) = Self::parse_basic(header)?;
        self.login(&user, &password)
    }

    /// The user name and password of an `Authorization: Basic ...` header value, each within
    /// its size limit.
    pub fn parse_basic(header: &str) -> Result<(String, String)> {
        let encoded = header.strip_prefix("Basic ").ok_or_else(|| {
            unauthenticated("the handshake expects `authorization: Basic <base64 user:password>`")
        })?;
        // Some clients (ADBC's Go driver) leave out the `=` padding: accept both forms.
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let decoded = lenient
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| unauthenticated("malformed Basic credentials"))?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| unauthenticated("malformed Basic credentials"))?;
        if user.len() > MAX_USER_BYTES || password.len() > MAX_PASSWORD_BYTES {
            return Err(unauthenticated(format!(
                "user names are at most {MAX_USER_BYTES} bytes and passwords at most \
                 {MAX_PASSWORD_BYTES} bytes"
            )));
        }
        Ok((user.to_string(), password.to_string()))
    }

    /// A signed bearer token for `principal`, valid for `server.token_ttl_secs`.
    pub fn issue(&self, principal: &Principal) -> String {
        let claims = TokenClaims {
            sub: principal.name.clone(),
            exp: chrono::Utc::now().timestamp() + self.ttl_secs,
        };
        let payload = serde_json::to_vec(&claims).unwrap_or_default();
        format!(
            "{TOKEN_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(self.signer.sign("token", &payload))
        )
    }

    /// Authenticates an `authorization` header value (`Bearer <token>`); `None` when absent.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Principal> {
        if !self.required() {
            return Ok(Principal::anonymous());
        }
        let header = header.ok_or_else(|| {
            unauthenticated("authentication required: send `authorization: Bearer <token>` (log in with the handshake)")
        })?;
        if header.len() > MAX_CREDENTIAL_BYTES {
            return Err(unauthenticated(format!(
                "the authorization header is {} bytes; credentials are at most {MAX_CREDENTIAL_BYTES} bytes",
                header.len()
            )));
        }
        let token = header
            .strip_prefix("Bearer ")
            .ok_or_else(|| unauthenticated("expected `authorization: Bearer <token>`"))?
            .trim();
        self.verify_token(token)
    }

    fn verify_token(&self, token: &str) -> Result<Principal> {
        let invalid = || unauthenticated("invalid or expired token; log in again");
        if let Some(encoded) = token.strip_prefix(TOKEN_PREFIX) {
            let signed = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| invalid())?;
            let payload = self.signer.verify("token", &signed).ok_or_else(invalid)?;
            let claims: TokenClaims = serde_json::from_slice(payload).map_err(|_| invalid())?;
            if claims.exp < chrono::Utc::now().timestamp() {
                return Err(invalid());
            }
            // The principal must still exist: removing it from mesh.yaml revokes its tokens.
            return self.principal(&claims.sub).ok_or_else(invalid);
        }
        if let Some(jwt) = &self.jwt
            && super::JwtVerifier::looks_like_jwt(token)
        {
            return jwt.verify(token);
        }
        let hash = sha256(token.as_bytes());
        if self.admin_token.is_some_and(|a| a == hash) {
            return Ok(Principal {
                name: "admin-token".into(),
                groups: vec![self.admin_group.clone()],
                attributes: BTreeMap::new(),
            });
        }
        let name = self.tokens.get(&hash).ok_or_else(invalid)?;
        self.principal(name).ok_or_else(invalid)
    }
}

/// An Argon2id hash of `password` in PHC format, for `password_hash` in mesh.yaml.
pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| Error::internal(format!("cannot make a salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::internal(format!("cannot hash the password: {e}")))
}

/// A new random long-lived token and the `sha256:<hex>` hash to list in mesh.yaml.
pub fn new_token() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let token = format!("mqt_{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash: String = sha256(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (token, format!("sha256:{hash}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mesh_with(principals: &str) -> Mesh {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("catalog/d")).unwrap();
        std::fs::write(
            dir.path().join("catalog/mesh.yaml"),
            format!("name: t\ndomains:\n  - name: d\n{principals}"),
        )
        .unwrap();
        std::fs::write(dir.path().join("catalog/d/domain.yaml"), "owner: d\n").unwrap();
        Mesh::load(dir.path()).unwrap()
    }

    #[test]
    fn passwords_tokens_and_expiry() {
        let hash = hash_password("s3cret").unwrap();
        let (token, token_hash) = new_token();
        let mesh = mesh_with(&format!(
            "principals:\n  - name: ana\n    groups: [sales]\n    password_hash: \"{hash}\"\n    token_hashes: [\"{token_hash}\"]\n"
        ));
        let id =
            Identity::with_admin_token(&mesh, Signer::new(b"k".to_vec()), Some(sha256(b"root")))
                .unwrap();
        assert!(id.required());
        let ana = id.login("ana", "s3cret").unwrap();
        assert_eq!(ana.groups, ["sales"]);
        assert_eq!(
            id.login("ana", "wrong").unwrap_err().kind(),
            ErrorKind::Unauthenticated
        );
        assert_eq!(
            id.login("bob", "s3cret").unwrap_err().kind(),
            ErrorKind::Unauthenticated
        );

        let issued = id.issue(&ana);
        assert_eq!(
            id.authenticate(Some(&format!("Bearer {issued}"))).unwrap(),
            ana
        );
        assert_eq!(
            id.authenticate(Some(&format!("Bearer {token}"))).unwrap(),
            ana
        );
        assert!(
            id.authenticate(Some("Bearer root"))
                .unwrap()
                .in_group("admins")
        );
        assert_eq!(
            id.authenticate(None).unwrap_err().kind(),
            ErrorKind::Unauthenticated
        );
        let mut forged = issued.clone();
        forged.push('A');
        assert!(id.authenticate(Some(&format!("Bearer {forged}"))).is_err());
        // Another server key: the token means nothing there.
        let other =
            Identity::with_admin_token(&mesh, Signer::new(b"other".to_vec()), None).unwrap();
        assert!(
            other
                .authenticate(Some(&format!("Bearer {issued}")))
                .is_err()
        );
        // Expired tokens are refused.
        let mut expired =
            Identity::with_admin_token(&mesh, Signer::new(b"k".to_vec()), None).unwrap();
        expired.ttl_secs = -1;
        let old = expired.issue(&ana);
        assert!(
            expired
                .authenticate(Some(&format!("Bearer {old}")))
                .is_err()
        );
    }

    #[test]
    fn basic_credentials_with_or_without_padding() {
        let hash = hash_password("admin").unwrap();
        let mesh = mesh_with(&format!(
            "principals:\n  - name: admin\n    password_hash: \"{hash}\"\n"
        ));
        let id = Identity::with_admin_token(&mesh, Signer::random(), None).unwrap();
        assert_eq!(
            id.login_basic("Basic YWRtaW46YWRtaW4=").unwrap().name,
            "admin"
        );
        assert_eq!(
            id.login_basic("Basic YWRtaW46YWRtaW4").unwrap().name,
            "admin"
        );
        assert!(id.login_basic("Basic !!!").is_err());
        assert!(id.login_basic("Bearer x").is_err());
    }

    #[test]
    fn unreadable_identity_provider_keys_refuse_to_start() {
        let mut mesh = mesh_with("");
        mesh.server.jwt = Some(crate::spec::JwtSettings {
            issuer: "https://idp.example.com/".into(),
            audience: None,
            jwks: "/nonexistent/jwks.json".into(),
            name_claim: "sub".into(),
            groups_claim: "groups".into(),
        });
        let err = Identity::with_admin_token(&mesh, Signer::random(), None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UserInput);
        assert!(
            err.to_string()
                .starts_with("cannot read the JWKS file /nonexistent/jwks.json:"),
            "{err}"
        );
    }

    #[test]
    fn a_mesh_without_principals_is_open() {
        let id = Identity::with_admin_token(&mesh_with(""), Signer::random(), None).unwrap();
        assert!(!id.required());
        assert_eq!(id.authenticate(None).unwrap(), Principal::anonymous());
    }
}
