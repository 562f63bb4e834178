"""Scenario f of `cargo xtask replicas`: the Python `mcp` 2.x and `fastmcp` clients through the
nginx load balancer (round robin, no stickiness) in front of three `dice_server --echo`
replicas that share their sessions through Redis.

Every client lists the tools (`roll_dice` and `echo` must be there), then calls `roll_dice`
(3 dice, each in 1..=6) and `echo` (a unique token it must get back) CALLS times each. With
round robin, consecutive requests of one session land on different replicas, so every client
crosses replicas on nearly every request.

Usage: replicas_clients.py --mcp-url http://LB/mcp --sse-url http://LB/sse [--calls N]
Exit 0 and one JSON line per client plus a summary line on success; exit 1 and
`FAIL: <client>: <reason>` lines on stderr when any client fails.
"""

import argparse
import json
import secrets
import sys

import anyio

DEADLINE_SECONDS = 60
N_DICE = 3


class ScenarioFailed(Exception):
    """A check did not hold."""


def check_dice(values, where: str) -> None:
    if not isinstance(values, list) or len(values) != N_DICE:
        raise ScenarioFailed(f"{where}: expected {N_DICE} dice, got {values!r}")
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 6:
            raise ScenarioFailed(f"{where}: {v!r} is not a die value ({values!r})")


def check_tools(names: list[str]) -> None:
    if "roll_dice" not in names or "echo" not in names:
        raise ScenarioFailed(f"tools/list lacks roll_dice or echo: {names!r}")


def new_token(label: str, i: int) -> str:
    return f"py-{label}-{i}-{secrets.token_hex(8)}"


async def run_mcp(url: str, mode: str, calls: int, label: str) -> dict:
    from mcp import Client
    from mcp.client.sse import sse_client
    from mcp.client.streamable_http import streamable_http_client

    if url.rstrip("/").endswith("/sse"):
        transport = sse_client(url, timeout=10, sse_read_timeout=DEADLINE_SECONDS)
    else:
        transport = streamable_http_client(url)
    async with Client(transport, mode=mode) as client:
        version = client.protocol_version
        tools = await client.list_tools()
        names = [t.name for t in tools.tools]
        check_tools(names)
        for i in range(calls):
            result = await client.call_tool("roll_dice", {"n_dice": N_DICE})
            if result.is_error:
                raise ScenarioFailed(f"roll_dice #{i} returned an error: {result.content!r}")
            check_dice((result.structured_content or {}).get("result"), f"roll_dice #{i}")
            token = new_token(label, i)
            result = await client.call_tool("echo", {"token": token})
            got = (result.structured_content or {}).get("result")
            if result.is_error or got != token:
                raise ScenarioFailed(f"echo #{i}: sent {token!r}, got {got!r} ({result.content!r})")
        return {"client": label, "protocol_version": version, "tools": names, "calls": 2 * calls}


async def run_fastmcp(url: str, mode: str, calls: int, label: str) -> dict:
    from fastmcp import Client
    from fastmcp.client.transports import SSETransport, StreamableHttpTransport

    transport_type = SSETransport if url.rstrip("/").endswith("/sse") else StreamableHttpTransport
    async with Client(
        transport_type(url), mode=mode, timeout=DEADLINE_SECONDS, init_timeout=DEADLINE_SECONDS
    ) as client:
        version = client.session.protocol_version
        tools = await client.list_tools()
        names = [t.name for t in tools]
        check_tools(names)
        for i in range(calls):
            result = await client.call_tool("roll_dice", {"n_dice": N_DICE})
            check_dice(result.data, f"roll_dice #{i}")
            token = new_token(label, i)
            result = await client.call_tool("echo", {"token": token})
            if result.data != token:
                raise ScenarioFailed(f"echo #{i}: sent {token!r}, got {result.data!r}")
        return {"client": label, "protocol_version": version, "tools": names, "calls": 2 * calls}


def innermost(error: BaseException) -> BaseException:
    """The error inside task-group wrappers (an exception group with one member)."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def main() -> int:
    parser = argparse.ArgumentParser(description="Python MCP clients through the load balancer")
    parser.add_argument("--mcp-url", required=True)
    parser.add_argument("--sse-url", required=True)
    parser.add_argument("--calls", type=int, default=5)
    args = parser.parse_args()

    clients = [
        ("mcp-legacy/streamable", lambda: run_mcp(args.mcp_url, "legacy", args.calls, "mcp-legacy-streamable")),
        ("mcp-auto/streamable", lambda: run_mcp(args.mcp_url, "auto", args.calls, "mcp-auto-streamable")),
        ("mcp-legacy/sse", lambda: run_mcp(args.sse_url, "legacy", args.calls, "mcp-legacy-sse")),
        ("mcp-auto/sse", lambda: run_mcp(args.sse_url, "auto", args.calls, "mcp-auto-sse")),
        ("fastmcp-legacy/streamable", lambda: run_fastmcp(args.mcp_url, "legacy", args.calls, "fastmcp-legacy-streamable")),
        ("fastmcp-auto/streamable", lambda: run_fastmcp(args.mcp_url, "auto", args.calls, "fastmcp-auto-streamable")),
        ("fastmcp-legacy/sse", lambda: run_fastmcp(args.sse_url, "legacy", args.calls, "fastmcp-legacy-sse")),
    ]
    failures = 0
    for name, scenario in clients:

        async def guarded():
            with anyio.fail_after(DEADLINE_SECONDS):
                return await scenario()

        try:
            print(json.dumps(anyio.run(guarded)), flush=True)
        except BaseException as e:  # noqa: BLE001 - report any client error as a failure
            cause = innermost(e)
            if isinstance(cause, ScenarioFailed):
                reason = str(cause)
            elif isinstance(cause, TimeoutError):
                reason = f"no result within {DEADLINE_SECONDS}s"
            else:
                reason = f"{type(cause).__name__}: {cause!r}"
            print(f"FAIL: {name}: {reason}", file=sys.stderr, flush=True)
            failures += 1
    print(json.dumps({"clients": len(clients), "failed": failures}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
