//! What the engine shows the outside: alerts in Alertmanager's shape, the latest
//! reading of every (rule, group), and the instances pending or firing now.

use std::collections::BTreeMap;

use super::{Engine, RuleReading};
use crate::alert::{self, Alert, Transition};
use crate::lifecycle::{State, TransitionKind};
use crate::time::format_rfc3339;

impl Engine {
    /// Renders a transition as an Alertmanager-shaped alert.
    pub fn render(&self, t: &Transition) -> Alert {
        let ri = t.rule as usize;
        let rule = &self.cfg.rules[ri];
        let grouping = &self.groupings[self.wiring.rule_grouping[ri]];
        let key = grouping.key(t.group);
        let mut labels: BTreeMap<String, String> = self.cfg.external_labels.clone();
        labels.extend(rule.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        for (name, value) in grouping.labels.iter().zip(&key.labels) {
            if !value.is_empty() {
                labels.insert(name.clone(), value.clone());
            }
        }
        labels.insert("alertname".into(), rule.name.clone());
        labels.insert("service".into(), key.service.clone());
        labels.insert("severity".into(), t.severity.as_str().into());
        if let Some(c) = rule.category {
            labels.insert("category".into(), c.as_str().into());
        }
        let value = t.value.map(alert::format_value).unwrap_or_default();
        let threshold = if t.threshold.is_nan() {
            String::new()
        } else {
            alert::format_value(t.threshold)
        };
        let window = rule.spec.window_text(&self.cfg.signals);
        let vars = [
            ("service", key.service.as_str()),
            ("value", value.as_str()),
            ("threshold", threshold.as_str()),
            ("severity", t.severity.as_str()),
            ("rule", rule.name.as_str()),
            ("signal", rule.signal_name(&self.cfg.signals)),
            ("window", window.as_str()),
            ("category", rule.category.map_or("", |c| c.as_str())),
        ];
        let mut kind_annotations = BTreeMap::new();
        self.rules[ri]
            .states
            .annotate(&rule.spec, t.group as usize, &mut kind_annotations);
        let mut all_vars: Vec<(&str, &str)> = vars.to_vec();
        all_vars.extend(
            kind_annotations
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let mut annotations = kind_annotations.clone();
        for (k, v) in &rule.annotations {
            annotations.insert(k.clone(), alert::render_template(v, &all_vars));
        }
        annotations.insert(
            "summary".into(),
            alert::render_template(&rule.summary, &all_vars),
        );
        if t.value.is_some() {
            annotations.insert("value".into(), value.clone());
        }
        if !threshold.is_empty() {
            annotations.insert("threshold".into(), threshold.clone());
        }
        annotations.insert("window".into(), window.clone());
        let fp = alert::fingerprint(&labels);
        Alert {
            status: t.kind.status(),
            transition: t.kind,
            labels,
            annotations,
            starts_at: format_rfc3339(t.active_since),
            ends_at: alert::ends_at(t.kind, t.at),
            generator_url: format!(
                "{}/rules/{}",
                self.cfg.generator_url.trim_end_matches('/'),
                rule.name
            ),
            fingerprint: format!("{fp:016x}"),
            episode: format!("{:016x}", alert::episode(fp, t.active_since)),
            evaluated_at: format_rfc3339(t.at),
        }
    }

    /// The latest value, state and risk of every (rule, group) evaluated so far.
    pub fn readings(&self) -> Vec<RuleReading> {
        let mut out = Vec::new();
        for (ri, (rule, rs)) in self.cfg.rules.iter().zip(&self.rules).enumerate() {
            let levels = rule.spec.levels();
            let grouping = &self.groupings[self.wiring.rule_grouping[ri]];
            for (g, v) in self.latest[ri].iter().enumerate() {
                if grouping.is_free(g as u32) {
                    continue;
                }
                let Some(states) = rs.instances.get(g * levels..(g + 1) * levels) else {
                    continue;
                };
                let states: Vec<State> = states.iter().map(|i| i.state).collect();
                let value = shortest_f64(*v);
                out.push(RuleReading {
                    rule: ri as u32,
                    group: g as u32,
                    value,
                    state: states
                        .iter()
                        .copied()
                        .max_by_key(|s| *s as u8)
                        .unwrap_or_default(),
                    risk: rule.spec.risk(value, &states),
                });
            }
        }
        out
    }

    /// The extra gauges (see [`crate::rules::Series`]) of `rule` for `group`.
    pub fn series(&self, rule: u32, group: u32) -> Vec<crate::rules::Series> {
        let mut out = Vec::new();
        let ri = rule as usize;
        self.rules[ri]
            .states
            .series(&self.cfg.rules[ri].spec, group as usize, &mut out);
        out
    }

    /// Label pairs identifying `group` of `rule`'s grouping (`service` first).
    pub fn rule_group_labels(&self, rule: u32, group: u32) -> Vec<(String, String)> {
        let grouping = &self.groupings[self.wiring.rule_grouping[rule as usize]];
        let key = grouping.key(group);
        let mut out = vec![("service".to_string(), key.service.clone())];
        out.extend(
            grouping
                .labels
                .iter()
                .cloned()
                .zip(key.labels.iter().cloned()),
        );
        out
    }

    /// Current pending and firing instances, as transitions describing their
    /// state, with the rule's latest value for the group.
    pub fn active(&self) -> Vec<Transition> {
        let mut out = Vec::new();
        for (ri, (rule, rs)) in self.cfg.rules.iter().zip(&self.rules).enumerate() {
            let levels = rule.spec.levels();
            for (i, inst) in rs.instances.iter().enumerate() {
                let kind = match inst.state {
                    State::Inactive => continue,
                    State::Pending => TransitionKind::Pending,
                    State::Firing => TransitionKind::Firing,
                };
                let level = rule.spec.level(i % levels);
                let latest = self.latest[ri].get(i / levels).map_or(f32::NAN, |v| *v);
                out.push(Transition {
                    rule: ri as u32,
                    group: (i / levels) as u32,
                    severity: level.severity,
                    threshold: level.threshold,
                    kind,
                    at: inst.fired_at.max(inst.active_since),
                    active_since: inst.active_since,
                    value: latest.is_finite().then(|| shortest_f64(latest)),
                });
            }
        }
        out
    }
}

/// The f64 that prints as `v` does: the latest values are kept as f32, and
/// `f64::from` would show 0.1 as 0.10000000149011612 on dashboards.
fn shortest_f64(v: f32) -> f64 {
    if v.is_finite() {
        v.to_string().parse().unwrap_or(f64::from(v))
    } else {
        f64::from(v)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn latest_values_read_without_float32_noise() {
        assert_eq!(super::shortest_f64(0.1), 0.1);
        assert_eq!(super::shortest_f64(1234.5), 1234.5);
        assert!(super::shortest_f64(f32::NAN).is_nan());
    }
}
