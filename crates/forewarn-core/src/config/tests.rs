use super::*;

const EXAMPLE: &str = include_str!("../../../../deploy/forewarn.example.toml");

fn err(src: &str) -> ConfigError {
    Config::parse(src, "bad.toml").expect_err("config must be refused")
}

const SIGNAL: &str = "[[signals]]\nname = \"err\"\naggregate = \"rate\"\nfilter = { outcome = \"error\" }\nwindow = \"1m\"\nslide = \"10s\"\n";

fn with_rule(rule: &str) -> String {
    format!("{SIGNAL}[[rules]]\nname = \"R\"\nkind = \"threshold\"\nsignal = \"err\"\n{rule}")
}

#[test]
fn example_config_is_valid() {
    let c = Config::parse(EXAMPLE, "deploy/forewarn.example.toml").unwrap();
    assert_eq!(c.signals.len(), 10);
    assert_eq!(c.rules.len(), 16);
    let RuleSpec::Threshold(t) = &c.rules[0].spec else {
        panic!()
    };
    assert_eq!(c.rules[0].lifecycle.trigger, Trigger::MOfN { m: 3, n: 4 });
    assert_eq!(
        t.levels[0],
        Level {
            severity: Severity::Warning,
            value: 0.05,
            clear: 0.03
        }
    );
    assert_eq!(c.signals[0].pane, 10_000);
    assert!(c.summary().contains("ServiceErrorRateHigh: threshold"));
}

#[test]
fn syntax_errors_name_line_and_column() {
    let e = err("[time]\nallowed_lateness = \"10s\"\nidle_timeout = \n");
    assert_eq!((e.file.as_str(), e.line), ("bad.toml", 3), "{e}");
    assert!(e.to_string().starts_with("bad.toml:3:"), "{e}");
}

#[test]
fn unknown_fields_are_refused_where_they_are() {
    let e = err(&with_rule("critical = 0.1\nfour = \"1m\"\n"));
    assert!(e.message.contains("unknown field `four`"), "{e}");
    assert_eq!(e.line, 12, "{e}");
    let e = err("[time]\nlateness = \"1s\"\n");
    assert!(
        e.message.contains("unknown field `lateness`") && e.message.contains("allowed_lateness"),
        "{e}"
    );
    assert_eq!(e.line, 2);
}

#[test]
fn bad_values_say_what_to_fix() {
    let cases: &[(&str, &str, &str)] = &[
        (&with_rule("critical = 0.1\nfor = \"5x\"\n"), "unknown unit `x`", "durations look like"),
        (&with_rule("critical = 0.1\nfor = \"5s\"\n"), "shorter than signal `err`'s slide", "multiple of the slide"),
        (&with_rule("critical = { value = 0.1, clear = 0.2 }\n"), "clear level 0.2 must be at or below", "healthy side"),
        (&with_rule("warning = 0.5\ncritical = 0.1\n"), "less severe than warning", "swap"),
        (&with_rule("critical = 0.1\nfor = \"1m\"\nm_of_n = [3, 5]\n"), "alternatives", "keep one"),
        (&with_rule("critical = 0.1\nm_of_n = [6, 5]\n"), "1 <= m <= n", "m_of_n = [3, 5]"),
        (&with_rule("op = \"above\"\n"), "need `warning`, `critical` or both", "critical = 0.05"),
        (&with_rule("critical = 0.1\nsummary = \"{servce} bad\"\n"), "unknown placeholder `{servce}`", "{service}"),
        (&with_rule("critical = 0.1\nlabels = { severity = \"x\" }\n"), "label `severity` is not allowed", "other than"),
        (&with_rule("critical = 0.1\nmin_events = -1\n"), "must not be negative", "min_events = 20"),
        (&with_rule("critical = 0.1\nconfidence = 1.0\n"), "confidence 1 must be at least 0.5 and below 1", "confidence = 0.95"),
        (&with_rule("critical = 0.1\nconfidence = 0.3\n"), "must be at least 0.5", "95% sure"),
        (&format!("{}[[rules]]\nname = \"R\"\nkind = \"threshold\"\nsignal = \"err\"\ncritical = 1\nconfidence = 0.95\n", SIGNAL.replace("aggregate = \"rate\"", "aggregate = \"mean\"\nfield = \"latency_ms\"")), "applies to rate and quantile signals, and `err` is mean", "use `min_events`"),
        (&format!("{SIGNAL}[[rules]]\nname = \"A\"\nkind = \"absent\"\nsignal = \"err\"\nfor = \"5m\"\nconfidence = 0.9\n"), "does not apply to absent", "remove `confidence`"),
        (&format!("{SIGNAL}[[rules]]\nname = \"R\"\nkind = \"threshold\"\nsignal = \"nope\"\ncritical = 1\n"), "unknown signal `nope`", "use one of: err"),
        (&format!("{SIGNAL}[[rules]]\nname = \"A\"\nkind = \"absent\"\nsignal = \"err\"\n"), "absent rules need `for`", "for = \"5m\""),
        (&format!("{SIGNAL}[[rules]]\nname = \"A\"\nkind = \"absent\"\nsignal = \"err\"\nfor = \"5m\"\ncritical = 1\n"), "does not apply to absent", "remove `critical`"),
        (&SIGNAL.replace("slide = \"10s\"", "slide = \"2m\""), "longer than the window", "at most the window"),
        (&SIGNAL.replace("window = \"1m\"", "window = \"1d\"").replace("10s", "7s"), "panes (limit", "divides the window"),
        (&SIGNAL.replace("aggregate = \"rate\"", "aggregate = \"quantile\"\nfield = \"latency_ms\""), "needs `quantile`", "quantile = 0.99"),
        (&SIGNAL.replace("aggregate = \"rate\"", "aggregate = \"mean\""), "needs a `field`", "latency_ms"),
        (&SIGNAL.replace("aggregate = \"rate\"", "aggregate = \"count\"\nfield = \"latency_ms\""), "only applies to sum", "remove `field`"),
        (&SIGNAL.replace("name = \"err\"", "name = \"Err Rate\""), "must be lowercase", "rename"),
        (&SIGNAL.replace("filter = { outcome = \"error\" }", "filter = { outcome = [] }"), "empty list", "at least one value"),
        (SIGNAL, "no rules defined", "[[rules]]"),
        ("[limits]\nmax_groups = 0\n", "at least 1", "100000"),
        ("[time]\nidle_timeout = \"0s\"\n", "`idle_timeout` must be greater than zero", "30s"),
    ];
    for (src, message, help) in cases {
        let e = err(src);
        assert!(e.message.contains(message), "expected `{message}` in: {e}");
        assert!(e.help.contains(help), "expected help `{help}` in: {e}");
        assert!(e.line >= 1 && e.column >= 1);
    }
}

#[test]
fn errors_point_at_the_offending_table_or_value() {
    let src = with_rule("critical = 0.1\nfor = \"5s\"\n");
    let e = err(&src);
    let line = src.lines().nth(e.line - 1).unwrap();
    assert!(line.contains("5s"), "line {} is `{line}`", e.line);
    let src = format!("{SIGNAL}{SIGNAL}[[rules]]\nname = \"R\"\nkind = \"threshold\"\nsignal = \"err\"\ncritical = 1\n");
    let e = err(&src);
    assert!(e.message.contains("defined twice"), "{e}");
    assert!(
        e.line > SIGNAL.lines().count(),
        "must point at the second definition: {e}"
    );
}

#[test]
fn unknown_enum_values_list_the_choices() {
    let e = err(&SIGNAL.replace("aggregate = \"rate\"", "aggregate = \"median\""));
    assert!(
        e.message.contains("median") && e.message.contains("quantile"),
        "{e}"
    );
    let e = err(&SIGNAL.replace("outcome = \"error\"", "outcome = \"failed\""));
    assert!(
        e.message.contains("failed") && e.message.contains("timeout"),
        "{e}"
    );
}

const RULE: &str =
    "[[rules]]\nname = \"R\"\nkind = \"threshold\"\nsignal = \"err\"\ncritical = 0.1\n";

#[test]
fn kafka_defaults_and_passthrough() {
    let c = Config::parse(&format!("{SIGNAL}{RULE}"), "k.toml").unwrap();
    assert_eq!(c.kafka, kafka::KafkaConfig::default());
    let src = format!(
        "{SIGNAL}{RULE}[kafka]\nbrokers = \"b1:9092,b2:9092\"\ngroup_id = \"fw\"\ntopics = [\"orders\", \"support\"]\nalerts_topic = \"alerts\"\ndead_letter_topic = \"dlq\"\nproperties = {{ \"security.protocol\" = \"SASL_SSL\", \"sasl.password\" = \"hunter2\", \"fetch.wait.max.ms\" = 50, \"socket.keepalive.enable\" = true }}\n"
    );
    let mut c = Config::parse(&src, "k.toml").unwrap();
    assert_eq!(c.kafka.topics, ["orders", "support"]);
    assert_eq!(c.kafka.properties["fetch.wait.max.ms"], "50");
    assert_eq!(c.kafka.properties["socket.keepalive.enable"], "true");
    assert_eq!(c.kafka.properties["sasl.password"], "hunter2");
    // Secrets never show in Debug output or in `check`.
    assert!(!format!("{:?}", c.kafka).contains("hunter2"));
    assert!(!format!("{c:?}").contains("hunter2"));
    assert!(!c.summary().contains("hunter2") && c.summary().contains("sasl.password"));
    // Environment overrides the file.
    let set = c
        .kafka
        .apply_env([
            (
                "FOREWARN_KAFKA_SASL_PASSWORD".to_string(),
                "from-env".to_string(),
            ),
            ("PATH".to_string(), "/bin".to_string()),
        ])
        .unwrap();
    assert_eq!(set, ["sasl.password"]);
    assert_eq!(c.kafka.properties["sasl.password"], "from-env");
    let refused = c.kafka.apply_env([(
        "FOREWARN_KAFKA_ENABLE_AUTO_COMMIT".to_string(),
        "true".to_string(),
    )]);
    assert!(refused.unwrap_err().contains("managed by forewarn"));
    // forewarn's own fields by name.
    let set = c
        .kafka
        .apply_env([
            (
                "FOREWARN_KAFKA_BROKERS".to_string(),
                "k1:9092,k2:9092".to_string(),
            ),
            ("FOREWARN_KAFKA_TOPICS".to_string(), "a, b".to_string()),
            ("FOREWARN_KAFKA_GROUP_ID".to_string(), "g2".to_string()),
        ])
        .unwrap();
    assert_eq!(set, ["brokers", "topics", "group_id"]);
    assert_eq!(c.kafka.brokers, "k1:9092,k2:9092");
    assert_eq!(c.kafka.topics, ["a", "b"]);
    assert_eq!(c.kafka.group_id, "g2");
    let refused = c.kafka.apply_env([(
        "FOREWARN_KAFKA_ALERTS_TOPIC".to_string(),
        "bad topic".to_string(),
    )]);
    assert!(refused.unwrap_err().contains("not a valid topic name"));
}

#[test]
fn checkpoints_are_off_unless_a_topic_is_given() {
    let off = Config::parse(&format!("{SIGNAL}{RULE}"), "t.toml").unwrap();
    assert_eq!(off.kafka.checkpoint_topic, None);
    let on = Config::parse(
        &format!(
            "{SIGNAL}{RULE}[kafka]\ncheckpoint_topic = \"ck\"\ncheckpoint_interval = \"5s\"\n"
        ),
        "t.toml",
    )
    .unwrap();
    assert_eq!(on.kafka.checkpoint_topic.as_deref(), Some("ck"));
    assert_eq!(on.kafka.checkpoint_interval, 5_000);
}

#[test]
fn kafka_section_errors_are_located() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[kafka]\nproperties = { \"enable.auto.commit\" = true }\n",
            "managed by forewarn",
            "CONFIGURATION.md",
        ),
        (
            "[kafka]\nproperties = { \"Bad_Name\" = \"x\" }\n",
            "not a librdkafka property name",
            "CONFIGURATION.md",
        ),
        (
            "[kafka]\ntopics = []\n",
            "`kafka.topics` is empty",
            "service-events",
        ),
        (
            "[kafka]\ntopics = [\"a b\"]\n",
            "not a valid topic name",
            "letters, digits",
        ),
        (
            "[kafka]\ntopics = [\"t\"]\ndead_letter_topic = \"t\"\n",
            "also an input topic",
            "topics of their own",
        ),
        (
            "[kafka]\nalerts_topic = \"x\"\ndead_letter_topic = \"x\"\n",
            "is the alerts topic",
            "own",
        ),
        (
            "[kafka]\nbrokers = \" \"\n",
            "`kafka.brokers` is empty",
            "give a value",
        ),
        (
            "[kafka]\ncheckpoint_topic = \"forewarn-alerts\"\n",
            "also an input or output topic",
            "compacted topic",
        ),
        (
            "[kafka]\ncheckpoint_topic = \"ck\"\ncheckpoint_interval = \"10ms\"\n",
            "below 100ms",
            "30s",
        ),
        (
            "[kafka]\nbrokerz = \"b:9092\"\n",
            "unknown field `brokerz`",
            "forewarn.example.toml",
        ),
    ];
    for (section, message, help) in cases {
        let src = format!("{SIGNAL}{RULE}{section}");
        let e = err(&src);
        assert!(e.message.contains(message), "expected `{message}` in: {e}");
        assert!(e.help.contains(help), "expected help `{help}` in: {e}");
        assert!(
            e.line > SIGNAL.lines().count() + RULE.lines().count(),
            "must point into [kafka]: {e}"
        );
    }
}

const SLO: &str = "[[rules]]\nname = \"Avail\"\nkind = \"slo\"\ntotal = { kind = \"request\" }\ngood = { outcome = \"ok\" }\n";

#[test]
fn slo_rules_take_a_30_day_budget_and_the_workbook_pairs() {
    let c = Config::parse(&format!("{SLO}objective = 0.999\n"), "slo.toml").unwrap();
    let RuleSpec::Slo(s) = &c.rules[0].spec else {
        panic!()
    };
    assert_eq!(s.period, 30 * 86_400_000);
    assert_eq!(s.pairs.len(), 4);
    assert_eq!(s.interval, 30_000);
    let summary = c.summary();
    assert!(
        summary.contains("critical 14.4x over 1h and 5m")
            && summary.contains("warning 1x over 3d and 6h"),
        "{summary}"
    );
}

#[test]
fn bad_slo_rules_say_what_to_fix() {
    let cases: &[(&str, &str, &str, usize)] = &[
        ("objective = 1.0\n", "must be above 0 and below 1", "no error budget", 6),
        ("objective = 99.9\n", "must be above 0 and below 1", "objective = 0.999", 6),
        ("objective = 0.99\npairs = [{ long = \"5m\", short = \"1h\", burn = 14.4, severity = \"critical\" }]\n", "must be shorter than the long one", "long = \"1h\"", 7),
        ("objective = 0.99\npairs = [{ long = \"1h\", short = \"5m\", burn = 14.4 }]\n", "pair 1 has no severity", "severity = \"critical\"", 7),
        ("objective = 0.99\ninterval = \"7s\"\n", "not a multiple of the evaluation interval", "divides every window", 7),
        ("objective = 0.99\nperiod = \"2h\"\n", "longer than the period", "30d", 7),
        ("objective = 0.99\nsignal = \"x\"\n", "`signal` does not apply to slo rules", "slo rules take", 7),
        ("objective = 0.99\nwarning = 1\n", "`warning` does not apply to slo rules", "remove `warning`", 7),
        ("objective = 0.99\nmin_events = \"x\"\n", "`min_events`", "slo rules take", 7),
    ];
    for (extra, message, help, line) in cases {
        let src = format!("{SLO}{extra}");
        let e = err(&src);
        assert!(e.message.contains(message), "expected `{message}` in: {e}");
        assert!(e.help.contains(help), "expected help `{help}` in: {e}");
        if *line > 0 {
            assert_eq!(e.line, *line, "{e}");
        }
    }
}

const P99: &str = "[[signals]]\nname = \"p99\"\naggregate = \"quantile\"\nquantile = 0.99\nfield = \"latency_ms\"\nwindow = \"5m\"\nslide = \"10s\"\n[[rules]]\nname = \"Slow\"\nkind = \"threshold\"\nsignal = \"p99\"\nwarning = 1000\n";

#[test]
fn a_config_whose_one_group_could_not_fit_is_refused_with_the_estimate() {
    // A year of lateness on 10 s panes: 3.2 M slots per group.
    let src = format!("[time]\nallowed_lateness = \"366d\"\n{P99}");
    let e = err(&src);
    assert!(
        e.message
            .contains("one group's window state could reach 12.")
            && e.message
                .contains("signal `p99`: 3162273 pane slots of 10s")
            && e.message.contains("max_memory is 4.0 GiB"),
        "{e}"
    );
    assert!(e.help.contains("allowed_lateness"), "{e}");
    let line = src.lines().nth(e.line - 1).unwrap();
    assert_eq!(line, "[[signals]]", "points at the costly signal");
    // The same config with the memory for it is accepted.
    let roomy = format!("[limits]\nmax_memory = \"16GiB\"\n{src}");
    assert!(Config::parse(&roomy, "ok.toml").is_ok());
}

#[test]
fn max_memory_caps_groups_by_their_fixed_state() {
    let c = Config::parse(P99, "t.toml").unwrap();
    assert_eq!(c.max_memory, DEFAULT_MAX_MEMORY);
    assert_eq!(
        c.group_cap, c.max_groups,
        "the default fits 100,000 such groups"
    );
    // 35 sketches of <= 4 KiB plus panes: about 143 KiB a group at worst.
    assert!(
        c.group_state.worst > 140 << 10 && c.group_state.worst < 150 << 10,
        "{:?}",
        c.group_state
    );
    let tight =
        Config::parse(&format!("[limits]\nmax_memory = \"1MiB\"\n{P99}"), "t.toml").unwrap();
    assert_eq!(tight.group_cap as u64, (1 << 20) / tight.group_state.fixed);
    let note = format!(
        "admits {} groups per grouping (fewer than max_groups)",
        tight.group_cap
    );
    assert!(tight.summary().contains(&note), "{}", tight.summary());
    for (bad, message) in [
        ("\"lots\"", "not a size"),
        ("\"0\"", "more than zero"),
        ("\"2 gigs\"", "unknown size unit"),
    ] {
        let e = err(&format!("[limits]\nmax_memory = {bad}\n{P99}"));
        assert!(e.message.contains(message), "{e}");
        assert_eq!(e.line, 2, "{e}");
    }
}

/// Field names a `Raw` struct of `src` accepts (serde renames applied).
fn raw_fields(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    let mut rename = None;
    for line in src.lines().map(str::trim) {
        if line.starts_with("pub struct Raw") && line.ends_with('{') {
            inside = true;
        } else if inside && line == "}" {
            inside = false;
        } else if inside {
            if let Some(r) = line.split("rename = \"").nth(1) {
                rename = r.split('"').next().map(str::to_string);
            } else if let Some(field) = line.strip_prefix("pub ").and_then(|l| l.split(':').next())
            {
                out.push(rename.take().unwrap_or_else(|| field.to_string()));
            }
        }
    }
    out
}

#[test]
fn every_config_field_is_documented() {
    let doc = include_str!("../../../../docs/CONFIG.md");
    let sources = [
        include_str!("raw.rs"),
        include_str!("kafka.rs"),
        include_str!("../rules/threshold.rs"),
        include_str!("../rules/absent.rs"),
        include_str!("../rules/anomaly.rs"),
        include_str!("../rules/forecast.rs"),
        include_str!("../rules/slo.rs"),
        include_str!("../rules/model.rs"),
    ];
    let mut fields: Vec<String> = sources.iter().flat_map(|s| raw_fields(s)).collect();
    // The common rule fields are read by key in rule.rs.
    let rule = include_str!("rule.rs");
    for piece in rule
        .split("&name, \"")
        .skip(1)
        .chain(rule.split("text(\"").skip(1))
        .chain(rule.split("get(\"").skip(1))
    {
        fields.extend(piece.split('"').next().map(str::to_string));
    }
    fields.push("name".into());
    assert!(fields.len() > 60, "the scan found the fields: {fields:?}");
    for f in [
        "max_memory",
        "established_after",
        "for",
        "m_of_n",
        "traffic_aware",
    ] {
        assert!(fields.iter().any(|x| x == f), "scan missed `{f}`");
    }
    let missing: Vec<&String> = fields
        .iter()
        .filter(|f| {
            // A row of a field table, or a section heading (`[time]`, `[[rules]]`).
            !doc.contains(&format!("| `{f}` |"))
                && !doc.contains(&format!("`[{f}]`"))
                && !doc.contains(&format!("`[[{f}]]`"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "docs/CONFIG.md lacks a row for: {missing:?}"
    );
}
