//! Group 5 of `cargo xtask interop`: the Python `mcp`/`fastmcp` and TypeScript SDK clients
//! against `mcp-gateway` serving `dice_server --stdio`, over both HTTP transports, with and
//! without auth (a key pair and token from `jwt_tool mint`); and the `mcp` client against
//! the reference stdio server `@modelcontextprotocol/server-everything` (pinned, installed
//! by `scripts/install-peers.sh everything`) behind the gateway, with a tool denied, a
//! secret in the gateway's environment that must not reach the child, and the child's
//! sampling request during a call answered by the client (as an `InputRequiredResult` retried
//! by the client in the 2026-07-28 era) (`interop/gateway_everything.py`).

/// A value only the gateway's environment holds.
const SECRET: &str = "gateway-only-secret-5f1c";
/// The reference server's tool the gateway hides.
const DENIED: &str = "trigger-long-running-operation";

use std::path::PathBuf;
use std::process::Command;

use mcp_stack_tests::process;

use super::peers::{self, Peer};
use super::typescript::{check_ts_refusal, check_ts_report};
use super::{AUDIENCE, Expect, LEGACY, MODERN, Run};

impl Run {
    /// Group 5; see the module documentation.
    pub(super) fn through_gateway(&mut self) -> anyhow::Result<()> {
        let gateway = peers::build_gateway()?;
        let dice = self.binary("dice_server")?.to_owned();
        let (public_key, token) = self.mint_our_token("gateway")?;
        let port = self.start_gateway(&gateway, &dice, &[])?;
        let key = public_key.to_string_lossy().into_owned();
        let auth_args = [
            "--jwt-public-key",
            key.as_str(),
            "--audience",
            AUDIENCE,
            "--authorization-server",
            "https://issuer.invalid",
        ];
        let auth_port = self.start_gateway(&gateway, &dice, &auth_args)?;
        println!("interop: installing Node 22 and the TypeScript SDK");
        let node = peers::install_node_peers()?;
        for (transport, path) in [("streamable", "/mcp"), ("sse", "/sse")] {
            let url = format!("http://127.0.0.1:{port}{path}");
            let auth_url = format!("http://127.0.0.1:{auth_port}{path}");
            for (client, version) in [
                ("mcp-auto", MODERN),
                ("mcp-legacy", LEGACY),
                ("fastmcp-legacy", LEGACY),
            ] {
                let peer = self.client_peer(client, &url, None, Some(version));
                self.scenario(
                    &format!("gw/py/{client}/{transport}"),
                    peer,
                    Expect::Success,
                );
                let peer = self.client_peer(client, &auth_url, Some(&token), Some(version));
                self.scenario(
                    &format!("gw/py-auth/{client}+token/{transport}"),
                    peer,
                    Expect::Success,
                );
            }
            let peer = self.client_peer("mcp-unauthorized", &auth_url, None, None);
            self.scenario(
                &format!("gw/py-auth/mcp-no-token-401/{transport}"),
                peer,
                Expect::Success,
            );
            let ts = |node: &peers::NodePeers| {
                Peer::new(&node.node)
                    .arg(peers::script("ts_client.mjs").to_string_lossy())
                    .arg("--sdk")
                    .arg(node.ts_sdk.to_string_lossy())
            };
            let plain = ts(&node).args(["--url", &url]);
            self.scenario(
                &format!("gw/ts/{transport}"),
                plain,
                Expect::Checked(check_ts_report),
            );
            let with_token = ts(&node).args(["--url", &auth_url, "--token", &token]);
            self.scenario(
                &format!("gw/ts-auth/token/{transport}"),
                with_token,
                Expect::Checked(check_ts_report),
            );
            let without = ts(&node).args(["--url", &auth_url, "--expect-401"]);
            self.scenario(
                &format!("gw/ts-auth/no-token-401/{transport}"),
                without,
                Expect::Checked(check_ts_refusal),
            );
        }
        self.everything(&gateway, &auth_args, &token)
    }

    /// The reference server behind the gateway, with and without auth.
    fn everything(
        &mut self,
        gateway: &PathBuf,
        auth_args: &[&str],
        token: &str,
    ) -> anyhow::Result<()> {
        let everything = peers::install_everything()?;
        let node = peers::install_node_peers()?;
        let child = [
            node.node.to_string_lossy().into_owned(),
            everything
                .join("dist/index.js")
                .to_string_lossy()
                .into_owned(),
            "stdio".to_owned(),
        ];
        let variants = [
            ("everything", &[][..], None),
            ("everything-auth", auth_args, Some(token)),
        ];
        for (label, extra, token) in variants {
            let port = process::free_port()?;
            let mut command = Command::new(gateway);
            command
                .arg("--port")
                .arg(port.to_string())
                .args(["--deny-tool", DENIED])
                .args(extra)
                .arg("--")
                .args(&child)
                .env("RUST_LOG", "info")
                .env("MCP_GATEWAY_INTEROP_SECRET", SECRET);
            self.start(&format!("mcp-gateway-{label}"), command, port)?;
            for (transport, path) in [("streamable", "/mcp"), ("sse", "/sse")] {
                for mode in ["auto", "legacy"] {
                    let url = format!("http://127.0.0.1:{port}{path}");
                    let mut peer = self.python_script("gateway_everything.py").args([
                        "--url", &url, "--mode", mode, "--secret", SECRET, "--denied", DENIED,
                    ]);
                    if let Some(token) = token {
                        peer = peer.args(["--token", token]);
                    }
                    let name = format!("gw/{label}/mcp-{mode}/{transport}");
                    self.scenario(&name, peer, Expect::Success);
                }
            }
        }
        Ok(())
    }

    /// `mcp-gateway --port P <extra> -- dice_server --stdio`, once it accepts connections.
    fn start_gateway(
        &mut self,
        gateway: &PathBuf,
        dice: &PathBuf,
        extra: &[&str],
    ) -> anyhow::Result<u16> {
        let port = process::free_port()?;
        let mut command = Command::new(gateway);
        command
            .arg("--port")
            .arg(port.to_string())
            .args(extra)
            .arg("--")
            .arg(dice)
            .arg("--stdio")
            .env("RUST_LOG", "info");
        let name = if extra.is_empty() {
            "mcp-gateway"
        } else {
            "mcp-gateway-auth"
        };
        self.start(name, command, port)
    }
}
