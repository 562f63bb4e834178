"""The seed's FastMCP dice server (server.py), run by `cargo xtask interop`.

The tool and the server are the seed's code unchanged. Only the `__main__` block differs: it
takes the transport ("sse", "http" or "stdio") and the port from the command line, and with
`--public-key-file` it protects the server with FastMCP's `JWTVerifier` (the successor of the
seed's `BearerAuthProvider`) for audience "dice-server", so that our Rust client can call it
with a token minted by our `RsaKeyPair`.

Usage: fastmcp_dice_server.py --transport sse|http --port P [--public-key-file F]
       fastmcp_dice_server.py --transport stdio
"""

import argparse
import random

from fastmcp import FastMCP


def build(auth=None) -> FastMCP:
    mcp = FastMCP(name="Dice Roller", auth=auth)

    @mcp.tool()
    def roll_dice(n_dice: int) -> list[int]:
        """Roll `n_dice` 6-sided dice and return the results."""
        return [random.randint(1, 6) for _ in range(n_dice)]

    return mcp


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transport", choices=["sse", "http", "stdio"], required=True)
    parser.add_argument("--port", type=int, help="required for sse and http")
    parser.add_argument("--public-key-file", help="PEM public key; enables JWTVerifier")
    args = parser.parse_args()

    auth = None
    if args.public_key_file:
        from fastmcp.server.auth.providers.jwt import JWTVerifier

        with open(args.public_key_file, encoding="utf-8") as f:
            auth = JWTVerifier(public_key=f.read(), audience="dice-server")

    if args.transport == "stdio":
        build(auth).run(transport="stdio", show_banner=False)
    else:
        if args.port is None:
            parser.error("--port is required for sse and http")
        build(auth).run(transport=args.transport, host="127.0.0.1", port=args.port)
