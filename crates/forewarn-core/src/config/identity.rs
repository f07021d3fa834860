//! What makes a signal or a rule "the same" in two configs: its name and its
//! definition, never its position in the file or its free text. A config
//! reload, and a checkpoint restored under an edited config, keep the state of
//! exactly the signals and rules whose identity is unchanged.

use super::{Config, RuleDef, SignalDef};

impl SignalDef {
    /// Name and definition; the description is free text and left out.
    pub fn identity(&self) -> String {
        let mut def = self.clone();
        def.description = None;
        format!("{def:?}")
    }
}

impl RuleDef {
    /// Name, kind and parameters, lifecycle, schedule, and the labels that
    /// make its alerts' fingerprints, with the watched signal by its identity
    /// rather than its index. Summary and annotations are rendered afresh for
    /// every alert, so editing them keeps the rule's state.
    pub fn identity(&self, signals: &[SignalDef]) -> String {
        let mut spec = self.spec.clone();
        let input = spec.signal_mut().map(|s| {
            let def = signals[*s].identity();
            *s = usize::MAX;
            def
        });
        format!(
            "{}|{spec:?}|{:?}|{}|{:?}|{:?}|{input:?}",
            self.name, self.lifecycle, self.period, self.category, self.labels
        )
    }
}

impl Config {
    /// Every signal's identity, in config order.
    pub fn signal_identities(&self) -> Vec<String> {
        self.signals.iter().map(SignalDef::identity).collect()
    }

    /// Every rule's identity, in config order. The external labels are part of
    /// every alert's fingerprint, so they are part of every rule's identity.
    pub fn rule_identities(&self) -> Vec<String> {
        let external = format!("{:?}", self.external_labels);
        self.rules
            .iter()
            .map(|r| format!("{}|{external}", r.identity(&self.signals)))
            .collect()
    }
}
