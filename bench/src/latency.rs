//! Latency percentiles of one measurement.

use std::time::Duration;

/// The latencies of every operation of a measurement, sorted.
pub struct Latencies(Vec<Duration>);

impl Latencies {
    pub fn new(mut samples: Vec<Duration>) -> Latencies {
        samples.sort_unstable();
        Latencies(samples)
    }

    /// The latencies of several measurements taken as one.
    pub fn pooled(measurements: impl IntoIterator<Item = Latencies>) -> Latencies {
        Latencies::new(measurements.into_iter().flat_map(|m| m.0).collect())
    }

    /// How many operations were measured.
    pub fn count(&self) -> usize {
        self.0.len()
    }

    /// The latency that `fraction` (0..=1) of the operations did not exceed (nearest rank).
    pub fn percentile(&self, fraction: f64) -> Duration {
        let rank = (fraction * self.0.len() as f64).ceil() as usize;
        self.0
            .get(rank.clamp(1, self.0.len().max(1)) - 1)
            .copied()
            .unwrap_or_default()
    }
}

/// A latency in milliseconds, for tables.
pub fn millis(latency: Duration) -> String {
    format!("{:.2} ms", latency.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let latencies = Latencies::new((1..=100).rev().map(Duration::from_millis).collect());
        assert_eq!(latencies.percentile(0.5), Duration::from_millis(50));
        assert_eq!(latencies.percentile(0.99), Duration::from_millis(99));
        assert_eq!(latencies.percentile(1.0), Duration::from_millis(100));
        assert_eq!(Latencies::new(vec![]).percentile(0.5), Duration::ZERO);
    }

    #[test]
    fn pooled_latencies_rank_over_every_measurement() {
        let slow = Latencies::new((51..=100).map(Duration::from_millis).collect());
        let fast = Latencies::new((1..=50).rev().map(Duration::from_millis).collect());
        let pooled = Latencies::pooled([slow, fast]);
        assert_eq!(pooled.count(), 100);
        assert_eq!(pooled.percentile(0.5), Duration::from_millis(50));
        assert_eq!(pooled.percentile(0.99), Duration::from_millis(99));
    }
}
