//! Scenarios from TOML files (`forewarn simulate --scenario-file`). Times are
//! offsets from the scenario start ("20m", "1h5m"); errors name file, line and
//! column like the main config.

use std::collections::HashSet;
use std::ops::Range;

use forewarn_core::event::Category;
use forewarn_core::time::{parse_duration, Millis};
use serde::Deserialize;
use toml::Spanned;

use crate::model::{retail_services, Incident, Role, Scenario, Service, Spike};

/// A scenario file refused, with where and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ScenarioError {
    /// The file as named by the user.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong and what to do.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    duration: Spanned<String>,
    scale: Option<f64>,
    #[serde(default)]
    services: Vec<Spanned<RawService>>,
    #[serde(default)]
    promotions: Vec<Spanned<RawWindow>>,
    #[serde(default)]
    incidents: Vec<Spanned<RawIncident>>,
    #[serde(default)]
    spikes: Vec<Spanned<RawSpike>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: String,
    role: Role,
    rate: f64,
    latency_ms: f64,
    #[serde(default = "default_sigma")]
    latency_sigma: f64,
    sla_ms: f64,
    #[serde(default)]
    error_rate: f64,
    #[serde(default)]
    feedback_share: f64,
    #[serde(default = "default_complaints")]
    complaint_rate: f64,
    #[serde(default = "default_sentiment")]
    sentiment: f64,
}

fn default_sigma() -> f64 {
    0.45
}
fn default_complaints() -> f64 {
    0.05
}
fn default_sentiment() -> f64 {
    0.3
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    start: String,
    end: String,
    multiplier: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIncident {
    id: String,
    category: Category,
    services: Vec<String>,
    #[serde(default)]
    description: String,
    precursor_start: String,
    sla_breach: String,
    end: String,
    #[serde(default)]
    effect: crate::model::Effect,
    magnitude: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpike {
    id: String,
    services: Vec<String>,
    multiplier: f64,
    #[serde(default)]
    errors: f64,
    start: String,
    end: String,
}

struct Ctx<'a> {
    file: &'a str,
    src: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: Range<usize>, message: impl Into<String>) -> ScenarioError {
        let before = &self.src[..span.start.min(self.src.len())];
        ScenarioError {
            file: self.file.into(),
            line: before.matches('\n').count() + 1,
            column: before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1,
            message: message.into(),
        }
    }

    fn offset(&self, span: &Range<usize>, what: &str, s: &str) -> Result<Millis, ScenarioError> {
        parse_duration(s).map_err(|m| self.err(span.clone(), format!("`{what}`: {m}")))
    }
}

/// Parses a scenario file. Without `[[services]]`, the default retail estate is used.
pub fn load_scenario(
    src: &str,
    file: &str,
    seed: u64,
    start: Millis,
) -> Result<Scenario, ScenarioError> {
    let cx = Ctx { file, src };
    let raw: RawScenario = toml::from_str(src)
        .map_err(|e| cx.err(e.span().unwrap_or(0..0), e.message().trim().to_string()))?;
    let duration = cx.offset(&raw.duration.span(), "duration", raw.duration.get_ref())?;
    if duration == 0 {
        return Err(cx.err(raw.duration.span(), "`duration` must be greater than zero"));
    }
    let scale = raw.scale.unwrap_or(1.0);
    if !(scale > 0.0 && scale.is_finite()) {
        return Err(cx.err(0..0, "`scale` must be a positive number"));
    }
    let services: Vec<Service> = if raw.services.is_empty() {
        retail_services()
    } else {
        let mut seen = HashSet::new();
        raw.services
            .iter()
            .map(|s| {
                let r = s.get_ref();
                if !seen.insert(r.name.clone()) {
                    return Err(cx.err(s.span(), format!("service `{}` is defined twice", r.name)));
                }
                let ok = r.rate >= 0.0 && r.latency_ms > 0.0 && r.sla_ms > 0.0 && r.latency_sigma >= 0.0;
                let shares = [r.error_rate, r.feedback_share, r.complaint_rate].iter().all(|v| (0.0..=1.0).contains(v));
                if !ok || !shares || !(-1.0..=1.0).contains(&r.sentiment) || r.name.is_empty() {
                    return Err(cx.err(
                        s.span(),
                        format!("service `{}`: rate >= 0, latency_ms and sla_ms > 0, shares within 0..=1 and sentiment within -1..=1", r.name),
                    ));
                }
                Ok(Service {
                    name: r.name.as_str().into(),
                    role: r.role,
                    rate: r.rate,
                    latency_ms: r.latency_ms,
                    latency_sigma: r.latency_sigma,
                    sla_ms: r.sla_ms,
                    error_rate: r.error_rate,
                    feedback_share: r.feedback_share,
                    complaint_rate: r.complaint_rate,
                    sentiment: r.sentiment,
                })
            })
            .collect::<Result<_, _>>()?
    };
    let known = |names: &[String], span: Range<usize>| -> Result<Vec<String>, ScenarioError> {
        for n in names {
            if !services.iter().any(|s| *s.name == **n) {
                let all: Vec<&str> = services.iter().map(|s| &*s.name).collect();
                return Err(cx.err(
                    span.clone(),
                    format!("unknown service `{n}`; services: {}", all.join(", ")),
                ));
            }
        }
        Ok(names.to_vec())
    };
    let window = |span: Range<usize>,
                  what: &str,
                  a: &str,
                  b: &str|
     -> Result<(Millis, Millis), ScenarioError> {
        let (a, b) = (cx.offset(&span, what, a)?, cx.offset(&span, what, b)?);
        if a >= b || b > duration {
            return Err(cx.err(
                span,
                format!("{what}: start must come before end, within the duration"),
            ));
        }
        Ok((start + a, start + b))
    };
    let mut promotions = Vec::new();
    for p in &raw.promotions {
        let r = p.get_ref();
        let (a, b) = window(p.span(), "promotion", &r.start, &r.end)?;
        promotions.push((a, b, r.multiplier));
    }
    let mut incidents = Vec::new();
    for i in &raw.incidents {
        let r = i.get_ref();
        let (from, breach) = window(
            i.span(),
            &format!("incident `{}`", r.id),
            &r.precursor_start,
            &r.sla_breach,
        )?;
        let (_, end) = window(
            i.span(),
            &format!("incident `{}`", r.id),
            &r.sla_breach,
            &r.end,
        )?;
        if r.magnitude.is_some_and(|m| !(m >= 0.0 && m.is_finite())) {
            return Err(cx.err(
                i.span(),
                format!("incident `{}`: magnitude must be a number >= 0", r.id),
            ));
        }
        incidents.push(Incident {
            id: r.id.clone(),
            category: r.category,
            services: known(&r.services, i.span())?,
            description: r.description.clone(),
            precursor_start: from,
            sla_breach: breach,
            end,
            effect: r.effect,
            magnitude: r.magnitude,
        });
    }
    let mut spikes = Vec::new();
    for sp in &raw.spikes {
        let r = sp.get_ref();
        let (a, b) = window(sp.span(), &format!("spike `{}`", r.id), &r.start, &r.end)?;
        if !(r.multiplier > 0.0 && r.multiplier.is_finite() && (0.0..=1.0).contains(&r.errors)) {
            return Err(cx.err(
                sp.span(),
                format!(
                    "spike `{}`: multiplier must be positive and errors a share within 0..=1",
                    r.id
                ),
            ));
        }
        spikes.push(Spike {
            id: r.id.clone(),
            services: known(&r.services, sp.span())?,
            multiplier: r.multiplier,
            errors: r.errors,
            start: a,
            end: b,
        });
    }
    Ok(Scenario {
        name: raw.name,
        seed,
        start,
        duration,
        scale,
        services,
        promotions,
        incidents,
        spikes,
    })
}
