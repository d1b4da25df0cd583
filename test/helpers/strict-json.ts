/**
 * JSON.parse keeps the last of two equal keys and says nothing; a log shipper may keep the first,
 * or reject the line. This finds the keys that appear twice in one object, at any depth, so tests
 * can hold every log line vipd writes to "no duplicate keys".
 */

/** The duplicated keys of `text` (a JSON document), as "path.key"; [] when there are none. */
export function duplicateKeys(text: string): string[] {
  const out: string[] = [];
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i] as string)) i += 1;
  };
  const str = (): string => {
    const start = i;
    i += 1; // the opening quote
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i += 1;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (path: string): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i += 1;
      const seen = new Set<string>();
      ws();
      if (text[i] === '}') {
        i += 1;
        return;
      }
      for (let guard = 0; guard < text.length; guard += 1) {
        ws();
        const key = str();
        if (seen.has(key)) out.push(path === '' ? key : `${path}.${key}`);
        seen.add(key);
        ws();
        i += 1; // ':'
        value(path === '' ? key : `${path}.${key}`);
        ws();
        if (text[i++] === '}') return;
      }
    } else if (c === '[') {
      i += 1;
      ws();
      if (text[i] === ']') {
        i += 1;
        return;
      }
      for (let guard = 0; guard < text.length; guard += 1) {
        value(`${path}[]`);
        ws();
        if (text[i++] === ']') return;
      }
    } else if (c === '"') {
      str();
    } else {
      while (i < text.length && !',}] \t\n\r'.includes(text[i] as string)) i += 1;
    }
  };
  JSON.parse(text); // malformed JSON throws here, before the scan
  value('');
  return out;
}
