//! Governance: who a request comes from and what it may do.
//!
//! [`Identity`] authenticates principals (passwords hashed with Argon2, bearer tokens signed by
//! the server or hashed in mesh.yaml); [`Signer`] signs everything the server hands to clients
//! (tokens, tickets, prepared-statement handles) so that none can be forged. [`Access`] decides
//! what a principal may read, run and ingest, and [`govern`] enforces it on a query's logical
//! plan: denials, row filters, column masks. [`Logins`] keeps password guessing slow.

mod access;
mod identity;
mod jwt;
mod logins;
mod rewrite;
mod signer;

pub use access::{Access, ColumnMask, Decision, RowFilter};
pub use identity::{ADMIN_TOKEN_ENV, Identity, Principal, hash_password, new_token};
pub use jwt::JwtVerifier;
pub use logins::Logins;
pub use rewrite::{Context, Governed, govern};
pub use signer::Signer;
