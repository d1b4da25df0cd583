/**
 * Every log message in src/ is in docs/logging-and-metrics.md, with its level (issue #10).
 *
 * The scanner reads the TypeScript sources from the repository (the compiled test runs from
 * dist/test, so `../../src` from here), splits them into tokens (strings, template literals, regular
 * expressions, words, punctuation; comments dropped), and takes as a log call every
 * `<receiver>.<level>(` whose receiver is named `log`, `logger` or `limited`: pino's
 * `log.info(fields, 'msg')` (also `this.opts.log.warn(...)`) and RateLimitedLog's
 * `limited.warn(key, fields, 'msg')`. The message is the call's last argument: a string literal, a
 * template literal, or an expression of them (`a ? 'x' : 'y'`). A template literal counts by its
 * constant prefix, up to the first `${`.
 *
 * A message is documented when a table row in the doc's "## Logs" section has it in backticks in its
 * first cell (the whole message; a template's prefix after the opening backtick) and its level in
 * the second cell.
 *
 * Limits, on purpose:
 * - A logger under another name (`this.audit.info(...)`) or called through an index
 *   (`log[level](...)`, as RateLimitedLog does inside) is not seen.
 * - A message that is not written in the call (a variable, a function's result) cannot be read:
 *   the test fails naming the file and line, so write the literal in the call.
 * - Of a template literal only the text before the first `${` is checked; a template that starts
 *   with `${` cannot be checked and fails. A short prefix (`link ${state}`) matches any documented
 *   message that starts the same way.
 * - String literals compared with `===`, `!==`, `==`, `!=`, and those inside a call's parentheses,
 *   an array or an object within the message argument, are not taken for messages; any other
 *   literal in the last argument is.
 * - A `/` is read as the start of a regular expression after punctuation or a keyword such as
 *   `return`, as a division otherwise (the usual heuristic); a source that defeats it can hide or
 *   invent calls until the next line of code.
 * - The component and the fields are not checked: they come from child loggers and objects built
 *   elsewhere.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';

const REPO = resolve(__dirname, '../..');
const SRC = join(REPO, 'src');
const DOC = join(REPO, 'docs/logging-and-metrics.md');

const RECEIVERS = new Set(['log', 'logger', 'limited']);
const LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace']);
const COMPARISONS = new Set(['===', '!==', '==', '!=']);
const OPERATORS = ['===', '!==', '==', '!=', '=>', '?.', '??', '&&', '||'];
const REGEX_AFTER_WORDS = new Set([
  'return',
  'typeof',
  'case',
  'do',
  'else',
  'in',
  'of',
  'new',
  'delete',
  'void',
  'throw',
  'yield',
  'await',
]);

type Token =
  | { kind: 'string'; value: string; at: number }
  | { kind: 'template'; prefix: string; at: number }
  | { kind: 'word' | 'punct' | 'regex'; value: string; at: number };
type Literal = Extract<Token, { kind: 'string' | 'template' }>;

interface Message {
  file: string;
  line: number;
  level: string;
  /** The message, or a template's constant prefix. */
  text: string;
  prefix: boolean;
}

interface Scan {
  messages: Message[];
  /** Calls whose message could not be read: `file:line`. */
  unreadable: string[];
}

const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', '0': '\0' };

function unescapeSource(raw: string): string {
  return raw.replace(/\\(u\{[0-9a-fA-F]+\}|u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|[\s\S])/g, (_all, e: string) => {
    if (e.length > 1) return String.fromCodePoint(parseInt(e.replace(/[ux{}]/g, ''), 16));
    return ESCAPES[e] ?? (e === '\n' ? '' : e);
  });
}

/** Tokens of `src` from `start`; with `inExpression`, up to the `}` that closes a template's `${`. */
function lex(src: string, start = 0, inExpression = false): { tokens: Token[]; end: number } {
  const tokens: Token[] = [];
  let i = start;
  let braces = 0;
  while (i < src.length) {
    const c = src[i] as string;
    if (/\s/.test(c)) {
      i += 1;
    } else if (src.startsWith('//', i)) {
      const nl = src.indexOf('\n', i);
      i = nl < 0 ? src.length : nl;
    } else if (src.startsWith('/*', i)) {
      const close = src.indexOf('*/', i + 2);
      i = close < 0 ? src.length : close + 2;
    } else if (c === "'" || c === '"') {
      let j = i + 1;
      while (j < src.length && src[j] !== c && src[j] !== '\n') j += src[j] === '\\' ? 2 : 1;
      tokens.push({ kind: 'string', value: unescapeSource(src.slice(i + 1, j)), at: i });
      i = j + 1;
    } else if (c === '`') {
      let j = i + 1;
      let prefix: string | undefined;
      while (j < src.length && src[j] !== '`') {
        if (src[j] === '\\') {
          j += 2;
        } else if (src.startsWith('${', j)) {
          prefix ??= src.slice(i + 1, j);
          j = lex(src, j + 2, true).end;
        } else {
          j += 1;
        }
      }
      const text = src.slice(i + 1, j);
      tokens.push(
        prefix === undefined
          ? { kind: 'string', value: unescapeSource(text), at: i }
          : { kind: 'template', prefix: unescapeSource(prefix), at: i },
      );
      i = j + 1;
    } else if (c === '/' && regexMayStart(tokens[tokens.length - 1])) {
      let j = i + 1;
      let inClass = false;
      while (j < src.length && src[j] !== '\n' && (inClass || src[j] !== '/')) {
        if (src[j] === '\\') j += 1;
        else if (src[j] === '[') inClass = true;
        else if (src[j] === ']') inClass = false;
        j += 1;
      }
      j += 1;
      while (j < src.length && /[a-z]/.test(src[j] as string)) j += 1;
      tokens.push({ kind: 'regex', value: src.slice(i, j), at: i });
      i = j;
    } else if (/[\w$]/.test(c)) {
      let j = i + 1;
      while (j < src.length && /[\w$]/.test(src[j] as string)) j += 1;
      tokens.push({ kind: 'word', value: src.slice(i, j), at: i });
      i = j;
    } else {
      if (inExpression && c === '}' && braces === 0) return { tokens, end: i + 1 };
      if (c === '{') braces += 1;
      if (c === '}') braces -= 1;
      const op = OPERATORS.find((o) => src.startsWith(o, i)) ?? c;
      tokens.push({ kind: 'punct', value: op, at: i });
      i += op.length;
    }
  }
  return { tokens, end: i };
}

function regexMayStart(previous: Token | undefined): boolean {
  if (previous === undefined) return true;
  if (previous.kind === 'punct') return !/^[)\]}]$/.test(previous.value);
  return previous.kind === 'word' && REGEX_AFTER_WORDS.has(previous.value);
}

/** The literals of a message argument that can be the message (see the limits above). */
function messageLiterals(arg: Token[]): Literal[] {
  const found: Literal[] = [];
  const stack: ('group' | 'other')[] = [];
  arg.forEach((t, k) => {
    if (t.kind === 'punct' && /^[([{]$/.test(t.value)) {
      const before = arg[k - 1];
      const call =
        before !== undefined && (before.kind === 'word' || (before.kind === 'punct' && /^[)\]]$/.test(before.value)));
      stack.push(t.value === '(' && !call ? 'group' : 'other');
    } else if (t.kind === 'punct' && /^[)\]}]$/.test(t.value)) {
      stack.pop();
    } else if ((t.kind === 'string' || t.kind === 'template') && stack.every((s) => s === 'group')) {
      const compared = [arg[k - 1], arg[k + 1]].some((n) => n?.kind === 'punct' && COMPARISONS.has(n.value));
      if (!compared) found.push(t);
    }
  });
  return found;
}

function lineOf(src: string, at: number): number {
  let line = 1;
  for (let i = src.indexOf('\n'); i >= 0 && i < at; i = src.indexOf('\n', i + 1)) line += 1;
  return line;
}

/** The log calls of one source file. */
function scanSource(file: string, src: string): Scan {
  const { tokens } = lex(src);
  const scan: Scan = { messages: [], unreadable: [] };
  for (let k = 0; k + 3 < tokens.length; k += 1) {
    const [recv, dot, level, open] = tokens.slice(k, k + 4) as [Token, Token, Token, Token];
    if (
      recv.kind !== 'word' ||
      !RECEIVERS.has(recv.value) ||
      dot.kind !== 'punct' ||
      !['.', '?.'].includes(dot.value) ||
      level.kind !== 'word' ||
      !LEVELS.has(level.value) ||
      open.kind !== 'punct' ||
      open.value !== '('
    )
      continue;
    const args: Token[][] = [[]];
    let depth = 0;
    let j = k + 4;
    for (; j < tokens.length; j += 1) {
      const t = tokens[j] as Token;
      if (t.kind === 'punct' && /^[([{]$/.test(t.value)) depth += 1;
      if (t.kind === 'punct' && /^[)\]}]$/.test(t.value)) {
        if (depth === 0) break;
        depth -= 1;
      }
      if (t.kind === 'punct' && t.value === ',' && depth === 0) args.push([]);
      else (args[args.length - 1] as Token[]).push(t);
    }
    const last = args.filter((a) => a.length > 0).pop() ?? [];
    const line = lineOf(src, recv.at);
    const literals = messageLiterals(last);
    const readable = literals.length > 0 && literals.every((t) => t.kind === 'string' || t.prefix !== '');
    if (!readable) {
      scan.unreadable.push(`${file}:${line}`);
      continue;
    }
    for (const t of literals) {
      scan.messages.push(
        t.kind === 'template'
          ? { file, line, level: level.value, text: t.prefix, prefix: true }
          : { file, line, level: level.value, text: t.value, prefix: false },
      );
    }
    k = j;
  }
  return scan;
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => {
      const path = join(dir, e.name);
      if (e.isDirectory()) return tsFiles(path);
      return e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [path] : [];
    })
    .sort();
}

function scanTree(dir: string): Scan {
  const all: Scan = { messages: [], unreadable: [] };
  for (const path of tsFiles(dir)) {
    const scan = scanSource(relative(REPO, path), readFileSync(path, 'utf8'));
    all.messages.push(...scan.messages);
    all.unreadable.push(...scan.unreadable);
  }
  return all;
}

/** The table rows of the doc's "## Logs" section: [message cell, level cell]. */
function logRows(doc: string): [string, string][] {
  const section = /^## Logs\n([\s\S]*?)(?=^## )/m.exec(doc)?.[1] ?? '';
  return section
    .split('\n')
    .filter((l) => l.startsWith('|'))
    .map((l) => {
      const cells = l.split('|');
      return [cells[1] ?? '', cells[2] ?? ''];
    });
}

/** What is wrong with the doc for one message, or undefined. */
function undocumented(m: Message, rows: [string, string][]): string | undefined {
  const needle = m.prefix ? `\`${m.text}` : `\`${m.text}\``;
  const matching = rows.filter(([msg]) => msg.includes(needle));
  const what = `${m.level} ${JSON.stringify(m.text)}${m.prefix ? " (a template's prefix)" : ''}`;
  const where = `${m.file}:${m.line}: ${what}`;
  if (matching.length === 0) return `${where} is not in docs/logging-and-metrics.md`;
  const level = new RegExp(`\\b${m.level}\\b`, 'i');
  if (!matching.some(([, lvl]) => level.test(lvl))) return `${where} is documented, but not with level ${m.level}`;
  return undefined;
}

describe('the log catalogue scanner', () => {
  it('reads pino and RateLimitedLog calls, on one line or several', () => {
    const scan = scanSource(
      'x.ts',
      [
        "this.opts.log.info({ a: 1 }, 'one');",
        'this.limited.warn(`k:${x}`, { b: 2 },',
        '  "two, with \\"quotes\\"");',
        "log.error('it\\'s three');",
        'log?.debug({}, `four ${n} and more`);',
      ].join('\n'),
    );
    assert.deepEqual(scan.unreadable, []);
    assert.deepEqual(
      scan.messages.map((m) => [m.line, m.level, m.text, m.prefix]),
      [
        [1, 'info', 'one', false],
        [2, 'warn', 'two, with "quotes"', false],
        [4, 'error', "it's three", false],
        [5, 'debug', 'four ', true],
      ],
    );
  });

  it('takes every branch of a conditional message, not the literals it compares or passes on', () => {
    const scan = scanSource(
      'x.ts',
      [
        "log.info({}, a === b ? (b === 'MASTER' ? `handing over to ${m}` : `election ${b.x()}`) : `state ${a}`);",
        "log.info(fields, wasUnknown ? 'backend up' : 'backend back up');",
        "log.info({}, `failed to ${op === 'acquire' ? 'add' : 'renew'} the VIP`);",
      ].join('\n'),
    );
    assert.deepEqual(
      scan.messages.map((m) => m.text),
      ['handing over to ', 'election ', 'state ', 'backend up', 'backend back up', 'failed to '],
    );
  });

  it('skips comments, strings and regular expressions, and names a message it cannot read', () => {
    const scan = scanSource(
      'x.ts',
      [
        "// log.info({}, 'commented out');",
        "/* log.warn({}, 'also') */ const s = \"log.info('in a string')\";",
        'const r = /["`(]/g; const d = a / b / c;',
        'log.warn({}, message);',
        'log.warn({}, `${x} starts with a placeholder`);',
        "log.info({}, 'after');",
      ].join('\n'),
    );
    assert.deepEqual(scan.unreadable, ['x.ts:4', 'x.ts:5']);
    assert.deepEqual(
      scan.messages.map((m) => [m.line, m.text]),
      [[6, 'after']],
    );
  });

  it('finds a documented message by its row, and checks the level', () => {
    const rows = logRows(
      [
        '# L',
        '## Logs',
        '| msg | level |',
        '|---|---|',
        '| `VIP added` | info |',
        '| `link up` | info |',
        '## Next',
        '',
      ].join('\n'),
    );
    const at = { file: 'x.ts', line: 1, prefix: false };
    assert.equal(undocumented({ ...at, level: 'info', text: 'VIP added' }, rows), undefined);
    assert.match(undocumented({ ...at, level: 'warn', text: 'VIP added' }, rows) ?? '', /not with level warn/);
    assert.match(undocumented({ ...at, level: 'info', text: 'VIP' }, rows) ?? '', /is not in docs/);
    assert.equal(undocumented({ ...at, level: 'info', text: 'link ', prefix: true }, rows), undefined);
  });
});

describe('docs/logging-and-metrics.md', () => {
  const scan = scanTree(SRC);

  it('the scanner finds the log calls in src/, each with a message it can read', () => {
    assert.deepEqual(scan.unreadable, [], 'log calls whose message is not a literal written in the call');
    const found = scan.messages.length;
    assert.ok(found >= 50, `only ${found} log messages found in src/: is the scanner broken?`);
  });

  it('lists every log message in src/ with its level', () => {
    const rows = logRows(readFileSync(DOC, 'utf8'));
    const problems = [...new Set(scan.messages.map((m) => undocumented(m, rows)).filter((p) => p !== undefined))];
    if (problems.length > 0) assert.fail(`${problems.length} log message(s) not documented:\n${problems.join('\n')}`);
  });
});
