//! Governance: who a request comes from and what it may do.
//!
//! [`Identity`] authenticates principals (passwords hashed with Argon2, bearer tokens signed by
//! the server or hashed in mesh.yaml); [`Signer`] signs everything the server hands to clients
//! (tokens, tickets, prepared-statement handles) so that none can be forged.

mod identity;
mod signer;

pub use identity::{ADMIN_TOKEN_ENV, Identity, Principal, hash_password, new_token};
pub use signer::Signer;
