//! Tenant ids: where they come from and which are allowed.
//!
//! HTTP clients name the tenant in `X-Scope-OrgID`; between distributor and ingester it
//! travels in the gRPC metadata key `x-scope-orgid` (Cortex/Mimir's convention). The rules
//! are Mimir's for a single tenant: 1 to 150 bytes of `[a-zA-Z0-9!-_.*'()]`, and not `.` or
//! `..` (the id becomes a directory name in Mimir). A `|` (a multi-tenant read in Mimir) is
//! refused by the charset.

/// HTTP header carrying the tenant.
pub const HTTP_HEADER: &str = "X-Scope-OrgID";
/// gRPC metadata key carrying the tenant (lower case, as gRPC requires).
pub const GRPC_METADATA: &str = "x-scope-orgid";
/// Longest accepted tenant id (Mimir's `MaxTenantIDLength`).
pub const MAX_LENGTH: usize = 150;

/// Why a tenant id is refused: bad input (HTTP 400 / gRPC `INVALID_ARGUMENT`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TenantError {
    /// No tenant was given and no default is configured.
    #[error("no org id: set the {HTTP_HEADER} header")]
    Missing,
    /// Longer than [`MAX_LENGTH`].
    #[error("tenant ID is too long: max {MAX_LENGTH} characters")]
    TooLong,
    /// A character outside the allowed set.
    #[error("tenant ID {0:?} contains unsupported character {1:?}")]
    BadCharacter(String, char),
    /// `.` or `..`.
    #[error("tenant ID is '.' or '..'")]
    Dots,
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!-_.*'()".contains(c)
}

/// Checks a tenant id against the rules of the module doc.
pub fn validate(id: &str) -> Result<(), TenantError> {
    if id.is_empty() {
        return Err(TenantError::Missing);
    }
    if id.len() > MAX_LENGTH {
        return Err(TenantError::TooLong);
    }
    if let Some(c) = id.chars().find(|&c| !allowed(c)) {
        return Err(TenantError::BadCharacter(id.chars().take(40).collect(), c));
    }
    if id == "." || id == ".." {
        return Err(TenantError::Dots);
    }
    Ok(())
}

/// The tenant of a request: the header value when present (and valid), else `default` when
/// it is not empty. An empty default makes the header mandatory.
pub fn resolve(header: Option<&str>, default: &str) -> Result<String, TenantError> {
    let id = match header.map(str::trim) {
        Some(h) if !h.is_empty() => h,
        _ => default,
    };
    validate(id)?;
    Ok(id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_wins_over_the_default() {
        assert_eq!(resolve(Some("team-a"), "anonymous").unwrap(), "team-a");
        assert_eq!(resolve(None, "anonymous").unwrap(), "anonymous");
        assert_eq!(resolve(Some("  "), "anonymous").unwrap(), "anonymous");
    }

    #[test]
    fn an_empty_default_makes_the_header_mandatory() {
        assert_eq!(resolve(None, ""), Err(TenantError::Missing));
    }

    #[test]
    fn ids_follow_mimirs_rules() {
        assert!(validate("a.b_c-d!*'()9").is_ok());
        assert_eq!(validate(".."), Err(TenantError::Dots));
        assert_eq!(validate(&"x".repeat(151)), Err(TenantError::TooLong));
        assert!(matches!(
            validate("a|b"),
            Err(TenantError::BadCharacter(_, '|'))
        ));
        assert!(matches!(
            validate("a/b"),
            Err(TenantError::BadCharacter(_, '/'))
        ));
    }
}
