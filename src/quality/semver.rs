//! The semver guard: a contract compared with the one its product was last published under.
//!
//! Dropping or renaming a column, narrowing its type, or relaxing `required`/`unique` breaks
//! consumers and needs a major bump; adding a column, widening a type or tightening a promise
//! needs at least a minor bump; a version never goes backwards.

use crate::engine::Engine;
use crate::error::Result;
use crate::spec::Diagnostic;
use crate::spec::contract::{Contract, ContractColumn, Version};

/// How a change affects consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Impact {
    Additive,
    Breaking,
}

/// One difference between two versions of a contract's columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub impact: Impact,
    /// `- units: dropped`, `~ revenue: number → integer (narrowed)`, `+ margin: added`.
    pub line: String,
}

/// Whether a logical type change from `old` to `new` widens (every old value fits the new type).
fn widens(old: &str, new: &str) -> bool {
    matches!(
        (old, new),
        ("integer", "number") | ("date", "timestamp") | (_, "string")
    )
}

/// The changes from `old` to `new` columns.
pub fn diff(old: &[ContractColumn], new: &[ContractColumn]) -> Vec<Change> {
    let mut out = Vec::new();
    let dropped: Vec<&ContractColumn> = old
        .iter()
        .filter(|o| !new.iter().any(|n| n.name == o.name))
        .collect();
    let added: Vec<&ContractColumn> = new
        .iter()
        .filter(|n| !old.iter().any(|o| o.name == n.name))
        .collect();
    // One column gone and one of the same type come: a rename.
    if let ([d], [a]) = (dropped.as_slice(), added.as_slice())
        && d.logical_type == a.logical_type
    {
        out.push(Change {
            impact: Impact::Breaking,
            line: format!("~ {} → {}: renamed", d.name, a.name),
        });
    } else {
        for d in dropped {
            out.push(Change {
                impact: Impact::Breaking,
                line: format!("- {}: dropped", d.name),
            });
        }
        for a in added {
            out.push(Change {
                impact: Impact::Additive,
                line: format!("+ {}: added", a.name),
            });
        }
    }
    for o in old {
        let Some(n) = new.iter().find(|n| n.name == o.name) else {
            continue;
        };
        match (&o.logical_type, &n.logical_type) {
            (Some(a), Some(b)) if a != b => out.push(Change {
                impact: if widens(a, b) {
                    Impact::Additive
                } else {
                    Impact::Breaking
                },
                line: format!(
                    "~ {}: {a} → {b} ({})",
                    o.name,
                    if widens(a, b) { "widened" } else { "narrowed" }
                ),
            }),
            _ => {}
        }
        if o.physical_type != n.physical_type
            && let (Some(a), Some(b)) = (&o.physical_type, &n.physical_type)
        {
            out.push(Change {
                impact: Impact::Breaking,
                line: format!("~ {}: physical type {a} → {b}", o.name),
            });
        }
        for (what, was, now) in [
            ("required", o.required, n.required),
            ("unique", o.unique, n.unique),
        ] {
            if was && !now {
                out.push(Change {
                    impact: Impact::Breaking,
                    line: format!("~ {}: no longer {what} (relaxed)", o.name),
                });
            } else if !was && now {
                out.push(Change {
                    impact: Impact::Additive,
                    line: format!("~ {}: now {what}", o.name),
                });
            }
        }
    }
    out
}

/// What `contract`'s version must be, given the `old` one and the changes; `None` when it is
/// fine.
pub fn verdict(old: Version, new: Version, changes: &[Change]) -> Option<String> {
    if new < old {
        return Some(format!("the version goes backwards ({old} → {new})"));
    }
    let worst = changes.iter().map(|c| c.impact).max();
    match worst {
        Some(Impact::Breaking) if new.major <= old.major => Some(format!(
            "{old} → {new} breaks consumers: bump the major version (to {}.0.0)",
            old.major + 1
        )),
        Some(Impact::Additive) if new.major == old.major && new.minor <= old.minor => {
            Some(format!(
                "{old} → {new} changes the schema: bump at least the minor version (to {}.{}.0)",
                old.major,
                old.minor + 1
            ))
        }
        _ => None,
    }
}

/// Compares every product's contract with the one recorded by its last publish.
pub async fn guard(engine: &Engine) -> Result<Vec<Diagnostic>> {
    let mut out = Vec::new();
    for (ds, contract) in engine.mesh().products() {
        let Some(store) = engine.catalog().store(&ds.name) else {
            continue;
        };
        let Some(meta) = store.last_commit_metadata().await? else {
            continue;
        };
        let Some(recorded) = meta.get("contract") else {
            continue;
        };
        let old_version = recorded
            .get("version")
            .and_then(|v| v.as_str())
            .and_then(Version::parse);
        let old_columns: Option<Vec<ContractColumn>> = recorded
            .get("columns")
            .and_then(|c| serde_json::from_value(c.clone()).ok());
        let (Some(old_version), Some(old_columns)) = (old_version, old_columns) else {
            continue;
        };
        if let Some(d) = check(contract, old_version, &old_columns) {
            out.push(d);
        }
    }
    Ok(out)
}

fn check(contract: &Contract, old: Version, old_columns: &[ContractColumn]) -> Option<Diagnostic> {
    let changes = diff(old_columns, &contract.columns);
    let problem = verdict(old, contract.version, &changes)?;
    let lines: Vec<String> = changes.iter().map(|c| format!("    {}", c.line)).collect();
    let mut msg = format!(
        "contract `{}` of `{}`: {problem}",
        contract.id, contract.dataset
    );
    if !lines.is_empty() {
        msg.push_str(&format!(
            "\n  changes since the published {old}:\n{}",
            lines.join("\n")
        ));
    }
    Some(Diagnostic::new(
        &contract.file,
        contract.version_line,
        contract.version_column,
        msg,
    ))
}
