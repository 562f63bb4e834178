//! `cargo xtask sans-io`: keeps `mcp-proto` free of I/O runtimes.
//!
//! Reads the resolved dependency graph (`cargo metadata`, through the `cargo_metadata` crate) and
//! walks it from `mcp-proto` along normal dependencies only (dev- and build-dependencies are not
//! linked into users' programs), on every target platform. If the closure contains one of
//! [`FORBIDDEN`], it prints the path that leads there, e.g. `mcp-proto -> foo -> tokio`, and
//! fails.
//!
//! `cargo metadata` resolves features for the whole workspace at once, so a feature enabled by
//! another member can show up here too: the check errs on the side of reporting.

use std::collections::{HashMap, VecDeque};
use std::process::ExitCode;

use anyhow::Context;
use cargo_metadata::{DependencyKind, Metadata, MetadataCommand, PackageId};

/// Crates that mean an I/O runtime or HTTP stack.
pub const FORBIDDEN: [&str; 6] = ["tokio", "hyper", "axum", "reqwest", "mio", "tokio-util"];

/// Options of `cargo xtask sans-io`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The package to check.
    #[arg(long, default_value = "mcp-proto")]
    pub package: String,
}

/// Reads the metadata and checks the package; exit code 1 when a forbidden crate is reachable.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let offending = forbidden_paths(&workspace_metadata()?, &args.package)?;
    let forbidden = FORBIDDEN.join(", ");
    if offending.is_empty() {
        eprintln!(
            "sans-io: ok, the normal dependencies of {} include none of: {forbidden}",
            args.package
        );
        return Ok(ExitCode::SUCCESS);
    }
    for path in &offending {
        eprintln!("sans-io: forbidden dependency: {}", path.join(" -> "));
    }
    eprintln!(
        "sans-io: {} must not depend on an I/O runtime ({forbidden})",
        args.package
    );
    Ok(ExitCode::FAILURE)
}

/// The workspace's metadata with the resolved graph.
fn workspace_metadata() -> anyhow::Result<Metadata> {
    MetadataCommand::new()
        .manifest_path(mcp_stack_tests::workspace_root().join("Cargo.toml"))
        .exec()
        .context("running cargo metadata")
}

/// For each forbidden crate reachable from the workspace member `root` through normal
/// dependencies, the shortest path of package names from `root` to it.
fn forbidden_paths(metadata: &Metadata, root: &str) -> anyhow::Result<Vec<Vec<String>>> {
    let names: HashMap<&PackageId, &str> = metadata
        .packages
        .iter()
        .map(|p| (&p.id, p.name.as_str()))
        .collect();
    let root_id = metadata
        .workspace_members
        .iter()
        .find(|id| names.get(id) == Some(&root))
        .with_context(|| format!("{root} is not a member of the workspace"))?;
    let resolve = metadata
        .resolve
        .as_ref()
        .context("cargo metadata gave no resolved graph")?;
    let nodes: HashMap<&PackageId, _> = resolve.nodes.iter().map(|n| (&n.id, n)).collect();

    // Breadth-first from the root; `parent` records how each package was first reached.
    let mut parent: HashMap<&PackageId, Option<&PackageId>> = HashMap::from([(root_id, None)]);
    let mut queue = VecDeque::from([root_id]);
    let mut found = Vec::new();
    while let Some(id) = queue.pop_front() {
        if id != root_id && FORBIDDEN.contains(&names[id]) {
            // Whatever a forbidden crate pulls in is reported through it already.
            let mut path = vec![names[id].to_owned()];
            let mut step = parent[id];
            while let Some(up) = step {
                path.push(names[up].to_owned());
                step = parent[up];
            }
            path.reverse();
            found.push(path);
            continue;
        }
        let node = nodes
            .get(id)
            .with_context(|| format!("{id} is not in the resolved graph"))?;
        let normal = |kinds: &[cargo_metadata::DepKindInfo]| {
            kinds.iter().any(|k| k.kind == DependencyKind::Normal)
        };
        for dep in node.deps.iter().filter(|dep| normal(&dep.dep_kinds)) {
            if !parent.contains_key(&dep.pkg) {
                parent.insert(&dep.pkg, Some(id));
                queue.push_back(&dep.pkg);
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_graph_is_judged_along_normal_dependencies_only() {
        let metadata = workspace_metadata().unwrap();
        // mcp-proto has dev-dependencies (proptest, divan) but no runtime among its normal ones.
        assert_eq!(
            forbidden_paths(&metadata, "mcp-proto").unwrap(),
            Vec::<Vec<String>>::new()
        );
        // mcp-sse is built on them: every forbidden crate it reaches is reported once, with
        // the shortest path, and nothing past it.
        let found = forbidden_paths(&metadata, "mcp-sse").unwrap();
        assert!(
            found.contains(&vec!["mcp-sse".to_owned(), "tokio".to_owned()]),
            "{found:?}"
        );
        assert!(
            found.contains(&vec!["mcp-sse".to_owned(), "axum".to_owned()]),
            "{found:?}"
        );
        assert!(
            !found.iter().any(|path| path.iter().any(|n| n == "mio")),
            "{found:?}"
        );
        let error = forbidden_paths(&metadata, "no-such-crate")
            .unwrap_err()
            .to_string();
        assert_eq!(error, "no-such-crate is not a member of the workspace");
    }
}
