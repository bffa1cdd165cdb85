//! The OTP conformance corpus: every recorded case replayed on airssys-rt's supervisor, and
//! the trace comparator's own tests.
//!
//! Cases come from `OTP_CASES_DIR` (default: `tests/otp/cases`), so further cases in the same
//! format run without code changes: `OTP_CASES_DIR=/path/to/cases cargo test --test otp_cases`.

#[path = "otp/harness.rs"]
mod harness;
#[path = "otp/runner.rs"]
mod runner;

/// Every case, replayed with several driver seeds: the trace must equal the recording (any
/// order only where OTP leaves the order undefined). All failures are listed, each with the
/// case, the first differing index and both events.
#[test]
fn every_recorded_case_replays_as_otp_recorded_it() {
    let dir = harness::cases_dir();
    let cases = load_cases(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(!cases.is_empty(), "no cases in {}", dir.display());
    let mut failures = Vec::new();
    for case in &cases {
        for seed in [1, 2, 3] {
            let outcome = runner::run_case(&case.supervisor, &case.steps, seed)
                .and_then(|trace| compare(&case.expected, &trace).map_err(|m| m.to_string()));
            if let Err(why) = outcome {
                failures.push(format!(
                    "case {} ({}), seed {seed}: {why}",
                    case.name,
                    case.path.display()
                ));
                break;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from OTP:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

use harness::{compare, flatten, load_cases, Mismatch};
use serde_json::json;

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
