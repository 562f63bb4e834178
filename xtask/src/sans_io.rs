//! `cargo xtask sans-io`: keeps `mcp-proto` free of I/O runtimes.
//!
//! Reads `cargo metadata --format-version 1` and walks the resolved graph from `mcp-proto`
//! along normal dependencies only (dev- and build-dependencies are not linked into users'
//! programs), on every target platform. If the closure contains one of [`FORBIDDEN`], it prints
//! the path that leads there, e.g. `mcp-proto -> foo -> tokio`, and fails.
//!
//! `cargo metadata` resolves features for the whole workspace at once, so a feature enabled by
//! another member can show up here too: the check errs on the side of reporting.

use std::collections::{HashMap, VecDeque};
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::process;

/// Crates that mean an I/O runtime or HTTP stack.
pub const FORBIDDEN: [&str; 6] = ["tokio", "hyper", "axum", "reqwest", "mio", "tokio-util"];

/// The package that must stay sans-IO.
const SANS_IO_PACKAGE: &str = "mcp-proto";

/// Options of `cargo xtask sans-io`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The package to check.
    #[arg(long, default_value = SANS_IO_PACKAGE)]
    pub package: String,
}

/// Runs `cargo metadata` and checks the package; exit code 1 when a forbidden crate is reachable.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut command = process::cargo();
    command
        .current_dir(crate::workspace_root())
        .args(["metadata", "--format-version", "1"]);
    let json = process::output_checked(command)?;
    let metadata: Metadata =
        serde_json::from_str(&json).context("parsing the output of cargo metadata")?;
    let offending = forbidden_paths(&metadata, &args.package, &FORBIDDEN)?;
    if offending.is_empty() {
        eprintln!(
            "sans-io: ok, the normal dependencies of {} include none of: {}",
            args.package,
            FORBIDDEN.join(", ")
        );
        return Ok(ExitCode::SUCCESS);
    }
    for path in &offending {
        eprintln!("sans-io: forbidden dependency: {}", path.join(" -> "));
    }
    eprintln!(
        "sans-io: {} must not depend on an I/O runtime ({} found)",
        args.package,
        offending.len()
    );
    Ok(ExitCode::FAILURE)
}

/// The parts of `cargo metadata --format-version 1` this check reads.
#[derive(Debug, Deserialize)]
pub struct Metadata {
    /// Every package in the lock file.
    pub packages: Vec<Package>,
    /// The resolved dependency graph (absent with `--no-deps`).
    pub resolve: Option<Resolve>,
    /// Ids of the workspace members.
    pub workspace_members: Vec<String>,
}

/// A package of the metadata.
#[derive(Debug, Deserialize)]
pub struct Package {
    /// The package id.
    pub id: String,
    /// The package name.
    pub name: String,
}

/// The resolved graph.
#[derive(Debug, Deserialize)]
pub struct Resolve {
    /// One node per package.
    pub nodes: Vec<Node>,
}

/// One package in the resolved graph with its dependencies.
#[derive(Debug, Deserialize)]
pub struct Node {
    /// The package id.
    pub id: String,
    /// The package's dependencies.
    #[serde(default)]
    pub deps: Vec<NodeDep>,
}

/// One edge of the resolved graph.
#[derive(Debug, Deserialize)]
pub struct NodeDep {
    /// The id of the package depended on.
    pub pkg: String,
    /// How it is depended on; absent in very old cargo versions.
    pub dep_kinds: Option<Vec<DepKind>>,
}

/// The kind of one dependency edge.
#[derive(Debug, Deserialize)]
pub struct DepKind {
    /// `null` for a normal dependency, `"dev"` or `"build"` otherwise.
    pub kind: Option<String>,
}

impl NodeDep {
    /// Whether the edge is a normal dependency (on some platform). Without kind information
    /// the edge counts as normal, so the check never passes by accident.
    fn is_normal(&self) -> bool {
        match &self.dep_kinds {
            None => true,
            Some(kinds) => kinds.iter().any(|kind| kind.kind.is_none()),
        }
    }
}

/// For each forbidden crate reachable from the workspace member `root` through normal
/// dependencies, the shortest path of package names from `root` to it.
pub fn forbidden_paths(
    metadata: &Metadata,
    root: &str,
    forbidden: &[&str],
) -> anyhow::Result<Vec<Vec<String>>> {
    let names: HashMap<&str, &str> = metadata
        .packages
        .iter()
        .map(|package| (package.id.as_str(), package.name.as_str()))
        .collect();
    let root_id = metadata
        .workspace_members
        .iter()
        .find(|id| names.get(id.as_str()) == Some(&root))
        .with_context(|| format!("{root} is not a member of the workspace"))?;
    let Some(resolve) = &metadata.resolve else {
        bail!("cargo metadata has no resolved graph (was it run with --no-deps?)");
    };
    let nodes: HashMap<&str, &Node> = resolve
        .nodes
        .iter()
        .map(|node| (node.id.as_str(), node))
        .collect();

    // Breadth-first from the root; `parent` records how each package was first reached.
    let mut parent: HashMap<&str, Option<&str>> = HashMap::from([(root_id.as_str(), None)]);
    let mut queue = VecDeque::from([root_id.as_str()]);
    let mut found = Vec::new();
    while let Some(id) = queue.pop_front() {
        let name = names.get(id).copied().unwrap_or(id);
        if id != root_id && forbidden.contains(&name) {
            found.push(path_to(id, &parent, &names));
            // Whatever a forbidden crate pulls in is reported through it already.
            continue;
        }
        let Some(node) = nodes.get(id) else {
            bail!("package {id} is missing from the resolved graph");
        };
        for dep in node.deps.iter().filter(|dep| dep.is_normal()) {
            if !parent.contains_key(dep.pkg.as_str()) {
                parent.insert(dep.pkg.as_str(), Some(id));
                queue.push_back(dep.pkg.as_str());
            }
        }
    }
    Ok(found)
}

/// Names of the packages from the root to `id`, following `parent` links.
fn path_to(
    id: &str,
    parent: &HashMap<&str, Option<&str>>,
    names: &HashMap<&str, &str>,
) -> Vec<String> {
    let mut path = Vec::new();
    let mut current = Some(id);
    while let Some(step) = current {
        path.push(names.get(step).copied().unwrap_or(step).to_owned());
        current = parent.get(step).copied().flatten();
    }
    path.reverse();
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small metadata document in the shape cargo prints: mcp-proto depends normally on serde
    /// and `middle`, on tokio as a dev-dependency and on `builder` as a build dependency;
    /// `middle` reaches `mio` through `deep`; `builder` depends on hyper.
    fn synthetic(middle_reaches_mio: bool) -> Metadata {
        let deep_deps = if middle_reaches_mio {
            r#"[{"name":"mio","pkg":"mio-id","dep_kinds":[{"kind":null,"target":"cfg(unix)"}]}]"#
        } else {
            "[]"
        };
        let json = format!(
            r#"{{
  "packages": [
    {{"name":"mcp-proto","id":"path+file:///ws/crates/mcp-proto#0.1.0","version":"0.1.0"}},
    {{"name":"mcp-sse","id":"path+file:///ws/crates/mcp-sse#0.1.0","version":"0.1.0"}},
    {{"name":"serde","id":"serde-id","version":"1.0.0"}},
    {{"name":"middle","id":"middle-id","version":"1.0.0"}},
    {{"name":"deep","id":"deep-id","version":"1.0.0"}},
    {{"name":"mio","id":"mio-id","version":"1.0.0"}},
    {{"name":"tokio","id":"tokio-id","version":"1.0.0"}},
    {{"name":"builder","id":"builder-id","version":"1.0.0"}},
    {{"name":"hyper","id":"hyper-id","version":"1.0.0"}}
  ],
  "workspace_members": ["path+file:///ws/crates/mcp-proto#0.1.0", "path+file:///ws/crates/mcp-sse#0.1.0"],
  "resolve": {{
    "root": null,
    "nodes": [
      {{"id":"path+file:///ws/crates/mcp-proto#0.1.0","dependencies":[],"features":[],"deps":[
        {{"name":"serde","pkg":"serde-id","dep_kinds":[{{"kind":null,"target":null}}]}},
        {{"name":"middle","pkg":"middle-id","dep_kinds":[{{"kind":null,"target":null}},{{"kind":"dev","target":null}}]}},
        {{"name":"tokio","pkg":"tokio-id","dep_kinds":[{{"kind":"dev","target":null}}]}},
        {{"name":"builder","pkg":"builder-id","dep_kinds":[{{"kind":"build","target":null}}]}}
      ]}},
      {{"id":"path+file:///ws/crates/mcp-sse#0.1.0","deps":[
        {{"name":"tokio","pkg":"tokio-id","dep_kinds":[{{"kind":null,"target":null}}]}}
      ]}},
      {{"id":"serde-id","deps":[]}},
      {{"id":"middle-id","deps":[{{"name":"deep","pkg":"deep-id","dep_kinds":[{{"kind":null,"target":null}}]}}]}},
      {{"id":"deep-id","deps":{deep_deps}}},
      {{"id":"mio-id","deps":[]}},
      {{"id":"tokio-id","deps":[{{"name":"mio","pkg":"mio-id","dep_kinds":[{{"kind":null,"target":null}}]}}]}},
      {{"id":"builder-id","deps":[{{"name":"hyper","pkg":"hyper-id","dep_kinds":[{{"kind":null,"target":null}}]}}]}},
      {{"id":"hyper-id","deps":[]}}
    ]
  }},
  "target_directory": "/ws/target",
  "version": 1,
  "workspace_root": "/ws"
}}"#
        );
        serde_json::from_str(&json).unwrap()
    }

    #[test]
    fn dev_and_build_dependencies_are_not_followed() {
        let metadata = synthetic(false);
        assert_eq!(
            forbidden_paths(&metadata, "mcp-proto", &FORBIDDEN).unwrap(),
            Vec::<Vec<String>>::new()
        );
    }

    #[test]
    fn a_transitive_runtime_is_reported_with_its_path() {
        let metadata = synthetic(true);
        assert_eq!(
            forbidden_paths(&metadata, "mcp-proto", &FORBIDDEN).unwrap(),
            vec![vec![
                "mcp-proto".to_owned(),
                "middle".to_owned(),
                "deep".to_owned(),
                "mio".to_owned()
            ]]
        );
    }

    #[test]
    fn every_forbidden_crate_is_reported_once_without_its_own_dependencies() {
        let metadata = synthetic(true);
        assert_eq!(
            forbidden_paths(&metadata, "mcp-sse", &FORBIDDEN).unwrap(),
            vec![vec!["mcp-sse".to_owned(), "tokio".to_owned()]]
        );
    }

    #[test]
    fn unknown_root_and_missing_graph_are_errors() {
        let metadata = synthetic(false);
        assert_eq!(
            forbidden_paths(&metadata, "serde", &FORBIDDEN)
                .unwrap_err()
                .to_string(),
            "serde is not a member of the workspace"
        );
        let no_deps = Metadata {
            resolve: None,
            ..synthetic(false)
        };
        assert_eq!(
            forbidden_paths(&no_deps, "mcp-proto", &FORBIDDEN)
                .unwrap_err()
                .to_string(),
            "cargo metadata has no resolved graph (was it run with --no-deps?)"
        );
    }

    #[test]
    fn edges_without_kinds_count_as_normal() {
        let edge: NodeDep = serde_json::from_str(r#"{"name":"x","pkg":"x-id"}"#).unwrap();
        assert!(edge.is_normal());
        let edge: NodeDep =
            serde_json::from_str(r#"{"pkg":"x-id","dep_kinds":[{"kind":"dev","target":null}]}"#)
                .unwrap();
        assert!(!edge.is_normal());
    }
}
