//! Reading YAML files with every unknown key reported, each at its own line and column.
//!
//! serde stops at the first error, so unknown keys are not refused by serde: they are collected
//! with `serde_ignored` and pinned to positions found by a marked event parse of the same text.
//! The keys that *are* allowed at a place come from the JSON Schema generated from the structs.

use std::collections::HashMap;
use std::path::Path;

use serde::de::DeserializeOwned;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use super::diagnostic::{Diagnostic, did_you_mean};

/// Positions of keys and values in a YAML document, by path (`["domains", "1", "path"]`).
#[derive(Debug, Default)]
pub struct Positions {
    keys: HashMap<Vec<String>, (usize, usize)>,
    values: HashMap<Vec<String>, (usize, usize)>,
}

impl Positions {
    /// Position of the key at `path`, else of its value, else of the closest ancestor.
    pub fn of(&self, path: &[String]) -> (usize, usize) {
        let mut path = path.to_vec();
        loop {
            if let Some(p) = self.keys.get(&path).or_else(|| self.values.get(&path)) {
                return *p;
            }
            if path.pop().is_none() {
                return (1, 1);
            }
        }
    }

    /// Position of the value at `path` (falls back like [`Positions::of`]).
    pub fn value(&self, path: &[String]) -> (usize, usize) {
        self.values
            .get(path)
            .copied()
            .unwrap_or_else(|| self.of(path))
    }
}

enum Frame {
    Map {
        path: Vec<String>,
        key: Option<String>,
    },
    Seq {
        path: Vec<String>,
        index: usize,
    },
}

#[derive(Default)]
struct Recorder {
    stack: Vec<Frame>,
    positions: Positions,
}

fn at(mark: Marker) -> (usize, usize) {
    // yaml-rust2 markers: 1-based lines, 0-based columns.
    (mark.line(), mark.col() + 1)
}

impl Recorder {
    /// Path of the node that starts now, or `None` if this scalar is a mapping key.
    fn next_node_path(&mut self, scalar: Option<&str>, mark: Marker) -> Option<Vec<String>> {
        match self.stack.last_mut() {
            None => Some(Vec::new()),
            Some(Frame::Seq { path, index }) => {
                let mut p = path.clone();
                p.push(index.to_string());
                *index += 1;
                Some(p)
            }
            Some(Frame::Map { path, key }) => match key.take() {
                Some(k) => {
                    let mut p = path.clone();
                    p.push(k);
                    Some(p)
                }
                None => {
                    let k = scalar.unwrap_or_default().to_string();
                    let mut p = path.clone();
                    p.push(k.clone());
                    self.positions.keys.insert(p, at(mark));
                    *key = Some(k);
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Recorder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, ..) => {
                if let Some(p) = self.next_node_path(Some(&value), mark) {
                    self.positions.values.insert(p, at(mark));
                }
            }
            Event::Alias(_) => {
                if let Some(p) = self.next_node_path(None, mark) {
                    self.positions.values.insert(p, at(mark));
                }
            }
            Event::MappingStart(..) => {
                let path = self.next_node_path(None, mark).unwrap_or_default();
                self.positions.values.insert(path.clone(), at(mark));
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.next_node_path(None, mark).unwrap_or_default();
                self.positions.values.insert(path.clone(), at(mark));
                self.stack.push(Frame::Seq { path, index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

/// Parses `text` (the content of `file`) into `T`. Every problem is pushed to `diags`; the value
/// is returned when the file could be read at all (unknown keys do not prevent it).
pub fn parse<T: DeserializeOwned + schemars::JsonSchema>(
    file: &Path,
    text: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<(T, Positions)> {
    let mut recorder = Recorder::default();
    if let Err(e) = Parser::new_from_str(text).load(&mut recorder, false) {
        let (line, column) = at(*e.marker());
        diags.push(Diagnostic::new(
            file,
            line,
            column,
            format!("invalid YAML: {}", e.info()),
        ));
        return None;
    }
    let positions = recorder.positions;

    let mut unknown: Vec<Vec<String>> = Vec::new();
    let de = serde_norway::Deserializer::from_str(text);
    let value: Result<T, _> = serde_ignored::deserialize(de, |path| unknown.push(segments(&path)));

    let schema = serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default();
    for path in &unknown {
        let (line, column) = positions.of(path);
        let key = path.last().cloned().unwrap_or_default();
        let allowed = allowed_keys(&schema, &path[..path.len().saturating_sub(1)]);
        let mut msg = format!("unknown key `{key}`");
        if !allowed.is_empty() {
            msg.push_str(&format!("; expected one of: {}", allowed.join(", ")));
            if let Some(s) = did_you_mean(&key, allowed.iter().map(String::as_str)) {
                msg.push_str(&format!(" (did you mean `{s}`?)"));
            }
        }
        diags.push(Diagnostic::new(file, line, column, msg));
    }

    match value {
        Ok(v) => Some((v, positions)),
        Err(e) => {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((1, 1));
            diags.push(Diagnostic::new(file, line, column, serde_message(&e)));
            None
        }
    }
}

/// serde_norway appends " at line L column C" to messages; the position is reported separately.
fn serde_message(e: &serde_norway::Error) -> String {
    let text = e.to_string();
    match text.find(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn segments(path: &serde_ignored::Path<'_>) -> Vec<String> {
    use serde_ignored::Path as P;
    match path {
        P::Root => Vec::new(),
        P::Seq { parent, index } => {
            let mut v = segments(parent);
            v.push(index.to_string());
            v
        }
        P::Map { parent, key } => {
            let mut v = segments(parent);
            v.push(key.clone());
            v
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            segments(parent)
        }
    }
}

/// Keys allowed by the JSON Schema of the object found at `path`.
fn allowed_keys(root: &serde_json::Value, path: &[String]) -> Vec<String> {
    let mut node = resolve(root, root);
    for seg in path {
        let next = if seg.parse::<usize>().is_ok() {
            node.get("items")
        } else {
            node.get("properties").and_then(|p| p.get(seg))
        };
        match next {
            Some(n) => node = resolve(root, n),
            None => return Vec::new(),
        }
    }
    node.get("properties")
        .and_then(|p| p.as_object())
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// Follows `$ref`s and picks the object alternative of `anyOf`/`oneOf` (how `Option<T>` shows).
fn resolve<'a>(root: &'a serde_json::Value, node: &'a serde_json::Value) -> &'a serde_json::Value {
    if let Some(r) = node.get("$ref").and_then(|r| r.as_str()) {
        let name = r.rsplit('/').next().unwrap_or_default();
        if let Some(target) = root.get("$defs").and_then(|d| d.get(name)) {
            return resolve(root, target);
        }
    }
    for alt in ["anyOf", "oneOf", "allOf"] {
        if let Some(list) = node.get(alt).and_then(|l| l.as_array()) {
            for item in list {
                let item = resolve(root, item);
                if item.get("properties").is_some() || item.get("items").is_some() {
                    return item;
                }
            }
        }
    }
    node
}
