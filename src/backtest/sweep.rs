//! `--sweep RULE.PARAM=a,b,c`: the config once per value of one rule parameter,
//! so one pass over history shows the trade-off between false pages and lead.

use anyhow::{anyhow, bail, Context};
use forewarn_core::Config;
use toml::{Table, Value};

/// One parsed `--sweep`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    /// The rule's name.
    pub rule: String,
    /// The dotted path inside the rule's table (`for`, `critical.value`).
    pub path: Vec<String>,
    /// The values, as written.
    pub values: Vec<String>,
}

impl Sweep {
    /// Parses `RULE.PARAM[.PARAM…]=a,b,c`.
    pub fn parse(arg: &str) -> anyhow::Result<Sweep> {
        let usage = || {
            anyhow!("--sweep `{arg}`: write RULE.PARAM=a,b,c (e.g. ServiceErrorRateHigh.critical.value=0.05,0.1)")
        };
        let (target, values) = arg.split_once('=').ok_or_else(usage)?;
        let (rule, path) = target.split_once('.').ok_or_else(usage)?;
        let path: Vec<String> = path.split('.').map(str::to_string).collect();
        let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).collect();
        if rule.is_empty()
            || path.iter().any(String::is_empty)
            || values.iter().any(String::is_empty)
        {
            return Err(usage());
        }
        Ok(Sweep {
            rule: rule.to_string(),
            path,
            values,
        })
    }

    /// `RULE.PARAM`.
    pub fn target(&self) -> String {
        format!("{}.{}", self.rule, self.path.join("."))
    }

    /// One config per value, from the config's source text `src` (named `file`).
    pub fn configs(&self, src: &str, file: &str) -> anyhow::Result<Vec<Config>> {
        let doc: Table = src.parse().with_context(|| format!("{file}: not TOML"))?;
        self.values
            .iter()
            .map(|v| {
                let mut variant = doc.clone();
                self.set(&mut variant, v)?;
                let text = toml::to_string(&variant).context("cannot write the swept config")?;
                Config::parse(&text, &format!("{file} with {}={v}", self.target()))
                    .map_err(anyhow::Error::from)
            })
            .collect()
    }

    fn set(&self, doc: &mut Table, raw: &str) -> anyhow::Result<()> {
        let rules = doc
            .get_mut("rules")
            .and_then(Value::as_array_mut)
            .ok_or_else(|| anyhow!("--sweep: the config has no [[rules]]"))?;
        let rule = rules
            .iter_mut()
            .filter_map(Value::as_table_mut)
            .find(|r| r.get("name").and_then(Value::as_str) == Some(self.rule.as_str()))
            .ok_or_else(|| anyhow!("--sweep: no rule named `{}` in the config", self.rule))?;
        let (last, parents) = self
            .path
            .split_last()
            .expect("parse keeps one part at least");
        let mut table = rule;
        for key in parents {
            let entry = table
                .entry(key.clone())
                .or_insert_with(|| Value::Table(Table::new()));
            table = match entry {
                Value::Table(t) => t,
                _ => bail!("--sweep: `{}.{key}` is not a table", self.rule),
            };
        }
        table.insert(last.clone(), value(raw));
        Ok(())
    }
}

/// A TOML value as written (`0.05`, `3`, `true`, `[3, 4]`), else a string (`5m`).
fn value(raw: &str) -> Value {
    format!("v = {raw}")
        .parse::<Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = r#"
[[signals]]
name = "errors"
aggregate = "count"
window = "1m"

[[rules]]
name = "ErrorsHigh"
kind = "threshold"
signal = "errors"
critical = { value = 10 }
"#;

    #[test]
    fn each_value_lands_in_its_own_config() {
        let s = Sweep::parse("ErrorsHigh.critical.value=5, 20").unwrap();
        let configs = s.configs(SRC, "c.toml").unwrap();
        let levels: Vec<String> = configs
            .iter()
            .map(|c| c.rules[0].spec.describe(&c.signals))
            .collect();
        assert!(
            levels[0].contains('5') && !levels[0].contains("20"),
            "{levels:?}"
        );
        assert!(levels[1].contains("20"), "{levels:?}");
        let f = Sweep::parse("ErrorsHigh.for=2m")
            .unwrap()
            .configs(SRC, "c.toml")
            .unwrap();
        assert_eq!(
            f[0].rules[0].lifecycle.trigger,
            forewarn_core::lifecycle::Trigger::For(120_000)
        );
    }

    #[test]
    fn bad_sweeps_say_what_to_write() {
        for (arg, says) in [
            ("ErrorsHigh=1", "RULE.PARAM=a,b,c"),
            ("ErrorsHigh.for=", "RULE.PARAM=a,b,c"),
            ("Nope.for=1m", "no rule named `Nope`"),
            (
                "ErrorsHigh.critical.value=lots",
                "with ErrorsHigh.critical.value=lots",
            ),
        ] {
            let e = Sweep::parse(arg).and_then(|s| s.configs(SRC, "c.toml"));
            let e = format!("{:#}", e.unwrap_err());
            assert!(e.contains(says), "{arg}: {e}");
        }
    }
}
