//! What the HTTP endpoint reads of the running pipeline.

/// One rule's latest evaluation for one group, for the metrics endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupReading {
    /// Rule name.
    pub rule: String,
    /// The rule's signal.
    pub signal: String,
    /// `service` first, then the signal's `group_by` labels.
    pub labels: Vec<(String, String)>,
    /// Latest value (NaN: none).
    pub value: f64,
    /// 0–1 risk score.
    pub risk: f64,
    /// The rule kind's extra gauges (SLO burn rates, budget remaining).
    pub series: Vec<forewarn_core::rules::Series>,
}
