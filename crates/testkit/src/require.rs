//! "Is this server installed?" for tests that run a real one (Prometheus, promtool,
//! Alertmanager, a browser...). A developer without it gets a loud skip; CI, where
//! scripts/test.sh installs it and sets the matching `RINGKIT_REQUIRE_*` variable, gets a
//! failure instead, so a broken install can never pass as a skipped test.

use std::path::PathBuf;

/// Whether `var` demands the dependency: set to anything but `""` or `"0"`.
/// (scripts/test.sh sets `1`; `RINGKIT_REQUIRE_BROWSER=0` lets that test skip.)
pub fn required(var: &str) -> bool {
    std::env::var_os(var).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Skips or fails a test whose dependency is missing: panics with `why` when `var`
/// requires it, otherwise prints a loud `SKIPPED` line and returns (the caller returns).
pub fn missing(var: &str, why: &str) {
    assert!(!required(var), "{var} is set but {why}");
    eprintln!("!!! SKIPPED: {why}");
}

/// The binary at `path` (or at the path in the variable `override_var`, when that is set),
/// if it exists. When it does not: fails if `var` requires it, else skips loudly and returns
/// `None`; `install` says how to get it (e.g. `apt-get install prometheus`).
pub fn binary(path: &str, override_var: Option<&str>, var: &str, install: &str) -> Option<PathBuf> {
    let p = override_var
        .and_then(std::env::var_os)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(path));
    if p.exists() {
        return Some(p);
    }
    missing(var, &format!("{} is missing ({install})", p.display()));
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each test uses its own variable name: tests run in parallel threads of one process.
    #[test]
    fn a_present_binary_is_returned() {
        let p = binary("/bin/sh", None, "RINGKIT_TESTKIT_REQ_A", "none").unwrap();
        assert_eq!(p, PathBuf::from("/bin/sh"));
    }

    #[test]
    #[should_panic(expected = "is set but /nonexistent/x is missing")]
    fn a_missing_binary_fails_when_the_variable_requires_it() {
        // PATH is set and not "0" in every test run, so it stands in for RINGKIT_REQUIRE_*.
        binary("/nonexistent/x", None, "PATH", "none");
    }

    #[test]
    fn a_missing_binary_skips_when_nothing_requires_it() {
        assert!(!required("RINGKIT_TESTKIT_REQ_UNSET"));
        assert_eq!(
            binary("/nonexistent/x", None, "RINGKIT_TESTKIT_REQ_UNSET", "none"),
            None
        );
    }
}
