//! The exporter image's build (Dockerfile, .dockerignore), checked offline by reading the files:
//! there is no Docker engine on these machines to build it. Multi-stage, non-root, pinned, its
//! Rust version, its HEALTHCHECK (run against a live exporter), and a build context that holds
//! every file the build reads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use p2p_exporter::http::DEFAULT_PORT;

use super::{assert_none, dockerfile, image_problem, parse_dockerfile, Dockerfile};
use crate::support::{free_port, repo_root, require_tool, Exporter};

fn dockerfile_problems(file: &Dockerfile) -> Vec<String> {
    let mut problems = Vec::new();
    let stages: BTreeSet<&str> = file.from.iter().filter_map(|(_, s)| s.as_deref()).collect();
    if file.from.len() < 2 {
        problems.push("not multi-stage: the toolchain would ship in the runtime image".to_owned());
    }
    for (image, _) in &file.from {
        if !stages.contains(image.as_str()) {
            problems.extend(image_problem(image));
        }
    }
    match file.user.as_deref() {
        None => problems.push("the runtime stage runs as root (no USER)".to_owned()),
        Some(user) if matches!(user.split(':').next(), Some("root" | "0")) => {
            problems.push(format!("the runtime stage runs as root (USER {user})"))
        }
        Some(_) => {}
    }
    if file.healthcheck.is_none() {
        problems.push("the runtime stage has no HEALTHCHECK CMD [...]".to_owned());
    }
    if !file.expose.contains(&DEFAULT_PORT) {
        problems.push(format!("the runtime stage does not EXPOSE {DEFAULT_PORT}"));
    }
    let listen = format!("0.0.0.0:{DEFAULT_PORT}");
    if file.env.get("P2P_EXPORTER_LISTEN") != Some(&listen) {
        problems.push(format!(
            "P2P_EXPORTER_LISTEN must be {listen} in the image (containers are reached over their network)"
        ));
    }
    problems
}

/// `major.minor` of a version string (`1.85.1` -> (1, 85)).
fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The image's Rust must be the workspace's declared rust-version, and must build every locked
/// dependency of the exporter (`deps`: name, version, rust-version).
fn toolchain_problems(
    builder: &str,
    workspace: &str,
    deps: &[(String, String, String)],
) -> Vec<String> {
    let mut problems = Vec::new();
    let (Some(builder_mm), Some(workspace_mm)) = (major_minor(builder), major_minor(workspace))
    else {
        return vec![format!(
            "cannot read Rust versions {builder:?} and {workspace:?}"
        )];
    };
    if builder_mm != workspace_mm {
        problems.push(format!(
            "the Dockerfile builds with Rust {builder} but the workspace declares rust-version {workspace}: keep them in step"
        ));
    }
    for (name, version, needs) in deps {
        if major_minor(needs).is_some_and(|needs| needs > builder_mm) {
            problems.push(format!(
                "{name} {version} needs Rust {needs}, newer than the image's {builder}: raise RUST_VERSION and rust-version together"
            ));
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// The Docker build context: .dockerignore must leave in everything `cargo build` reads.

/// `*` and `?` within one path component.
fn component_matches(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            component_matches(&pattern[1..], name)
                || (!name.is_empty() && component_matches(pattern, &name[1..]))
        }
        (Some(b'?'), Some(_)) => component_matches(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => component_matches(&pattern[1..], &name[1..]),
        _ => false,
    }
}

/// Components, with `**` matching any number of them.
fn path_matches(pattern: &[&str], path: &[&str]) -> bool {
    match (pattern.first(), path.first()) {
        (None, None) => true,
        (Some(&"**"), _) => {
            path_matches(&pattern[1..], path)
                || (!path.is_empty() && path_matches(pattern, &path[1..]))
        }
        (Some(p), Some(c)) => {
            component_matches(p.as_bytes(), c.as_bytes()) && path_matches(&pattern[1..], &path[1..])
        }
        _ => false,
    }
}

/// Whether Docker leaves `path` (relative to the context) out: a pattern matching the path or one
/// of its directories excludes it; the last matching pattern wins (`!` re-includes).
fn dockerignored(dockerignore: &str, path: &str) -> bool {
    let components: Vec<&str> = path.split('/').collect();
    let mut ignored = false;
    for line in dockerignore.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (include, pattern) = match line.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let pattern: Vec<&str> = pattern
            .trim_matches('/')
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        if (1..=components.len()).any(|n| path_matches(&pattern, &components[..n])) {
            ignored = !include;
        }
    }
    ignored
}

/// Repository-relative paths that `include_str!` / `include_bytes!` in `source` (at `file`, a
/// repository-relative path) read.
fn included_files(file: &str, source: &str) -> Vec<String> {
    let mut found = Vec::new();
    for macro_name in ["include_str!(\"", "include_bytes!(\""] {
        for (at, _) in source.match_indices(macro_name) {
            let rest = &source[at + macro_name.len()..];
            let Some(end) = rest.find('"') else { continue };
            let mut parts: Vec<&str> = file.split('/').collect();
            parts.pop();
            for component in rest[..end].split('/') {
                match component {
                    ".." => {
                        parts.pop();
                    }
                    "." | "" => {}
                    other => parts.push(other),
                }
            }
            found.push(parts.join("/"));
        }
    }
    found
}

fn build_context_problems(dockerignore: &str, needed: &[String]) -> Vec<String> {
    needed
        .iter()
        .filter(|path| dockerignored(dockerignore, path))
        .map(|path| format!("{path} is needed by the image build but .dockerignore leaves it out"))
        .collect()
}

fn cargo_metadata() -> serde_json::Value {
    let output = Command::new(env!("CARGO"))
        .current_dir(repo_root())
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", "x86_64-unknown-linux-gnu"])
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Every file of every workspace member (manifests, sources, tests, benches) and every file their
/// sources include, relative to the repository root.
fn build_inputs(root: &Path) -> Vec<String> {
    let metadata = cargo_metadata();
    let mut inputs = vec!["Cargo.toml".to_owned(), "Cargo.lock".to_owned()];
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    for package in metadata["packages"].as_array().unwrap() {
        if !members.contains(&package["id"].as_str().unwrap_or_default()) {
            continue;
        }
        let manifest = Path::new(package["manifest_path"].as_str().unwrap());
        let package_dir = manifest.parent().unwrap();
        // The root package (the binary) builds from src/; the other members are walked on
        // their own, and the root's tests/ and support files are not built into the image.
        let mut todo = if package_dir == root {
            vec![package_dir.join("src")]
        } else {
            vec![package_dir.to_path_buf()]
        };
        while let Some(dir) = todo.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    if entry.file_name() != "target" {
                        todo.push(path);
                    }
                    continue;
                }
                let relative = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if path.extension().is_some_and(|e| e == "rs") {
                    let source = std::fs::read_to_string(&path).unwrap_or_default();
                    inputs.extend(included_files(&relative, &source));
                }
                inputs.push(relative);
            }
        }
    }
    inputs.sort();
    inputs.dedup();
    inputs
}

// ---------------------------------------------------------------------------------------------
// The checks, on the repository's files.

#[test]
fn the_exporter_image_is_multi_stage_non_root_and_pinned() {
    assert_none("Dockerfile", dockerfile_problems(&dockerfile()));
}

#[test]
fn the_image_builds_with_the_declared_rust_version_and_so_do_the_locked_dependencies() {
    let builder = dockerfile()
        .args
        .get("RUST_VERSION")
        .cloned()
        .expect("the Dockerfile has ARG RUST_VERSION=...");
    let metadata = cargo_metadata();
    let packages: BTreeMap<&str, &serde_json::Value> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p))
        .collect();
    let exporter = packages
        .values()
        .find(|p| p["name"] == "p2p-observability")
        .unwrap();
    let workspace = exporter["rust_version"].as_str().unwrap().to_owned();
    // What `cargo build --release --bin p2p-exporter` compiles: normal and build dependencies.
    let nodes: BTreeMap<&str, &serde_json::Value> = metadata["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let mut todo = vec![exporter["id"].as_str().unwrap()];
    let mut seen = BTreeSet::new();
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in nodes[id]["deps"].as_array().into_iter().flatten() {
            let built = dep["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kind"].is_null() || k["kind"] == "build");
            if built {
                todo.push(dep["pkg"].as_str().unwrap());
            }
        }
    }
    let deps: Vec<(String, String, String)> = seen
        .iter()
        .filter_map(|id| {
            let p = packages[id];
            Some((
                p["name"].as_str()?.to_owned(),
                p["version"].as_str()?.to_owned(),
                p["rust_version"].as_str()?.to_owned(),
            ))
        })
        .collect();
    assert!(
        deps.len() > 10,
        "the exporter's dependency graph was not found"
    );
    assert_none(
        "Dockerfile RUST_VERSION",
        toolchain_problems(&builder, &workspace, &deps),
    );
}

#[test]
fn the_build_context_holds_every_file_the_build_reads() {
    let root = repo_root();
    let inputs = build_inputs(&root);
    // The decision engine compiles alerts/thresholds.toml in: proof the scan sees includes.
    assert!(
        inputs.iter().any(|p| p == "alerts/thresholds.toml"),
        "include_str! scan found no alerts/thresholds.toml"
    );
    let dockerignore = std::fs::read_to_string(root.join(".dockerignore")).unwrap();
    assert_none(
        ".dockerignore",
        build_context_problems(&dockerignore, &inputs),
    );
    // And it keeps out what must never reach an image layer or slows every build.
    for kept_out in [
        ".git/config",
        "target/debug/p2p-exporter",
        "exporter/target/x",
        ".env",
    ] {
        assert!(
            dockerignored(&dockerignore, kept_out),
            "{kept_out} is sent to the build"
        );
    }
}

#[test]
fn the_image_healthcheck_passes_on_a_running_exporter_and_fails_without_one() {
    let command = dockerfile().healthcheck.expect("HEALTHCHECK CMD [...]");
    require_tool("bash");
    let run = |port: u16| {
        Command::new(&command[0])
            .args(&command[1..])
            .env("P2P_EXPORTER_LISTEN", format!("0.0.0.0:{port}"))
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run the healthcheck")
            .success()
    };
    let exporter = Exporter::start(&[]);
    assert!(
        run(exporter.address.port()),
        "healthy exporter reported unhealthy"
    );
    assert!(!run(free_port()), "nothing listening, yet reported healthy");
}

// ---------------------------------------------------------------------------------------------
// Each check, on broken input: it must fail.

const GOOD_DOCKERFILE: &str = r#"
ARG RUST_VERSION=1.85.1
FROM rust:${RUST_VERSION}-slim-bookworm AS build
RUN cargo build --release
FROM debian:12.7-slim
COPY --from=build /x /x
USER 10001:10001
ENV P2P_EXPORTER_LISTEN=0.0.0.0:9730
EXPOSE 9730
HEALTHCHECK --interval=15s \
    CMD ["/bin/bash", "-c", "true"]
"#;

#[test]
fn the_dockerfile_check_catches_root_single_stage_unpinned_and_no_healthcheck() {
    let good = parse_dockerfile(GOOD_DOCKERFILE);
    assert_eq!(good.from[0].0, "rust:1.85.1-slim-bookworm");
    assert_eq!(
        good.healthcheck.as_deref(),
        Some(&["/bin/bash".to_owned(), "-c".into(), "true".into()][..])
    );
    assert_none("good fixture", dockerfile_problems(&good));
    let cases = [
        ("USER 10001:10001", "USER root", "root"),
        ("USER 10001:10001", "", "root"),
        (
            "FROM debian:12.7-slim",
            "FROM debian:bookworm-slim",
            "no version",
        ),
        (
            "ARG RUST_VERSION=1.85.1",
            "ARG RUST_VERSION=latest",
            "latest",
        ),
        (
            "HEALTHCHECK --interval=15s \\\n    CMD [\"/bin/bash\", \"-c\", \"true\"]",
            "",
            "HEALTHCHECK",
        ),
        ("EXPOSE 9730", "EXPOSE 8080", "EXPOSE"),
        (
            "ENV P2P_EXPORTER_LISTEN=0.0.0.0:9730",
            "ENV P2P_EXPORTER_LISTEN=127.0.0.1:9730",
            "P2P_EXPORTER_LISTEN",
        ),
    ];
    for (from, to, expected) in cases {
        assert!(GOOD_DOCKERFILE.contains(from), "fixture has no {from:?}");
        let problems =
            dockerfile_problems(&parse_dockerfile(&GOOD_DOCKERFILE.replacen(from, to, 1)));
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{from:?} -> {to:?}: expected {expected:?} in {problems:?}"
        );
    }
    let single = "FROM rust:1.85.1-slim-bookworm\nUSER 1\nEXPOSE 9730\nENV P2P_EXPORTER_LISTEN=0.0.0.0:9730\nHEALTHCHECK CMD [\"true\"]\n";
    assert!(dockerfile_problems(&parse_dockerfile(single))
        .iter()
        .any(|p| p.contains("multi-stage")));
}

#[test]
fn the_toolchain_check_catches_drift_and_dependencies_needing_newer_rust() {
    let deps = |v: &str| vec![("tonic".to_owned(), "0.14.0".to_owned(), v.to_owned())];
    assert_none(
        "in step",
        toolchain_problems("1.85.1", "1.85", &deps("1.75")),
    );
    assert_none(
        "equal",
        toolchain_problems("1.85.1", "1.85", &deps("1.85.0")),
    );
    assert_eq!(toolchain_problems("1.88.0", "1.85", &[]).len(), 1);
    let newer = toolchain_problems("1.85.1", "1.85", &deps("1.88"));
    assert!(newer.iter().any(|p| p.contains("tonic")), "{newer:?}");
}

#[test]
fn the_build_context_check_catches_an_ignored_input() {
    let needed = vec![
        "Cargo.toml".to_owned(),
        "src/main.rs".to_owned(),
        "alerts/thresholds.toml".to_owned(),
    ];
    let good = "# comment\n.git\n**/target\ndocker-compose*.yml\n**/*secret*\n";
    assert_none("good", build_context_problems(good, &needed));
    for bad in [
        "alerts",
        "/alerts/",
        "**/*.toml",
        "src",
        "*\n!Cargo.toml\n!exporter",
    ] {
        let problems = build_context_problems(bad, &needed);
        assert!(!problems.is_empty(), "{bad:?} passed");
    }
    assert!(dockerignored(good, "docker-compose.node.yml"));
    assert!(!dockerignored(good, "exporter/docker-compose.yml"));
    assert!(dockerignored(good, "a/b/my-secret-file"));
    assert!(dockerignored(good, "router/target/debug/x"));
    assert_eq!(
        included_files(
            "decision/src/lib.rs",
            r#"pub const T: &str = include_str!("../../alerts/thresholds.toml");"#
        ),
        ["alerts/thresholds.toml"]
    );
}
