//! Every value the five dashboards share, in one commented place: uids, titles, datasource uids,
//! the alert groups drawn as annotations.
//!
//! Thresholds, the job selector and the runbook address are not repeated here: they are read from
//! `alerts/thresholds.toml`, the one file the alert rules are generated from. Change a number there, run
//! `cargo run -q -p p2p-checks -- dashboards --write`, and the dashboards draw the new line;
//! `p2p-check dashboards` fails until they do.

/// Grafana's dashboard JSON model version the dashboards are written for (Grafana 10.3 to 11.x).
pub const SCHEMA_VERSION: u64 = 39;

/// Every dashboard carries this tag; the "P2P dashboards" link menu lists dashboards by it.
pub const TAG: &str = "p2p";

/// Datasource uids fixed by `dashboards/provisioning/datasources/datasources.yml`.
pub const PROMETHEUS_UID: &str = "prometheus";
pub const ALERTMANAGER_UID: &str = "alertmanager";
pub const TEMPO_UID: &str = "tempo";
/// Where the compose stack's services answer, as Grafana's provisioning names them.
pub const PROMETHEUS_URL: &str = "http://prometheus:9090";
pub const ALERTMANAGER_URL: &str = "http://alertmanager:9093";
pub const TEMPO_URL: &str = "http://tempo:3200";

/// What every panel, target, variable and annotation names as its datasource: the `datasource`
/// template variable, so one dashboard works against any Prometheus (habit 15, no `__inputs`).
pub const DATASOURCE_VARIABLE: &str = "${datasource}";

/// Where the compose stack mounts `dashboards/` and where the provider reads the JSON from.
pub const GRAFANA_MOUNT: &str = "/etc/grafana/p2p";
pub const DASHBOARD_FOLDER: &str = "P2P";

/// A dashboard's stable identity: bookmarks, links and provisioning depend on the uid, so it never
/// changes once published; the file name under `dashboards/json/` follows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DashboardId {
    pub uid: &'static str,
    pub title: &'static str,
}

impl DashboardId {
    pub fn file_name(&self) -> String {
        format!("{}.json", self.uid)
    }

    /// Grafana's URL of the dashboard, keeping the time range and the node selection.
    pub fn url(&self) -> String {
        format!(
            "/d/{}?${{__url_time_range}}&${{instance:queryparam}}",
            self.uid
        )
    }
}

pub const DECISION: DashboardId = DashboardId {
    uid: "p2p-decision",
    title: "P2P / Decision overview",
};
pub const CHANNEL: DashboardId = DashboardId {
    uid: "p2p-channel",
    title: "P2P / Event channel health",
};
pub const MESSAGES: DashboardId = DashboardId {
    uid: "p2p-messages",
    title: "P2P / Messages and inventory",
};
pub const CHAIN: DashboardId = DashboardId {
    uid: "p2p-chain",
    title: "P2P / Propagation and chain",
};
pub const PEERS: DashboardId = DashboardId {
    uid: "p2p-peers",
    title: "P2P / Peers and resources",
};

/// The stable set: a dashboard file whose uid is not here fails the check.
pub const DASHBOARDS: [DashboardId; 5] = [DECISION, CHANNEL, MESSAGES, CHAIN, PEERS];

/// A family of alerts drawn as an annotation on the panels it concerns (by panel id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlertGroup {
    pub name: &'static str,
    /// Regex on `alertname`; the check fails if it matches no alert in `alerts/rules/*.yml`.
    pub alertnames: &'static str,
    pub color: &'static str,
}

pub const LAG_ALERTS: AlertGroup = AlertGroup {
    name: "Lag page",
    alertnames: "P2PEventLagHigh",
    color: "red",
};
pub const DECISION_ALERTS: AlertGroup = AlertGroup {
    name: "Decision tickets",
    alertnames: "P2PDecision.*",
    color: "orange",
};
pub const CHANNEL_ALERTS: AlertGroup = AlertGroup {
    name: "Channel alerts",
    alertnames: "P2PEventChannel.*",
    color: "orange",
};
pub const PROPAGATION_ALERTS: AlertGroup = AlertGroup {
    name: "Propagation alerts",
    alertnames: "P2PBlockPropagation.*",
    color: "orange",
};
pub const CHAIN_ALERTS: AlertGroup = AlertGroup {
    name: "Chain alerts",
    alertnames: "P2P(Reorg|Orphan).*",
    color: "orange",
};
pub const PEER_ALERTS: AlertGroup = AlertGroup {
    name: "Peer alerts",
    alertnames: "P2PPeer.*",
    color: "orange",
};
pub const RESOURCE_ALERTS: AlertGroup = AlertGroup {
    name: "Resource alerts",
    alertnames: "P2P(Memory|CPU)PerPeerHigh",
    color: "orange",
};
pub const EXPORTER_ALERTS: AlertGroup = AlertGroup {
    name: "Exporter alerts",
    alertnames: "P2PExporter.*",
    color: "purple",
};

/// Every P2P alert: the Decision overview's table of firing alerts.
pub const ALL_ALERTS: &str = "P2P.*";

/// Seed, "Performance Characteristics": delivery under 10 ms under normal load. Drawn on the
/// delivery latency panel only; nothing alerts on it, so it is not in alerts/thresholds.toml.
pub const DELIVERY_LATENCY_SECONDS: f64 = 0.010;

/// The numbers the dashboards draw and the job selector their queries carry.
pub use crate::thresholds::Thresholds;
