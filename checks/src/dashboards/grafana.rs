//! Small builders for Grafana's dashboard JSON model: a panel knows its kind, words, unit,
//! queries and threshold lines; a dashboard lays its rows out on the 24-column grid, numbers the
//! panels and turns alert groups into annotations filtered to the panels they concern.

use serde_json::{json, Value};

use super::config::{AlertGroup, DashboardId, DATASOURCE_VARIABLE, SCHEMA_VERSION, TAG};

const GRID_WIDTH: u64 = 24;

fn datasource() -> Value {
    json!({ "type": "prometheus", "uid": DATASOURCE_VARIABLE })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    TimeSeries,
    Table,
    Heatmap,
}

#[derive(Clone, Debug)]
struct Target {
    expr: String,
    legend: String,
    instant: bool,
    format: Format,
}

/// One panel. Its size is given; its place on the grid is decided by [`Dashboard`].
#[derive(Clone, Debug)]
pub struct Panel {
    kind: &'static str,
    title: String,
    description: String,
    unit: &'static str,
    width: u64,
    height: u64,
    targets: Vec<Target>,
    /// (value, colour) steps above the base colour; drawn as dashed lines on time series.
    thresholds: Vec<(f64, &'static str)>,
    base_color: &'static str,
    mappings: Vec<(i64, &'static str, &'static str)>,
    min: Option<f64>,
    max: Option<f64>,
    links: Vec<(String, String)>,
    alerts: Vec<AlertGroup>,
    markdown: String,
}

impl Panel {
    fn new(kind: &'static str, title: &str, description: &str, unit: &'static str) -> Panel {
        Panel {
            kind,
            title: title.to_owned(),
            description: description.to_owned(),
            unit,
            width: 12,
            height: 8,
            targets: Vec::new(),
            thresholds: Vec::new(),
            base_color: "green",
            mappings: Vec::new(),
            min: None,
            max: None,
            links: Vec::new(),
            alerts: Vec::new(),
            markdown: String::new(),
        }
    }

    pub fn timeseries(title: &str, description: &str, unit: &'static str) -> Panel {
        Panel::new("timeseries", title, description, unit)
    }

    pub fn stat(title: &str, description: &str, unit: &'static str) -> Panel {
        Panel::new("stat", title, description, unit)
    }

    pub fn state_timeline(title: &str, description: &str, unit: &'static str) -> Panel {
        Panel::new("state-timeline", title, description, unit)
    }

    pub fn bargauge(title: &str, description: &str, unit: &'static str) -> Panel {
        Panel::new("bargauge", title, description, unit)
    }

    pub fn table(title: &str, description: &str, unit: &'static str) -> Panel {
        Panel::new("table", title, description, unit)
    }

    pub fn heatmap(title: &str, description: &str, unit: &'static str) -> Panel {
        Panel::new("heatmap", title, description, unit)
    }

    /// Markdown; has neither unit nor query (the check exempts text panels from both).
    pub fn text(title: &str, description: &str, markdown: &str) -> Panel {
        let mut panel = Panel::new("text", title, description, "");
        panel.markdown = markdown.to_owned();
        panel
    }

    pub fn size(mut self, width: u64, height: u64) -> Panel {
        self.width = width;
        self.height = height;
        self
    }

    /// A range query, as time series and stat panels draw.
    pub fn query(mut self, expr: impl Into<String>, legend: &str) -> Panel {
        self.targets.push(Target {
            expr: expr.into(),
            legend: legend.to_owned(),
            instant: false,
            format: Format::TimeSeries,
        });
        self
    }

    /// An instant query (bar gauges: only the latest value matters).
    pub fn instant(mut self, expr: impl Into<String>, legend: &str) -> Panel {
        self.targets.push(Target {
            expr: expr.into(),
            legend: legend.to_owned(),
            instant: true,
            format: Format::TimeSeries,
        });
        self
    }

    /// An instant query shown as table rows, one per series, with its labels as columns.
    pub fn table_query(mut self, expr: impl Into<String>) -> Panel {
        self.targets.push(Target {
            expr: expr.into(),
            legend: String::new(),
            instant: true,
            format: Format::Table,
        });
        self
    }

    /// Histogram buckets summed by `le`, for the heatmap panel.
    pub fn heatmap_query(mut self, expr: impl Into<String>) -> Panel {
        self.targets.push(Target {
            expr: expr.into(),
            legend: "{{le}}".to_owned(),
            instant: false,
            format: Format::Heatmap,
        });
        self
    }

    /// A red line at `value`: above it is the bad side.
    pub fn threshold(self, value: f64) -> Panel {
        self.thresholds(&[(value, "red")])
    }

    pub fn thresholds(mut self, steps: &[(f64, &'static str)]) -> Panel {
        self.thresholds.extend_from_slice(steps);
        self
    }

    /// Colour below the first threshold (green when low is good, red when low is bad).
    pub fn base_color(mut self, color: &'static str) -> Panel {
        self.base_color = color;
        self
    }

    /// Value mappings: a number shown as a word in a colour.
    pub fn mappings(mut self, mappings: &[(i64, &'static str, &'static str)]) -> Panel {
        self.mappings.extend_from_slice(mappings);
        self
    }

    pub fn min(mut self, min: f64) -> Panel {
        self.min = Some(min);
        self
    }

    pub fn max(mut self, max: f64) -> Panel {
        self.max = Some(max);
        self
    }

    pub fn link(mut self, title: &str, url: impl Into<String>) -> Panel {
        self.links.push((title.to_owned(), url.into()));
        self
    }

    pub fn link_to(self, dashboard: DashboardId) -> Panel {
        self.link(dashboard.title, dashboard.url())
    }

    /// Draws the alerts of `group` as annotations on this panel.
    pub fn alerts(mut self, group: AlertGroup) -> Panel {
        self.alerts.push(group);
        self
    }

    fn field_config(&self) -> Value {
        let mut steps = vec![json!({ "color": self.base_color, "value": null })];
        steps.extend(
            self.thresholds
                .iter()
                .map(|(value, color)| json!({ "color": color, "value": value })),
        );
        let mut defaults = json!({
            "unit": self.unit,
            "thresholds": { "mode": "absolute", "steps": steps },
            "mappings": [],
        });
        if let Some(min) = self.min {
            defaults["min"] = json!(min);
        }
        if let Some(max) = self.max {
            defaults["max"] = json!(max);
        }
        if !self.mappings.is_empty() {
            let options: serde_json::Map<String, Value> = self
                .mappings
                .iter()
                .enumerate()
                .map(|(index, (value, text, color))| {
                    (
                        value.to_string(),
                        json!({ "text": text, "color": color, "index": index }),
                    )
                })
                .collect();
            defaults["mappings"] = json!([{ "type": "value", "options": options }]);
        }
        match self.kind {
            "timeseries" => {
                defaults["color"] = json!({ "mode": "palette-classic" });
                let style = if self.thresholds.is_empty() {
                    "off"
                } else {
                    "dashed"
                };
                defaults["custom"] = json!({
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": 10,
                    "showPoints": "never",
                    "spanNulls": false,
                    "thresholdsStyle": { "mode": style },
                });
            }
            "state-timeline" => {
                defaults["color"] = json!({ "mode": "thresholds" });
                defaults["custom"] = json!({ "fillOpacity": 80, "lineWidth": 0 });
            }
            "heatmap" => {
                defaults["custom"] = json!({ "scaleDistribution": { "type": "linear" } });
            }
            _ => defaults["color"] = json!({ "mode": "thresholds" }),
        }
        json!({ "defaults": defaults, "overrides": [] })
    }

    fn options(&self) -> Value {
        let last_value = json!({ "calcs": ["lastNotNull"], "fields": "", "values": false });
        match self.kind {
            "timeseries" => json!({
                "legend": { "displayMode": "list", "placement": "bottom", "showLegend": true },
                "tooltip": { "mode": "multi", "sort": "desc" },
            }),
            "stat" => json!({
                "reduceOptions": last_value,
                "colorMode": "background",
                "graphMode": "none",
                "justifyMode": "auto",
                "orientation": "auto",
                "textMode": "value_and_name",
            }),
            "state-timeline" => json!({
                "mergeValues": true,
                "showValue": "auto",
                "alignValue": "left",
                "rowHeight": 0.9,
                "legend": { "displayMode": "list", "placement": "bottom", "showLegend": true },
                "tooltip": { "mode": "single", "sort": "none" },
            }),
            "bargauge" => json!({
                "reduceOptions": last_value,
                "orientation": "horizontal",
                "displayMode": "basic",
                "showUnfilled": true,
            }),
            "table" => json!({ "showHeader": true, "cellHeight": "sm" }),
            "heatmap" => json!({
                "calculate": false,
                "yAxis": { "unit": self.unit, "axisPlacement": "left" },
                "color": { "mode": "scheme", "scheme": "Oranges", "steps": 64, "exponent": 0.5, "fill": "dark-orange" },
                "cellGap": 1,
                "rowsFrame": { "layout": "auto" },
                "tooltip": { "mode": "single", "yHistogram": false },
                "legend": { "show": true },
            }),
            "text" => json!({ "mode": "markdown", "content": self.markdown }),
            other => unreachable!("no options for panel kind {other}"),
        }
    }

    fn to_json(&self, id: u64, x: u64, y: u64) -> Value {
        let mut panel = json!({
            "id": id,
            "type": self.kind,
            "title": self.title,
            "description": self.description,
            "gridPos": { "h": self.height, "w": self.width, "x": x, "y": y },
            "options": self.options(),
        });
        if self.kind == "text" {
            return panel;
        }
        panel["datasource"] = datasource();
        panel["fieldConfig"] = self.field_config();
        panel["targets"] = self
            .targets
            .iter()
            .enumerate()
            .map(|(index, target)| {
                json!({
                    "refId": ((b'A' + index as u8) as char).to_string(),
                    "datasource": datasource(),
                    "editorMode": "code",
                    "expr": target.expr,
                    "legendFormat": target.legend,
                    "range": !target.instant,
                    "instant": target.instant,
                    "format": match target.format {
                        Format::TimeSeries => "time_series",
                        Format::Table => "table",
                        Format::Heatmap => "heatmap",
                    },
                })
            })
            .collect();
        if self.kind == "table" {
            // Label columns only: the timestamp and the constant value say nothing.
            panel["transformations"] = json!([{
                "id": "organize",
                "options": { "excludeByName": { "Time": true, "Value": true, "__name__": true } },
            }]);
        }
        if !self.links.is_empty() {
            panel["links"] = self
                .links
                .iter()
                .map(|(title, url)| link_json(title, url, "external link", false))
                .collect();
        }
        panel
    }
}

pub struct Row {
    title: String,
    panels: Vec<Panel>,
}

pub fn row(title: &str, panels: Vec<Panel>) -> Row {
    Row {
        title: title.to_owned(),
        panels,
    }
}

pub struct Dashboard {
    pub id: DashboardId,
    pub description: String,
    pub rows: Vec<Row>,
    /// Label selector of the `instance` variable's query (`job="..."`).
    pub job_selector: String,
    /// Dashboard-level links besides the "P2P dashboards" menu.
    pub links: Vec<(String, String)>,
}

impl Dashboard {
    pub fn to_json(&self) -> Value {
        let mut panels = Vec::new();
        let mut annotated: Vec<(AlertGroup, Vec<u64>)> = Vec::new();
        let mut next_id = 1;
        let mut y = 0;
        for row in &self.rows {
            panels.push(json!({
                "id": next_id,
                "type": "row",
                "title": row.title,
                "collapsed": false,
                "panels": [],
                "gridPos": { "h": 1, "w": GRID_WIDTH, "x": 0, "y": y },
            }));
            next_id += 1;
            y += 1;
            // Left to right, wrapping to a new line when the next panel does not fit.
            let (mut x, mut line_height) = (0, 0);
            for panel in &row.panels {
                if x + panel.width > GRID_WIDTH {
                    y += line_height;
                    (x, line_height) = (0, 0);
                }
                panels.push(panel.to_json(next_id, x, y));
                for group in &panel.alerts {
                    match annotated.iter_mut().find(|(g, _)| g == group) {
                        Some((_, ids)) => ids.push(next_id),
                        None => annotated.push((*group, vec![next_id])),
                    }
                }
                next_id += 1;
                x += panel.width;
                line_height = line_height.max(panel.height);
            }
            y += line_height;
        }

        let annotations: Vec<Value> = annotated
            .iter()
            .map(|(group, ids)| {
                json!({
                    "name": group.name,
                    "enable": true,
                    "hide": false,
                    "iconColor": group.color,
                    "datasource": datasource(),
                    // The query in `target`, as Grafana's schema types it (a top-level `expr` is
                    // the legacy form Grafana migrates); the event's title, text and tags stay at
                    // the top, where the Prometheus datasource reads them.
                    "target": {
                        "refId": "Anno",
                        "expr": format!(
                            r#"ALERTS{{alertstate="firing", alertname=~"{}", instance=~"$instance"}}"#,
                            group.alertnames
                        ),
                    },
                    "titleFormat": "{{alertname}}",
                    "textFormat": "{{instance}} ({{severity}})",
                    "tagKeys": "alertname,severity",
                    "useValueForTime": false,
                    "filter": { "exclude": false, "ids": ids },
                })
            })
            .collect();

        let mut links = vec![json!({
            "title": "P2P dashboards",
            "type": "dashboards",
            "tags": [TAG],
            "asDropdown": true,
            "includeVars": true,
            "keepTime": true,
            "targetBlank": false,
            "icon": "external link",
            "tooltip": "",
            "url": "",
        })];
        links.extend(
            self.links
                .iter()
                .map(|(title, url)| link_json(title, url, "doc", true)),
        );

        let instance_query = format!(
            "label_values(p2p_exporter_build_info{{{}}}, instance)",
            self.job_selector
        );
        json!({
            "id": null,
            "uid": self.id.uid,
            "title": self.id.title,
            "description": self.description,
            "tags": [TAG],
            "editable": true,
            "graphTooltip": 1,
            "timezone": "browser",
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "refresh": "30s",
            "time": { "from": "now-6h", "to": "now" },
            "timepicker": {},
            "templating": { "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "regex": "",
                    "hide": 0,
                    "refresh": 1,
                    "includeAll": false,
                    "multi": false,
                    "options": [],
                },
                {
                    "name": "instance",
                    "label": "Node",
                    "type": "query",
                    "datasource": datasource(),
                    "query": instance_query,
                    "current": { "selected": true, "text": ["All"], "value": ["$__all"] },
                    "hide": 0,
                    "refresh": 2,
                    "includeAll": true,
                    "allValue": ".*",
                    "multi": true,
                    "sort": 1,
                    "regex": "",
                    "options": [],
                },
            ]},
            "annotations": { "list": annotations },
            "links": links,
            "panels": panels,
        })
    }
}

/// A link of type `link` with every field Grafana's schema gives a link (`DashboardLink`), which is
/// also the type it gives a panel's links; Grafana reads a panel link's title, url and targetBlank.
fn link_json(title: &str, url: &str, icon: &str, new_tab: bool) -> Value {
    json!({
        "title": title,
        "type": "link",
        "url": url,
        "tags": [],
        "asDropdown": false,
        "includeVars": false,
        "keepTime": false,
        "targetBlank": new_tab,
        "icon": icon,
        "tooltip": "",
    })
}
