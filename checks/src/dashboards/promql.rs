//! Dashboard queries as PromQL: Grafana's variables substituted, then parsed with
//! `promql-parser`, so metric names, selectors and ranges are read from the syntax tree.

use std::time::Duration;

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{self, Expr, VectorSelector};
use promql_parser::util::{walk_expr, ExprVisitor};

/// The values Grafana's variables take before a query is parsed.
#[derive(Clone, Copy, Debug)]
pub struct Substitution {
    pub rate_interval: &'static str,
    pub instance: &'static str,
    pub datasource: &'static str,
}

/// What the checker substitutes. The values mark where a variable was, so the syntax tree tells
/// whether every selector filters on `$instance` and every range is `$__rate_interval`: no
/// hand-written query contains these two.
pub const MARKERS: Substitution = Substitution {
    rate_interval: "4242s",
    instance: "p2p_check_instance_variable",
    datasource: "prometheus",
};

/// What Grafana itself sends with "All" nodes picked at a 15 s scrape interval; the live-query
/// test (`tests/it/dashboards.rs`) substitutes the same.
pub const LIVE: Substitution = Substitution {
    rate_interval: "1m",
    instance: ".*",
    datasource: "prometheus",
};

/// Replaces `$name`, `${name}` and `${name:format}` of the variables the dashboards define or
/// Grafana provides. Fails on any other variable, so a query cannot use one nobody defines.
pub fn substitute(query: &str, values: &Substitution) -> Result<String, String> {
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in `{query}`"))?;
            let name = braced[..end].split(':').next().unwrap_or_default();
            (name, end + 2)
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        let value = match name {
            "__rate_interval" => values.rate_interval,
            "instance" => values.instance,
            "datasource" => values.datasource,
            other => return Err(format!("uses the undefined variable ${other}")),
        };
        out.push_str(value);
        rest = &after[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

/// What a parsed query selects, for the checks to judge.
#[derive(Debug, Default, PartialEq)]
pub struct Selections {
    /// Every metric name a selector names, in order of appearance.
    pub metrics: Vec<String>,
    /// Selectors (as written) that select no metric name, or select it by regex.
    pub unnamed: Vec<String>,
    /// Selectors (as written) without an `instance=~"<instance value>"` matcher.
    pub unfiltered: Vec<String>,
    /// Range selectors and subqueries whose window is not the rate interval.
    pub fixed_ranges: Vec<Duration>,
    /// Matchers on `alertname` (of `ALERTS` selectors), to test against the alert rules.
    pub alertname: Vec<Matcher>,
}

struct Collector<'a> {
    values: &'a Substitution,
    rate_interval: Duration,
    found: Selections,
}

impl Collector<'_> {
    fn selector(&mut self, selector: &VectorSelector) {
        let name = selector.name.clone().or_else(|| {
            selector
                .matchers
                .matchers
                .iter()
                .find(|m| m.name == "__name__" && matches!(m.op, MatchOp::Equal))
                .map(|m| m.value.clone())
        });
        match name {
            Some(name) => self.found.metrics.push(name),
            None => self.found.unnamed.push(selector.to_string()),
        }
        let filtered = selector.matchers.matchers.iter().any(|m| {
            m.name == "instance"
                && matches!(m.op, MatchOp::Re(_))
                && m.value == self.values.instance
        });
        if !filtered {
            self.found.unfiltered.push(selector.to_string());
        }
        self.found.alertname.extend(
            selector
                .matchers
                .matchers
                .iter()
                .filter(|m| m.name == "alertname")
                .cloned(),
        );
    }

    fn range(&mut self, range: Duration) {
        if range != self.rate_interval {
            self.found.fixed_ranges.push(range);
        }
    }
}

impl ExprVisitor for Collector<'_> {
    type Error = String;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
        match expr {
            Expr::VectorSelector(selector) => self.selector(selector),
            Expr::MatrixSelector(matrix) => {
                self.selector(&matrix.vs);
                self.range(matrix.range);
            }
            Expr::Subquery(subquery) => self.range(subquery.range),
            _ => {}
        }
        Ok(true)
    }
}

/// Substitutes `values` into `query` and parses it.
pub fn selections(query: &str, values: &Substitution) -> Result<Selections, String> {
    let promql = substitute(query, values)?;
    let expr = parser::parse(&promql).map_err(|e| format!("does not parse as PromQL: {e}"))?;
    let rate_interval = promql_parser::util::parse_duration(values.rate_interval)?;
    let mut collector = Collector {
        values,
        rate_interval,
        found: Selections::default(),
    };
    walk_expr(&mut collector, &expr)?;
    Ok(collector.found)
}

/// The metric selector inside a Grafana `label_values(selector, label)` variable query.
pub fn label_values_selector(query: &str) -> Option<&str> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    let (selector, _label) = inner.rsplit_once(',')?;
    Some(selector.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_substituted_in_every_spelling() {
        assert_eq!(
            substitute(
                r#"rate(x{instance=~"$instance"}[$__rate_interval]) + y{instance=~"${instance:regex}"}[${__rate_interval}]"#,
                &LIVE
            )
            .unwrap(),
            r#"rate(x{instance=~".*"}[1m]) + y{instance=~".*"}[1m]"#
        );
    }

    #[test]
    fn an_undefined_variable_is_refused() {
        assert_eq!(
            substitute("up{job=~\"$job\"}", &LIVE).unwrap_err(),
            "uses the undefined variable $job"
        );
    }

    #[test]
    fn selections_name_metrics_and_flag_what_is_not_filtered_or_fixed() {
        let found = selections(
            r#"sum(rate(p2p_messages_total{instance=~"$instance"}[$__rate_interval])) / sum(rate(p2p_inv_messages_total[5m])) + {__name__=~"p2p_.*", instance=~"$instance"}"#,
            &MARKERS,
        )
        .unwrap();
        assert_eq!(
            found.metrics,
            ["p2p_messages_total", "p2p_inv_messages_total"]
        );
        assert_eq!(found.unnamed.len(), 1);
        assert_eq!(found.unfiltered, ["p2p_inv_messages_total"]);
        assert_eq!(found.fixed_ranges, [Duration::from_secs(300)]);
    }

    #[test]
    fn label_values_queries_yield_their_selector() {
        assert_eq!(
            label_values_selector(r#"label_values(p2p_exporter_build_info{job="a"}, instance)"#),
            Some(r#"p2p_exporter_build_info{job="a"}"#)
        );
        assert_eq!(label_values_selector("query_result(up)"), None);
    }
}
