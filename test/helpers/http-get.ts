/**
 * `node http-get.js URL [--insecure]`: the body of one GET on stdout (a daemon's /metrics, read from
 * inside its namespace; or a stand-in apiserver's /whoami through the VIP); exits non-zero when the
 * request fails or answers other than 200. `--insecure` accepts any certificate (the stand-in's is
 * self-signed), for https URLs.
 *
 * `node --test dist/test/` also loads this file as if it were a test: without VIPD_TEST_AGENT=1 it
 * does nothing (agent-loop.ts).
 */
import https from 'node:https';
import { runAgent } from './agent-loop';

function insecureGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { rejectUnauthorized: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

async function main(): Promise<void> {
  const [url = '', flag] = process.argv.slice(2);
  if (flag === '--insecure') {
    process.stdout.write(await insecureGet(url));
    return;
  }
  const response = await fetch(url);
  process.stdout.write(await response.text());
}

runAgent(main);
