// Scenario group 4 of `cargo xtask interop`: the TypeScript SDK's `Client` (the one desktop
// and IDE hosts are built on) against a dice server over stdio, legacy SSE or streamable HTTP.
//
// It lists the tools, calls `roll_dice {"n_dice": 3}` (the SDK validates `structuredContent`
// against the tool's `outputSchema` with Ajv) and prints one JSON line. Anything the SDK or
// its validator writes through console.warn/console.error (e.g. `unknown format "uint8"
// ignored in schema ...`) fails the scenario: exit 2 with the warnings.
//
// Usage: node ts_client.mjs --sdk DIR (--url URL [--token T] [--expect-401]
//                                     | --command PROGRAM [--arg A]...)
//   --sdk       the installed @modelcontextprotocol/sdk package directory
//   URL ending in /sse selects legacy HTTP+SSE, anything else streamable HTTP.
// Exit 0 on success, 1 with the reason on stderr on failure.

import { join } from "node:path";
import { pathToFileURL } from "node:url";

const N_DICE = 3;
const DEADLINE_MS = 30_000;

const warnings = [];
for (const level of ["warn", "error"]) {
  const original = console[level].bind(console);
  console[level] = (...args) => {
    warnings.push(args.map(String).join(" "));
    original(...args);
  };
}

function parseArgs(argv) {
  const args = { args: [], expect401: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${flag} needs a value`);
      return argv[++i];
    };
    switch (flag) {
      case "--sdk": args.sdk = value(); break;
      case "--url": args.url = value(); break;
      case "--token": args.token = value(); break;
      case "--command": args.command = value(); break;
      case "--arg": args.args.push(value()); break;
      case "--expect-401": args.expect401 = true; break;
      default: throw new Error(`unknown argument ${flag}`);
    }
  }
  if (!args.sdk || (!args.url && !args.command)) {
    throw new Error("usage: ts_client.mjs --sdk DIR (--url URL | --command PROGRAM)");
  }
  return args;
}

async function load(sdk, module) {
  return import(pathToFileURL(join(sdk, "dist", "esm", module)).href);
}

async function transportFor(args) {
  if (args.command) {
    const { StdioClientTransport } = await load(args.sdk, "client/stdio.js");
    const env = { ...process.env, RUST_LOG: "warn" };
    return ["stdio", new StdioClientTransport({ command: args.command, args: args.args, env, stderr: "inherit" })];
  }
  const headers = args.token ? { Authorization: `Bearer ${args.token}` } : {};
  const url = new URL(args.url);
  if (url.pathname.replace(/\/$/, "").endsWith("/sse")) {
    const { SSEClientTransport } = await load(args.sdk, "client/sse.js");
    // The SSE GET goes through eventSourceInit's fetch; the POSTs through requestInit.
    const fetchWithHeaders = (input, init) =>
      fetch(input, { ...init, headers: { ...(init?.headers ?? {}), ...headers } });
    return ["sse", new SSEClientTransport(url, { eventSourceInit: { fetch: fetchWithHeaders }, requestInit: { headers } })];
  }
  const { StreamableHTTPClientTransport } = await load(args.sdk, "client/streamableHttp.js");
  return ["streamable", new StreamableHTTPClientTransport(url, { requestInit: { headers } })];
}

function checkDice(result) {
  if (result.isError) throw new Error(`roll_dice returned an error: ${JSON.stringify(result.content)}`);
  const dice = result.structuredContent?.result;
  if (!Array.isArray(dice) || dice.length !== N_DICE || !dice.every((d) => Number.isInteger(d) && d >= 1 && d <= 6)) {
    throw new Error(`structuredContent is not {"result": [${N_DICE} dice]}: ${JSON.stringify(result.structuredContent)}`);
  }
  const text = result.content?.[0]?.text;
  if (JSON.stringify(JSON.parse(text)) !== JSON.stringify(dice)) {
    throw new Error(`text content ${text} does not carry the dice ${JSON.stringify(dice)}`);
  }
  return dice;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const { Client } = await load(args.sdk, "client/index.js");
  const [kind, transport] = await transportFor(args);
  const client = new Client({ name: "interop-ts", version: "1.0.0" });
  try {
    await client.connect(transport);
  } catch (error) {
    // The SDK's SSE and streamable HTTP errors carry the HTTP status as `code`.
    if (args.expect401 && error?.code === 401) {
      // The refusal is the expected outcome; the SDK's own report of it is not a warning.
      warnings.length = 0;
      return { transport: kind, status: error.code, refused: String(error).slice(0, 200) };
    }
    throw error;
  }
  if (args.expect401) throw new Error("connected without a token");
  const tools = (await client.listTools()).tools;
  const names = tools.map((t) => t.name);
  if (!names.includes("roll_dice")) throw new Error(`tools/list has no roll_dice: ${names}`);
  const dice = checkDice(await client.callTool({ name: "roll_dice", arguments: { n_dice: N_DICE } }));
  const server = client.getServerVersion();
  await client.close();
  return { client: "ts-sdk", transport: kind, server: server?.name, tools: names, dice };
}

const deadline = setTimeout(() => {
  process.stderr.write(`FAIL: no result within ${DEADLINE_MS} ms\n`);
  process.exit(1);
}, DEADLINE_MS);

try {
  const summary = await main();
  clearTimeout(deadline);
  if (warnings.length > 0) {
    process.stderr.write(`FAIL: ${warnings.length} warning(s) from the SDK:\n${warnings.join("\n")}\n`);
    process.exit(2);
  }
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  process.exit(0);
} catch (error) {
  clearTimeout(deadline);
  process.stderr.write(`FAIL: ${error?.stack ?? error}\n`);
  process.exit(1);
}
