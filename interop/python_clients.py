"""Scenario group 1 of `cargo xtask interop`: the Python `mcp` 2.x and `fastmcp` clients
against an MCP dice server (ours, or any server with the seed's `roll_dice` tool).

One scenario per run; exit 0 and a one-line JSON summary on success, exit 1 and the reason on
failure. Every network step runs under a deadline (the harness adds its own `timeout`).

Usage: python_clients.py SCENARIO (--url URL [--token T] | --command PROGRAM [--arg A]...)
                         [--expect-version V]
  SCENARIO: mcp-auto        `mcp.Client` in its default mode (probes server/discover first)
            mcp-legacy      `mcp.Client(mode="legacy")` (initialize handshake)
            fastmcp-auto    `fastmcp.Client` in its default mode
            fastmcp-legacy  `fastmcp.Client(mode="legacy")`
            mcp-auto-stdio / mcp-legacy-stdio
                            `mcp.Client` over stdio, starting --command [--arg A]...
            mcp-unauthorized / fastmcp-unauthorized
                            connecting without a token must fail with HTTP 401
  URL ending in /sse selects legacy HTTP+SSE, anything else streamable HTTP.
"""

import argparse
import json
import sys

import anyio
import httpx2

DEADLINE_SECONDS = 30
N_DICE = 3


class ScenarioFailed(Exception):
    """A check did not hold."""


def is_sse(url: str) -> bool:
    return url.rstrip("/").endswith("/sse")


def check_dice(values, where: str) -> list[int]:
    if not isinstance(values, list) or len(values) != N_DICE:
        raise ScenarioFailed(f"{where}: expected a list of {N_DICE} ints, got {values!r}")
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 6:
            raise ScenarioFailed(f"{where}: {v!r} is not a die value in 1..=6 ({values!r})")
    return values


def check_tools(names: list[str]) -> None:
    if "roll_dice" not in names:
        raise ScenarioFailed(f"tools/list has no roll_dice: {names!r}")


def headers_for(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


# Every HTTP status the clients saw, recorded by a response hook on their httpx2 clients: the
# `mcp` streamable transport turns a 401 into a generic JSON-RPC error, so the status is the
# only reliable evidence of why a connection was refused.
SEEN_STATUSES: list[int] = []


async def record_status(response: httpx2.Response) -> None:
    SEEN_STATUSES.append(response.status_code)


def recording_client_factory(
    headers: dict[str, str] | None = None,
    timeout: httpx2.Timeout | None = None,
    auth: httpx2.Auth | None = None,
    **extra,
) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        headers=headers,
        timeout=timeout or httpx2.Timeout(10.0, read=DEADLINE_SECONDS),
        auth=auth,
        event_hooks={"response": [record_status]},
        **extra,
    )


# --- mcp 2.x -----------------------------------------------------------------------------


def mcp_transport(url: str, token: str | None, exit_stack_http):
    from mcp.client.sse import sse_client
    from mcp.client.streamable_http import streamable_http_client

    if is_sse(url):
        return sse_client(
            url,
            headers=headers_for(token),
            timeout=10,
            sse_read_timeout=DEADLINE_SECONDS,
            httpx_client_factory=recording_client_factory,
        )
    return streamable_http_client(url, http_client=exit_stack_http)


async def run_mcp(url: str, token: str | None, mode: str, expect_version: str | None) -> dict:
    from mcp import Client

    async with recording_client_factory(headers=headers_for(token)) as http:
        async with Client(mcp_transport(url, token, http), mode=mode) as client:
            return await check_mcp_session(client, mode, expect_version)


async def run_mcp_stdio(command: str, args: list[str], mode: str, expect_version: str | None) -> dict:
    """`mcp.Client` over stdio: it starts `command args` as its server process."""
    import os

    from mcp import Client
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=command, args=args, env={**os.environ, "RUST_LOG": "warn"})
    async with Client(stdio_client(params), mode=mode) as client:
        summary = await check_mcp_session(client, mode, expect_version)
        return {**summary, "transport": "stdio"}


async def check_mcp_session(client, mode: str, expect_version: str | None) -> dict:
    """Lists the tools and rolls the dice on a connected `mcp.Client`."""
    from mcp_types import TextContent

    version = client.protocol_version
    if expect_version and version != expect_version:
        raise ScenarioFailed(f"negotiated protocol version {version}, expected {expect_version}")
    tools = await client.list_tools()
    names = [t.name for t in tools.tools]
    check_tools(names)
    result = await client.call_tool("roll_dice", {"n_dice": N_DICE})
    if result.is_error:
        raise ScenarioFailed(f"roll_dice returned an error: {result.content!r}")
    structured = result.structured_content
    if not isinstance(structured, dict) or set(structured) != {"result"}:
        raise ScenarioFailed(f'structured content is not {{"result": [...]}}: {structured!r}')
    dice = check_dice(structured["result"], "structuredContent.result")
    texts = [b.text for b in result.content if isinstance(b, TextContent)]
    if len(texts) != 1 or json.loads(texts[0]) != dice:
        raise ScenarioFailed(f"text content {texts!r} does not carry the dice {dice!r}")
    server = client.server_info
    return {
        "client": "mcp",
        "mode": mode,
        "protocol_version": version,
        "server": server.name if server else None,
        "tools": names,
        "dice": dice,
    }


# --- fastmcp -----------------------------------------------------------------------------


async def run_fastmcp(url: str, token: str | None, mode: str, expect_version: str | None) -> dict:
    from fastmcp import Client
    from fastmcp.client.transports import SSETransport, StreamableHttpTransport

    transport_type = SSETransport if is_sse(url) else StreamableHttpTransport
    transport = transport_type(url, auth=token, httpx_client_factory=recording_client_factory)
    async with Client(transport, mode=mode, timeout=DEADLINE_SECONDS, init_timeout=DEADLINE_SECONDS) as client:
        version = client.session.protocol_version
        if expect_version and version != expect_version:
            raise ScenarioFailed(f"negotiated protocol version {version}, expected {expect_version}")
        tools = await client.list_tools()
        names = [t.name for t in tools]
        check_tools(names)
        result = await client.call_tool("roll_dice", {"n_dice": N_DICE})
        if result.is_error:
            raise ScenarioFailed(f"roll_dice returned an error: {result.content!r}")
        dice = check_dice(result.data, "CallToolResult.data")
        if result.structured_content != {"result": dice}:
            raise ScenarioFailed(f"structured content {result.structured_content!r} != {{'result': {dice!r}}}")
        return {
            "client": "fastmcp",
            "mode": mode,
            "protocol_version": version,
            "tools": names,
            "dice": dice,
        }


# --- without a token ---------------------------------------------------------------------


async def run_unauthorized(url: str, client: str) -> dict:
    # First the raw HTTP exchange: the status and the challenge header.
    async with httpx2.AsyncClient(timeout=10.0) as http:
        if is_sse(url):
            response = await http.get(url, headers={"Accept": "text/event-stream"})
        else:
            response = await http.post(
                url,
                headers={"Accept": "application/json, text/event-stream", "Content-Type": "application/json"},
                content=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            )
        if response.status_code != 401:
            raise ScenarioFailed(f"without a token the server answered {response.status_code}, expected 401")
        challenge = response.headers.get("www-authenticate", "")
        if not challenge.startswith("Bearer"):
            raise ScenarioFailed(f"401 without a Bearer challenge: WWW-Authenticate={challenge!r}")
    # Then the real client: it must fail, and the failure must come from the 401.
    try:
        if client == "mcp":
            await run_mcp(url, None, "auto", None)
        else:
            await run_fastmcp(url, None, "auto", None)
    except ScenarioFailed:
        raise
    except Exception as e:  # noqa: BLE001 - the client's own error type varies by transport
        if not SEEN_STATUSES or any(status != 401 for status in SEEN_STATUSES):
            raise ScenarioFailed(
                f"the {client} client failed, but the server's answers were {SEEN_STATUSES} (expected only 401): {e!r}"
            ) from e
        return {
            "client": client,
            "status": 401,
            "www_authenticate": challenge,
            "client_statuses": SEEN_STATUSES,
            "client_error": f"{type(e).__name__}: {str(e)[:200]}",
        }
    raise ScenarioFailed(f"the {client} client connected without a token")


def innermost(error: BaseException) -> BaseException:
    """The error inside task-group wrappers (an exception group with one member)."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


SCENARIOS = {
    "mcp-auto": lambda a: run_mcp(a.url, a.token, "auto", a.expect_version),
    "mcp-legacy": lambda a: run_mcp(a.url, a.token, "legacy", a.expect_version),
    "fastmcp-auto": lambda a: run_fastmcp(a.url, a.token, "auto", a.expect_version),
    "fastmcp-legacy": lambda a: run_fastmcp(a.url, a.token, "legacy", a.expect_version),
    "mcp-auto-stdio": lambda a: run_mcp_stdio(a.command, a.arg, "auto", a.expect_version),
    "mcp-legacy-stdio": lambda a: run_mcp_stdio(a.command, a.arg, "legacy", a.expect_version),
    "mcp-unauthorized": lambda a: run_unauthorized(a.url, "mcp"),
    "fastmcp-unauthorized": lambda a: run_unauthorized(a.url, "fastmcp"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description="Python MCP clients against a dice server")
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--url")
    parser.add_argument("--command", help="the server program (the *-stdio scenarios)")
    parser.add_argument("--arg", action="append", default=[], help="an argument of --command")
    parser.add_argument("--token")
    parser.add_argument("--expect-version")
    args = parser.parse_args()
    if (args.command is None) == (args.url is None):
        parser.error("give --url, or --command for the *-stdio scenarios")

    async def guarded():
        with anyio.fail_after(DEADLINE_SECONDS):
            return await SCENARIOS[args.scenario](args)

    try:
        summary = anyio.run(guarded)
    except BaseException as e:  # noqa: BLE001 - report any client error as a failure
        cause = innermost(e)
        if isinstance(cause, ScenarioFailed):
            print(f"FAIL: {cause}", file=sys.stderr)
        elif isinstance(cause, TimeoutError):
            print(f"FAIL: no result within {DEADLINE_SECONDS}s", file=sys.stderr)
        else:
            print(f"FAIL: {type(cause).__name__}: {cause!r}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
