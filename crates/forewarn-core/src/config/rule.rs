//! `[[rules]]`: the fields every rule has (name, kind, labels, templates, the
//! shared lifecycle), then the kind's own fields through [`RuleSpec::validate`].

use std::collections::{BTreeMap, HashMap};

use serde::de::DeserializeOwned;
use toml::Spanned;

use super::raw::RawRule;
use super::{is_label_name, ConfigError, Ctx, RuleDef, SignalDef, MAX_M_OF_N, TEMPLATE_FIELDS};
use crate::event::Category;
use crate::lifecycle::{Lifecycle, Trigger};
use crate::rules::{Input, RuleCx, RuleSpec};
use crate::time::format_duration;

/// Fields of a rule table not yet read.
struct Fields(Vec<(String, Spanned<toml::Value>)>);

impl Fields {
    fn take(&mut self, key: &str) -> Option<Spanned<toml::Value>> {
        let i = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(i).1)
    }

    /// Takes `key` and deserializes it as `T`, with a located error.
    fn typed<T: DeserializeOwned>(
        &mut self,
        cx: &Ctx,
        rule: &str,
        key: &str,
    ) -> Result<Option<Spanned<T>>, ConfigError> {
        let Some(v) = self.take(key) else {
            return Ok(None);
        };
        let span = v.span();
        match v.into_inner().try_into::<T>() {
            Ok(t) => Ok(Some(Spanned::new(span, t))),
            Err(e) => Err(cx.err(
                span,
                format!("rule `{rule}`: `{key}`: {}", e.message().trim()),
                "see deploy/forewarn.example.toml and docs/CONFIG.md for the field's form",
            )),
        }
    }
}

/// Validates one `[[rules]]` table against the signals defined before it.
pub(super) fn rule(
    cx: &Ctx,
    s: &Spanned<RawRule>,
    by_name: &HashMap<String, usize>,
    signals: &[SignalDef],
    lateness: crate::time::Millis,
) -> Result<RuleDef, ConfigError> {
    let span = s.span();
    let mut fields = Fields(s.get_ref().0.clone());
    let name = fields
        .typed::<String>(cx, "?", "name")?
        .map(Spanned::into_inner)
        .unwrap_or_default();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err(cx.err(
            span,
            format!("rule name `{name}` must be letters, digits, _ and :"),
            "rename it, e.g. `CheckoutErrorRateHigh`",
        ));
    }
    let at = |m: String, h: &str| cx.err(span.clone(), format!("rule `{name}`: {m}"), h);
    let Some(kind) = fields.typed::<String>(cx, &name, "kind")? else {
        return Err(at(
            "no `kind`".into(),
            "add kind = \"threshold\" (or absent, slo)",
        ));
    };
    let category = fields
        .typed::<Category>(cx, &name, "category")?
        .map(Spanned::into_inner);
    let labels = fields
        .typed::<BTreeMap<String, String>>(cx, &name, "labels")?
        .map(Spanned::into_inner)
        .unwrap_or_default();
    check_labels(&labels).map_err(|(m, h)| at(m, h))?;
    let summary = fields
        .typed::<String>(cx, &name, "summary")?
        .map(Spanned::into_inner);
    let annotations = fields
        .typed::<BTreeMap<String, String>>(cx, &name, "annotations")?
        .map(Spanned::into_inner)
        .unwrap_or_default();
    let rcx = RuleCx {
        cx,
        name: &name,
        span: span.clone(),
        fields: fields.0,
        signals,
        by_name,
        lateness,
    };
    let spec = RuleSpec::validate(kind.get_ref(), &rcx)?;
    let period = match spec.input() {
        Input::Signal(s) => signals[s].slide,
        Input::Own { interval } => interval,
    };
    let lifecycle = if spec.has_lifecycle() {
        lifecycle(&rcx, &spec, period)?
    } else {
        Lifecycle::IMMEDIATE
    };
    let summary = summary.unwrap_or_else(|| spec.default_summary().to_string());
    check_templates(&summary, &annotations, spec.vars()).map_err(|(m, h)| at(m, &h))?;
    Ok(RuleDef {
        name,
        spec,
        lifecycle,
        period,
        category,
        labels,
        summary,
        annotations,
    })
}

fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), (String, &'static str)> {
    for (k, v) in labels {
        if !is_label_name(k)
            || ["alertname", "service", "severity", "category"].contains(&k.as_str())
        {
            return Err((format!("label `{k}` is not allowed"), "use a label name of letters, digits and _, other than alertname, service, severity and category"));
        }
        if v.is_empty() {
            return Err((
                format!("label `{k}` is empty"),
                "give it a value or remove it",
            ));
        }
    }
    Ok(())
}

fn check_templates(
    summary: &str,
    annotations: &BTreeMap<String, String>,
    kind_vars: &[&str],
) -> Result<(), (String, String)> {
    let known: Vec<&str> = TEMPLATE_FIELDS.iter().chain(kind_vars).copied().collect();
    for t in std::iter::once(summary).chain(annotations.values().map(String::as_str)) {
        check_template(t, &known).map_err(|m| {
            let list: Vec<String> = known.iter().map(|f| format!("{{{f}}}")).collect();
            (m, format!("placeholders: {}", list.join(" ")))
        })?;
    }
    for k in annotations.keys() {
        if !is_label_name(k) || k == "summary" || k == "value" {
            return Err((
                format!("annotation `{k}` is not allowed"),
                "use a name of letters, digits and _ other than summary and value".into(),
            ));
        }
    }
    Ok(())
}

fn check_template(t: &str, known: &[&str]) -> Result<(), String> {
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err(format!("unclosed `{{` in template `{t}`"));
        };
        let name = &after[..close];
        if !known.contains(&name) {
            return Err(format!(
                "unknown placeholder `{{{name}}}` in template `{t}`"
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

/// The shared lifecycle fields: `for` or `m_of_n`, and `keep_firing_for`.
fn lifecycle(
    cx: &RuleCx,
    spec: &RuleSpec,
    period: crate::time::Millis,
) -> Result<Lifecycle, ConfigError> {
    let get = |key: &str| cx.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let text = |key: &str| -> Result<Option<String>, ConfigError> {
        get(key)
            .map(|v| {
                v.get_ref().as_str().map(str::to_string).ok_or_else(|| {
                    cx.err_at(
                        key,
                        format!("`{key}` must be a duration string"),
                        "e.g. \"5m\"",
                    )
                })
            })
            .transpose()
    };
    let for_ = text("for")?.map(|t| cx.duration("for", &t)).transpose()?;
    let m_of_n = get("m_of_n")
        .map(|v| {
            v.get_ref()
                .clone()
                .try_into::<[u32; 2]>()
                .map_err(|_| cx.err_at("m_of_n", "`m_of_n` must be [m, n]", "e.g. m_of_n = [3, 5]"))
        })
        .transpose()?;
    let trigger = match (for_, m_of_n) {
        (Some(_), Some(_)) => {
            return Err(cx.err_at(
                "m_of_n",
                "`for` and `m_of_n` are alternatives",
                "keep one: `for` needs a continuous breach, `m_of_n` tolerates flapping",
            ))
        }
        (Some(f), None) => {
            if f > 0 && f < period {
                let what = match spec.input() {
                    Input::Signal(s) => format!("signal `{}`'s slide", cx.signals[s].name),
                    Input::Own { .. } => "the rule's evaluation interval".into(),
                };
                return Err(cx.err_at(
                    "for",
                    format!(
                        "`for` ({}) is shorter than {what} ({})",
                        format_duration(f),
                        format_duration(period)
                    ),
                    "rules are evaluated once per slide; use 0s or a multiple of the slide",
                ));
            }
            Trigger::For(f)
        }
        (None, Some([m, n])) => {
            if m == 0 || m > n || n > MAX_M_OF_N {
                return Err(cx.err_at(
                    "m_of_n",
                    format!("m_of_n = [{m}, {n}] needs 1 <= m <= n <= {MAX_M_OF_N}"),
                    "e.g. m_of_n = [3, 5]: fire when 3 of the last 5 evaluations breach",
                ));
            }
            Trigger::MOfN { m, n }
        }
        (None, None) => Trigger::For(0),
    };
    let keep_firing_for = text("keep_firing_for")?
        .map(|t| cx.duration("keep_firing_for", &t))
        .transpose()?
        .unwrap_or(0);
    Ok(Lifecycle {
        trigger,
        keep_firing_for,
    })
}
