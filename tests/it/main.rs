//! Integration tests, in one binary so they share one build and the helpers in `support`.

mod alerting;
mod binary;
mod contract;
mod core;
mod dashboards;
mod http;
mod push;
mod replay;
mod security;
mod simulate;
mod stack;
mod support;
mod tap;
mod traces;
mod verdicts;
