//! Group 5 of `cargo xtask interop`: the Python `mcp`/`fastmcp` and TypeScript SDK clients
//! against `mcp-gateway` serving `dice_server --stdio`, over both HTTP transports, with and
//! without auth (a key pair and token from `jwt_tool mint`).

use std::path::PathBuf;
use std::process::Command;

use anyhow::bail;
use mcp_stack_tests::process::{self, BackgroundProcess};

use super::peers::{self, Peer};
use super::typescript::{check_ts_refusal, check_ts_report};
use super::{AUDIENCE, Expect, LEGACY, MODERN, Run};

impl Run {
    /// Group 5; see the module documentation.
    pub(super) fn through_gateway(&mut self) -> anyhow::Result<()> {
        let gateway = peers::build_gateway()?;
        let dice = self.binary("dice_server")?.to_owned();
        let (public_key, token) = self.mint_token("gateway")?;
        let (_plain, port) = self.start_gateway(&gateway, &dice, &[])?;
        let key = public_key.to_string_lossy().into_owned();
        let auth_args = [
            "--jwt-public-key",
            key.as_str(),
            "--audience",
            AUDIENCE,
            "--authorization-server",
            "https://issuer.invalid",
        ];
        let (_auth, auth_port) = self.start_gateway(&gateway, &dice, &auth_args)?;
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
        Ok(())
    }

    /// `mcp-gateway --port P <extra> -- dice_server --stdio`, once it accepts connections.
    fn start_gateway(
        &self,
        gateway: &PathBuf,
        dice: &PathBuf,
        extra: &[&str],
    ) -> anyhow::Result<(BackgroundProcess, u16)> {
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
        Ok((self.start(name, command, port)?, port))
    }

    /// A development key pair (public key file) and a token for [`AUDIENCE`].
    fn mint_token(&self, name: &str) -> anyhow::Result<(PathBuf, String)> {
        let private = self.work_dir.join(format!("{name}.private.pem"));
        let public = self.work_dir.join(format!("{name}.public.pem"));
        let minted = Peer::new(self.binary("jwt_tool")?)
            .args(["mint", "--audience", AUDIENCE, "--private-key-out"])
            .arg(private.to_string_lossy())
            .arg("--public-key-out")
            .arg(public.to_string_lossy())
            .run(self.limit)?;
        if minted.code != Some(0) {
            bail!("jwt_tool mint failed: {}", minted.tail());
        }
        Ok((public, minted.stdout.trim().to_owned()))
    }
}
