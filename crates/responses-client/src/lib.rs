//! A Responses API client on async-openai, with a builder for remote MCP tools and an approval loop.
