//! The OTP conformance corpus: every recorded case replayed on airssys-rt's supervisor, and
//! the trace comparator's own tests.
//!
//! Cases come from `OTP_CASES_DIR` (default: `tests/otp/cases`), so further cases in the same
//! format run without code changes: `OTP_CASES_DIR=/path/to/cases cargo test --test otp_cases`.

#[path = "otp/harness.rs"]
mod harness;
#[path = "otp/runner.rs"]
mod runner;

use harness::{compare, flatten, load_cases, Mismatch};
use serde_json::json;

/// Replays every case of `dir` with each driver order (`None`: FIFO) and lists every case
/// whose trace differs: the case, the first differing index and both events.
fn replay_all(dir: &std::path::Path, orders: &[Option<u64>]) -> Result<usize, String> {
    let cases = load_cases(dir)?;
    if cases.is_empty() {
        return Err(format!("no cases in {}", dir.display()));
    }
    let mut failures = Vec::new();
    for case in &cases {
        for &seed in orders {
            let outcome = runner::run_case(&case.supervisor, &case.steps, seed)
                .and_then(|trace| compare(&case.expected, &trace).map_err(|m| m.to_string()));
            if let Err(why) = outcome {
                failures.push(format!(
                    "case {} ({}), driver seed {seed:?}: {why}",
                    case.name,
                    case.path.display()
                ));
                break;
            }
        }
    }
    if failures.is_empty() {
        Ok(cases.len())
    } else {
        Err(format!(
            "{} of {} cases differ:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        ))
    }
}

/// Every case of `OTP_CASES_DIR` (default: the copied recordings), replayed on a FIFO driver
/// (one BEAM scheduler's run queue, as recorded): the trace must equal the recording, in any
/// order only where OTP leaves the order undefined.
#[test]
fn every_recorded_case_replays_as_otp_recorded_it() {
    let n = replay_all(&harness::cases_dir(), &[None]).unwrap_or_else(|e| panic!("{e}"));
    println!("{n} cases replayed");
}

/// The copied recordings also replay identically under seeded random run orders: their
/// traces follow from the supervisors' own ordering, not from the driver's.
#[test]
fn recorded_cases_do_not_depend_on_the_run_order() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/otp/cases");
    replay_all(&dir, &[Some(1), Some(2), Some(3)]).unwrap_or_else(|e| panic!("{e}"));
}

/// Scenarios that `semantics.md` names but the recordings do not cover, with traces derived
/// by hand from it (`tests/otp/derived/`, marked as such in each file).
#[test]
fn derived_cases_replay() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/otp/derived");
    replay_all(&dir, &[None]).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn every_case_loads_with_a_well_formed_trace() {
    let dir = harness::cases_dir();
    let cases = load_cases(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        cases.len() >= 41,
        "{} cases in {}",
        cases.len(),
        dir.display()
    );
    for case in &cases {
        assert!(!case.expected.is_empty(), "{}: empty trace", case.name);
        // A trace always matches itself, groups in any order.
        compare(&case.expected, &flatten(&case.expected))
            .unwrap_or_else(|m| panic!("{}: {m}", case.name));
        let mut reversed_groups = Vec::new();
        for e in &case.expected {
            match e.get("any_order").and_then(|g| g.as_array()) {
                Some(g) => reversed_groups.extend(g.iter().rev().cloned()),
                None => reversed_groups.push(e.clone()),
            }
        }
        compare(&case.expected, &reversed_groups).unwrap_or_else(|m| panic!("{}: {m}", case.name));
    }
}

#[test]
fn the_comparator_reports_the_first_difference() {
    let a = json!({"ev":"exit","id":"a","inc":1,"kind":"worker","reason":"shutdown"});
    let b = json!({"ev":"exit","id":"b","inc":1,"kind":"worker","reason":"shutdown"});
    let c = json!({"ev":"exit","id":"root","inc":1,"kind":"supervisor","reason":"shutdown"});
    let expected = vec![json!({"any_order": [a, b]}), c.clone()];
    assert_eq!(
        compare(&expected, &[b.clone(), a.clone(), c.clone()]),
        Ok(())
    );
    // Order outside a group matters.
    let strict = vec![a.clone(), b.clone()];
    assert_eq!(
        compare(&strict, &[b.clone(), a.clone()]),
        Err(Mismatch {
            index: 0,
            expected: Some(a.clone()),
            actual: Some(b.clone())
        })
    );
    // A group must be matched exactly once per member.
    assert!(compare(&expected, &[a.clone(), a.clone(), c.clone()]).is_err());
    // Missing and extra events.
    assert_eq!(
        compare(&expected, &[a.clone(), b.clone()])
            .unwrap_err()
            .index,
        2
    );
    let extra = compare(&strict, &[a.clone(), b.clone(), c.clone()]).unwrap_err();
    assert_eq!((extra.index, extra.expected.clone()), (2, None));
    assert!(extra.to_string().contains("first difference at event 2"));
}

#[test]
fn a_malformed_case_is_refused_with_a_reason() {
    let dir = std::env::temp_dir().join(format!("airssys-otp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.json");
    std::fs::write(
        &file,
        r#"{"name":"bad","supervisor":{},"steps":[{"op":"stop"}],"expected":[{"ev":"step","n":0,"op":"start_root"},{"ev":"teleport"}]}"#,
    )
    .unwrap();
    let err = harness::load_case(&file).unwrap_err();
    assert!(err.contains("unknown event"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Prints the trace of every scenario in `OTP_CASES_DIR` (its `expected` may be empty): for
/// writing new cases. `OTP_CASES_DIR=dir cargo test --test otp_cases print -- --ignored
/// --nocapture`
#[test]
#[ignore = "a tool, not a test"]
fn print_traces() {
    let dir = harness::cases_dir();
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    for path in paths
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
    {
        let case: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let steps = case["steps"].as_array().cloned().unwrap_or_default();
        println!("== {}", path.display());
        match runner::run_case(&case["supervisor"], &steps, None) {
            Ok(trace) => {
                for e in trace {
                    println!("  {e}");
                }
            }
            Err(e) => println!("  error: {e}"),
        }
    }
}
