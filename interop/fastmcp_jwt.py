"""JWT cross-check helpers for `cargo xtask interop`, using FastMCP's own code.

  mint   --audience A --public-key-out F
         Generates a key pair with FastMCP's `RSAKeyPair`, writes the public key (PEM) to F and
         prints a token from `RSAKeyPair.create_token(audience=A)`.
  verify --public-key F --audience A TOKEN
         Checks TOKEN with FastMCP's `JWTVerifier(public_key=..., audience=A)`; exit 0 when it
         accepts the token, 1 when it rejects it (printing why on stderr).
"""

import argparse
import sys

import anyio
from fastmcp.server.auth.providers.jwt import JWTVerifier, RSAKeyPair


def mint(args) -> int:
    key_pair = RSAKeyPair.generate()
    with open(args.public_key_out, "w", encoding="utf-8") as f:
        f.write(key_pair.public_key)
    print(key_pair.create_token(audience=args.audience))
    return 0


def verify(args) -> int:
    with open(args.public_key, encoding="utf-8") as f:
        verifier = JWTVerifier(public_key=f.read(), audience=args.audience)

    async def check():
        with anyio.fail_after(10):
            return await verifier.verify_token(args.token)

    access = anyio.run(check)
    if access is None:
        print("rejected: JWTVerifier.verify_token returned None", file=sys.stderr)
        return 1
    print(f"accepted: client_id={access.client_id} scopes={access.scopes} expires_at={access.expires_at}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="FastMCP JWT mint/verify")
    commands = parser.add_subparsers(dest="command", required=True)
    m = commands.add_parser("mint")
    m.add_argument("--audience", required=True)
    m.add_argument("--public-key-out", required=True)
    v = commands.add_parser("verify")
    v.add_argument("--public-key", required=True)
    v.add_argument("--audience", required=True)
    v.add_argument("token")
    args = parser.parse_args()
    return mint(args) if args.command == "mint" else verify(args)


if __name__ == "__main__":
    sys.exit(main())
