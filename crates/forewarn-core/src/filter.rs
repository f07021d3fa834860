//! Matching events against compiled filters, and reading numeric fields.

use crate::config::{Filter, ValueField};
use crate::event::Event;

impl ValueField {
    /// The field's value in `e`, if present.
    #[inline]
    pub fn of(self, e: &Event) -> Option<f64> {
        match self {
            ValueField::LatencyMs => e.latency_ms,
            ValueField::SlaMs => e.sla_ms,
            ValueField::Satisfaction => e.satisfaction,
            ValueField::Sentiment => e.sentiment,
            ValueField::SlaRatio => sla_ratio(e),
        }
    }
}

/// Latency over SLA. Not inlined on purpose: inlined, the compiler hoists the
/// division above the field match and runs it for every field on whatever bits
/// an absent `sla_ms` holds; a denormal there costs a microcode assist per event
/// (a third of the bench job's time in one build).
#[inline(never)]
fn sla_ratio(e: &Event) -> Option<f64> {
    match (e.latency_ms, e.sla_ms) {
        // A tiny SLA can overflow the ratio; an infinite value would poison sums
        // and sketches, so it counts as absent.
        (Some(l), Some(s)) if s > 0.0 => Some(l / s).filter(|r| r.is_finite()),
        _ => None,
    }
}

impl Filter {
    /// True when every condition holds for `e`. Allocation-free.
    #[inline]
    pub fn matches(&self, e: &Event) -> bool {
        if self.kinds != 0 && self.kinds & e.kind.bit() == 0 {
            return false;
        }
        if self.outcomes != 0 && e.outcome.is_none_or(|o| self.outcomes & o.bit() == 0) {
            return false;
        }
        if self.categories != 0 && e.category.is_none_or(|c| self.categories & c.bit() == 0) {
            return false;
        }
        if let Some(want) = self.complaint {
            if e.complaint.unwrap_or(false) != want {
                return false;
            }
        }
        if let Some(want) = self.sla_breached {
            if e.sla_breached() != Some(want) {
                return false;
            }
        }
        if !self.services.is_empty() && !self.services.iter().any(|s| *s == e.service) {
            return false;
        }
        if !self
            .labels
            .iter()
            .all(|(k, vals)| e.labels.get(k).is_some_and(|v| vals.iter().any(|x| x == v)))
        {
            return false;
        }
        if !self.has.iter().all(|f| f.of(e).is_some()) {
            return false;
        }
        self.above
            .iter()
            .all(|(f, lim)| f.of(e).is_some_and(|v| v > *lim))
            && self
                .below
                .iter()
                .all(|(f, lim)| f.of(e).is_some_and(|v| v < *lim))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::event::decode;

    fn filter(toml: &str) -> crate::config::Filter {
        let src = format!(
            "[[signals]]\nname='s'\naggregate='count'\nwindow='1m'\nfilter = {toml}\n[[rules]]\nname='r'\nkind='threshold'\nsignal='s'\ncritical=1\n"
        );
        Config::parse(&src, "t.toml").unwrap().signals[0]
            .filter
            .clone()
    }

    #[test]
    fn conditions_combine() {
        let f = filter(
            r#"{ kind = "request", outcome = ["error", "timeout"], labels = { region = "eu" }, above = { latency_ms = 100 } }"#,
        );
        let ok = br#"{"ts":0,"service":"a","kind":"request","outcome":"timeout","latency_ms":150,"labels":{"region":"eu"}}"#;
        assert!(f.matches(&decode(ok).unwrap()));
        for bad in [
            br#"{"ts":0,"service":"a","kind":"ticket","outcome":"timeout","latency_ms":150,"labels":{"region":"eu"}}"#.as_slice(),
            br#"{"ts":0,"service":"a","kind":"request","outcome":"ok","latency_ms":150,"labels":{"region":"eu"}}"#,
            br#"{"ts":0,"service":"a","kind":"request","latency_ms":150,"labels":{"region":"eu"}}"#,
            br#"{"ts":0,"service":"a","kind":"request","outcome":"error","latency_ms":50,"labels":{"region":"eu"}}"#,
            br#"{"ts":0,"service":"a","kind":"request","outcome":"error","latency_ms":150,"labels":{"region":"us"}}"#,
            br#"{"ts":0,"service":"a","kind":"request","outcome":"error","latency_ms":150}"#,
        ] {
            assert!(!f.matches(&decode(bad).unwrap()), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn sla_and_complaint() {
        let f = filter(r#"{ sla_breached = true, service = ["checkout"] }"#);
        assert!(f.matches(
            &decode(br#"{"ts":0,"service":"checkout","latency_ms":900,"sla_ms":800}"#).unwrap()
        ));
        assert!(!f.matches(
            &decode(br#"{"ts":0,"service":"checkout","latency_ms":700,"sla_ms":800}"#).unwrap()
        ));
        assert!(!f.matches(
            &decode(br#"{"ts":0,"service":"cart","latency_ms":900,"sla_ms":800}"#).unwrap()
        ));
        let c = filter("{ complaint = false }");
        assert!(c.matches(&decode(br#"{"ts":0,"service":"x"}"#).unwrap()));
        assert!(!c.matches(&decode(br#"{"ts":0,"service":"x","complaint":true}"#).unwrap()));
    }
}
