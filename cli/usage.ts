/**
 * The program's name and version, and its top-level usage text.
 *
 * @module
 */
import denoJson from "../deno.json" with { type: "json" };

/** The version in deno.json, printed by `--version`. */
export const VERSION: string = denoJson.version;

/** What `echo-server --help` prints: the commands, and where their flags are explained. */
export const USAGE =
  `echo-server ${VERSION}: an echo server (TCP, TLS, Unix sockets, UDP), its client and its load tester

Usage:
  echo-server [serve] [FLAGS]     run the server (the default command)
  echo-server client [FLAGS]      talk to a server
  echo-server bench [FLAGS]       load a server and verify every byte
  echo-server --version           print the version

Run "echo-server COMMAND --help" for a command's flags.

Examples:
  echo-server --port 7000
  echo-server client -m "Hello, server"
  echo-server client --count 5 --interval 500ms
  printf 'one\\ntwo\\n' | echo-server client
`;
