//! librdkafka client settings: forewarn's own (the ones its delivery guarantee
//! rests on) and the user's passthrough properties, and librdkafka's log lines
//! forwarded to `tracing`.

use forewarn_core::config::kafka::KafkaConfig;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};

use crate::throttle::Throttle;

/// The consumer's settings: offsets are stored and committed only by forewarn.
pub fn consumer_config(k: &KafkaConfig) -> ClientConfig {
    let mut c = base(k);
    c.set("group.id", &k.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set_default("auto.offset.reset", "earliest")
        // Consumer lag per partition comes from librdkafka's statistics.
        .set_default("statistics.interval.ms", "5000");
    c
}

/// The producer's settings: idempotent (no duplicates or reordering from
/// librdkafka's own retries), acks from all in-sync replicas, each attempt
/// bounded so forewarn's retry and give-up logic gets its turn.
pub fn producer_config(k: &KafkaConfig) -> ClientConfig {
    let mut c = base(k);
    for key in CONSUMER_ONLY {
        c.remove(key);
    }
    c.set("enable.idempotence", "true")
        .set_default("message.timeout.ms", "30000")
        .set_default("linger.ms", "0");
    c
}

trait SetDefault {
    fn set_default(&mut self, key: &str, value: &str) -> &mut Self;
}

impl SetDefault for ClientConfig {
    /// Sets `key` unless the user's properties already did.
    fn set_default(&mut self, key: &str, value: &str) -> &mut Self {
        if self.get(key).is_none() {
            self.set(key, value);
        }
        self
    }
}

/// Properties only a consumer takes: not given to producers, which would log
/// a warning for each.
const CONSUMER_ONLY: &[&str] = &["group.instance.id"];

fn base(k: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (key, value) in &k.properties {
        c.set(key, value);
    }
    c.set("bootstrap.servers", &k.brokers);
    // librdkafka's `debug` contexts log at debug level: let them through when asked.
    c.set_log_level(if k.properties.contains_key("debug") {
        RDKafkaLogLevel::Debug
    } else {
        RDKafkaLogLevel::Info
    });
    c
}

/// Forwards one librdkafka log line to `tracing` at the matching level; warnings
/// and errors are throttled per client (a down broker repeats them per
/// reconnect), each passing line counting those `held_back` before it.
pub fn log_to_tracing(client: &str, level: RDKafkaLogLevel, fac: &str, message: &str) {
    use RDKafkaLogLevel as L;
    static PRODUCER: Throttle = Throttle::new();
    static CONSUMER: Throttle = Throttle::new();
    let throttled = || {
        if client == "producer" {
            PRODUCER.admit()
        } else {
            CONSUMER.admit()
        }
    };
    match level {
        L::Emerg | L::Alert | L::Critical | L::Error => {
            if let Some(held_back) = throttled() {
                tracing::error!(target: "librdkafka", client, fac, held_back, "{message}")
            }
        }
        L::Warning => {
            if let Some(held_back) = throttled() {
                tracing::warn!(target: "librdkafka", client, fac, held_back, "{message}")
            }
        }
        L::Notice | L::Info => tracing::info!(target: "librdkafka", client, fac, "{message}"),
        L::Debug => tracing::debug!(target: "librdkafka", client, fac, "{message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forewarn_settings_win_and_user_defaults_are_kept() {
        let mut k = KafkaConfig::default();
        k.properties
            .insert("message.timeout.ms".into(), "5000".into());
        k.properties
            .insert("security.protocol".into(), "sasl_ssl".into());
        let p = producer_config(&k);
        assert_eq!(p.get("message.timeout.ms"), Some("5000"));
        assert_eq!(p.get("enable.idempotence"), Some("true"));
        assert_eq!(p.get("security.protocol"), Some("sasl_ssl"));
        let c = consumer_config(&k);
        assert_eq!(c.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert_eq!(c.get("group.id"), Some("forewarn"));
        assert_eq!(c.get("bootstrap.servers"), Some("localhost:9092"));
    }

    #[test]
    fn static_membership_is_the_consumers_alone() {
        let mut k = KafkaConfig::default();
        k.properties
            .insert("group.instance.id".into(), "forewarn-0".into());
        assert_eq!(
            consumer_config(&k).get("group.instance.id"),
            Some("forewarn-0")
        );
        assert_eq!(producer_config(&k).get("group.instance.id"), None);
    }
}
