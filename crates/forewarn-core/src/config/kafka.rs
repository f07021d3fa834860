//! The `[kafka]` section: where events come from and where alerts and dead letters
//! go, plus any librdkafka property (security.protocol, sasl.*, ssl.*) passed
//! through. Secrets never appear in `Debug` output or `forewarn check`.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use toml::Spanned;

/// Properties forewarn sets itself, because its delivery guarantee depends on them.
pub const MANAGED_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "set `brokers` instead"),
    ("group.id", "set `group_id` instead"),
    (
        "enable.auto.offset.store",
        "forewarn stores an offset only once the event's effects are delivered",
    ),
    (
        "enable.auto.commit",
        "forewarn decides when offsets are committed",
    ),
    (
        "enable.idempotence",
        "the alert producer is always idempotent",
    ),
];

/// Environment variables with this prefix override the `[kafka]` section:
/// `FOREWARN_KAFKA_BROKERS`, `_GROUP_ID`, `_TOPICS` (comma-separated),
/// `_ALERTS_TOPIC`, `_DEAD_LETTER_TOPIC`, `_CHECKPOINT_TOPIC`; any other name sets a librdkafka
/// property: `FOREWARN_KAFKA_SASL_PASSWORD=…` sets `sasl.password` (underscores
/// become dots).
pub const ENV_PREFIX: &str = "FOREWARN_KAFKA_";

/// `[kafka]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKafka {
    /// Bootstrap brokers, comma-separated `host:port`.
    pub brokers: Option<Spanned<String>>,
    /// Consumer group.
    pub group_id: Option<Spanned<String>>,
    /// Topics of service events.
    pub topics: Option<Spanned<Vec<String>>>,
    /// Where alert transitions are produced.
    pub alerts_topic: Option<Spanned<String>>,
    /// Where rejected events are produced, with the reason in headers.
    pub dead_letter_topic: Option<Spanned<String>>,
    /// Compacted topic where each partition's engine state is checkpointed
    /// (empty or absent: no checkpoints; state starts empty after a restart).
    pub checkpoint_topic: Option<Spanned<String>>,
    /// How often each partition's state is checkpointed.
    pub checkpoint_interval: Option<Spanned<String>>,
    /// librdkafka properties passed through to both consumer and producer.
    #[serde(default)]
    pub properties: BTreeMap<String, Spanned<toml::Value>>,
}

/// The validated Kafka settings.
#[derive(Clone, PartialEq)]
pub struct KafkaConfig {
    /// Bootstrap brokers.
    pub brokers: String,
    /// Consumer group.
    pub group_id: String,
    /// Topics of service events.
    pub topics: Vec<String>,
    /// Alerts topic.
    pub alerts_topic: String,
    /// Dead-letter topic.
    pub dead_letter_topic: String,
    /// Checkpoint topic, if checkpoints are on.
    pub checkpoint_topic: Option<String>,
    /// Checkpoint interval (ms).
    pub checkpoint_interval: crate::time::Millis,
    /// Passed-through librdkafka properties (after environment overrides).
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "localhost:9092".into(),
            group_id: "forewarn".into(),
            topics: vec!["service-events".into()],
            alerts_topic: "forewarn-alerts".into(),
            dead_letter_topic: "forewarn-dead-letter".into(),
            checkpoint_topic: None,
            checkpoint_interval: 30_000,
            properties: BTreeMap::new(),
        }
    }
}

/// Whether a librdkafka property holds a secret (never logged or printed).
pub fn is_secret(key: &str) -> bool {
    key.contains("password")
        || key.contains("secret")
        || key.starts_with("ssl.key")
        || key == "sasl.oauthbearer.config"
        || key.ends_with(".pem")
}

impl KafkaConfig {
    /// Properties with secret values replaced by `***`, for logs and `check`.
    pub fn redacted_properties(&self) -> BTreeMap<String, String> {
        self.properties
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    if is_secret(k) {
                        "***".into()
                    } else {
                        v.clone()
                    },
                )
            })
            .collect()
    }

    /// Applies `FOREWARN_KAFKA_*` variables (pass `std::env::vars()`); they
    /// override the file. Returns the properties set, or why a variable was refused.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Vec<String>, String> {
        let mut set = Vec::new();
        for (name, value) in vars {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            // forewarn's own settings first (deployments set brokers and group by
            // environment), then librdkafka properties.
            let field = match rest {
                "BROKERS" => Some(&mut self.brokers),
                "GROUP_ID" => Some(&mut self.group_id),
                "ALERTS_TOPIC" => Some(&mut self.alerts_topic),
                "DEAD_LETTER_TOPIC" => Some(&mut self.dead_letter_topic),
                _ => None,
            };
            if let Some(field) = field {
                if rest.ends_with("TOPIC") {
                    check_topic(&value)
                        .map_err(|why| format!("environment variable {name}: {why}"))?;
                }
                *field = value;
                set.push(rest.to_ascii_lowercase());
                continue;
            }
            if rest == "CHECKPOINT_TOPIC" {
                self.checkpoint_topic = if value.is_empty() {
                    None
                } else {
                    check_topic(&value)
                        .map_err(|why| format!("environment variable {name}: {why}"))?;
                    Some(value)
                };
                set.push("checkpoint_topic".into());
                continue;
            }
            if rest == "TOPICS" {
                let topics: Vec<String> = value.split(',').map(|t| t.trim().to_string()).collect();
                for t in &topics {
                    check_topic(t).map_err(|why| format!("environment variable {name}: {why}"))?;
                }
                self.topics = topics;
                set.push("topics".into());
                continue;
            }
            let key = rest.to_ascii_lowercase().replace('_', ".");
            check_property(&key).map_err(|why| format!("environment variable {name}: {why}"))?;
            self.properties.insert(key.clone(), value);
            set.push(key);
        }
        Ok(set)
    }
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("group_id", &self.group_id)
            .field("topics", &self.topics)
            .field("alerts_topic", &self.alerts_topic)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .field("checkpoint_topic", &self.checkpoint_topic)
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("properties", &self.redacted_properties())
            .finish()
    }
}

/// Checks a property name: librdkafka syntax, and not one forewarn manages.
pub fn check_property(key: &str) -> Result<(), String> {
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.')
        || key.starts_with('.')
        || key.ends_with('.')
    {
        return Err(format!("`{key}` is not a librdkafka property name (lowercase words joined by dots, e.g. `security.protocol`)"));
    }
    if let Some((_, why)) = MANAGED_PROPERTIES.iter().find(|(k, _)| *k == key) {
        return Err(format!("`{key}` is managed by forewarn: {why}"));
    }
    Ok(())
}

/// Kafka's rule for topic names.
pub fn check_topic(name: &str) -> Result<(), String> {
    let legal = !name.is_empty() && name.len() <= 249 && name != "." && name != "..";
    if legal
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid topic name (1-249 of letters, digits, `.`, `_`, `-`)"
        ))
    }
}
