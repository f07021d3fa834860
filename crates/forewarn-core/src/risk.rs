//! A 0–1 risk score per (rule, group), for dashboards: how close a rule is to
//! paging. Each rule kind contributes its own ([`crate::rules::RuleKind::risk`]):
//! firing critical is 1, pending critical 0.7, firing warning 0.5, pending
//! warning 0.3; a threshold below any level adds a quarter of its proximity to
//! the lowest level (0 at a distance of one threshold's magnitude or more, 0.25
//! right at it). A service's risk is the largest over its rules.

use crate::lifecycle::State;
use crate::rules::RuleSpec;

/// Risk of one rule for one group, from its latest value (NaN: none) and the
/// states of its levels (in the rule's level order).
pub fn rule_risk(spec: &RuleSpec, value: f64, states: &[State]) -> f64 {
    spec.risk(value, states)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn rule(cfg: &str) -> RuleSpec {
        let src = format!(
            "[[signals]]\nname = \"s\"\naggregate = \"rate\"\nwindow = \"1m\"\n\n[[rules]]\nname = \"r\"\nkind = \"threshold\"\nsignal = \"s\"\n{cfg}\n"
        );
        Config::parse(&src, "t").unwrap().rules[0].spec.clone()
    }

    #[test]
    fn risk_rises_towards_the_threshold_and_with_the_alert_state() {
        let above = rule("warning = { value = 0.05 }\ncritical = { value = 0.2 }");
        let inactive = [State::Inactive, State::Inactive];
        assert_eq!(rule_risk(&above, 0.0, &inactive), 0.0);
        assert!((rule_risk(&above, 0.025, &inactive) - 0.125).abs() < 1e-9);
        assert_eq!(rule_risk(&above, 0.05, &inactive), 0.25);
        assert_eq!(rule_risk(&above, f64::NAN, &inactive), 0.0);
        assert_eq!(
            rule_risk(&above, 0.1, &[State::Pending, State::Inactive]),
            0.3
        );
        assert_eq!(
            rule_risk(&above, 0.1, &[State::Firing, State::Inactive]),
            0.5
        );
        assert_eq!(
            rule_risk(&above, 0.3, &[State::Firing, State::Pending]),
            0.7
        );
        assert_eq!(rule_risk(&above, 0.3, &[State::Firing, State::Firing]), 1.0);
    }

    #[test]
    fn below_rules_with_negative_thresholds_score_sensibly() {
        let below = rule("op = \"below\"\nwarning = { value = -0.2 }");
        let inactive = [State::Inactive];
        assert_eq!(
            rule_risk(&below, 0.4, &inactive),
            0.0,
            "far on the good side"
        );
        assert!((rule_risk(&below, -0.1, &inactive) - 0.125).abs() < 1e-9);
        assert_eq!(rule_risk(&below, -0.3, &inactive), 0.25);
    }
}
