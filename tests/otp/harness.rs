//! The OTP conformance harness: loads the recorded supervision cases and compares traces.
//!
//! Cases (`tests/otp/cases/*.json`, copied from the recordings of OTP 25.2.3; format in
//! `tests/otp/README.md`) are loaded from the directory in `OTP_CASES_DIR`, or the copied
//! cases by default, so that further cases in the same format run without code changes.
//! Traces are compared element by element; an `{"any_order": [...]}` group matches the same
//! number of consecutive actual events as a multiset. A mismatch names the case, the first
//! differing index and both events.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::Value;

/// One recorded scenario.
#[derive(Debug, Clone)]
pub struct Case {
    /// The case's name (its file stem).
    pub name: String,
    /// The file it came from.
    pub path: PathBuf,
    /// Tags (e.g. `spec_validation`).
    pub tags: Vec<String>,
    /// The supervisor tree (flags and child specs, defaults not applied).
    pub supervisor: Value,
    /// The steps to execute.
    pub steps: Vec<Value>,
    /// The recorded trace.
    pub expected: Vec<Value>,
}

/// The case directory: `OTP_CASES_DIR`, or the copied cases.
pub fn cases_dir() -> PathBuf {
    std::env::var_os("OTP_CASES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/otp/cases"))
}

/// Loads every `*.json` case of `dir`, sorted by file name.
pub fn load_cases(dir: &Path) -> Result<Vec<Case>, String> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read case directory {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths.iter().map(|p| load_case(p)).collect()
}

/// Loads and checks the shape of one case file.
pub fn load_case(path: &Path) -> Result<Case, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: invalid JSON: {e}", path.display()))?;
    let field = |k: &str| {
        v.get(k)
            .ok_or_else(|| format!("{}: missing field {k:?}", path.display()))
    };
    let array = |k: &str| -> Result<Vec<Value>, String> {
        field(k)?
            .as_array()
            .cloned()
            .ok_or_else(|| format!("{}: field {k:?} is not an array", path.display()))
    };
    let name = field("name")?
        .as_str()
        .ok_or_else(|| format!("{}: name is not a string", path.display()))?
        .to_string();
    let tags = v
        .get("tags")
        .and_then(Value::as_array)
        .map(|t| {
            t.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let case = Case {
        name,
        path: path.to_path_buf(),
        tags,
        supervisor: field("supervisor")?.clone(),
        steps: array("steps")?,
        expected: array("expected")?,
    };
    check_trace_shape(&case)?;
    Ok(case)
}

/// Every event is a step marker, a known event, or an `any_order` group of known events; step
/// markers count 0, 1, 2, ... up to the number of steps.
fn check_trace_shape(case: &Case) -> Result<(), String> {
    const EVENTS: [&str; 8] = [
        "step",
        "start",
        "start_failed",
        "start_ignored",
        "exit",
        "result",
        "which_children",
        "count_children",
    ];
    let known = |e: &Value| {
        e.get("ev")
            .and_then(Value::as_str)
            .is_some_and(|k| EVENTS.contains(&k))
    };
    let mut next_step = 0;
    for (i, e) in case.expected.iter().enumerate() {
        if let Some(group) = e.get("any_order") {
            let members = group
                .as_array()
                .ok_or_else(|| format!("{}: event {i}: any_order is not an array", case.name))?;
            if !members.iter().all(known) {
                return Err(format!(
                    "{}: event {i}: unknown event in any_order group",
                    case.name
                ));
            }
            continue;
        }
        if !known(e) {
            return Err(format!("{}: event {i}: unknown event {e}", case.name));
        }
        if e["ev"] == "step" {
            if e["n"] != next_step {
                return Err(format!(
                    "{}: event {i}: step {} where {next_step} was expected",
                    case.name, e["n"]
                ));
            }
            next_step += 1;
        }
    }
    if next_step != case.steps.len() as u64 + 1 {
        return Err(format!(
            "{}: {} step markers for {} steps (+ start_root)",
            case.name,
            next_step,
            case.steps.len()
        ));
    }
    Ok(())
}

/// Where an actual trace first departs from the expected one.
#[derive(Debug, PartialEq)]
pub struct Mismatch {
    /// The index in the actual trace.
    pub index: usize,
    /// What was expected there (an event, or an `any_order` group).
    pub expected: Option<Value>,
    /// What happened there.
    pub actual: Option<Value>,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<Value>| {
            v.as_ref()
                .map_or("(end of trace)".to_string(), Value::to_string)
        };
        write!(
            f,
            "first difference at event {}:\n  expected: {}\n  actual:   {}",
            self.index,
            show(&self.expected),
            show(&self.actual)
        )
    }
}

/// Compares an actual trace with the expected one (`any_order` groups as multisets).
pub fn compare(expected: &[Value], actual: &[Value]) -> Result<(), Mismatch> {
    let mut at = 0;
    for e in expected {
        match e.get("any_order").and_then(Value::as_array) {
            Some(group) => {
                let window = actual.get(at..at + group.len());
                let matches = window.is_some_and(|w| {
                    let mut left: Vec<&Value> = group.iter().collect();
                    w.iter().all(|a| match left.iter().position(|g| *g == a) {
                        Some(pos) => {
                            left.swap_remove(pos);
                            true
                        }
                        None => false,
                    })
                });
                if !matches {
                    return Err(Mismatch {
                        index: at,
                        expected: Some(e.clone()),
                        actual: actual.get(at).cloned(),
                    });
                }
                at += group.len();
            }
            None => {
                if actual.get(at) != Some(e) {
                    return Err(Mismatch {
                        index: at,
                        expected: Some(e.clone()),
                        actual: actual.get(at).cloned(),
                    });
                }
                at += 1;
            }
        }
    }
    if at < actual.len() {
        return Err(Mismatch {
            index: at,
            expected: None,
            actual: actual.get(at).cloned(),
        });
    }
    Ok(())
}

/// Flattens an expected trace into one possible actual trace (groups in stored order).
pub fn flatten(expected: &[Value]) -> Vec<Value> {
    expected
        .iter()
        .flat_map(|e| match e.get("any_order").and_then(Value::as_array) {
            Some(group) => group.clone(),
            None => vec![e.clone()],
        })
        .collect()
}
