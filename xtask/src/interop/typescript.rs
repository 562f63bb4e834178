//! Group 4 of `cargo xtask interop`: the TypeScript SDK and the MCP Inspector against our
//! dice servers over every transport, and the stdio peers (Python `mcp` client → our server,
//! our client → FastMCP).

use anyhow::{Context, ensure};
use serde_json::Value;

use super::peers::{self, NodePeers, Peer};
use super::{Expect, LEGACY, MODERN, Run, checks};

/// A check on a peer's output.
type Check = fn(&str) -> anyhow::Result<String>;
/// The Inspector's arguments for a `roll_dice` call with 3 dice.
const CALL_DICE: &str = "--method tools/call --tool-name roll_dice --tool-arg n_dice=3";

impl Run {
    /// Group 4; see the module documentation.
    pub(super) fn typescript_and_stdio(&mut self) -> anyhow::Result<()> {
        let node = peers::install_node_peers()?;
        let dice = self.binary("dice_server")?.to_string_lossy().into_owned();
        self.ts_scenarios(&node, &dice)?;
        self.inspector_scenarios(&node, &dice)?;
        for (mode, version) in [("auto", MODERN), ("legacy", LEGACY)] {
            let peer = self
                .python_script("python_clients.py")
                .args([
                    &format!("mcp-{mode}-stdio"),
                    "--command",
                    &dice,
                    "--arg=--stdio",
                ])
                .args(["--expect-version", version]);
            self.scenario(&format!("py/mcp-{mode}/stdio"), peer, Expect::Success);
        }
        let fastmcp = Peer::new(self.binary("interop_client")?)
            .arg(self.python.to_string_lossy())
            .args(["--transport", "stdio", "--arg"])
            .arg(peers::script("fastmcp_dice_server.py").to_string_lossy())
            .args(["--arg=--transport", "--arg=stdio"]);
        self.scenario(
            "rust/fastmcp/stdio",
            fastmcp,
            Expect::Checked(|out| checks::check_interop_client_report(out, "stdio")),
        );
        Ok(())
    }

    fn ts_peer(&self, node: &NodePeers) -> Peer {
        Peer::new(&node.node)
            .arg(peers::script("ts_client.mjs").to_string_lossy())
            .arg("--sdk")
            .arg(node.ts_sdk.to_string_lossy())
    }

    /// The TypeScript SDK's client over stdio, legacy SSE and streamable HTTP, with and
    /// without auth.
    fn ts_scenarios(&mut self, node: &NodePeers, dice: &str) -> anyhow::Result<()> {
        let stdio = self
            .ts_peer(node)
            .args(["--command", dice, "--arg", "--stdio"]);
        self.scenario("ts/stdio", stdio, Expect::Checked(check_ts_report));
        let (port, auth_port, token) = (self.dice_port, self.auth_port, self.token.clone());
        for (transport, path) in [("sse", "/sse"), ("streamable", "/mcp")] {
            let url = format!("http://127.0.0.1:{port}{path}");
            let plain = self.ts_peer(node).args(["--url", &url]);
            self.scenario(
                &format!("ts/{transport}"),
                plain,
                Expect::Checked(check_ts_report),
            );
            let auth_url = format!("http://127.0.0.1:{auth_port}{path}");
            let with_token = self
                .ts_peer(node)
                .args(["--url", &auth_url, "--token", &token]);
            self.scenario(
                &format!("ts-auth/token/{transport}"),
                with_token,
                Expect::Checked(check_ts_report),
            );
            let without = self
                .ts_peer(node)
                .args(["--url", &auth_url, "--expect-401"]);
            self.scenario(
                &format!("ts-auth/no-token-401/{transport}"),
                without,
                Expect::Checked(check_ts_refusal),
            );
        }
        Ok(())
    }

    /// The MCP Inspector's CLI mode: `tools/list` and `tools/call` over stdio and streamable
    /// HTTP.
    fn inspector_scenarios(&mut self, node: &NodePeers, dice: &str) -> anyhow::Result<()> {
        let inspector = || {
            Peer::new(&node.node)
                .arg(node.inspector.to_string_lossy())
                .arg("--cli")
        };
        let url = format!("http://127.0.0.1:{}/mcp", self.dice_port);
        let stdio = ["-e", "RUST_LOG=warn", dice, "--stdio"];
        let http = [url.as_str(), "--transport", "http"];
        let list: Check = check_inspector_list;
        for (name, target, method, check) in [
            (
                "inspector/tools-list/stdio",
                &stdio[..],
                "--method tools/list",
                list,
            ),
            (
                "inspector/tools-call/stdio",
                &stdio[..],
                CALL_DICE,
                check_inspector_call,
            ),
            (
                "inspector/tools-call/streamable",
                &http[..],
                CALL_DICE,
                check_inspector_call,
            ),
        ] {
            let peer = inspector().args(target).args(method.split_whitespace());
            self.scenario(name, peer, Expect::Checked(check));
        }
        Ok(())
    }
}

/// The last line of stdout as JSON.
fn last_json(stdout: &str) -> anyhow::Result<Value> {
    let text = stdout.trim();
    // The Inspector pretty-prints one JSON document; ts_client.mjs prints one line.
    serde_json::from_str(text)
        .or_else(|_| serde_json::from_str(text.lines().last().unwrap_or("")))
        .with_context(|| format!("no JSON on stdout: {text}"))
}

/// `ts_client.mjs`'s summary: `roll_dice` listed, three dice, no warnings (it exits 2 on one).
pub(super) fn check_ts_report(stdout: &str) -> anyhow::Result<String> {
    let report = last_json(stdout)?;
    let tools = report["tools"]
        .as_array()
        .context("no tools in the report")?;
    ensure!(
        tools.iter().any(|t| t == "roll_dice"),
        "no roll_dice in {report}"
    );
    checks::check_dice(&report["dice"], 3)?;
    Ok(format!("{} {}", report["transport"], report["dice"]))
}

pub(super) fn check_ts_refusal(stdout: &str) -> anyhow::Result<String> {
    let report = last_json(stdout)?;
    let refused = report["refused"].as_str().context("not refused")?;
    ensure!(report["status"] == 401, "refused without a 401: {report}");
    Ok(format!("401: {refused}"))
}

fn check_inspector_list(stdout: &str) -> anyhow::Result<String> {
    let listed = last_json(stdout)?;
    let tools = listed["tools"].as_array().context("no tools array")?;
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    ensure!(names == ["roll_dice"], "tools {names:?}");
    Ok(format!("tools {names:?}"))
}

fn check_inspector_call(stdout: &str) -> anyhow::Result<String> {
    let result = last_json(stdout)?;
    ensure!(result["isError"] != true, "isError: {result}");
    checks::check_dice(&result["structuredContent"]["result"], 3)?;
    Ok(format!("dice {}", result["structuredContent"]["result"]))
}
