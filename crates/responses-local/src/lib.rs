//! A faithful local stand-in for OpenAI's POST /v1/responses with remote MCP tools, acting as an MCP client.
