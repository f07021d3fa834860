//! What a dead letter carries: the rejected message's value unchanged, and headers
//! that say why and where it came from.

/// Header names on dead-letter messages.
pub mod headers {
    /// Stable reason code (e.g. `wrong_type`, `too_far_in_future`).
    pub const REASON: &str = "forewarn-reason";
    /// Human-readable explanation, naming the field.
    pub const ERROR: &str = "forewarn-error";
    /// Topic the message was consumed from.
    pub const SOURCE_TOPIC: &str = "forewarn-source-topic";
    /// Its partition.
    pub const SOURCE_PARTITION: &str = "forewarn-source-partition";
    /// Its offset.
    pub const SOURCE_OFFSET: &str = "forewarn-source-offset";
}

/// Where a rejected message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// The headers of the dead letter for a message rejected with `reason`/`error`.
pub fn dead_letter_headers(
    reason: &str,
    error: &str,
    source: Source<'_>,
) -> [(&'static str, String); 5] {
    [
        (headers::REASON, reason.to_string()),
        (headers::ERROR, error.to_string()),
        (headers::SOURCE_TOPIC, source.topic.to_string()),
        (headers::SOURCE_PARTITION, source.partition.to_string()),
        (headers::SOURCE_OFFSET, source.offset.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_say_why_and_where() {
        let h = dead_letter_headers(
            "wrong_type",
            "field `latency_ms` must be a number",
            Source {
                topic: "events",
                partition: 3,
                offset: 42,
            },
        );
        assert_eq!(h[0], (headers::REASON, "wrong_type".to_string()));
        assert_eq!(h[3].1, "3");
        assert_eq!(h[4].1, "42");
    }
}
