#!/usr/bin/env node
/**
 * The `vipd` command line. Exit codes: 0 ok, 1 runtime failure, 2 bad usage or invalid config
 * (README.md, "Command line"). Subcommands parse their flags here and call into the library; no logic
 * lives here.
 */
import { Command, CommanderError, Option } from 'commander';
import { type DaemonStatus, formatStatus } from '../admin/status';
import { formatHostPort } from '../config/host-port';
import { effectiveConfigYaml, type LoadedConfig, loadConfigFile, readConfigFile } from '../config/load';
import type { NodeNameSource } from '../config/node-name';
import { configWarnings, secretWarnings } from '../config/warnings';
import { Daemon } from '../daemon';
import { ConfigError, describeError, ExitCode, echo, UsageError, VipdError } from '../errors';
import { runLab } from '../lab/lab';
import {
  createLogger,
  LOG_FORMATS,
  LOG_LEVELS,
  type LogFormat,
  type Logger,
  type LogLevel,
  resolveLogFormat,
} from '../log/logger';
import { registerManifestCommands } from '../manifest/cli';
import { VERSION } from '../version';
import { Witness } from '../witness';

const DEFAULT_CONFIG = '/etc/vipd/vipd.yaml';

function configOption(): Option {
  return new Option('-c, --config <file>', 'the vipd config file').default(DEFAULT_CONFIG);
}

function logLevelOption(): Option {
  return new Option('--log-level <level>', 'log level')
    .choices(LOG_LEVELS)
    .argParser(oneOf('--log-level', LOG_LEVELS))
    .default('info');
}

/**
 * A flag's value checked against its choices, refused as every other bad flag is (a UsageError
 * naming the flag, the value and the choices) rather than in commander's words. Set after
 * `.choices()`, which still lists them in --help.
 */
function oneOf<T extends string>(flag: string, choices: readonly T[]): (value: string) => T {
  return (value) => {
    const choice = choices.find((c) => c === value);
    if (choice !== undefined) return choice;
    throw UsageError.flags([`${flag}: got ${echo(value)}, expected one of ${choices.join(', ')}`]);
  };
}

export function buildProgram(): Command {
  const program = new Command('vipd')
    .description('Virtual IP and apiserver balancer for highly available Kubernetes control planes')
    .version(VERSION, '-V, --version', 'print the version')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('run')
    .description('run the daemon: join the election, hold the VIP when elected, balance the apiservers')
    .addOption(configOption())
    .addOption(logLevelOption())
    .addOption(
      new Option('--log-format <format>', 'json (one object per line), text (for people), or auto: text on a terminal')
        .choices(LOG_FORMATS)
        .argParser(oneOf('--log-format', LOG_FORMATS))
        .default('auto'),
    )
    .option(
      '--dry-run',
      'an observer: votes in the election but is never elected, only logs what it would do with the VIP, ' +
        "and checks the backends without binding the balancer's ports (so it runs beside HAProxy)",
      false,
    )
    .action(async (opts: { config: string; logLevel: LogLevel; logFormat: LogFormat; dryRun: boolean }) => {
      // The same host-side checks as `vipd check`: a wrong address or interface is exit 2 naming the field.
      const loaded = loadConfigFile(opts.config);
      const log = startLog(loaded, opts);
      // A node whose peer entry says `role: witness` runs as one (the same file on every node).
      if (loaded.config.self.role === 'witness') {
        log.info({ role: 'witness' }, 'this node is a witness in peers: running as one (vipd witness)');
        await serve(new Witness(loaded, { log }), log);
        return;
      }
      const logFormat = resolveLogFormat(opts.logFormat);
      await serve(new Daemon(loaded, { log, logFormat, dryRun: opts.dryRun }), log);
    });

  program
    .command('witness')
    .description(
      'run a witness: votes and acknowledges in the election (the third voter of a two-node control plane), ' +
        'never holds the VIP, runs no balancer, needs no capabilities',
    )
    .addOption(configOption())
    .addOption(logLevelOption())
    .addOption(
      new Option('--log-format <format>', 'json (one object per line), text (for people), or auto: text on a terminal')
        .choices(LOG_FORMATS)
        .argParser(oneOf('--log-format', LOG_FORMATS))
        .default('auto'),
    )
    .action(async (opts: { config: string; logLevel: LogLevel; logFormat: LogFormat }) => {
      // The role first, from the file alone: a member's host checks would only confuse the question.
      const { self, peers, nodeName } = readConfigFile(opts.config, { readSecret: false }).config;
      if (self.role !== 'witness') {
        throw new ConfigError([
          `peers[${peers.indexOf(self)}].role: this node (${nodeName}) is a member, not a witness; ` +
            '`vipd witness` runs a node whose peer entry says role: witness, `vipd run` runs a member',
        ]);
      }
      const loaded = loadConfigFile(opts.config);
      const log = startLog(loaded, opts);
      await serve(new Witness(loaded, { log }), log);
    });

  program
    .command('check')
    .description(
      'validate a config file against this host and print the effective config (secrets redacted); exit 0 or 2',
    )
    .addOption(configOption())
    .option('--hostname <name>', 'resolve nodeName as if on this host')
    .option(
      '--offline',
      "the file alone, for one prepared on another machine: skip this host's interfaces and " +
        'addresses, the secret, the CA files and the state directory',
      false,
    )
    .action((opts: { config: string; hostname?: string; offline: boolean }) => {
      const options = opts.hostname !== undefined ? { hostname: opts.hostname } : {};
      const warn = (w: string) => process.stderr.write(`vipd: warning: ${w}\n`);
      if (opts.offline) {
        const { config } = readConfigFile(opts.config, { ...options, readSecret: false });
        configWarnings(config, { checkSecretFile: false }).forEach(warn);
        const iface = config.vip.interface ?? `not set: on the node, the interface that carries ${config.self.address}`;
        process.stdout.write(
          `# ${config.file}: valid (offline: host, secret and CA files not checked); this node is ` +
            `${config.nodeName} (${config.self.address}, name from ${nameSource(config.nodeNameFrom)}); ` +
            `vip.interface: ${iface}\n`,
        );
        process.stdout.write(effectiveConfigYaml(config));
        return;
      }
      const { config, secret, hostWarnings } = loadConfigFile(opts.config, options);
      [
        ...configWarnings(config),
        ...(hostWarnings ?? []),
        ...secretWarnings(secret, config.election.secretFile),
      ].forEach(warn);
      const iface =
        config.interfaceFrom === 'vip.interface'
          ? config.vip.interface
          : `${config.vip.interface} (it carries ${config.self.address})`;
      process.stdout.write(
        `# ${config.file}: valid; this node is ${config.nodeName} (${config.self.address}, ` +
          `name from ${nameSource(config.nodeNameFrom)}); vip.interface: ${iface}; secret: ${secret.length} bytes ` +
          `from ${config.election.secretFile}\n`,
      );
      process.stdout.write(effectiveConfigYaml(config));
    });

  program
    .command('status')
    .description("print this node's election, VIP, peers and backends, from the health endpoint")
    .addOption(configOption())
    .option('--url <url>', 'the health endpoint (default: health.listen from the config)')
    .option('--json', 'print the raw JSON', false)
    .action(async (opts: { config: string; url?: string; json: boolean }) => {
      const res = await callHealth(opts, '/status', { signal: AbortSignal.timeout(5000) });
      let status: DaemonStatus;
      try {
        status = (await res.json()) as DaemonStatus;
      } catch {
        throw notVipd(res, 'its /status is not JSON');
      }
      if (typeof status?.node !== 'string' || typeof status.quorum?.quorate !== 'boolean') {
        throw notVipd(res, 'its /status is not a vipd status');
      }
      process.stdout.write(opts.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
      // Scripts and monitoring: 3 when this node cannot act (no quorum) or nobody serves the VIP.
      if (!status.quorum.quorate || status.master === '') {
        process.stderr.write(
          `vipd: ${!status.quorum.quorate ? 'this node has no quorum' : 'no member holds the VIP'}\n`,
        );
        process.exitCode = ExitCode.degraded;
      }
    });

  program
    .command('reload')
    .description('make the running daemon re-read its config (as SIGHUP does); exit 2 if it refused the new one')
    .addOption(configOption())
    .option('--url <url>', 'the health endpoint (default: health.listen from the config)')
    .action(async (opts: { config: string; url?: string }) => {
      const res = await callHealth(opts, '/-/reload', { method: 'POST', signal: AbortSignal.timeout(10_000) });
      const text = await res.text();
      if (!res.ok) throw new ConfigError([echoText(text.trim())]);
      process.stdout.write(text);
    });

  program
    .command('lab')
    .description('the demo: three nodes and a client in network namespaces, a failover drill with timings (root)')
    .option('--verbose', "also print the daemons' log lines", false)
    .option('--ipv6', 'the same drill over IPv6: IPv6 peers, the VIP fd00:77::100/64, the balancer on [::]:6443', false)
    .action(async (opts: { verbose: boolean; ipv6: boolean }) => {
      await runLab({ verbose: opts.verbose, ipv6: opts.ipv6 });
    });

  program
    .command('version')
    .description('print the version')
    .action(() => {
      process.stdout.write(`vipd ${VERSION} (node ${process.version})\n`);
    });

  registerManifestCommands(program);
  return program;
}

/** Where nodeName came from, for `vipd check`'s first line. */
function nameSource(from: NodeNameSource): string {
  return from === 'host name' ? 'the host name' : from;
}

/** A request to the running daemon's health endpoint: `--url`, else health.listen from the config. */
async function callHealth(opts: { config: string; url?: string }, path: string, init: RequestInit): Promise<Response> {
  let base = opts.url;
  if (base === undefined) {
    const { host, port } = readConfigFile(opts.config, { readSecret: false }).config.health.listen;
    // A wildcard listener takes loopback connections ("::" is dual-stack, as Node binds it).
    base = `http://${formatHostPort(host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host, port)}`;
  }
  const parsed = URL.canParse(base) ? new URL(base) : undefined;
  if (parsed?.protocol !== 'http:' && parsed?.protocol !== 'https:') {
    throw UsageError.flags([`--url: got ${echo(base)}, expected http://HOST:PORT`]);
  }
  const url = `${base.replace(/\/$/, '')}${path}`;
  let res: Response;
  try {
    res = await fetch(url, init);
  } catch (err) {
    // fetch says "fetch failed"; the reason (ECONNREFUSED, a timeout) is its cause.
    const why = describeError((err as { cause?: unknown }).cause ?? err);
    throw new VipdError('VIPD_UNREACHABLE', `cannot reach ${url}: ${why} (is vipd running?)`, { cause: err });
  }
  if (!(res.headers.get('server') ?? '').startsWith('vipd/')) throw notVipd(res, `HTTP ${res.status}`);
  return res;
}

/** The server that answered is not vipd's health endpoint (a wrong --url or health.listen). */
function notVipd(res: Response, what: string): VipdError {
  const server = res.headers.get('server');
  return new VipdError(
    'VIPD_NOT_VIPD',
    `${res.url} is not a vipd health endpoint (${what}` +
      `${server === null ? '' : `, server ${echo(server)}`}): check --url or health.listen`,
  );
}

/** A server's text for a message: one line, bounded. */
function echoText(text: string): string {
  return text.length <= 2000 ? text : `${text.slice(0, 2000)}... (${text.length} characters)`;
}

/** The logger of `vipd run` and `vipd witness`, with the warnings that need the host and the secret logged. */
function startLog(loaded: LoadedConfig, opts: { logLevel: LogLevel; logFormat: LogFormat }): Logger {
  const log = createLogger({
    level: opts.logLevel,
    node: loaded.config.nodeName,
    format: resolveLogFormat(opts.logFormat),
  });
  // The daemon logs the config's own warnings as it starts; these need the host and the secret.
  const { secretFile } = loaded.config.election;
  const warnings = [...(loaded.hostWarnings ?? []), ...secretWarnings(loaded.secret, secretFile)];
  for (const warning of warnings) log.warn({ component: 'config', warning }, 'config warning');
  return log;
}

/** A member or a witness, run until SIGTERM or SIGINT; SIGHUP reloads. */
interface Served {
  start(): Promise<void>;
  stop(): Promise<void>;
  abort(): Promise<void>;
  reload(): Promise<unknown>;
}

async function serve(daemon: Served, log: Logger): Promise<void> {
  // Best effort on a crash: the VIP must not outlive the process that claimed it
  // (keepalived #2361, kube-vip #996). SIGKILL cannot be caught; the next start's prepare() cleans up.
  const crash = (err: unknown) => {
    log.fatal({ err }, 'uncaught error: releasing the VIP and exiting');
    void daemon.abort().finally(() => process.exit(ExitCode.failure));
  };
  process.once('uncaughtException', crash);
  process.once('unhandledRejection', crash);
  await daemon.start();
  const onHangup = () => {
    void daemon.reload();
  };
  process.on('SIGHUP', onHangup);
  await waitForStopSignal(log);
  process.off('SIGHUP', onHangup);
  await daemon.stop();
}

function waitForStopSignal(log: ReturnType<typeof createLogger>): Promise<void> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      log.info({ signal }, 'stopping');
      resolve();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

export async function main(argv: readonly string[]): Promise<number> {
  try {
    // commander answers `vipd nosuch --help` with the root help and exit 0: an unknown command is
    // a usage error whatever follows it.
    const first = argv.slice(2).find((a) => !a.startsWith('-'));
    const program = buildProgram();
    if (
      first !== undefined &&
      !program.commands.some((c) => c.name() === first || c.aliases().includes(first)) &&
      first !== 'help'
    ) {
      throw new UsageError(`unknown command ${echo(first)}; see vipd --help`);
    }
    await program.parseAsync(argv as string[]);
    // A command that finished but has something to say by its code (vipd status: 3) set it.
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    }
    if (err instanceof VipdError) {
      process.stderr.write(`vipd: ${err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(`vipd: unexpected error: ${(err as Error).stack ?? String(err)}\n`);
    return ExitCode.failure;
  }
}

if (require.main === module) {
  // `vipd check ... | head` closes our stdout early: that is the reader's choice, not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(ExitCode.ok);
    throw err;
  });
  void main(process.argv).then((code) => {
    process.exitCode = code;
  });
}
