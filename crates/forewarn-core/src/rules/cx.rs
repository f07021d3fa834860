//! What a rule kind sees: [`RuleCx`] while its config is validated, [`EvalCx`]
//! while a group is evaluated.

use std::cell::Cell;
use std::collections::HashMap;
use std::ops::Range;

use serde::de::{
    self, Deserialize, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, Visitor,
};
use toml::Spanned;

use super::{kinds, RuleKind};
use crate::config::raw::RawFilter;
use crate::config::{ConfigError, Ctx, Filter, SignalDef};
use crate::engine::FamilyState;
use crate::time::Millis;
use crate::window::{Head, WindowValue};

/// Fields every rule has, whatever its kind.
pub const COMMON_FIELDS: &[&str] = &[
    "name",
    "kind",
    "category",
    "labels",
    "summary",
    "annotations",
];

/// The shared lifecycle's fields (for kinds with [`RuleKind::LIFECYCLE`]).
pub const LIFECYCLE_FIELDS: &[&str] = &["for", "m_of_n", "keep_firing_for"];

/// Validation context of one `[[rules]]` table.
pub struct RuleCx<'a> {
    pub(crate) cx: &'a Ctx<'a>,
    /// The rule's name.
    pub name: &'a str,
    pub(crate) span: Range<usize>,
    /// Every field but the common ones, with the span of its value.
    pub(crate) fields: Vec<(String, Spanned<toml::Value>)>,
    /// The signals defined so far, in file order.
    pub signals: &'a [SignalDef],
    pub(crate) by_name: &'a HashMap<String, usize>,
    pub(crate) lateness: Millis,
}

impl RuleCx<'_> {
    /// An error located at the rule's table.
    pub fn err(&self, message: impl AsRef<str>, help: impl Into<String>) -> ConfigError {
        self.cx.err(
            self.span.clone(),
            format!("rule `{}`: {}", self.name, message.as_ref()),
            help,
        )
    }

    /// An error located at field `key`'s value (at the table when it is absent).
    pub fn err_at(
        &self,
        key: &str,
        message: impl AsRef<str>,
        help: impl Into<String>,
    ) -> ConfigError {
        let span = self.span_of(key).unwrap_or_else(|| self.span.clone());
        self.cx.err(
            span,
            format!("rule `{}`: {}", self.name, message.as_ref()),
            help,
        )
    }

    fn span_of(&self, key: &str) -> Option<Range<usize>> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.span())
    }

    /// Parses duration text given in field `key`.
    pub fn duration(&self, key: &str, text: &str) -> Result<Millis, ConfigError> {
        crate::time::parse_duration(text).map_err(|m| {
            self.err_at(
                key,
                format!("`{key}`: {m}"),
                "durations look like \"500ms\", \"30s\", \"5m\", \"1h30m\", \"30d\"",
            )
        })
    }

    /// `min_events` (default `default`), refused when negative.
    pub fn min_events(&self, given: Option<i64>, default: u64) -> Result<u64, ConfigError> {
        match given {
            None => Ok(default),
            Some(m) if m >= 0 => Ok(m as u64),
            Some(_) => Err(self.err_at(
                "min_events",
                "min_events must not be negative",
                "e.g. min_events = 20",
            )),
        }
    }

    /// Checks a `group_by` list.
    pub fn group_by(&self, labels: &[String]) -> Result<(), ConfigError> {
        crate::config::check_group_by(labels).map_err(|(m, h)| self.err_at("group_by", m, h))
    }

    /// The config's `allowed_lateness`.
    pub fn lateness(&self) -> Millis {
        self.lateness
    }

    /// Compiles the event filter given in field `key`.
    pub fn filter(&self, key: &str, raw: &RawFilter) -> Result<Filter, ConfigError> {
        let span = self.span_of(key).unwrap_or_else(|| self.span.clone());
        crate::config::filter(self.cx, span, raw, &format!("rule `{}` {key}", self.name))
    }

    /// The text of file `path` (given in field `key`), relative to the config
    /// file's directory unless absolute.
    pub fn read_beside(&self, key: &str, path: &str) -> Result<String, ConfigError> {
        let dir = std::path::Path::new(self.cx.file()).parent();
        let full = match dir {
            Some(d) if std::path::Path::new(path).is_relative() => d.join(path),
            _ => std::path::PathBuf::from(path),
        };
        std::fs::read_to_string(&full).map_err(|e| {
            self.err_at(
                key,
                format!("cannot read `{}`: {e}", full.display()),
                "give a path relative to the config file's directory, or an absolute one",
            )
        })
    }

    /// The index of the signal named `name` (given in field `key`).
    pub fn signal(&self, key: &str, name: &str) -> Result<usize, ConfigError> {
        self.by_name.get(name).copied().ok_or_else(|| {
            let known: Vec<&str> = self.signals.iter().map(|s| s.name.as_str()).collect();
            self.err_at(
                key,
                format!("unknown signal `{name}`"),
                format!("use one of: {}", known.join(", ")),
            )
        })
    }

    /// Deserializes the kind's own fields, refusing any it does not take.
    pub(crate) fn raw<K: RuleKind>(&self) -> Result<K::Raw, ConfigError> {
        let own = struct_fields::<K::Raw>();
        let mine: Vec<&(String, Spanned<toml::Value>)> = self
            .fields
            .iter()
            .filter(|(k, _)| !(K::LIFECYCLE && LIFECYCLE_FIELDS.contains(&k.as_str())))
            .collect();
        for (key, _) in &mine {
            if !own.contains(&key.as_str()) {
                return Err(self.not_for_kind::<K>(key));
            }
        }
        let last = Cell::new(None);
        let access = FieldAccess {
            fields: mine.into_iter(),
            value: None,
            last: &last,
        };
        <K::Raw as Deserialize>::deserialize(de::value::MapAccessDeserializer::new(access)).map_err(
            |e: toml::de::Error| {
                let key: Option<&str> = last.get();
                let msg = e.message().trim().to_string();
                match key {
                    Some(k) => self.err_at(k, format!("`{k}`: {msg}"), Self::kind_help::<K>()),
                    None => self.err(msg, Self::kind_help::<K>()),
                }
            },
        )
    }

    fn kind_help<K: RuleKind>() -> String {
        let mut fields: Vec<&str> = struct_fields::<K::Raw>().to_vec();
        if K::LIFECYCLE {
            fields.extend(LIFECYCLE_FIELDS);
        }
        format!(
            "{} rules take: {}; every rule: {}",
            K::NAME,
            fields.join(", "),
            COMMON_FIELDS.join(", ")
        )
    }

    fn not_for_kind<K: RuleKind>(&self, key: &str) -> ConfigError {
        let elsewhere = kinds().into_iter().any(|(_, lifecycle, fields)| {
            fields.contains(&key) || (lifecycle && LIFECYCLE_FIELDS.contains(&key))
        });
        if elsewhere {
            self.err_at(
                key,
                format!("`{key}` does not apply to {} rules", K::NAME),
                format!("remove `{key}`; {}", Self::kind_help::<K>()),
            )
        } else {
            self.err_at(
                key,
                format!("unknown field `{key}`"),
                Self::kind_help::<K>(),
            )
        }
    }

    pub(crate) fn unknown_kind(&self, kind: &str) -> ConfigError {
        let names: Vec<&str> = kinds().into_iter().map(|(n, _, _)| n).collect();
        self.err_at(
            "kind",
            format!("unknown rule kind `{kind}`"),
            format!("use one of: {}", names.join(", ")),
        )
    }
}

/// Feeds spanned TOML values to a serde struct, remembering the last key so an
/// error can point at its line.
struct FieldAccess<'a, I> {
    fields: I,
    value: Option<&'a toml::Value>,
    last: &'a Cell<Option<&'a str>>,
}

impl<'de, 'a, I> MapAccess<'de> for FieldAccess<'a, I>
where
    I: Iterator<Item = &'a (String, Spanned<toml::Value>)>,
{
    type Error = toml::de::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let Some((k, v)) = self.fields.next() else {
            return Ok(None);
        };
        self.last.set(Some(k.as_str()));
        self.value = Some(v.get_ref());
        seed.deserialize(k.as_str().into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        match self.value.take() {
            Some(v) => seed.deserialize(v.clone()),
            None => Err(de::Error::custom("value without a key")),
        }
    }
}

/// The field names of a `#[derive(Deserialize)]` struct, read from what its
/// derived code hands the deserializer.
pub fn struct_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Probe<'a>(&'a Cell<&'static [&'static str]>);
    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("probe")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    impl<'de> de::Deserializer<'de> for Probe<'_> {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0.set(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let cell = Cell::new(&[][..]);
    let _ = T::deserialize(Probe(&cell));
    cell.get()
}

/// Evaluation context: one group at one window end, with read access to every
/// signal of the group's grouping.
pub struct EvalCx<'a> {
    /// Evaluation time (a window end of the driving input).
    pub at: Millis,
    /// The group.
    pub group: usize,
    /// Every signal definition.
    pub signals: &'a [SignalDef],
    pub(crate) families: &'a mut [FamilyState],
    /// Signal → (family, member).
    pub(crate) signal_family: &'a [(usize, usize)],
    /// The family being evaluated (MAX: none): its signals end exactly at `at`.
    pub(crate) driver: usize,
}

impl EvalCx<'_> {
    /// Window end of `signal` as of this evaluation: its latest slide boundary at
    /// or before `at` (exactly `at` for the driving signal).
    #[inline]
    pub fn end(&self, signal: usize) -> Millis {
        if self.signal_family[signal].0 == self.driver {
            return self.at;
        }
        let slide = self.signals[signal].slide;
        self.at - self.at.rem_euclid(slide)
    }

    /// Newest-event bookkeeping of `signal` for this group.
    #[inline]
    pub fn head(&self, signal: usize) -> Option<&Head> {
        let (f, m) = self.signal_family[signal];
        self.families[f].store.head(self.group, m)
    }

    /// Whether `signal` recorded any event for this group in its current window.
    #[inline]
    pub fn has_data(&self, signal: usize) -> bool {
        let (f, _) = self.signal_family[signal];
        if let Some(t) = &self.families[f].entities {
            return t.get(self.group).is_some_and(|e| !e.is_empty());
        }
        let start = self.end(signal) - self.signals[signal].window;
        self.head(signal).is_some_and(|h| h.last_touch >= start)
    }

    /// `signal`'s value for this group over its window ending at [`Self::end`].
    #[inline]
    pub fn window(&mut self, signal: usize) -> WindowValue {
        let (f, m) = self.signal_family[signal];
        if let (Some(t), crate::config::Aggregate::Timer(measure)) =
            (&self.families[f].entities, self.signals[signal].aggregate)
        {
            let (value, events) = t.get(self.group).map_or((None, 0), |e| e.read(measure));
            return WindowValue { value, events };
        }
        let end = self.end(signal);
        let def = &self.signals[signal];
        self.families[f].store.window(self.group, m, end, def)
    }

    /// The value at `rank` (0..=1) of `signal`'s last computed window sketch
    /// (call [`Self::window`] first).
    #[inline]
    pub fn window_quantile(&self, signal: usize, rank: f64) -> Option<f64> {
        let (f, m) = self.signal_family[signal];
        self.families[f].store.window_quantile(self.group, m, rank)
    }
}
