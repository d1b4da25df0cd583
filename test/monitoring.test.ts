/**
 * The monitoring files in deploy/ (docs/monitoring.md) against what vipd really exports: every
 * metric name the Grafana dashboard, the alert rules and the rules' unit tests mention is one that
 * src/metrics registers (a histogram's _bucket, _sum and _count series count as its own); the
 * PrometheusRule carries exactly the plain rules file's groups; each alert has a unit test that
 * makes it fire; and the dashboard's queries parse (with promtool, when it is installed: .ci/run
 * installs it and runs the rules' unit tests).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { createMetrics } from '../src/metrics/metrics';
import { registerProxyMetrics } from '../src/metrics/proxy-metrics';

const ROOT = join(__dirname, '..', '..');
const DASHBOARD = 'deploy/grafana/vipd-dashboard.json';
const RULES = 'deploy/prometheus/vipd-rules.yaml';
const PROMETHEUS_RULE = 'deploy/prometheus/vipd-prometheusrule.yaml';
const RULES_TEST = 'deploy/prometheus/vipd-rules.test.yaml';

const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

interface Rule {
  readonly alert?: string;
  readonly record?: string;
  readonly expr: string;
}
interface RuleGroup {
  readonly name: string;
  readonly rules: readonly Rule[];
}
interface RulesFile {
  readonly groups: readonly RuleGroup[];
}
interface PrometheusRule {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string };
  readonly spec: RulesFile;
}
interface RulesTestFile {
  readonly rule_files: readonly string[];
  readonly tests: readonly {
    readonly name: string;
    readonly alert_rule_test?: readonly { readonly alertname: string; readonly exp_alerts: readonly unknown[] }[];
  }[];
}
interface Target {
  readonly expr: string;
  readonly refId: string;
  readonly datasource: { readonly uid: string };
}
interface Panel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly gridPos: { readonly h: number; readonly w: number; readonly x: number; readonly y: number };
  readonly datasource?: { readonly type: string; readonly uid: string };
  readonly targets?: readonly Target[];
}
interface Variable {
  readonly name: string;
  readonly type: string;
  readonly query: string | { readonly query: string };
  readonly datasource?: { readonly uid: string };
}
interface Annotation {
  readonly expr?: string;
  readonly datasource: { readonly uid: string };
}
interface Dashboard {
  readonly uid: string;
  readonly panels: readonly Panel[];
  readonly templating: { readonly list: readonly Variable[] };
  readonly annotations: { readonly list: readonly Annotation[] };
}

/**
 * Every series name vipd's /metrics can show, read from the exposition text of a registry with
 * everything src/metrics registers on it (prom-client's process metrics included).
 */
async function exportedNames(): Promise<Set<string>> {
  const m = createMetrics();
  registerProxyMetrics(m.registry);
  const names = new Set<string>();
  for (const [, name = '', type] of (await m.registry.metrics()).matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(name);
    const suffixes =
      type === 'histogram' ? ['_bucket', '_sum', '_count'] : type === 'summary' ? ['_sum', '_count'] : [];
    for (const s of suffixes) names.add(`${name}${s}`);
  }
  return names;
}

/** The metric names a text mentions (an expression, or a whole file), once each. */
function mentionedNames(text: string): string[] {
  return [...new Set(text.match(/\bvipd_[a-z0-9_]+/g) ?? [])];
}

const dashboard = () => JSON.parse(read(DASHBOARD)) as Dashboard;
const queries = (d: Dashboard) => d.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p, target: t })));

describe('monitoring: the metric names', () => {
  it('the registry exports every metric named in src/metrics, and nothing else of its own', async () => {
    const exported = await exportedNames();
    const dir = join(ROOT, 'src', 'metrics');
    const declared = readdirSync(dir)
      .filter((f) => f.endsWith('.ts'))
      .flatMap((f) => [...readFileSync(join(dir, f), 'utf8').matchAll(/\bname: '(vipd_[a-z0-9_]+)'/g)])
      .map((x) => x[1]);
    assert.ok(declared.length > 30, `found the declarations (${declared.length})`);
    // prom-client's default metrics, under the vipd_ prefix: vipd_process_*, vipd_nodejs_*.
    const own = [...exported].filter((n) => !n.startsWith('vipd_process_') && !n.startsWith('vipd_nodejs_')).sort();
    assert.deepEqual(own, [...new Set(declared)].sort());
  });

  it('finds a name vipd does not export', async () => {
    const exported = await exportedNames();
    // prom-client's own names take the prefix once: its process_cpu_seconds_total is vipd_process_cpu_...
    const unknown = mentionedNames(
      'sum(vipd_vip_held) > 1 or vipd_vip_holders or vipd_process_cpu_seconds_total' +
        ' or rate(vipd_process_process_cpu_seconds_total[1m])',
    ).filter((n) => !exported.has(n));
    assert.deepEqual(unknown, ['vipd_vip_holders', 'vipd_process_process_cpu_seconds_total']);
    // A histogram's series are its own; prom-client's GC durations are one.
    assert.ok(exported.has('vipd_nodejs_gc_duration_seconds_bucket'));
  });

  for (const file of [DASHBOARD, RULES, PROMETHEUS_RULE, RULES_TEST]) {
    it(`${file} names only metrics vipd exports`, async () => {
      const exported = await exportedNames();
      const names = mentionedNames(read(file));
      assert.ok(names.length >= 5, `${file} mentions vipd's metrics (${names.join(', ')})`);
      assert.deepEqual(
        names.filter((n) => !exported.has(n)),
        [],
        `${file}: names vipd does not export`,
      );
    });
  }
});

describe('monitoring: the alert rules', () => {
  const plain = parse(read(RULES)) as RulesFile;
  const alerts = plain.groups.flatMap((g) => g.rules.map((r) => r.alert ?? ''));

  it('the PrometheusRule carries the same groups as the plain rules file', () => {
    const manifest = parse(read(PROMETHEUS_RULE)) as PrometheusRule;
    assert.equal(manifest.apiVersion, 'monitoring.coreos.com/v1');
    assert.equal(manifest.kind, 'PrometheusRule');
    assert.equal(manifest.metadata.name, 'vipd');
    assert.deepEqual(
      manifest.spec.groups,
      plain.groups,
      `${PROMETHEUS_RULE}'s spec.groups must be ${RULES}'s groups: change both`,
    );
  });

  it('alerts on no VIP holder, two holders, no quorum, a peer unheard, a backend down and a VIP conflict', () => {
    for (const a of [
      'VipdNoVipHolder',
      'VipdTwoVipHolders',
      'VipdNoQuorum',
      'VipdPeerUnheard',
      'VipdBackendDown',
      'VipdVipConflict',
    ])
      assert.ok(alerts.includes(a), a);
    assert.equal(new Set(alerts).size, alerts.length, 'alert names are unique');
  });

  it('every alert has a unit test in which it fires, and one in which it does not', () => {
    const tests = parse(read(RULES_TEST)) as RulesTestFile;
    assert.deepEqual(tests.rule_files, ['vipd-rules.yaml']);
    const cases = tests.tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const a of alerts) {
      assert.ok(
        cases.some((c) => c.alertname === a && c.exp_alerts.length > 0),
        `${a} fires in a test`,
      );
      assert.ok(
        cases.some((c) => c.alertname === a && c.exp_alerts.length === 0),
        `${a} stays quiet in a test`,
      );
    }
    assert.deepEqual(
      cases.map((c) => c.alertname).filter((a) => !alerts.includes(a)),
      [],
      'tests of unknown alerts',
    );
  });
});

describe('monitoring: the Grafana dashboard', () => {
  it('is templated on a Prometheus datasource and a node variable, and every query uses both', () => {
    const d = dashboard();
    const vars = new Map(d.templating.list.map((v) => [v.name, v]));
    assert.equal(vars.get('datasource')?.type, 'datasource');
    assert.equal(vars.get('datasource')?.query, 'prometheus');
    const node = vars.get('node');
    assert.equal(node?.type, 'query');
    const nodeQuery = typeof node.query === 'string' ? node.query : node.query.query;
    assert.match(nodeQuery, /^label_values\(vipd_\w+, instance\)$/);
    assert.equal(node.datasource?.uid, '${datasource}');
    const all = queries(d);
    assert.ok(all.length >= 15, `queries: ${all.length}`);
    for (const { panel, target } of all) {
      assert.equal(panel.datasource?.uid, '${datasource}', panel.title);
      assert.equal(target.datasource.uid, '${datasource}', panel.title);
      // The VIP holder count is the cluster's, whatever nodes are selected.
      if (panel.title === 'VIP holders') continue;
      assert.match(target.expr, /instance=~"\$node"/, `${panel.title}: ${target.expr}`);
    }
    for (const a of d.annotations.list.filter((x) => x.expr !== undefined)) {
      assert.equal(a.datasource.uid, '${datasource}');
    }
  });

  it('shows election state, VIP holders, transitions, dropped heartbeats, backends, connections, connect failures', () => {
    const used = new Set(queries(dashboard()).flatMap(({ target }) => mentionedNames(target.expr)));
    for (const name of [
      'vipd_election_state',
      'vipd_vip_held',
      'vipd_election_transitions_total',
      'vipd_heartbeats_dropped_total',
      'vipd_backend_up',
      'vipd_proxy_connections_active',
      'vipd_vip_client_connections',
      'vipd_proxy_connect_failures_total',
    ])
      assert.ok(used.has(name), name);
  });

  it('has unique panel ids and refIds, and panels that fit the 24-column grid without overlapping', () => {
    const d = dashboard();
    assert.equal(new Set(d.panels.map((p) => p.id)).size, d.panels.length);
    const cells = new Set<string>();
    for (const p of d.panels) {
      const refs = (p.targets ?? []).map((t) => t.refId);
      assert.equal(new Set(refs).size, refs.length, p.title);
      assert.ok(p.gridPos.x + p.gridPos.w <= 24, p.title);
      for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++) {
        for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
          assert.ok(!cells.has(`${x},${y}`), `${p.title} overlaps another panel at ${x},${y}`);
          cells.add(`${x},${y}`);
        }
      }
    }
  });

  const promtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  it('every query parses (promtool check rules on the queries as recording rules)', {
    skip: promtool.status === 0 ? false : 'promtool is not installed (apt-get install prometheus)',
  }, () => {
    const d = dashboard();
    // Grafana's variables, as a Prometheus-side rule would spell them.
    const concrete = (expr: string) =>
      expr.replaceAll('$node', '.*').replaceAll('$__rate_interval', '1m').replaceAll('$__range', '3h');
    const rules = [
      ...queries(d).map(({ panel, target }) => ({
        record: `dashboard:panel_${panel.id}:${target.refId}`,
        expr: concrete(target.expr),
      })),
      ...d.annotations.list.flatMap((a, i) =>
        a.expr === undefined ? [] : [{ record: `dashboard:annotation_${i}`, expr: concrete(a.expr) }],
      ),
    ];
    for (const r of rules) assert.doesNotMatch(r.expr, /\$/, `${r.record}: a variable left: ${r.expr}`);
    const dir = mkdtempSync(join(tmpdir(), 'vipd-dashboard-'));
    try {
      const file = join(dir, 'queries.yaml');
      writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules }] }));
      const r = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
      assert.match(r.stdout, new RegExp(`SUCCESS: ${rules.length} rules found`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
