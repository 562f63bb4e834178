//! OAuth 2.1 resource server for MCP: bearer JWT verification as a tower layer, RFC 9728 metadata, and a development RSA key pair.
