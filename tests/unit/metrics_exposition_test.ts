import { equal, throws } from "node:assert/strict";
import { formatMetrics } from "../../metrics/exposition.ts";
import { serverFamilies } from "../../metrics/collect.ts";
import { parseHostPort } from "../../cli/metrics_flag.ts";
import { noRefusals } from "../../admission/refusals.ts";
import { DURATION_BOUNDS_S, noDurations, observeDuration } from "../../server/closes.ts";

Deno.test("metrics text: label values and help are escaped", () => {
  const text = formatMetrics([{
    name: "x_total",
    help: "a \\ b\nc",
    type: "counter",
    samples: [{ labels: { reason: 'q"uote\\back\nline', kind: "plain" }, value: 2 }],
  }]);
  equal(
    text,
    "# HELP x_total a \\\\ b\\nc\n# TYPE x_total counter\n" +
      'x_total{reason="q\\"uote\\\\back\\nline",kind="plain"} 2\n',
  );
});

Deno.test("metrics text: histogram buckets are cumulative, end with +Inf, then _sum and _count", () => {
  const text = formatMetrics([{
    name: "d_seconds",
    help: "D.",
    type: "histogram",
    samples: [{ labels: { worker: "1" }, bounds: [0.5, 1, 2], counts: [1, 0, 2, 3], sum: 12.25 }],
  }]);
  equal(
    text,
    [
      "# HELP d_seconds D.",
      "# TYPE d_seconds histogram",
      'd_seconds_bucket{worker="1",le="0.5"} 1',
      'd_seconds_bucket{worker="1",le="1"} 1',
      'd_seconds_bucket{worker="1",le="2"} 3',
      'd_seconds_bucket{worker="1",le="+Inf"} 6',
      'd_seconds_sum{worker="1"} 12.25',
      'd_seconds_count{worker="1"} 6',
      "",
    ].join("\n"),
  );
});

Deno.test("metrics text: an empty histogram still has every bucket at 0", () => {
  const text = formatMetrics([{
    name: "e_seconds",
    help: "E.",
    type: "histogram",
    samples: [{ bounds: [1, 2], counts: [0, 0], sum: 0 }],
  }]);
  equal(text.includes('e_seconds_bucket{le="2"} 0\ne_seconds_bucket{le="+Inf"} 0'), true);
});

Deno.test("metrics text: special values, bad names and bad histograms", () => {
  equal(
    formatMetrics([{ name: "g", help: "G.", type: "gauge", samples: [{ value: NaN }] }]),
    "# HELP g G.\n# TYPE g gauge\ng NaN\n",
  );
  throws(
    () => formatMetrics([{ name: "bad-name", help: "", type: "gauge", samples: [] }]),
    { message: 'invalid metric name "bad-name"' },
  );
  throws(
    () =>
      formatMetrics([{
        name: "g",
        help: "",
        type: "gauge",
        samples: [{ labels: { "a-b": "x" }, value: 1 }],
      }]),
    { message: 'invalid label name "a-b"' },
  );
  throws(
    () =>
      formatMetrics([{
        name: "h",
        help: "",
        type: "histogram",
        samples: [{ bounds: [2, 1], counts: [0, 0], sum: 0 }],
      }]),
    { message: "histogram h: bounds are not ascending" },
  );
});

Deno.test("metrics: a server's counts become families, idle and lifetime as closes", () => {
  const durations = noDurations();
  observeDuration(durations, 0.002);
  observeDuration(durations, 0.002);
  observeDuration(durations, 4000);
  const text = formatMetrics(serverFamilies({
    open: 1,
    served: 3,
    bytesIn: 7,
    bytesOut: 7,
    refusals: { ...noRefusals(), denied: 2, idle: 1, "proxy-header": 4 },
    durations,
  }, { logLinesDropped: 5 }));
  equal(text.includes('echo_connections_refused_total{reason="denied"} 2\n'), true);
  equal(text.includes('echo_connections_refused_total{reason="proxy-header"} 4\n'), true);
  equal(text.includes('echo_connections_refused_total{reason="idle"}'), false);
  equal(text.includes('echo_connection_duration_seconds_bucket{le="0.005"} 2\n'), true);
  equal(text.includes(`le="${DURATION_BOUNDS_S.at(-1)}"} 2\n`), true);
  equal(text.includes('echo_connection_duration_seconds_bucket{le="+Inf"} 3\n'), true);
  equal(text.includes("echo_connection_duration_seconds_count 3\n"), true);
  equal(text.includes("echo_log_lines_dropped_total 5\n"), true);
  equal(text.includes("echo_datagrams"), false);
});

Deno.test("--metrics HOST:PORT is read strictly", () => {
  equal(parseHostPort("0.0.0.0:9100", "metrics").port, 9100);
  equal(parseHostPort("localhost:1", "metrics").hostname, "localhost");
  equal(parseHostPort("[2001:db8::1]:80", "metrics").hostname, "2001:db8::1");
  for (const bad of ["", ":", "host:", "host:65536", "::1:80", "host:12a", "a b:1"]) {
    throws(() => parseHostPort(bad, "metrics"), { message: /expected HOST:PORT/ });
  }
});
