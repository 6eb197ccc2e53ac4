//! Policies, validated: who may read, run and ingest what, which columns are masked, which rows
//! are filtered. Global policies sit in mesh.yaml; a domain's own in its domain.yaml, where they
//! can only speak about that domain.

use std::fmt;
use std::path::{Path, PathBuf};

use super::diagnostic::{Diagnostic, did_you_mean};
use super::files::PolicyFile;
use super::transform::DatasetName;
use super::yaml::Positions;

/// What a principal does to a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Query it (and see it in listings).
    Read,
    /// Run the node producing it.
    Run,
    /// Ingest rows into it (raw layer).
    Ingest,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Run => "run",
            Action::Ingest => "ingest",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(Action::Read),
            "run" => Some(Action::Run),
            "ingest" => Some(Action::Ingest),
            _ => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a masked column reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mask {
    /// Hex SHA-256 of the value as text: equal values stay equal, joins still work.
    Sha256,
    /// `*****` for text, NULL for other types.
    Redact,
    /// NULL.
    Null,
    /// A SQL expression in which `{column}` is the column.
    Expression(String),
}

impl fmt::Display for Mask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mask::Sha256 => f.write_str("sha256"),
            Mask::Redact => f.write_str("redact"),
            Mask::Null => f.write_str("null"),
            Mask::Expression(e) => write!(f, "`{e}`"),
        }
    }
}

/// What a policy does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Allow(Vec<Action>),
    Deny(Vec<Action>),
    Mask(Mask),
    RowFilter(String),
}

/// `domain`, `domain.layer`, `domain.layer.dataset` or, for columns,
/// `domain.layer.dataset.column`; `*` matches any one part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(Vec<String>);

impl Pattern {
    /// A dataset pattern (`domain`, `domain.layer` or `domain.layer.dataset`, `*` for any part).
    pub fn dataset(s: &str) -> Option<Self> {
        Self::parse(s, 3)
    }

    fn parse(s: &str, max_parts: usize) -> Option<Self> {
        let parts: Vec<String> = s.split('.').map(str::to_string).collect();
        let ok = !parts.is_empty()
            && parts.len() <= max_parts
            && parts.iter().all(|p| {
                !p.is_empty()
                    && (p == "*"
                        || super::is_valid_name(p)
                        || p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            });
        ok.then_some(Self(parts))
    }

    fn matches_parts(&self, parts: &[&str]) -> bool {
        self.0.len() <= parts.len() && self.0.iter().zip(parts).all(|(p, v)| p == "*" || p == v)
    }

    /// Whether the pattern covers `dataset`.
    pub fn matches(&self, d: &DatasetName) -> bool {
        self.matches_parts(&[&d.domain, &d.layer, &d.dataset])
    }

    /// Whether the (four-part) pattern names `column` of `dataset`.
    pub fn matches_column(&self, d: &DatasetName, column: &str) -> bool {
        self.0.len() == 4 && self.matches_parts(&[&d.domain, &d.layer, &d.dataset, column])
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

/// A validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    /// The domain whose domain.yaml declares it; `None` for mesh.yaml.
    pub domain: Option<String>,
    pub file: PathBuf,
    pub line: usize,
    pub effect: Effect,
    pub on: Vec<Pattern>,
    pub columns: Vec<Pattern>,
    pub classification: Option<String>,
    pub groups: Vec<String>,
    pub principals: Vec<String>,
    pub except_groups: Vec<String>,
    pub except_principals: Vec<String>,
}

impl Policy {
    /// Whether the policy speaks to principal `name` with `groups`.
    pub fn applies_to(&self, name: &str, groups: &[String]) -> bool {
        let in_any = |list: &[String]| list.iter().any(|g| groups.contains(g));
        let targeted = (self.groups.is_empty() && self.principals.is_empty())
            || self.principals.iter().any(|p| p == name)
            || in_any(&self.groups);
        let exempt =
            self.except_principals.iter().any(|p| p == name) || in_any(&self.except_groups);
        targeted && !exempt
    }

    /// Whether the policy covers `dataset`.
    pub fn covers(&self, d: &DatasetName) -> bool {
        if let Some(domain) = &self.domain
            && *domain != d.domain
        {
            return false;
        }
        self.on.is_empty() || self.on.iter().any(|p| p.matches(d))
    }

    /// `policy `name` (file)`, how decisions cite it.
    pub fn cite(&self) -> String {
        match &self.domain {
            Some(d) => format!("policy `{}` of domain `{d}`", self.name),
            None => format!("global policy `{}`", self.name),
        }
    }
}

/// Validates the policies of mesh.yaml (`domain` is `None`) or of a domain.yaml; `key` is the
/// YAML key holding them (`policies`).
pub fn validate(
    file: &Path,
    specs: &[PolicyFile],
    pos: &Positions,
    domain: Option<&str>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Policy> {
    let mut out: Vec<Policy> = Vec::new();
    for (i, p) in specs.iter().enumerate() {
        let before = diags.len();
        let at = |key: &str| {
            let mut path = vec!["policies".to_string(), i.to_string()];
            if !key.is_empty() {
                path.push(key.to_string());
            }
            pos.value(&path)
        };
        let mut push = |key: &str, msg: String| {
            let (l, c) = at(key);
            diags.push(Diagnostic::new(file, l, c, msg));
        };
        if p.name.trim().is_empty() {
            push("name", "a policy needs a name".into());
        }
        if specs[..i].iter().any(|o| o.name == p.name) {
            push("name", format!("policy `{}` is declared twice", p.name));
        }
        let actions =
            |list: &[String], key: &str, push: &mut dyn FnMut(&str, String)| -> Vec<Action> {
                let mut v = Vec::new();
                for a in list {
                    match Action::parse(a) {
                        Some(x) => v.push(x),
                        None => {
                            let hint = did_you_mean(a, ["read", "run", "ingest"])
                                .map(|s| format!(" (did you mean `{s}`?)"))
                                .unwrap_or_default();
                            push(
                                key,
                                format!("unknown action `{a}`; expected read, run or ingest{hint}"),
                            );
                        }
                    }
                }
                v
            };
        let mut effects = Vec::new();
        if !p.allow.is_empty() {
            effects.push(Effect::Allow(actions(&p.allow, "allow", &mut push)));
        }
        if !p.deny.is_empty() {
            effects.push(Effect::Deny(actions(&p.deny, "deny", &mut push)));
        }
        if let Some(m) = &p.mask {
            let mask = match m.as_str() {
                "sha256" => Mask::Sha256,
                "redact" => Mask::Redact,
                "null" => Mask::Null,
                expr if expr.contains("{column}") => {
                    if let Err(e) = parse_expression(&expr.replace("{column}", "x")) {
                        push("mask", format!("invalid mask expression: {e}"));
                    }
                    Mask::Expression(expr.to_string())
                }
                other => {
                    push(
                        "mask",
                        format!(
                            "invalid mask `{other}`; expected sha256, redact, null or a SQL expression using {{column}}"
                        ),
                    );
                    Mask::Null
                }
            };
            if p.columns.is_empty() && p.classification.is_none() {
                push("mask", "a mask needs `columns` or `classification`".into());
            }
            effects.push(Effect::Mask(mask));
        }
        if let Some(f) = &p.row_filter {
            if let Err(e) = parse_expression(&bind_principal(f, "someone", &Default::default())) {
                push("row_filter", format!("invalid row filter: {e}"));
            }
            effects.push(Effect::RowFilter(f.clone()));
        }
        if effects.len() != 1 {
            push(
                "name",
                format!(
                    "policy `{}` must do exactly one thing: allow, deny, mask or row_filter (found {})",
                    p.name,
                    effects.len()
                ),
            );
        }
        let mut on = Vec::new();
        for (j, s) in p.on.iter().enumerate() {
            let (l, c) = pos.value(&["policies".into(), i.to_string(), "on".into(), j.to_string()]);
            match Pattern::parse(s, 3) {
                Some(pat) => {
                    if let Some(d) = domain
                        && pat.0[0] != d
                    {
                        diags.push(Diagnostic::new(
                            file,
                            l,
                            c,
                            format!("`{s}` is outside domain `{d}`: a domain's policies speak about its own datasets"),
                        ));
                    }
                    on.push(pat);
                }
                None => diags.push(Diagnostic::new(
                    file,
                    l,
                    c,
                    format!("invalid pattern `{s}`; expected domain, domain.layer or domain.layer.dataset (`*` for any part)"),
                )),
            }
        }
        let mut columns = Vec::new();
        for (j, s) in p.columns.iter().enumerate() {
            let (l, c) = pos.value(&[
                "policies".into(),
                i.to_string(),
                "columns".into(),
                j.to_string(),
            ]);
            match Pattern::parse(s, 4).filter(|p| p.0.len() == 4) {
                Some(pat) => columns.push(pat),
                None => diags.push(Diagnostic::new(
                    file,
                    l,
                    c,
                    format!("invalid column `{s}`; expected domain.layer.dataset.column (`*` for any part)"),
                )),
            }
        }
        if diags.len() > before {
            continue;
        }
        let (line, _) = at("");
        out.push(Policy {
            name: p.name.clone(),
            domain: domain.map(str::to_string),
            file: file.to_path_buf(),
            line,
            effect: effects.remove(0),
            on,
            columns,
            classification: p.classification.clone(),
            groups: p.groups.clone(),
            principals: p.principals.clone(),
            except_groups: p.except_groups.clone(),
            except_principals: p.except_principals.clone(),
        });
    }
    out
}

/// Replaces `principal_attribute('name')` by the principal's value of that attribute (NULL when
/// it has none) and `principal_name()` by its name, as SQL literals.
pub fn bind_principal(
    sql: &str,
    name: &str,
    attributes: &std::collections::BTreeMap<String, String>,
) -> String {
    let quote = |v: &str| format!("'{}'", v.replace('\'', "''"));
    let mut out = sql.replace("principal_name()", &quote(name));
    while let Some(start) = out.find("principal_attribute(") {
        let rest = &out[start + "principal_attribute(".len()..];
        let Some(end) = rest.find(')') else { break };
        let key = rest[..end]
            .trim()
            .trim_matches(|c| c == '\'' || c == '"')
            .to_string();
        let value = attributes
            .get(&key)
            .map(|v| quote(v))
            .unwrap_or_else(|| "NULL".to_string());
        out.replace_range(
            start..start + "principal_attribute(".len() + end + 1,
            &value,
        );
    }
    out
}

/// Parses a SQL expression (syntax only); an error says where in the expression it is.
fn parse_expression(sql: &str) -> Result<(), String> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    Parser::new(&GenericDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map(|_| ())
        .map_err(|e| {
            let msg = e.to_string();
            let text = msg.strip_prefix("sql parser error: ").unwrap_or(&msg);
            let text = text.split(" at Line: ").next().unwrap_or(text).to_string();
            match super::transform::error_position(sql, &msg) {
                Some((_, column)) => format!("{text} (at character {column} of the expression)"),
                None => text,
            }
        })
}
