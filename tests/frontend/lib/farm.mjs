// The live farm of tests/frontend/with-farm, as the node tests see it:
// its URL, tokens from the farm CLI (the api's own signing), fresh users.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';

export const apiUrl = process.env.FARM_TEST_API_URL;
if (!apiUrl) throw new Error('FARM_TEST_API_URL is not set: run under tests/frontend/with-farm');
export const rateBurst = Number(process.env.FARM_TEST_RATE_BURST);

const cli = process.env.FARM_TEST_CLI;

export function token(sub, { role = 'user', plan = 'pro', ttl = 3600 } = {}) {
  return execFileSync(cli, ['token', '--sub', sub, '--role', role, '--plan', plan, '--ttl', String(ttl)], {
    encoding: 'utf8',
  }).trim();
}

// A user nobody else uses in this run, with their token.
export function newUser(opts) {
  const sub = randomUUID();
  return { sub, token: token(sub, opts) };
}

export function grant(sub, amount) {
  execFileSync(cli, ['grant', '--user', sub, '--amount', String(amount), '--reason', 'frontend test'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
