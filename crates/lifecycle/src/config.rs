//! Lifecycler configuration with dskit's names and defaults (spec/ring.md §2.1).

use std::path::PathBuf;
use std::time::Duration;

/// How an instance registers, heartbeats and leaves. `Default` holds dskit's defaults;
/// each field names its dskit flag (`-ingester.` prefix) and YAML key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LifecyclerConfig {
    /// `lifecycler.ID` / `id`: the instance id, the key of its ring entry (dskit: hostname).
    pub id: String,
    /// `lifecycler.addr` + `lifecycler.port`: the `host:port` clients dial.
    pub addr: String,
    /// `availability-zone` / `availability_zone`: "" when zones are not used.
    pub zone: String,
    /// `num-tokens` / `num_tokens`, default 128 (Cortex deployments use 512).
    pub num_tokens: usize,
    /// `heartbeat-period` / `heartbeat_period`, default 5s. Must be > 0.
    pub heartbeat_period: Duration,
    /// `heartbeat-timeout` / `heartbeat_timeout`, default 1m: after this long without a
    /// heartbeat an instance is unhealthy (used by readiness and auto-forget).
    pub heartbeat_timeout: Duration,
    /// `join-after` / `join_after`, default 0s: wait before claiming tokens.
    pub join_after: Duration,
    /// `observe-period` / `observe_period`, default 0s: when > 0, claim tokens in JOINING
    /// and re-check them after this period until no other instance took any, then ACTIVE.
    pub observe_period: Duration,
    /// `min-ready-duration` / `min_ready_duration`, default 15s: readiness only succeeds
    /// this long after the checks first passed.
    pub min_ready_duration: Duration,
    /// `final-sleep` / `final_sleep`, default 0s: sleep at the end of shutdown so the last
    /// metrics get scraped.
    pub final_sleep: Duration,
    /// `tokens-file-path` / `tokens_file_path`, default none: persist tokens across
    /// restarts.
    pub tokens_file_path: Option<PathBuf>,
    /// `unregister-on-shutdown` / `unregister_on_shutdown`, default true: remove the entry
    /// on a clean shutdown.
    pub unregister_on_shutdown: bool,
    /// `readiness-check-ring-health` / `readiness_check_ring_health`, default true:
    /// readiness needs every ring member ACTIVE and healthy (else only this instance).
    pub readiness_check_ring_health: bool,
    /// ringkit's auto-forget (mimir#2869): an instance unhealthy for longer than this many
    /// heartbeat timeouts is removed from the ring by any live member. 0 disables it.
    /// Default 10 (10 minutes with the default timeout).
    pub auto_forget_unhealthy_periods: u32,
}

impl Default for LifecyclerConfig {
    fn default() -> Self {
        LifecyclerConfig {
            id: String::new(),
            addr: String::new(),
            zone: String::new(),
            num_tokens: 128,
            heartbeat_period: Duration::from_secs(5),
            heartbeat_timeout: Duration::from_secs(60),
            join_after: Duration::ZERO,
            observe_period: Duration::ZERO,
            min_ready_duration: Duration::from_secs(15),
            final_sleep: Duration::ZERO,
            tokens_file_path: None,
            unregister_on_shutdown: true,
            readiness_check_ring_health: true,
            auto_forget_unhealthy_periods: 10,
        }
    }
}

/// Why a configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required field is empty.
    #[error("lifecycler: {0} must be set")]
    Missing(&'static str),
    /// A value is out of range.
    #[error("lifecycler: {0}")]
    Invalid(&'static str),
}

impl LifecyclerConfig {
    /// Checks what dskit checks at start-up, plus the fields ringkit needs.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id.is_empty() {
            return Err(ConfigError::Missing("id"));
        }
        if self.addr.is_empty() {
            return Err(ConfigError::Missing("addr"));
        }
        if self.num_tokens == 0 {
            return Err(ConfigError::Invalid("num_tokens must be greater than 0"));
        }
        if self.heartbeat_period.is_zero() {
            return Err(ConfigError::Invalid(
                "heartbeat_period must be greater than 0",
            ));
        }
        if self.heartbeat_timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "heartbeat_timeout must be greater than 0",
            ));
        }
        Ok(())
    }

    /// How long an instance may be unhealthy before auto-forget removes it, if enabled.
    pub fn auto_forget_after(&self) -> Option<Duration> {
        (self.auto_forget_unhealthy_periods > 0)
            .then(|| self.heartbeat_timeout * self.auto_forget_unhealthy_periods)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_dskits() {
        let c = LifecyclerConfig::default();
        assert_eq!(c.num_tokens, 128);
        assert_eq!(c.heartbeat_period, Duration::from_secs(5));
        assert_eq!(c.heartbeat_timeout, Duration::from_secs(60));
        assert_eq!(c.min_ready_duration, Duration::from_secs(15));
        assert!(c.unregister_on_shutdown);
        assert!(c.readiness_check_ring_health);
    }

    #[test]
    fn validate_names_the_problem() {
        let mut c = LifecyclerConfig::default();
        assert_eq!(c.validate(), Err(ConfigError::Missing("id")));
        c.id = "i".into();
        c.addr = "127.0.0.1:9095".into();
        assert_eq!(c.validate(), Ok(()));
        c.heartbeat_period = Duration::ZERO;
        assert!(c.validate().is_err());
    }

    #[test]
    fn auto_forget_is_a_multiple_of_the_heartbeat_timeout() {
        let mut c = LifecyclerConfig::default();
        assert_eq!(c.auto_forget_after(), Some(Duration::from_secs(600)));
        c.auto_forget_unhealthy_periods = 0;
        assert_eq!(c.auto_forget_after(), None);
    }
}
