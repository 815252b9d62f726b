//! The rules every dashboard JSON file must follow. Each returns plain sentences naming the
//! dashboard part at fault; no sentence means the rule holds.
//!
//! Exemptions, on purpose: row panels are layout only (no description, unit, query or
//! datasource); text panels carry words and links, so they need a description but no unit,
//! query or datasource.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::config::{ALERTMANAGER_UID, DASHBOARDS, TAG};
use super::known::Known;
use super::promql::{label_values_selector, selections, MARKERS};

/// Grafana's unit ids (`packages/grafana-data/src/valueFormats/categories.ts`) for what these
/// dashboards can show. Grafana shows an unknown id as a literal suffix, so a typo would pass
/// unnoticed in Grafana itself.
const GRAFANA_UNITS: &[&str] = &[
    "none",
    "string",
    "short",
    "percent",
    "percentunit",
    "locale",
    "sci",
    "bits",
    "bytes",
    "kbytes",
    "mbytes",
    "gbytes",
    "decbits",
    "decbytes",
    "deckbytes",
    "decmbytes",
    "pps",
    "bps",
    "Bps",
    "KBs",
    "Kbits",
    "MBs",
    "Mbits",
    "hertz",
    "ns",
    "µs",
    "ms",
    "s",
    "m",
    "h",
    "d",
    "dtdurationms",
    "dtdurations",
    "dthms",
    "cps",
    "ops",
    "reqps",
    "rps",
    "wps",
    "iops",
    "cpm",
    "opm",
    "rpm",
    "wpm",
    "dateTimeAsIso",
    "dateTimeFromNow",
];

/// Grafana's custom units: `count:msg/s` is a count with its own symbol, scaled by 1000s.
const GRAFANA_CUSTOM_UNIT_PREFIXES: &[&str] = &["suffix:", "prefix:", "si:", "count:"];

const GRID_WIDTH: u64 = 24;

/// Everything wrong with one dashboard, judged on its own.
pub fn check_dashboard(dashboard: &Value, known: &Known) -> Vec<String> {
    let mut problems = Vec::new();
    identity(dashboard, &mut problems);
    variables(dashboard, known, &mut problems);
    let panels = all_panels(dashboard);
    panel_ids(&panels, &mut problems);
    for panel in &panels {
        let name = format!(
            "panel {:?}",
            panel["title"].as_str().unwrap_or("(untitled)")
        );
        problems.extend(
            check_panel(panel, known)
                .into_iter()
                .map(|p| format!("{name}: {p}")),
        );
    }
    overlaps(dashboard, &mut problems);
    annotations(dashboard, &panels, known, &mut problems);
    problems
}

/// Every problem of a set of dashboard files (name, text): each file's, and those across files.
pub fn check_files(files: &[(String, String)], known: &Known) -> Vec<String> {
    let mut problems = Vec::new();
    let mut uids: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (name, text) in files {
        let dashboard: Value = match serde_json::from_str(text) {
            Ok(value @ Value::Object(_)) => value,
            Ok(_) => {
                problems.push(format!("{name}: is not a JSON object"));
                continue;
            }
            Err(e) => {
                problems.push(format!("{name}: is not valid JSON: {e}"));
                continue;
            }
        };
        if let Some(uid) = dashboard["uid"].as_str() {
            uids.entry(uid.to_owned()).or_default().push(name);
            if *name != format!("{uid}.json") {
                problems.push(format!("{name}: file name is not its uid ({uid}.json)"));
            }
        }
        problems.extend(
            check_dashboard(&dashboard, known)
                .into_iter()
                .map(|p| format!("{name}: {p}")),
        );
    }
    for (uid, names) in &uids {
        if names.len() > 1 {
            problems.push(format!("uid {uid:?} is used by {}", names.join(" and ")));
        }
    }
    for expected in DASHBOARDS {
        if !uids.contains_key(expected.uid) {
            problems.push(format!(
                "no dashboard has the stable uid {:?}",
                expected.uid
            ));
        }
    }
    problems
}

fn identity(dashboard: &Value, problems: &mut Vec<String>) {
    match dashboard["uid"].as_str() {
        None | Some("") => problems.push("has no uid".to_owned()),
        Some(uid) if !DASHBOARDS.iter().any(|d| d.uid == uid) => problems.push(format!(
            "uid {uid:?} is not one of the stable uids (checks/src/dashboards/config.rs)"
        )),
        Some(_) => {}
    }
    if dashboard["title"].as_str().is_none_or(str::is_empty) {
        problems.push("has no title".to_owned());
    }
    if dashboard["schemaVersion"].as_u64().is_none_or(|v| v == 0) {
        problems.push("schemaVersion is not set".to_owned());
    }
    let tagged = dashboard["tags"]
        .as_array()
        .is_some_and(|tags| tags.iter().any(|t| t == TAG));
    if !tagged {
        problems.push(format!(
            "is not tagged {TAG:?} (the dashboards link menu lists by it)"
        ));
    }
}

fn variables(dashboard: &Value, known: &Known, problems: &mut Vec<String>) {
    let list = dashboard["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let named = |name: &str| list.iter().find(|v| v["name"] == name);
    match named("datasource") {
        Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
        _ => problems
            .push("has no `datasource` variable of type datasource for prometheus".to_owned()),
    }
    match named("instance") {
        Some(v) if v["type"] == "query" && v["multi"] == true && v["includeAll"] == true => {}
        _ => problems.push("has no `instance` query variable with multi-value and All".to_owned()),
    }
    for variable in list.iter().filter(|v| v["type"] == "query") {
        let name = format!(
            "variable {:?}",
            variable["name"].as_str().unwrap_or_default()
        );
        if let Some(problem) = datasource_problem(&variable["datasource"]) {
            problems.push(format!("{name}: {problem}"));
        }
        let query = variable["query"]
            .as_str()
            .or_else(|| variable["query"]["query"].as_str())
            .unwrap_or_default();
        let Some(selector) = label_values_selector(query) else {
            problems.push(format!(
                "{name}: query {query:?} is not label_values(selector, label)"
            ));
            continue;
        };
        match selections(selector, &MARKERS) {
            Err(e) => problems.push(format!("{name}: selector {e}")),
            Ok(found) => problems.extend(
                found
                    .metrics
                    .iter()
                    .filter(|m| !known.is_metric(m))
                    .map(|m| format!("{name}: {}", unknown_metric(m))),
            ),
        }
    }
}

/// Panels in layout order, those inside collapsed rows included.
fn all_panels(dashboard: &Value) -> Vec<&Value> {
    let mut panels = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        panels.push(panel);
        panels.extend(panel["panels"].as_array().into_iter().flatten());
    }
    panels
}

fn panel_ids(panels: &[&Value], problems: &mut Vec<String>) {
    let mut seen = BTreeSet::new();
    for panel in panels {
        match panel["id"].as_u64() {
            None => problems.push(format!("panel {:?} has no numeric id", panel["title"])),
            Some(id) if !seen.insert(id) => problems.push(format!("panel id {id} is used twice")),
            Some(_) => {}
        }
    }
}

/// Everything wrong with one panel.
pub fn check_panel(panel: &Value, known: &Known) -> Vec<String> {
    let mut problems = Vec::new();
    let grid = &panel["gridPos"];
    match (
        grid["x"].as_u64(),
        grid["y"].as_u64(),
        grid["w"].as_u64(),
        grid["h"].as_u64(),
    ) {
        (Some(x), Some(_), Some(w), Some(h)) if w > 0 && h > 0 && x + w <= GRID_WIDTH => {}
        _ => problems.push(format!("gridPos {grid} is not inside the 24-column grid")),
    }
    let kind = panel["type"].as_str().unwrap_or_default();
    if kind == "row" {
        return problems;
    }
    match panel["description"].as_str().map(str::trim) {
        None | Some("") => problems.push("has no description".to_owned()),
        Some(text) if text.contains('\n') => {
            problems.push("description is not one line".to_owned())
        }
        Some(_) => {}
    }
    if kind == "text" {
        return problems;
    }
    match panel["fieldConfig"]["defaults"]["unit"].as_str() {
        None | Some("") => problems.push("has no unit (fieldConfig.defaults.unit)".to_owned()),
        Some(unit) if !is_grafana_unit(unit) => {
            problems.push(format!("unit {unit:?} is not a Grafana unit"))
        }
        Some(_) => {}
    }
    if let Some(problem) = datasource_problem(&panel["datasource"]) {
        problems.push(problem);
    }
    let targets = panel["targets"].as_array().cloned().unwrap_or_default();
    if !targets
        .iter()
        .any(|t| t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()))
    {
        problems.push("has no query".to_owned());
    }
    for target in &targets {
        let ref_id = target["refId"].as_str().unwrap_or("?");
        if !target["datasource"].is_null() {
            if let Some(problem) = datasource_problem(&target["datasource"]) {
                problems.push(format!("query {ref_id}: {problem}"));
            }
        }
        if let Some(expr) = target["expr"].as_str().filter(|e| !e.trim().is_empty()) {
            problems.extend(
                query_problems(expr, known)
                    .into_iter()
                    .map(|p| format!("query {ref_id}: {p}")),
            );
        }
    }
    problems
}

/// What is wrong with one PromQL query of a dashboard.
pub fn query_problems(expr: &str, known: &Known) -> Vec<String> {
    let found = match selections(expr, &MARKERS) {
        Ok(found) => found,
        Err(e) => return vec![e],
    };
    let mut problems: Vec<String> = found
        .metrics
        .iter()
        .filter(|m| !known.is_metric(m))
        .map(|m| unknown_metric(m))
        .collect();
    problems.extend(
        found
            .unnamed
            .iter()
            .map(|s| format!("selector {s} names no metric")),
    );
    problems.extend(
        found
            .unfiltered
            .iter()
            .map(|s| format!("selector {s} does not filter on instance=~\"$instance\"")),
    );
    problems.extend(
        found
            .fixed_ranges
            .iter()
            .map(|d| format!("range of {}s is not $__rate_interval", d.as_secs())),
    );
    // An alert filter that matches no alert rule shows nothing, forever.
    for matcher in &found.alertname {
        if !known.alerts().iter().any(|alert| matcher.is_match(alert)) {
            problems.push(format!(
                "alertname{}{:?} matches no alert in alerts/rules",
                matcher.op, matcher.value
            ));
        }
    }
    problems
}

fn unknown_metric(name: &str) -> String {
    format!(
        "unknown metric {name}: not in the exporter's METRICS, not a recording rule in alerts/rules, not a Prometheus series"
    )
}

fn is_grafana_unit(unit: &str) -> bool {
    GRAFANA_UNITS.contains(&unit)
        || GRAFANA_CUSTOM_UNIT_PREFIXES.iter().any(|prefix| {
            unit.strip_prefix(prefix)
                .is_some_and(|rest| !rest.trim().is_empty())
        })
}

/// `None` when `datasource` names the `datasource` variable (or Alertmanager's fixed uid, the
/// one datasource a variable cannot stand for).
fn datasource_problem(datasource: &Value) -> Option<String> {
    let uid = datasource["uid"].as_str();
    match (datasource["type"].as_str(), uid) {
        (_, Some("${datasource}" | "$datasource")) => None,
        (Some("alertmanager"), Some(uid)) if uid == ALERTMANAGER_UID => None,
        (_, None) if datasource.is_null() => {
            Some("has no datasource (Grafana would use its default)".to_owned())
        }
        _ => Some(format!("datasource {datasource} is not ${{datasource}}")),
    }
}

/// Panels whose rectangles share a cell; rows nested in a collapsed row are laid out only when
/// it opens, so only top-level panels are compared.
fn overlaps(dashboard: &Value, problems: &mut Vec<String>) {
    let boxes: Vec<(String, [u64; 4])> = dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|panel| {
            let g = &panel["gridPos"];
            let rect = [
                g["x"].as_u64()?,
                g["y"].as_u64()?,
                g["w"].as_u64()?,
                g["h"].as_u64()?,
            ];
            Some((panel["title"].as_str().unwrap_or_default().to_owned(), rect))
        })
        .collect();
    for (i, (a_title, [ax, ay, aw, ah])) in boxes.iter().enumerate() {
        for (b_title, [bx, by, bw, bh]) in &boxes[i + 1..] {
            if ax < &(bx + bw) && bx < &(ax + aw) && ay < &(by + bh) && by < &(ay + ah) {
                problems.push(format!("panel {b_title:?} overlaps panel {a_title:?}"));
            }
        }
    }
}

fn annotations(dashboard: &Value, panels: &[&Value], known: &Known, problems: &mut Vec<String>) {
    let panel_ids: BTreeSet<u64> = panels.iter().filter_map(|p| p["id"].as_u64()).collect();
    let mut shows_alerts = false;
    for annotation in dashboard["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if annotation["builtIn"] == 1 {
            continue;
        }
        let name = format!(
            "annotation {:?}",
            annotation["name"].as_str().unwrap_or_default()
        );
        if let Some(problem) = datasource_problem(&annotation["datasource"]) {
            problems.push(format!("{name}: {problem}"));
        }
        for id in annotation["filter"]["ids"].as_array().into_iter().flatten() {
            if !id.as_u64().is_some_and(|id| panel_ids.contains(&id)) {
                problems.push(format!(
                    "{name}: is filtered to panel id {id}, which does not exist"
                ));
            }
        }
        if annotation["datasource"]["type"] == "alertmanager" {
            shows_alerts = true;
            continue;
        }
        let Some(expr) = annotation["target"]["expr"].as_str() else {
            problems.push(format!("{name}: has no query (target.expr)"));
            continue;
        };
        problems.extend(
            query_problems(expr, known)
                .into_iter()
                .map(|p| format!("{name}: {p}")),
        );
        let Ok(found) = selections(expr, &MARKERS) else {
            continue;
        };
        if found.metrics.iter().any(|m| m == "ALERTS") {
            shows_alerts = true;
        }
    }
    if !shows_alerts {
        problems.push(
            "no annotation shows firing alerts (ALERTS or the alertmanager datasource)".to_owned(),
        );
    }
}

/// Each rule, shown to fail on a small dashboard that breaks only it.
#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const RULES: &str = r#"
groups:
  - name: g
    rules:
      - record: instance:p2p_event_channel_lag:max_ratio_rate5m
        expr: vector(0)
      - alert: P2PEventLagHigh
        expr: vector(1)
"#;

    fn known() -> Known {
        Known::new(&[("rules.yml".to_owned(), RULES.to_owned())]).unwrap()
    }

    fn variable_datasource() -> Value {
        json!({ "type": "prometheus", "uid": "${datasource}" })
    }

    /// Passes every rule: a row, two time series side by side and a text panel.
    fn good() -> Value {
        json!({
            "uid": "p2p-decision",
            "title": "P2P / Decision overview",
            "schemaVersion": 39,
            "tags": ["p2p"],
            "templating": { "list": [
                { "name": "datasource", "type": "datasource", "query": "prometheus" },
                {
                    "name": "instance", "type": "query", "multi": true, "includeAll": true,
                    "datasource": variable_datasource(),
                    "query": "label_values(p2p_exporter_build_info, instance)",
                },
            ]},
            "annotations": { "list": [{
                "name": "Lag page",
                "datasource": variable_datasource(),
                "target": { "refId": "Anno", "expr": r#"ALERTS{alertname=~"P2PEventLagHigh", instance=~"$instance"}"# },
                "filter": { "exclude": false, "ids": [2] },
            }]},
            "panels": [
                { "id": 1, "type": "row", "title": "Row", "gridPos": { "x": 0, "y": 0, "w": 24, "h": 1 }, "panels": [] },
                {
                    "id": 2, "type": "timeseries", "title": "Lag", "description": "Worst lag ratio.",
                    "gridPos": { "x": 0, "y": 1, "w": 12, "h": 8 },
                    "datasource": variable_datasource(),
                    "fieldConfig": { "defaults": { "unit": "percentunit" } },
                    "targets": [{
                        "refId": "A", "datasource": variable_datasource(),
                        "expr": r#"instance:p2p_event_channel_lag:max_ratio_rate5m{instance=~"$instance"}"#,
                    }],
                },
                {
                    "id": 3, "type": "timeseries", "title": "Messages", "description": "Messages per second.",
                    "gridPos": { "x": 12, "y": 1, "w": 12, "h": 8 },
                    "datasource": variable_datasource(),
                    "fieldConfig": { "defaults": { "unit": "count:msg/s" } },
                    "targets": [{
                        "refId": "A",
                        "expr": r#"sum by (type) (rate(p2p_messages_total{instance=~"$instance"}[$__rate_interval]))"#,
                    }],
                },
                {
                    "id": 4, "type": "text", "title": "Notes", "description": "Links.",
                    "gridPos": { "x": 0, "y": 9, "w": 24, "h": 3 },
                    "options": { "mode": "markdown", "content": "[Runbook](https://example.invalid)" },
                },
            ],
        })
    }

    /// The problems of `good()` after `change`.
    fn problems_after(change: impl FnOnce(&mut Value)) -> Vec<String> {
        let mut dashboard = good();
        change(&mut dashboard);
        check_dashboard(&dashboard, &known())
    }

    fn lag_query(dashboard: &mut Value) -> &mut Value {
        &mut dashboard["panels"][1]["targets"][0]["expr"]
    }

    #[test]
    fn a_dashboard_that_follows_every_rule_has_no_problem() {
        assert_eq!(check_dashboard(&good(), &known()), Vec::<String>::new());
    }

    #[test]
    fn overlapping_panels_are_refused() {
        let problems = problems_after(|d| d["panels"][2]["gridPos"]["x"] = json!(6));
        assert_eq!(problems, [r#"panel "Messages" overlaps panel "Lag""#]);
    }

    #[test]
    fn a_panel_outside_the_grid_is_refused() {
        let problems = problems_after(|d| d["panels"][2]["gridPos"]["w"] = json!(13));
        assert_eq!(
            problems,
            [
                r#"panel "Messages": gridPos {"h":8,"w":13,"x":12,"y":1} is not inside the 24-column grid"#,
            ]
        );
    }

    #[test]
    fn a_panel_without_unit_is_refused() {
        let problems = problems_after(|d| {
            d["panels"][1]["fieldConfig"]["defaults"]
                .as_object_mut()
                .unwrap()
                .remove("unit");
        });
        assert_eq!(
            problems,
            [r#"panel "Lag": has no unit (fieldConfig.defaults.unit)"#]
        );
    }

    #[test]
    fn a_unit_grafana_does_not_know_is_refused() {
        let problems = problems_after(|d| {
            d["panels"][1]["fieldConfig"]["defaults"]["unit"] = json!("percent_unit")
        });
        assert_eq!(
            problems,
            [r#"panel "Lag": unit "percent_unit" is not a Grafana unit"#]
        );
    }

    #[test]
    fn a_panel_without_description_or_with_several_lines_is_refused() {
        let missing = problems_after(|d| d["panels"][1]["description"] = json!(" "));
        assert_eq!(missing, [r#"panel "Lag": has no description"#]);
        let long = problems_after(|d| d["panels"][3]["description"] = json!("One.\nTwo."));
        assert_eq!(long, [r#"panel "Notes": description is not one line"#]);
    }

    #[test]
    fn a_panel_without_query_is_refused() {
        let problems =
            problems_after(|d| d["panels"][1]["targets"] = json!([{ "refId": "A", "expr": "" }]));
        assert_eq!(problems, [r#"panel "Lag": has no query"#]);
    }

    #[test]
    fn an_unknown_metric_is_refused() {
        let problems =
            problems_after(|d| *lag_query(d) = json!(r#"p2p_lag_ratio{instance=~"$instance"}"#));
        assert_eq!(
            problems,
            [
                r#"panel "Lag": query A: unknown metric p2p_lag_ratio: not in the exporter's METRICS, not a recording rule in alerts/rules, not a Prometheus series"#,
            ]
        );
    }

    #[test]
    fn a_histogram_queried_by_its_bare_name_is_an_unknown_metric() {
        let problems = problems_after(|d| {
            *lag_query(d) = json!(r#"p2p_block_propagation_seconds{instance=~"$instance"}"#)
        });
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].contains("unknown metric p2p_block_propagation_seconds:"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_query_that_does_not_parse_is_refused() {
        let problems = problems_after(|d| *lag_query(d) = json!("rate(p2p_peers{"));
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with(r#"panel "Lag": query A: does not parse as PromQL"#),
            "{problems:?}"
        );
    }

    #[test]
    fn a_query_with_an_undefined_variable_is_refused() {
        let problems = problems_after(|d| *lag_query(d) = json!(r#"p2p_peers{instance=~"$node"}"#));
        assert_eq!(
            problems,
            [r#"panel "Lag": query A: uses the undefined variable $node"#]
        );
    }

    #[test]
    fn a_selector_without_the_instance_variable_is_refused() {
        let problems = problems_after(|d| *lag_query(d) = json!(r#"p2p_peers{instance=~".*"}"#));
        assert_eq!(
            problems,
            [
                r#"panel "Lag": query A: selector p2p_peers{instance=~".*"} does not filter on instance=~"$instance""#
            ]
        );
    }

    #[test]
    fn a_rate_over_a_fixed_window_is_refused() {
        let problems = problems_after(|d| {
            *lag_query(d) = json!(r#"rate(p2p_messages_total{instance=~"$instance"}[5m])"#)
        });
        assert_eq!(
            problems,
            [r#"panel "Lag": query A: range of 300s is not $__rate_interval"#]
        );
    }

    #[test]
    fn a_hard_coded_datasource_is_refused_on_panels_and_queries() {
        let problems = problems_after(|d| {
            d["panels"][1]["datasource"] = json!({ "type": "prometheus", "uid": "prometheus" });
            d["panels"][1]["targets"][0]["datasource"] = json!("Prometheus");
        });
        assert_eq!(
            problems,
            [
                r#"panel "Lag": datasource {"type":"prometheus","uid":"prometheus"} is not ${datasource}"#,
                r#"panel "Lag": query A: datasource "Prometheus" is not ${datasource}"#,
            ]
        );
    }

    #[test]
    fn the_alertmanager_datasource_is_the_one_fixed_uid_allowed() {
        let problems = problems_after(|d| {
            d["annotations"]["list"][0] = json!({
                "name": "Alertmanager",
                "datasource": { "type": "alertmanager", "uid": "alertmanager" },
            });
        });
        assert_eq!(problems, Vec::<String>::new());
    }

    #[test]
    fn a_panel_without_datasource_is_refused() {
        let problems = problems_after(|d| {
            d["panels"][2].as_object_mut().unwrap().remove("datasource");
        });
        assert_eq!(
            problems,
            [r#"panel "Messages": has no datasource (Grafana would use its default)"#]
        );
    }

    #[test]
    fn identity_rules_need_a_stable_uid_a_schema_version_and_the_tag() {
        let problems = problems_after(|d| {
            d["uid"] = json!("a1b2c3");
            d.as_object_mut().unwrap().remove("schemaVersion");
            d["tags"] = json!([]);
        });
        assert_eq!(
            problems,
            [
                r#"uid "a1b2c3" is not one of the stable uids (checks/src/dashboards/config.rs)"#,
                "schemaVersion is not set",
                r#"is not tagged "p2p" (the dashboards link menu lists by it)"#,
            ]
        );
    }

    #[test]
    fn the_datasource_and_instance_variables_are_required() {
        let problems = problems_after(|d| {
            d["templating"]["list"][0]["type"] = json!("custom");
            d["templating"]["list"][1]["multi"] = json!(false);
        });
        assert_eq!(
            problems,
            [
                "has no `datasource` variable of type datasource for prometheus",
                "has no `instance` query variable with multi-value and All",
            ]
        );
    }

    #[test]
    fn a_variable_query_on_an_unknown_metric_is_refused() {
        let problems = problems_after(|d| {
            d["templating"]["list"][1]["query"] = json!("label_values(node_uname_info, instance)")
        });
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with(r#"variable "instance": unknown metric node_uname_info:"#),
            "{problems:?}"
        );
    }

    #[test]
    fn repeated_panel_ids_are_refused() {
        let problems = problems_after(|d| d["panels"][2]["id"] = json!(2));
        assert_eq!(problems, ["panel id 2 is used twice"]);
    }

    #[test]
    fn alerts_must_show_as_annotations_on_panels_that_exist() {
        let none = problems_after(|d| d["annotations"]["list"] = json!([]));
        assert_eq!(
            none,
            ["no annotation shows firing alerts (ALERTS or the alertmanager datasource)"]
        );
        let dangling =
            problems_after(|d| d["annotations"]["list"][0]["filter"]["ids"] = json!([9]));
        assert_eq!(
            dangling,
            [r#"annotation "Lag page": is filtered to panel id 9, which does not exist"#]
        );
    }

    #[test]
    fn an_alert_filter_that_matches_no_alert_rule_is_refused() {
        let problems = problems_after(|d| {
            d["annotations"]["list"][0]["target"]["expr"] =
                json!(r#"ALERTS{alertname=~"P2PLagHigh", instance=~"$instance"}"#)
        });
        assert_eq!(
            problems,
            [r#"annotation "Lag page": alertname=~"P2PLagHigh" matches no alert in alerts/rules"#]
        );
    }

    #[test]
    fn files_must_be_json_objects_named_by_unique_stable_uids() {
        let good = good().to_string();
        let files = [
            ("p2p-decision.json".to_owned(), good.clone()),
            ("copy.json".to_owned(), good),
            ("broken.json".to_owned(), "{ \"uid\": ".to_owned()),
            ("list.json".to_owned(), "[]".to_owned()),
        ];
        let problems = check_files(&files, &known());
        assert_eq!(
            problems,
            [
                "copy.json: file name is not its uid (p2p-decision.json)",
                "broken.json: is not valid JSON: EOF while parsing a value at line 1 column 9",
                "list.json: is not a JSON object",
                r#"uid "p2p-decision" is used by p2p-decision.json and copy.json"#,
                r#"no dashboard has the stable uid "p2p-channel""#,
                r#"no dashboard has the stable uid "p2p-messages""#,
                r#"no dashboard has the stable uid "p2p-chain""#,
                r#"no dashboard has the stable uid "p2p-peers""#,
            ]
        );
    }
}
