"""Scenario group 6 of `cargo xtask interop`: the Python `mcp` 2.x client against the reference
stdio server `@modelcontextprotocol/server-everything` behind `mcp-gateway`.

Exit 0 and a one-line JSON summary on success, exit 1 and the reason on failure.

Usage: gateway_everything.py --url URL --mode auto|legacy [--token T] --secret S --denied TOOL
  Checks: the server is the reference server; `echo` and `get-sum` answer through the gateway;
  `get-env` (the child's environment) does not contain S, a value only the gateway's
  environment holds; TOOL (hidden with --deny-tool) is not listed and calling it fails with
  "Unknown tool: TOOL". `trigger-sampling-request` (the child asks its client for sampling
  during the call) is answered by this client's sampling callback: forwarded as a request on
  the session in legacy mode; in auto mode (2026-07-28, translated by the gateway) as an
  `InputRequiredResult` the client answers by retrying the call.
URL ending in /sse selects legacy HTTP+SSE, anything else streamable HTTP.
"""

import argparse
import json
import sys

import anyio
import httpx2

DEADLINE_SECONDS = 30
SAMPLED = "sampled through the gateway"


class ScenarioFailed(Exception):
    """A check did not hold."""


def texts(result) -> str:
    from mcp_types import TextContent

    return " ".join(b.text for b in result.content if isinstance(b, TextContent))


async def sample(context, params):
    """The client's model: always the same answer."""
    from mcp_types import CreateMessageResult, TextContent

    return CreateMessageResult(
        role="assistant",
        content=TextContent(type="text", text=SAMPLED),
        model="interop-model",
        stop_reason="endTurn",
    )


async def run(args) -> dict:
    from mcp import Client
    from mcp.client.sse import sse_client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(DEADLINE_SECONDS)) as http:
        if args.url.rstrip("/").endswith("/sse"):
            transport = sse_client(args.url, headers=headers, timeout=10, sse_read_timeout=DEADLINE_SECONDS)
        else:
            transport = streamable_http_client(args.url, http_client=http)
        async with Client(transport, mode=args.mode, sampling_callback=sample) as client:
            server = client.server_info
            if server is None or server.name != "mcp-servers/everything":
                raise ScenarioFailed(f"server is {server!r}, not the reference server")
            names = [t.name for t in (await client.list_tools()).tools]
            for wanted in ("echo", "get-sum", "get-env", "trigger-sampling-request"):
                if wanted not in names:
                    raise ScenarioFailed(f"tools/list has no {wanted}: {names!r}")
            if args.denied in names:
                raise ScenarioFailed(f"the denied tool {args.denied} is listed")
            echo = texts(await client.call_tool("echo", {"message": "through the gateway"}))
            if "through the gateway" not in echo:
                raise ScenarioFailed(f"echo answered {echo!r}")
            total = texts(await client.call_tool("get-sum", {"a": 2, "b": 3}))
            if "5" not in total:
                raise ScenarioFailed(f"get-sum answered {total!r}")
            env = texts(await client.call_tool("get-env", {}))
            if args.secret in env:
                raise ScenarioFailed("the gateway's secret reached the child's environment")
            if "PATH" not in env:
                raise ScenarioFailed(f"get-env shows no PATH: {env[:200]!r}")
            sampling = texts(
                await client.call_tool("trigger-sampling-request", {"prompt": "hello", "maxTokens": 20})
            )
            if SAMPLED not in sampling:
                raise ScenarioFailed(f"trigger-sampling-request answered {sampling!r}")
            try:
                await client.call_tool(args.denied, {})
            except Exception as error:  # the SDK raises its MCPError for a JSON-RPC error
                refusal = str(error)
            else:
                raise ScenarioFailed(f"calling the denied tool {args.denied} succeeded")
            if f"Unknown tool: {args.denied}" not in refusal:
                raise ScenarioFailed(f"the denied call failed with {refusal!r}")
            return {
                "mode": args.mode,
                "protocol_version": client.protocol_version,
                "tools": len(names),
                "echo": echo,
                "sum": total,
                "sampling": SAMPLED in sampling,
                "refusal": refusal,
            }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--mode", choices=["auto", "legacy"], required=True)
    parser.add_argument("--token")
    parser.add_argument("--secret", required=True)
    parser.add_argument("--denied", required=True)
    args = parser.parse_args()

    async def guarded():
        with anyio.fail_after(DEADLINE_SECONDS):
            return await run(args)

    try:
        summary = anyio.run(guarded)
    except ScenarioFailed as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
