//! Decisions: may this principal read, run or ingest this dataset, and how does it see it?
//!
//! Evaluation order, for every action: the admin group may do everything; then any policy
//! denying the action wins; then any policy allowing it; then the defaults:
//!
//! - a domain's owner group reads all its layers, runs its nodes and ingests into its raw layer;
//! - every authenticated principal reads the `active` gold products of every domain;
//! - everything else is denied — other domains' raw and silver in particular.
//!
//! Global policies (mesh.yaml) and a domain's own (domain.yaml) are evaluated together; since a
//! denial always wins, a domain can tighten the global rules but never lift a global denial.

use std::sync::Arc;

use super::Principal;
use crate::spec::policy::{Effect, Mask};
use crate::spec::{Action, DatasetName, Mesh, Policy};

/// Name of the system catalog (`mesh.catalog.*`, `mesh.ops.*`, `mesh.lineage.*`).
const SYSTEM: &str = "mesh";

/// The outcome of one decision, with the rule that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

/// The rule that decides, before its reason is written out (most callers only need the answer).
enum Verdict<'a> {
    Admin,
    AuditLog,
    SystemRead,
    SystemWrite,
    /// A policy, and whether it allows.
    Policy(&'a Policy, bool),
    Owner(&'a str),
    OwnerIngest(&'a str),
    IngestBeyondRaw,
    GoldProduct,
    OtherDomain,
    NotOwner,
}

impl Verdict<'_> {
    fn allowed(&self) -> bool {
        match self {
            Verdict::Admin
            | Verdict::SystemRead
            | Verdict::Owner(_)
            | Verdict::OwnerIngest(_)
            | Verdict::GoldProduct => true,
            Verdict::Policy(_, allows) => *allows,
            Verdict::AuditLog
            | Verdict::SystemWrite
            | Verdict::IngestBeyondRaw
            | Verdict::OtherDomain
            | Verdict::NotOwner => false,
        }
    }

    fn reason(&self, access: &Access, action: Action, dataset: &DatasetName) -> String {
        let admins = &access.mesh.admin_group;
        let domain = &dataset.domain;
        match self {
            Verdict::Admin => format!("member of the admin group `{admins}`"),
            Verdict::AuditLog => {
                format!("the audit log is readable by the admin group `{admins}` only")
            }
            Verdict::SystemRead => {
                "the system catalog, limited to what the principal may read".into()
            }
            Verdict::SystemWrite => "the system catalog is written by meshql only".into(),
            Verdict::Policy(p, _) => p.cite(),
            Verdict::Owner(o) => format!("default: the owner group `{o}` of domain `{domain}`"),
            Verdict::OwnerIngest(o) => {
                format!("default: the owner group `{o}` ingests into its raw layer")
            }
            Verdict::IngestBeyondRaw => {
                "default: ingest goes into a raw layer only (pipelines build the others)".into()
            }
            Verdict::GoldProduct => "default: every principal reads active gold products".into(),
            Verdict::OtherDomain => format!(
                "default: `{dataset}` belongs to domain `{domain}`; other domains read its active gold products only"
            ),
            Verdict::NotOwner => format!(
                "default: only the owner group of domain `{domain}` may {action} its datasets"
            ),
        }
    }
}

/// A column mask in force for a principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMask {
    pub column: String,
    pub mask: Mask,
    pub rule: String,
}

/// A row filter in force for a principal: a SQL predicate with the principal's attributes bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowFilter {
    pub predicate: String,
    pub rule: String,
}

/// What one principal may do in one mesh.
#[derive(Debug, Clone)]
pub struct Access {
    pub principal: Principal,
    mesh: Arc<Mesh>,
    admin: bool,
}

impl Access {
    /// `open` meshes (no principals) let everyone do everything, as an administrator would.
    pub fn new(mesh: Arc<Mesh>, principal: Principal, open: bool) -> Self {
        let admin = open || principal.in_group(&mesh.admin_group);
        Self {
            principal,
            mesh,
            admin,
        }
    }

    /// An administrator's access (the embedded CLI, pipeline runs).
    pub fn admin(mesh: Arc<Mesh>) -> Self {
        let principal = Principal::platform(&mesh);
        Self::new(mesh, principal, true)
    }

    pub fn is_admin(&self) -> bool {
        self.admin
    }

    pub fn mesh(&self) -> &Arc<Mesh> {
        &self.mesh
    }

    fn applying(&self) -> impl Iterator<Item = &Policy> {
        self.mesh
            .all_policies()
            .filter(|p| p.applies_to(&self.principal.name, &self.principal.groups))
    }

    /// May the principal do `action` to `dataset`?
    pub fn decide(&self, action: Action, dataset: &DatasetName) -> Decision {
        let verdict = self.verdict(action, dataset);
        Decision {
            allowed: verdict.allowed(),
            reason: verdict.reason(self, action, dataset),
        }
    }

    /// Like [`Access::decide`], without the reason (listings ask once per dataset).
    pub fn can(&self, action: Action, dataset: &DatasetName) -> bool {
        self.verdict(action, dataset).allowed()
    }

    fn verdict(&self, action: Action, dataset: &DatasetName) -> Verdict<'_> {
        if self.admin {
            return Verdict::Admin;
        }
        if dataset.domain == SYSTEM {
            return match (action, dataset.layer.as_str(), dataset.dataset.as_str()) {
                (Action::Read, "ops", "audit") => Verdict::AuditLog,
                (Action::Read, ..) => Verdict::SystemRead,
                _ => Verdict::SystemWrite,
            };
        }
        let matching = |want_deny: bool| {
            self.applying().find(|p| {
                p.covers(dataset)
                    && match &p.effect {
                        Effect::Deny(actions) if want_deny => actions.contains(&action),
                        Effect::Allow(actions) if !want_deny => actions.contains(&action),
                        _ => false,
                    }
            })
        };
        if let Some(p) = matching(true) {
            return Verdict::Policy(p, false);
        }
        if let Some(p) = matching(false) {
            return Verdict::Policy(p, true);
        }
        let owner = self
            .mesh
            .domain(&dataset.domain)
            .map(|d| d.owner.as_str())
            .filter(|o| self.principal.in_group(o));
        match (action, owner) {
            (Action::Read | Action::Run, Some(o)) => Verdict::Owner(o),
            (Action::Ingest, Some(o)) if dataset.layer == "raw" => Verdict::OwnerIngest(o),
            (Action::Ingest, Some(_)) => Verdict::IngestBeyondRaw,
            (Action::Read, None) if self.is_active_gold_product(dataset) => Verdict::GoldProduct,
            (Action::Read, None) => Verdict::OtherDomain,
            (_, None) => Verdict::NotOwner,
        }
    }

    fn is_active_gold_product(&self, d: &DatasetName) -> bool {
        d.layer == "gold"
            && self
                .mesh
                .dataset(d)
                .and_then(|ds| ds.contract.as_ref())
                .is_some_and(|c| c.status == "active")
    }

    /// The masks on `columns` of `dataset` for this principal (admins see raw values).
    pub fn masks(&self, dataset: &DatasetName, columns: &[String]) -> Vec<ColumnMask> {
        if self.admin {
            return Vec::new();
        }
        let contract = self.mesh.dataset(dataset).and_then(|d| d.contract.clone());
        let classification = |c: &str| {
            contract
                .as_ref()
                .and_then(|k| k.columns.iter().find(|col| col.name == c))
                .and_then(|col| col.classification.clone())
        };
        let mut out: Vec<ColumnMask> = Vec::new();
        for p in self.applying() {
            let Effect::Mask(mask) = &p.effect else {
                continue;
            };
            if !p.covers(dataset) {
                continue;
            }
            for c in columns {
                let by_name = p.columns.iter().any(|pat| pat.matches_column(dataset, c));
                let by_class = p.classification.as_ref().is_some_and(|want| {
                    classification(c).is_some_and(|have| have.eq_ignore_ascii_case(want))
                });
                if (by_name || by_class) && !out.iter().any(|m| m.column == *c) {
                    out.push(ColumnMask {
                        column: c.clone(),
                        mask: mask.clone(),
                        rule: p.cite(),
                    });
                }
            }
        }
        out
    }

    /// The row filters on `dataset` for this principal (admins see every row).
    pub fn row_filters(&self, dataset: &DatasetName) -> Vec<RowFilter> {
        if self.admin {
            return Vec::new();
        }
        self.applying()
            .filter(|p| p.covers(dataset))
            .filter_map(|p| match &p.effect {
                Effect::RowFilter(sql) => Some(RowFilter {
                    predicate: crate::spec::policy::bind_principal(
                        sql,
                        &self.principal.name,
                        &self.principal.attributes,
                    ),
                    rule: p.cite(),
                }),
                _ => None,
            })
            .collect()
    }
}
