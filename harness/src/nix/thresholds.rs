//! How much worse a metric may get before the gate calls it a regression, by kind of metric.

use super::baseline::CLOSURE_SIZE;

/// How much worse a metric may get before it counts as a regression. Every metric here is
/// better when lower.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// systemd-analyze's exposure (0-10): an absolute increase.
    pub exposure_increase: f64,
    /// Durations (`*_ms`): a relative increase, and an absolute one in milliseconds that must
    /// also be exceeded, so that a 20 ms step taking 40 ms is not flagged.
    pub duration_ratio: f64,
    pub duration_min_ms: f64,
    /// Memory (`memory*`, `*rss_bytes`): a relative increase.
    pub memory_ratio: f64,
    /// The package's closure size: a relative increase.
    pub closure_ratio: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            exposure_increase: 0.1,
            duration_ratio: 0.5,
            duration_min_ms: 500.0,
            memory_ratio: 0.2,
            closure_ratio: 0.1,
        }
    }
}

/// What a metric measures, from its name; the kind decides its threshold and its unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Exposure,
    Duration,
    Memory,
    ClosureSize,
    /// A metric this gate has no threshold for: changes are listed, never a regression.
    Other,
}

impl MetricKind {
    pub fn of(key: &str) -> Self {
        let name = key.rsplit('/').next().unwrap_or(key);
        if key == CLOSURE_SIZE {
            Self::ClosureSize
        } else if name.starts_with("exposure") {
            Self::Exposure
        } else if name.ends_with("_ms") {
            Self::Duration
        } else if name.starts_with("memory") || name.ends_with("rss_bytes") {
            Self::Memory
        } else {
            Self::Other
        }
    }
}

impl Thresholds {
    /// Whether going from `was` to `now` is worse than this kind of metric may get.
    pub fn regressed(&self, kind: MetricKind, was: f64, now: f64) -> bool {
        // A tolerance for values that went through decimal text (0.2 + 0.1 is not 0.3).
        const EPSILON: f64 = 1e-9;
        let increase = now - was;
        match kind {
            MetricKind::Exposure => increase > self.exposure_increase + EPSILON,
            MetricKind::Duration => {
                increase > was * self.duration_ratio + EPSILON
                    && increase >= self.duration_min_ms - EPSILON
            }
            MetricKind::Memory => increase > was * self.memory_ratio + EPSILON,
            MetricKind::ClosureSize => increase > was * self.closure_ratio + EPSILON,
            MetricKind::Other => false,
        }
    }

    /// The rule for a kind, as the diff prints it.
    pub fn describe(&self, kind: MetricKind) -> String {
        match kind {
            MetricKind::Exposure => format!("+{} at most", self.exposure_increase),
            MetricKind::Duration => format!(
                "+{:.0}% and +{:.0} ms at most",
                self.duration_ratio * 100.0,
                self.duration_min_ms
            ),
            MetricKind::Memory => format!("+{:.0}% at most", self.memory_ratio * 100.0),
            MetricKind::ClosureSize => format!("+{:.0}% at most", self.closure_ratio * 100.0),
            MetricKind::Other => "no threshold".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_metric_names() {
        assert_eq!(MetricKind::of("hardening/exposure"), MetricKind::Exposure);
        assert_eq!(
            MetricKind::of("migrations/restart_ms"),
            MetricKind::Duration
        );
        assert_eq!(
            MetricKind::of("deployment/memory_rss_bytes"),
            MetricKind::Memory
        );
        assert_eq!(MetricKind::of(CLOSURE_SIZE), MetricKind::ClosureSize);
        assert_eq!(MetricKind::of("x/polls"), MetricKind::Other);
    }

    #[test]
    fn thresholds_at_their_edges() {
        let t = Thresholds::default();
        // Exposure: +0.1 absolute is allowed, more is not.
        assert!(!t.regressed(MetricKind::Exposure, 0.2, 0.3));
        assert!(t.regressed(MetricKind::Exposure, 0.2, 0.4));
        // Durations: both +50% and +500 ms must be exceeded.
        assert!(!t.regressed(MetricKind::Duration, 100.0, 400.0)); // +300%, +300 ms
        assert!(!t.regressed(MetricKind::Duration, 2000.0, 2900.0)); // +45%, +900 ms
        assert!(t.regressed(MetricKind::Duration, 1400.0, 2800.0)); // doubled
        assert!(t.regressed(MetricKind::Duration, 100.0, 600.0)); // +500%, +500 ms
                                                                  // Memory +20%, closure +10%.
        assert!(!t.regressed(MetricKind::Memory, 100.0, 120.0));
        assert!(t.regressed(MetricKind::Memory, 100.0, 121.0));
        assert!(!t.regressed(MetricKind::ClosureSize, 1000.0, 1100.0));
        assert!(t.regressed(MetricKind::ClosureSize, 1000.0, 1101.0));
        assert!(!t.regressed(MetricKind::Other, 1.0, 1000.0));
    }
}
