/**
 * docs/configuration.md against the schema (src/config/schema.ts), so the docs cannot fall behind
 * it: every key the schema takes is documented in its section, and every key a section's tables
 * list is one the schema takes.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { configSchema } from '../src/config/schema';

const DOC = readFileSync(join(__dirname, '..', '..', 'docs', 'configuration.md'), 'utf8');

/** The schema a wrapper stands for: a default, an optional, a transform (its input side) removed. */
function unwrap(schema: z.ZodType): z.ZodType {
  if (schema instanceof z.ZodOptional || schema instanceof z.ZodDefault || schema instanceof z.ZodPrefault) {
    return unwrap(schema.unwrap() as z.ZodType);
  }
  if (schema instanceof z.ZodPipe) return unwrap(schema.in as z.ZodType);
  return schema;
}

/**
 * Whether a value has a range to document: a number, or a duration (known by its own error,
 * "expected a duration from ... to ...", for a value far too long).
 */
function ranged(schema: z.ZodType): boolean {
  const inner = unwrap(schema);
  if (inner instanceof z.ZodNumber) return true;
  const issue = schema.safeParse('1000000h').error?.issues[0]?.message ?? '';
  return /(duration|number of seconds) from /.test(issue);
}

interface KeyPath {
  /** As `proxy.frontends[].healthCheck.tls.caFile`. */
  readonly path: string;
  /** It holds a value (not an object or a list of objects). */
  readonly leaf: boolean;
  readonly ranged: boolean;
}

function keyPaths(schema: z.ZodType, prefix = ''): KeyPath[] {
  const inner = unwrap(schema);
  if (inner instanceof z.ZodArray) return keyPaths(inner.element as z.ZodType, `${prefix}[]`);
  if (!(inner instanceof z.ZodObject)) return [{ path: prefix, leaf: true, ranged: ranged(schema) }];
  return Object.entries(inner.shape).flatMap(([key, value]) => {
    const path = prefix === '' ? key : `${prefix}.${key}`;
    const below = keyPaths(value as z.ZodType, path);
    // A list of objects (`peers[]`) is named in the docs as such: a branch the tables may list.
    const named = below.some((b) => b.path === path) ? [] : [{ path, leaf: false, ranged: false }];
    return [...named, ...below];
  });
}

interface Section {
  /** The key path the section documents (`track.apiserver`); '' for the top level. */
  readonly prefix: string;
  readonly text: string;
}

/** The doc's sections by heading: "## `vip`" documents vip.*, "## Top level" the rest. */
function sections(): Section[] {
  return DOC.split(/^## /m)
    .slice(1)
    .map((text) => ({ prefix: /^`([^`]+)`/.exec(text)?.[1] ?? (text.startsWith('Top level') ? '' : '?'), text }))
    .filter((s) => s.prefix !== '?');
}

/** The section a key belongs in: the one with the longest prefix of its path. */
function sectionOf(path: string, all: readonly Section[]): Section {
  const fits = all.filter((s) => s.prefix === '' || path === s.prefix || path.startsWith(`${s.prefix}.`));
  return fits.reduce((best, s) => (s.prefix.length > best.prefix.length ? s : best));
}

/**
 * The names a key may be written as in its section, longest first: the path from the section on,
 * and each shorter tail of it, `[]` dropped ("`healthCheck.interval` / `timeout`" names
 * frontends[].healthCheck.timeout).
 */
function namesOf(path: string, section: Section): string[] {
  const relative = section.prefix === '' ? path : path.slice(section.prefix.length + 1);
  const parts = relative.replace(/\[\]/g, '').split('.');
  return parts.map((_, i) => parts.slice(i).join('.'));
}

/** A section's key table rows, each with the backquoted names of its first column. */
function tableRows(section: Section): { keys: string[]; line: string }[] {
  return section.text
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .map((line) => ({ keys: [...(line.split('|')[1] ?? '').matchAll(/`([^`]+)`/g)].map((m) => m[1] ?? ''), line }));
}

/**
 * The table row that documents a key: the one naming it in its first column, else the row of the
 * nearest list or object above it that has one (`backends[]` describes name, address and port).
 */
function rowOf(path: string, section: Section): { keys: string[]; line: string } | undefined {
  for (let p = path; p.length > section.prefix.length; p = p.slice(0, Math.max(0, p.lastIndexOf('.')))) {
    const names = namesOf(p, section);
    const row = tableRows(section).find((r) => r.keys.some((k) => names.includes(k.replace(/\[\]$/, ''))));
    if (row !== undefined) return row;
  }
  return undefined;
}

describe('docs/configuration.md documents the schema', () => {
  const paths = keyPaths(configSchema);
  const all = sections();

  it('finds the schema keys and the sections (the test itself works)', () => {
    const leaves = paths.filter((p) => p.leaf).map((p) => p.path);
    for (const known of ['nodeName', 'peers[].name', 'vip.garp.burst', 'proxy.frontends[].healthCheck.tls.caFile']) {
      assert.ok(leaves.includes(known), `${known} in ${leaves.join(', ')}`);
    }
    const withRange = paths.filter((p) => p.ranged).map((p) => p.path);
    for (const known of ['election.interval', 'vip.lifetime', 'proxy.frontends[].hedgeDelay', 'election.priority']) {
      assert.ok(withRange.includes(known), `${known} has a range`);
    }
    for (const known of ['health.listen', 'election.secretFile', 'proxy.frontends[].bind']) {
      assert.ok(!withRange.includes(known), `${known} has no range`);
    }
    assert.deepEqual(
      all.map((s) => s.prefix),
      ['', 'vip', 'election', 'proxy', 'track.apiserver', 'health'],
    );
  });

  it('every key of the schema is named, in backquotes, in its section', () => {
    const missing = paths
      .filter((p) => p.leaf)
      .filter(({ path }) => {
        const section = sectionOf(path, all);
        return !namesOf(path, section).some((name) => section.text.includes(`\`${name}\``));
      })
      .map((p) => p.path);
    assert.deepEqual(missing, [], 'keys the schema takes and docs/configuration.md does not name');
  });

  it('every number and duration has its range in the row that names it', () => {
    const without = paths
      .filter((p) => p.ranged)
      .filter(({ path }) => {
        const section = sectionOf(path, all);
        const row = rowOf(path, section);
        // "Range: 1-100.", a range column ("20ms-10s"), or a range in the words ("10ms to 60s").
        return row === undefined || !/Range:|\d[a-z]*\s*(-|to)\s*\d/.test(row.line);
      })
      .map((p) => p.path);
    assert.deepEqual(without, [], 'numbers and durations whose row in docs/configuration.md gives no range');
  });

  it("every key a section's tables list is one the schema takes", () => {
    const unknown = all.flatMap((section) => {
      const names = new Set(
        paths
          .filter((p) => sectionOf(p.path, all) === section)
          .flatMap((p) => namesOf(p.path, section))
          .flatMap((n) => [n, `${n}[]`]),
      );
      return tableRows(section)
        .flatMap((row) => row.keys)
        .filter((key) => !names.has(key))
        .map((key) => `${section.prefix || '(top level)'}: ${key}`);
    });
    assert.deepEqual(unknown, [], 'keys docs/configuration.md lists that the schema does not take');
  });
});
