//! Label pairs and the label matchers a query selects series with (PromQL's `=`, `!=`, `=~`,
//! `!~`), with Prometheus' semantics: regexes are anchored at both ends, and a matcher that
//! matches the empty string also selects series that lack the label.

use std::fmt;

/// One label of a series. Series labels are kept sorted by name, names unique.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    /// Label name, e.g. `__name__`.
    pub name: String,
    /// Label value; never empty in a stored series (an empty value means "no such label").
    pub value: String,
}

impl Label {
    /// A label from anything string-like.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// Builds a label set from `(name, value)` pairs, sorted by name (handy for tests and callers
/// that build series by hand).
pub fn labels_from_pairs<N: Into<String>, V: Into<String>>(
    pairs: impl IntoIterator<Item = (N, V)>,
) -> Vec<Label> {
    let mut out: Vec<Label> = pairs.into_iter().map(|(n, v)| Label::new(n, v)).collect();
    out.sort();
    out
}

/// How a [`Matcher`] compares a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchType {
    /// `name="value"`.
    Equal,
    /// `name!="value"`.
    NotEqual,
    /// `name=~"regex"` (anchored).
    Regex,
    /// `name!~"regex"` (anchored).
    NotRegex,
}

/// A label matcher as in a PromQL selector or a remote-read query.
#[derive(Clone)]
pub struct Matcher {
    kind: MatchType,
    name: String,
    value: String,
    re: Option<regex::Regex>,
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.kind {
            MatchType::Equal => "=",
            MatchType::NotEqual => "!=",
            MatchType::Regex => "=~",
            MatchType::NotRegex => "!~",
        };
        write!(f, "{}{}{:?}", self.name, op, self.value)
    }
}

/// A regex matcher whose pattern does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad regex {pattern:?} for label {name}: {reason}")]
pub struct MatcherError {
    /// The label name.
    pub name: String,
    /// The pattern as given.
    pub pattern: String,
    /// What the regex compiler said.
    pub reason: String,
}

impl Matcher {
    /// A matcher; regex patterns are compiled here (anchored like Prometheus' `^(?:re)$`).
    pub fn new(
        kind: MatchType,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, MatcherError> {
        let name = name.into();
        let value = value.into();
        let re = match kind {
            MatchType::Regex | MatchType::NotRegex => Some(
                regex::Regex::new(&format!("^(?s:{value})$")).map_err(|e| MatcherError {
                    name: name.clone(),
                    pattern: value.clone(),
                    reason: e.to_string(),
                })?,
            ),
            MatchType::Equal | MatchType::NotEqual => None,
        };
        Ok(Self {
            kind,
            name,
            value,
            re,
        })
    }

    /// `name="value"`, which cannot fail.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            kind: MatchType::Equal,
            name: name.into(),
            value: value.into(),
            re: None,
        }
    }

    /// The label name this matcher looks at.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The comparison.
    pub fn kind(&self) -> MatchType {
        self.kind
    }

    /// The value or pattern as given.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether a label value (empty for an absent label) satisfies the matcher.
    pub fn matches(&self, v: &str) -> bool {
        match (self.kind, &self.re) {
            (MatchType::Equal, _) => v == self.value,
            (MatchType::NotEqual, _) => v != self.value,
            (MatchType::Regex, Some(re)) => re.is_match(v),
            (MatchType::NotRegex, Some(re)) => !re.is_match(v),
            // Regex kinds always carry a compiled regex (see the constructors).
            (MatchType::Regex | MatchType::NotRegex, None) => false,
        }
    }

    /// Whether the matcher selects every series in a label set.
    pub fn matches_labels(&self, labels: &[Label]) -> bool {
        let v = labels
            .iter()
            .find(|l| l.name == self.name)
            .map_or("", |l| l.value.as_str());
        self.matches(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes_are_anchored_and_empty_matches_absent_labels() {
        let m = Matcher::new(MatchType::Regex, "job", "ap.").unwrap();
        assert!(m.matches("api"));
        assert!(!m.matches("xapi"));
        assert!(!m.matches("apix"));
        let alt = Matcher::new(MatchType::Regex, "code", "2..|5..").unwrap();
        assert!(alt.matches("500") && !alt.matches("2000"));
        let ls = labels_from_pairs([("job", "api")]);
        assert!(Matcher::equal("env", "").matches_labels(&ls));
        assert!(!Matcher::equal("job", "").matches_labels(&ls));
        assert!(
            Matcher::new(MatchType::NotEqual, "env", "x")
                .unwrap()
                .matches_labels(&ls)
        );
        assert!(Matcher::new(MatchType::Regex, "job", "(").is_err());
    }
}
