"""The seed's Python call of the Responses API with an MCP tool, run by `cargo xtask interop`.

This is the seed's client code unchanged, except for where it points (taken from the
environment so that the harness can pick free ports):
  - `base_url` of `OpenAI()`: our local Responses endpoint (RESPONSES_BASE_URL, e.g.
    http://127.0.0.1:8080/v1); OPENAI_API_KEY is the key the endpoint was started with
    (`--api-key`; without one it prints a generated key at start);
  - `url`: our dice server (DICE_SERVER_URL, e.g. http://127.0.0.1:8000);
  - `access_token`: when DICE_SERVER_TOKEN is set, the seed's authenticated variant (the MCP
    tool carries `headers: {"Authorization": "Bearer ..."}`); otherwise the seed's first variant.
"""

import os

from openai import OpenAI

# Your server URL (replace with your actual URL)
url = os.environ["DICE_SERVER_URL"]

# Your access token (replace with your actual token)
access_token = os.environ.get("DICE_SERVER_TOKEN")

client = OpenAI(base_url=os.environ["RESPONSES_BASE_URL"])

if access_token is None:
    resp = client.responses.create(
        model="gpt-4.1",
        tools=[
            {
                "type": "mcp",
                "server_label": "dice_server",
                "server_url": f"{url}/sse",
                "require_approval": "never",
            },
        ],
        input="Roll a few dice!",
    )
else:
    resp = client.responses.create(
        model="gpt-4.1",
        tools=[
            {
                "type": "mcp",
                "server_label": "dice_server",
                "server_url": f"{url}/sse",
                "require_approval": "never",
                "headers": {
                    "Authorization": f"Bearer {access_token}"
                }
            },
        ],
        input="Roll a few dice!",
    )

print(resp.output_text)
