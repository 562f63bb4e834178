//! `cargo xtask interop`: our crates against the Python ecosystem they must work with: the
//! `mcp` 2.x SDK, `fastmcp` and the `openai` SDK, pinned and installed into `.tools/py` by
//! `scripts/install-peers.sh py`. The peer side of each scenario is a script in `interop/`.
//!
//! The command builds the example binaries, installs the peers, starts the servers on free
//! loopback ports (logs in `<target>/xtask-logs/interop/`), then runs every scenario under
//! `timeout` as a test of a `libtest-mimic` harness: one `test <name> ... ok|FAILED` line each,
//! the failures' reasons and the usual `test result:` line; it exits non-zero on any failure.
//!
//! 1. **Python clients → our `dice_server`** (`interop/python_clients.py`): `mcp.Client` in its
//!    default mode (probes `server/discover`; must negotiate 2026-07-28 on both transports)
//!    and in legacy mode (2025-11-25), `fastmcp.Client` in legacy mode (and its default mode on
//!    streamable HTTP), over streamable HTTP (`/mcp`) and legacy SSE (`/sse`): `roll_dice`
//!    listed, `{"n_dice":3}` gives `structuredContent {"result":[3 dice]}` (fastmcp: `.data`).
//!    Against `dice_server_auth`: HTTP 401 with a `Bearer` challenge without the token (raw and
//!    through each client), success with it.
//! 2. **Our `McpClient` → FastMCP** (`examples/src/bin/interop_client.rs` against the seed's
//!    `server.py` in `interop/fastmcp_dice_server.py`) over both transports, and against the
//!    same server behind FastMCP's `JWTVerifier` with a token from our `RsaKeyPair`
//!    (`jwt_tool mint`); 401 without it. JWT cross-check (`interop/fastmcp_jwt.py`): FastMCP's
//!    verifier accepts our token, ours (`jwt_tool verify`) accepts FastMCP's `RSAKeyPair`
//!    token, and both refuse a wrong audience.
//! 3. **OpenAI SDK → our `responses_local`** (`interop/openai_seed.py`, the seed's script with
//!    only `base_url` and `url` changed; `interop/openai_checks.py`): the dice answer with and
//!    without auth, `stream=True` events that all parse into the SDK's typed models ending in
//!    `ResponseCompletedEvent`, and `APIStatusError` 424 with the seed's body without the token.
//! 4. **TypeScript SDK and stdio** (`interop/ts_client.mjs`, `@modelcontextprotocol/sdk`
//!    pinned in `.tools/ts`): the SDK's `Client` → `dice_server --stdio`, `/sse` and `/mcp`,
//!    and → `dice_server_auth` with the token (401 without it), with no validator warning
//!    (its Ajv warns on non-standard schema formats); the Python `mcp.Client` over stdio
//!    (auto mode negotiates 2026-07-28, legacy mode 2025-11-25); our stdio client → FastMCP's
//!    dice server over stdio; the MCP Inspector's CLI (`.tools/inspector`) lists and calls
//!    `roll_dice` over stdio and streamable HTTP.
//! 5. **Through the gateway** (`interop/gateway.rs`): the Python clients of group 1 and the
//!    TypeScript SDK's client against `mcp-gateway -- dice_server --stdio` over both HTTP
//!    transports, plain and behind `--jwt-public-key` (401 without the token); the `mcp`
//!    client (auto and legacy modes) against `@modelcontextprotocol/server-everything`
//!    behind the gateway, with and without auth, a denied tool and a secret kept from the child.

mod checks;
mod gateway;
pub(crate) mod peers;
mod typescript;

use std::collections::BTreeMap;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use libtest_mimic::{Arguments, Failed, Trial};

use mcp_stack_tests::process::{self, BackgroundProcess};
use peers::{Peer, PeerRun};

/// How long a server may take to accept connections.
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(45);
/// The protocol version of the modern (stateless) era.
const MODERN: &str = "2026-07-28";
/// The newest legacy (`initialize`) protocol version.
const LEGACY: &str = "2025-11-25";
/// The audience of every token (the seed's).
const AUDIENCE: &str = "dice-server";
/// The key `responses_local` is started with and the OpenAI SDK sends (`OPENAI_API_KEY`).
const OPENAI_API_KEY: &str = "sk-local-interop";

/// Options of `cargo xtask interop`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run only the scenarios whose name contains this text (e.g. `py/`, `jwt`, `openai`).
    #[arg(long)]
    pub filter: Option<String>,
    /// Time limit of one peer run, in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

/// Runs the command; see the module documentation.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    peers::require_timeout_program()?;
    println!("interop: building the example binaries");
    let binaries = peers::build_binaries()?;
    println!("interop: installing the Python peers (scripts/install-peers.sh py)");
    let python = peers::install_python()?;
    let work_dir = process::log_dir().join("interop");
    fs::create_dir_all(&work_dir).with_context(|| format!("creating {}", work_dir.display()))?;

    let mut run = Run {
        binaries,
        python,
        work_dir,
        limit: Duration::from_secs(args.timeout.max(1)),
        servers: Vec::new(),
        trials: Vec::new(),
        dice_port: 0,
        auth_port: 0,
        token: String::new(),
    };
    run.dice_port = run.start_ours("dice_server", &[])?;
    (run.auth_port, run.token) = run.start_dice_server_auth()?;
    run.group("1. python", Run::python_clients);
    run.group("2. rust", Run::our_client);
    run.group("2. jwt", Run::jwt_cross_check);
    run.group("3. openai", Run::openai);
    run.group("4. typescript", Run::typescript_and_stdio);
    run.group("5. gateway", Run::through_gateway);
    let arguments = Arguments {
        filter: args.filter,
        test_threads: Some(1),
        ..Arguments::default()
    };
    let trials = std::mem::take(&mut run.trials);
    Ok(libtest_mimic::run(&arguments, trials).exit_code())
}

/// What a scenario expects from its peer run.
enum Expect {
    /// Exit 0; the last line of stdout is the detail shown.
    Success,
    /// Exit 0, and this check on stdout holds (it returns the detail shown).
    Checked(fn(&str) -> anyhow::Result<String>),
    /// Exit 1, with this text in stderr.
    Refused(&'static str),
}

/// The state of one `cargo xtask interop` run: the servers (running until the scenarios
/// are done) and the scenarios to run.
struct Run {
    binaries: BTreeMap<String, PathBuf>,
    python: PathBuf,
    work_dir: PathBuf,
    limit: Duration,
    servers: Vec<BackgroundProcess>,
    trials: Vec<Trial>,
    /// Our `dice_server`.
    dice_port: u16,
    /// Our `dice_server_auth` and the token it minted.
    auth_port: u16,
    token: String,
}

impl Run {
    /// Sets up one group's scenarios; a setup failure becomes the failed scenario
    /// `<group>/setup`.
    fn group(&mut self, title: &str, body: fn(&mut Run) -> anyhow::Result<()>) {
        if let Err(error) = body(self) {
            let failure = Failed::from(format!("{error:#}"));
            self.trials
                .push(Trial::test(format!("{title}/setup"), || Err(failure)));
        }
    }

    fn binary(&self, name: &str) -> anyhow::Result<&Path> {
        self.binaries
            .get(name)
            .map(PathBuf::as_path)
            .with_context(|| format!("no binary {name}"))
    }

    /// Adds a scenario: `peer` run under `timeout`, judged by `expect`.
    fn scenario(&mut self, name: &str, peer: Peer, expect: Expect) {
        let limit = self.limit;
        self.trials.push(Trial::test(name, move || {
            let run = peer.run(limit).map_err(|e| format!("{e:#}"))?;
            judge(&run, &expect, limit).map_err(Failed::from)
        }));
    }

    /// Starts a server on `port` and waits until it accepts connections; it runs until the
    /// scenarios are done.
    fn start(&mut self, name: &str, command: Command, port: u16) -> anyhow::Result<u16> {
        let log = self.work_dir.join(format!("{name}.log"));
        let mut server = BackgroundProcess::spawn(name, command, &log)?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        server.wait_for_tcp(addr, SERVER_START_TIMEOUT)?;
        self.servers.push(server);
        Ok(port)
    }

    /// Starts one of our example servers: `<binary> --port P <extra>`.
    fn start_ours(&mut self, binary: &str, extra: &[&str]) -> anyhow::Result<u16> {
        let port = process::free_port()?;
        let mut command = Command::new(self.binary(binary)?);
        command
            .arg("--port")
            .arg(port.to_string())
            .args(extra)
            .env("RUST_LOG", "info");
        self.start(binary, command, port)
    }

    /// Starts `dice_server_auth` and reads the token it minted.
    fn start_dice_server_auth(&mut self) -> anyhow::Result<(u16, String)> {
        let token_file = self.work_dir.join("dice_server_auth.token");
        let _ = fs::remove_file(&token_file);
        let token_arg = token_file.to_string_lossy().into_owned();
        let port = self.start_ours("dice_server_auth", &["--token-file", &token_arg])?;
        Ok((port, wait_for_file(&token_file, Duration::from_secs(10))?))
    }

    /// Starts the seed's FastMCP server (`transport` "sse" or "http"), optionally behind
    /// `JWTVerifier` with the public key in `public_key`.
    fn start_fastmcp(&mut self, transport: &str, public_key: Option<&Path>) -> anyhow::Result<u16> {
        let port = process::free_port()?;
        let mut command = Command::new(&self.python);
        command
            .arg(peers::script("fastmcp_dice_server.py"))
            .args(["--transport", transport, "--port", &port.to_string()])
            .current_dir(mcp_stack_tests::workspace_root());
        let mut name = format!("fastmcp-{transport}");
        if let Some(key) = public_key {
            command.arg("--public-key-file").arg(key);
            name.push_str("-auth");
        }
        self.start(&name, command, port)
    }

    fn python_script(&self, script: &str) -> Peer {
        Peer::python(&self.python, script)
    }

    /// Group 1: the Python `mcp` and `fastmcp` clients against our dice servers.
    fn python_clients(&mut self) -> anyhow::Result<()> {
        let (port, auth_port, token) = (self.dice_port, self.auth_port, self.token.clone());
        for (transport, path) in [("streamable", "/mcp"), ("sse", "/sse")] {
            let url = format!("http://127.0.0.1:{port}{path}");
            // The mcp 2.x client probes server/discover first on both transports.
            let auto_version = Some(MODERN);
            let clients = [
                ("mcp-auto", auto_version),
                ("mcp-legacy", Some(LEGACY)),
                ("fastmcp-legacy", Some(LEGACY)),
            ];
            for (client, version) in clients {
                let peer = self.client_peer(client, &url, None, version);
                self.scenario(&format!("py/{client}/{transport}"), peer, Expect::Success);
            }
            if transport == "streamable" {
                let peer = self.client_peer("fastmcp-auto", &url, None, Some(MODERN));
                self.scenario("py/fastmcp-auto/streamable", peer, Expect::Success);
            }

            let auth_url = format!("http://127.0.0.1:{auth_port}{path}");
            for client in ["mcp", "fastmcp"] {
                let peer =
                    self.client_peer(&format!("{client}-unauthorized"), &auth_url, None, None);
                self.scenario(
                    &format!("py-auth/{client}-no-token-401/{transport}"),
                    peer,
                    Expect::Success,
                );
            }
            let with_token = [("mcp-auto", auto_version), ("fastmcp-legacy", Some(LEGACY))];
            for (client, version) in with_token {
                let peer = self.client_peer(client, &auth_url, Some(&token), version);
                self.scenario(
                    &format!("py-auth/{client}+token/{transport}"),
                    peer,
                    Expect::Success,
                );
            }
        }
        Ok(())
    }

    fn client_peer(
        &self,
        scenario: &str,
        url: &str,
        token: Option<&str>,
        version: Option<&str>,
    ) -> Peer {
        let mut peer = self
            .python_script("python_clients.py")
            .args([scenario, "--url", url]);
        if let Some(token) = token {
            peer = peer.args(["--token", token]);
        }
        if let Some(version) = version {
            peer = peer.args(["--expect-version", version]);
        }
        peer
    }

    /// Our development key pair (`<name>.private.pem`, `<name>.public.pem` in the work
    /// directory) and a token it signed: the public key's path and the token.
    fn mint_our_token(&self, name: &str) -> anyhow::Result<(PathBuf, String)> {
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

    /// Group 2: our client against FastMCP servers, plain and behind FastMCP's verifier.
    fn our_client(&mut self) -> anyhow::Result<()> {
        let client = self.binary("interop_client")?.to_owned();
        let (our_public, our_token) = self.mint_our_token("ours")?;

        let sse_port = self.start_fastmcp("sse", None)?;
        let http_port = self.start_fastmcp("http", None)?;
        let sse_auth_port = self.start_fastmcp("sse", Some(&our_public))?;
        let http_auth_port = self.start_fastmcp("http", Some(&our_public))?;

        let targets = [
            ("sse", sse_port, sse_auth_port, "/sse"),
            ("streamable", http_port, http_auth_port, "/mcp"),
        ];
        for (transport, port, auth_port, path) in targets {
            let check = if transport == "sse" {
                check_sse_report
            } else {
                check_streamable_report
            };
            let peer = Peer::new(&client)
                .arg(format!("http://127.0.0.1:{port}{path}"))
                .args(["--transport", transport]);
            self.scenario(
                &format!("rust/fastmcp/{transport}"),
                peer,
                Expect::Checked(check),
            );

            let auth_url = format!("http://127.0.0.1:{auth_port}{path}");
            let peer = Peer::new(&client).arg(&auth_url).args([
                "--transport",
                transport,
                "--token",
                &our_token,
            ]);
            self.scenario(
                &format!("rust/fastmcp-jwt+our-token/{transport}"),
                peer,
                Expect::Checked(check),
            );
            let peer = Peer::new(&client)
                .arg(&auth_url)
                .args(["--transport", transport]);
            self.scenario(
                &format!("rust/fastmcp-jwt-no-token-401/{transport}"),
                peer,
                Expect::Refused("Http status code: 401 (Unauthorized)"),
            );
        }

        Ok(())
    }

    /// Group 2 too: FastMCP's verifier and our token, our verifier and FastMCP's token.
    fn jwt_cross_check(&mut self) -> anyhow::Result<()> {
        let jwt_tool = self.binary("jwt_tool")?.to_owned();
        let (our_public, our_token) = self.mint_our_token("jwt-check")?;
        let python = self.python.clone();
        let verify_ours = |audience: &str| {
            Peer::python(&python, "fastmcp_jwt.py")
                .args(["verify", "--public-key"])
                .arg(our_public.to_string_lossy())
                .args(["--audience", audience, &our_token])
        };
        let accept = verify_ours(AUDIENCE);
        self.scenario(
            "jwt/fastmcp-verifier-accepts-our-token",
            accept,
            Expect::Success,
        );
        let refuse = verify_ours("another-server");
        self.scenario(
            "jwt/fastmcp-verifier-refuses-our-token-for-another-audience",
            refuse,
            Expect::Refused("rejected"),
        );

        // Our verifier and FastMCP's token.
        let fastmcp_public = self.work_dir.join("fastmcp.public.pem");
        let fastmcp_minted = self
            .python_script("fastmcp_jwt.py")
            .args(["mint", "--audience", AUDIENCE, "--public-key-out"])
            .arg(fastmcp_public.to_string_lossy())
            .run(self.limit)?;
        if fastmcp_minted.code != Some(0) {
            bail!("fastmcp_jwt.py mint failed: {}", fastmcp_minted.tail());
        }
        let fastmcp_token = fastmcp_minted.stdout.trim().to_owned();
        let verify_theirs = |audience: &str| {
            Peer::new(&jwt_tool)
                .args(["verify", "--public-key"])
                .arg(fastmcp_public.to_string_lossy())
                .args(["--audience", audience, &fastmcp_token])
        };
        let accept = verify_theirs(AUDIENCE);
        self.scenario(
            "jwt/our-verifier-accepts-fastmcp-token",
            accept,
            Expect::Checked(|out| checks::check_verified_identity(out, "fastmcp-user")),
        );
        let refuse = verify_theirs("another-server");
        self.scenario(
            "jwt/our-verifier-refuses-fastmcp-token-for-another-audience",
            refuse,
            Expect::Refused("audience"),
        );
        Ok(())
    }

    /// Group 3: the seed's OpenAI script against our local Responses endpoint.
    fn openai(&mut self) -> anyhow::Result<()> {
        let (port, auth_port, token) = (self.dice_port, self.auth_port, self.token.clone());
        let responses_port = self.start_ours("responses_local", &["--api-key", OPENAI_API_KEY])?;
        let base_url = format!("http://127.0.0.1:{responses_port}/v1");
        let plain_url = format!("http://127.0.0.1:{port}");
        let auth_url = format!("http://127.0.0.1:{auth_port}");
        let with_env = |peer: Peer, url: &str, token: Option<&str>| {
            let peer = peer
                .env("OPENAI_API_KEY", OPENAI_API_KEY)
                .env("RESPONSES_BASE_URL", &base_url)
                .env("DICE_SERVER_URL", url);
            match token {
                Some(token) => peer.env("DICE_SERVER_TOKEN", token),
                None => peer,
            }
        };
        let answer = Expect::Checked(|out| {
            let dice = checks::check_seed_answer(out)?;
            Ok(format!("{} (dice {dice:?})", out.trim()))
        });
        let seed = with_env(self.python_script("openai_seed.py"), &plain_url, None);
        self.scenario("openai/seed-script", seed, answer);
        let answer = Expect::Checked(|out| {
            let dice = checks::check_seed_answer(out)?;
            Ok(format!("{} (dice {dice:?})", out.trim()))
        });
        let seed = with_env(
            self.python_script("openai_seed.py"),
            &auth_url,
            Some(&token),
        );
        self.scenario("openai/seed-script+token", seed, answer);
        let stream =
            with_env(self.python_script("openai_checks.py"), &plain_url, None).arg("stream");
        self.scenario("openai/stream-typed-events", stream, Expect::Success);
        let stream = with_env(
            self.python_script("openai_checks.py"),
            &auth_url,
            Some(&token),
        )
        .arg("stream");
        self.scenario("openai/stream-typed-events+token", stream, Expect::Success);
        let refused =
            with_env(self.python_script("openai_checks.py"), &auth_url, None).arg("no-token");
        self.scenario("openai/no-token-424", refused, Expect::Success);
        Ok(())
    }
}

fn check_sse_report(stdout: &str) -> anyhow::Result<String> {
    checks::check_interop_client_report(stdout, "sse")
}

fn check_streamable_report(stdout: &str) -> anyhow::Result<String> {
    checks::check_interop_client_report(stdout, "streamable")
}

/// Whether a finished peer run met `expect`; why not.
fn judge(run: &PeerRun, expect: &Expect, limit: Duration) -> Result<(), String> {
    if run.timed_out() {
        return Err(format!("no result within {limit:?}\n{}", run.tail()));
    }
    match (expect, run.code) {
        (Expect::Success, Some(0)) => Ok(()),
        (Expect::Checked(check), Some(0)) => {
            check(&run.stdout).map(drop).map_err(|e| format!("{e:#}"))
        }
        (Expect::Refused(needle), Some(1)) if run.stderr.contains(needle) => Ok(()),
        (Expect::Refused(needle), Some(1)) => Err(format!(
            "refused, but stderr lacks {needle:?}:\n{}",
            run.tail()
        )),
        (Expect::Refused(_), code) => Err(format!(
            "expected a refusal (exit 1), got exit {code:?}:\n{}",
            last_line(&run.stdout)
        )),
        (_, code) => Err(format!("exit {code:?}:\n{}", run.tail())),
    }
}

/// The last non-empty line, shortened to 300 characters.
fn last_line(text: &str) -> String {
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let mut short: String = line.trim().chars().take(300).collect();
    if short.len() < line.trim().len() {
        short.push_str(" ...");
    }
    short
}

/// Waits until `path` holds a non-empty first line and returns it.
fn wait_for_file(path: &Path, timeout: Duration) -> anyhow::Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(text) = fs::read_to_string(path) {
            let first = text.lines().next().unwrap_or("").trim();
            if !first.is_empty() {
                return Ok(first.to_owned());
            }
        }
        if Instant::now() >= deadline {
            bail!("{} was not written within {timeout:?}", path.display());
        }
        thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(code: i32, stdout: &str, stderr: &str) -> PeerRun {
        PeerRun {
            code: Some(code),
            stdout: stdout.into(),
            stderr: stderr.into(),
        }
    }

    const LIMIT: Duration = Duration::from_secs(60);

    #[test]
    fn successes_need_exit_zero() {
        assert_eq!(
            judge(&finished(0, "x\n{\"ok\":1}\n", ""), &Expect::Success, LIMIT),
            Ok(())
        );
        assert_eq!(
            judge(&finished(1, "", "FAIL: broke"), &Expect::Success, LIMIT),
            Err("exit Some(1):\nFAIL: broke".into())
        );
        assert_eq!(
            judge(&finished(124, "", "slow"), &Expect::Success, LIMIT),
            Err("no result within 60s\nslow".into())
        );
    }

    #[test]
    fn checked_successes_run_the_check() {
        let expect =
            Expect::Checked(|out| checks::check_dice_answer(out).map(|dice| format!("{dice:?}")));
        assert_eq!(
            judge(
                &finished(0, "You rolled 1 die and got the following result: 4!", ""),
                &expect,
                LIMIT
            ),
            Ok(())
        );
        assert_eq!(
            judge(&finished(0, "no dice", ""), &expect, LIMIT),
            Err("not the dice answer: \"no dice\"".into())
        );
    }

    #[test]
    fn refusals_need_exit_one_and_the_reason() {
        let expect = Expect::Refused("401");
        assert_eq!(
            judge(
                &finished(1, "", "error: Http status code: 401 (Unauthorized)"),
                &expect,
                LIMIT
            ),
            Ok(())
        );
        assert_eq!(
            judge(
                &finished(1, "", "error: connection refused"),
                &expect,
                LIMIT
            ),
            Err("refused, but stderr lacks \"401\":\nerror: connection refused".into())
        );
        assert_eq!(
            judge(&finished(0, "{\"dice\":[1]}", ""), &expect, LIMIT),
            Err("expected a refusal (exit 1), got exit Some(0):\n{\"dice\":[1]}".into())
        );
    }

    #[test]
    fn long_lines_are_shortened() {
        let long = "y".repeat(400);
        assert_eq!(last_line(&format!("a\n{long}\n\n")).len(), 304);
        assert_eq!(last_line(""), "");
    }

    #[test]
    fn files_are_awaited() {
        let dir = process::log_dir().join("interop-tests");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("token-{}", std::process::id()));
        let _ = fs::remove_file(&path);
        let error = wait_for_file(&path, Duration::from_millis(100)).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{} was not written within 100ms", path.display())
        );
        fs::write(&path, "abc.def.ghi\n").unwrap();
        assert_eq!(
            wait_for_file(&path, Duration::from_secs(1)).unwrap(),
            "abc.def.ghi"
        );
        fs::remove_file(&path).unwrap();
    }
}
