//! Model Context Protocol types, JSON-RPC 2.0, version negotiation, server core and client session logic, with no I/O.
